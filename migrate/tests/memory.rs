//! The engine and verification between two in-memory stores: every kind of record arrives
//! exactly, a second run over a finished target writes nothing and duplicates nothing, and
//! verification finds a changed field, a missing record and an extra one.

use chatstore_core::rows::{ALL_TABLES, ColumnKind, Cond, Row, RowOp, RowQuery, Table};
use std::sync::atomic::Ordering;

use chatstore_core::vectors::{CollectionItems, SearchHit, VectorFilter};
use chatstore_core::{
    ChatPatch, Error, ModelGroup, NewChat, NewFile, NewMessage, NewUser, Store, Tag, VectorItem,
    VectorRepo, memory,
};
use chatstore_migrate::{MigrateOptions, Migration, Silent, verify};
use serde_json::json;

async fn seeded() -> Store {
    let s = memory::store();
    for i in 0..7 {
        let mut u =
            NewUser::new(format!("u{i}@example.com"), format!("User {i}")).with_id(format!("u{i}"));
        u.created_at = Some(100 + i);
        u.updated_at = Some(200 + i);
        u.last_active_at = Some(300 + i);
        s.users.create(u).await.expect("user");
    }
    s.tags
        .create_many(vec![Tag {
            id: "unused".into(),
            name: "Unused".into(),
            user_id: "u1".into(),
            meta: Some(json!({"color": "red"})),
        }])
        .await
        .expect("tag row");
    s.tags.ensure("u1", "Deep Work").await.expect("tag");
    for i in 0..12 {
        let mut c = NewChat::new(format!("u{}", i % 3), format!("Chat {i}"))
            .with_id(format!("c{i:02}"))
            .with_tags(if i % 2 == 0 {
                vec!["deep_work"]
            } else {
                vec!["Travel"]
            });
        c.created_at = Some(1000 + i);
        c.updated_at = Some(5000 + i);
        c.meta = Some(json!({"k": i}).as_object().cloned().expect("object"));
        s.chats.create(c).await.expect("chat");
        for m in 0..3 {
            let mut msg = NewMessage::text(format!("c{i:02}"), format!("m{m}"), "user", "hi");
            if m > 0 {
                msg.parent_id = Some(format!("m{}", m - 1));
            }
            msg.created_at = Some(2000 + m);
            msg.updated_at = Some(if m == 1 { 9000 } else { 2000 + m });
            s.messages.upsert(msg).await.expect("message");
        }
        s.chats
            .update(
                &format!("c{i:02}"),
                ChatPatch {
                    updated_at: Some(5000 + i),
                    ..ChatPatch::default()
                },
            )
            .await
            .expect("restore updated_at");
    }
    for i in 0..5 {
        s.files
            .put(
                NewFile::new("u0", format!("f{i}.txt"), vec![i as u8; 10 * i])
                    .with_id(format!("f{i}")),
            )
            .await
            .expect("file");
    }
    let items = (0..30)
        .map(|i| VectorItem {
            id: format!("v{i:02}"),
            text: format!("chunk {i}"),
            vector: vec![1.0, i as f32, 0.5],
            metadata: json!({"file_id": "f1"})
                .as_object()
                .cloned()
                .expect("object"),
        })
        .collect();
    s.vectors.insert("kb", items).await.expect("vectors");
    seed_rows(&s, ROWS_PER_TABLE).await;
    s
}

const ROWS_PER_TABLE: usize = 6;

/// Row `i` of `table`: every column filled after its kind (JSON columns alternate between an
/// object and null), the ids in reverse so that a row's parent (`parent_id` and friends point
/// at row `i + 1`) sorts before it.
fn sample_row(table: &Table, i: usize, n: usize) -> Row {
    let id = |i: usize| json!(format!("{}-{:02}", table.name, n - i));
    table
        .columns
        .iter()
        .map(|c| {
            let v = match (c.name, c.kind) {
                ("id", _) => id(i),
                ("parent_id" | "parent_group_id", _) if i + 1 < n => id(i + 1),
                ("parent_id" | "parent_group_id", _) => json!(null),
                (_, ColumnKind::Text) => json!(format!("{}.{} {i}", table.name, c.name)),
                (_, ColumnKind::Int) => json!(1_700_000_000_000_000_000i64 + i as i64),
                (_, ColumnKind::Bool) => json!(i.is_multiple_of(2)),
                (_, ColumnKind::Json | ColumnKind::JsonText)
                    if i.is_multiple_of(2) && c.nullable =>
                {
                    json!(null)
                }
                (_, ColumnKind::Json | ColumnKind::JsonText) => {
                    json!({"n": i, "list": [1, "two", null], "nested": {"ok": true}})
                }
            };
            (c.name.to_owned(), v)
        })
        .collect()
}

async fn seed_rows(s: &Store, n: usize) {
    let rows = s.rows().expect("rows");
    for table in ALL_TABLES.iter().copied() {
        let ops = (0..n)
            .map(|i| RowOp::Insert {
                table,
                row: sample_row(table, i, n),
            })
            .collect();
        rows.write(ops).await.expect("rows of every table");
    }
}

fn options(dir: &tempfile::TempDir) -> MigrateOptions {
    let mut o = MigrateOptions::new(
        "memory:a",
        "memory:b",
        dir.path().join("state.json"),
        dir.path().join("dead.jsonl"),
    );
    o.batch_size = 4;
    o
}

/// A run that starts over (no state file) moves an earlier run's dead letters aside, kept,
/// and counts only its own: the letters of a run whose records were fixed since made every
/// later run end with "records were set aside".
#[tokio::test]
async fn a_new_run_keeps_an_earlier_runs_dead_letters_apart() {
    let source = seeded().await;
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let earlier = r#"{"group":"users","entity":"user","id":"u9","record":{},"error":"refused","kind":"invalid_input"}"#;
    std::fs::write(dir.path().join("dead.jsonl"), format!("{earlier}\n")).expect("letters");
    let summary = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    let kept: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".earlier"))
        .collect();
    assert_eq!(kept.len(), 1, "the earlier letters are kept");
    let text = std::fs::read_to_string(kept[0].path()).expect("read");
    assert!(text.contains("\"u9\""), "{text}");
}

