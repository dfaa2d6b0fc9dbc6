//! The warm connection (the one that ran the last read outside a transaction is kept for the
//! next): it never takes the last connection from transactions, a store dropped after its
//! runtime ended closes it without a panic, and on PostgreSQL a warm connection the server
//! ended costs the next read nothing.

mod support;

use std::time::Duration;

use chatstore_core::{NewChat, NewUser};
use chatstore_sql::SqlStore;

/// With a pool of two, one connection is kept warm for reads and the other serves the
/// transactions; reads and writes interleaved from many tasks all finish.
#[tokio::test]
async fn reads_and_transactions_share_a_pool_of_two() {
    let db = support::sqlite_empty().await;
    let store = SqlStore::connect(&db.url, db.options().max_connections(2))
        .await
        .expect("open")
        .store();
    let user = store
        .users
        .create(NewUser::new("w@example.com", "W"))
        .await
        .expect("user");
    let first = store
        .chats
        .create(NewChat::new(&user.id, "first"))
        .await
        .expect("chat");
    let tasks = (0..40).map(|i| {
        let store = store.clone();
        let (user, first) = (user.id.clone(), first.id.clone());
        tokio::spawn(async move {
            if i % 2 == 0 {
                store.chats.get(&first).await.map(|_| ())
            } else {
                let chat = NewChat::new(&user, format!("chat {i}"));
                store.chats.create(chat).await.map(|_| ())
            }
        })
    });
    let all = tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(tasks))
        .await
        .expect("every call finishes: none waits for the warm connection");
    for outcome in all {
        outcome.expect("task").expect("call");
    }
    let page = store
        .chats
        .list(&chatstore_core::ChatQuery::for_user(&user.id))
        .await
        .expect("list");
    assert_eq!(page.total, 21);
}

/// The warm connection is closed, not handed back to a pool that needs a runtime to take it,
/// when the store outlives its runtime.
#[test]
fn a_store_dropped_after_its_runtime_closes_its_warm_connection() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(async {
        let db = support::sqlite_empty().await;
        let sql = SqlStore::connect(&db.url, db.options())
            .await
            .expect("open");
        let store = sql.store();
        let user = store
            .users
            .create(NewUser::new("d@example.com", "D"))
            .await
            .expect("user");
        // A read outside a transaction leaves its connection warm.
        store.users.get(&user.id).await.expect("get");
        (sql, store)
    });
    drop(runtime);
    drop(store);
}

/// PostgreSQL: a warm connection the server has since ended (`pg_terminate_backend`, as a
/// restart or an idle timeout would) costs the next read or transaction nothing: it runs
/// again on a connection the pool checks, and the call after it keeps a connection warm again.
#[tokio::test]
async fn a_read_on_a_lost_warm_connection_runs_again_on_postgres() {
    let Some(server) = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    let options = chatstore_sql::SqlOptions::default()
        .max_connections(3)
        .upload_dir(std::env::temp_dir().join("chatstore-warm-uploads"));
    let store = SqlStore::connect(&url, options)
        .await
        .expect("open")
        .store();
    let user = store
        .users
        .create(NewUser::new("lost@example.com", "Lost"))
        .await
        .expect("user");
    let database = chatstore_testkit::database_name(&url);
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
        .await
        .expect("admin connection");
    for round in 0..4 {
        // Warm: the read's connection is kept for the next read.
        store.users.get(&user.id).await.expect("read before");
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_all(&mut admin)
        .await
        .expect("end the store's connections");
        assert!(
            !ended.is_empty(),
            "round {round}: the store held a connection"
        );
        if round % 2 == 0 {
            let again = store.users.get(&user.id).await;
            assert_eq!(
                again.expect("the read after its warm connection ended").id,
                user.id,
                "round {round}"
            );
        } else {
            // A transaction begins on the warm connection too: found lost at `BEGIN`, it
            // begins on another, and the write is there once.
            let email = format!("after-{round}@example.com");
            let created = store
                .users
                .create(NewUser::new(&email, "After"))
                .await
                .expect("the write after its warm connection ended");
            assert_eq!(
                store.users.get(&created.id).await.expect("read back").email,
                email
            );
        }
        let listed = store
            .chats
            .list(&chatstore_core::ChatQuery::for_user(&user.id))
            .await
            .expect("a second read");
        assert_eq!(listed.total, 0);
    }
    let _ = sqlx::Connection::close(admin).await;
}
