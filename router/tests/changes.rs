//! The routed store's change feed announces every write in every phase, from the store the
//! group's reads come from (the old store in `old`, `dual` and `shadow`, the new store in `new`
//! and `new-only`), across phase changes made at run time either way, live and read back after
//! a gap; a consumer reading the record an event names finds the change there.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chatstore_core::changes::{ChangeEvent, ChangeFilter, ChangeStream, subscribe};
use chatstore_core::{ModelGroup, NewChat, NewUser, Store, memory};
use chatstore_router::{Phase, Router};
use futures::StreamExt;

/// How long a test waits for an event it expects.
const PATIENCE: Duration = Duration::from_secs(10);

fn feed(store: &Store) -> ChangeStream {
    subscribe(
        store.changes().expect("the routed store has a change feed"),
        ChangeFilter::all(),
    )
}

/// Reads events until one is about each of `chats` (by chat id), or fails after `PATIENCE`.
async fn hear_chats(events: &mut ChangeStream, chats: &[&str]) -> Vec<ChangeEvent> {
    let mut missing: BTreeSet<&str> = chats.iter().copied().collect();
    let mut heard = Vec::new();
    while !missing.is_empty() {
        let event = tokio::time::timeout(PATIENCE, events.next())
            .await
            .unwrap_or_else(|_| panic!("no event for {missing:?} within {PATIENCE:?}"))
            .expect("the feed ended");
        if let Some(chat) = event.chat_id.as_deref() {
            missing.remove(chat);
        }
        heard.push(event);
    }
    heard
}

async fn create_chat(store: &Store, user: &str, id: &str) {
    store
        .chats
        .create(NewChat::new(user, id).with_id(id))
        .await
        .expect("create a chat");
}

async fn ada(store: &Store) {
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create u1");
}

/// New-only from the start: writes reach only the new store, and its feed announces them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_only_writes_are_announced_from_the_new_store() {
    let (old, new) = (memory::store(), memory::store());
    let router = common::router(old, &new, Phase::NewOnly);
    let store = router.store();
    let mut events = feed(&store);
    ada(&store).await;
    create_chat(&store, "u1", "c1").await;
    let heard = hear_chats(&mut events, &["c1"]).await;
    assert!(
        heard.iter().any(|e| e.group == ModelGroup::Users),
        "the user's creation is announced too: {heard:?}"
    );
}

/// In the phases that write both stores, each write is announced once (by the old store),
/// not once per store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_both_stores_is_announced_once() {
    let (old, new) = (memory::store(), memory::store());
    let router = common::router(old, &new, Phase::New);
    let store = router.store();
    let mut events = feed(&store);
    ada(&store).await;
    create_chat(&store, "u1", "c1").await;
    create_chat(&store, "u1", "c2").await;
    let heard = hear_chats(&mut events, &["c1", "c2"]).await;
    // Anything more would arrive within moments.
    let late = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
    let c1 = heard
        .iter()
        .filter(|e| e.chat_id.as_deref() == Some("c1"))
        .count();
    assert_eq!(c1, 1, "c1 announced once: {heard:?}");
    assert!(late.is_err(), "no second announcement: {late:?}");
}

/// Chats written while a writer keeps writing and the groups' reads move at run time, to the
/// new store (`shadow` to `new`) and back (`new` to `shadow`, a backout): every chat written
/// before, during and after each move is announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_reads_at_run_time_either_way_loses_no_announcement() {
    for (from, to) in [(Phase::Shadow, Phase::New), (Phase::New, Phase::Shadow)] {
        let (old, new) = (memory::store(), memory::store());
        let router = common::router(old, &new, from);
        let store = router.store();
        let mut events = feed(&store);
        ada(&store).await;
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    create_chat(&store, "u1", &format!("c{i}")).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(40)).await;
        for group in [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files] {
            router.set_phase(group, to).await.expect("move the reads");
        }
        writer.await.expect("the writer");
        let ids: Vec<String> = (0..60).map(|i| format!("c{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        hear_chats(&mut events, &ids).await;
    }
}

