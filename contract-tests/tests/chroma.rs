//! The vector contracts against a Chroma server (`CHATSTORE_TEST_CHROMA_URL`, started by
//! scripts/services.sh), on a fresh Chroma database per test.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::Store;
use chatstore_core::memory::MemoryBackend;

async fn fresh() -> Option<Store> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_CHROMA_URL")?;
    let config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    let vectors = ChromaStore::connect(config)
        .await
        .expect("open the Chroma store");
    Some(vectors.into_store(&MemoryBackend::new().store()))
}

chatstore_contract::contract_suite!(chroma, fresh, [vectors]);
