//! Open WebUI's remaining models, typed: folders, knowledge bases, notes, memories, prompts,
//! models, groups, access grants, channels, feedback and shared chats.
//!
//! Each model is a serde struct whose fields are the columns of its Open WebUI table (same
//! names, same units: seconds for most tables, nanoseconds for notes and channels), and a
//! repository with the operations Open WebUI's routers use. They are written once, here, over
//! the store's [`RowStore`], so every backend with rows has all of them and behaves the same.
//! The machinery they share is written once too: [`record`] (row <-> struct conversion, pages,
//! keyset scans), [`access`] (grants, list-by-access, the shared [`Search`]) and [`history`]
//! (prompt and model versions).
//!
//! The entry point is [`Store::workspace`](crate::Store::workspace) (or [`Workspace::new`]):
//!
//! ```
//! use chatstore_core::memory;
//! use chatstore_core::models::{NewFolder, NewMemory};
//!
//! # tokio_test_block(async {
//! let store = memory::store();
//! let workspace = store.workspace()?;
//! let work = workspace.folders().create(NewFolder::new("u1", "Work")).await?;
//! workspace.folders().create(NewFolder::new("u1", "Drafts").inside(&work.id)).await?;
//! workspace.memories().create(NewMemory::new("u1", "Prefers metric units")).await?;
//! assert_eq!(workspace.folders().list("u1").await?.len(), 2);
//! # Ok::<(), chatstore_core::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f).expect("example");
//! # }
//! ```

pub mod access;
pub mod channels;
pub mod feedback;
pub mod folders;
pub mod groups;
pub mod history;
pub mod knowledge;
pub mod memories;
pub mod notes;
pub mod presets;
pub mod prompts;
pub mod record;
pub mod shared_chats;

use std::sync::Arc;

use serde_json::Value;

pub use access::{
    AccessGrant, AccessGrants, EVERYONE, Grant, Permission, Principal, Search, Shared, SortBy,
    View, Viewer,
};
pub use channels::{
    Channel, ChannelMember, ChannelMessage, ChannelPatch, Channels, MessageReaction, NewChannel,
    NewChannelMessage,
};
pub use feedback::{Feedback, FeedbackOrder, FeedbackPatch, Feedbacks, NewFeedback};
pub use folders::{Folder, FolderChats, FolderPatch, Folders, NewFolder};
pub use groups::{Group, GroupMember, GroupPatch, Groups, NewGroup};
pub use history::{History, HistoryEntry, ModelVersion, PromptVersion};
pub use knowledge::{
    Knowledge, KnowledgeBases, KnowledgeDirectory, KnowledgeFile, KnowledgePatch, NewKnowledge,
};
pub use memories::{Memories, Memory, MemoryPatch, NewMemory, memory_collection};
pub use notes::{NewNote, Note, NotePatch, Notes, PinnedNote};
pub use presets::{Model, ModelPatch, Models, NewModel};
pub use prompts::{NewPrompt, Prompt, PromptPatch, Prompts};
pub use record::{Record, Records};
pub use shared_chats::{SharedChat, SharedChatOrder, SharedChats};

use crate::rows::{ALL_TABLES, Cond, RowOp, RowQuery, RowStore, Table, tables};
use crate::{ChatRepo, Result};

/// Every model of Open WebUI's remaining tables, over one row store (and the chats, which
/// folders delete or detach). Cheap to clone.
#[derive(Clone)]
pub struct Workspace {
    rows: Arc<dyn RowStore>,
    chats: Arc<dyn ChatRepo>,
}

impl Workspace {
    /// The models over `rows`, with `chats` the chat repository folders act on. A
    /// [`Store`](crate::Store) gives both: [`Store::workspace`](crate::Store::workspace).
    pub fn new(rows: Arc<dyn RowStore>, chats: Arc<dyn ChatRepo>) -> Self {
        Workspace { rows, chats }
    }

    /// The row store underneath.
    pub fn rows(&self) -> &Arc<dyn RowStore> {
        &self.rows
    }

