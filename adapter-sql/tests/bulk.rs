//! `chats.create_many` writes every chat, message row and tag row of a batch with one statement
//! per table (multi-row `VALUES` on SQLite, one array a column with `unnest` on PostgreSQL);
//! these tests pin that it keeps what one chat at a time keeps: the same rows, every column
//! in its place (nulls included), and a chat id or a message key taken (Open WebUI's
//! `"{chat_id}-{id}"` collides when ids contain `-`) refused as a `Conflict` that leaves
//! nothing of the batch behind.

mod support;

use chatstore_core::{ErrorKind, NewChat, NewUser, Store};
use serde_json::json;

/// A chat whose blob holds one message `message_id`, tagged `tag`.
fn chat(id: &str, message_id: &str, tag: &str) -> NewChat {
    NewChat {
        chat: Some(json!({
            "history": {
                "messages": {message_id: {"id": message_id, "parentId": null, "role": "user",
                                          "content": format!("hello from {id}"),
                                          "timestamp": 1_700_000_100}},
                "currentId": message_id,
            }
        })),
        created_at: Some(1_700_000_000),
        updated_at: Some(1_700_000_100),
        ..NewChat::new("u1", id).with_id(id).with_tags([tag])
    }
}

async fn user(store: &Store) {
    store
        .users
        .create(NewUser::new("a@example.com", "A").with_id("u1"))
        .await
        .expect("user");
}

/// A chat of `owner` whose two messages set every column a message row has (the first) and
/// none of the optional ones (the second), with every optional chat column set or not.
fn full_chat(owner: &str, id: &str, set: bool) -> NewChat {
    let full = json!({
        "id": "m1", "parentId": null, "role": "assistant", "content": [{"type": "text", "text": "ü"}],
        "done": false, "timestamp": 1_700_000_200_000_i64, "user_id": "someone-else",
        "model": "llama3", "output": [{"type": "message"}], "files": [{"id": "f1"}],
        "sources": [{"source": {"name": "s"}}], "embeds": ["e"],
        "statusHistory": [{"done": true}], "error": {"content": "boom"},
        "usage": {"total_tokens": 12}, "meta": {"k": null}, "contextSummary": "so far",
    });
    let sparse =
        json!({"id": "m2", "parentId": "m1", "role": "user", "content": "it's \"quoted\"\n"});
    NewChat {
        chat: Some(json!({
            "title": "blob title",
            "history": {"messages": {"m1": full, "m2": sparse}, "currentId": "m2"},
        })),
        meta: Some(
            json!({"pinned_note": set, "nested": {"a": [1, null]}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        ),
        archived: set,
        pinned: !set,
        folder_id: set.then(|| format!("folder-{id}")),
        share_id: (!set).then(|| format!("share-{id}")),
        created_at: Some(1_700_000_000),
        updated_at: Some(1_700_000_300),
        ..NewChat::new(owner, format!("title {id}"))
            .with_id(id)
            .with_tags([
                "Shared Name".to_owned(),
                "shared name".to_owned(),
                format!("own {id}"),
            ])
    }
}

/// Every column of chats and message rows created in one batch reads back as created one by
/// one: optional columns set and unset, JSON of every kind, two users carrying the same tag
/// name and two chats of one user naming it in two spellings.
#[tokio::test]
async fn every_column_of_a_bulk_create_reads_back_like_creates_one_by_one() {
    for db in support::empty_databases().await {
        let (bulk, single) = (db.store().await, chatstore_core::memory::store());
        for store in [&bulk, &single] {
            user(store).await;
            store
                .users
                .create(NewUser::new("b@example.com", "B").with_id("u2"))
                .await
                .expect("user");
        }
        let batch = vec![
            full_chat("u1", "c1", true),
            full_chat("u1", "c2", false),
            full_chat("u2", "c3", true),
        ];
        let made = bulk.chats.create_many(batch.clone()).await.expect("bulk");
        for c in batch {
            single.chats.create(c).await.expect("one");
        }
        let name = bulk.backend_name();
        for (k, id) in ["c1", "c2", "c3"].into_iter().enumerate() {
            let (b, s) = (
                bulk.chats.get(id).await.expect("bulk chat"),
                single.chats.get(id).await.expect("chat"),
            );
            assert_eq!(b, s, "{name} {id}");
            assert_eq!(made[k], b, "{name} {id}: what create_many returned");
            let (b, s) = (
                bulk.messages.list(id).await.expect("rows"),
                single.messages.list(id).await.expect("rows"),
            );
            assert_eq!(b, s, "{name} {id}");
            assert_eq!(b.len(), 2, "{name} {id}");
        }
        for owner in ["u1", "u2"] {
            let (b, s) = (
                bulk.tags.list(owner).await.expect("tags"),
                single.tags.list(owner).await.expect("tags"),
            );
            assert_eq!(b, s, "{name} {owner}");
        }
        db.finish().await;
    }
}

/// A batch whose middle chat's id is taken: `Conflict`, and neither the chats before and
/// after it nor their message rows or new tag rows exist; the stored chat is unchanged.
#[tokio::test]
async fn a_chat_id_taken_in_the_middle_of_a_batch_leaves_nothing() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        user(&store).await;
        let stored = store
            .chats
            .create(chat("taken", "m0", "Old"))
            .await
            .expect("stored chat");
        let batch = vec![
            chat("n1", "m1", "Alpha"),
            chat("taken", "m9", "Middle"),
            chat("n3", "m3", "Beta"),
        ];
        let err = store.chats.create_many(batch).await.expect_err("taken");
        let name = store.backend_name();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{name} {err}");
        for id in ["n1", "n3"] {
            let got = store.chats.get(id).await.map(|_| ()).map_err(|e| e.kind());
            assert_eq!(got, Err(ErrorKind::NotFound), "{name} {id}");
        }
        let rows = store.messages.scan(None, 100).await.expect("message rows");
        assert_eq!(
            rows.iter().map(|m| m.key()).collect::<Vec<_>>(),
            ["taken-m0"],
            "{name}"
        );
        let tags = store.tags.list("u1").await.expect("tags");
        assert_eq!(
            tags.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            ["old"],
            "{name}"
        );
        assert_eq!(
            store.chats.get("taken").await.expect("kept"),
            stored,
            "{name}"
        );
        db.finish().await;
    }
}

