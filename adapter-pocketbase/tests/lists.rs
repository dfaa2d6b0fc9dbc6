//! Lists page exactly like the memory model: any offset and limit (ranges past PocketBase's
//! 1000-record pages and no limit included), every order with ties by id in byte order,
//! through the `chat-list` route with and without a tag filter.

mod common;

use chatstore_core::{ChatOrder, ChatQuery, NewChat, NewMessage, PageRequest, Store, Tag, memory};

async fn fill(store: &Store, n: usize) {
    let titles = ["b", "B", "a", "A", "é", "Z", "_x", "%y", "a b"];
    let chats = (0..n)
        .map(|i| {
            let mut c = NewChat::new("u1", titles[i % titles.len()])
                .with_id(format!("c{:04}", (i * 7919) % n))
                .with_tags(if i % 3 == 0 { vec!["t"] } else { vec![] });
            c.created_at = Some(1_700_000_000 + (i % 5) as i64);
            c.updated_at = Some(1_700_000_000 + (i % 11) as i64);
            c
        })
        .collect();
    store.chats.create_many(chats).await.expect("create_many");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_lists_page_and_order_exactly_like_the_memory_model() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let model = memory::store();
    const N: usize = 1050;
    fill(&store, N).await;
    fill(&model, N).await;
    let pages = [
        PageRequest::default(),
        PageRequest::new(0, 10),
        PageRequest::new(999, 3),
        PageRequest::new(1000, 1000),
        PageRequest::new(7, 1001),
        PageRequest {
            offset: 1049,
            limit: None,
        },
        PageRequest::new(2000, 5),
        PageRequest::new(5, 1),
    ];
    for order in [
        ChatOrder::UpdatedDesc,
        ChatOrder::CreatedDesc,
        ChatOrder::TitleAsc,
    ] {
        for page in pages {
            for tagged in [false, true] {
                let mut q = ChatQuery::for_user("u1").order(order).page(page);
                if tagged {
                    q = q.with_tags(["t"]);
                }
                let got = store.chats.list(&q).await.expect("backend list");
                let want = model.chats.list(&q).await.expect("model list");
                assert_eq!(got.total, want.total, "{order:?} {page:?} tagged={tagged}");
                let ids = |p: &chatstore_core::Page<chatstore_core::ChatSummary>| {
                    p.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
                };
                assert_eq!(ids(&got), ids(&want), "{order:?} {page:?} tagged={tagged}");
                assert_eq!(got.items, want.items);
            }
        }
    }
    let untagged = ChatQuery::for_user("u1")
        .untagged()
        .page(PageRequest::new(3, 700));
    assert_eq!(
        store.chats.list(&untagged).await.expect("untagged"),
        model.chats.list(&untagged).await.expect("model")
    );
    let all = store.chats.scan(None, 10_000).await.expect("scan");
    assert_eq!(
        all,
        model.chats.scan(None, 10_000).await.expect("model scan")
    );
}

/// A chat's messages, a message scan, a user's tags and a tag scan longer than PocketBase's 1000-record
/// page read back exactly like the memory model: each page continues after the last record
/// read (by `created_at, msg_id`, by key, by tag id, by user and tag id), with `created_at` ties across the page
/// boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_tags_past_one_page_list_exactly_like_the_memory_model() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let model = memory::store();
    const N: usize = 2_100;
    for s in [&store, &model] {
        s.chats
            .create(NewChat::new("u1", "long").with_id("long"))
            .await
            .expect("chat");
        let messages = (0..N)
            .map(|i| {
                let mut m =
                    NewMessage::text("long", format!("m{:04}", (i * 7919) % N), "user", "x");
                m.created_at = Some(1_700_000_000 + (i % 3) as i64);
                m.updated_at = m.created_at;
                m
            })
            .collect();
        s.messages
            .upsert_many("long", messages)
            .await
            .expect("messages");
        let tags = (0..1_010)
            .map(|i| Tag {
                id: format!("t{:04}", (i * 7919) % 1_010),
                name: format!("T{:04}", (i * 7919) % 1_010),
                user_id: "u1".to_owned(),
                meta: None,
            })
            .collect();
        s.tags.create_many(tags).await.expect("tags");
    }
    let got = store.messages.list("long").await.expect("list");
    assert_eq!(got.len(), N);
    assert_eq!(got, model.messages.list("long").await.expect("model list"));
    let scanned = store.messages.scan(None, 2_500).await.expect("scan");
    assert_eq!(scanned.len(), N);
    assert_eq!(
        scanned,
        model.messages.scan(None, 2_500).await.expect("model scan")
    );
    let tags = store.tags.list("u1").await.expect("tags");
    assert_eq!(tags.len(), 1_010);
    assert_eq!(tags, model.tags.list("u1").await.expect("model tags"));
    let scanned = store.tags.scan(None, 2_000).await.expect("tag scan");
    assert_eq!(scanned.len(), 1_010);
    assert_eq!(
        scanned,
        model.tags.scan(None, 2_000).await.expect("model scan")
    );
}

/// A chat record that does not decode (its `meta` edited into a list, in the admin UI say)
/// fails a scan of its page, and its id is still listed without decoding: a migration reads
/// that page record by record and sets only that one aside. (The ids were listed through the
/// scan itself, which failed the same way, so one such record stopped every run there.)
#[tokio::test]
async fn a_record_that_does_not_decode_is_still_listed_by_id() {
    use chatstore_pocketbase::error::Subject;
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    for id in ["a", "b", "c"] {
        store
            .chats
            .create(NewChat::new("u1", id).with_id(id))
            .await
            .expect("chat");
    }
    pb.client()
        .update_record(
            &pb.collections().chats,
            "b",
            &serde_json::json!({"meta": [1]}),
            Subject::new("chat", "b"),
        )
        .await
        .expect("garble b");
    assert!(store.chats.scan(None, 10).await.is_err());
    assert_eq!(
        store.chats.scan_ids(None, 10).await.expect("ids"),
        ["a", "b", "c"]
    );
    assert_eq!(
        store.chats.scan_ids(Some("a"), 1).await.expect("ids"),
        ["b"]
    );
    assert!(store.chats.get("b").await.is_err());
    assert_eq!(store.chats.get("c").await.expect("c").title, "c");
    assert_eq!(
        store.users.scan_ids(None, 10).await.expect("ids"),
        Vec::<String>::new()
    );
    assert_eq!(
        store.files.scan_ids(None, 10).await.expect("ids"),
        Vec::<String>::new()
    );
}
