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
mod vectors;

use std::sync::Arc;

use chatstore_core::{Result, Store, StoreParts};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

pub use config::PgVectorConfig;
pub use indexes::CollectionPlan;
pub use open_webui::OpenWebUiIndex;
pub use schema::FILTER_KEYS;
pub use schema::{ColumnType, Schema};
pub use search::SearchPlan;

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
}

/// SQL that depends on the detected column type, built once.
#[derive(Debug)]
struct Statements {
    insert: String,
    upsert: String,
    insert_staged: String,
    upsert_staged: String,
    /// The vector column as a `vector` (a `halfvec` column is cast).
    vector_expr: &'static str,
}

impl PgVectorStore {
    /// Opens a pool of `config.pool_size` connections and ensures the schema.
    pub async fn connect(config: PgVectorConfig) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size.max(1))
            .acquire_timeout(config.acquire_timeout)
            .connect(&config.url)
            .await
            .map_err(error::during("connecting to PostgreSQL"))?;
        if let Err(e) = check_pool_budget(&pool, &config).await {
            pool.close().await;
            return Err(e);
        }
        Self::from_pool(pool, config).await
    }

    /// Uses an existing pool (its size is the caller's); `config.url` and `pool_size` are
    /// ignored.
    pub async fn from_pool(pool: PgPool, config: PgVectorConfig) -> Result<Self> {
        let schema = schema::ensure(&pool, &config).await?;
        let statements = Statements::new(schema.column_type);
        Ok(PgVectorStore {
            pool,
            schema,
            config: Arc::new(config),
            statements: Arc::new(statements),
            builder: Arc::new(indexes::Builder::default()),
        })
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
            .pool
            .begin()
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
    fn new(column_type: ColumnType) -> Self {
        let ty = column_type.sql_name();
        let insert = format!(
            "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
             SELECT u.id, u.v, $5, u.t, u.m \
             FROM unnest($1::text[], $2::{ty}[], $3::text[], $4::jsonb[]) AS u(id, v, t, m)"
        );
        let upsert = format!("{insert}{ON_CONFLICT}");
        let vector_expr = match column_type {
            ColumnType::Vector => "vector",
            ColumnType::HalfVec => "vector::vector",
        };
        let insert_staged = format!(
            "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
             SELECT s.id, s.vector::{ty}, $1, s.text, s.vmetadata FROM chatstore_staging s"
        );
        let upsert_staged = format!("{insert_staged}{ON_CONFLICT}");
        Statements {
            insert,
            upsert,
            insert_staged,
            upsert_staged,
            vector_expr,
        }
    }
}

/// Refuses a pool that cannot fit in the server's connection budget (see
/// [`chatstore_core::pool_budget`]); the pool's own open connections are not counted. Through a
/// pooler, or when the server will not say, the pool is let through.
async fn check_pool_budget(pool: &PgPool, config: &PgVectorConfig) -> Result<()> {
    use chatstore_core::pool_budget::{POSTGRES_QUERY, PoolBudget, behind_pooler};
    use sqlx::Row as _;
    let read = async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(POSTGRES_QUERY)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    };
    let row = match read.await {
        Ok(row) => row,
        Err(e) => {
            tracing::warn!("cannot read the server's connection budget: {e}");
            return Ok(());
        }
    };
    let number = |name: &str| {
        row.try_get::<i32, _>(name)
            .map(|n| u32::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    };
    let server_port = row.try_get::<Option<i32>, _>("server_port").ok().flatten();
    let dialled = <sqlx::postgres::PgConnectOptions as std::str::FromStr>::from_str(&config.url)
        .ok()
        .filter(|o| o.get_socket().is_none())
        .map(|o| o.get_port());
    if behind_pooler(dialled, server_port) {
        tracing::info!("PostgreSQL is reached through a pooler: its connection budget applies");
        return Ok(());
    }
    PoolBudget {
        max_connections: number("max_connections"),
        superuser_reserved: number("superuser_reserved"),
        reserved: number("reserved"),
        in_use: number("in_use").saturating_sub(pool.size()),
    }
    .check(config.pool_size.max(1))
}
