//! Schema: creates Open WebUI's `document_chunk` table (and chatstore's small side table) on an
//! empty database, or detects what an existing one holds (column type, dimension, pgvector
//! version) and adapts to it.

use chatstore_core::{Error, Result};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::config::PgVectorConfig;
use crate::error::{during, map, missing_extension};
use crate::session::{Prepare, Session};

/// Advisory lock key that serialises schema creation across processes ("chatstore" in ASCII).
const SCHEMA_LOCK: i64 = 0x6368_6174_7374_6f72;

/// Up to this many bytes of vector a new table keeps vectors inline (STORAGE MAIN): 7 KiB leaves
/// room on an 8 KiB page for a chunk's text and metadata (`vector(1792)`, `halfvec(3584)`).
const INLINE_MAX_BYTES: usize = 7 * 1024;
/// `toast_tuple_target` of a new table: the largest a row may be before PostgreSQL moves
/// values out of line (the most it accepts: a whole page).
const TOAST_TUPLE_TARGET: usize = 8160;

/// The vector column's type as found or created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `vector(n)`: 4-byte floats.
    Vector,
    /// `halfvec(n)`: 2-byte floats (pgvector 0.7+).
    HalfVec,
}

impl ColumnType {
    /// The SQL type name.
    pub fn sql_name(self) -> &'static str {
        match self {
            ColumnType::Vector => "vector",
            ColumnType::HalfVec => "halfvec",
        }
    }

    /// The cosine operator class of an index on this type.
    pub fn cosine_ops(self) -> &'static str {
        match self {
            ColumnType::Vector => "vector_cosine_ops",
            ColumnType::HalfVec => "halfvec_cosine_ops",
        }
    }

    /// Bytes per component.
    pub fn element_bytes(self) -> usize {
        match self {
            ColumnType::Vector => 4,
            ColumnType::HalfVec => 2,
        }
    }

    /// The largest dimension an HNSW index accepts for this type.
    pub fn hnsw_max_dimension(self) -> usize {
        match self {
            ColumnType::Vector => 2_000,
            ColumnType::HalfVec => 4_000,
        }
    }
}

/// What the database holds: detected once when the store opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The type of `document_chunk.vector`.
    pub column_type: ColumnType,
    /// Its dimension; `None` for an unconstrained column (`vector` without a size).
    pub dimension: Option<usize>,
    /// The installed pgvector version, `(major, minor, patch)`.
    pub pgvector_version: (u32, u32, u32),
    /// Whether the side table `chatstore_collection` exists: always after a writable opening;
    /// a read-only one of a database chatstore never wrote finds none, and reads every
    /// collection as one without a side row.
    pub side_table: bool,
}

impl Schema {
    /// Whether pgvector can build HNSW indexes (0.5+) on this column.
    pub fn supports_hnsw(&self) -> bool {
        self.pgvector_version >= (0, 5, 0)
            && self
                .dimension
                .is_some_and(|d| d <= self.column_type.hnsw_max_dimension())
    }

    /// The longest vector the column takes.
    pub fn max_dimension(&self) -> usize {
        self.dimension
            .unwrap_or(chatstore_core::vectors::MAX_DIMENSION)
    }
}

const SERVER_VERSION: &str = "SELECT current_setting('server_version_num')::int";
const EXTENSION_VERSION: &str = "SELECT extversion FROM pg_extension WHERE extname = 'vector'";
const CREATE_EXTENSION: &str = "CREATE EXTENSION IF NOT EXISTS vector";
const EXTENSION_AVAILABLE: &str =
    "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')";
const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
/// The vector column: type name and typmod (the dimension, or -1).
const VECTOR_COLUMN: &str = "SELECT t.typname::text, a.atttypmod \
     FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
     WHERE a.attrelid = to_regclass('document_chunk') AND a.attname = 'vector' \
     AND NOT a.attisdropped";
/// The types of the other columns chatstore reads, to refuse a pgcrypto-encrypted table.
const COLUMN_TYPES: &str = "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
     FROM pg_attribute a WHERE a.attrelid = to_regclass('document_chunk') \
     AND a.attname IN ('id', 'collection_name', 'text', 'vmetadata') AND NOT a.attisdropped";
const COLLECTION_INDEX: &str = "CREATE INDEX IF NOT EXISTS idx_document_chunk_collection_name \
     ON document_chunk (collection_name)";
