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

/// A link row of `table` (`chat_file`, `knowledge_file` or `channel_file`) with id `id`, of
/// `owner`, from `parent` (a chat, knowledge base or channel id) to file `file_id`.
fn file_link(table: &'static Table, id: &str, owner: &str, parent: &str, file_id: &str) -> RowOp {
    let mut r = minimal_row(table, "link", owner);
    let parent_column = match table.name {
        "chat_file" => "chat_id",
        "knowledge_file" => "knowledge_id",
        _ => "channel_id",
    };
    r.insert("id".into(), json!(id));
    r.insert(parent_column.into(), json!(parent));
    r.insert("file_id".into(), json!(file_id));
    RowOp::Insert { table, row: r }
}

/// The ids of every row of `table`, sorted.
async fn ids_in(store: &Store, table: &'static Table) -> Result<Vec<String>> {
    Ok(workspace(store)?
        .rows()
        .select(table, &RowQuery::default())
        .await?
        .into_iter()
        .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect())
}

/// A knowledge base `knowledge-{tag}` and a channel `channel-{tag}` of `owner`, for file links.
fn link_parents(tag: &str, owner: &str) -> Vec<RowOp> {
    [&tables::KNOWLEDGE, &tables::CHANNEL]
        .into_iter()
        .map(|table| RowOp::Insert {
            table,
            row: minimal_row(table, tag, owner),
        })
        .collect()
}

/// Deleting a chat deletes its shared snapshots (the share link answers `NotFound`) and its
/// file links, as Open WebUI's `ON DELETE CASCADE` does; another chat's stay.
pub async fn deleting_a_chat_deletes_its_shares_and_file_links(store: &Store) -> Result<()> {
    let ws = workspace(store)?;
    let shared = ws.shared_chats();
    chat(store, "u1", "c1", "Gone", T0).await?;
    chat(store, "u1", "c2", "Kept", T0).await?;
    file(store, "u1", "f1", b"bytes", T0).await?;
    let gone = shared.share("c1", "u1", None).await?;
    let kept = shared.share("c2", "u1", None).await?;
    ws.rows()
        .write(vec![
            file_link(&tables::CHAT_FILE, "cf1", "u1", "c1", "f1"),
            file_link(&tables::CHAT_FILE, "cf2", "u1", "c2", "f1"),
        ])
        .await?;
    store.chats.delete("c1").await?;
    crate::assert_kind!(shared.get(&gone.id).await, NotFound);
    assert_eq!(shared.get(&kept.id).await?.chat_id, "c2");
    assert_eq!(ids_in(store, &tables::SHARED_CHAT).await?, vec![kept.id]);
    assert_eq!(ids_in(store, &tables::CHAT_FILE).await?, vec!["cf2"]);
    store.files.get("f1").await?;
    Ok(())
}

/// Deleting a file deletes its links to chats, knowledge bases and channels, as Open WebUI's
/// `ON DELETE CASCADE` does; the chat, knowledge base and channel, and another file's links,
/// stay.
pub async fn deleting_a_file_deletes_its_links(store: &Store) -> Result<()> {
    let ws = workspace(store)?;
    chat(store, "u1", "c1", "Chat", T0).await?;
    file(store, "u1", "f1", b"one", T0).await?;
    file(store, "u1", "f2", b"two", T0).await?;
    let mut ops = link_parents("k", "u1");
    for f in ["f1", "f2"] {
        ops.push(file_link(
            &tables::CHAT_FILE,
            &format!("cf-{f}"),
            "u1",
            "c1",
            f,
        ));
        ops.push(file_link(
            &tables::KNOWLEDGE_FILE,
            &format!("kf-{f}"),
            "u1",
            "knowledge-k",
            f,
        ));
        ops.push(file_link(
            &tables::CHANNEL_FILE,
            &format!("chf-{f}"),
            "u1",
            "channel-k",
            f,
        ));
    }
    ws.rows().write(ops).await?;
    store.files.delete("f1").await?;
    assert_eq!(ids_in(store, &tables::CHAT_FILE).await?, vec!["cf-f2"]);
    assert_eq!(ids_in(store, &tables::KNOWLEDGE_FILE).await?, vec!["kf-f2"]);
    assert_eq!(ids_in(store, &tables::CHANNEL_FILE).await?, vec!["chf-f2"]);
    store.chats.get("c1").await?;
    assert_eq!(
        ids_in(store, &tables::KNOWLEDGE).await?,
        vec!["knowledge-k"]
    );
    assert_eq!(ids_in(store, &tables::CHANNEL).await?, vec!["channel-k"]);
    Ok(())
}

/// Deleting a user deletes the links to the user's chats and files that other users' rows
/// hold (a file posted in another user's channel or added to their knowledge base, a link
/// made in the user's chat), and the user's shares; links among other users' chats and files
/// stay.
pub async fn deleting_a_user_deletes_the_links_of_their_chats_and_files(
    store: &Store,
) -> Result<()> {
    let ws = workspace(store)?;
    user(store, 1).await?;
    user(store, 2).await?;
    chat(store, "user-1", "c1", "Mine", T0).await?;
    chat(store, "user-2", "c2", "Theirs", T0).await?;
    file(store, "user-1", "f1", b"mine", T0).await?;
    file(store, "user-2", "f2", b"theirs", T0).await?;
    let share = ws.shared_chats().share("c1", "user-1", None).await?;
    let mut ops = link_parents("k", "user-2");
    ops.extend([
        file_link(
            &tables::KNOWLEDGE_FILE,
            "kf1",
            "user-2",
            "knowledge-k",
            "f1",
        ),
        file_link(
            &tables::KNOWLEDGE_FILE,
            "kf2",
            "user-2",
            "knowledge-k",
            "f2",
        ),
        file_link(&tables::CHANNEL_FILE, "chf1", "user-1", "channel-k", "f1"),
        file_link(&tables::CHANNEL_FILE, "chf2", "user-2", "channel-k", "f2"),
        file_link(&tables::CHAT_FILE, "cf1", "user-2", "c1", "f2"),
        file_link(&tables::CHAT_FILE, "cf2", "user-2", "c2", "f1"),
        file_link(&tables::CHAT_FILE, "cf3", "user-2", "c2", "f2"),
    ]);
    ws.rows().write(ops).await?;
    store.delete_user("user-1").await?;
    crate::assert_kind!(ws.shared_chats().get(&share.id).await, NotFound);
    assert_eq!(ids_in(store, &tables::KNOWLEDGE_FILE).await?, vec!["kf2"]);
    assert_eq!(ids_in(store, &tables::CHANNEL_FILE).await?, vec!["chf2"]);
    assert_eq!(ids_in(store, &tables::CHAT_FILE).await?, vec!["cf3"]);
    store.chats.get("c2").await?;
    store.files.get("f2").await?;
    Ok(())
}