/// In `new`, reads come from the new store, and so do the announcements: a consumer that
/// reads the record an event names finds it, even when the new store is slower than the old
/// one (its half of the write lands after the old store announced it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_new_an_announced_record_can_be_read_through_the_router() {
    let (old, new) = (memory::store(), memory::store());
    let slow: common::Hook = Box::pin(tokio::time::sleep(Duration::from_millis(300)));
    let slow_new = common::HookedUsers::around(&new, None, Some(slow));
    let router = common::router(old, &slow_new, Phase::New);
    let store = router.store();
    let mut events = feed(&store);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { ada(&store).await })
    };
    let event = tokio::time::timeout(PATIENCE, events.next())
        .await
        .expect("an event in time")
        .expect("the feed ended");
    assert_eq!(event.group, ModelGroup::Users, "{event:?}");
    assert!(
        store.users.get(&event.user_id).await.is_ok(),
        "the announced user is not there yet for a reader of the routed store"
    );
    writer.await.expect("the writer");
}

/// A subscriber that asks for what changed since a time gets it from the store that holds it:
/// the old store for the chats written before the group went new-only, the new one after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_back_after_a_gap_covers_both_sides_of_the_change() {
    let (old, new) = (memory::store(), memory::store());
    let router = common::router(old, &new, Phase::Dual);
    let store = router.store();
    let start = chatstore_core::changes::now_ms();
    ada(&store).await;
    create_chat(&store, "u1", "before").await;
    for group in [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files] {
        router
            .set_phase(group, Phase::NewOnly)
            .await
            .expect("new-only");
    }
    create_chat(&store, "u1", "after").await;
    let feed = store.changes().expect("a change feed");
    let mut events = subscribe(feed, ChangeFilter::all().since(start));
    hear_chats(&mut events, &["before", "after"]).await;
}

/// SQLite (old) and PocketBase (new): once the chats are new-only, a chat created through the
/// router is announced by PocketBase's feed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_only_on_pocketbase_is_announced_by_pocketbase() {
    let Some(new) = common::pocketbase().await else {
        return;
    };
    let router: Router = common::router(common::sqlite().await, &new, Phase::New);
    let store = router.store();
    let mut events = feed(&store);
    ada(&store).await;
    create_chat(&store, "u1", "while-new").await;
    hear_chats(&mut events, &["while-new"]).await;
    for group in [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files] {
        router
            .set_phase(group, Phase::NewOnly)
            .await
            .expect("new-only");
    }
    create_chat(&store, "u1", "new-only").await;
    hear_chats(&mut events, &["new-only"]).await;
    assert!(
        router.old().chats.get("new-only").await.is_err(),
        "the old store never saw the new-only chat"
    );
}

/// A routed feed hears other processes' writes only when every store it passes on does: a
/// bridge run on its own over a router with a SQLite store on either side would miss that
/// side's writes, so it is told (`chatstore bridge` refuses such a store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_feed_hears_other_processes_only_if_every_side_does() {
    let Some(postgres) = common::postgres().await else {
        return;
    };
    let Some(pocketbase) = common::pocketbase().await else {
        return;
    };
    let hears = |old: Store, new: &Store| {
        let logs = common::temp_folder("logs");
        Router::builder(old)
            .new_store(ModelGroup::Chats, new.clone())
            .phase(ModelGroup::Chats, Phase::Dual)
            .repair_log(logs.join("repair.jsonl"))
            .build()
            .expect("a router")
            .store()
            .changes()
            .expect("a routed feed")
            .hears_other_processes()
    };
    assert!(hears(postgres.clone(), &pocketbase));
    assert!(!hears(postgres.clone(), &common::sqlite().await));
    assert!(!hears(common::sqlite().await, &pocketbase));
    assert!(!hears(memory::store(), &postgres));
}