/// The metadata keys Open WebUI filters knowledge searches by. chatstore gives each an index
/// `chatstore_document_chunk_<key>` on `(collection_name, (vmetadata ->> '<key>'))`, so a
/// selective filter reads only its own rows; Open WebUI's columns stay as they are.
pub const FILTER_KEYS: [&str; 4] = ["file_id", "hash", "source", "name"];
/// Whether one of chatstore's indexes exists and is valid (a failed concurrent build leaves it
/// invalid).
const INDEX_VALID: &str =
    "SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($1)";
/// Serialises the concurrent builds of chatstore's btree indexes by processes that connect
/// together.
const OWN_INDEX_LOCK: i64 = 0x6368_6174_6669_6c74;
/// Whether Open WebUI's index on `collection_name` exists.
const COLLECTION_INDEX_EXISTS: &str =
    "SELECT to_regclass('idx_document_chunk_collection_name') IS NOT NULL";
/// The columns of [`SIDE_TABLE_COLUMNS`].
const SIDE_TABLE_LATER_COLUMNS: [&str; 6] = [
    "written",
    "indexed_rows",
    "exact_filter_rows",
    "value_counts",
    "index_dimension",
    "index_normalised",
];
/// How many of [`SIDE_TABLE_LATER_COLUMNS`] the side table has (0 without the table).
const SIDE_TABLE_COLUMNS_FOUND: &str = "SELECT count(*) FROM pg_attribute \
     WHERE attrelid = to_regclass('chatstore_collection') AND attname = ANY($1) \
     AND attnum > 0 AND NOT attisdropped";
/// Side-table columns added after its first version (an older side table gains them).
const SIDE_TABLE_COLUMNS: &str = "ALTER TABLE chatstore_collection \
     ADD COLUMN IF NOT EXISTS written BIGINT NOT NULL DEFAULT 0, \
     ADD COLUMN IF NOT EXISTS indexed_rows BIGINT, \
     ADD COLUMN IF NOT EXISTS exact_filter_rows BIGINT, \
     ADD COLUMN IF NOT EXISTS value_counts JSONB, \
     ADD COLUMN IF NOT EXISTS index_dimension INTEGER, \
     ADD COLUMN IF NOT EXISTS index_normalised BOOLEAN NOT NULL DEFAULT false";
/// The statement that turns off deduplication on `document_chunk`'s primary key, or none when
/// it is off already, when someone chose a value for it, or before PostgreSQL 13 (where the
/// option does not exist). See [`set_primary_key_options`].
const PRIMARY_KEY_OPTIONS: &str = "SELECT format('ALTER INDEX %s SET (deduplicate_items = off)', \
     i.indexrelid::regclass) \
     FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam \
     WHERE i.indrelid = to_regclass('document_chunk') AND i.indisprimary AND a.amname = 'btree' \
     AND current_setting('server_version_num')::int >= 130000 \
     AND NOT EXISTS (SELECT 1 FROM unnest(c.reloptions) o WHERE o LIKE 'deduplicate_items=%')";
/// How long the primary key's option waits for its lock (held only by maintenance such as a
/// `REINDEX`; reads and writes never wait for it).
const PRIMARY_KEY_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '2s'";
/// chatstore's side table: the dimension each collection was created with (zero padding hides
/// it in `document_chunk`) and the search plan `optimize` chose for it.
const SIDE_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatstore_collection (\
     name TEXT PRIMARY KEY, \
     dimension INTEGER, \
     hnsw_ef INTEGER, \
     index_name TEXT)";

