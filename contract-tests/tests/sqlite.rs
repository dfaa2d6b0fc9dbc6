//! The contract suite on SQLite: a new database file per test, schema created by chatstore.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    Some(common::sqlite_fresh().await)
}

// The groups over rows (`chatstore_contract::ROWS_GROUPS`) join once this backend's row store
// is on main; until then they would fail here, as a store without rows must.
chatstore_contract::contract_suite!(
    sqlite,
    fresh,
    [users, chats, tags, messages, files, vectors, store]
);
