//! The contract suite on PostgreSQL (`CHATSTORE_TEST_POSTGRES_URL`): a new database per test,
//! schema created by chatstore. Vectors on PostgreSQL are the pgvector adapter's.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    common::postgres_fresh().await
}

chatstore_contract::contract_suite!(postgres, fresh);
