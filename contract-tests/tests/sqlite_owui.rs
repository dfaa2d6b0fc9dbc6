//! The contract suite on SQLite databases created from Open WebUI 0.12.4's own DDL dump
//! (with its `alembic_version` row), as an existing `webui.db` is.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    Some(common::sqlite_from_dump().await)
}

// The groups over rows (`chatstore_contract::ROWS_GROUPS`) join once this backend's row store
// is on main; until then they would fail here, as a store without rows must.
chatstore_contract::contract_suite!(
    sqlite_owui,
    fresh,
    [users, chats, tags, messages, files, vectors, store]
);
