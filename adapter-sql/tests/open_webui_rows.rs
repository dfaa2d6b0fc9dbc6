//! Rows in Open WebUI's exact storage form, inserted with raw SQL the way Open WebUI 0.12.4
//! writes them (JSON `null`s, legacy millisecond timestamps, tags in `chat.meta`, a legacy flat
//! `messages` list, messages only in the blob), read back as the right domain values; and rows
//! chatstore writes, inspected in the form Open WebUI reads. Each test runs on SQLite and, when
//! `CHATSTORE_TEST_POSTGRES_URL` is set, on PostgreSQL.

mod support;

use std::collections::BTreeSet;

use chatstore_core::files::sha256_hex;
use chatstore_core::{ChatQuery, ErrorKind, NewChat, NewFile, NewMessage, NewUser, tag_id};
use serde_json::{Value, json};
use support::{Db, abandoned, open_webui_databases};

const USERS: &str = r#"
INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, updated_at,
    created_at, oauth, info, settings, scim)
VALUES ('u1', 'Ada', 'Ada@Example.com', 'admin', '/user.png', 1700000300, 1700000200,
    1700000100, 'null', 'null', 'null', 'null');
INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, updated_at,
    created_at, info, settings)
VALUES ('u2', 'Bob', 'bob@example.com', 'user', '/user.png', 5, 5, 5,
    '{"location":"Paris"}', '{"ui":{"theme":"dark"}}');
INSERT INTO auth (id, email, password, active) VALUES ('u1', 'Ada@Example.com', '$2b$12$x', TRUE);
"#;

/// A chat whose blob and rows Open WebUI wrote: tags in meta, a millisecond timestamp on the
/// first message (blob and row), JSON `null`s in the row's optional columns.
const CHAT_WITH_ROWS: &str = r#"
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, share_id, archived, pinned,
    meta, folder_id, tasks, last_read_at, current_message_id)
VALUES ('c1', 'u1', 'Trip to Zürich',
    '{"title":"Trip to Zürich","models":["llama3"],"history":{"messages":{"m1":{"id":"m1","parentId":null,"childrenIds":["m2"],"role":"user","content":"hi é","timestamp":1700000000123,"models":["llama3"]},"m2":{"id":"m2","parentId":"m1","childrenIds":[],"role":"assistant","content":[{"type":"text","text":"hello"}],"model":"llama3","done":true,"timestamp":1700000001,"usage":{"input_tokens":3}}},"currentId":"m2"},"timestamp":1700000000123}',
    1700000000, 1700000500, NULL, FALSE, FALSE, '{"tags":["travel","ideas"]}', NULL, 'null',
    1700000500, 'm2');
INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, output, model_id,
    files, sources, embeds, done, status_history, error, usage, created_at, updated_at,
    context_summary, meta)
VALUES
    ('c1-m1', 'c1', 'u1', 'user', NULL, '"hi é"', 'null', NULL, 'null', 'null', 'null', TRUE,
     'null', 'null', 'null', 1700000000123, 1700000000, NULL, 'null'),
    ('c1-m2', 'c1', 'u1', 'assistant', 'm1', '[{"type":"text","text":"hello"}]', 'null',
     'llama3', 'null', 'null', 'null', TRUE, 'null', 'null', '{"input_tokens":3}', 1700000001,
     1700000001, NULL, 'null');
INSERT INTO tag (id, name, user_id, meta) VALUES ('travel', 'Travel', 'u1', NULL),
    ('ideas', 'Ideas', 'u1', NULL);
"#;

/// A chat from before `chat_message`: a legacy flat `messages` list, no rows.
const LEGACY_CHAT: &str = r#"
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c2', 'u1', 'Old times',
    '{"title":"Old times","messages":[{"id":"a","role":"user","content":"question","timestamp":1600000000000},{"id":"b","parentId":"a","role":"assistant","content":"answer","timestamp":1600000001}]}',
    1600000000, 1600000001, FALSE, FALSE, '{}');
"#;

