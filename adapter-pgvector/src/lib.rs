//! # chatstore-pgvector
//!
//! chatstore's [`VectorRepo`](chatstore_core::VectorRepo) on PostgreSQL with the pgvector
//! extension, on **Open WebUI's own `document_chunk` table** (`id, vector, collection_name,
//! text, vmetadata`), so Open WebUI and chatstore can share one database.
//!
//! - On an empty database it creates the `vector` extension (when allowed), the table, the
//!   `collection_name` index and a small side table `chatstore_collection` that remembers each
//!   collection's true dimension (vectors shorter than the column are zero-padded, as Open WebUI
//!   does, which hides it) and its search plan. On an existing database it detects the column
//!   type (`vector` or `halfvec`), its dimension and the pgvector version, and adapts.
//! - Search returns the **true** top-k inside the collection and the metadata filter, whatever
//!   the collection's share of the table: small collections are exact scans that no ANN index
//!   can short-cut; a large collection gets its own partial HNSW index (built `CONCURRENTLY` in
//!   the background once it crosses `exact_max_rows`, or at once by
//!   [`PgVectorStore::optimize`]), kept only with an `ef_search` whose recall was measured
//!   against exact search. A filtered search is an exact scan of the matching rows when an
//!   index on the key ([`FILTER_KEYS`]) finds few enough of them, else an iterative index walk.
//!   Search statements are unnamed (never a cached generic plan).
//! - Inserts and large upserts go by binary `COPY` straight into the table (an upsert deletes
//!   the rows it replaces first; a taken id fails an insert with `Conflict`); small writes by
//!   one `INSERT ... SELECT FROM unnest(...)` with binary arrays. Each call is one transaction.
//! - Through PgBouncer in transaction mode (detected at open) every statement is unnamed and
//!   every call one transaction; index builds, which need a session of their own, connect to
//!   [`PgVectorConfig::direct_url`] (README, "Behind PgBouncer").
//!
//! ```no_run
//! use chatstore_core::{VectorFilter, VectorItem, VectorRepo};
//! use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
//!
//! # async fn example() -> chatstore_core::Result<()> {
//! let config = PgVectorConfig::new("postgres://postgres@127.0.0.1:5432/chatstore").pool_size(8);
//! let vectors = PgVectorStore::connect(config).await?;
//! let item = VectorItem {
//!     id: "chunk-1".into(),
//!     text: "Ada wrote the first program.".into(),
//!     vector: vec![0.1, 0.7, 0.2],
//!     metadata: serde_json::json!({"file_id": "f1"}).as_object().cloned().unwrap_or_default(),
//! };
//! vectors.insert("kb-history", vec![item]).await?;
//! let hits = vectors
//!     .search("kb-history", &[vec![0.1, 0.6, 0.3]], Some(&VectorFilter::eq("file_id", "f1")), 5)
//!     .await?;
//! assert_eq!(hits[0][0].id, "chunk-1");
//! // After a bulk load: index the large collections and calibrate their search.
//! vectors.optimize_all().await?;
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod filter;
mod indexes;
mod ingest;
mod open_webui;
mod schema;
mod search;
mod session;
mod vectors;

use std::sync::Arc;

use chatstore_core::{Result, Store, StoreParts};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};

use crate::session::Prepare;

pub use config::{DIRECT_URL_ENV, PgVectorConfig, SETTINGS_ENV};
pub use error::is_missing_extension;
pub use indexes::{BUILD_LOCK, CollectionPlan};
pub use open_webui::{IndexMethod, OpenWebUiIndex};
pub use schema::FILTER_KEYS;
pub use schema::{ColumnType, Schema};
pub use search::{IndexKey, SearchPlan};

/// The name this backend reports.
pub const BACKEND: &str = "pgvector";

/// Vectors in PostgreSQL + pgvector, on Open WebUI's `document_chunk` table. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PgVectorStore {
    pool: PgPool,
    schema: Schema,
    config: Arc<PgVectorConfig>,
    statements: Arc<Statements>,
    builder: Arc<indexes::Builder>,
    /// Named statements (direct) or unnamed ones in transactions (through a pooler).
    prepare: Prepare,
    /// Where work that needs a session of its own connects: the pool's server when it is
    /// reached directly, `config.direct_url` behind a pooler, `None` when there is none.
    own_session: Option<PgConnectOptions>,
    /// Every transaction begins read-only: a read-only store reached through a pooler that
    /// refuses the `default_transaction_read_only` startup option (every statement then runs
    /// in a transaction).
    read_only_transactions: bool,
    /// Written batches waiting to be freed at a moment this process would spend waiting.
    spent: ingest::Spent,
}

