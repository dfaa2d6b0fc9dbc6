//! Configuration of the pgvector adapter, from code or from the environment (Open WebUI's own
//! variable names are accepted where they mean the same).

use chatstore_core::{Error, Result};

/// How to reach the database and how to shape a new table.
#[derive(Debug, Clone, PartialEq)]
pub struct PgVectorConfig {
    /// `postgres://...` URL.
    pub url: String,
    /// A URL of the PostgreSQL server itself, for the work that needs a session of its own
    /// (index builds `CONCURRENTLY` under a session advisory lock) when `url` goes through a
    /// transaction pooler such as PgBouncer (`CHATSTORE_PGVECTOR_DIRECT_URL`). Without it,
    /// behind a pooler, collections are searched exactly and never indexed. Unused when `url`
    /// reaches the server directly.
    pub direct_url: Option<String>,
    /// Most connections the pool opens (Open WebUI: `PGVECTOR_POOL_SIZE`).
    pub pool_size: u32,
    /// Dimension of the vector column of a new table; shorter vectors are zero-padded to it
    /// (Open WebUI: `PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH`, default 1536). An existing table
    /// keeps its own.
    pub dimension: usize,
    /// Create a new table with a `halfvec` column (Open WebUI: `PGVECTOR_USE_HALFVEC`).
    pub use_halfvec: bool,
    /// Run `CREATE EXTENSION vector` when it is missing (Open WebUI: `PGVECTOR_CREATE_EXTENSION`).
    pub create_extension: bool,
    /// Collections with at most this many rows are always searched exactly; `optimize` gives
    /// larger ones a partial HNSW index.
    pub exact_max_rows: i64,
    /// Recall@10 an HNSW plan must reach on `optimize`'s sample, or the collection stays exact.
    pub target_recall: f64,
    /// Rows per `INSERT ... SELECT FROM unnest(...)` statement.
    pub batch_rows: usize,
    /// How long to wait for a connection before answering `Unavailable`.
    pub acquire_timeout: std::time::Duration,
    /// `m` of the partial HNSW indexes `optimize` builds (links per node; pgvector: 2..=100).
    /// These indexes are chatstore's own, not Open WebUI's global one (m 16).
    pub hnsw_m: u32,
    /// `ef_construction` of those indexes (pgvector: 4..=1000, at least `2 * hnsw_m`).
    pub hnsw_ef_construction: u32,
    /// `maintenance_work_mem` set for the index build's transaction, in MiB. An HNSW build
    /// that outgrows it slows down sharply.
    pub index_build_memory_mb: u32,
    /// Build (or recalibrate) a collection's index in the background by itself when it
    /// crosses `exact_max_rows` or grows by `auto_index_growth` (`CHATSTORE_PGVECTOR_AUTO_INDEX`).
    pub auto_index: bool,
    /// Growth factor since the last build that starts the next one.
    pub auto_index_growth: f64,
    /// How long a collection must go without writes before its automatic build starts.
    pub auto_index_delay: std::time::Duration,
    /// How long an index build waits for another one (of any process on the database) to
    /// finish before it gives up with `Unavailable` (builds take turns on an advisory lock).
    pub build_lock_wait: std::time::Duration,
    /// Open for reading only: nothing is created or changed on the database (no extension,
    /// table, side table or index), and the connections are read-only, so every write fails.
    /// A database without the extension or without `document_chunk` is one without vectors
    /// ([`crate::is_missing_extension`]).
    pub read_only: bool,
}

/// The environment variable holding [`PgVectorConfig::direct_url`].
pub const DIRECT_URL_ENV: &str = "CHATSTORE_PGVECTOR_DIRECT_URL";