/// Ensures the extension, the table, its indexes and the side table exist; returns what was
/// found. Runs in one transaction under an advisory lock, so processes starting together do not
/// race. The filter indexes an existing table lacks are built afterwards on `own_session` (a
/// connection of its own to the server), or left out when there is none.
pub(crate) async fn ensure(
    pool: &PgPool,
    config: &PgVectorConfig,
    prepare: Prepare,
    own_session: Option<&PgConnectOptions>,
) -> Result<Schema> {
    if config.read_only {
        return inspect(pool, prepare).await;
    }
    let mut tx = pool
        .begin()
        .await
        .map_err(during("opening a transaction"))?;
    prepare
        .query(LOCK)
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(during("taking the schema lock"))?;

    let mut version: Option<String> = prepare
        .scalar(EXTENSION_VERSION)
        .fetch_optional(&mut *tx)
        .await
        .map_err(during("reading the pgvector version"))?;
    if version.is_none() {
        let available: bool = prepare
            .scalar(EXTENSION_AVAILABLE)
            .fetch_one(&mut *tx)
            .await
            .map_err(during("looking for the pgvector extension"))?;
        if !available {
            return Err(missing_extension(
                "the PostgreSQL server has no `vector` extension (pgvector) installed; \
                 install pgvector on the server (https://github.com/pgvector/pgvector)",
                None,
            ));
        }
        if !config.create_extension {
            return Err(missing_extension(
                "the database has no `vector` extension and creating it is disabled \
                 (PGVECTOR_CREATE_EXTENSION=false); run `CREATE EXTENSION vector` as a privileged user",
                None,
            ));
        }
        prepare
            .query(CREATE_EXTENSION)
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                // The server refused (rights, mostly): a database without the extension.
                sqlx::Error::Database(_) => missing_extension(
                    "creating the `vector` extension failed (it needs a superuser or the \
                     database owner on PostgreSQL 13+); run `CREATE EXTENSION vector` as a \
                     privileged user",
                    Some(e),
                ),
                // A lost connection says nothing about the extension.
                e => map("creating the `vector` extension", e),
            })?;
        version = prepare
            .scalar(EXTENSION_VERSION)
            .fetch_optional(&mut *tx)
            .await
            .map_err(during("reading the pgvector version"))?;
    }
    let version = version.ok_or_else(|| Error::backend_msg("the `vector` extension vanished"))?;
    let pgvector_version = parse_version(&version);

    let server_version: i32 = prepare
        .scalar(SERVER_VERSION)
        .fetch_one(&mut *tx)
        .await
        .map_err(during("reading the server version"))?;
    let column = detect_column(&mut tx, prepare).await?;
    let (column_type, dimension) = match column {
        Some(found) => found,
        None => {
            let column_type = if config.use_halfvec {
                ColumnType::HalfVec
            } else {
                ColumnType::Vector
            };
            if column_type == ColumnType::HalfVec && pgvector_version < (0, 7, 0) {
                return Err(Error::invalid(format!(
                    "halfvec needs pgvector 0.7 or later; the server has {version}"
                )));
            }
            if config.dimension == 0 || config.dimension > chatstore_core::vectors::MAX_DIMENSION {
                return Err(Error::invalid(format!(
                    "the vector column's dimension must be between 1 and {}, got {}",
                    chatstore_core::vectors::MAX_DIMENSION,
                    config.dimension
                )));
            }
            let create = format!(
                "CREATE TABLE document_chunk (id TEXT NOT NULL, vector {}({}), \
                 collection_name TEXT NOT NULL, text TEXT, vmetadata JSONB, PRIMARY KEY (id)) \
                 WITH (toast_tuple_target = {TOAST_TUPLE_TARGET})",
                column_type.sql_name(),
                config.dimension
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&mut *tx)
                .await
                .map_err(during("creating table document_chunk"))?;
            // A row stays whole on its page while it fits one. PostgreSQL's defaults move
            // values out of line (TOAST) once a row passes 2 KB, and `vector` is STORAGE
            // EXTERNAL: every vector of 384 dimensions or more would go out of line, and each
            // row an exact scan reads would cost a TOAST index lookup and 1-4 more pages (a
            // filtered search over 1,000 rows of 1536 dimensions: 9 ms against 2.7 ms
            // inline). With MAIN alone the vector would stay but the text and metadata would
            // go, and every filter on metadata would read them back. So: no TOAST below a
            // page (`toast_tuple_target`), and the vector the last value to leave when a row
            // is larger (MAIN). The price: a scan reading only metadata of a whole
            // collection reads its vectors' pages too; chatstore's filters find their rows
            // through the filter indexes instead.
            if config.dimension * column_type.element_bytes() <= INLINE_MAX_BYTES {
                sqlx::raw_sql("ALTER TABLE document_chunk ALTER COLUMN vector SET STORAGE MAIN")
                    .execute(&mut *tx)
                    .await
                    .map_err(during("setting the vector column's storage"))?;
            }
            // chatstore's own indexes (the filter keys', the walk's): the table is empty, so
            // building them here costs nothing.
            for index in own_indexes(server_version) {
                sqlx::raw_sql(sqlx::AssertSqlSafe(index.ddl(false)))
                    .execute(&mut *tx)
                    .await
                    .map_err(during("creating one of chatstore's indexes"))?;
            }
            (column_type, Some(config.dimension))
        }
    };
    check_other_columns(&mut tx, prepare).await?;
    // Each statement below locks its table before it looks whether there is anything to do
    // (`CREATE INDEX` a share lock on `document_chunk`, which waits for another process's
    // concurrent index build, minutes, with every write of every process queued behind it;
    // `ALTER TABLE` an exclusive lock on the side table, which every search reads). So the
    // catalog is asked first, and a database that has them all is opened without a lock.
    let has_index: bool = prepare
        .scalar(COLLECTION_INDEX_EXISTS)
        .fetch_one(&mut *tx)
        .await
        .map_err(during("looking for the collection_name index"))?;
    if !has_index {
        sqlx::raw_sql(COLLECTION_INDEX)
            .execute(&mut *tx)
            .await
            .map_err(during("creating the collection_name index"))?;
    }
    let columns: i64 = prepare
        .scalar(SIDE_TABLE_COLUMNS_FOUND)
        .bind(&SIDE_TABLE_LATER_COLUMNS[..])
        .fetch_one(&mut *tx)
        .await
        .map_err(during("looking at table chatstore_collection"))?;
    if columns < SIDE_TABLE_LATER_COLUMNS.len() as i64 {
        sqlx::raw_sql(SIDE_TABLE)
            .execute(&mut *tx)
            .await
            .map_err(during("creating table chatstore_collection"))?;
        sqlx::raw_sql(SIDE_TABLE_COLUMNS)
            .execute(&mut *tx)
            .await
            .map_err(during("adding columns to chatstore_collection"))?;
    }
    let primary_key_alter: Option<String> = prepare
        .scalar(PRIMARY_KEY_OPTIONS)
        .fetch_optional(&mut *tx)
        .await
        .map_err(during("looking at the primary key's options"))?;
    tx.commit().await.map_err(during("committing the schema"))?;
    if let Some(alter) = primary_key_alter
        && let Err(e) = set_primary_key_options(pool, alter).await
    {
        tracing::warn!(
            error = %e,
            "could not turn off deduplication on document_chunk's primary key; upserts that \
             replace rows stay correct, only slower. Tried again at the next start; or run \
             `ALTER INDEX document_chunk_pkey SET (deduplicate_items = off)` as the table's \
             owner"
        );
    }
    ensure_own_indexes(pool, prepare, own_session, server_version).await?;
    Ok(Schema {
        column_type,
        dimension,
        pgvector_version,
        side_table: true,
    })
}