#[tokio::test]
async fn everything_arrives_and_a_second_run_writes_nothing() {
    let source = seeded().await;
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    let report = verify(&source, &target, &ModelGroup::ALL, &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "{:#?}", report.differing_ids());
    let users = &summary.groups[0];
    assert_eq!((users.counts.read, users.counts.written), (7, 7));

    std::fs::remove_file(dir.path().join("state.json")).expect("forget the state");
    let again = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate again");
    // Every record the target holds is found the same as the source's, none set aside.
    assert_eq!(again.dead_letters, 0, "{again:?}");
    for g in &again.groups {
        // Vectors and rows are upserted: writing them again is how a resumed batch completes.
        if g.group != ModelGroup::Vectors && g.group != ModelGroup::Workspace {
            assert_eq!(g.counts.written, 0, "{g:?}");
        }
    }
    let rows = target.rows().expect("rows");
    for table in ALL_TABLES.iter().copied() {
        assert_eq!(
            rows.count(table, &[]).await.expect("count"),
            ROWS_PER_TABLE as u64,
            "{}",
            table.name
        );
    }
    let workspace = again
        .groups
        .iter()
        .find(|g| g.group == ModelGroup::Workspace)
        .expect("workspace group");
    assert_eq!(
        workspace.counts.read,
        (ROWS_PER_TABLE * ALL_TABLES.len()) as u64
    );
    assert_eq!(target.users.scan(None, 100).await.expect("scan").len(), 7);
    assert_eq!(
        target.messages.scan(None, 100).await.expect("scan").len(),
        36
    );
    let report = verify(&source, &target, &ModelGroup::ALL, &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "{:#?}", report.differing_ids());
}

/// A message entry's keys the model does not carry (Open WebUI's `annotation` with a user's
/// rating, `modelName`) arrive with the chat: the run rebuilds each chat's history from its
/// listed messages, and that rebuild keeps them.
#[tokio::test]
async fn a_messages_own_keys_in_the_chat_blob_arrive() {
    let source = memory::store();
    let rating = json!({"rating": 1, "tags": ["helpful"], "comment": "thanks"});
    let mut c = NewChat::new("u1", "Rated").with_id("c1");
    c.chat = Some(json!({"history": {"currentId": "a", "messages": {
        "q": {"id": "q", "parentId": null, "role": "user", "content": "hi", "timestamp": 1000},
        "a": {"id": "a", "parentId": "q", "role": "assistant", "content": "hello",
              "timestamp": 1001, "annotation": rating, "modelName": "Llama 3"}
    }}}));
    source.chats.create(c).await.expect("chat");
    let mut edit = NewMessage::text("c1", "a", "assistant", "hello again");
    edit.parent_id = Some("q".into());
    edit.updated_at = Some(1002);
    source.messages.upsert(edit).await.expect("edit");
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    let blob = target.chats.get("c1").await.expect("chat").chat;
    let entry = &blob["history"]["messages"]["a"];
    assert_eq!(entry["content"], "hello again");
    assert_eq!(entry["annotation"], rating, "{blob}");
    assert_eq!(entry["modelName"], "Llama 3");
    assert_eq!(blob, source.chats.get("c1").await.expect("chat").chat);
}

#[tokio::test]
async fn verification_names_what_differs() {
    let source = seeded().await;
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    target
        .chats
        .update(
            "c03",
            ChatPatch {
                title: Some("Changed".into()),
                updated_at: Some(5003),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("change");
    target.files.delete("f2").await.expect("delete");
    target
        .users
        .create(NewUser::new("extra@example.com", "Extra").with_id("zz"))
        .await
        .expect("extra");
    let note = chatstore_core::rows::table("note").expect("note table");
    let prompt = chatstore_core::rows::table("prompt").expect("prompt table");
    let rows = target.rows().expect("rows");
    rows.write(vec![
        RowOp::Update {
            table: note,
            filter: vec![Cond::Eq("id", json!("note-03"))],
            set: chatstore_core::rows::row([("title", json!("Changed"))]),
        },
        RowOp::Delete {
            table: prompt,
            filter: vec![Cond::Eq("id", json!("prompt-01"))],
        },
    ])
    .await
    .expect("change rows");
    let report = verify(&source, &target, &ModelGroup::ALL, &Silent)
        .await
        .expect("verify");
    assert!(!report.equal);
    let ids = report.differing_ids();
    assert!(
        ids.iter()
            .any(|d| d.contains("c03") && d.contains("/chat/title")),
        "{ids:?}"
    );
    assert!(
        ids.iter().any(|d| d.contains("f2 (only in the source)")),
        "{ids:?}"
    );
    assert!(
        ids.iter().any(|d| d.contains("zz (only in the target)")),
        "{ids:?}"
    );
    assert!(
        ids.iter()
            .any(|d| d.contains("note:note-03") && d.contains("/title")),
        "{ids:?}"
    );
    assert!(
        ids.iter()
            .any(|d| d.contains("prompt:prompt-01 (only in the source)")),
        "{ids:?}"
    );
    assert_eq!(ids.len(), 5, "{ids:?}");
}

#[tokio::test]
async fn a_state_for_another_target_is_refused() {
    let source = seeded().await;
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    let mut other = options(&dir);
    other.target = "memory:c".into();
    let err = Migration::new(&source, &target, other, &Silent)
        .run()
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("another migration"), "{err}");
}

#[tokio::test]
async fn large_files_are_streamed_between_small_batched_ones_and_resume_cleanly() {
    let source = memory::store();
    let big: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    for (id, bytes) in [
        ("a", b"small".to_vec()),
        ("b", big.clone()),
        ("c", b"tiny".to_vec()),
    ] {
        source
            .files
            .put(NewFile::new("u0", format!("{id}.bin"), bytes).with_id(id))
            .await
            .expect("file");
    }
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    assert_eq!(target.files.read("b").await.expect("big file"), big);
    assert_eq!(target.files.read("c").await.expect("small file"), b"tiny");
    std::fs::remove_file(dir.path().join("state.json")).expect("forget the state");
    let again = Migration::new(&source, &target, options(&dir), &Silent)
        .run()
        .await
        .expect("migrate again");
    let files = again
        .groups
        .iter()
        .find(|g| g.group == ModelGroup::Files)
        .expect("files group");
    assert_eq!(
        (files.counts.written, files.counts.skipped),
        (0, 3),
        "{files:?}"
    );
}

/// A small file the target already holds under its id with other bytes is set aside, not
/// counted as copied: the same check a streamed large file gets.
/// A source and a target that both hold a file `a`, with other bytes.
async fn stores_holding_file_a_with_other_bytes() -> (Store, Store) {
    let (source, target) = (memory::store(), memory::store());
    for (store, bytes) in [
        (&source, b"the source's".to_vec()),
        (&target, b"other".to_vec()),
    ] {
        store
            .files
            .put(NewFile::new("u0", "a.bin", bytes).with_id("a"))
            .await
            .expect("file");
    }
    (source, target)
}

#[tokio::test]
async fn a_small_file_the_target_holds_with_other_bytes_is_set_aside() {
    let (source, target) = stores_holding_file_a_with_other_bytes().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Files];
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let letter: serde_json::Value = serde_json::from_str(dead.trim()).expect("one JSON line");
    assert_eq!(
        (letter["entity"].as_str(), letter["id"].as_str()),
        (Some("file"), Some("a"))
    );
    assert_eq!(target.files.read("a").await.expect("a"), b"other");
}

