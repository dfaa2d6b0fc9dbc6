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
///
/// Both ends and their vectors are named on the command line (`--from-vectors`,
/// `--to-vectors`); the environment's vector URL and Open WebUI's `VECTOR_DB` describe one
/// deployment, not which end it is, so they are not applied here. An end without a vector
/// URL while `VECTOR_DB` names another store than pgvector is opened with the store's own
/// vectors and logs a warning naming the flags: Open WebUI's vectors are not in it.
pub async fn open(url: &str, vectors: Option<&str>, read_only: bool) -> Result<End> {
    if vectors.is_none()
        && let Some(name) = chatstore_core::Config::from_env()?
            .vector_db
            .filter(|name| name != "pgvector")
    {
        tracing::warn!(
            "VECTOR_DB is {name}, but {} is opened with the vectors of the store itself: \
             Open WebUI's vectors are not there; name them with --from-vectors or \
             --to-vectors (chroma://HOST:PORT, chroma-dir://DATA_DIR/vector_db)",
            crate::open::describe(url)
        );
    }
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
