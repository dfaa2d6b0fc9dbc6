//! The contract suite on PostgreSQL through PgBouncer in transaction pooling mode
//! (`CHATSTORE_TEST_PGBOUNCER_URL`): every transaction may land on another server connection,
//! so nothing may rely on named prepared statements or session state between transactions.

mod common;

async fn fresh() -> Option<chatstore_core::Store> {
    common::postgres_via_pgbouncer().await
}

chatstore_contract::contract_suite!(pgbouncer, fresh);
