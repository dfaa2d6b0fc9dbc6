//! The contract suite on in-memory SQLite databases (`sqlite::memory:`, one pooled connection).

async fn fresh() -> Option<chatstore_core::Store> {
    Some(
        chatstore_sql::connect("sqlite::memory:", chatstore_sql::SqlOptions::default())
            .await
            .expect("open an in-memory SQLite database"),
    )
}

chatstore_contract::contract_suite!(sqlite_memory, fresh);
