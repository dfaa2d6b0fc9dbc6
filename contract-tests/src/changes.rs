//! Contracts of the change feed ([`chatstore_core::changes`]), on every store whose
//! capabilities promise one: a write is announced with the ids of what it changed, to the
//! subscriptions that want it, and a subscriber asking for what changed since a time gets it
//! read back.
//!
//! Delivery is at least once and feeds announce more than one write may cause (a chat's
//! creation may also be heard as an update), so each contract waits for the event it expects
//! and lets others pass. A creation heard through a read-back is reported as an update (the
//! store cannot tell which), and a feed whose listener is still connecting when the write
//! lands delivers it that way, so creations accept both kinds.

use std::sync::Arc;
use std::time::Duration;

use chatstore_core::changes::{
    ChangeEvent, ChangeFeed, ChangeFilter, ChangeKind, ChangeStream, catch_up_from, field, now_ms,
    subscribe,
};
use chatstore_core::{
    ChatPatch, Error, ModelGroup, NewChat, NewMessage, NewUser, Result, Store, UserPatch,
};
use futures::StreamExt;

use crate::fixtures::{new_file, new_user, user};

/// How long a contract waits for an event it expects.
const PATIENCE: Duration = Duration::from_secs(15);

fn feed(store: &Store) -> Result<Arc<dyn ChangeFeed>> {
    store.changes().ok_or_else(|| {
        Error::backend_msg("the capabilities promise a change feed but the store has none")
    })
}

fn events(store: &Store, filter: ChangeFilter) -> Result<ChangeStream> {
    Ok(subscribe(feed(store)?, filter))
}

/// Reads events until one satisfies `wanted`; every event read is returned, that one last.
/// Panics after [`PATIENCE`] with what was heard.
async fn hear(
    events: &mut ChangeStream,
    what: &str,
    wanted: impl Fn(&ChangeEvent) -> bool,
) -> Vec<ChangeEvent> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut heard = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => {
                let found = wanted(&event);
                heard.push(event);
                if found {
                    return heard;
                }
            }
            Ok(None) => panic!("the feed ended before {what}; heard {heard:?}"),
            Err(_) => panic!("no event for {what} within {PATIENCE:?}; heard {heard:?}"),
        }
    }
}

fn is_chat(event: &ChangeEvent, chat: &str) -> bool {
    event.group == ModelGroup::Chats
        && event.chat_id.as_deref() == Some(chat)
        && event.message_id.is_none()
}

fn created_or_updated(event: &ChangeEvent) -> bool {
    matches!(event.kind, ChangeKind::Created | ChangeKind::Updated)
}

/// A chat with the current time as its timestamps (read-backs find changes by `updated_at`).
fn chat_now(user: &str, id: &str, title: &str) -> NewChat {
    NewChat::new(user, title).with_id(id)
}

/// User 1 with chat `c1`, and a subscription to user 1's changes made after both.
async fn owner_of_c1(store: &Store) -> Result<(String, ChangeStream)> {
    let owner = user(store, 1).await?.id;
    store
        .chats
        .create(chat_now(&owner, "c1", "Engines"))
        .await?;
    let events = events(store, ChangeFilter::user(&owner))?;
    Ok((owner, events))
}

/// A new user is announced in the users group, under its own id.
pub async fn a_new_user_is_announced(store: &Store) -> Result<()> {
    let mut events = events(store, ChangeFilter::all())?;
    // Timestamped now: a feed still connecting reads back what changed by `updated_at`.
    let created = store
        .users
        .create(NewUser {
            created_at: None,
            ..new_user(1)
        })
        .await?;
    hear(&mut events, "the new user", |e| {
        e.group == ModelGroup::Users && e.user_id == created.id && created_or_updated(e)
    })
    .await;
    Ok(())
}