/// Default `m` of chatstore's partial HNSW indexes. Measured at 100k x 384 on clustered data
/// (README, "Choosing m and ef_construction"): Open WebUI's m 16 / ef_construction 64 levelled
/// off near recall@10 0.99 in an 89k-row collection (ef_search 640, 6 ms, or an exact scan);
/// m 32 / 128 reached 0.998 at ef_search 64 in 3-4 ms, for about 1.8x the build time.
pub const HNSW_M: u32 = 32;
/// Default `ef_construction` of chatstore's partial HNSW indexes.
pub const HNSW_EF_CONSTRUCTION: u32 = 128;

impl Default for PgVectorConfig {
    fn default() -> Self {
        PgVectorConfig {
            url: String::new(),
            direct_url: None,
            pool_size: 10,
            dimension: 1536,
            use_halfvec: false,
            create_extension: true,
            exact_max_rows: 5_000,
            target_recall: 0.995,
            batch_rows: 1_000,
            acquire_timeout: std::time::Duration::from_secs(30),
            hnsw_m: HNSW_M,
            hnsw_ef_construction: HNSW_EF_CONSTRUCTION,
            index_build_memory_mb: 1024,
            auto_index: true,
            auto_index_growth: 2.0,
            auto_index_delay: std::time::Duration::from_secs(2),
            build_lock_wait: std::time::Duration::from_secs(15 * 60),
            read_only: false,
        }
    }
}

impl PgVectorConfig {
    /// Defaults with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        PgVectorConfig {
            url: url.into(),
            ..PgVectorConfig::default()
        }
    }

    /// Sets the server's own URL for index builds behind a transaction pooler (see
    /// [`PgVectorConfig::direct_url`]).
    pub fn direct_url(mut self, url: impl Into<String>) -> Self {
        self.direct_url = Some(url.into());
        self
    }

    /// Sets the pool size.
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = n;
        self
    }

    /// Sets the dimension of a new table's vector column.
    pub fn dimension(mut self, d: usize) -> Self {
        self.dimension = d;
        self
    }

    /// Sets how long to wait for a connection.
    pub fn acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets `m` and `ef_construction` of the partial HNSW indexes `optimize` builds.
    pub fn hnsw(mut self, m: u32, ef_construction: u32) -> Self {
        self.hnsw_m = m;
        self.hnsw_ef_construction = ef_construction;
        self
    }

    /// Opens for reading only (see [`PgVectorConfig::read_only`]).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Turns the automatic background index builds on or off.
    pub fn auto_index(mut self, on: bool) -> Self {
        self.auto_index = on;
        self
    }

    /// Sets how long a collection must go without writes before its automatic build starts.
    pub fn auto_index_delay(mut self, delay: std::time::Duration) -> Self {
        self.auto_index_delay = delay;
        self
    }

    /// Sets how long an index build waits for another one to finish.
    pub fn build_lock_wait(mut self, wait: std::time::Duration) -> Self {
        self.build_lock_wait = wait;
        self
    }

    /// Sets the exact-search threshold (rows per collection).
    pub fn exact_max_rows(mut self, rows: i64) -> Self {
        self.exact_max_rows = rows;
        self
    }

    /// Reads `CHATSTORE_PGVECTOR_URL` (or `PGVECTOR_DB_URL`, then `DATABASE_URL`), then the
    /// settings [`PgVectorConfig::with_settings_from`] reads, from the process environment.
    pub fn from_env() -> Result<Self> {
        let env = |name: &str| std::env::var(name).ok();
        let url = first_set(
            &env,
            &["CHATSTORE_PGVECTOR_URL", "PGVECTOR_DB_URL", "DATABASE_URL"],
        )
        .ok_or_else(|| {
            Error::invalid("set CHATSTORE_PGVECTOR_URL (or PGVECTOR_DB_URL) to a postgres:// URL")
        })?;
        PgVectorConfig::new(url).with_settings_from(env)
    }

    /// Applies the settings other than the URL, read through `lookup`:
    /// `CHATSTORE_PGVECTOR_DIRECT_URL`,
    /// `CHATSTORE_PGVECTOR_POOL_SIZE` (or `PGVECTOR_POOL_SIZE`),
    /// `PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH`, `PGVECTOR_USE_HALFVEC`,
    /// `PGVECTOR_CREATE_EXTENSION`, `CHATSTORE_PGVECTOR_EXACT_MAX_ROWS` and
    /// `CHATSTORE_PGVECTOR_AUTO_INDEX`. An unset or empty variable keeps the value already set;
    /// a value that does not parse is `InvalidInput` naming the variable.
    pub fn with_settings_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |names: &[&str]| first_set(&lookup, names);
        if let Some(v) = var(&[DIRECT_URL_ENV]) {
            self.direct_url = Some(v);
        }
        if let Some(v) = var(&["CHATSTORE_PGVECTOR_POOL_SIZE", "PGVECTOR_POOL_SIZE"]) {
            self.pool_size = parse("PGVECTOR_POOL_SIZE", &v)?;
        }
        if let Some(v) = var(&["PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH"]) {
            self.dimension = parse("PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH", &v)?;
        }
        if let Some(v) = var(&["PGVECTOR_USE_HALFVEC"]) {
            self.use_halfvec = parse_bool("PGVECTOR_USE_HALFVEC", &v)?;
        }
        if let Some(v) = var(&["PGVECTOR_CREATE_EXTENSION"]) {
            self.create_extension = parse_bool("PGVECTOR_CREATE_EXTENSION", &v)?;
        }
        if let Some(v) = var(&["CHATSTORE_PGVECTOR_EXACT_MAX_ROWS"]) {
            self.exact_max_rows = parse("CHATSTORE_PGVECTOR_EXACT_MAX_ROWS", &v)?;
        }
        if let Some(v) = var(&["CHATSTORE_PGVECTOR_AUTO_INDEX"]) {
            self.auto_index = parse_bool("CHATSTORE_PGVECTOR_AUTO_INDEX", &v)?;
        }
        Ok(self)
    }
}

