//! `chats.create_many` writes every chat, message row and tag row of a batch with multi-row
//! statements; these tests pin that it keeps what one chat at a time keeps: the same rows, and
//! a message key taken by another chat's message (Open WebUI's `"{chat_id}-{id}"` collides
//! when ids contain `-`) refused as a `Conflict` that leaves nothing behind.

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