/// A record the target holds under the same id with other content is set aside with the
/// fields that differ, not counted as "already there": a user under another email, a chat of
/// another user. Before, any record under the id counted as skipped, and the source's record
/// was silently not copied.
#[tokio::test]
async fn a_record_the_target_holds_with_other_content_is_set_aside() {
    let source = seeded().await;
    let target = memory::store();
    let mut other = NewUser::new("someone-else@example.com", "User 1").with_id("u1");
    (other.created_at, other.updated_at, other.last_active_at) = (Some(101), Some(201), Some(301));
    target.users.create(other).await.expect("another u1");
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, counts) = migrate_groups(&source, &target, &dir, &[ModelGroup::Users]).await;
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    assert_eq!((counts.written, counts.skipped), (6, 0), "{counts:?}");
    let dead = letters(&dir);
    assert_eq!(dead[0].0, "u1");
    assert!(dead[0].1.contains("/email"), "{dead:?}");
    assert_eq!(
        target.users.get("u1").await.expect("u1").email,
        "someone-else@example.com"
    );

    // A chat of another user under a source chat's id, written before the source's.
    let target = memory::store();
    target
        .users
        .create(NewUser::new("nine@example.com", "User 9").with_id("u9"))
        .await
        .expect("u9");
    let mut chat = NewChat::new("u9", "Not chat 0").with_id("c00");
    (chat.created_at, chat.updated_at) = (Some(1), Some(1));
    target.chats.create(chat).await.expect("another c00");
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, _) = migrate_groups(
        &source,
        &target,
        &dir,
        &[ModelGroup::Users, ModelGroup::Chats],
    )
    .await;
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    let dead = letters(&dir);
    assert_eq!(dead[0].0, "c00");
    assert!(dead[0].1.contains("another chat"), "{dead:?}");
    assert_eq!(target.chats.get("c00").await.expect("c00").user_id, "u9");
}

/// A run killed after its batch's letters were synced and before its state was saved writes
/// the batch again on resume: the group still counts the letter (the file holds it already,
/// and the count went up only for a letter the file did not hold, so it stayed short).
#[tokio::test]
async fn a_resumed_batch_still_counts_the_letters_its_first_try_synced() {
    let (source, target) = stores_holding_file_a_with_other_bytes().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Files];
    Migration::new(&source, &target, o.clone(), &Silent)
        .run()
        .await
        .expect("migrate");
    // The state as the kill left it: the group not begun, its letter in the file.
    let path = dir.path().join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("state")).expect("JSON");
    state["progress"]["files"] = json!({"stage": null, "cursor": null, "done": false,
        "counts": {"read": 0, "written": 0, "skipped": 0, "dead_lettered": 0}});
    std::fs::write(&path, state.to_string()).expect("write the state");
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("resume");
    let files = &summary.groups[0];
    assert_eq!(files.counts.dead_lettered, 1, "{summary:?}");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
}

/// A row the target refuses is set aside with its reason and the rest of its batch arrives; a
/// parent that sorts after its child arrives first.
#[tokio::test]
async fn a_refused_row_is_set_aside_and_the_rest_of_its_batch_arrives() {
    let source = memory::store();
    seed_rows(&source, ROWS_PER_TABLE).await;
    let target = memory::store();
    // The target holds another prompt with the command of prompt-03 (`prompt.command` is
    // unique): that row is refused, the others of its batch are not.
    let prompt = chatstore_core::rows::table("prompt").expect("prompt table");
    let mut squatter = sample_row(prompt, 2, ROWS_PER_TABLE);
    squatter.insert("id".into(), json!("zz-squatter"));
    target
        .rows()
        .expect("rows")
        .write(vec![RowOp::Insert {
            table: prompt,
            row: squatter,
        }])
        .await
        .expect("squatter");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Workspace];
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let letter: serde_json::Value = serde_json::from_str(dead.trim()).expect("one JSON line");
    assert_eq!(letter["group"], "workspace");
    assert_eq!(letter["entity"], "prompt");
    assert_eq!(letter["id"], format!("prompt-{:02}", ROWS_PER_TABLE - 2));
    assert_eq!(letter["kind"], "Conflict");
    let rows = target.rows().expect("rows");
    assert_eq!(
        rows.count(prompt, &[]).await.expect("count"),
        ROWS_PER_TABLE as u64,
        "five of six copied, plus the squatter"
    );
    let report = verify(&source, &target, &[ModelGroup::Workspace], &Silent)
        .await
        .expect("verify");
    assert_eq!(
        report.groups[0].differences,
        2,
        "{:?}",
        report.differing_ids()
    );
    let group = chatstore_core::rows::table("group").expect("group table");
    assert_eq!(
        rows.select(group, &RowQuery::default())
            .await
            .expect("groups")
            .len(),
        ROWS_PER_TABLE
    );
}

/// A vector the target refuses is set aside alone: the other collections written in the same
/// combined write (`upsert_many`) arrive, then the refused collection's items are tried one
/// by one.
#[tokio::test]
async fn a_refused_vector_is_set_aside_and_the_other_collections_arrive() {
    let item = |id: &str, vector: Vec<f32>| VectorItem {
        id: id.to_owned(),
        text: format!("text of {id}"),
        vector,
        metadata: serde_json::Map::new(),
    };
    let source = memory::store();
    for f in 0..6 {
        source
            .vectors
            .insert(
                &format!("file-{f}"),
                vec![
                    item(&format!("f{f}-a"), vec![1.0, f as f32]),
                    item(&format!("f{f}-b"), vec![f as f32, 1.0]),
                ],
            )
            .await
            .expect("seed vectors");
    }
    // The target's file-3 holds a 3-dimensional row, which pins the collection's dimension:
    // file-3's two-dimensional items are refused, nothing else.
    let target = memory::store();
    target
        .vectors
        .insert("file-3", vec![item("squatter", vec![1.0, 2.0, 3.0])])
        .await
        .expect("squatter");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Vectors];
    o.batch_size = 8;
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 2, "{summary:?}");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let mut ids: Vec<String> = dead
        .lines()
        .map(|l| {
            let letter: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            assert_eq!(letter["kind"], "InvalidInput");
            letter["id"].as_str().expect("id").to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["file-3/f3-a", "file-3/f3-b"]);
    for f in (0..6).filter(|f| *f != 3) {
        let got = target.vectors.get(&format!("file-{f}")).await.expect("get");
        assert_eq!(got.len(), 2, "file-{f}");
    }
    let squatted = target.vectors.get("file-3").await.expect("get");
    assert_eq!(squatted.len(), 1);
}

