//! Writers racing on one chat: every message upsert keeps the chat blob's history in sync
//! atomically (the `tx` route with the chat's version), so no writer loses another's update.

mod common;

use std::sync::Arc;
use std::time::Instant;

use chatstore_core::{ChatPatch, NewChat, NewMessage, Store};
use futures::future::join_all;

const WRITERS: usize = 4;
const PER_WRITER: usize = 15;

async fn write(store: Arc<Store>, chat: String, writer: usize) {
    for i in 0..PER_WRITER {
        store
            .messages
            .upsert(
                NewMessage::text(
                    &chat,
                    format!("w{writer}-m{i:02}"),
                    "user",
                    format!("{writer}/{i}"),
                )
                .at(1_700_000_000 + i as i64),
            )
            .await
            .expect("upsert under contention");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_on_one_chat_lose_nothing() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = Arc::new(pb.store());
    let chat = store
        .chats
        .create(NewChat::new("u1", "race"))
        .await
        .expect("chat");
    let started = Instant::now();
    let writers = (0..WRITERS).map(|w| tokio::spawn(write(store.clone(), chat.id.clone(), w)));
    // A concurrent chat update (title) must not wipe the history either.
    let patcher = {
        let store = store.clone();
        let id = chat.id.clone();
        tokio::spawn(async move {
            for n in 0..5 {
                let patch = ChatPatch {
                    title: Some(format!("race {n}")),
                    ..ChatPatch::default()
                };
                store.chats.update(&id, patch).await.expect("update");
            }
        })
    };
    for joined in join_all(writers).await {
        joined.expect("writer");
    }
    patcher.await.expect("patcher");
    let elapsed = started.elapsed();

    let rows = store.messages.list(&chat.id).await.expect("list");
    assert_eq!(
        rows.len(),
        WRITERS * PER_WRITER,
        "every message row is there"
    );
    let stored = store.chats.get(&chat.id).await.expect("chat");
    let history = stored.chat["history"]["messages"]
        .as_object()
        .expect("history.messages");
    assert_eq!(
        history.len(),
        WRITERS * PER_WRITER,
        "every message is in the blob"
    );
    for m in &rows {
        assert_eq!(
            history[&m.id]["content"], m.content,
            "blob entry of {}",
            m.id
        );
    }
    assert_eq!(stored.title, "race 4");
    assert_eq!(stored.chat["title"], "race 4");
    eprintln!(
        "{} upserts by {WRITERS} writers on one chat (plus 5 title updates) in {elapsed:?}",
        WRITERS * PER_WRITER
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_upserts_keep_rows_and_blob_equal() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let chat = store
        .chats
        .create(NewChat::new("u1", "seq"))
        .await
        .expect("chat");
    const N: usize = 100;
    let started = Instant::now();
    let mut parent: Option<String> = None;
    for i in 0..N {
        let mut m = NewMessage::text(&chat.id, format!("m{i:03}"), "user", format!("n{i}"))
            .at(1_700_000_000 + i as i64);
        m.parent_id = parent.clone();
        store.messages.upsert(m).await.expect("upsert");
        parent = Some(format!("m{i:03}"));
    }
    let elapsed = started.elapsed();
    let stored = store.chats.get(&chat.id).await.expect("chat");
    assert_eq!(
        stored.chat["history"]["currentId"],
        format!("m{:03}", N - 1)
    );
    assert_eq!(
        stored.chat["history"]["messages"]["m000"]["childrenIds"],
        serde_json::json!(["m001"])
    );
    assert_eq!(store.messages.list(&chat.id).await.expect("list").len(), N);
    eprintln!(
        "{N} sequential message upserts: {elapsed:?} ({:.0}/s)",
        N as f64 / elapsed.as_secs_f64()
    );
}

/// A chat whose blob outgrows PocketBase's default 32 MiB request body still takes messages
/// (the tx route raises its body limit; the json fields allow 256 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_blob_beyond_32_mib_still_takes_messages() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let chat = store
        .chats
        .create(NewChat::new("u1", "big"))
        .await
        .expect("chat");
    let big = "x".repeat(34 * 1024 * 1024);
    store
        .messages
        .upsert(NewMessage::text(&chat.id, "m1", "user", big.clone()))
        .await
        .expect("34 MiB message");
    store
        .messages
        .upsert(NewMessage::text(&chat.id, "m2", "assistant", "ok").with_parent("m1"))
        .await
        .expect("a message after it");
    let stored = store.chats.get(&chat.id).await.expect("chat");
    assert_eq!(
        stored.chat["history"]["messages"]["m1"]["content"]
            .as_str()
            .map(str::len),
        Some(big.len())
    );
    assert_eq!(stored.chat["history"]["currentId"], "m2");
}

/// Deleting a tag takes it out of its chats in the same transaction and bumps their versions,
/// so a chat writer that read the chat before cannot write the deleted tag back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tag_bumps_the_version_of_its_chats() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let chat = store
        .chats
        .create(NewChat::new("u1", "t").with_tags(["a", "b"]))
        .await
        .expect("chat");
    let version = |pb: chatstore_pocketbase::PocketBase, id: String| async move {
        pb.client()
            .get_record(
                &pb.collections().chats,
                &id,
                None,
                chatstore_pocketbase::error::Subject::new("chat", &id),
            )
            .await
            .expect("record")["version"]
            .as_i64()
            .expect("version")
    };
    let before = version(pb.clone(), chat.id.clone()).await;
    store.tags.delete("u1", "a").await.expect("delete tag");
    let after = version(pb.clone(), chat.id.clone()).await;
    assert_eq!(after, before + 1);
    let stored = store.chats.get(&chat.id).await.expect("chat");
    assert_eq!(
        stored.tags.into_iter().collect::<Vec<_>>(),
        vec!["b".to_owned()]
    );
    assert_eq!(
        stored.updated_at, chat.updated_at,
        "tag ops do not touch updated_at"
    );
    // Concurrent tag writers and a tag deletion on the same chats never fail or resurrect it.
    let writers = (0..4).map(|n| {
        let store = store.clone();
        let id = chat.id.clone();
        tokio::spawn(async move {
            store
                .chats
                .add_tag(&id, &format!("w{n}"))
                .await
                .expect("add_tag");
        })
    });
    let deleter = {
        let store = store.clone();
        tokio::spawn(async move { store.tags.delete("u1", "b").await.expect("delete b") })
    };
    for w in join_all(writers).await {
        w.expect("writer");
    }
    deleter.await.expect("deleter");
    let stored = store.chats.get(&chat.id).await.expect("chat");
    let tags: Vec<String> = stored.tags.into_iter().collect();
    assert_eq!(tags, vec!["w0", "w1", "w2", "w3"]);
    assert!(store.tags.get("u1", "b").await.is_err());
}

/// Concurrent patches of different user fields both land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_user_patches_of_different_fields_both_land() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    for round in 0..10 {
        let id = format!("u{round}");
        store
            .users
            .create(chatstore_core::NewUser::new(format!("{id}@x.io"), "A").with_id(&id))
            .await
            .expect("user");
        let name = chatstore_core::UserPatch {
            name: Some("Renamed".into()),
            ..Default::default()
        };
        let role = chatstore_core::UserPatch {
            role: Some("admin".into()),
            ..Default::default()
        };
        let (a, b) = tokio::join!(store.users.update(&id, name), store.users.update(&id, role));
        a.expect("name patch");
        b.expect("role patch");
        let user = store.users.get(&id).await.expect("get");
        assert_eq!(
            (user.name.as_str(), user.role.as_str()),
            ("Renamed", "admin")
        );
    }
}
