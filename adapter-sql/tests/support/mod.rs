//! A store plus a raw connection to the same database, on SQLite (always) and PostgreSQL (when
//! `CHATSTORE_TEST_POSTGRES_URL` is set), for tests that write or inspect rows the way Open
//! WebUI does.

#![allow(dead_code)]

use std::path::PathBuf;

use chatstore_core::Store;
use chatstore_sql::{SqlOptions, SqlStore};
use sqlx::{AssertSqlSafe, PgPool, Row as _, SqlitePool};

/// A raw pool next to a store.
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// One database under test.
pub struct Db {
    pub url: String,
    pub raw: Raw,
    pub folder: PathBuf,
    /// The PostgreSQL server and database to drop when done.
    database: Option<(String, String)>,
}

impl Db {
    /// Drops the PostgreSQL database and removes the folder (a failing test leaves them).
    pub async fn finish(self) {
        if let (Raw::Postgres(pool), Some((server, url))) = (&self.raw, &self.database) {
            pool.close().await;
            chatstore_testkit::drop_postgres_database(server, url).await;
        }
        let _ = std::fs::remove_dir_all(&self.folder);
    }

    /// Runs literal SQL (test data, several statements allowed).
    pub async fn exec(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
            Raw::Postgres(p) => sqlx::raw_sql(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("test SQL failed: {e}\n{}", sql_head(&self.url)));
    }

    /// The first column of the first row of a query, as text (`None` for SQL NULL or no row).
    pub async fn text(&self, sql: &str) -> Option<String> {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await
                .expect("test query")
                .and_then(|r| r.try_get::<Option<String>, _>(0).expect("a text column")),
            Raw::Postgres(p) => sqlx::query(sql)
                .fetch_optional(p)
                .await
                .expect("test query")
                .and_then(|r| r.try_get::<Option<String>, _>(0).expect("a text column")),
        }
    }

    /// An integer query result.
    pub async fn int(&self, sql: &str) -> i64 {
        let sql = AssertSqlSafe(sql.to_owned());
        match &self.raw {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .expect("test query")
                .try_get::<i64, _>(0)
                .expect("an integer column"),
            Raw::Postgres(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .expect("test query")
                .try_get::<i64, _>(0)
                .expect("an integer column"),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.raw, Raw::Postgres(_))
    }

    /// Opens the chatstore store on this database.
    pub async fn store(&self) -> Store {
        self.sql_store().await.store()
    }

    /// Opens the chatstore `SqlStore` on this database.
    pub async fn sql_store(&self) -> SqlStore {
        SqlStore::connect(&self.url, self.options())
            .await
            .expect("open the test database")
    }

    pub fn options(&self) -> SqlOptions {
        SqlOptions::default()
            .max_connections(4)
            .upload_dir(self.folder.join("uploads"))
    }
}

fn sql_head(url: &str) -> String {
    format!("(database {url})")
}

fn temp_folder(kind: &str) -> PathBuf {
    chatstore_testkit::scratch_folder("chatstore-sql-tests", kind)
}

/// A new, empty SQLite file (no schema yet).
pub async fn sqlite_empty() -> Db {
    let folder = temp_folder("sqlite");
    let url = format!("sqlite://{}", folder.join("webui.db").display());
    let raw = SqlitePool::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("open the SQLite file");
    Db {
        url,
        raw: Raw::Sqlite(raw),
        folder,
        database: None,
    }
}

/// A new, empty PostgreSQL database, or `None` when no server is configured.
pub async fn postgres_empty() -> Option<Db> {
    let server = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    let raw = PgPool::connect(&url)
        .await
        .expect("connect to the test database");
    Some(Db {
        url: url.clone(),
        raw: Raw::Postgres(raw),
        folder: temp_folder("postgres"),
        database: Some((server, url)),
    })
}

/// Every database to run a test on: SQLite, and PostgreSQL when configured.
pub async fn empty_databases() -> Vec<Db> {
    let mut out = vec![sqlite_empty().await];
    out.extend(postgres_empty().await);
    out
}

/// Every database with Open WebUI 0.12.4's schema created from its DDL dump.
pub async fn open_webui_databases() -> Vec<Db> {
    let dbs = empty_databases().await;
    for db in &dbs {
        let ddl = if db.is_postgres() {
            chatstore_sql::schema::POSTGRES_DDL
        } else {
            chatstore_sql::schema::SQLITE_DDL
        };
        db.exec(ddl).await;
    }
    dbs
}

/// Polls `call` up to `polls` times, some time apart as a caller's polls would be, then drops
/// it: a caller that went away part way (a cancelled request). Whether it completed.
pub async fn abandoned<F: std::future::Future>(call: F, polls: usize) -> bool {
    let mut call = std::pin::pin!(call);
    for _ in 0..polls {
        if futures::poll!(call.as_mut()).is_ready() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_micros(50 * (polls as u64 % 7))).await;
    }
    false
}
