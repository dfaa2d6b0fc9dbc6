//! The vector contracts against PostgreSQL + pgvector, on a fresh database per test whose
//! `document_chunk` table chatstore creates (vector(1536), Open WebUI's default size).

use chatstore_core::memory::MemoryBackend;
use chatstore_core::{Capabilities, Store};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};

/// Creates an empty database `t_<uuid>` on the test server and returns its URL.
async fn fresh_database() -> Option<String> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_PGVECTOR_URL")?;
    Some(chatstore_testkit::fresh_postgres_database(&url).await)
}

async fn fresh() -> Option<Store> {
    let url = fresh_database().await?;
    let vectors = PgVectorStore::connect(PgVectorConfig::new(url).pool_size(2))
        .await
        .expect("open the pgvector store");
    Some(vectors_only(
        vectors.into_store(&MemoryBackend::new().store()),
    ))
}

/// The store with only its vectors declared (the rest is the memory backend, there only to
/// fill the `Store`), so the suite runs the vector contracts on pgvector and nothing else.
fn vectors_only(store: Store) -> Store {
    let capabilities = Capabilities {
        users: false,
        chats: false,
        files: false,
        ..store.capabilities()
    };
    Store::new(store.backend_name(), capabilities, store.parts())
}

chatstore_contract::contract_suite!(pgvector, fresh);
