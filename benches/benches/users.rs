//! Criterion benches of finding a user by email (Open WebUI's sign-in, and the check behind
//! every new user or changed email) as the user table grows, on the SQL stores: for each table
//! size, `{backend}/get_user_by_email` against `{backend}/get_user` (a read by primary key) in
//! the same run and on the same table, so the ratio of the two says what the email costs.
//!
//! `CHATSTORE_BENCH_USERS` sets the table sizes (`1k,20k` by default; `100k` for more). One
//! user in 500 has a non-ASCII email, which chatstore compares with Unicode case folding. The
//! lookups ask for existing ASCII emails in upper case. SQLite is measured without statistics,
//! as Open WebUI leaves its file; PostgreSQL (`CHATSTORE_TEST_POSTGRES_URL`, skipped with a
//! line on stderr when unset) after `ANALYZE`, as its autovacuum leaves a table.

use std::time::{Duration, Instant};

use chatstore_benches::Scale;
use chatstore_core::{NewUser, Store};
use chatstore_sql::{SqlOptions, SqlStore};
use criterion::Criterion;

/// Users per `create_many` while loading.
const BATCH: u64 = 500;

/// One user in this many has a non-ASCII email.
const NOT_ASCII_EVERY: u64 = 500;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the benches");
    // Sizes are written as the workload's scales are (`1k`, `20k`, `500`).
    let sizes: Vec<Scale> = std::env::var("CHATSTORE_BENCH_USERS")
        .unwrap_or_else(|_| "1k,20k".to_owned())
        .split(',')
        .map(|s| {
            s.parse()
                .unwrap_or_else(|e| panic!("CHATSTORE_BENCH_USERS: {e}"))
        })
        .collect();
    let server = std::env::var("CHATSTORE_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if server.is_none() {
        eprintln!("chatstore-benches: skipping postgres: CHATSTORE_TEST_POSTGRES_URL is unset");
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    for size in sizes {
        let n = size.chats();
        let mut tables = vec![runtime.block_on(Table::sqlite(n))];
        if let Some(server) = &server {
            tables.push(runtime.block_on(Table::postgres(server, n)));
        }
        let mut group = criterion.benchmark_group(format!("user_lookup_{size}"));
        for table in &tables {
            let store = &table.store;
            group.bench_function(format!("{}/get_user", table.name), |b| {
                b.to_async(&runtime).iter_custom(|iters| async move {
                    timed(iters, n, |k| async move {
                        let user = store.users.get(&format!("u{k}")).await?;
                        assert_eq!(user.id, format!("u{k}"));
                        Ok(())
                    })
                    .await
                })
            });
            group.bench_function(format!("{}/get_user_by_email", table.name), |b| {
                b.to_async(&runtime).iter_custom(|iters| async move {
                    timed(iters, n, |k| async move {
                        let user = store.users.get_by_email(&email(k).to_uppercase()).await?;
                        assert_eq!(user.id, format!("u{k}"));
                        Ok(())
                    })
                    .await
                })
            });
        }
        group.finish();
        for table in tables {
            runtime.block_on(table.close());
        }
    }
    criterion.final_summary();
}

/// User `k`'s email.
fn email(k: u64) -> String {
    if k.is_multiple_of(NOT_ASCII_EVERY) {
        format!("Ülla{k}@example.org")
    } else {
        format!("user{k}@example.org")
    }
}

/// Runs `iters` lookups of users spread over the table (ASCII emails only), timing only them.
async fn timed<F, Fut>(iters: u64, n: u64, run: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = chatstore_core::Result<()>>,
{
    let mut total = Duration::ZERO;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ n;
    for _ in 0..iters {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let mut k = 1 + (state >> 33) % n;
        if k.is_multiple_of(NOT_ASCII_EVERY) {
            k -= 1;
        }
        let started = Instant::now();
        run(k).await.expect("a lookup failed");
        total += started.elapsed();
    }
    total
}

/// A store holding `n` users, and what to remove afterwards.
struct Table {
    name: &'static str,
    sql: SqlStore,
    store: Store,
    folder: tempfile::TempDir,
    database: Option<(String, String)>,
}

impl Table {
    async fn sqlite(n: u64) -> Table {
        let folder = tempfile::tempdir().expect("a bench folder");
        let url = format!("sqlite://{}", folder.path().join("webui.db").display());
        let options = SqlOptions::default().upload_dir(folder.path().join("up"));
        let sql = SqlStore::connect(&url, options).await.expect("open SQLite");
        Table::loaded("sqlite", sql, folder, None, n).await
    }

    async fn postgres(server: &str, n: u64) -> Table {
        let url = chatstore_testkit::fresh_postgres_database(server).await;
        let folder = tempfile::tempdir().expect("a bench folder");
        let options = SqlOptions::default().upload_dir(folder.path().join("up"));
        let sql = SqlStore::connect(&url, options)
            .await
            .expect("open PostgreSQL");
        let table = Table::loaded(
            "postgres",
            sql,
            folder,
            Some((server.to_owned(), url.clone())),
            n,
        )
        .await;
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        sqlx::raw_sql("ANALYZE \"user\"")
            .execute(&pool)
            .await
            .expect("ANALYZE");
        pool.close().await;
        table
    }

    async fn loaded(
        name: &'static str,
        sql: SqlStore,
        folder: tempfile::TempDir,
        database: Option<(String, String)>,
        n: u64,
    ) -> Table {
        sql.indexes_ready().await;
        let store = sql.store();
        let started = Instant::now();
        let mut k = 1;
        while k <= n {
            let end = (k + BATCH).min(n + 1);
            let users = (k..end)
                .map(|k| NewUser::new(email(k), format!("User {k}")).with_id(format!("u{k}")))
                .collect();
            store
                .users
                .create_many(users)
                .await
                .unwrap_or_else(|e| panic!("loading {n} users into {name}: {e}"));
            k = end;
        }
        eprintln!(
            "chatstore-benches: {n} users loaded into {name} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Table {
            name,
            sql,
            store,
            folder,
            database,
        }
    }

    async fn close(self) {
        self.sql.close().await;
        if let Some((server, url)) = &self.database {
            chatstore_testkit::drop_postgres_database(server, url).await;
        }
        drop(self.folder);
    }
}
