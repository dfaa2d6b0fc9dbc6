//! Inputs at the edges (NUL bytes PostgreSQL cannot store, the longest ids, huge pages,
//! characters outside the BMP) give the memory backend's answers, errors by kind included,
//! and never a panic.

mod support;

use std::fmt::Debug;

use chatstore_core::{
    ChatQuery, ErrorKind, FileQuery, NewChat, NewFile, NewMessage, NewUser, PageRequest, Result,
    Store, TagKey, memory,
};
use serde_json::json;

/// The outcome of a call: the value (as debug text) or the error kind.
fn outcome<T: Debug>(r: Result<T>) -> std::result::Result<String, ErrorKind> {
    r.map(|v| format!("{v:?}")).map_err(|e| e.kind())
}

async fn seed(store: &Store) {
    store
        .users
        .create(NewUser {
            created_at: Some(1_700_000_000),
            ..NewUser::new("a@example.com", "A").with_id("u1")
        })
        .await
        .expect("user");
    let mut chat = NewChat::new("u1", "🦀 Ferris & 𝔘𝔫𝔦𝔠𝔬𝔡𝔢")
        .with_id("c1")
        .with_tags(["🦀"]);
    chat.created_at = Some(1_700_000_000);
    store.chats.create(chat).await.expect("chat");
    store
        .messages
        .upsert(NewMessage::text("c1", "m1", "user", "𝄞 music").at(1_700_000_001))
        .await
        .expect("message");
    let long_id = "x".repeat(255);
    store
        .chats
        .create(NewChat {
            created_at: Some(1_700_000_002),
            ..NewChat::new("u1", "long").with_id(&long_id)
        })
        .await
        .expect("longest chat id");
    store
        .messages
        .upsert(NewMessage::text(&long_id, &long_id, "user", "long").at(1_700_000_003))
        .await
        .expect("longest message id in the longest chat id");
}

/// Every probe, run against a seeded store.
async fn probes(store: &Store) -> Vec<(&'static str, std::result::Result<String, ErrorKind>)> {
    let long_id = "x".repeat(255);
    let too_long = "x".repeat(256);
    vec![
        ("user with NUL id", outcome(store.users.get("u\0").await)),
        (
            "email with NUL",
            outcome(store.users.get_by_email("a\0@example.com").await),
        ),
        (
            "delete user with NUL",
            outcome(store.users.delete("u\0").await),
        ),
        (
            "scan users after NUL",
            outcome(store.users.scan(Some("a\0"), 10).await),
        ),
        ("chat with NUL id", outcome(store.chats.get("c\0").await)),
        (
            "delete chats of NUL user",
            outcome(store.chats.delete_for_user("u\0").await),
        ),
        (
            "scan chats after NUL",
            outcome(store.chats.scan(Some("c\0"), 10).await),
        ),
        (
            "title filter with NUL",
            outcome(
                store
                    .chats
                    .list(&ChatQuery::for_user("u1").with_title("a\0"))
                    .await,
            ),
        ),
        (
            "chat title with NUL",
            outcome(store.chats.create(NewChat::new("u1", "a\0b")).await),
        ),
        ("tag with NUL", outcome(store.tags.get("u1", "a\0").await)),
        (
            "delete tag with NUL",
            outcome(store.tags.delete("u1", "a\0").await),
        ),
        (
            "remove tag with NUL",
            outcome(store.chats.remove_tag("c1", "a\0").await),
        ),
        (
            "message of NUL chat",
            outcome(store.messages.get("c\0", "m1").await),
        ),
        (
            "message with NUL id",
            outcome(store.messages.get("c1", "m\0").await),
        ),
        (
            "delete message with NUL id",
            outcome(store.messages.delete("c1", "m\0").await),
        ),
        (
            "messages of NUL chat",
            outcome(store.messages.list("c\0").await),
        ),
        ("file with NUL id", outcome(store.files.get("f\0").await)),
        (
            "read file with NUL id",
            outcome(store.files.read("f\0").await),
        ),
        (
            "delete file with NUL id",
            outcome(store.files.delete("f\0").await),
        ),
        (
            "scan tags after NUL key",
            outcome(
                store
                    .tags
                    .scan(
                        Some(&TagKey {
                            user_id: "u1".into(),
                            id: "\0".into(),
                        }),
                        10,
                    )
                    .await,
            ),
        ),
        ("longest chat id", outcome(store.chats.get(&long_id).await)),
        (
            "longest message id",
            outcome(store.messages.get(&long_id, &long_id).await),
        ),
        (
            "too long chat id",
            outcome(
                store
                    .chats
                    .create(NewChat::new("u1", "t").with_id(&too_long))
                    .await,
            ),
        ),
        (
            "huge offset",
            outcome(
                store
                    .chats
                    .list(&ChatQuery::for_user("u1").page(PageRequest {
                        offset: i64::MAX as u64,
                        limit: Some(i64::MAX as u64),
                    }))
                    .await,
            ),
        ),
        (
            "offset beyond i64",
            outcome(
                store
                    .files
                    .list(&FileQuery {
                        user_id: None,
                        page: PageRequest {
                            offset: u64::MAX,
                            limit: None,
                        },
                    })
                    .await,
            ),
        ),
        ("zero scan limit", outcome(store.chats.scan(None, 0).await)),
        ("non-BMP chat", outcome(store.chats.get("c1").await)),
        ("non-BMP messages", outcome(store.messages.list("c1").await)),
        (
            "non-BMP title search",
            outcome(
                store
                    .chats
                    .list(&ChatQuery::for_user("u1").with_title("𝔘𝔫𝔦"))
                    .await,
            ),
        ),
        (
            "non-BMP tag",
            outcome(
                store
                    .chats
                    .list(&ChatQuery::for_user("u1").with_tags(["🦀"]))
                    .await,
            ),
        ),
        (
            "file named with separators",
            outcome(
                store
                    .files
                    .put(NewFile::new("u1", "../../etc/passwd", b"x".to_vec()).with_id("f1"))
                    .await
                    .map(|f| (f.filename, f.size)),
            ),
        ),
        ("read it back", outcome(store.files.read("f1").await)),
        (
            "message content object",
            outcome(
                store
                    .messages
                    .upsert(NewMessage {
                        content: json!({"not": "allowed"}),
                        ..NewMessage::text("c1", "m2", "user", "")
                    })
                    .await,
            ),
        ),
    ]
}

