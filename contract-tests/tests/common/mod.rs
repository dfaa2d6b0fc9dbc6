//! Fresh SQL stores for the contract suite: SQLite files and PostgreSQL databases, each either
//! created by chatstore or from Open WebUI 0.12.4's DDL dump.

#![allow(dead_code)]

use chatstore_core::Store;
use chatstore_sql::{SqlOptions, schema};
use sqlx::Connection;

/// A folder of its own under the system temp folder.
fn temp_folder(kind: &str) -> std::path::PathBuf {
    chatstore_testkit::scratch_folder("chatstore-contract", kind)
}

/// A new SQLite file, schema created by chatstore.
pub async fn sqlite_fresh() -> Store {
    let dir = temp_folder("sqlite");
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    chatstore_sql::connect(&url, SqlOptions::default())
        .await
        .expect("open a new SQLite file")
}

/// A new SQLite file created from Open WebUI 0.12.4's DDL dump, then opened by chatstore.
pub async fn sqlite_from_dump() -> Store {
    let dir = temp_folder("sqlite-owui");
    let path = dir.join("webui.db");
    let url = format!("sqlite://{}", path.display());
    let mut seed = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("create the SQLite file");
    // One transaction: one sync to disk instead of one per statement.
    let mut tx = seed.begin().await.expect("begin the seeding transaction");
    sqlx::raw_sql(schema::SQLITE_DDL)
        .execute(&mut *tx)
        .await
        .expect("apply Open WebUI's SQLite DDL dump");
    tx.commit().await.expect("commit the DDL dump");
    seed.close().await.expect("close the seeding connection");
    chatstore_sql::connect(&url, SqlOptions::default())
        .await
        .expect("open the Open WebUI SQLite database")
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A new, empty PostgreSQL database on the test server (`CHATSTORE_TEST_POSTGRES_URL`),
/// or `None` when the server is not configured.
pub async fn postgres_database() -> Option<String> {
    let server = chatstore_contract::require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    Some(chatstore_testkit::fresh_postgres_database(&server).await)
}

fn pg_options() -> SqlOptions {
    SqlOptions::default()
        .max_connections(4)
        .upload_dir(temp_folder("postgres-uploads"))
}

/// A new PostgreSQL database, schema created by chatstore.
pub async fn postgres_fresh() -> Option<Store> {
    let url = postgres_database().await?;
    Some(
        chatstore_sql::connect(&url, pg_options())
            .await
            .expect("open a new PostgreSQL database"),
    )
}

/// A new PostgreSQL database created from Open WebUI 0.12.4's DDL dump, then opened.
pub async fn postgres_from_dump() -> Option<Store> {
    let url = postgres_database().await?;
    let mut seed = sqlx::PgConnection::connect(&url)
        .await
        .expect("connect to the test database");
    sqlx::raw_sql(schema::POSTGRES_DDL)
        .execute(&mut seed)
        .await
        .expect("apply Open WebUI's PostgreSQL DDL dump");
    seed.close().await.expect("close the seeding connection");
    Some(
        chatstore_sql::connect(&url, pg_options())
            .await
            .expect("open the Open WebUI PostgreSQL database"),
    )
}

#[test]
fn database_names_are_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:5/chatstore", "t_1"),
        "postgres://u@h:5/t_1"
    );
    assert_eq!(
        with_database("postgres://u@h:5/db?sslmode=disable", "t_1"),
        "postgres://u@h:5/t_1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "t_1"), "postgres://u@h/t_1");
}

/// A new PostgreSQL database reached through PgBouncer in transaction mode
/// (`CHATSTORE_TEST_PGBOUNCER_URL`, in front of `CHATSTORE_TEST_POSTGRES_URL`), schema created
/// by chatstore through PgBouncer, or `None` when either is not configured.
pub async fn postgres_via_pgbouncer() -> Option<Store> {
    let bouncer = chatstore_contract::require_env("CHATSTORE_TEST_PGBOUNCER_URL")?;
    let direct = postgres_database().await?;
    let url = with_database(&bouncer, &chatstore_testkit::database_name(&direct));
    Some(
        chatstore_sql::connect(&url, pg_options())
            .await
            .expect("open a new PostgreSQL database through PgBouncer"),
    )
}