/// What a test changes about a vector repository; every hook passes the call through unless
/// a test's type says otherwise ([`Hooked`] applies them).
#[async_trait::async_trait]
trait Hooks: Send + Sync + 'static {
    /// Before a write naming these collections.
    async fn before_write(&self, _collections: &[&str]) -> chatstore_core::Result<()> {
        Ok(())
    }
    /// Before a scan of `collection`.
    async fn before_scan(&self, _collection: &str) -> chatstore_core::Result<()> {
        Ok(())
    }
    /// The items a query, get or scan read.
    fn read(&self, items: Vec<VectorItem>) -> Vec<VectorItem> {
        items
    }
    /// Whether a scan's first page is the whole collection (a later page is empty).
    fn one_page(&self) -> bool {
        false
    }
}

/// A vector repository with a test's [`Hooks`] around `inner`.
struct Hooked<H> {
    inner: std::sync::Arc<dyn VectorRepo>,
    hooks: H,
}

impl<H: Hooks> Hooked<H> {
    fn new(inner: std::sync::Arc<dyn VectorRepo>, hooks: H) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Hooked { inner, hooks })
    }
}

#[async_trait::async_trait]
impl<H: Hooks> VectorRepo for Hooked<H> {
    async fn has_collection(&self, name: &str) -> chatstore_core::Result<bool> {
        self.inner.has_collection(name).await
    }
    async fn delete_collection(&self, name: &str) -> chatstore_core::Result<()> {
        self.inner.delete_collection(name).await
    }
    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> chatstore_core::Result<()> {
        self.hooks.before_write(&[collection]).await?;
        self.inner.insert(collection, items).await
    }
    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> chatstore_core::Result<()> {
        self.hooks.before_write(&[collection]).await?;
        self.inner.upsert(collection, items).await
    }
    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> chatstore_core::Result<()> {
        let names: Vec<&str> = entries.iter().map(|(c, _)| c.as_str()).collect();
        self.hooks.before_write(&names).await?;
        self.inner.upsert_many(entries).await
    }
    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<Vec<SearchHit>>> {
        self.inner.search(collection, vectors, filter, limit).await
    }
    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> chatstore_core::Result<Vec<VectorItem>> {
        Ok(self
            .hooks
            .read(self.inner.query(collection, filter, limit).await?))
    }
    async fn get(&self, collection: &str) -> chatstore_core::Result<Vec<VectorItem>> {
        Ok(self.hooks.read(self.inner.get(collection).await?))
    }
    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> chatstore_core::Result<u64> {
        self.inner.delete(collection, ids, filter).await
    }
    async fn reset(&self) -> chatstore_core::Result<()> {
        self.inner.reset().await
    }
    async fn collections(&self) -> chatstore_core::Result<Vec<String>> {
        self.inner.collections().await
    }
    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<VectorItem>> {
        self.hooks.before_scan(collection).await?;
        if self.hooks.one_page() && after.is_some() {
            return Ok(Vec::new());
        }
        Ok(self
            .hooks
            .read(self.inner.scan(collection, after, limit).await?))
    }
}

/// A source whose ids are unique per collection only (Chroma's own rule, `IdScope::Collection`):
/// the memory store's items, their ids read without the text up to the first `__`.
struct PerCollectionIds;

fn per_collection(items: Vec<VectorItem>) -> Vec<VectorItem> {
    items
        .into_iter()
        .map(|mut i| {
            i.id =
                i.id.split_once("__")
                    .map_or(i.id.clone(), |(_, id)| id.to_owned());
            i
        })
        .collect()
}

impl Hooks for PerCollectionIds {
    fn read(&self, items: Vec<VectorItem>) -> Vec<VectorItem> {
        per_collection(items)
    }
    // One item per collection: the first page is the whole collection.
    fn one_page(&self) -> bool {
        true
    }
}

/// Refused vectors are set aside by collection and id: a source whose ids are unique per
/// collection only (Chroma's own rule) may hold one id in two collections, and an item refused
/// in one does not hide the item refused in the other.
#[tokio::test]
async fn refused_vectors_with_one_id_in_two_collections_are_each_set_aside() {
    let item = |id: &str, vector: Vec<f32>| VectorItem {
        id: id.to_owned(),
        text: format!("text of {id}"),
        vector,
        metadata: serde_json::Map::new(),
    };
    let (memory_source, target) = (memory::store(), memory::store());
    for c in ["file-a", "file-b"] {
        memory_source
            .vectors
            .insert(c, vec![item(&format!("{c}__chunk-0"), vec![1.0, 0.0])])
            .await
            .expect("seed vectors");
        // A 3-dimensional row pins the target collection's dimension: the item is refused.
        target
            .vectors
            .insert(
                c,
                vec![item(&format!("{c}__squatter"), vec![1.0, 2.0, 3.0])],
            )
            .await
            .expect("squatter");
    }
    let mut parts = memory_source.parts();
    parts.vectors = Hooked::new(parts.vectors.clone(), PerCollectionIds);
    let source = Store::new("per-collection", memory_source.capabilities(), parts);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Vectors];
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("migrate");
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
    let mut ids: Vec<String> = dead
        .lines()
        .map(|l| {
            let letter: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            letter["id"].as_str().expect("id").to_owned()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["file-a/chunk-0", "file-b/chunk-0"]);
    assert_eq!(summary.dead_letters, 2, "{summary:?}");
}

/// A source whose ids are unique per collection only, holding `collections` (each a name and
/// its ids), read through [`PerCollectionIds`].
async fn per_collection_source(collections: &[(&str, &[&str])]) -> Store {
    let memory_source = memory::store();
    for (c, ids) in collections {
        let items = ids
            .iter()
            .enumerate()
            .map(|(k, id)| VectorItem {
                id: format!("{c}__{id}"),
                text: format!("{id} as {c} holds it"),
                vector: vec![1.0, k as f32],
                metadata: serde_json::Map::new(),
            })
            .collect();
        memory_source
            .vectors
            .insert(c, items)
            .await
            .expect("seed vectors");
    }
    let mut parts = memory_source.parts();
    parts.vectors = Hooked::new(parts.vectors.clone(), PerCollectionIds);
    Store::new("per-collection", memory_source.capabilities(), parts)
}

