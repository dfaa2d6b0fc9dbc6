//! Deleting a user deletes the vectors of the user's memories (`user-memory-{id}`) on the
//! real vector stores too: the vector suites declare vectors alone, so the workspace contract
//! that checks this ran on the memory backend only. Here each vector store serves the vectors
//! of a store whose users and workspace are the memory backend's.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::memory::MemoryBackend;
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};

#[tokio::test]
async fn deleting_a_user_deletes_their_memory_vectors_on_chroma() {
    let Some(url) = chatstore_contract::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    let vectors = ChromaStore::connect(config).await.expect("open Chroma");
    let store = vectors.into_store(&MemoryBackend::new().store());
    assert!(store.capabilities().users && store.capabilities().vectors);
    chatstore_contract::workspace::deleting_a_user_deletes_their_memory_vectors(&store)
        .await
        .expect("the contract");
}

#[tokio::test]
async fn deleting_a_user_deletes_their_memory_vectors_on_pgvector() {
    let Some(url) = chatstore_contract::require_env("CHATSTORE_TEST_PGVECTOR_URL") else {
        return;
    };
    let url = chatstore_testkit::fresh_postgres_database(&url).await;
    let vectors = PgVectorStore::connect(PgVectorConfig::new(url).pool_size(2))
        .await
        .expect("open pgvector");
    let store = vectors.into_store(&MemoryBackend::new().store());
    assert!(store.capabilities().users && store.capabilities().vectors);
    chatstore_contract::workspace::deleting_a_user_deletes_their_memory_vectors(&store)
        .await
        .expect("the contract");
}
