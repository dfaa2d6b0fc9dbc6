//! SQLite's `chatstore_chat_tag` (which chats carry which tag, kept by triggers on `chat`):
//! in step with every write to `chat`, chatstore's and Open WebUI's alike, including writes no
//! Open WebUI would make; never failing a write; and, when a tool rebuilds `chat` (and so drops
//! the triggers), not trusted by the orphan-tag check until the next open has rebuilt it.

mod support;

use std::collections::BTreeSet;

use chatstore_core::{NewChat, NewUser};
use serde_json::Value;
use sqlx::{Connection, Row as _, SqliteConnection, SqlitePool};
use support::{Db, Raw};

fn raw(db: &Db) -> &SqlitePool {
    match &db.raw {
        Raw::Sqlite(pool) => pool,
        Raw::Postgres(_) => unreachable!("SQLite only"),
    }
}

type Links = BTreeSet<(String, String, String)>;

/// The rows the link table holds.
async fn links(db: &Db) -> Links {
    sqlx::query("SELECT chat_id, tag_id, user_id FROM chatstore_chat_tag")
        .fetch_all(raw(db))
        .await
        .expect("links")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

/// The rows it should hold, read from `chat` in Rust: the string elements of `meta.tags` when
/// it is an array, for chats with an owner.
async fn expected(db: &Db) -> Links {
    let rows = sqlx::query("SELECT id, user_id, meta FROM chat")
        .fetch_all(raw(db))
        .await
        .expect("chats");
    let mut out = Links::new();
    for row in rows {
        let (id, user, meta): (String, Option<String>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let (Some(user), Some(meta)) = (user, meta) else {
            continue;
        };
        let tags = serde_json::from_str::<Value>(&meta)
            .ok()
            .and_then(|m| m.get("tags").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        for tag in tags.iter().filter_map(Value::as_str) {
            out.insert((id.clone(), tag.to_owned(), user.clone()));
        }
    }
    out
}

async fn assert_in_step(db: &Db, after: &str) {
    assert_eq!(links(db).await, expected(db).await, "after {after}");
}

async fn triggers(db: &Db) -> i64 {
    db.int(
        "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'chat' \
         AND name LIKE 'chatstore_chat_tag_%'",
    )
    .await
}

async fn tag_ids(store: &chatstore_core::Store, user: &str) -> Vec<String> {
    store
        .tags
        .list(user)
        .await
        .expect("tags")
        .into_iter()
        .map(|t| t.id)
        .collect()
}

#[tokio::test]
async fn the_links_follow_every_write_to_chat_whoever_makes_it() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    assert_eq!(triggers(&db).await, 3);
    let user = store
        .users
        .create(NewUser::new("l@example.com", "L"))
        .await
        .expect("user");
    let u = user.id.as_str();
    let c1 = store
        .chats
        .create(NewChat::new(u, "one").with_tags(["a", "b"]))
        .await
        .expect("chat");
    let c2 = store
        .chats
        .create(NewChat::new(u, "two").with_tags(["a"]))
        .await
        .expect("chat");
    assert_in_step(&db, "chatstore's creates").await;
    assert_eq!(links(&db).await.len(), 3);

    // Writes as Open WebUI, or any tool, makes them, straight to the table; some with `meta`
    // no chatstore write would hold. None of them may fail. (`meta` that is not JSON at all
    // cannot be written once chatstore's list index is there, whose condition reads it; the
    // last test has such a chat from before.)
    // `INSERT` of chat `id` owned by `owner` (SQL: a quoted id or NULL) with `meta`.
    let insert = |id: &str, owner: &str, meta: &str| {
        format!(
            "INSERT INTO chat (id, user_id, title, chat, meta, created_at, updated_at) VALUES \
             ('{id}', {owner}, 't', '{{}}', '{meta}', 1, 1)"
        )
    };
    let owner = format!("'{u}'");
    let writes = [
        insert("r1", &owner, r#"{"tags": ["a", "a", 7, null, "z"]}"#),
        insert("r2", &owner, r#"{"tags": ["gone"]}"#),
        insert("r6", &owner, r#"{"tags": "a"}"#),
        insert("r3", &owner, r#""just text""#),
        insert("r4", &owner, r#"["a"]"#),
        insert("r5", "NULL", r#"{"tags": ["a"]}"#),
        "UPDATE chat SET meta = '{\"tags\": [\"b\", \"c\"]}' WHERE id = 'r1'".to_owned(),
        "UPDATE chat SET user_id = 'someone-else' WHERE id = 'r1'".to_owned(),
        "UPDATE chat SET id = 'r1-renamed' WHERE id = 'r1'".to_owned(),
        "UPDATE chat SET user_id = 'owner-again' WHERE id = 'r5'".to_owned(),
        "UPDATE chat SET meta = '{\"tags\": [\"fixed\"]}' WHERE id = 'r3'".to_owned(),
        "UPDATE chat SET meta = '{\"tags\": {\"a\": \"b\"}}' WHERE id = 'r3'".to_owned(),
        format!(
            "INSERT OR REPLACE INTO chat (id, user_id, title, chat, meta, created_at, \
             updated_at) VALUES ('r2', '{u}', 't', '{{}}', '{{\"tags\": [\"q\"]}}', 2, 2)"
        ),
        format!(
            "INSERT INTO chat (id, user_id, title, chat, meta, created_at, updated_at) VALUES \
             ('r4', '{u}', 't', '{{}}', '{{\"tags\": [\"up\"]}}', 3, 3) \
             ON CONFLICT (id) DO UPDATE SET meta = excluded.meta"
        ),
        "UPDATE chat SET title = 'retitled', meta = meta".to_owned(),
        "DELETE FROM chat WHERE id = 'r3'".to_owned(),
    ];
    for write in &writes {
        db.exec(write).await;
        assert_in_step(&db, write).await;
    }

    // chatstore's own writes.
    store.chats.add_tag(&c1.id, "Late").await.expect("add");
    assert_in_step(&db, "add_tag").await;
    store.chats.remove_tag(&c1.id, "a").await.expect("remove");
    assert_in_step(&db, "remove_tag").await;
    store
        .chats
        .set_tags(&c2.id, &["x".to_owned(), "y".to_owned()])
        .await
        .expect("set");
    assert_in_step(&db, "set_tags").await;
    store.chats.delete(&c1.id).await.expect("delete");
    assert_in_step(&db, "delete").await;
    store.chats.delete_for_user(u).await.expect("delete all");
    assert_in_step(&db, "delete_for_user").await;
    db.finish().await;
}

/// Rebuilds `chat` the way a schema migration on SQLite does (a copy, the old table dropped,
/// the copy renamed), which drops every trigger on it.
async fn rebuild_chat_table(db: &Db) {
    let ddl = db
        .text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'chat'")
        .await
        .expect("chat's DDL");
    let copy = ddl.replacen("CREATE TABLE chat", "CREATE TABLE _rebuild_chat", 1);
    assert_ne!(copy, ddl, "{ddl}");
    let url = format!("{}?mode=rw", db.url);
    let mut conn = SqliteConnection::connect(&url).await.expect("connect");
    let script = format!(
        "PRAGMA foreign_keys = OFF; BEGIN; {copy}; INSERT INTO _rebuild_chat SELECT * FROM chat; \
         DROP TABLE chat; ALTER TABLE _rebuild_chat RENAME TO chat; COMMIT;"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .expect("rebuild chat");
    conn.close().await.expect("close");
}

#[tokio::test]
async fn without_its_triggers_the_orphan_check_reads_the_chats_until_an_open_rebuilds_them() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let user = store
        .users
        .create(NewUser::new("r@example.com", "R"))
        .await
        .expect("user");
    let u = user.id.as_str();
    let c1 = store
        .chats
        .create(NewChat::new(u, "one").with_tags(["y"]))
        .await
        .expect("chat");
    let c2 = store
        .chats
        .create(NewChat::new(u, "two").with_tags(["y"]))
        .await
        .expect("chat");

    rebuild_chat_table(&db).await;
    assert_eq!(triggers(&db).await, 0);
    // With no trigger to see them, chat one takes tag x through chatstore, and chat two takes
    // it behind chatstore's back: the link table knows neither.
    store.chats.add_tag(&c1.id, "x").await.expect("add");
    db.exec(&format!(
        "UPDATE chat SET meta = json_set(meta, '$.tags', json('[\"x\", \"y\"]')) \
         WHERE id = '{}'",
        c2.id
    ))
    .await;
    assert_eq!(links(&db).await.iter().filter(|l| l.1 == "x").count(), 0);
    // Chat one lets x go: chat two still carries it, so the tag stays.
    store.chats.remove_tag(&c1.id, "x").await.expect("untag");
    assert_eq!(tag_ids(&store, u).await, ["x", "y"]);

    // The next open puts the triggers back and rebuilds the rows from the chats.
    let reopened = db.store().await;
    assert_eq!(triggers(&db).await, 3);
    assert_in_step(&db, "the reopen").await;
    reopened.chats.remove_tag(&c2.id, "x").await.expect("untag");
    assert_eq!(tag_ids(&reopened, u).await, ["y"]);
    assert_in_step(&db, "the last untag").await;
    db.finish().await;
}

/// An open that finds the triggers leaves the rows alone; an Open WebUI database with chats
/// gets its rows at the first open.
#[tokio::test]
async fn an_open_builds_the_links_of_chats_already_there_once() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let user = store
        .users
        .create(NewUser::new("o@example.com", "O"))
        .await
        .expect("user");
    store
        .chats
        .create(NewChat::new(&user.id, "one").with_tags(["x", "y"]))
        .await
        .expect("chat");
    // As a database an older chatstore (or Open WebUI alone) left: no triggers, no rows, no
    // list index; and a chat whose `meta` is not JSON, which the rebuild must pass over.
    db.exec(
        "DROP TRIGGER chatstore_chat_tag_insert_v1; DROP TRIGGER chatstore_chat_tag_update_v1; \
         DROP TRIGGER chatstore_chat_tag_delete_v1; DROP TABLE chatstore_chat_tag; \
         DROP INDEX chatstore_chat_list; DROP INDEX chatstore_chat_internal;",
    )
    .await;
    db.exec(&format!(
        "INSERT INTO chat (id, user_id, title, chat, meta, created_at, updated_at) VALUES \
         ('broken', '{}', 't', '{{}}', 'not json', 1, 1)",
        user.id
    ))
    .await;
    drop(db.store().await);
    assert_eq!(triggers(&db).await, 3);
    assert_eq!(links(&db).await.len(), 2);
    assert_in_step(&db, "the first open").await;
    // A row the triggers could not have written survives a later open: it is not rebuilt.
    db.exec("INSERT INTO chatstore_chat_tag VALUES ('marker', 'm', 'nobody')")
        .await;
    drop(db.store().await);
    assert_eq!(links(&db).await.len(), 3);
    db.finish().await;
}