/// Runs `alter` (the statement [`PRIMARY_KEY_OPTIONS`] returns in the schema transaction): turns
/// off deduplication on `document_chunk`'s primary key (`deduplicate_items`, a storage option:
/// Open WebUI's columns and constraint stay as they are).
///
/// An upsert replaces rows by deleting them and copying the new versions in, in one
/// transaction, so each new key meets its own deleted version in the primary key. When a leaf
/// page fills, PostgreSQL first tries to free it: a bottom-up deletion pass (which cannot remove
/// this transaction's own deletions) and then a deduplication pass merging each key's two
/// versions into one posting list, after which the page mostly splits anyway. Without the
/// second pass the replacing copy ran 8 % faster (server alone, 10,000 rows of 384
/// dimensions: 0.84 of the COPY ceiling against 0.77-0.79). Unique keys never deduplicate
/// otherwise, so inserts are unchanged; the price is a primary key up to about 1.5 times as
/// large while replaced versions wait for a vacuum.
///
/// In a transaction of its own, after the schema's: the option takes a lock on the index that
/// no read or write waits for; maintenance holding it (a `REINDEX`) makes this give up after
/// [`PRIMARY_KEY_LOCK_TIMEOUT`] without holding the schema lock meanwhile.
async fn set_primary_key_options(pool: &PgPool, alter: String) -> Result<()> {
    let mut tx = pool
        .begin()
        .await
        .map_err(during("opening a transaction"))?;
    sqlx::raw_sql(PRIMARY_KEY_LOCK_TIMEOUT)
        .execute(&mut *tx)
        .await
        .map_err(during("setting the lock timeout"))?;
    // The index's name comes from the catalog, quoted by `regclass`.
    sqlx::raw_sql(sqlx::AssertSqlSafe(alter))
        .execute(&mut *tx)
        .await
        .map_err(during("setting the primary key's options"))?;
    tx.commit()
        .await
        .map_err(during("committing the primary key's options"))
}

const SIDE_TABLE_EXISTS: &str = "SELECT to_regclass('chatstore_collection') IS NOT NULL";

