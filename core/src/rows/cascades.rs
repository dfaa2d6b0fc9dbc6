//! The rows a deleted chat or file takes with it: Open WebUI's `ON DELETE CASCADE` foreign keys
//! from the [row tables](super::tables) to `chat.id` and `file.id` (0.12.4 DDL, the same on
//! SQLite and PostgreSQL).
//!
//! SQL applies them itself (foreign keys on). The memory model and PocketBase, which have no
//! foreign keys, apply these lists in the same write that deletes the chat or file: a chat's
//! delete, a user's chats' delete, a folder delete that deletes chats, a file's delete and a
//! user's files' delete. Without it a deleted chat's share link (`shared_chat`) stayed readable.
//!
//! Exactly the SQL cascades, nothing more: access grants on a deleted chat's shares have no
//! foreign key and stay on SQL (and in Open WebUI, whose chat delete leaves them), so they stay
//! everywhere. No cascaded table has rows cascading from it in turn.

use serde_json::Value;

use super::tables::{CHANNEL_FILE, CHAT_FILE, KNOWLEDGE_FILE, SHARED_CHAT};
use super::{Cond, RowOp, Table};

/// A column of a row table that refers to a chat or a file, whose rows go when it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cascade {
    /// The table holding the reference.
    pub table: &'static Table,
    /// Its column.
    pub column: &'static str,
}

/// What deleting a chat deletes among the rows: its shared snapshots (`shared_chat.chat_id`)
/// and its file links (`chat_file.chat_id`). Its messages and tags are the chat repository's.
pub static CHAT_CASCADES: &[Cascade] = &[
    Cascade {
        table: &SHARED_CHAT,
        column: "chat_id",
    },
    Cascade {
        table: &CHAT_FILE,
        column: "chat_id",
    },
];

/// What deleting a file deletes among the rows: its links to chats (`chat_file.file_id`),
/// knowledge bases (`knowledge_file.file_id`) and channels (`channel_file.file_id`).
pub static FILE_CASCADES: &[Cascade] = &[
    Cascade {
        table: &CHAT_FILE,
        column: "file_id",
    },
    Cascade {
        table: &KNOWLEDGE_FILE,
        column: "file_id",
    },
    Cascade {
        table: &CHANNEL_FILE,
        column: "file_id",
    },
];

/// The deletes of every row of `cascades` referring to one of `ids` (none when `ids` is empty).
pub fn delete_ops(cascades: &[Cascade], ids: &[String]) -> Vec<RowOp> {
    if ids.is_empty() {
        return Vec::new();
    }
    let values: Vec<Value> = ids.iter().map(|id| Value::from(id.as_str())).collect();
    cascades
        .iter()
        .map(|c| RowOp::Delete {
            table: c.table,
            filter: vec![Cond::In(c.column, values.clone())],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cascade_names_a_required_text_column_of_its_table() {
        for c in CHAT_CASCADES.iter().chain(FILE_CASCADES) {
            let column = c.table.column(c.column).expect("a column of the table");
            assert_eq!(column.kind, super::super::ColumnKind::Text, "{}", c.column);
            assert!(!column.nullable, "{}.{}", c.table.name, c.column);
        }
    }

    #[test]
    fn delete_ops_are_checked_ops_and_none_without_ids() {
        assert!(delete_ops(CHAT_CASCADES, &[]).is_empty());
        let ops = delete_ops(FILE_CASCADES, &["f1".to_owned()]);
        assert_eq!(ops.len(), 3);
        for op in &ops {
            super::super::check_op(op).expect("a valid delete");
        }
    }
}