/// A user's activity (`set_last_active`) is announced live as an update of the user. It
/// moves no `updated_at`, so no read-back finds it: the subscription first hears another
/// user's rename, which a feed delivers only once it is connected.
pub async fn a_users_activity_is_announced_live(store: &Store) -> Result<()> {
    let (ada, bob) = (user(store, 1).await?, user(store, 2).await?);
    let mut events = events(store, ChangeFilter::all())?;
    let rename = UserPatch {
        name: Some("Ada L.".into()),
        ..UserPatch::default()
    };
    store.users.update(&ada.id, rename).await?;
    hear(&mut events, "the rename", |e| {
        e.group == ModelGroup::Users && e.user_id == ada.id
    })
    .await;
    store
        .users
        .set_last_active(&bob.id, now_ms() / 1000)
        .await?;
    hear(&mut events, "the activity", |e| {
        e.group == ModelGroup::Users && e.user_id == bob.id && e.kind == ChangeKind::Updated
    })
    .await;
    Ok(())
}

/// A new chat is announced to its owner's subscription, with the chat's id.
pub async fn a_new_chat_is_announced_to_its_owner(store: &Store) -> Result<()> {
    let owner = user(store, 1).await?;
    let mut events = events(store, ChangeFilter::user(&owner.id))?;
    store
        .chats
        .create(chat_now(&owner.id, "c1", "Engines"))
        .await?;
    let heard = hear(&mut events, "the new chat", |e| {
        is_chat(e, "c1") && created_or_updated(e)
    })
    .await;
    assert!(
        heard.iter().all(|e| e.user_id == owner.id),
        "a subscription to one user heard another's event: {heard:?}"
    );
    Ok(())
}

/// A renamed chat is announced as updated; when the event names the fields that changed,
/// the title is one of them.
pub async fn a_renamed_chat_is_announced_as_updated(store: &Store) -> Result<()> {
    let (owner, mut events) = owner_of_c1(store).await?;
    let patch = ChatPatch {
        title: Some("Analytical engines".into()),
        ..ChatPatch::default()
    };
    store.chats.update("c1", patch).await?;
    let heard = hear(&mut events, "the rename", |e| {
        is_chat(e, "c1")
            && e.kind == ChangeKind::Updated
            && (e.fields.is_empty() || e.fields.iter().any(|f| f == field::TITLE))
    })
    .await;
    let last = heard.last().expect("the rename");
    assert_eq!(last.user_id, owner);
    Ok(())
}

/// A deleted chat is announced as deleted, to its owner.
pub async fn a_deleted_chat_is_announced(store: &Store) -> Result<()> {
    let (owner, mut events) = owner_of_c1(store).await?;
    store.chats.delete("c1").await?;
    hear(&mut events, "the deletion", |e| {
        is_chat(e, "c1") && e.kind == ChangeKind::Deleted && e.user_id == owner
    })
    .await;
    Ok(())
}

/// A message written into a chat is announced with the chat's and the message's ids, to the
/// chat's owner.
pub async fn a_message_is_announced_with_its_chat(store: &Store) -> Result<()> {
    let (owner, mut events) = owner_of_c1(store).await?;
    let message = NewMessage::text("c1", "m1", "user", "Hello");
    store.messages.upsert(message).await?;
    hear(&mut events, "the message", |e| {
        e.group == ModelGroup::Chats
            && e.chat_id.as_deref() == Some("c1")
            && e.message_id.as_deref() == Some("m1")
            && e.user_id == owner
    })
    .await;
    Ok(())
}

/// A stored file is announced in the files group, with its id, to its owner; so is its
/// deletion.
pub async fn a_file_and_its_deletion_are_announced(store: &Store) -> Result<()> {
    let owner = user(store, 1).await?;
    let mut events = events(store, ChangeFilter::user(&owner.id))?;
    let mut file = new_file(&owner.id, "f1", b"notes", 0);
    file.created_at = None;
    store.files.put(file).await?;
    let is_file =
        |e: &ChangeEvent| e.group == ModelGroup::Files && e.file_id.as_deref() == Some("f1");
    hear(&mut events, "the new file", |e| {
        is_file(e) && created_or_updated(e)
    })
    .await;
    store.files.delete("f1").await?;
    hear(&mut events, "the file's deletion", |e| {
        is_file(e) && e.kind == ChangeKind::Deleted
    })
    .await;
    Ok(())
}