/// SQL that depends on the detected column type, built once.
#[derive(Debug)]
struct Statements {
    insert: String,
    /// The `unnest` upsert, returning the collections its ids lived in before (each
    /// once), in the same round trip.
    upsert_holders: String,
    insert_staged: String,
    upsert_staged: String,
    /// The vector column as a `vector` (a `halfvec` column is cast), or as `real[]` through a
    /// pooler; [`PgVectorStore::read_vector`] decodes either.
    vector_expr: &'static str,
}

impl PgVectorStore {
    /// Opens a pool of `config.pool_size` connections and ensures the schema. Through a
    /// transaction pooler (PgBouncer in transaction mode, detected by the server's port) every
    /// statement is unnamed and runs in a transaction; see [`PgVectorConfig::direct_url`] for
    /// index builds there.
    pub async fn connect(config: PgVectorConfig) -> Result<Self> {
        let mut connect = config.url.parse::<PgConnectOptions>().map_err(|e| {
            chatstore_core::Error::invalid(format!("bad PostgreSQL URL for pgvector: {e}"))
        })?;
        let plain = connect.clone();
        if config.read_only {
            connect = connect.options([("default_transaction_read_only", "on")]);
        }
        let options = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(
                config
                    .acquire_timeout
                    .min(chatstore_core::config::LONGEST_WAIT),
            );
        let mut read_only_transactions = false;
        let pool = match options.clone().connect_with(connect).await {
            Ok(pool) => pool,
            // PgBouncer refuses startup options it does not know (unless told to ignore
            // them): a read-only store then begins every transaction read-only instead,
            // which a pooler passes through and which leaves nothing on the server connection.
            Err(e) if config.read_only && refused_startup_option(&e) => {
                read_only_transactions = true;
                options
                    .connect_with(plain)
                    .await
                    .map_err(error::during("connecting to PostgreSQL"))?
            }
            Err(e) => return Err(error::during("connecting to PostgreSQL")(e)),
        };
        let pooled = match check_pool_budget(&pool, &config).await {
            Ok(pooled) => pooled,
            Err(e) => {
                pool.close().await;
                return Err(e);
            }
        };
        let mut store = Self::open(pool, config, pooled || read_only_transactions).await?;
        store.read_only_transactions = read_only_transactions;
        Ok(store)
    }

    /// Uses an existing pool (its size is the caller's); `config.url` and `pool_size` are
    /// ignored. A pool that reaches the server through a transaction pooler is detected as in
    /// [`connect`](Self::connect).
    pub async fn from_pool(pool: PgPool, config: PgVectorConfig) -> Result<Self> {
        let pooled = match server_facts(&pool).await {
            Some(row) => reached_through_pooler(&pool.connect_options(), &row),
            None => false,
        };
        Self::open(pool, config, pooled).await
    }

    async fn open(pool: PgPool, config: PgVectorConfig, pooled: bool) -> Result<Self> {
        let (prepare, own_session) = if pooled {
            let direct = match &config.direct_url {
                Some(url) => {
                    let direct = url.parse::<PgConnectOptions>().map_err(|e| {
                        chatstore_core::Error::invalid(format!(
                            "bad PostgreSQL URL in the pgvector direct URL ({DIRECT_URL_ENV}): {e}"
                        ))
                    })?;
                    // One environment opens several stores (a router's old and new, a
                    // migration's two ends): another database's direct URL would have this
                    // store's indexes built there.
                    if names_this_database(&pool, &direct).await {
                        Some(direct)
                    } else {
                        tracing::warn!(
                            "the pgvector direct URL names another database than this store's; \
                             it is not used: collections are searched exactly, none is indexed"
                        );
                        None
                    }
                }
                None => {
                    tracing::warn!(
                        "pgvector is reached through a transaction pooler and has no direct URL \
                         ({DIRECT_URL_ENV}): collections are searched exactly, none is indexed"
                    );
                    None
                }
            };
            tracing::info!(
                "pgvector is reached through a pooler: unnamed statements in transactions"
            );
            (Prepare::Unnamed, direct)
        } else {
            (Prepare::Named, Some((*pool.connect_options()).clone()))
        };
        let schema = schema::ensure(&pool, &config, prepare, own_session.as_ref()).await?;
        let statements = Statements::new(schema.column_type, prepare);
        Ok(PgVectorStore {
            pool,
            schema,
            config: Arc::new(config),
            statements: Arc::new(statements),
            builder: Arc::new(indexes::Builder::default()),
            prepare,
            own_session,
            read_only_transactions: false,
            spent: ingest::Spent::default(),
        })
    }