/// A chat with its messages only in the blob's history (rows never written).
const BLOB_ONLY_CHAT: &str = r#"
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c3', 'u1', 'Blob only',
    '{"title":"Blob only","history":{"messages":{"x":{"id":"x","parentId":null,"childrenIds":["y"],"role":"user","content":"one","timestamp":1650000000},"y":{"id":"y","parentId":"x","childrenIds":[],"role":"assistant","content":"two","timestamp":1650000005}},"currentId":"y"}}',
    1650000000, 1650000005, FALSE, TRUE, '{"tags":["ideas"]}');
"#;

/// An internal chat (a task chat Open WebUI hides).
const INTERNAL_CHAT: &str = r#"
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c4', 'u1', 'Internal', '{"title":"Internal"}', 1800000000, 1800000000, FALSE, FALSE,
    '{"internal":true,"tags":["travel"]}');
"#;

async fn seeded() -> Vec<Db> {
    let dbs = open_webui_databases().await;
    for db in &dbs {
        db.exec(USERS).await;
        db.exec(CHAT_WITH_ROWS).await;
        db.exec(LEGACY_CHAT).await;
        db.exec(BLOB_ONLY_CHAT).await;
        db.exec(INTERNAL_CHAT).await;
    }
    dbs
}

#[tokio::test]
async fn users_read_json_nulls_as_none() {
    for db in seeded().await {
        let store = db.store().await;
        let ada = store.users.get("u1").await.expect("u1");
        assert_eq!(ada.email, "Ada@Example.com");
        assert_eq!(ada.role, "admin");
        assert_eq!(ada.info, None);
        assert_eq!(ada.settings, None);
        assert_eq!(
            (ada.created_at, ada.updated_at, ada.last_active_at),
            (1700000100, 1700000200, 1700000300)
        );
        let bob = store.users.get("u2").await.expect("u2");
        assert_eq!(bob.info, Some(json!({"location": "Paris"})));
        assert_eq!(bob.settings, Some(json!({"ui": {"theme": "dark"}})));
        assert_eq!(
            store
                .users
                .get_by_email("ada@EXAMPLE.com")
                .await
                .expect("by email")
                .id,
            "u1"
        );
        let twin = store
            .users
            .create(NewUser::new("ADA@example.COM", "Twin"))
            .await;
        assert_eq!(
            twin.map(|_| ()).expect_err("an error").kind(),
            ErrorKind::Conflict
        );
        db.finish().await;
    }
}

/// Session stamps come from Open WebUI's `auth` row: a row without one, and a user without an
/// `auth` row, have none; a user chatstore creates gets one (a uuid4, as Open WebUI's
/// `insert_new_auth`); an unknown user is `NotFound`.
#[tokio::test]
async fn session_stamps_come_from_the_auth_row() {
    for db in seeded().await {
        let store = db.store().await;
        assert_eq!(store.users.session_stamp("u1").await.expect("u1"), None);
        assert_eq!(store.users.session_stamp("u2").await.expect("u2"), None);
        let cy = store
            .users
            .create(NewUser::new("cy@example.com", "Cy"))
            .await
            .expect("create");
        let stamp = store
            .users
            .session_stamp(&cy.id)
            .await
            .expect("stamp")
            .expect("a new user has a stamp");
        assert!(uuid_shaped(&stamp), "{stamp}");
        assert_eq!(
            store
                .users
                .session_stamp("nobody")
                .await
                .map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );
        db.finish().await;
    }
}

fn uuid_shaped(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            matches!(i, 8 | 13 | 18 | 23) == (c == '-') && (c == '-' || c.is_ascii_hexdigit())
        })
}

