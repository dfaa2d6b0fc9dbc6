//! The memory backend's change feed: what a subscriber hears, and that nothing is lost when
//! it falls behind.

use std::collections::BTreeSet;
use std::time::Duration;

use chatstore_core::changes::{ChangeFilter, ChangeKind, ChangeStream, field, now_ms, subscribe};
use chatstore_core::{ChatPatch, ModelGroup, NewChat, NewMessage, NewUser, Store, memory};
use futures::StreamExt;

async fn next(events: &mut ChangeStream) -> chatstore_core::ChangeEvent {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

async fn user(store: &Store, email: &str) -> String {
    store
        .users
        .create(NewUser::new(email, "U"))
        .await
        .expect("create user")
        .id
}

/// A user's subscription hears each write to the user's chats, with the fields an update
/// changed, and nothing of another user's.
#[tokio::test]
async fn a_user_hears_own_chat_changes_only() {
    let store = memory::store();
    assert!(store.capabilities().change_feed);
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let mut events = subscribe(store.changes().expect("feed"), ChangeFilter::user(&ada));
    store
        .chats
        .create(NewChat::new(&bob, "not yours"))
        .await
        .expect("bob's chat");
    let chat = store
        .chats
        .create(NewChat::new(&ada, "Engines"))
        .await
        .expect("ada's chat");
    store
        .chats
        .update(
            &chat.id,
            ChatPatch {
                title: Some("Analytical engines".into()),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("rename");
    store.chats.add_tag(&chat.id, "Work").await.expect("tag");
    store
        .messages
        .upsert(NewMessage::text(&chat.id, "m1", "user", "Hello"))
        .await
        .expect("message");
    store.chats.delete(&chat.id).await.expect("delete");

    let created = next(&mut events).await;
    assert_eq!(
        (created.group, created.kind, created.user_id.as_str()),
        (ModelGroup::Chats, ChangeKind::Created, ada.as_str())
    );
    let renamed = next(&mut events).await;
    assert_eq!(renamed.kind, ChangeKind::Updated);
    assert!(renamed.fields.iter().any(|f| f == field::TITLE));
    let tagged = next(&mut events).await;
    assert_eq!(tagged.fields, vec![field::TAGS.to_owned()]);
    let message = next(&mut events).await;
    assert_eq!(message.message_id.as_deref(), Some("m1"));
    assert_eq!(message.chat_id.as_deref(), Some(chat.id.as_str()));
    let deleted = next(&mut events).await;
    assert_eq!(deleted.kind, ChangeKind::Deleted);
    assert_eq!(deleted.chat_id.as_deref(), Some(chat.id.as_str()));
    let keys: BTreeSet<_> = [&created, &renamed, &tagged, &message, &deleted]
        .iter()
        .map(|e| e.key.clone())
        .collect();
    assert_eq!(keys.len(), 5, "each change has its own key");
}

/// A subscriber that falls further behind than the hub buffers still receives every change:
/// it reads back from the store what it missed.
#[tokio::test]
async fn a_slow_subscriber_catches_up_from_the_store() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let mut events = subscribe(store.changes().expect("feed"), ChangeFilter::all());
    let ids = more_chats_than_the_hub_holds(&store, &ada).await;
    hear_chats(&mut events, &ids).await;
}

/// Creates more chats of `user` than the hub buffers (a subscriber not reading meanwhile
/// falls behind); their ids.
async fn more_chats_than_the_hub_holds(store: &Store, user: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..(chatstore_core::changes::HUB_CAPACITY + 100) {
        let chat = store
            .chats
            .create(NewChat::new(user, format!("chat {i}")))
            .await
            .expect("create");
        ids.insert(chat.id);
    }
    ids
}

/// Reads events until each chat of `ids` was heard of.
async fn hear_chats(events: &mut ChangeStream, ids: &BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    while seen.len() < ids.len() {
        if let Some(chat) = next(events).await.chat_id
            && ids.contains(&chat)
        {
            seen.insert(chat);
        }
    }
}

/// A subscription from a cursor first reads back what changed since then, deletions included.
#[tokio::test]
async fn a_cursor_reads_back_updates_and_deletions() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let cursor = now_ms();
    let kept = store
        .chats
        .create(NewChat::new(&ada, "kept"))
        .await
        .expect("create");
    let gone = store
        .chats
        .create(NewChat::new(&ada, "gone"))
        .await
        .expect("create");
    store.chats.delete(&gone.id).await.expect("delete");
    let mut events = subscribe(
        store.changes().expect("feed"),
        ChangeFilter::user(&ada).since(cursor),
    );
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = next(&mut events).await;
        got.push((e.chat_id.clone().unwrap_or_default(), e.kind));
    }
    assert!(got.contains(&(kept.id.clone(), ChangeKind::Updated)));
    assert!(got.contains(&(gone.id.clone(), ChangeKind::Deleted)));
}

/// A record stored with an `updated_at` years ahead (a writer's clock, seconds taken for
/// milliseconds) is read back with that time. The subscriber's cursor must not follow it: a
/// read-back after falling behind would then start in the future and find none of the changes
/// made meanwhile.
#[tokio::test]
async fn a_record_dated_in_the_future_does_not_move_the_cursor_past_now() {
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let start = now_ms();
    let ten_years = 10 * 365 * 24 * 3600;
    let mut future = NewChat::new(&ada, "from a clock ahead");
    future.updated_at = Some(start / 1000 + ten_years);
    let future = store.chats.create(future).await.expect("create");
    let mut events = subscribe(
        store.changes().expect("feed"),
        ChangeFilter::all().since(start),
    );
    while next(&mut events).await.chat_id.as_deref() != Some(future.id.as_str()) {}

    // More than the hub holds, so the subscriber reads them back from the store.
    let ids = more_chats_than_the_hub_holds(&store, &ada).await;
    hear_chats(&mut events, &ids).await;
}