/// Every variable [`PgVectorConfig::with_settings_from`] reads.
pub const SETTINGS_ENV: &[&str] = &[
    DIRECT_URL_ENV,
    "CHATSTORE_PGVECTOR_POOL_SIZE",
    "PGVECTOR_POOL_SIZE",
    "PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH",
    "PGVECTOR_USE_HALFVEC",
    "PGVECTOR_CREATE_EXTENSION",
    "CHATSTORE_PGVECTOR_EXACT_MAX_ROWS",
    "CHATSTORE_PGVECTOR_AUTO_INDEX",
];

/// The value of the first of `names` that `lookup` finds set and not blank.
fn first_set(lookup: &impl Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::invalid(format!("{name}={value:?} is not a valid number")))
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::invalid(format!(
            "{name}={value:?} is not a boolean (true/false)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_parse_like_open_webui() {
        assert!(parse_bool("X", "True").expect("bool"));
        assert!(!parse_bool("X", "0").expect("bool"));
        assert!(parse_bool("X", "maybe").is_err());
    }

    #[test]
    fn settings_apply_over_the_defaults_and_name_a_bad_variable() {
        let settings = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let config = PgVectorConfig::new("postgres://db")
            .with_settings_from(settings(&[
                ("PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH", "3072"),
                ("PGVECTOR_USE_HALFVEC", "true"),
                ("CHATSTORE_PGVECTOR_AUTO_INDEX", "off"),
                ("PGVECTOR_POOL_SIZE", " "),
            ]))
            .expect("settings");
        assert_eq!(config.dimension, 3072);
        assert!(config.use_halfvec);
        assert!(!config.auto_index);
        assert_eq!(config.pool_size, 10, "an empty variable keeps the default");
        assert_eq!(config.url, "postgres://db");
        let err = PgVectorConfig::new("postgres://db")
            .with_settings_from(settings(&[("CHATSTORE_PGVECTOR_EXACT_MAX_ROWS", "many")]))
            .expect_err("not a number");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
        assert!(
            err.to_string()
                .contains("CHATSTORE_PGVECTOR_EXACT_MAX_ROWS"),
            "{err}"
        );
    }
}