#[tokio::test]
async fn tags_come_from_chat_meta_and_filter_like_open_webui() {
    for db in seeded().await {
        let store = db.store().await;
        let chat = store.chats.get("c1").await.expect("c1");
        assert_eq!(
            chat.tags,
            BTreeSet::from(["ideas".to_owned(), "travel".to_owned()])
        );
        assert!(chat.meta.is_empty(), "meta without tags: {:?}", chat.meta);
        assert_eq!(chat.title, "Trip to Zürich");
        let ids = |page: chatstore_core::Page<chatstore_core::ChatSummary>| {
            page.items.into_iter().map(|s| s.id).collect::<Vec<_>>()
        };
        let q = ChatQuery::for_user("u1");
        assert_eq!(
            ids(store
                .chats
                .list(&q.clone().with_tags(["Travel"]))
                .await
                .expect("list")),
            ["c1"]
        );
        assert_eq!(
            ids(store
                .chats
                .list(&q.clone().with_tags(["ideas"]))
                .await
                .expect("list")),
            ["c1", "c3"]
        );
        assert_eq!(
            ids(store.chats.list(&q.clone().untagged()).await.expect("list")),
            ["c2"]
        );
        assert_eq!(
            ids(store
                .chats
                .list(&q.clone().with_title("zürich"))
                .await
                .expect("list")),
            ["c1"]
        );
        let usage = store.tags.usage("u1").await.expect("usage");
        let counts: Vec<(String, u64)> =
            usage.iter().map(|u| (u.tag.id.clone(), u.chats)).collect();
        // c4 is internal: it carries `travel` but is not counted.
        assert_eq!(counts, [("ideas".to_owned(), 2), ("travel".to_owned(), 1)]);
        assert_eq!(
            store.tags.get("u1", "Travel").await.expect("tag").name,
            "Travel"
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn internal_chats_are_hidden_from_lists_and_counts() {
    for db in seeded().await {
        let store = db.store().await;
        let page = store
            .chats
            .list(&ChatQuery::for_user("u1").archived(None))
            .await
            .expect("list");
        assert_eq!(page.total, 3);
        assert!(page.items.iter().all(|s| s.id != "c4"));
        assert!(store.chats.get("c4").await.expect("c4").is_internal());
        db.finish().await;
    }
}

#[tokio::test]
async fn message_rows_read_back_with_millisecond_timestamps_normalised() {
    for db in seeded().await {
        let store = db.store().await;
        let messages = store.messages.list("c1").await.expect("list");
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m1", "m2"]);
        let (m1, m2) = (&messages[0], &messages[1]);
        assert_eq!(m1.created_at, 1_700_000_000);
        assert_eq!(m1.content, json!("hi é"));
        assert_eq!(m1.output, None);
        assert_eq!(m1.usage, None);
        assert_eq!(m1.user_id.as_deref(), Some("u1"));
        assert_eq!(m2.parent_id.as_deref(), Some("m1"));
        assert_eq!(m2.content, json!([{"type": "text", "text": "hello"}]));
        assert_eq!(m2.model_id.as_deref(), Some("llama3"));
        assert_eq!(m2.usage, Some(json!({"input_tokens": 3})));
        assert!(m2.done);
        assert_eq!(store.messages.get("c1", "m2").await.expect("m2"), *m2);
        let scanned = store.messages.scan(None, 100).await.expect("scan");
        assert_eq!(
            scanned.iter().map(|m| m.key()).collect::<Vec<_>>(),
            ["c1-m1", "c1-m2"]
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn a_legacy_flat_messages_list_is_read_and_backfilled_on_write() {
    for db in seeded().await {
        let store = db.store().await;
        let messages = store.messages.list("c2").await.expect("list");
        let ids: Vec<&str> = messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(messages[0].created_at, 1_600_000_000);
        assert_eq!(messages[1].parent_id.as_deref(), Some("a"));
        assert_eq!(messages[0].user_id.as_deref(), Some("u1"));
        assert_eq!(
            store.messages.get("c2", "b").await.expect("b").content,
            json!("answer")
        );
        assert_eq!(
            store
                .messages
                .get("c2", "zz")
                .await
                .expect_err("an error")
                .kind(),
            ErrorKind::NotFound
        );

        store
            .messages
            .upsert(
                NewMessage::text("c2", "c", "user", "more")
                    .with_parent("b")
                    .at(1600000100),
            )
            .await
            .expect("upsert into a legacy chat");
        let ids: Vec<String> = store
            .messages
            .list("c2")
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(
            db.int("SELECT count(*) FROM chat_message WHERE chat_id = 'c2'")
                .await,
            3
        );
        let blob = store.chats.get("c2").await.expect("c2").chat;
        assert!(
            blob.get("messages").is_none(),
            "legacy list rewritten: {blob}"
        );
        assert_eq!(blob["history"]["currentId"], "c");
        assert_eq!(
            blob["history"]["messages"]["b"]["childrenIds"],
            json!(["c"])
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn messages_only_in_the_blob_are_read_and_deletable() {
    for db in seeded().await {
        let store = db.store().await;
        let messages = store.messages.list("c3").await.expect("list");
        assert_eq!(
            messages.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert_eq!(
            store.messages.get("c3", "y").await.expect("y").content,
            json!("two")
        );
        store.messages.delete("c3", "y").await.expect("delete y");
        let left: Vec<String> = store
            .messages
            .list("c3")
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(left, ["x"]);
        let blob = store.chats.get("c3").await.expect("c3").chat;
        assert_eq!(blob["history"]["currentId"], "x");
        assert!(blob["history"]["messages"].get("y").is_none());
        db.finish().await;
    }
}

/// Message rows whose chat is gone (Open WebUI has no foreign key there) are what
/// `scan_orphans` finds, by key, and nothing else.
#[tokio::test]
async fn messages_without_their_chat_are_found_by_the_orphan_scan() {
    for db in seeded().await {
        // The 0.12.4 schema declares the foreign key; databases from before it hold such rows.
        let (off, on) = if db.is_postgres() {
            (
                "SET session_replication_role = replica; ",
                "; SET session_replication_role = DEFAULT",
            )
        } else {
            ("PRAGMA foreign_keys = OFF; ", "; PRAGMA foreign_keys = ON")
        };
        db.exec(&format!(
            "{off}INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, output, \
             model_id, files, sources, embeds, done, status_history, error, usage, created_at, \
             updated_at, context_summary, meta) VALUES \
             ('gone-b', 'gone', 'u1', 'user', NULL, '\"x\"', 'null', NULL, 'null', 'null', \
              'null', TRUE, 'null', 'null', 'null', 5, 5, NULL, 'null'), \
             ('c9-a', 'c9', 'u1', 'user', NULL, '\"y\"', 'null', NULL, 'null', 'null', \
              'null', TRUE, 'null', 'null', 'null', 6, 6, NULL, 'null'){on}"
        ))
        .await;
        let store = db.store().await;
        let keys = |ms: Vec<chatstore_core::Message>| -> Vec<String> {
            ms.iter().map(|m| m.key()).collect()
        };
        // Rows, a legacy flat list, a blob only, nothing: listed together as one by one.
        let chats: Vec<String> = ["c3", "c1", "c2", "c4"].map(str::to_owned).to_vec();
        let mut each = Vec::new();
        for id in &chats {
            each.push(store.messages.list(id).await.expect("list"));
        }
        assert_eq!(each.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 0]);
        assert_eq!(
            store.messages.list_many(&chats).await.expect("list_many"),
            each
        );
        let all = store
            .messages
            .scan_orphans(None, 10)
            .await
            .expect("orphans");
        assert_eq!(keys(all), ["c9-a", "gone-b"]);
        let first = store.messages.scan_orphans(None, 1).await.expect("page");
        assert_eq!(keys(first), ["c9-a"]);
        let rest = store
            .messages
            .scan_orphans(Some("c9-a"), 10)
            .await
            .expect("after");
        assert_eq!(keys(rest), ["gone-b"]);
        db.finish().await;
    }
}

#[tokio::test]
async fn deleting_a_chat_removes_rows_and_orphan_tags() {
    for db in seeded().await {
        let store = db.store().await;
        store.chats.delete("c1").await.expect("delete c1");
        assert_eq!(
            db.int("SELECT count(*) FROM chat_message WHERE chat_id = 'c1'")
                .await,
            0
        );
        // `ideas` is still on c3; `travel` is still on the internal c4.
        let tags: Vec<String> = store
            .tags
            .list("u1")
            .await
            .expect("tags")
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(tags, ["ideas", "travel"]);
        store.chats.delete("c4").await.expect("delete c4");
        assert_eq!(
            store
                .tags
                .get("u1", "travel")
                .await
                .expect_err("an error")
                .kind(),
            ErrorKind::NotFound
        );
        db.finish().await;
    }
}

/// JSON text of a column as stored (PostgreSQL's `json` keeps the text it was given).
async fn stored(db: &Db, column: &str, table: &str, id: &str) -> Option<String> {
    db.text(&format!(
        "SELECT CAST({column} AS TEXT) FROM {table} WHERE id = '{id}'"
    ))
    .await
}

#[tokio::test]
async fn chatstore_writes_open_webuis_storage_form() {
    for db in open_webui_databases().await {
        let store = db.store().await;
        let user = store
            .users
            .create(NewUser::new("zoë@example.com", "Zoë").with_id("u9"))
            .await
            .expect("user");
        assert_eq!(
            stored(&db, "oauth", "\"user\"", "u9").await.as_deref(),
            Some("null")
        );
        assert_eq!(
            stored(&db, "info", "\"user\"", "u9").await.as_deref(),
            Some("null")
        );
        assert_eq!(stored(&db, "variables", "\"user\"", "u9").await, None);
        assert_eq!(
            db.text("SELECT email FROM auth WHERE id = 'u9'")
                .await
                .as_deref(),
            Some("zoë@example.com")
        );

        let mut new = NewChat::new(&user.id, "Café ☕")
            .with_id("k1")
            .with_tags(["Deep Work"]);
        new.chat = Some(json!({"models": ["llama3"], "params": {"temperature": 0.5}}));
        store.chats.create(new).await.expect("chat");
        store
            .messages
            .upsert(NewMessage::text("k1", "m1", "user", "Grüße"))
            .await
            .expect("message");

        let blob = stored(&db, "chat", "chat", "k1").await.expect("blob");
        assert!(
            blob.contains("Café ☕") && blob.contains("Grüße"),
            "raw UTF-8: {blob}"
        );
        assert!(
            !blob.contains(": ") && !blob.contains(", "),
            "compact: {blob}"
        );
        let blob: Value = serde_json::from_str(&blob).expect("blob is JSON");
        assert_eq!(blob["title"], "Café ☕");
        assert_eq!(blob["history"]["messages"]["m1"]["content"], "Grüße");
        assert_eq!(
            stored(&db, "meta", "chat", "k1").await.as_deref(),
            Some(r#"{"tags":["deep_work"]}"#)
        );
        assert_eq!(
            stored(&db, "tasks", "chat", "k1").await.as_deref(),
            Some("null")
        );
        assert_eq!(
            db.text("SELECT current_message_id FROM chat WHERE id = 'k1'")
                .await
                .as_deref(),
            Some("m1")
        );
        assert_eq!(
            db.text("SELECT title FROM chat WHERE id = 'k1'")
                .await
                .as_deref(),
            Some("Café ☕")
        );

        assert_eq!(
            db.text("SELECT chat_id FROM chat_message WHERE id = 'k1-m1'")
                .await
                .as_deref(),
            Some("k1")
        );
        assert_eq!(
            stored(&db, "content", "chat_message", "k1-m1")
                .await
                .as_deref(),
            Some(r#""Grüße""#)
        );
        assert_eq!(
            stored(&db, "output", "chat_message", "k1-m1")
                .await
                .as_deref(),
            Some("null")
        );
        assert_eq!(
            db.text("SELECT name FROM tag WHERE id = 'deep_work' AND user_id = 'u9'")
                .await
                .as_deref(),
            Some("Deep Work")
        );
        assert_eq!(
            db.text("SELECT CAST(meta AS TEXT) FROM tag WHERE id = 'deep_work'")
                .await,
            None
        );

        let file = store
            .files
            .put(NewFile {
                content_type: Some("text/plain".into()),
                ..NewFile::new("u9", "notes/today.txt", b"hello".to_vec()).with_id("f1")
            })
            .await
            .expect("file");
        let path = db
            .text("SELECT path FROM \"file\" WHERE id = 'f1'")
            .await
            .expect("path");
        assert!(std::path::Path::new(&path).is_absolute(), "{path}");
        assert!(path.ends_with("f1_notes_today.txt"), "{path}");
        assert_eq!(std::fs::read(&path).expect("bytes on disk"), b"hello");
        let meta: Value =
            serde_json::from_str(&stored(&db, "meta", "\"file\"", "f1").await.expect("meta"))
                .expect("file.meta is JSON");
        assert_eq!(
            meta,
            json!({"name": "notes/today.txt", "content_type": "text/plain", "size": 5,
                   "file_hash": sha256_hex(b"hello")})
        );
        assert_eq!(file.sha256, sha256_hex(b"hello"));
        assert_eq!(
            stored(&db, "data", "\"file\"", "f1").await.as_deref(),
            Some("{}")
        );
        assert_eq!(
            db.text("SELECT filename FROM \"file\" WHERE id = 'f1'")
                .await
                .as_deref(),
            Some("notes/today.txt")
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn open_webui_file_rows_map_to_file_meta_and_bytes_are_verified() {
    for db in open_webui_databases().await {
        let uploads = db.folder.join("owui-uploads");
        std::fs::create_dir_all(&uploads).expect("uploads");
        let path = uploads.join("f7_report.pdf");
        std::fs::write(&path, b"%PDF-1.7 ...").expect("write upload");
        let sha = sha256_hex(b"%PDF-1.7 ...");
        db.exec(&format!(
            r#"INSERT INTO "file" (id, user_id, hash, filename, path, data, meta, created_at, updated_at)
               VALUES ('f7', 'u1', 'texthash', 'report.pdf', '{}',
               '{{"status":"completed","content":"extracted"}}',
               '{{"name":"report.pdf","content_type":"application/pdf","size":12,"file_hash":"{sha}","data":{{"knowledge_id":"kb1"}},"collection_name":"file-f7"}}',
               1700000000, 1700000050)"#,
            path.display()
        ))
        .await;
        let store = db.store().await;
        let meta = store.files.get("f7").await.expect("f7");
        assert_eq!(meta.filename, "report.pdf");
        assert_eq!(meta.content_type.as_deref(), Some("application/pdf"));
        assert_eq!(meta.size, 12);
        assert_eq!(meta.sha256, sha);
        assert_eq!(meta.hash.as_deref(), Some("texthash"));
        assert_eq!(
            Value::Object(meta.data.clone()),
            json!({"status": "completed", "content": "extracted"})
        );
        assert_eq!(
            Value::Object(meta.meta.clone()),
            json!({"data": {"knowledge_id": "kb1"}, "collection_name": "file-f7"})
        );
        assert_eq!(
            store.files.read("f7").await.expect("bytes"),
            b"%PDF-1.7 ..."
        );

        std::fs::write(&path, b"tampered").expect("tamper");
        assert_eq!(
            store.files.read("f7").await.expect_err("an error").kind(),
            ErrorKind::Backend
        );
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(
            store.files.read("f7").await.expect_err("an error").kind(),
            ErrorKind::Backend
        );
        store
            .files
            .delete("f7")
            .await
            .expect("delete with bytes already gone");
        db.finish().await;
    }
}

#[tokio::test]
async fn deleting_a_file_removes_its_bytes() {
    for db in open_webui_databases().await {
        let store = db.store().await;
        store
            .files
            .put(NewFile::new("u1", "a.txt", b"abc".to_vec()).with_id("fa"))
            .await
            .expect("put");
        let path = db
            .text("SELECT path FROM \"file\" WHERE id = 'fa'")
            .await
            .expect("path");
        assert!(std::path::Path::new(&path).exists());
        store.files.delete("fa").await.expect("delete");
        assert!(!std::path::Path::new(&path).exists());
        db.finish().await;
    }
}

#[tokio::test]
async fn a_failed_file_put_leaves_no_bytes_behind() {
    for db in open_webui_databases().await {
        let store = db.store().await;
        store
            .files
            .put(NewFile::new("u1", "a.txt", b"first".to_vec()).with_id("dup"))
            .await
            .expect("put");
        let again = store
            .files
            .put_many(vec![
                NewFile::new("u1", "b.txt", b"second".to_vec()).with_id("new1"),
                NewFile::new("u1", "a.txt", b"clobber".to_vec()).with_id("dup"),
            ])
            .await;
        assert_eq!(again.expect_err("an error").kind(), ErrorKind::Conflict);
        assert_eq!(
            store.files.read("dup").await.expect("first bytes kept"),
            b"first"
        );
        let files: Vec<String> = std::fs::read_dir(db.folder.join("uploads"))
            .expect("uploads")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["dup_a.txt"]);
        db.finish().await;
    }
}

#[tokio::test]
async fn tag_ids_follow_open_webui_in_rows() {
    for db in open_webui_databases().await {
        let store = db.store().await;
        let tag = store.tags.ensure("u1", "Été Plans").await.expect("ensure");
        assert_eq!(tag.id, tag_id("Été Plans"));
        assert_eq!(
            db.text("SELECT name FROM tag WHERE id = 'été_plans'")
                .await
                .as_deref(),
            Some("Été Plans")
        );
        db.finish().await;
    }
}

#[tokio::test]
async fn failed_streamed_uploads_leave_no_row_and_no_partial_file() {
    use chatstore_core::transfer::stream_bytes;
    use futures::StreamExt;
    for db in open_webui_databases().await {
        let store = db.store().await;
        store
            .files
            .put(NewFile::new("u1", "a.txt", b"first".to_vec()).with_id("dup"))
            .await
            .expect("put");
        let bytes = vec![7u8; 300_000];
        let pending = || NewFile::new("u1", "b.txt", Vec::new()).with_id("new1");
        let cut_off = stream_bytes(bytes.clone()).chain(futures::stream::once(async {
            Err(std::io::Error::other("client went away"))
        }));
        let cut = store
            .files
            .put_stream(pending(), Box::pin(cut_off), None)
            .await;
        assert!(cut.is_err(), "a cut-off upload fails");
        let wrong = "0".repeat(64);
        let mismatch = store
            .files
            .put_stream(pending(), stream_bytes(bytes.clone()), Some(&wrong))
            .await;
        assert_eq!(
            mismatch.expect_err("refused").kind(),
            ErrorKind::InvalidInput
        );
        let taken = NewFile::new("u1", "a.txt", Vec::new()).with_id("dup");
        let conflict = store
            .files
            .put_stream(taken, stream_bytes(bytes.clone()), None)
            .await;
        assert_eq!(conflict.expect_err("taken").kind(), ErrorKind::Conflict);
        let stalled = stream_bytes(bytes.clone()).chain(futures::stream::pending());
        let dropped = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            store.files.put_stream(pending(), Box::pin(stalled), None),
        )
        .await;
        assert!(dropped.is_err(), "a stalled upload never completes");
        assert_eq!(db.int("SELECT count(*) FROM file").await, 1);
        let files: Vec<String> = std::fs::read_dir(db.folder.join("uploads"))
            .expect("uploads")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["dup_a.txt"], "no partial or orphan file is left");
        assert_eq!(store.files.read("dup").await.expect("kept"), b"first");
        db.finish().await;
    }
}

/// Puts and deletes whose caller goes away part way (a request cancelled, a timeout) leave
/// neither a temporary file, nor bytes without a row, nor a row without its bytes, wherever
/// they were stopped: the blocking trips that create, write, rename and sync a file hand their
/// guards back, so a result nobody waits for removes its file; a put gives up its guards
/// before its commit is sent; a delete commits and removes the bytes on a task of its own.
#[tokio::test]
async fn file_writes_dropped_part_way_leave_rows_and_bytes_in_step() {
    for db in open_webui_databases().await {
        let store = db.store().await;
        let uploads = db.folder.join("uploads");
        let listing = || -> BTreeSet<String> {
            std::fs::read_dir(&uploads)
                .map(|dir| {
                    dir.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        let rows = || async {
            store
                .files
                .list(&chatstore_core::FileQuery {
                    user_id: Some("u1".into()),
                    page: chatstore_core::PageRequest::default(),
                })
                .await
                .expect("list")
                .items
                .into_iter()
                .map(|m| format!("{}_c.txt", m.id))
                .collect::<BTreeSet<String>>()
        };
        // Every trip a dropped call started ends by itself (its result, a guard, dropped):
        // first waits for every transaction a dropped call left writing `file` to end (a
        // delete's commit runs on a task of its own and may not have run yet, while its
        // transaction holds the write lock or the rows), then up to 10 s for the folder to
        // settle on the recorded files; the assertions below then say what is left if it
        // never does.
        let settled = || async {
            db.exec(if db.is_postgres() {
                "BEGIN; SET LOCAL lock_timeout = '20s'; LOCK TABLE \"file\" IN SHARE MODE; \
                 ROLLBACK;"
            } else {
                "BEGIN IMMEDIATE; ROLLBACK;"
            })
            .await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let files = listing();
                let done = !files.iter().any(|f| f.ends_with(".part")) && files == rows().await;
                if done || std::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };

        let mut stored = BTreeSet::new();
        for polls in 0..40usize {
            let id = format!("cut{polls}");
            let file = NewFile::new("u1", "c.txt", vec![b'c'; 64 * 1024]).with_id(&id);
            if abandoned(store.files.put(file), polls / 2).await {
                stored.insert(format!("{id}_c.txt"));
            }
        }
        settled().await;
        let kept = rows().await;
        assert!(stored.is_subset(&kept), "every completed put has its row");
        assert_eq!(
            listing(),
            kept,
            "after dropped puts the folder holds the recorded files' bytes only"
        );

        let mut deleted = BTreeSet::new();
        for (polls, name) in kept.iter().enumerate() {
            let id = name.trim_end_matches("_c.txt");
            if abandoned(store.files.delete(id), polls % 12).await {
                deleted.insert(name.clone());
            }
        }
        settled().await;
        let left = rows().await;
        assert!(
            left.is_disjoint(&deleted),
            "every completed delete took its row"
        );
        assert_eq!(
            listing(),
            left,
            "after dropped deletes the folder holds the remaining files' bytes only"
        );
        for name in &left {
            let id = name.trim_end_matches("_c.txt");
            assert_eq!(store.files.read(id).await.expect("bytes").len(), 64 * 1024);
        }
        db.finish().await;
    }
}

/// A partial upload left by a process that died part way is removed once it is old; a fresh
/// one (an upload in progress, maybe on another replica) and every other file stay.
#[tokio::test]
async fn partial_uploads_left_by_a_dead_process_are_swept() {
    for db in open_webui_databases().await {
        let sql = db.sql_store().await;
        let dir = sql.upload_dir().to_owned();
        std::fs::create_dir_all(&dir).expect("upload folder");
        let stale = dir.join(format!(".{}.part", uuid::Uuid::new_v4()));
        let live = dir.join(format!(".{}.part", uuid::Uuid::new_v4()));
        let other = dir.join(".notes.part");
        let kept = dir.join("f1_report.pdf");
        for path in [&stale, &live, &other, &kept] {
            std::fs::write(path, b"bytes").expect("write");
        }
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for path in [&stale, &other, &kept] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(two_hours_ago))
                .expect("age the file");
        }
        // Opening the store started the same sweep in the background; either may remove it.
        let removed = sql
            .sweep_partial_uploads(chatstore_sql::PARTIAL_UPLOAD_MAX_AGE)
            .await
            .expect("sweep");
        assert!(
            removed <= 1,
            "only the stale partial upload goes: {removed}"
        );
        assert!(!stale.exists(), "the stale partial upload is gone");
        assert!(live.exists(), "an upload in progress stays");
        assert!(other.exists() && kept.exists(), "other files stay");
        db.finish().await;
    }
}

/// Numbers that are not integers in integer columns (Open WebUI stores a message's
/// `timestamp` as the client sent it): PostgreSQL's `bigint` rounds them as it stores them,
/// SQLite keeps a REAL or a TEXT as it was given. Both read back as PostgreSQL stored them,
/// so reading, listing and scanning such a chat works on both.
#[tokio::test]
async fn decimal_timestamps_read_as_postgres_stores_them() {
    const DECIMALS: &str = r#"
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c9', 'u1', 'Decimal', '{"title":"Decimal","history":{"messages":{"m1":{"id":"m1","role":"user","content":"hi","timestamp":1700000000.5}},"currentId":"m1"}}',
    1700000000.5, '1700000002', FALSE, FALSE, '{}');
INSERT INTO chat_message (id, chat_id, user_id, role, content, done, created_at, updated_at)
VALUES ('c9-m1', 'c9', 'u1', 'user', '"hi"', TRUE, 1700000000.5, ' 1700000003 ');
"#;
    for db in open_webui_databases().await {
        db.exec(USERS).await;
        db.exec(DECIMALS).await;
        let store = db.store().await;
        let chat = store.chats.get("c9").await.expect("chat reads");
        assert_eq!((chat.created_at, chat.updated_at), (1700000001, 1700000002));
        let listed = store.messages.list("c9").await.expect("messages list");
        assert_eq!(
            listed
                .iter()
                .map(|m| (m.created_at, m.updated_at))
                .collect::<Vec<_>>(),
            [(1700000001, 1700000003)]
        );
        let scanned = store.messages.scan(None, 10).await.expect("messages scan");
        assert_eq!(scanned, listed);
        db.finish().await;
    }
}
