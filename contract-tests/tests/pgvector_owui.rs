//! The vector contracts against PostgreSQL + pgvector on a database laid out by Open WebUI
//! itself: `document_chunk` with a vector(1536) column, its collection index and its global
//! HNSW index, created by Open WebUI's DDL before chatstore connects. Smaller vectors are
//! zero-padded into the column and come back at their own dimension.

use chatstore_core::memory::MemoryBackend;
use chatstore_core::{Capabilities, Store};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use sqlx::Connection;

/// Open WebUI 0.12.4's pgvector DDL (`retrieval/vector/dbs/pgvector.py`, default settings with
/// `PGVECTOR_INDEX_METHOD=hnsw`).
const OPEN_WEBUI_DDL: &str = "CREATE EXTENSION IF NOT EXISTS vector; \
    CREATE TABLE document_chunk (id TEXT NOT NULL, vector VECTOR(1536), \
    collection_name TEXT NOT NULL, text TEXT, vmetadata JSONB, PRIMARY KEY (id)); \
    CREATE INDEX IF NOT EXISTS idx_document_chunk_collection_name ON document_chunk (collection_name); \
    CREATE INDEX IF NOT EXISTS idx_document_chunk_vector ON document_chunk \
    USING hnsw (vector vector_cosine_ops) WITH (m = 16, ef_construction = 64); \
    CREATE INDEX IF NOT EXISTS idx_document_chunk_text_search ON document_chunk \
    USING GIN (to_tsvector('simple', coalesce(text, '')))";

async fn fresh() -> Option<Store> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_PGVECTOR_URL")?;
    let url = chatstore_testkit::fresh_postgres_database(&url).await;
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(OPEN_WEBUI_DDL)
        .execute(&mut conn)
        .await
        .expect("Open WebUI's DDL");
    // A config asking for another size must not change an existing table.
    let vectors = PgVectorStore::connect(PgVectorConfig::new(url).dimension(384).pool_size(2))
        .await
        .expect("open the pgvector store");
    assert_eq!(vectors.schema().dimension, Some(1536));
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

chatstore_contract::contract_suite!(pgvector_owui, fresh);
