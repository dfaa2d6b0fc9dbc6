//! Client behaviour: errors by kind for an unreachable server and bad credentials, and bulk
//! writes that are all or nothing whatever their size.

mod common;

use std::time::{Duration, Instant};

use chatstore_core::{ErrorKind, NewUser, PageRequest};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let mut config = PocketBaseConfig::new("http://127.0.0.1:9", "a@x.io", "pw");
    config.timeout = Duration::from_secs(2);
    let err = PocketBase::connect(config)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn wrong_credentials_are_a_clear_error() {
    let Some(mut config) = common::config() else {
        return;
    };
    config.admin_password = "not-the-password".into();
    config.drop_collections_on_drop = false;
    let err = PocketBase::connect(config).await.expect_err("bad password");
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(err.to_string().contains("ADMIN_PASSWORD"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_refreshes_and_calls_go_on() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    store
        .users
        .create(NewUser::new("a@x.io", "A").with_id("u1"))
        .await
        .expect("create");
    pb.client().refresh_token().await.expect("auth-refresh");
    assert_eq!(
        store.users.get("u1").await.expect("get after refresh").id,
        "u1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_writes_beyond_one_batch_are_all_or_nothing() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let users = |n: usize| -> Vec<NewUser> {
        (0..n)
            .map(|i| {
                NewUser::new(format!("user{i}@x.io"), format!("U{i}")).with_id(format!("u{i:05}"))
            })
            .collect()
    };
    for n in [300, 1500] {
        let mut bad = users(n);
        bad[n - 1].email = "USER0@x.io".into();
        let err = store
            .users
            .create_many(bad)
            .await
            .expect_err("duplicate email");
        assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
        let page = store.users.list(PageRequest::first(1)).await.expect("list");
        assert_eq!(
            page.total, 0,
            "nothing of the failed bulk write of {n} is kept"
        );
    }
    let started = Instant::now();
    store
        .users
        .create_many(users(1000))
        .await
        .expect("one batch");
    let one_batch = started.elapsed();
    let page = store
        .users
        .list(PageRequest::new(990, 20))
        .await
        .expect("list");
    assert_eq!(page.total, 1000);
    assert_eq!(page.items.len(), 10);
    eprintln!("create_many of 1000 users (one batch request): {one_batch:?}");
}