/// What a read-only opening finds, creating and changing nothing: a database without the
/// extension or without `document_chunk` holds no vectors.
async fn inspect(pool: &PgPool, prepare: Prepare) -> Result<Schema> {
    // In a transaction: behind a transaction pooler (PgBouncer) an unnamed statement outside
    // one may be parsed on one server connection and bound on another ("unnamed prepared
    // statement does not exist"). Nothing is written, so it is rolled back when dropped.
    let mut conn = pool
        .begin()
        .await
        .map_err(during("opening a transaction"))?;
    let version: Option<String> = prepare
        .scalar(EXTENSION_VERSION)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("reading the pgvector version"))?;
    let Some(version) = version else {
        return Err(missing_extension(
            "the database has no `vector` extension (a read-only opening creates nothing)",
            None,
        ));
    };
    let Some((column_type, dimension)) = detect_column(&mut conn, prepare).await? else {
        return Err(missing_extension(
            "the database has no document_chunk table (a read-only opening creates nothing)",
            None,
        ));
    };
    check_other_columns(&mut conn, prepare).await?;
    let side_table: bool = prepare
        .scalar(SIDE_TABLE_EXISTS)
        .fetch_one(&mut *conn)
        .await
        .map_err(during("looking for table chatstore_collection"))?;
    Ok(Schema {
        column_type,
        dimension,
        pgvector_version: parse_version(&version),
        side_table,
    })
}

/// The name of the filter index on `key` (one of [`FILTER_KEYS`]).
fn filter_index_name(key: &str) -> String {
    format!("chatstore_document_chunk_{key}")
}

/// The index a walk of a collection (`scan`, the reads of a migration or a verification)
/// follows: the collection's rows in byte order of their ids. PostgreSQL never reads the
/// primary key for a `COLLATE "C"` order, even in a database whose collation is C, and Open
/// WebUI's index on `collection_name` alone leaves every page to sort the whole collection:
/// walking 89,000 rows in pages of 500 took 26.7 s, each page reading them all, and 2.5 s
/// along this index. Its price is one more btree on every write, about a tenth of a bulk
/// insert into a table without vector indexes.
const SCAN_INDEX: &str = "chatstore_document_chunk_scan";

/// One of chatstore's btree indexes on `document_chunk`; Open WebUI's columns stay as they are.
struct OwnIndex {
    name: String,
    /// What the index holds (constants of this module, never user input).
    columns: String,
    /// Its storage options (`WITH (...)`), if any.
    options: Option<&'static str>,
}

impl OwnIndex {
    /// `CREATE INDEX [CONCURRENTLY] IF NOT EXISTS` of the index.
    fn ddl(&self, concurrently: bool) -> String {
        format!(
            "CREATE INDEX {}IF NOT EXISTS {} ON document_chunk ({}){}",
            if concurrently { "CONCURRENTLY " } else { "" },
            self.name,
            self.columns,
            self.options
                .map(|o| format!(" WITH ({o})"))
                .unwrap_or_default()
        )
    }
}

/// chatstore's btree indexes: one per filter key on `(collection_name, (vmetadata ->> key))`,
/// so a selective filtered search reads only the matching rows (Open WebUI filters
/// knowledge-base searches by these keys), and [`SCAN_INDEX`].
/// `server_version` is `server_version_num` (PostgreSQL 12 has no `deduplicate_items`).
fn own_indexes(server_version: i32) -> impl Iterator<Item = OwnIndex> {
    FILTER_KEYS
        .iter()
        .map(|key| OwnIndex {
            name: filter_index_name(key),
            columns: format!("collection_name, (vmetadata ->> '{key}')"),
            options: None,
        })
        .chain(std::iter::once(OwnIndex {
            name: SCAN_INDEX.to_owned(),
            columns: "collection_name, id COLLATE \"C\"".to_owned(),
            // Its keys are unique, as the primary key's: an upsert's new versions would only
            // be merged with their replaced ones (see `set_primary_key_options`).
            options: (server_version >= 130_000).then_some("deduplicate_items = off"),
        }))
}

