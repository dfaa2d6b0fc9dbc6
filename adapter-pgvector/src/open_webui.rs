//! Open WebUI's own vector index, built ahead of Open WebUI's start-up.
//!
//! At every start Open WebUI 0.12.4 runs `CREATE INDEX IF NOT EXISTS idx_document_chunk_vector
//! ON document_chunk USING ivfflat (vector vector_cosine_ops) WITH (lists = 100)` (HNSW
//! `m = 16, ef_construction = 64` on a `halfvec` column, or the method `PGVECTOR_INDEX_METHOD`
//! names) once the table holds 50 x lists rows. On a `vector(1536)` column of about 10,000 rows
//! that build needs more than PostgreSQL's default `maintenance_work_mem` (64 MB: "memory
//! required is 65 MB") and Open WebUI does not start. A bulk load (a migration) therefore builds
//! that index itself, with enough memory, so Open WebUI finds it and skips the build.

use chatstore_core::Result;

use crate::error::during;
use crate::{ColumnType, PgVectorStore};

/// Open WebUI's name of its global vector index.
pub const INDEX_NAME: &str = "idx_document_chunk_vector";

const EXISTING: &str = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
     AND tablename = 'document_chunk' AND indexname = 'idx_document_chunk_vector'";
const ROWS: &str = "SELECT count(*) FROM document_chunk";
const DROP: &str = "DROP INDEX IF EXISTS idx_document_chunk_vector";

/// The access method of Open WebUI's vector index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMethod {
    /// `ivfflat`.
    Ivfflat,
    /// `hnsw`.
    Hnsw,
}

impl IndexMethod {
    /// The method as PostgreSQL names it in `USING`.
    pub fn as_str(self) -> &'static str {
        match self {
            IndexMethod::Ivfflat => "ivfflat",
            IndexMethod::Hnsw => "hnsw",
        }
    }

    /// The method Open WebUI's `PGVECTOR_INDEX_METHOD` names (any case, spaces around), if it
    /// names one.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "ivfflat" => Some(IndexMethod::Ivfflat),
            "hnsw" => Some(IndexMethod::Hnsw),
            _ => None,
        }
    }
}

/// The index Open WebUI expects, from its own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenWebUiIndex {
    /// Open WebUI's `PGVECTOR_INDEX_METHOD`; unset: ivfflat, hnsw for halfvec columns.
    pub method: Option<IndexMethod>,
    /// ivfflat lists (`PGVECTOR_IVFFLAT_LISTS`, default 100).
    pub lists: u32,
    /// HNSW m (`PGVECTOR_HNSW_M`, default 16).
    pub m: u32,
    /// HNSW ef_construction (`PGVECTOR_HNSW_EF_CONSTRUCTION`, default 64).
    pub ef_construction: u32,
}

impl Default for OpenWebUiIndex {
    fn default() -> Self {
        OpenWebUiIndex {
            method: None,
            lists: 100,
            m: 16,
            ef_construction: 64,
        }
    }
}

impl OpenWebUiIndex {
    /// Open WebUI's settings from the environment (its own variable names).
    pub fn from_env() -> Self {
        let num = |name: &str, default: u32| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(default)
        };
        let d = OpenWebUiIndex::default();
        OpenWebUiIndex {
            method: std::env::var("PGVECTOR_INDEX_METHOD")
                .ok()
                .and_then(|m| IndexMethod::parse(&m)),
            lists: num("PGVECTOR_IVFFLAT_LISTS", d.lists).max(1),
            m: num("PGVECTOR_HNSW_M", d.m).max(2),
            ef_construction: num("PGVECTOR_HNSW_EF_CONSTRUCTION", d.ef_construction).max(4),
        }
    }

    /// The method Open WebUI picks for this column.
    pub fn method_for(&self, column: ColumnType) -> IndexMethod {
        match (self.method, column) {
            (Some(m), _) => m,
            (None, ColumnType::HalfVec) => IndexMethod::Hnsw,
            (None, ColumnType::Vector) => IndexMethod::Ivfflat,
        }
    }
}

impl PgVectorStore {
    /// Builds Open WebUI's `idx_document_chunk_vector` the way Open WebUI would (same method,
    /// operator class and options), with `index_build_memory_mb` of `maintenance_work_mem`,
    /// when Open WebUI's start-up would build it: the table holds at least 50 x lists rows (for
    /// ivfflat; any row for HNSW) and the index is missing or uses another method (replaced, as
    /// Open WebUI cannot start on a mismatch). Returns whether it built the index.
    pub async fn build_open_webui_index(&self, settings: &OpenWebUiIndex) -> Result<bool> {
        let column = self.schema.column_type;
        // A constant of the enum: the only settings text spliced into the DDL below besides
        // numbers.
        let method = settings.method_for(column);
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        let existing: Option<String> = self
            .prepare
            .scalar(EXISTING)
            .fetch_optional(&mut *tx)
            .await
            .map_err(during("looking for Open WebUI's vector index"))?;
        if let Some(def) = &existing
            && def
                .to_ascii_lowercase()
                .contains(&format!("using {} ", method.as_str()))
        {
            return Ok(false);
        }
        let rows: i64 = self
            .prepare
            .scalar(ROWS)
            .fetch_one(&mut *tx)
            .await
            .map_err(during("counting document_chunk"))?;
        let threshold = if method == IndexMethod::Ivfflat {
            50 * i64::from(settings.lists)
        } else {
            1
        };
        if existing.is_none() && rows < threshold {
            return Ok(false);
        }
        let options = if method == IndexMethod::Hnsw {
            format!(
                "WITH (m = {}, ef_construction = {})",
                settings.m, settings.ef_construction
            )
        } else {
            format!("WITH (lists = {})", settings.lists)
        };
        let create = format!(
            "CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON document_chunk USING {} (vector {}) {options}",
            method.as_str(),
            column.cosine_ops()
        );
        let memory = format!(
            "SET LOCAL maintenance_work_mem = '{}MB'",
            self.config.index_build_memory_mb.max(64)
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(memory))
            .execute(&mut *tx)
            .await
            .map_err(during("raising maintenance_work_mem"))?;
        sqlx::raw_sql(DROP)
            .execute(&mut *tx)
            .await
            .map_err(during("dropping a mismatched Open WebUI vector index"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(create))
            .execute(&mut *tx)
            .await
            .map_err(during("building Open WebUI's vector index"))?;
        tx.commit()
            .await
            .map_err(during("committing Open WebUI's vector index"))?;
        Ok(true)
    }
}
