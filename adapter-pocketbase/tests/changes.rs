//! The PocketBase change feed on real servers: live events from the realtime API, and nothing
//! lost across a lost stream or a killed and restarted server (what was written meanwhile,
//! deletions and tag changes included, arrives through the catch-up).

mod common;

use std::time::Duration;

use chatstore_core::changes::{ChangeEvent, ChangeFilter, ChangeKind, ChangeStream, subscribe};
use chatstore_core::{ModelGroup, NewChat, NewFile, NewMessage, NewUser, Store};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use chatstore_testkit::{FaultProxy, POCKETBASE_EMAIL, POCKETBASE_PASSWORD, PrivatePocketBase};
use futures::StreamExt;

/// A predicate an expected event matches.
type Wanted = Box<dyn Fn(&ChangeEvent) -> bool>;

/// Waits up to 30 s for an event matching every predicate (in any order); panics naming the
/// ones that never came.
async fn expect_all(events: &mut ChangeStream, mut wanted: Vec<(&str, Wanted)>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !wanted.is_empty() {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        let Ok(Some(event)) = next else {
            let missing: Vec<&str> = wanted.iter().map(|(name, _)| *name).collect();
            panic!("never delivered: {missing:?}");
        };
        wanted.retain(|(_, matches)| !matches(&event));
    }
}

fn chat_event(kind: ChangeKind, chat: &str) -> Wanted {
    let chat = chat.to_owned();
    Box::new(move |e| {
        e.group == ModelGroup::Chats
            && e.kind == kind
            && e.message_id.is_none()
            && e.chat_id.as_deref() == Some(chat.as_str())
    })
}

/// A tag change of `chat` made at or after `since` (epoch ms).
fn tags_changed(chat: &str, since: i64) -> Wanted {
    let chat = chat.to_owned();
    Box::new(move |e| {
        e.group == ModelGroup::Chats
            && e.chat_id.as_deref() == Some(chat.as_str())
            && e.kind == ChangeKind::Updated
            && e.fields.iter().any(|f| f == "tags")
            && e.at >= since
    })
}

fn message_event(chat: &str, message: &str, owner: &str) -> Wanted {
    let (chat, message, owner) = (chat.to_owned(), message.to_owned(), owner.to_owned());
    Box::new(move |e| {
        e.chat_id.as_deref() == Some(chat.as_str())
            && e.message_id.as_deref() == Some(message.as_str())
            && e.user_id == owner
    })
}

async fn connect(url: &str, prefix: &str) -> PocketBase {
    PocketBase::connect(
        PocketBaseConfig::new(url, POCKETBASE_EMAIL, POCKETBASE_PASSWORD).with_prefix(prefix),
    )
    .await
    .expect("connect")
}

/// A store on the shared test server under `prefix`, reached at `url`; only the `owner` drops
/// the collections when it goes.
async fn shared(prefix: &str, url: &str, owner: bool) -> PocketBase {
    let mut config = common::config().expect("server");
    config.url = url.to_owned();
    config.drop_collections_on_drop = owner;
    PocketBase::connect(config.with_prefix(prefix))
        .await
        .expect("connect to the test PocketBase")
}

async fn seed(store: &Store, user: &str) -> (String, String) {
    store
        .users
        .create(NewUser::new(format!("{user}@example.com"), user).with_id(user))
        .await
        .expect("user");
    let kept = store
        .chats
        .create(NewChat::new(user, "Kept").with_tags(["work"]))
        .await
        .expect("chat");
    let doomed = store
        .chats
        .create(NewChat::new(user, "Doomed"))
        .await
        .expect("chat");
    (kept.id, doomed.id)
}

/// Live events: users, chats, messages (with their chat's owner), files, deletions.
#[tokio::test]
async fn writes_arrive_as_live_events() {
    let Some(config) = common::config() else {
        return;
    };
    let pb = PocketBase::connect(config).await.expect("connect");
    let store = pb.store();
    assert!(store.capabilities().change_feed);
    let feed = store.changes().expect("a change feed");
    let mut events = subscribe(feed, ChangeFilter::all());
    // Let the listener subscribe before writing (a write before that arrives by catch-up).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (kept, doomed) = seed(&store, "ada").await;
    store
        .messages
        .upsert(NewMessage::text(&kept, "m1", "user", "Hello"))
        .await
        .expect("message");
    let file = store
        .files
        .put(NewFile::new("ada", "a.txt", b"bytes".to_vec()))
        .await
        .expect("file");
    store.chats.delete(&doomed).await.expect("delete");
    let file_id = file.id.clone();
    expect_all(
        &mut events,
        vec![
            (
                "user created",
                Box::new(|e: &ChangeEvent| e.group == ModelGroup::Users && e.user_id == "ada"),
            ),
            ("chat created", chat_event(ChangeKind::Created, &kept)),
            ("message", message_event(&kept, "m1", "ada")),
            (
                "file created",
                Box::new(move |e: &ChangeEvent| e.file_id.as_deref() == Some(file_id.as_str())),
            ),
            ("chat deleted", chat_event(ChangeKind::Deleted, &doomed)),
        ],
    )
    .await;
}

