//! The contract suite on PostgreSQL (`CHATSTORE_TEST_POSTGRES_URL`): a new database per test,
//! schema created by chatstore. Vectors on PostgreSQL are the pgvector adapter's.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    common::postgres_fresh().await
}

// The groups over rows (`chatstore_contract::ROWS_GROUPS`) join once this backend's row store
// is on main; until then they would fail here, as a store without rows must.
chatstore_contract::contract_suite!(
    postgres,
    fresh,
    [users, chats, tags, messages, files, vectors, store]
);
