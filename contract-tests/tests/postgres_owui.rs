//! The contract suite on PostgreSQL databases created from Open WebUI 0.12.4's DDL dump.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    common::postgres_from_dump().await
}

chatstore_contract::contract_suite!(postgres_owui, fresh);