/// A subscription to one user hears nothing of another user's writes.
pub async fn a_subscription_hears_only_its_users_changes(store: &Store) -> Result<()> {
    let (one, two) = (user(store, 1).await?, user(store, 2).await?);
    let mut events = events(store, ChangeFilter::user(&two.id))?;
    store
        .chats
        .create(chat_now(&one.id, "c1", "Theirs"))
        .await?;
    store.chats.create(chat_now(&two.id, "c2", "Mine")).await?;
    let heard = hear(&mut events, "user 2's chat", |e| is_chat(e, "c2")).await;
    assert!(
        heard.iter().all(|e| e.user_id == two.id),
        "user 2's subscription heard another user's change: {heard:?}"
    );
    Ok(())
}

/// A subscriber that asks for what changed since a time before a write, subscribing after
/// it, still hears of the write (read back from the store).
pub async fn what_changed_since_a_time_is_read_back(store: &Store) -> Result<()> {
    let owner = user(store, 1).await?;
    let before = now_ms();
    store
        .chats
        .create(chat_now(&owner.id, "c1", "Engines"))
        .await?;
    let mut events = events(store, ChangeFilter::user(&owner.id).since(before))?;
    hear(&mut events, "the chat written before subscribing", |e| {
        is_chat(e, "c1") && created_or_updated(e)
    })
    .await;
    Ok(())
}

/// [`ChangeFeed::changes_since`] reads back every record a user changed since a time, by the
/// ids the repositories use (a message by its own id, not a storage key), and the deletions
/// remembered for it.
pub async fn changes_since_names_records_by_their_ids(store: &Store) -> Result<()> {
    let owner = user(store, 1).await?;
    let before = now_ms();
    store
        .chats
        .create(chat_now(&owner.id, "c1", "Engines"))
        .await?;
    store
        .chats
        .create(chat_now(&owner.id, "c2", "Gone"))
        .await?;
    store
        .messages
        .upsert(NewMessage::text("c1", "m1", "user", "Hello"))
        .await?;
    let mut file = new_file(&owner.id, "f1", b"notes", 0);
    file.created_at = None;
    store.files.put(file).await?;
    store.chats.delete("c2").await?;
    let events = feed(store)?
        .changes_since(catch_up_from(before), Some(&owner.id))
        .await?;
    let has = |what: &str, wanted: &dyn Fn(&ChangeEvent) -> bool| {
        assert!(
            events.iter().any(wanted),
            "no {what} among what changed since: {events:?}"
        );
    };
    has("chat c1", &|e| is_chat(e, "c1"));
    has("message m1 of c1", &|e| {
        e.chat_id.as_deref() == Some("c1") && e.message_id.as_deref() == Some("m1")
    });
    has("file f1", &|e| {
        e.group == ModelGroup::Files && e.file_id.as_deref() == Some("f1")
    });
    has("the deletion of c2", &|e| {
        is_chat(e, "c2") && e.kind == ChangeKind::Deleted
    });
    assert!(
        events.iter().all(|e| e.user_id == owner.id),
        "another user's change: {events:?}"
    );
    assert!(
        events.windows(2).all(|w| w[0].at <= w[1].at),
        "not oldest first: {events:?}"
    );
    Ok(())
}

/// A message written long before a time and edited after it is read back for that time, by
/// its ids: a feed that reconnected after the edit announces the message again, not only the
/// chat the edit touched (a browser showing the chat would otherwise keep the old text).
pub async fn a_message_edited_since_a_time_is_read_back(store: &Store) -> Result<()> {
    let owner = user(store, 1).await?;
    let long_ago = now_ms() / 1000 - 3600;
    let mut chat = chat_now(&owner.id, "c1", "Engines");
    chat.created_at = Some(long_ago);
    chat.updated_at = Some(long_ago);
    store.chats.create(chat).await?;
    let mut first = NewMessage::text("c1", "m1", "user", "Hello");
    first.created_at = Some(long_ago);
    first.updated_at = Some(long_ago);
    store.messages.upsert(first).await?;
    let before = now_ms();
    store
        .messages
        .upsert(NewMessage::text("c1", "m1", "user", "Hello again"))
        .await?;
    let events = feed(store)?
        .changes_since(catch_up_from(before), Some(&owner.id))
        .await?;
    assert!(
        events.iter().any(|e| e.chat_id.as_deref() == Some("c1")
            && e.message_id.as_deref() == Some("m1")
            && e.at >= catch_up_from(before) * 1000),
        "the edit of m1 is not among what changed since: {events:?}"
    );
    Ok(())
}
