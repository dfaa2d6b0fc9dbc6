//! The contract suite against PocketBase (`CHATSTORE_TEST_POCKETBASE_URL`,
//! `..._ADMIN_EMAIL`, `..._ADMIN_PASSWORD`; `scripts/services.sh start` sets them). Tests run
//! in parallel on one server: every store gets collections of its own, under a fresh prefix.
//! Vectors live elsewhere (PocketBase answers `Unsupported`, checked by the `store` group).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chatstore_pocketbase::{PocketBase, PocketBaseConfig};

fn fresh_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("t{:x}{:x}{n}_", std::process::id(), nanos % 0xffff_ffff)
}

async fn fresh() -> Option<chatstore_core::Store> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with the URL"))
    };
    let config = PocketBaseConfig::new(
        url,
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
    )
    .with_prefix(fresh_prefix())
    .dropping_collections_on_drop();
    match PocketBase::connect(config).await {
        Ok(pb) => Some(pb.store()),
        Err(e) => panic!("cannot connect to PocketBase: {e}"),
    }
}

chatstore_contract::contract_suite!(pocketbase, fresh);
