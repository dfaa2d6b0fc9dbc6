//! The vector contracts against a Chroma server (`CHATSTORE_TEST_CHROMA_URL`, started by
//! scripts/services.sh), on a fresh Chroma database per test.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::memory::MemoryBackend;
use chatstore_core::{Capabilities, Store};

async fn fresh() -> Option<Store> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_CHROMA_URL")?;
    let config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    let vectors = ChromaStore::connect(config)
        .await
        .expect("open the Chroma store");
    Some(vectors_only(
        vectors.into_store(&MemoryBackend::new().store()),
    ))
}

/// The store with only its vectors declared (the rest is the memory backend, there only to
/// fill the `Store`), so the suite runs the vector contracts on Chroma and nothing else.
fn vectors_only(store: Store) -> Store {
    let capabilities = Capabilities {
        users: false,
        chats: false,
        files: false,
        ..store.capabilities()
    };
    Store::new(store.backend_name(), capabilities, store.parts())
}

chatstore_contract::contract_suite!(chroma, fresh);