/// Gives an existing table chatstore's indexes it lacks, built `CONCURRENTLY` (writers go on;
/// an Open WebUI table may be large) on `own_session`. An invalid leftover of a failed build
/// is dropped and built again. Of processes that connect together, the one holding an advisory
/// lock builds them; the others go on without waiting. Without a session of its own (behind a
/// pooler with no direct URL) they are left out, with a warning: searches and walks are exact
/// without them, only slower.
async fn ensure_own_indexes(
    pool: &PgPool,
    prepare: Prepare,
    own_session: Option<&PgConnectOptions>,
    server_version: i32,
) -> Result<()> {
    let mut session = Session::open(pool, prepare).await?;
    let mut missing = Vec::new();
    for index in own_indexes(server_version) {
        let valid: Option<bool> = prepare
            .scalar(INDEX_VALID)
            .bind(&index.name)
            .fetch_optional(&mut *session)
            .await
            .map_err(during("looking for one of chatstore's indexes"))?;
        if valid != Some(true) {
            missing.push((index, valid.is_some()));
        }
    }
    session.finish().await?;
    if missing.is_empty() {
        return Ok(());
    }
    let Some(options) = own_session else {
        tracing::warn!(
            "document_chunk lacks chatstore's metadata filter and walk indexes, which need a \
             connection of their own to build (CREATE INDEX CONCURRENTLY): set {} to the \
             PostgreSQL server's own URL to have them built",
            crate::DIRECT_URL_ENV
        );
        return Ok(());
    };
    let mut conn = PgConnection::connect_with(options)
        .await
        .map_err(during("connecting for chatstore's index builds"))?;
    let result = build_own_indexes(&mut conn, &missing).await;
    let closed = conn
        .close()
        .await
        .map_err(during("closing the index build connection"));
    result.and(closed)
}

/// Builds the `missing` indexes (`(index, invalid leftover)`) under the own-index lock, on a
/// connection of their own (closing it releases the lock whatever happened).
async fn build_own_indexes(conn: &mut PgConnection, missing: &[(OwnIndex, bool)]) -> Result<()> {
    // Another process building them: leave it to that one (searches are correct without
    // them). Waiting for its lock would hold a snapshot its concurrent build waits for.
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(OWN_INDEX_LOCK)
        .fetch_one(&mut *conn)
        .await
        .map_err(during("taking the index build lock"))?;
    if !locked {
        return Ok(());
    }
    for (index, invalid) in missing {
        if *invalid {
            let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {}", index.name);
            sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&mut *conn)
                .await
                .map_err(during("dropping an invalid index"))?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(index.ddl(true)))
            .execute(&mut *conn)
            .await
            .map_err(during("creating one of chatstore's indexes"))?;
    }
    Ok(())
}

async fn detect_column(
    tx: &mut PgConnection,
    prepare: Prepare,
) -> Result<Option<(ColumnType, Option<usize>)>> {
    let row = prepare
        .query(VECTOR_COLUMN)
        .fetch_optional(&mut *tx)
        .await
        .map_err(during("reading document_chunk's vector column"))?;
    let Some(row) = row else { return Ok(None) };
    let type_name: String = row.try_get(0).map_err(during("reading the column type"))?;
    let typmod: i32 = row.try_get(1).map_err(during("reading the column type"))?;
    let column_type = match type_name.as_str() {
        "vector" => ColumnType::Vector,
        "halfvec" => ColumnType::HalfVec,
        other => {
            return Err(Error::backend_msg(format!(
                "document_chunk.vector has type {other}; chatstore reads vector or halfvec columns"
            )));
        }
    };
    let dimension = usize::try_from(typmod).ok().filter(|d| *d > 0);
    Ok(Some((column_type, dimension)))
}

async fn check_other_columns(tx: &mut PgConnection, prepare: Prepare) -> Result<()> {
    let rows = prepare
        .query(COLUMN_TYPES)
        .fetch_all(&mut *tx)
        .await
        .map_err(during("reading document_chunk's columns"))?;
    for row in rows {
        let name: String = row.try_get(0).map_err(during("reading a column"))?;
        let ty: String = row.try_get(1).map_err(during("reading a column"))?;
        let expected = if name == "vmetadata" { "jsonb" } else { "text" };
        if ty != expected {
            return Err(Error::backend_msg(format!(
                "document_chunk.{name} has type {ty}, not {expected}; a table encrypted with \
                 Open WebUI's PGVECTOR_PGCRYPTO is not supported"
            )));
        }
    }
    Ok(())
}

/// `"0.8.2"` -> `(0, 8, 2)`; missing or odd parts count as 0.
pub fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut parts = v
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("0.8.2"), (0, 8, 2));
        assert_eq!(parse_version("0.5"), (0, 5, 0));
        assert!(parse_version("0.10.0") > parse_version("0.8.2"));
    }
}
