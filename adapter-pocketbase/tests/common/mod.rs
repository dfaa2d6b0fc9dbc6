//! Fresh PocketBase stores for the adapter's own tests: one server
//! (`CHATSTORE_TEST_POCKETBASE_URL`, `..._ADMIN_EMAIL`, `..._ADMIN_PASSWORD`), collections of
//! their own per test under a fresh prefix, dropped when the store goes away.

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chatstore_pocketbase::{PocketBase, PocketBaseConfig};

/// A collection prefix no other test uses.
pub fn fresh_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("a{:x}{:x}{n}_", std::process::id(), nanos % 0xffff_ffff)
}

/// The test server's config with a fresh prefix, or `None` (loudly) when it is not set.
pub fn config() -> Option<PocketBaseConfig> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
    let var = |name: &str| std::env::var(name).expect("admin credentials are set with the URL");
    Some(
        PocketBaseConfig::new(
            url,
            var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
            var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
        )
        .with_prefix(fresh_prefix())
        .dropping_collections_on_drop(),
    )
}

/// A connected backend on fresh collections.
pub async fn backend() -> Option<PocketBase> {
    let config = config()?;
    Some(
        PocketBase::connect(config)
            .await
            .expect("connect to the test PocketBase"),
    )
}