    /// Whether the store reaches PostgreSQL through a transaction pooler (statements unnamed,
    /// each call in a transaction).
    pub fn through_pooler(&self) -> bool {
        self.prepare == Prepare::Unnamed
    }

    /// A connection for a few statements (a transaction through a pooler).
    pub(crate) async fn session(&self) -> Result<session::Session> {
        if self.read_only_transactions {
            return self
                .begin_write()
                .await
                .map(session::Session::Pooled)
                .map_err(error::during("opening a transaction"));
        }
        session::Session::open(&self.pool, self.prepare).await
    }

    /// A transaction on the pool, begun read-only when the store must not write (see
    /// `read_only_transactions`): the server then refuses any write in it.
    pub(crate) async fn begin_write(
        &self,
    ) -> std::result::Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        if self.read_only_transactions {
            self.pool.begin_with("BEGIN READ ONLY").await
        } else {
            self.pool.begin().await
        }
    }

    /// What the database holds: column type, dimension, pgvector version.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// A [`Store`] whose vectors are this store and whose other repositories come from `base`.
    pub fn into_store(self, base: &Store) -> Store {
        let name = format!("{}+{BACKEND}", base.backend_name());
        let mut capabilities = base.capabilities();
        capabilities.vectors = true;
        capabilities.half_vectors = self.schema.column_type == ColumnType::HalfVec;
        capabilities.exact_vectors = !capabilities.half_vectors;
        let parts = StoreParts {
            vectors: Arc::new(self),
            ..base.parts()
        };
        base.rebuild(name, capabilities, parts)
    }

    /// Creates Open WebUI's global index `idx_document_chunk_vector` (HNSW, m 16,
    /// ef_construction 64) when it is missing. chatstore's own searches never rely on it (a
    /// global index loses neighbours of small collections), and it slows every insert about
    /// 150-fold; create it only for Open WebUI's sake, after bulk loads.
    pub async fn create_global_index(&self) -> Result<()> {
        if self.schema.pgvector_version < (0, 5, 0) || !self.schema.supports_hnsw() {
            return Err(chatstore_core::Error::unsupported(
                BACKEND,
                "an HNSW index on this column (pgvector 0.5+ and at most 2000 dimensions, 4000 for halfvec)",
            ));
        }
        let sql = format!(
            "CREATE INDEX IF NOT EXISTS idx_document_chunk_vector ON document_chunk \
             USING hnsw (vector {}) WITH (m = 16, ef_construction = 64)",
            self.schema.column_type.cosine_ops()
        );
        let mut tx = self
            .begin_write()
            .await
            .map_err(error::during("opening a transaction"))?;
        sqlx::raw_sql("SET LOCAL maintenance_work_mem = '512MB'")
            .execute(&mut *tx)
            .await
            .map_err(error::during("raising maintenance_work_mem"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(error::during("creating the global HNSW index"))?;
        tx.commit()
            .await
            .map_err(error::during("committing the global index"))
    }

    /// Decodes column `i` of a row holding [`Statements::vector_expr`].
    fn read_vector(
        &self,
        row: &PgRow,
        i: usize,
    ) -> std::result::Result<Option<Vec<f32>>, sqlx::Error> {
        use sqlx::Row as _;
        match self.prepare {
            Prepare::Named => Ok(row
                .try_get::<Option<pgvector::Vector>, _>(i)?
                .map(|v| v.to_vec())),
            Prepare::Unnamed => row.try_get::<Option<Vec<f32>>, _>(i),
        }
    }

    /// Zero-pads a validated vector to the column's dimension.
    fn to_column(&self, v: &[f32]) -> pgvector::Vector {
        let mut padded = v.to_vec();
        if let Some(d) = self.schema.dimension {
            padded.resize(d.max(v.len()), 0.0);
        }
        pgvector::Vector::from(padded)
    }
}

/// Open WebUI's upsert: an existing id takes the new vector, collection, text and metadata.
const ON_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET vector = EXCLUDED.vector, \
     collection_name = EXCLUDED.collection_name, text = EXCLUDED.text, \
     vmetadata = EXCLUDED.vmetadata";

impl Statements {
    fn new(column_type: ColumnType, prepare: Prepare) -> Self {
        let ty = column_type.sql_name();
        let insert = format!(
            "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
             SELECT u.id, u.v, $5, u.t, u.m \
             FROM unnest($1::text[], $2::{ty}[], $3::text[], $4::jsonb[]) AS u(id, v, t, m)"
        );
        let upsert = format!("{insert}{ON_CONFLICT}");
        // Both parts read the statement's snapshot: `before` sees the rows as they were.
        let upsert_holders = format!(
            "WITH before AS (SELECT DISTINCT collection_name FROM document_chunk \
             WHERE id = ANY($1::text[])), up AS ({upsert}) SELECT collection_name FROM before"
        );
        // Through a pooler a result column of type `vector` is read as `real[]`: sqlx looks an
        // unknown result type up with a simple query between Parse and Bind, and a simple
        // query drops the unnamed statement (SQLSTATE 26000 at Bind).
        let vector_expr = match (column_type, prepare) {
            (ColumnType::Vector, Prepare::Named) => "vector",
            (ColumnType::HalfVec, Prepare::Named) => "vector::vector",
            (ColumnType::Vector, Prepare::Unnamed) => "vector::real[]",
            (ColumnType::HalfVec, Prepare::Unnamed) => "vector::vector::real[]",
        };
        let insert_staged = format!(
            "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
             SELECT s.id, s.vector::{ty}, $1, s.text, s.vmetadata FROM chatstore_staging s"
        );
        let upsert_staged = format!("{insert_staged}{ON_CONFLICT}");
        Statements {
            insert,
            upsert_holders,
            insert_staged,
            upsert_staged,
            vector_expr,
        }
    }
}

/// `chatstore_core::pool_budget`'s row (connection budget and the server's port), read with an
/// unnamed statement in a transaction, the one form that works through any pooler; `None`
/// (logged) when the server will not say.
async fn server_facts(pool: &PgPool) -> Option<PgRow> {
    let read = async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(chatstore_core::pool_budget::POSTGRES_QUERY)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    };
    read.await
        .inspect_err(|e| tracing::warn!("cannot read the server's connection budget: {e}"))
        .ok()
}