/// The ids and texts a collection of the target holds.
async fn held(target: &Store, collection: &str) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = target
        .vectors
        .get(collection)
        .await
        .expect("get")
        .into_iter()
        .map(|i| (i.id, i.text))
        .collect();
    got.sort();
    got
}

/// The dead letters of a run in `dir`: (id, error).
fn letters(dir: &tempfile::TempDir) -> Vec<(String, String)> {
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap_or_default();
    dead.lines()
        .map(|l| {
            let letter: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let field = |k: &str| letter[k].as_str().unwrap_or_default().to_owned();
            (field("id"), field("error"))
        })
        .collect()
}

/// An id two source collections hold (a source whose ids are unique per collection only) is
/// written once, by the first collection in name order; the later collection's item is set
/// aside naming the first, instead of moving the id out of it (a target keeps an id in one
/// collection, and its upsert moves it), also when the run is killed between the two and
/// resumed. Before, the later item moved the id: "written 3, dead letters 0", and the first
/// collection had lost a record.
#[tokio::test]
async fn an_id_in_two_source_collections_is_set_aside_not_moved() {
    let source = per_collection_source(&[("dup-a", &["x", "y"]), ("dup-b", &["x"])]).await;
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, counts) = migrate_groups(&source, &target, &dir, &[ModelGroup::Vectors]).await;
    assert_eq!(counts.written, 2, "{counts:?}");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    let dead = letters(&dir);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "dup-b/x");
    assert!(
        dead[0].1.contains("id also in collection \"dup-a\""),
        "{dead:?}"
    );
    assert_eq!(
        held(&target, "dup-a").await,
        [
            ("x".to_owned(), "x as dup-a holds it".to_owned()),
            ("y".to_owned(), "y as dup-a holds it".to_owned())
        ]
    );
    assert!(held(&target, "dup-b").await.is_empty());

    // Killed after file-1 was written and before file-2 was: the resumed run still knows that
    // file-1 holds x.
    let source = per_collection_source(&[("file-1", &["x", "y"]), ("file-2", &["x", "z"])]).await;
    let (memory_target, target, failing) = stalling_target();
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_until_file_2_fails(&source, &target, &dir).await;
    assert_eq!(held(&memory_target, "file-1").await.len(), 2);
    failing.store(false, Ordering::SeqCst);
    let summary = Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("resumed");
    assert_eq!(summary.dead_letters, 1, "{summary:?}");
    assert_eq!(letters(&dir)[0].0, "file-2/x");
    assert_eq!(
        held(&memory_target, "file-1").await,
        [
            ("x".to_owned(), "x as file-1 holds it".to_owned()),
            ("y".to_owned(), "y as file-1 holds it".to_owned())
        ]
    );
    assert_eq!(
        held(&memory_target, "file-2").await,
        [("z".to_owned(), "z as file-2 holds it".to_owned())]
    );
}

/// A memory store and the target over it whose writes naming `file-2` fail ([`Stalling`])
/// until the flag is cleared.
fn stalling_target() -> (Store, Store, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let memory_target = memory::store();
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut parts = memory_target.parts();
    parts.vectors = Hooked::new(
        parts.vectors.clone(),
        Stalling {
            failing: failing.clone(),
        },
    );
    let target = Store::new("stalling", memory_target.capabilities(), parts);
    (memory_target, target, failing)
}

/// Migrates the vectors of `source` into a [`stalling_target`], one collection per write
/// (batches of 2 items), so that file-2's write fails while the next one runs beside it; the
/// run fails retryably. Returns its options, for the resumed run.
async fn run_until_file_2_fails(
    source: &Store,
    target: &Store,
    dir: &tempfile::TempDir,
) -> MigrateOptions {
    let mut o = options(dir);
    o.groups = vec![ModelGroup::Vectors];
    o.batch_size = 2;
    let failed = Migration::new(source, target, o.clone(), &Silent)
        .run()
        .await
        .expect_err("file-2 cannot be written");
    assert!(failed.is_retryable(), "{failed}");
    o
}

/// A target whose writes naming `file-2` wait a moment, then fail as unavailable while
/// `failing` is set.
struct Stalling {
    failing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl Hooks for Stalling {
    async fn before_write(&self, collections: &[&str]) -> chatstore_core::Result<()> {
        if collections.contains(&"file-2") && self.failing.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            return Err(Error::unavailable(
                "the target went away",
                std::io::Error::other("stalled"),
            ));
        }
        Ok(())
    }
}

/// Two writes run at once: when the earlier one fails for good while the later one has
/// committed, the checkpoint stays before the failed one, so the resumed run writes both
/// again and nothing is skipped.
#[tokio::test]
async fn a_write_failing_beside_a_committed_later_one_is_not_skipped_on_resume() {
    let source = memory::store();
    for f in 0..8 {
        let items = (0..2)
            .map(|k| VectorItem {
                id: format!("f{f}-{k}"),
                text: format!("chunk {k} of file {f}"),
                vector: vec![1.0, f as f32, k as f32],
                metadata: serde_json::Map::new(),
            })
            .collect();
        source
            .vectors
            .insert(&format!("file-{f}"), items)
            .await
            .expect("seed vectors");
    }
    let (memory_target, target, failing) = stalling_target();
    let dir = tempfile::tempdir().expect("tempdir");
    let o = run_until_file_2_fails(&source, &target, &dir).await;
    let written = memory_target.vectors.collections().await.expect("list");
    assert!(
        written.contains(&"file-3".to_owned()),
        "file-3 was written beside file-2: {written:?}"
    );
    assert!(!written.contains(&"file-2".to_owned()), "{written:?}");

    failing.store(false, Ordering::SeqCst);
    Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("resumed");
    for f in 0..8 {
        let got = memory_target
            .vectors
            .get(&format!("file-{f}"))
            .await
            .expect("get");
        assert_eq!(got.len(), 2, "file-{f}");
    }
}

/// A source whose scans are counted and whose scans of collection `bbb` fail with `error`
/// when one is given: a collection the source lists and cannot read.
struct ScanWatch {
    error: Option<fn() -> Error>,
    scans: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Hooks for ScanWatch {
    async fn before_scan(&self, collection: &str) -> chatstore_core::Result<()> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        match (self.error, collection) {
            (Some(error), "bbb") => Err(error()),
            _ => Ok(()),
        }
    }
}

