//! The contract suite on SQLite databases created from Open WebUI 0.12.4's own DDL dump
//! (with its `alembic_version` row), as an existing `webui.db` is.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    Some(common::sqlite_from_dump().await)
}

chatstore_contract::contract_suite!(sqlite_owui, fresh);
