//! Opening a store from a database URL.

use std::path::Path;

use chatstore_core::{Config, Error, Result, Store, memory};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use chatstore_sql::{Dialect, SqlOptions, SqlStore};

/// The URL the demo uses when none is given: an embedded SQLite file in the working directory.
pub const DEFAULT_DEMO_URL: &str = "sqlite://chatstore-demo.db";

/// The URL from the flag/`CHATSTORE_DATABASE_URL`, else Open WebUI's `DATABASE_URL`, else the
/// embedded default.
pub fn resolve_url(flag: Option<String>) -> String {
    flag.filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_DEMO_URL.to_owned())
}

/// Opens the store a URL names: `memory`, or a SQLite/PostgreSQL URL through `chatstore-sql`
/// (created with Open WebUI's schema when empty). On PostgreSQL, vectors go to pgvector's
/// `document_chunk` in the database `CHATSTORE_PGVECTOR_URL`/`PGVECTOR_DB_URL` names, else the
/// same database, as Open WebUI does; without the `vector` extension they are left out with a
/// warning.
pub async fn open(url: &str) -> Result<Store> {
    if url == "memory" {
        return Ok(memory::store());
    }
    let sql = SqlStore::connect(url, SqlOptions::default()).await?;
    if sql.dialect() != Dialect::Postgres {
        return Ok(sql.store());
    }
    let config = Config::from_env()?;
    let vectors_url = config.pgvector_url.unwrap_or_else(|| url.to_owned());
    let mut pg = PgVectorConfig::new(vectors_url);
    if let Some(n) = config.pool_size {
        pg = pg.pool_size(n);
    }
    match PgVectorStore::connect(pg).await {
        Ok(vectors) => Ok(vectors.into_store(&sql.store())),
        Err(e) => {
            eprintln!(
                "warning: vectors are unavailable on this database ({e}); continuing without them"
            );
            Ok(sql.store())
        }
    }
}

/// Opens an existing SQL database read-only, refusing a SQLite path that does not exist
/// (read-only opening must not create one).
pub async fn open_existing_read_only(url: &str) -> Result<SqlStore> {
    if let Some(path) = sqlite_path(url)
        && !Path::new(path).is_file()
    {
        return Err(Error::invalid(format!("no SQLite database at {path:?}")));
    }
    SqlStore::connect(url, SqlOptions::default().read_only(true)).await
}

fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// A short description of where the data lives, without credentials.
pub fn describe(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => {
            let scheme = scheme_user.split("://").next().unwrap_or("");
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            describe("postgres://me:secret@db:5432/webui"),
            "postgres://…@db:5432/webui"
        );
        assert_eq!(describe("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn sqlite_paths_are_found_in_urls() {
        assert_eq!(
            sqlite_path("sqlite://data/webui.db?mode=ro"),
            Some("data/webui.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("postgres://x"), None);
    }
}