/// Inserts `per` chunks `{collection}-{k}` into each of `collections`.
async fn seed_vectors(store: &Store, collections: &[&str], per: usize) {
    for c in collections {
        let items = (0..per)
            .map(|k| VectorItem {
                id: format!("{c}-{k}"),
                text: format!("chunk {k} of {c}"),
                vector: vec![1.0, k as f32],
                metadata: serde_json::Map::new(),
            })
            .collect();
        store.vectors.insert(c, items).await.expect("seed vectors");
    }
}

/// A collection the source lists and cannot read (a read refused, or one still failing after
/// its retries while the source answers) is set aside with its reason, and the collections
/// after it arrive; the run reports what it set aside, and a second run over the finished
/// state reads nothing again. Before, the run stopped at it, and every resume stopped there.
#[tokio::test]
async fn one_unreadable_collection_does_not_stop_the_rest() {
    let refused: fn() -> Error = || Error::invalid("collection name \"bbb\" is not accepted");
    let unavailable: fn() -> Error =
        || Error::unavailable("the collection times out", std::io::Error::other("timeout"));
    for error in [refused, unavailable] {
        let memory_source = memory::store();
        seed_vectors(&memory_source, &["aaa", "bbb", "zzz"], 3).await;
        let mut parts = memory_source.parts();
        parts.vectors = Hooked::new(
            parts.vectors.clone(),
            ScanWatch {
                error: Some(error),
                scans: Default::default(),
            },
        );
        let source = Store::new("unreadable", memory_source.capabilities(), parts);
        let target = memory::store();
        let dir = tempfile::tempdir().expect("tempdir");
        let (summary, counts) =
            migrate_groups(&source, &target, &dir, &[ModelGroup::Vectors]).await;
        assert_eq!(summary.dead_letters, 1, "{summary:?}");
        assert_eq!(counts.dead_lettered, 1, "{counts:?}");
        assert_eq!(counts.written, 6, "{counts:?}");
        assert_eq!(
            target.vectors.collections().await.expect("list"),
            ["aaa", "zzz"]
        );
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("dead letters");
        let letters: Vec<serde_json::Value> = dead
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(letters.len(), 1, "{dead}");
        assert_eq!(letters[0]["group"], "vectors");
        assert_eq!(letters[0]["entity"], "collection");
        assert_eq!(letters[0]["id"], "bbb");
        assert_eq!(letters[0]["record"]["collection"], "bbb");
        assert!(
            letters[0]["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not read the collection")),
            "{dead}"
        );
        let (again, counts) = migrate_groups(&source, &target, &dir, &[ModelGroup::Vectors]).await;
        assert_eq!(again.dead_letters, 1, "{again:?}");
        assert_eq!(
            counts.written, 6,
            "a finished run reads nothing again: {counts:?}"
        );
    }
}

/// A progress display that wants totals (a terminal's bars), keeping the totals it was given.
#[derive(Default)]
struct Totals(std::sync::Mutex<Vec<(ModelGroup, Option<u64>)>>);

impl chatstore_migrate::Progress for Totals {
    fn wants_totals(&self) -> bool {
        true
    }
    fn group_started(&self, group: ModelGroup, total: Option<u64>, _: &chatstore_migrate::Counts) {
        if let Ok(mut totals) = self.0.lock() {
            totals.push((group, total));
        }
    }
}

/// A progress display that wants totals gets none for vectors: counting them reads every
/// collection whole, embeddings included, before the copy reads it all again. The source's
/// collections are read once, by the copy. The other groups are still counted (by ids).
#[tokio::test]
async fn a_progress_total_does_not_read_the_vectors_twice() {
    let memory_source = memory::store();
    for i in 0..2 {
        let user = NewUser::new(format!("u{i}@example.com"), "User").with_id(format!("u{i}"));
        memory_source.users.create(user).await.expect("user");
    }
    seed_vectors(&memory_source, &["file-1", "file-2", "file-3"], 2).await;
    let mut parts = memory_source.parts();
    let watch = Hooked::new(
        parts.vectors.clone(),
        ScanWatch {
            error: None,
            scans: Default::default(),
        },
    );
    parts.vectors = watch.clone();
    let source = Store::new("watched", memory_source.capabilities(), parts);
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Users, ModelGroup::Vectors];
    let totals = Totals::default();
    let summary = Migration::new(&source, &target, o, &totals)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    assert_eq!(target.vectors.collections().await.expect("list").len(), 3);
    // One page of each two-item collection (a page shorter than the batch is the last).
    assert_eq!(watch.hooks.scans.load(Ordering::SeqCst), 3);
    let totals = totals.0.lock().expect("totals").clone();
    assert_eq!(
        totals,
        [(ModelGroup::Users, Some(2)), (ModelGroup::Vectors, None)]
    );
}

/// A store like `store` without vectors (every vector call answers `Unsupported`).
fn without_vectors(store: &Store) -> Store {
    let mut parts = store.parts();
    parts.vectors = std::sync::Arc::new(chatstore_core::unsupported::NoVectors {
        backend: "no-vectors",
    });
    Store::new("no-vectors", store.capabilities(), parts)
}

/// A group the source holds records of and the target cannot store is a difference, never
/// "equal"; a group the source holds nothing of, or does not store, is left out.
#[tokio::test]
async fn verify_counts_a_group_the_target_cannot_store_as_a_difference() {
    let source = memory::store();
    source
        .vectors
        .insert(
            "file-1",
            vec![VectorItem {
                id: "chunk-0".into(),
                text: "text".into(),
                vector: vec![1.0, 0.0],
                metadata: serde_json::Map::new(),
            }],
        )
        .await
        .expect("seed vectors");
    let target = without_vectors(&memory::store());
    let groups = [ModelGroup::Users, ModelGroup::Vectors];
    let report = verify(&source, &target, &groups, &Silent)
        .await
        .expect("verify");
    assert!(!report.equal, "{report:#?}");
    let vectors = report
        .groups
        .iter()
        .find(|g| g.group == Some(ModelGroup::Vectors))
        .expect("a vectors report");
    assert_eq!(vectors.differences, 1, "{vectors:#?}");
    assert!(
        vectors
            .skipped
            .as_deref()
            .is_some_and(|s| s.contains("cannot store")),
        "{vectors:#?}"
    );
    let empty = memory::store();
    for source in [&empty, &without_vectors(&source)] {
        let report = verify(source, &target, &groups, &Silent)
            .await
            .expect("verify");
        assert!(report.equal, "{report:#?}");
    }
}