#[tokio::test]
async fn edge_inputs_answer_like_the_memory_backend() {
    let reference = memory::store();
    seed(&reference).await;
    let want = probes(&reference).await;
    for db in support::empty_databases().await {
        let store = db.store().await;
        seed(&store).await;
        let got = probes(&store).await;
        for ((name, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g, w, "{name} on {}", store.backend_name());
        }
        db.finish().await;
    }
}

/// Two files whose `{id}_{filename}` names used to be the same (`f1` + `2_a.txt`, `f1_2` +
/// `a.txt`) keep their own bytes, and deleting one leaves the other's: before, the second put
/// replaced the first file's bytes on disk, and deleting it removed the only copy.
#[tokio::test]
async fn files_whose_ids_hold_underscores_keep_their_own_bytes() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        for (id, name, bytes) in [
            ("f1", "2_a.txt", b"first".to_vec()),
            ("f1_2", "a.txt", b"second".to_vec()),
        ] {
            store
                .files
                .put(NewFile::new("u1", name, bytes).with_id(id))
                .await
                .expect("put");
        }
        assert_eq!(store.files.read("f1").await.expect("f1"), b"first");
        assert_eq!(store.files.read("f1_2").await.expect("f1_2"), b"second");
        store.files.delete("f1_2").await.expect("delete f1_2");
        assert_eq!(
            store.files.read("f1").await.expect("f1 after the delete"),
            b"first",
            "on {}",
            store.backend_name()
        );
        db.finish().await;
    }
}

/// A new file whose name on disk is already taken (bytes written under the earlier naming:
/// `f1_2` + `a.txt` was `f1_2_a.txt`, which `f1` + `2_a.txt` spells today) gets a name of its
/// own: the bytes there are never replaced. Before, the rename into place replaced them, and
/// the file whose row pointed there read another file's bytes.
#[tokio::test]
async fn a_name_taken_on_disk_is_never_replaced() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        let uploads = db.folder.join("uploads");
        std::fs::create_dir_all(&uploads).expect("uploads");
        let legacy = uploads.join("f1_2_a.txt");
        std::fs::write(&legacy, b"the legacy bytes").expect("legacy file");
        store
            .files
            .put(NewFile::new("u1", "2_a.txt", b"new".to_vec()).with_id("f1"))
            .await
            .expect("put");
        assert_eq!(store.files.read("f1").await.expect("f1"), b"new");
        assert_eq!(
            std::fs::read(&legacy).expect("legacy file"),
            b"the legacy bytes",
            "on {}",
            store.backend_name()
        );
        store.files.delete("f1").await.expect("delete f1");
        assert!(legacy.exists(), "deleting f1 leaves the legacy bytes");
        db.finish().await;
    }
}

/// An in-memory database's files go to a temporary folder of its own, removed once the store's
/// last clone is dropped (the database is gone then, and nothing names the files); a folder the
/// caller chose stays.
#[tokio::test]
async fn an_in_memory_store_removes_its_temporary_upload_folder() {
    use chatstore_sql::{SqlOptions, SqlStore};

    let sql = SqlStore::connect("sqlite::memory:", SqlOptions::default())
        .await
        .expect("in-memory store");
    let folder = sql.upload_dir().to_path_buf();
    let store = sql.store();
    store
        .files
        .put(NewFile::new("u1", "a.txt", b"bytes".to_vec()).with_id("f1"))
        .await
        .expect("put");
    assert!(
        folder.is_dir(),
        "the upload folder {} holds the file",
        folder.display()
    );
    drop(sql);
    assert!(folder.is_dir(), "a clone of the store is still alive");
    drop(store);
    assert!(!folder.exists(), "{} outlived its store", folder.display());

    let chosen = chatstore_testkit::scratch_folder("chatstore-sql-tests", "chosen-uploads");
    let sql = SqlStore::connect("sqlite::memory:", SqlOptions::default().upload_dir(&chosen))
        .await
        .expect("in-memory store with an upload folder");
    let store = sql.store();
    drop(sql);
    store
        .files
        .put(NewFile::new("u1", "a.txt", b"bytes".to_vec()).with_id("f1"))
        .await
        .expect("put");
    drop(store);
    assert!(chosen.is_dir(), "a chosen upload folder is kept");
    std::fs::remove_dir_all(&chosen).expect("clean up");
}
