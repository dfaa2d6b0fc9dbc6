//! The contract suite on PostgreSQL databases created from Open WebUI 0.12.4's DDL dump.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    common::postgres_from_dump().await
}

// The groups over rows (`chatstore_contract::ROWS_GROUPS`) join once this backend's row store
// is on main; until then they would fail here, as a store without rows must.
chatstore_contract::contract_suite!(
    postgres_owui,
    fresh,
    [users, chats, tags, messages, files, vectors, store]
);
