//! The connection budget: a pool the server cannot hold is refused when the store opens.

mod common;

use chatstore_core::ErrorKind;
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};

/// A pool larger than `max_connections` allows is refused with the numbers and the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_the_server_cannot_hold_is_refused() {
    let Some(url) = common::fresh_database("template1").await else {
        return;
    };
    let config = PgVectorConfig::new(url.clone()).pool_size(100_000);
    let err = match PgVectorStore::connect(config).await {
        Ok(_) => panic!("a pool of 100000 connections was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let text = err.to_string();
    assert!(text.contains("max_connections"), "{text}");
    assert!(text.contains("CHATSTORE_POOL_SIZE"), "{text}");
    let store = PgVectorStore::connect(PgVectorConfig::new(url).pool_size(2))
        .await
        .expect("a small pool fits");
    store.pool().close().await;
}
