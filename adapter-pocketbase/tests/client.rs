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

/// Sets the superuser's password on `server` to what it is (an operator rotating it would
/// change it): PocketBase renews the record's token key, so every token issued before stops
/// working.
async fn invalidate_tokens(server: &chatstore_testkit::PrivatePocketBase) {
    use chatstore_testkit::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD};
    let http = reqwest::Client::new();
    let auth: serde_json::Value = http
        .post(format!(
            "{}/api/collections/_superusers/auth-with-password",
            server.http_url()
        ))
        .json(&serde_json::json!({"identity": POCKETBASE_EMAIL, "password": POCKETBASE_PASSWORD}))
        .send()
        .await
        .expect("log in")
        .json()
        .await
        .expect("auth answer");
    let (token, id) = (
        auth["token"].as_str().expect("token"),
        auth["record"]["id"].as_str().expect("record id"),
    );
    let status = http
        .patch(format!(
            "{}/api/collections/_superusers/records/{id}",
            server.http_url()
        ))
        .header("Authorization", token)
        .json(&serde_json::json!({
            "password": POCKETBASE_PASSWORD,
            "passwordConfirm": POCKETBASE_PASSWORD,
        }))
        .send()
        .await
        .expect("set the password")
        .status();
    assert!(status.is_success(), "setting the password: {status}");
}

/// After the superuser's tokens were invalidated on the server, PocketBase answers chatstore's
/// collections (only superusers may use them) with 403 as to a guest, not with the 401 of its
/// superuser-only routes, and a file token made before reads every file as missing. The store
/// logs in again, or takes a fresh file token, and reads, writes, batches and file reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_after_the_tokens_are_invalidated_on_the_server() {
    use chatstore_core::NewFile;
    use chatstore_testkit::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD, PrivatePocketBase};
    let Some(server) = PrivatePocketBase::start() else {
        return;
    };
    let pb = PocketBase::connect(PocketBaseConfig::new(
        server.http_url(),
        POCKETBASE_EMAIL,
        POCKETBASE_PASSWORD,
    ))
    .await
    .expect("connect");
    let store = pb.store();
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create");
    let file = store
        .files
        .put(NewFile::new("u1", "notes.txt", b"kept".to_vec()))
        .await
        .expect("put");
    assert_eq!(store.files.read(&file.id).await.expect("read"), b"kept");

    invalidate_tokens(&server).await;
    assert_eq!(
        store.users.get("u1").await.expect("a read").name,
        "Ada",
        "a read after the invalidation"
    );
    invalidate_tokens(&server).await;
    store
        .users
        .create_many(vec![
            NewUser::new("bob@example.com", "Bob").with_id("u2"),
            NewUser::new("cy@example.com", "Cy").with_id("u3"),
        ])
        .await
        .expect("a batch after the invalidation");
    invalidate_tokens(&server).await;
    assert_eq!(
        store.files.read(&file.id).await.expect("a file read"),
        b"kept",
        "a file read with the file token made before"
    );
    invalidate_tokens(&server).await;
    store
        .files
        .put(NewFile::new("u1", "more.txt", b"more".to_vec()))
        .await
        .expect("a file put after the invalidation");
    assert_eq!(
        store
            .users
            .list(PageRequest::default())
            .await
            .expect("list")
            .items
            .len(),
        3
    );
}