/// Writes made while the feed's stream is cut (the network paused) arrive after it
/// reconnects: creations and updates by `updated_at`, deletions and tag changes from the
/// change records.
#[tokio::test]
async fn what_changed_while_the_stream_was_cut_arrives_after_it_reconnects() {
    let Some(config) = common::config() else {
        return;
    };
    let target = config
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = FaultProxy::start(&target).await.expect("proxy");
    let prefix = common::fresh_prefix();
    let writer = shared(&prefix, &config.url, true).await.store();
    let listener = shared(
        &prefix,
        &format!("http://127.0.0.1:{}", proxy.port()),
        false,
    )
    .await;
    let feed = listener.store().changes().expect("a change feed");
    let mut events = subscribe(feed, ChangeFilter::all());
    let (kept, doomed) = seed(&writer, "bob").await;
    expect_all(
        &mut events,
        vec![(
            "doomed created",
            chat_event(ChangeKind::Created, &doomed).or_updated(&doomed),
        )],
    )
    .await;

    proxy.pause();
    proxy.reset();
    let cut_at = chatstore_core::changes::now_ms();
    let added = writer
        .chats
        .create(NewChat::new("bob", "Written while cut off"))
        .await
        .expect("chat");
    writer.chats.add_tag(&kept, "urgent").await.expect("tag");
    writer.chats.delete(&doomed).await.expect("delete");
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.resume();

    expect_all(
        &mut events,
        vec![
            (
                "created meanwhile",
                chat_event(ChangeKind::Created, &added.id).or_updated(&added.id),
            ),
            ("tag change", tags_changed(&kept, cut_at)),
            (
                "deleted meanwhile",
                chat_event(ChangeKind::Deleted, &doomed),
            ),
        ],
    )
    .await;
}

/// A killed and restarted PocketBase: the feed reconnects and everything written after the
/// restart arrives, live or caught up.
#[tokio::test]
async fn a_killed_and_restarted_server_loses_no_change() {
    let Some(mut server) = PrivatePocketBase::start() else {
        return;
    };
    let prefix = common::fresh_prefix();
    let pb = connect(&server.http_url(), &prefix).await;
    let store = pb.store();
    let feed = store.changes().expect("a change feed");
    let mut events = subscribe(feed.clone(), ChangeFilter::all());
    let (kept, doomed) = seed(&store, "cy").await;
    expect_all(
        &mut events,
        vec![(
            "doomed created",
            chat_event(ChangeKind::Created, &doomed).or_updated(&doomed),
        )],
    )
    .await;

    server.kill();
    server.start_again();
    // Straight away, before the feed has found the server again.
    let writer = connect(&server.http_url(), &prefix).await.store();
    let added = writer
        .chats
        .create(NewChat::new("cy", "After the restart"))
        .await
        .expect("chat");
    writer.chats.delete(&doomed).await.expect("delete");
    writer
        .messages
        .upsert(NewMessage::text(&kept, "m2", "user", "still here"))
        .await
        .expect("message");
    expect_all(
        &mut events,
        vec![
            (
                "created after the restart",
                chat_event(ChangeKind::Created, &added.id).or_updated(&added.id),
            ),
            (
                "deleted after the restart",
                chat_event(ChangeKind::Deleted, &doomed),
            ),
            (
                "message after the restart",
                message_event(&kept, "m2", "cy"),
            ),
        ],
    )
    .await;
    assert!(feed.hub().status().reconnects >= 1, "the feed reconnected");
}

/// A created record read back after a reconnect is reported as updated (the store cannot tell).
trait OrUpdated {
    fn or_updated(self, chat: &str) -> Wanted;
}

impl OrUpdated for Wanted {
    fn or_updated(self, chat: &str) -> Wanted {
        let updated = chat_event(ChangeKind::Updated, chat);
        Box::new(move |e| self(e) || updated(e))
    }
}
