//! Contracts that span the models: deleting a user removes what the user owns in every table,
//! and nothing of anyone else's.

use chatstore_core::rows::tables::{self, ALL_TABLES};
use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, Table, row};
use chatstore_core::{Result, Store};
use serde_json::{Value, json};

use chatstore_core::models::{NewFolder, NewMemory, memory_collection};

use crate::fixtures::{T0, chat, file, item, user};
use crate::folders::workspace;

/// The row a foreign key column of the fixture points at: every `*_id` column names the row
/// of the same family (`tag` a or b), so the rows are valid under Open WebUI's foreign keys.
fn family(column: &str, tag: &str) -> Option<String> {
    let parent = match column {
        "knowledge_id" => "knowledge",
        "note_id" => "note",
        "prompt_id" => "prompt",
        "model_id" => "model",
        "channel_id" => "channel",
        "message_id" => "message",
        "group_id" => "group",
        "chat_id" => return Some(format!("chat-{tag}")),
        "file_id" => return Some(format!("file-{tag}")),
        "resource_id" | "principal_id" => return Some(format!("parent-{tag}")),
        _ => return None,
    };
    Some(format!("{parent}-{tag}"))
}

/// A valid row of `table` with id `{table}-{tag}`, owned by `owner` (and `user_id` = `owner`),
/// its required `*_id` columns pointing at the same family's rows (see [`family`]), nullable
/// ones null.
pub fn minimal_row(table: &'static Table, tag: &str, owner: &str) -> Row {
    use chatstore_core::rows::ColumnKind;
    let mut r = Row::new();
    for column in table.columns {
        let value = match column.kind {
            _ if column.name == "id" => json!(format!("{}-{tag}", table.name)),
            _ if column.name == "user_id" || Some(column.name) == table.owner => json!(owner),
            ColumnKind::Text if column.nullable => Value::Null,
            ColumnKind::Text => match family(column.name, tag) {
                Some(parent) => json!(parent),
                None => json!(format!("{} {tag}", column.name)),
            },
            ColumnKind::Int => json!(T0),
            ColumnKind::Bool => json!(false),
            ColumnKind::Json | ColumnKind::JsonText if column.nullable => Value::Null,
            ColumnKind::Json | ColumnKind::JsonText => json!({}),
        };
        r.insert(column.name.to_owned(), value);
    }
    if table.name == "prompt" {
        r.insert("command".into(), json!(format!("/prompt-{tag}")));
    }
    r
}

/// Deleting a user removes the user's rows in every table with an owner, the rows hanging off
/// the user's knowledge, notes, prompts and models, the grants on them and the grants to the
/// user; another user's rows all stay.
pub async fn deleting_a_user_deletes_their_rows_in_every_table(store: &Store) -> Result<()> {
    let rows = workspace(store)?.rows().clone();
    user(store, 1).await?;
    user(store, 2).await?;
    let mut ops = Vec::new();
    for (who, tag) in [("user-1", "a"), ("user-2", "b")] {
        chat(store, who, &format!("chat-{tag}"), "Chat", T0).await?;
        file(store, who, &format!("file-{tag}"), b"bytes", T0).await?;
        for table in ALL_TABLES {
            ops.push(RowOp::Insert {
                table,
                row: minimal_row(table, tag, who),
            });
        }
    }
    // Grants on user-1's knowledge, to user-1 by name, and to user-2 on user-2's note.
    for (id, resource_type, resource_id, principal) in [
        ("g1", "knowledge", "knowledge-a", "user-2"),
        ("g2", "note", "note-b", "user-1"),
        ("g3", "note", "note-b", "user-2"),
    ] {
        ops.push(RowOp::Insert {
            table: &tables::ACCESS_GRANT,
            row: row([
                ("id", json!(id)),
                ("resource_type", json!(resource_type)),
                ("resource_id", json!(resource_id)),
                ("principal_type", json!("user")),
                ("principal_id", json!(principal)),
                ("permission", json!("read")),
                ("created_at", json!(T0)),
            ]),
        });
    }
    rows.write(ops).await?;
    store.delete_user("user-1").await?;
    for table in ALL_TABLES {
        let left: Vec<String> = rows
            .select(table, &RowQuery::default())
            .await?
            .into_iter()
            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let mine = format!("{}-a", table.name);
        let theirs = format!("{}-b", table.name);
        let owned_by_user_1 = table.owner.is_some()
            || matches!(
                table.name,
                "knowledge_file" | "knowledge_directory" | "prompt_history" | "model_history"
            );
        if owned_by_user_1 {
            assert!(!left.contains(&mine), "{mine} should be gone");
        }
        // pinned_note-b belongs to user-2's note but user-2 owns the pin row too.
        if table.name != "access_grant" {
            assert!(left.contains(&theirs), "{theirs} should stay");
        }
    }
    let grants: Vec<String> = rows
        .select(
            &tables::ACCESS_GRANT,
            &RowQuery::filter(vec![Cond::In(
                "id",
                vec![json!("g1"), json!("g2"), json!("g3")],
            )]),
        )
        .await?
        .into_iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect();
    assert_eq!(grants, vec!["g3"]);
    Ok(())
}

/// Deleting a user deletes the vectors of the user's memories (`user-memory-{id}`), where the
/// store has vectors.
pub async fn deleting_a_user_deletes_their_memory_vectors(store: &Store) -> Result<()> {
    workspace(store)?;
    user(store, 1).await?;
    user(store, 2).await?;
    if !store.capabilities().vectors {
        return Ok(());
    }
    for who in ["user-1", "user-2"] {
        store
            .vectors
            .insert(
                &memory_collection(who),
                vec![item(
                    &format!("v-{who}"),
                    &[1.0, 0.0],
                    json!({"created_at": T0}),
                )],
            )
            .await?;
    }
    store.delete_user("user-1").await?;
    assert!(
        !store
            .vectors
            .has_collection(&memory_collection("user-1"))
            .await?
    );
    assert!(
        store
            .vectors
            .has_collection(&memory_collection("user-2"))
            .await?
    );
    Ok(())
}

/// Every model's records walk their whole table by id in keyset pages, never repeating or
/// skipping one; a scan limit of 0 is refused.
pub async fn records_scan_by_id_in_keyset_pages(store: &Store) -> Result<()> {
    let ws = workspace(store)?;
    let memories = ws.memories();
    for id in ["m3", "m1", "m5", "m2", "m4"] {
        memories
            .create(NewMemory {
                id: Some(id.into()),
                created_at: Some(T0),
                ..NewMemory::new("u1", format!("memory {id}"))
            })
            .await?;
    }
    let folders = ws.folders();
    for (user, id) in [("u2", "f2"), ("u1", "f1"), ("u1", "f3")] {
        folders
            .create(NewFolder {
                id: Some(id.into()),
                ..NewFolder::new(user, id)
            })
            .await?;
    }
    let records = memories.records();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = records.scan(after.as_deref(), 2).await?;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.id.clone());
        seen.extend(page.into_iter().map(|m| m.id));
    }
    assert_eq!(seen, vec!["m1", "m2", "m3", "m4", "m5"]);
    let all: Vec<String> = folders
        .records()
        .scan(None, 10)
        .await?
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(all, vec!["f1", "f2", "f3"]);
    crate::assert_kind!(records.scan(None, 0).await, InvalidInput);
    Ok(())
}