    /// Folders.
    pub fn folders(&self) -> Folders {
        Folders::new(self.rows.clone(), self.chats.clone())
    }

    /// Memories.
    pub fn memories(&self) -> Memories {
        Memories::new(self.rows.clone())
    }

    /// Knowledge bases, their files and directories.
    pub fn knowledge(&self) -> KnowledgeBases {
        KnowledgeBases::new(self.rows.clone())
    }

    /// Notes and pins.
    pub fn notes(&self) -> Notes {
        Notes::new(self.rows.clone())
    }

    /// Prompts and their versions.
    pub fn prompts(&self) -> Prompts {
        Prompts::new(self.rows.clone())
    }

    /// Models and their versions.
    pub fn models(&self) -> Models {
        Models::new(self.rows.clone())
    }

    /// Channels, members, messages and reactions.
    pub fn channels(&self) -> Channels {
        Channels::new(self.rows.clone())
    }

    /// Ratings.
    pub fn feedback(&self) -> Feedbacks {
        Feedbacks::new(self.rows.clone())
    }

    /// Shared chat snapshots.
    pub fn shared_chats(&self) -> SharedChats {
        SharedChats::new(self.rows.clone(), self.chats.clone())
    }

    /// Groups and members.
    pub fn groups(&self) -> Groups {
        Groups::new(self.rows.clone())
    }

    /// Access grants.
    pub fn grants(&self) -> AccessGrants {
        AccessGrants::new(self.rows.clone())
    }