/// Whether `direct` reaches the database `pool` serves (the same database of the same server
/// run: [`chatstore_core::pool_budget::DATABASE_IDENTITY`]); `true` when it cannot be told.
async fn names_this_database(pool: &PgPool, direct: &PgConnectOptions) -> bool {
    use sqlx::{Connection as _, Row as _};
    let identity = chatstore_core::pool_budget::DATABASE_IDENTITY;
    let wait = std::time::Duration::from_secs(10);
    let Ok(Ok(row)) = tokio::time::timeout(wait, sqlx::raw_sql(identity).fetch_one(pool)).await
    else {
        return true;
    };
    let read_direct = async {
        let mut conn = sqlx::PgConnection::connect_with(direct).await?;
        let row = sqlx::raw_sql(identity).fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(row)
    };
    let Ok(Ok(direct_row)) = tokio::time::timeout(wait, read_direct).await else {
        return true;
    };
    let id = |row: &PgRow| row.try_get::<String, _>(0).ok();
    id(&row) == id(&direct_row)
}

/// Whether the server answering on `options`' port says it listens on another one (a pooler
/// in between).
fn reached_through_pooler(options: &PgConnectOptions, row: &PgRow) -> bool {
    use sqlx::Row as _;
    let server_port = row.try_get::<Option<i32>, _>("server_port").ok().flatten();
    let dialled = options.get_socket().is_none().then(|| options.get_port());
    chatstore_core::pool_budget::behind_pooler(dialled, server_port)
}

/// Refuses a pool that cannot fit in the server's connection budget (see
/// [`chatstore_core::pool_budget`]); the pool's own open connections are not counted. Through a
/// pooler, or when the server will not say, the pool is let through. `Ok(true)` when the pool
/// goes through a pooler.
async fn check_pool_budget(pool: &PgPool, config: &PgVectorConfig) -> Result<bool> {
    use chatstore_core::pool_budget::PoolBudget;
    use sqlx::Row as _;
    let Some(row) = server_facts(pool).await else {
        return Ok(false);
    };
    if reached_through_pooler(&pool.connect_options(), &row) {
        tracing::info!("PostgreSQL is reached through a pooler: its connection budget applies");
        return Ok(true);
    }
    let number = |name: &str| {
        row.try_get::<i32, _>(name)
            .map(|n| u32::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    };
    PoolBudget {
        max_connections: number("max_connections"),
        superuser_reserved: number("superuser_reserved"),
        reserved: number("reserved"),
        in_use: number("in_use").saturating_sub(pool.size()),
    }
    .check(config.pool_size.max(1))?;
    Ok(false)
}

/// A stored vector's width up to its last non-zero component (the column's zero padding left
/// out).
pub(crate) fn unpadded_width(vector: &[f32]) -> usize {
    vector.iter().rposition(|x| *x != 0.0).map_or(0, |i| i + 1)
}

/// Whether the server (a pooler such as PgBouncer) refused a startup parameter it does not
/// know ([`chatstore_core::sqlstate::refuses_startup_parameter`]).
fn refused_startup_option(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| chatstore_core::sqlstate::refuses_startup_parameter(d.message()))
}