/// A chat that a router in `dual` wrote to both stores after the run had read it is on the
/// target already, later than what the run read (here: the target holds the chat's later
/// state, the source the state the run read). The run leaves it as it is. Before, it wrote the
/// messages it had read over the target's (an edit undone, the current message moved back),
/// and neither `reconcile` (nothing was logged) nor a second run (its state says done) put it
/// right.
#[tokio::test]
async fn a_chat_the_target_holds_later_than_the_run_read_is_left_as_it_is() {
    let (source, target) = (memory::store(), memory::store());
    let edited = |content: &str, created: i64, updated: i64| {
        let mut m = NewMessage::text("c1", "m1", "user", content);
        m.created_at = Some(created);
        m.updated_at = Some(updated);
        m
    };
    for store in [&source, &target] {
        store
            .users
            .create(NewUser {
                created_at: Some(100),
                ..NewUser::new("ada@example.com", "Ada").with_id("u1")
            })
            .await
            .expect("user");
        let mut chat = NewChat::new("u1", "Plans").with_id("c1");
        chat.created_at = Some(100);
        chat.updated_at = Some(100);
        store.chats.create(chat).await.expect("chat");
        // Edited after it was written: the blob cannot carry its `updated_at`.
        store
            .messages
            .upsert(edited("first words", 110, 200))
            .await
            .expect("m1");
    }
    // Later, through the router: m1 edited again and an answer m2, on the target (and on the
    // source too, after the run read it).
    target
        .messages
        .upsert(edited("second thoughts", 110, 300))
        .await
        .expect("m1 again");
    let mut m2 = NewMessage::text("c1", "m2", "assistant", "answer").with_parent("m1");
    m2.created_at = Some(310);
    m2.updated_at = Some(310);
    target.messages.upsert(m2).await.expect("m2");
    let before = target.chats.get("c1").await.expect("chat");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Users, ModelGroup::Chats];
    Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("run");

    let m1 = target.messages.get("c1", "m1").await.expect("m1");
    assert_eq!(m1.content, json!("second thoughts"), "the later edit stays");
    let after = target.chats.get("c1").await.expect("chat");
    assert_eq!(
        after.chat["history"]["currentId"],
        json!("m2"),
        "the current message stays"
    );
    assert_eq!(after.updated_at, before.updated_at);
}

/// A message a router in `dual` deleted from both stores after the run read its chat is not
/// brought back: the chat is created with every message of its blob in one write, so a message
/// the run would write again (its `updated_at` fixed) that is missing from the target was
/// deleted there since, not left unwritten by an earlier run.
#[tokio::test]
async fn a_message_deleted_on_the_target_after_the_run_read_it_stays_deleted() {
    let (source, target) = (memory::store(), memory::store());
    for store in [&source, &target] {
        store
            .users
            .create(NewUser {
                created_at: Some(100),
                ..NewUser::new("ada@example.com", "Ada").with_id("u1")
            })
            .await
            .expect("user");
        let mut chat = NewChat::new("u1", "Plans").with_id("c1");
        chat.created_at = Some(100);
        chat.updated_at = Some(100);
        store.chats.create(chat).await.expect("chat");
        // Edited after it was written: the run writes it again to fix its `updated_at`.
        let mut m1 = NewMessage::text("c1", "m1", "user", "first words");
        m1.created_at = Some(110);
        m1.updated_at = Some(200);
        store.messages.upsert(m1).await.expect("m1");
    }
    // Later, through the router: m1 deleted (on the target; on the source too, after the run
    // read it).
    target.messages.delete("c1", "m1").await.expect("delete m1");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = options(&dir);
    o.groups = vec![ModelGroup::Users, ModelGroup::Chats];
    Migration::new(&source, &target, o, &Silent)
        .run()
        .await
        .expect("run");

    let m1 = target.messages.get("c1", "m1").await.map(|_| ());
    assert_eq!(
        m1.map_err(|e| e.kind()),
        Err(chatstore_core::ErrorKind::NotFound),
        "the deleted message stays deleted"
    );
}

/// The chats group's batches written in a run.
#[derive(Default)]
struct ChatBatches(std::sync::atomic::AtomicU64);

impl chatstore_migrate::Progress for ChatBatches {
    fn batch(&self, group: ModelGroup, number: u64, point: chatstore_migrate::BatchPoint) {
        if group == ModelGroup::Chats && point == chatstore_migrate::BatchPoint::Written {
            self.0.fetch_max(number, Ordering::Relaxed);
        }
    }
}

/// Chats that hold large blobs (pasted images, long documents) are read a few to a page, so
/// the pages in memory stay near `chat_page_bytes` rather than `batch_size` chats each; small
/// chats still come in pages growing to the batch size. Every chat arrives whole either way.
#[tokio::test]
async fn pages_of_large_chats_stay_near_the_byte_budget() {
    let source = memory::store();
    source
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("user");
    let notes = "x".repeat(256 << 10);
    for i in 0..40 {
        let mut c = NewChat::new("u1", format!("Chat {i}")).with_id(format!("c{i:02}"));
        c.chat = Some(json!({"notes": notes}));
        source.chats.create(c).await.expect("chat");
    }
    let copy = |budget: usize| {
        let source = source.clone();
        async move {
            let target = memory::store();
            let dir = tempfile::tempdir().expect("tempdir");
            let mut options = options(&dir);
            options.groups = vec![ModelGroup::Users, ModelGroup::Chats];
            options.batch_size = 80;
            options.chat_page_bytes = budget;
            let batches = ChatBatches::default();
            let summary = Migration::new(&source, &target, options, &batches)
                .run()
                .await
                .expect("migrate");
            assert_eq!(summary.dead_letters, 0, "{summary:?}");
            let report = verify(&source, &target, &[ModelGroup::Chats], &Silent)
                .await
                .expect("verify");
            assert!(report.equal, "{:#?}", report.differing_ids());
            batches.0.load(Ordering::Relaxed)
        }
    };
    // 1 MiB a page: the first page (4 chats at most, whatever the batch) shows 256 KiB a chat,
    // so 4 a page after.
    let small = copy(1 << 20).await;
    assert!(small >= 10, "{small} batches of 40 chats of 256 KiB each");
    // The default budget: pages of 4, 8, 16 and the last 12.
    let default =
        copy(chatstore_migrate::MigrateOptions::new("a", "b", "s", "d").chat_page_bytes).await;
    assert!(default <= 4, "{default} batches");
}

/// Migrates `groups` from `source` to `target`, the run's files in `dir`: the summary, and the
/// counts of the last group.
async fn migrate_groups(
    source: &Store,
    target: &Store,
    dir: &tempfile::TempDir,
    groups: &[ModelGroup],
) -> (chatstore_migrate::Summary, chatstore_migrate::Counts) {
    let mut o = options(dir);
    o.groups = groups.to_vec();
    let summary = Migration::new(source, target, o, &Silent)
        .run()
        .await
        .expect("migrate");
    let last = summary.groups.last().expect("a group").counts;
    (summary, last)
}

