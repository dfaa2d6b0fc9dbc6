//! The two ends of `chatstore migrate` / `chatstore verify`, opened through chatstore-registry:
//! a store per URL, and for SQL URLs the SQL database itself (for the copy of the tables
//! outside the six aggregates).

use chatstore_core::{Result, Store};
use chatstore_registry::{OpenOptions, StoreUrl, Target};
use chatstore_sql::SqlStore;

/// One end: its store, and the SQL database when the URL names one.
pub struct End {
    /// The store.
    pub store: Store,
    /// The SQL database (SQLite or PostgreSQL URLs).
    pub sql: Option<SqlStore>,
}

/// Opens an end with the settings of the environment. A source (`read_only`) is never
/// changed: SQLite opens read-only (no journal switch, no schema), PostgreSQL sessions are
/// read-only, pgvector's included (no extension, table, side table or index is made).
pub async fn open(url: &str, vectors: Option<&str>, read_only: bool) -> Result<End> {
    let options = OpenOptions::for_url(url)?
        .maybe_vectors_url(vectors.map(str::to_owned))
        .read_only(read_only);
    let target = StoreUrl::parse(url)?;
    let sql = match target.target() {
        Target::Sqlite { .. } | Target::Postgres { .. } => Some(options.open_sql_database().await?),
        _ => None,
    };
    // A PostgreSQL source without pgvector's extension or table opens without vectors, and a
    // read-only one creates nothing there (chatstore-registry).
    let store = options.open().await?;
    Ok(End { store, sql })
}