/// Chats created in one batch read back exactly as the same chats created one by one.
#[tokio::test]
async fn a_bulk_create_reads_back_like_creates_one_by_one() {
    for db in support::empty_databases().await {
        let (bulk, single) = (db.store().await, chatstore_core::memory::store());
        user(&bulk).await;
        user(&single).await;
        let batch = vec![
            chat("c1", "m1", "Work"),
            chat("c2", "m2", "work"),
            chat("c3", "m3", "Home"),
        ];
        bulk.chats.create_many(batch.clone()).await.expect("bulk");
        for c in batch {
            single.chats.create(c).await.expect("one");
        }
        for id in ["c1", "c2", "c3"] {
            let (b, s) = (
                bulk.chats.get(id).await.expect("bulk chat"),
                single.chats.get(id).await.expect("chat"),
            );
            assert_eq!(b, s, "{} {id}", bulk.backend_name());
            let (b, s) = (
                bulk.messages.list(id).await.expect("rows"),
                single.messages.list(id).await.expect("rows"),
            );
            assert_eq!(b, s, "{} {id}", bulk.backend_name());
        }
        let tags = |s: Store| async move { s.tags.list("u1").await.expect("tags") };
        assert_eq!(
            tags(bulk.clone()).await,
            tags(single.clone()).await,
            "{}",
            bulk.backend_name()
        );
        db.finish().await;
    }
}

/// Two chats of one batch whose message keys collide: `Conflict`, and neither chat exists.
#[tokio::test]
async fn a_message_key_colliding_inside_a_batch_refuses_the_whole_batch() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        user(&store).await;
        // Keys "a-b-c" and "a-b-c".
        let batch = vec![chat("a", "b-c", "t"), chat("a-b", "c", "t")];
        let err = store.chats.create_many(batch).await.expect_err("collision");
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "{} {err}",
            store.backend_name()
        );
        for id in ["a", "a-b"] {
            let got = store.chats.get(id).await.map(|_| ()).map_err(|e| e.kind());
            assert_eq!(
                got,
                Err(ErrorKind::NotFound),
                "{} {id}",
                store.backend_name()
            );
        }
        db.finish().await;
    }
}

/// A batch whose message key is taken by a chat already stored: `Conflict`, the batch leaves
/// nothing, the stored chat keeps its message.
#[tokio::test]
async fn a_message_key_taken_by_a_stored_chat_refuses_the_whole_batch() {
    for db in support::empty_databases().await {
        let store = db.store().await;
        user(&store).await;
        store
            .chats
            .create(chat("a", "b-c", "t"))
            .await
            .expect("first chat");
        let batch = vec![chat("x", "m", "t"), chat("a-b", "c", "t")];
        let err = store.chats.create_many(batch).await.expect_err("collision");
        assert_eq!(
            err.kind(),
            ErrorKind::Conflict,
            "{} {err}",
            store.backend_name()
        );
        for id in ["x", "a-b"] {
            let got = store.chats.get(id).await.map(|_| ()).map_err(|e| e.kind());
            assert_eq!(
                got,
                Err(ErrorKind::NotFound),
                "{} {id}",
                store.backend_name()
            );
        }
        let kept = store.messages.list("a").await.expect("first chat's rows");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "b-c");
        db.finish().await;
    }
}
