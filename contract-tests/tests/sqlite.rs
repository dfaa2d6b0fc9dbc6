//! The contract suite on SQLite: a new database file per test, schema created by chatstore.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    Some(common::sqlite_fresh().await)
}

chatstore_contract::contract_suite!(sqlite, fresh);