/// A source whose file pages do not decode whole (so each file is read alone) and that loses
/// files while the run reads them: `deleted` is deleted as it is read alone, `bytes_deleted`
/// as its bytes are read, and `lost` stays listed but is never found by its id.
struct Vanishing {
    inner: std::sync::Arc<dyn chatstore_core::FileRepo>,
}

const DELETED: &str = "fb";
const BYTES_DELETED: &str = "fd";
const LOST: &str = "fc";

#[async_trait::async_trait]
impl chatstore_core::FileRepo for Vanishing {
    async fn put(&self, file: NewFile) -> chatstore_core::Result<chatstore_core::FileMeta> {
        self.inner.put(file).await
    }
    async fn put_many(
        &self,
        files: Vec<NewFile>,
    ) -> chatstore_core::Result<Vec<chatstore_core::FileMeta>> {
        self.inner.put_many(files).await
    }
    async fn get(&self, id: &str) -> chatstore_core::Result<chatstore_core::FileMeta> {
        match id {
            DELETED => {
                self.inner.delete(id).await?;
                self.inner.get(id).await
            }
            LOST => Err(Error::not_found("file", id)),
            _ => self.inner.get(id).await,
        }
    }
    async fn read(&self, id: &str) -> chatstore_core::Result<Vec<u8>> {
        if id == BYTES_DELETED {
            self.inner.delete(id).await?;
        }
        self.inner.read(id).await
    }
    async fn list(
        &self,
        query: &chatstore_core::FileQuery,
    ) -> chatstore_core::Result<chatstore_core::Page<chatstore_core::FileMeta>> {
        self.inner.list(query).await
    }
    async fn delete(&self, id: &str) -> chatstore_core::Result<()> {
        self.inner.delete(id).await
    }
    async fn delete_for_user(&self, user_id: &str) -> chatstore_core::Result<u64> {
        self.inner.delete_for_user(user_id).await
    }
    async fn scan(
        &self,
        _after: Option<&str>,
        _limit: u32,
    ) -> chatstore_core::Result<Vec<chatstore_core::FileMeta>> {
        Err(Error::backend_msg("a file row does not decode"))
    }
    async fn scan_ids(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<String>> {
        self.inner.scan_ids(after, limit).await
    }
}

/// A file the source deletes while the run reads it (its record, or its bytes) is counted as
/// gone, not set aside as unreadable; a file the source lists but cannot find by its id is
/// still set aside; every other file arrives.
#[tokio::test]
async fn files_deleted_from_the_source_during_the_run_are_gone_not_set_aside() {
    let plain = memory::store();
    for id in ["fa", "fb", "fc", "fd", "fe"] {
        let mut f = NewFile::new("u0", format!("{id}.txt"), id.as_bytes().to_vec());
        f.id = Some(id.to_owned());
        plain.files.put(f).await.expect("put");
    }
    let mut parts = plain.parts();
    parts.files = std::sync::Arc::new(Vanishing {
        inner: plain.files.clone(),
    });
    let source = Store::new("vanishing", plain.capabilities(), parts);
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let (summary, files) = migrate_groups(&source, &target, &dir, &[ModelGroup::Files]).await;
    assert_eq!(files.gone, 2, "{summary:?}");
    assert_eq!(files.written, 2, "{summary:?}");
    assert_eq!(summary.dead_letters, 1, "only the lost file: {summary:?}");
    let letters = std::fs::read_to_string(dir.path().join("dead.jsonl")).expect("letters");
    assert!(
        letters.contains("\"fc\"") && letters.contains("lists it but does not find it"),
        "{letters}"
    );
    for id in ["fa", "fe"] {
        assert_eq!(target.files.read(id).await.expect("arrived"), id.as_bytes());
    }
    for id in ["fb", "fc", "fd"] {
        assert!(
            target.files.get(id).await.is_err(),
            "{id} is not on the target"
        );
    }
}

/// A source whose chat `c01` is deleted as its messages are read (after its page was).
struct DeletedWhileRead {
    messages: std::sync::Arc<dyn chatstore_core::MessageRepo>,
    chats: std::sync::Arc<dyn chatstore_core::ChatRepo>,
}

#[async_trait::async_trait]
impl chatstore_core::MessageRepo for DeletedWhileRead {
    async fn upsert(&self, message: NewMessage) -> chatstore_core::Result<chatstore_core::Message> {
        self.messages.upsert(message).await
    }
    async fn upsert_many(
        &self,
        chat_id: &str,
        messages: Vec<NewMessage>,
    ) -> chatstore_core::Result<Vec<chatstore_core::Message>> {
        self.messages.upsert_many(chat_id, messages).await
    }
    async fn get(
        &self,
        chat_id: &str,
        id: &str,
    ) -> chatstore_core::Result<chatstore_core::Message> {
        self.messages.get(chat_id, id).await
    }
    async fn list(&self, chat_id: &str) -> chatstore_core::Result<Vec<chatstore_core::Message>> {
        if chat_id == "c01" {
            let _ = self.chats.delete(chat_id).await;
            return Err(Error::not_found("chat", chat_id));
        }
        self.messages.list(chat_id).await
    }
    async fn delete(&self, chat_id: &str, id: &str) -> chatstore_core::Result<()> {
        self.messages.delete(chat_id, id).await
    }
    async fn scan(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<chatstore_core::Message>> {
        self.messages.scan(after, limit).await
    }
}

/// A chat the source deletes after its page was read, as its messages are read, is gone, not
/// set aside ("could not read the chat's messages"); the other chats arrive.
#[tokio::test]
async fn a_chat_deleted_from_the_source_during_the_run_is_gone() {
    let plain = seeded().await;
    let mut parts = plain.parts();
    parts.messages = std::sync::Arc::new(DeletedWhileRead {
        messages: plain.messages.clone(),
        chats: plain.chats.clone(),
    });
    let source = plain.rebuild("deleting", plain.capabilities(), parts);
    let target = memory::store();
    let dir = tempfile::tempdir().expect("tempdir");
    let groups = [ModelGroup::Users, ModelGroup::Chats];
    let (summary, chats) = migrate_groups(&source, &target, &dir, &groups).await;
    assert_eq!(chats.gone, 1, "{summary:?}");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    assert!(target.chats.get("c01").await.is_err());
    let report = verify(&source, &target, &[ModelGroup::Chats], &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "{:?}", report.differing_ids());
}
