//! The vector contracts against PostgreSQL + pgvector reached through PgBouncer in transaction
//! pooling mode (`CHATSTORE_TEST_PGBOUNCER_URL`, in front of `CHATSTORE_TEST_PGVECTOR_URL`): each
//! transaction may land on another server connection, so the adapter must keep no named
//! prepared statement and rely on no session state between transactions. No direct URL is
//! given: collections stay exact, as they do behind a pooler without one.

use chatstore_core::memory::MemoryBackend;
use chatstore_core::{Capabilities, Store};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};

async fn fresh() -> Option<Store> {
    let bouncer = chatstore_contract::require_env("CHATSTORE_TEST_PGBOUNCER_URL")?;
    let server = chatstore_contract::require_env("CHATSTORE_TEST_PGVECTOR_URL")?;
    let direct = chatstore_testkit::fresh_postgres_database(&server).await;
    let name = url_database(&direct);
    let url = chatstore_testkit::with_database(&bouncer, &name);
    let vectors = PgVectorStore::connect(PgVectorConfig::new(url).pool_size(2))
        .await
        .expect("open the pgvector store through PgBouncer");
    assert!(vectors.through_pooler(), "PgBouncer was not detected");
    let store = vectors.into_store(&MemoryBackend::new().store());
    let capabilities = Capabilities {
        users: false,
        chats: false,
        files: false,
        ..store.capabilities()
    };
    Some(Store::new(
        store.backend_name(),
        capabilities,
        store.parts(),
    ))
}

/// The database name of a PostgreSQL URL.
fn url_database(url: &str) -> String {
    url.split('?')
        .next()
        .and_then(|base| base.rsplit('/').next())
        .expect("the database URL names a database")
        .to_owned()
}

chatstore_contract::contract_suite!(pgvector_pgbouncer, fresh);