    /// Deletes, in one atomic write, every row `user_id` owns in every table (each table's
    /// [`Table::owner`]), the rows hanging off them (files and directories of the user's
    /// knowledge bases, pins of the user's notes, versions of the user's prompts and models,
    /// access grants on any of them) and the grants given to the user by name. Returns how many
    /// rows went. [`Store::delete_user`](crate::Store::delete_user) calls it.
    pub async fn delete_user(&self, user_id: &str) -> Result<u64> {
        let mut ops = Vec::new();
        // Resources others may hold grants on or rows under, by their resource type.
        let owned_resources: [(&'static Table, &str); 5] = [
            (&tables::FOLDER, "folder"),
            (&tables::KNOWLEDGE, "knowledge"),
            (&tables::NOTE, "note"),
            (&tables::PROMPT, "prompt"),
            (&tables::MODEL, "model"),
        ];
        let mut owned = std::collections::BTreeMap::new();
        for (table, resource) in owned_resources
            .into_iter()
            .chain([(&tables::SHARED_CHAT, "shared_chat")])
        {
            let ids = self.owned_ids(table, user_id).await?;
            if !ids.is_empty() {
                ops.push(AccessGrants::delete_ops(resource, &ids));
            }
            owned.insert(table.name, ids);
        }
        let children: [(&'static Table, &'static str, &str); 5] = [
            (&tables::KNOWLEDGE_FILE, "knowledge_id", "knowledge"),
            (&tables::KNOWLEDGE_DIRECTORY, "knowledge_id", "knowledge"),
            (&tables::PINNED_NOTE, "note_id", "note"),
            (&tables::PROMPT_HISTORY, "prompt_id", "prompt"),
            (&tables::MODEL_HISTORY, "model_id", "model"),
        ];
        for (table, column, parent) in children {
            if let Some(ids) = owned.get(parent).filter(|ids| !ids.is_empty()) {
                ops.push(RowOp::Delete {
                    table,
                    filter: vec![Cond::In(
                        column,
                        ids.iter().map(|i| Value::from(i.as_str())).collect(),
                    )],
                });
            }
        }
        ops.push(AccessGrants::user_principal_ops(user_id));
        for table in ALL_TABLES {
            if let Some(owner) = table.owner {
                ops.push(RowOp::Delete {
                    table,
                    filter: vec![Cond::Eq(owner, user_id.into())],
                });
            }
        }
        Ok(self.rows.write(ops).await?.into_iter().sum())
    }

    async fn owned_ids(&self, table: &'static Table, user_id: &str) -> Result<Vec<String>> {
        let Some(owner) = table.owner else {
            return Ok(Vec::new());
        };
        let rows = self
            .rows
            .select(
                table,
                &RowQuery::filter(vec![Cond::Eq(owner, user_id.into())]),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every record type writes exactly its table's columns, and reads back what it wrote.
    fn columns_match<T: Record + std::fmt::Debug + PartialEq>(record: T) {
        let row = record.to_row().expect("to_row");
        let mut keys: Vec<&str> = row.keys().map(String::as_str).collect();
        let mut columns: Vec<&str> = T::TABLE.columns.iter().map(|c| c.name).collect();
        keys.sort_unstable();
        columns.sort_unstable();
        assert_eq!(keys, columns, "{}", T::TABLE.name);
        crate::rows::check_row(T::TABLE, &row, true).expect("a valid row");
        assert_eq!(T::from_row(row).expect("from_row"), record);
    }

    /// A row of `T`'s table with every column: required ones set, nullable ones null.
    fn full_row<T: Record>() -> crate::rows::Row {
        use crate::rows::ColumnKind;
        T::TABLE
            .columns
            .iter()
            .map(|c| {
                let v = match c.kind {
                    _ if c.nullable => serde_json::Value::Null,
                    ColumnKind::Text => json!("x"),
                    ColumnKind::Int => json!(7),
                    ColumnKind::Bool => json!(true),
                    ColumnKind::Json | ColumnKind::JsonText => json!({"k": [1]}),
                };
                (c.name.to_owned(), v)
            })
            .collect()
    }

    fn round_trips<T: Record>() {
        let row = full_row::<T>();
        let record = T::from_row(row.clone()).expect("from_row");
        assert_eq!(record.to_row().expect("to_row"), row, "{}", T::TABLE.name);
        let cells = crate::rows::cells::from_row(T::TABLE, row);
        let from_cells = T::from_cells(cells).expect("from_cells");
        assert_eq!(
            from_cells.to_row().expect("to_row"),
            record.to_row().expect("to_row")
        );
    }

    #[test]
    fn every_record_round_trips_its_tables_row() {
        round_trips::<Folder>();
        round_trips::<Group>();
        round_trips::<GroupMember>();
        round_trips::<AccessGrant>();
        round_trips::<Knowledge>();
        round_trips::<KnowledgeDirectory>();
        round_trips::<KnowledgeFile>();
        round_trips::<Note>();
        round_trips::<PinnedNote>();
        round_trips::<Memory>();
        round_trips::<Prompt>();
        round_trips::<PromptVersion>();
        round_trips::<Model>();
        round_trips::<ModelVersion>();
        round_trips::<Channel>();
        round_trips::<ChannelMember>();
        round_trips::<ChannelMessage>();
        round_trips::<MessageReaction>();
        round_trips::<Feedback>();
        round_trips::<SharedChat>();
    }

    #[test]
    fn records_have_their_tables_columns() {
        columns_match(Folder {
            id: "f".into(),
            parent_id: None,
            user_id: "u".into(),
            name: "n".into(),
            items: None,
            meta: Some(json!({"a": 1})),
            data: None,
            is_expanded: false,
            created_at: 1,
            updated_at: 2,
        });
        columns_match(Memory {
            id: "m".into(),
            user_id: Some("u".into()),
            content: Some("c".into()),
            updated_at: Some(1),
            created_at: Some(1),
            kind: "user".into(),
            path: None,
            meta: None,
        });
        columns_match(Group {
            id: "g".into(),
            user_id: None,
            name: Some("n".into()),
            description: None,
            data: None,
            meta: None,
            permissions: None,
            created_at: Some(1),
            updated_at: Some(1),
            parent_group_id: None,
        });
        columns_match(GroupMember {
            id: "gm".into(),
            group_id: "g".into(),
            user_id: "u".into(),
            created_at: None,
            updated_at: None,
        });
        columns_match(AccessGrant {
            id: "a".into(),
            resource_type: "note".into(),
            resource_id: "n".into(),
            principal_type: "user".into(),
            principal_id: "*".into(),
            permission: "read".into(),
            created_at: 1,
        });
    }
}
