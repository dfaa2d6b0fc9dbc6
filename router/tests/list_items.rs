//! `chats.list_items` (a list page without its total) is routed like `chats.list`: `shadow`
//! answers the old store's items and compares the new store's, `new` reads the new store.
//! In-memory stores, so it runs everywhere.

mod common;

use chatstore_core::{ChatPatch, ChatQuery, NewChat, Store, memory};
use chatstore_router::{Phase, Router};

/// A fixed creation time, so both stores hold the same chats.
const T0: i64 = 1_704_067_200;

fn ids(items: &[chatstore_core::ChatSummary]) -> Vec<&str> {
    items.iter().map(|c| c.id.as_str()).collect()
}

/// A router in `phase` over two memory stores that both hold Ada (`u1`) and two chats, and
/// its new store.
async fn router_with_chats(phase: Phase, dir: &std::path::Path) -> (Router, Store) {
    let (old, new) = (memory::store(), memory::store());
    common::same_user(&[&old, &new], "u1").await;
    for store in [&old, &new] {
        for (id, title) in [("c1", "Engines"), ("c2", "Looms")] {
            let chat = NewChat {
                created_at: Some(T0),
                ..NewChat::new("u1", title).with_id(id)
            };
            store.chats.create(chat).await.expect("create a chat");
        }
    }
    let router = Router::builder(old)
        .new_store_for_all(&new)
        .phase_for_all(phase)
        .repair_log(dir.join("repair.jsonl"))
        .shadow_log(Some(dir.join("diffs.jsonl")))
        .build()
        .expect("build a router");
    (router, new)
}

#[tokio::test]
async fn a_shadowed_list_items_answers_the_old_store_and_reports_a_difference() {
    let dir = common::temp_folder("list-items");
    let (router, new) = router_with_chats(Phase::Shadow, &dir).await;
    let store = router.store();
    let q = ChatQuery::for_user("u1");
    let before = store.chats.list_items(&q).await.expect("list_items");
    assert_eq!(before, store.chats.list(&q).await.expect("list").items);
    router.shadow_settled().await;
    assert_eq!(router.stats().shadow_diffs, 0);

    new.chats
        .update(
            "c1",
            ChatPatch {
                title: Some("Tampered".into()),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("change the new store directly");
    let after = store
        .chats
        .list_items(&q)
        .await
        .expect("shadowed list_items");
    assert!(after.iter().all(|c| c.title != "Tampered"), "{after:?}");
    router.shadow_settled().await;
    assert_eq!(router.stats().shadow_diffs, 1, "{:?}", router.stats());
    let log = std::fs::read_to_string(dir.join("diffs.jsonl")).expect("diff log");
    assert!(log.contains("\"chats.list_items\""), "{log}");
}

#[tokio::test]
async fn list_items_in_new_reads_the_new_store() {
    let dir = common::temp_folder("list-items");
    let (router, new) = router_with_chats(Phase::New, &dir).await;
    new.chats
        .create(NewChat::new("u1", "Only new").with_id("c3"))
        .await
        .expect("a chat on the new store only");
    let items = router
        .store()
        .chats
        .list_items(&ChatQuery::for_user("u1"))
        .await
        .expect("list_items");
    assert!(ids(&items).contains(&"c3"), "{items:?}");
}
