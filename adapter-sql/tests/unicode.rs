//! Non-ASCII text behaves exactly as in the memory backend: Unicode case folding for emails
//! and title search (SQLite's own `lower()` folds ASCII only), bytewise order for titles and
//! ids (PostgreSQL's collation may differ; chatstore sorts with `COLLATE "C"`).

mod support;

use chatstore_core::{ChatOrder, ChatQuery, ErrorKind, NewChat, NewUser, Store, memory};
use support::empty_databases;

async fn titles_in_order(store: &Store, order: ChatOrder, title: Option<&str>) -> Vec<String> {
    let mut query = ChatQuery::for_user("u1").order(order);
    query.title = title.map(str::to_owned);
    store
        .chats
        .list(&query)
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|s| s.title)
        .collect()
}

async fn seed(store: &Store) {
    let titles = [
        "b",
        "A",
        "École",
        "a",
        "Z",
        "école",
        "Ärger",
        "zebra",
        "_x",
        "%y",
        "ÉCOLE du soir",
        "ß",
        "SS",
        "Σίσυφος",
        "ΣΊΣΥΦΟΣ",
    ];
    for (i, title) in titles.iter().enumerate() {
        store
            .chats
            .create(NewChat {
                created_at: Some(1_700_000_000 + (i as i64 % 3)),
                ..NewChat::new("u1", *title).with_id(format!("c{i:02}"))
            })
            .await
            .expect("chat");
    }
}

#[tokio::test]
async fn title_order_and_search_match_the_memory_backend() {
    let reference = memory::store();
    seed(&reference).await;
    for db in empty_databases().await {
        let store = db.store().await;
        seed(&store).await;
        for order in [
            ChatOrder::TitleAsc,
            ChatOrder::UpdatedDesc,
            ChatOrder::CreatedDesc,
        ] {
            for title in [
                None,
                Some("école"),
                Some("ÉCOLE"),
                Some("σίσυφος"),
                Some("ss"),
                Some("%"),
            ] {
                assert_eq!(
                    titles_in_order(&store, order, title).await,
                    titles_in_order(&reference, order, title).await,
                    "order {order:?}, title {title:?}"
                );
            }
        }
        db.finish().await;
    }
}

#[tokio::test]
async fn emails_fold_case_beyond_ascii() {
    for db in empty_databases().await {
        let store = db.store().await;
        store
            .users
            .create(NewUser::new("Émile.Zoë@Example.com", "Émile").with_id("u1"))
            .await
            .expect("user");
        let twin = store
            .users
            .create(NewUser::new("émile.zoË@example.COM", "Twin"))
            .await;
        assert_eq!(twin.expect_err("taken").kind(), ErrorKind::Conflict);
        assert_eq!(
            store
                .users
                .get_by_email("ÉMILE.ZOË@EXAMPLE.COM")
                .await
                .expect("found")
                .id,
            "u1"
        );
        store
            .users
            .create(NewUser::new("emile.zoe@example.com", "Other").with_id("u2"))
            .await
            .expect("a different address");
        let update = store
            .users
            .update(
                "u2",
                chatstore_core::UserPatch {
                    email: Some("ÉMILE.zoë@example.com".into()),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(update.expect_err("taken").kind(), ErrorKind::Conflict);
        db.finish().await;
    }
}

#[tokio::test]
async fn non_ascii_tags_filter_and_count() {
    for db in empty_databases().await {
        let store = db.store().await;
        store
            .chats
            .create(
                NewChat::new("u1", "x")
                    .with_id("c1")
                    .with_tags(["Été 2024", "Ölpreis"]),
            )
            .await
            .expect("chat");
        store
            .chats
            .create(
                NewChat::new("u1", "y")
                    .with_id("c2")
                    .with_tags(["été 2024"]),
            )
            .await
            .expect("chat");
        let page = store
            .chats
            .list(&ChatQuery::for_user("u1").with_tags(["ÉTÉ 2024"]))
            .await
            .expect("list");
        assert_eq!(page.total, 2);
        let usage = store.tags.usage("u1").await.expect("usage");
        let counts: Vec<(String, String, u64)> = usage
            .into_iter()
            .map(|u| (u.tag.id, u.tag.name, u.chats))
            .collect();
        assert_eq!(
            counts,
            [
                ("été_2024".to_owned(), "Été 2024".to_owned(), 2),
                ("ölpreis".to_owned(), "Ölpreis".to_owned(), 1)
            ]
        );
        db.finish().await;
    }
}
