//! The contract suite on in-memory SQLite databases (`sqlite::memory:`, one pooled connection).

async fn fresh() -> Option<chatstore_core::Store> {
    Some(
        chatstore_sql::connect("sqlite::memory:", chatstore_sql::SqlOptions::default())
            .await
            .expect("open an in-memory SQLite database"),
    )
}

// The groups over rows (`chatstore_contract::ROWS_GROUPS`) join once this backend's row store
// is on main; until then they would fail here, as a store without rows must.
chatstore_contract::contract_suite!(
    sqlite_memory,
    fresh,
    [users, chats, tags, messages, files, vectors, store]
);
