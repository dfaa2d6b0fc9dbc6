//! The per-collection HNSW indexes: built `CONCURRENTLY` (writers never wait), calibrated
//! against exact search, swapped in, and started by themselves in the background when a
//! collection crosses `exact_max_rows` or grows by `auto_index_growth`.
//!
//! - A build runs on a connection of its own that holds a session advisory lock, so one build
//!   runs at a time in the database (across processes), and within a process one `optimize`
//!   at a time.
//! - A collection narrower than the zero-padded column (Open WebUI's 384-wide default model in
//!   its 1536 column) gets a narrow index: its own leading components (from 256 on scaled to
//!   unit length, as `halfvec`: `search::narrow_expression`), when no row is non-zero past them;
//!   `index_dimension` in the side table records it (see "Narrow indexes" in the README).
//! - Any other collection's index orders by the column scaled to unit length
//!   (`search::IndexKey::Normalised`, recorded as `index_normalised`), an ordering Open
//!   WebUI's global index cannot serve, so the planner never walks that one instead.
//! - A rebuild (other `m` / `ef_construction`, or the other kind: narrow or whole column)
//!   builds the new index under the collection's other index name next to the old one, points
//!   the side table at it, then drops the old one `CONCURRENTLY`. Until calibration records an
//!   `ef_search`, searches of a collection that had no index stay exact, so they are
//!   exact-correct while a build runs.
//! - The background builder waits until the collection has had no write for
//!   `auto_index_delay` (a bulk load is not slowed by an index built in its middle), then runs
//!   [`PgVectorStore::optimize`]; one build at a time, in the order they became due.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::Result;
use chatstore_core::vectors::{SearchHit, VectorFilter, validate_collection};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, Row};

use crate::PgVectorStore;
use crate::error::during;
use crate::schema::FILTER_KEYS;
use crate::search::{IndexKey, SearchPlan, max_scan_tuples, walk_cost};

/// Prefix of chatstore's partial HNSW indexes.
const INDEX_PREFIX: &str = "chatstore_hnsw_";
/// Suffix of a collection's second index name (used while a rebuild runs next to the first).
const SECOND_SUFFIX: &str = "_b";
/// `ef_search` values `optimize` tries, in order; pgvector caps it at 1000.
const EF_STEPS: &[u32] = &[40, 64, 100, 160, 250, 400, 640, 1000];
/// Query vectors `optimize` samples from the collection to measure recall.
const CALIBRATION_QUERIES: i64 = 100;
/// Single queries timed each way to set a collection's exact-filter threshold.
const LATENCY_QUERIES: usize = 5;
/// Searches run untimed before those: the first ones read the rows from outside PostgreSQL's
/// buffers (calibration runs right after an index build and the recall measurement), which
/// the searches after them do not.
const WARM_UP_QUERIES: usize = 3;
/// Neighbours measured per calibration query.
const CALIBRATION_K: usize = 10;
/// The session advisory lock (`pg_locks.objid` shows its low half) held while an index is
/// built: one build at a time in the database.
pub const BUILD_LOCK: i64 = 0x6368_6174_6275_696c;

const WRITTEN: &str = "SELECT written, indexed_rows FROM chatstore_collection WHERE name = $1";
/// Takes the rows an `optimize` counted at its start off the collection's write count, once
/// its plan is recorded: writes made meanwhile stay counted, and an `optimize` that failed or
/// was cut short (a restart, a killed process) leaves the collection due.
const SETTLE_WRITTEN: &str =
    "UPDATE chatstore_collection SET written = greatest(written - $2, 0) WHERE name = $1";
const COUNT: &str = "SELECT count(*) FROM document_chunk WHERE collection_name = $1";
const COUNTS: &str = "SELECT collection_name, count(*) FROM document_chunk \
     GROUP BY collection_name ORDER BY collection_name COLLATE \"C\"";
const INDEXED: &str = "SELECT name FROM chatstore_collection WHERE index_name IS NOT NULL";
const TRY_LOCK_BUILDS: &str = "SELECT pg_try_advisory_lock($1)";
/// Whether the side table points at an index (a build made it again for a collection of
/// that name since it was forgotten).
const INDEX_IN_USE: &str =
    "SELECT EXISTS (SELECT 1 FROM chatstore_collection WHERE index_name = $1)";
/// How long dropping an emptied collection's index may wait for the table before the write
/// that emptied it returns (the background worker then drops it).
const DROP_WAIT: Duration = Duration::from_secs(1);
/// The background worker's wait between attempts to drop an index, times the attempts so far.
const DROP_RETRY: Duration = Duration::from_secs(1);
/// How long after a failed background build its collection waits before the next try.
const BUILD_RETRY: Duration = Duration::from_secs(600);
/// Attempts to drop an index (about 8 minutes of them) before it is left to the next build of
/// its collection's names: an index of an emptied collection costs nothing meanwhile.
const DROP_ATTEMPTS: u32 = 30;
/// The DDL of a partial index; PostgreSQL's `format` quotes the name and the collection. `$6`
/// is the indexed expression: the column, or a narrow index's leading components (built here
/// from the side table's integer dimension, never from user text).
const INDEX_DDL: &str = "SELECT format('CREATE INDEX CONCURRENTLY %I ON document_chunk \
     USING hnsw (%s %s) WITH (m = %s, ef_construction = %s) WHERE collection_name = %L', \
     $1::text, $6::text, $2::text, $4::int, $5::int, $3::text)";
/// Points the side table at a new index and records the components it covers; a calibrated
/// `ef_search` of the old one stays until the new one is calibrated.
const MARK_INDEXED: &str = "INSERT INTO chatstore_collection \
     (name, index_name, index_dimension, index_normalised) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE \
     SET index_name = EXCLUDED.index_name, index_dimension = EXCLUDED.index_dimension, \
     index_normalised = EXCLUDED.index_normalised";
/// Whether a row of the collection has a non-zero component past `$2 - 1` (then no narrow
/// index: it would rank that row by its leading components only). `{norm}` is the column
/// type's norm function.
const WIDE_ROWS: &str = "SELECT EXISTS (SELECT 1 FROM document_chunk WHERE collection_name = $1 \
     AND {norm}(subvector(vector, $2, $3)) > 0)";
/// The calibrated plan and the statistics filtered searches choose by.
const SET_PLAN: &str = "UPDATE chatstore_collection SET hnsw_ef = $2, indexed_rows = $3, \
     exact_filter_rows = $4, value_counts = $5 WHERE name = $1";
/// The most frequent values of each filter key in a collection (at most [`VALUES_KEPT`] + 1
/// per key, the last one only telling how many rows the values left out have at most).
const VALUE_COUNTS: &str = "SELECT key, value, n FROM (\
     SELECT key, value, n, row_number() OVER (PARTITION BY key ORDER BY n DESC, value) AS r \
     FROM (SELECT k.key, d.vmetadata ->> k.key AS value, count(*) AS n \
           FROM document_chunk d CROSS JOIN unnest($2::text[]) AS k(key) \
           WHERE d.collection_name = $1 AND d.vmetadata ->> k.key IS NOT NULL \
           GROUP BY 1, 2) c) t \
     WHERE r <= $3";
/// Values kept per filter key in a collection's statistics.
const VALUES_KEPT: i64 = 256;
/// Searches go exact; the rows are remembered, so the next automatic build waits for growth.
const MARK_EXACT: &str = "UPDATE chatstore_collection SET hnsw_ef = NULL, index_name = NULL, \
     index_dimension = NULL, index_normalised = false, indexed_rows = $2, \
     exact_filter_rows = NULL, value_counts = NULL WHERE name = $1";
/// [`COUNT`], then the write count reset and [`MARK_EXACT`] in one statement, for the collections
/// of `$1` that have no index and stay exact (at most `$2` rows, or no HNSW when `$3` is
/// false); returns those and their rows (the others need the full decision).
const MARK_SMALL_EXACT: &str = "UPDATE chatstore_collection c SET written = 0, hnsw_ef = NULL, \
     indexed_rows = n.total, exact_filter_rows = NULL, value_counts = NULL \
     FROM (SELECT name, (SELECT count(*) FROM document_chunk d WHERE d.collection_name = name) \
           AS total FROM unnest($1::text[]) AS name) n \
     WHERE c.name = n.name AND c.index_name IS NULL AND (n.total <= $2 OR NOT $3) \
     RETURNING c.name, n.total";
/// The storage options (`m=…`, `ef_construction=…`) of an existing valid index.
const INDEX_OPTIONS: &str = "SELECT coalesce(c.reloptions, '{}')::text[] FROM pg_class c \
     JOIN pg_index i ON i.indexrelid = c.oid WHERE c.oid = to_regclass($1) AND i.indisvalid";
/// Indexes of the given names that a failed concurrent build left invalid.
const INVALID: &str = "SELECT c.relname::text FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid \
     WHERE c.relname = ANY($1) AND NOT i.indisvalid";
const EXISTS: &str = "SELECT to_regclass($1) IS NOT NULL";
/// [`CURRENT_INDEX`]'s row: the index's name, the components of a narrow one, whether it
/// orders by the normalised column, and the collection's dimension.
type CurrentIndex = (Option<String>, Option<i32>, bool, Option<i32>);
const CURRENT_INDEX: &str = "SELECT index_name, index_dimension, index_normalised, dimension \
     FROM chatstore_collection WHERE name = $1";
const ANALYZE: &str = "ANALYZE document_chunk";
/// Random rows of a collection, by `ctid` (the scattered rows calibration times exact scans
/// of).
const SAMPLE_CTIDS: &str = "SELECT ctid::text FROM document_chunk WHERE collection_name = $1 \
     ORDER BY random() LIMIT $2";
/// At most this many rows are timed for the exact scan's per-row cost (a 2 % filter of a
/// 100k-row collection): about the filters whose plan the measurement decides (an exact scan
/// of a few thousand rows, or the walk). More rows measure PostgreSQL's buffers more than the
/// scan: at 100k rows of 1536 dimensions and the stock 128 MB, 4,000 rows (32 MB) beside the
/// collection's 116 MB index came out at 1.8-2.0 µs a row, 2,670 rows at 0.9 µs, and the
/// searches of a 2,670-row filter cost 0.8 µs a row.
const SCATTERED_ROWS: i64 = 2_000;
/// Neighbours of a sampled row that calibration queries mix components from (see
/// [`mixed_queries`]).
const MIXED_NEIGHBOURS: usize = 10;
/// The vectors of the given rows of a collection; `{vector}` as in [`SAMPLE`].
const NEIGHBOUR_VECTORS: &str = "SELECT id, {vector} FROM document_chunk \
     WHERE collection_name = $1 AND id = ANY($2)";
/// `{vector}` is the vector column as it is read (`Statements::vector_expr`).
const SAMPLE: &str = "SELECT id, {vector} FROM document_chunk WHERE collection_name = $1 \
     ORDER BY random() LIMIT $2";

/// What [`PgVectorStore::optimize`] decided for a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPlan {
    /// The collection.
    pub collection: String,
    /// Its rows when it was optimised.
    pub rows: i64,
    /// The plan unfiltered searches use from now on (filtered ones choose per query).
    pub plan: SearchPlan,
    /// Mean recall@10 the HNSW plan reached on the calibration sample, when one was tried.
    pub measured_recall: Option<f64>,
}

/// The partial index name of a collection: a hash, as names may be longer than an identifier.
pub(crate) fn index_name(collection: &str) -> String {
    let digest = Sha256::digest(collection.as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{INDEX_PREFIX}{hex}")
}

/// The other name a collection's index takes while it is rebuilt (the two alternate, so the
/// new index is built next to the old one and swapped in).
fn other_index_name(collection: &str, current: &str) -> String {
    let first = index_name(collection);
    if current == first {
        format!("{first}{SECOND_SUFFIX}")
    } else {
        first
    }
}

/// Whether `name` is one of chatstore's partial index names (safe to put into DDL).
pub(crate) fn is_own_index_name(name: &str) -> bool {
    name.strip_prefix(INDEX_PREFIX).is_some_and(|rest| {
        let hex = rest.strip_suffix(SECOND_SUFFIX).unwrap_or(rest);
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Drops one of chatstore's partial indexes `CONCURRENTLY` (outside any transaction);
/// refuses any other name.
async fn drop_concurrently(conn: &mut PgConnection, index: &str) -> Result<()> {
    if !is_own_index_name(index) {
        return Err(chatstore_core::Error::backend_msg(format!(
            "refusing to drop index {index:?}, which chatstore did not create"
        )));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP INDEX CONCURRENTLY IF EXISTS {index}"
    )))
    .execute(&mut *conn)
    .await
    .map_err(during("dropping a collection's HNSW index"))?;
    Ok(())
}

/// The background builder's state, shared by the clones of a store.
#[derive(Debug)]
pub(crate) struct Builder {
    state: Mutex<BuildState>,
    /// `true` while no build or index drop is queued or running.
    idle: tokio::sync::watch::Sender<bool>,
    /// One `optimize` at a time in this process (explicit calls wait for background builds).
    running: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct BuildState {
    queued: VecDeque<String>,
    /// Indexes of emptied collections still to drop, with the attempts made so far.
    drops: VecDeque<(String, u32)>,
    /// When each collection was last written by this process.
    last_write: HashMap<String, Instant>,
    /// When a background build of each collection last failed: not queued again before
    /// [`BUILD_RETRY`] has passed.
    failed: HashMap<String, Instant>,
    worker: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            state: Mutex::new(BuildState::default()),
            idle: tokio::sync::watch::Sender::new(true),
            running: tokio::sync::Mutex::new(()),
        }
    }
}

impl Builder {
    fn state(&self) -> std::sync::MutexGuard<'_, BuildState> {
        // The state stays consistent even if a holder panicked: every change is one statement.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl PgVectorStore {
    /// Whether a collection that has seen `written` rows written since its last `optimize`
    /// (which found `indexed_rows` rows, if it ran) is due for an automatic build.
    pub(crate) fn index_due(&self, written: i64, indexed_rows: Option<i64>) -> bool {
        if !self.config.auto_index || !self.schema.supports_hnsw() || self.own_session.is_none() {
            return false;
        }
        match indexed_rows {
            None => written > self.config.exact_max_rows,
            Some(rows) => {
                let base = rows.max(self.config.exact_max_rows).max(1) as f64;
                written as f64 >= (self.config.auto_index_growth - 1.0).max(0.01) * base
            }
        }
    }

    /// Notes a write to `collection`; when `due`, queues it for a background build (started
    /// once the collection has been quiet for `auto_index_delay`).
    pub(crate) fn after_write(&self, collection: &str, due: bool) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut state = self.builder.state();
        if state.last_write.contains_key(collection) || due {
            state
                .last_write
                .insert(collection.to_owned(), Instant::now());
        }
        let resting = state
            .failed
            .get(collection)
            .is_some_and(|at| at.elapsed() < BUILD_RETRY);
        if !due || resting || state.queued.iter().any(|c| c == collection) {
            return;
        }
        state.queued.push_back(collection.to_owned());
        self.wake_worker(&mut state, &runtime);
    }

    /// Marks the builder busy and starts the background worker unless it runs already.
    fn wake_worker(&self, state: &mut BuildState, runtime: &tokio::runtime::Handle) {
        self.builder.idle.send_replace(false);
        if !state.worker {
            state.worker = true;
            let store = self.clone();
            runtime.spawn(async move { store.build_in_background().await });
        }
    }

    /// Drops, after the commit that forgot them, the partial indexes of collections a write
    /// emptied. `DROP INDEX` in the write's transaction would take an exclusive lock on
    /// `document_chunk` until the commit; when another transaction holds the table (a long
    /// search, a `CREATE INDEX CONCURRENTLY` of another collection) the drop queues for that
    /// lock and every search and write of every collection queues behind it. So each index is
    /// dropped `CONCURRENTLY`, which blocks neither, waiting [`DROP_WAIT`] at most here; one
    /// that waits longer (or meets a build) is left to the background worker, which tries
    /// again until it is gone. Until then the index is harmless: searches of an emptied
    /// collection find nothing, a collection made again under the name searches exactly
    /// until its next build, and a build drops an index of its names the side table does not
    /// point at.
    pub(crate) async fn drop_forgotten(&self, indexes: Vec<String>) {
        for index in indexes {
            match self.drop_forgotten_index(&index, Some(DROP_WAIT)).await {
                Ok(true) => {}
                Ok(false) => self.queue_drop(index),
                Err(e) => {
                    tracing::info!(%index, error = %e, "an emptied collection's index is dropped later");
                    self.queue_drop(index);
                }
            }
        }
    }

    /// Leaves `index` to the background worker, as its first attempt there.
    fn queue_drop(&self, index: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut state = self.builder.state();
        if !state.drops.iter().any(|(i, _)| *i == index) {
            state.drops.push_back((index, 1));
        }
        self.wake_worker(&mut state, &runtime);
    }

    /// Drops one forgotten index unless a build made it again (the side table points at it);
    /// `Ok(false)` when it could not within `wait` or a build or drop holds the build lock.
    async fn drop_forgotten_index(&self, index: &str, wait: Option<Duration>) -> Result<bool> {
        if !is_own_index_name(index) {
            return Err(chatstore_core::Error::backend_msg(format!(
                "chatstore_collection named index {index:?}, which chatstore did not create"
            )));
        }
        let mut conn = match self.ddl_connection().await {
            Ok(conn) => conn,
            // Behind a transaction pooler: a plain DROP INDEX, in a transaction of its own
            // that gives up soon rather than hold the queue of every other statement.
            Err(e) if e.kind() == chatstore_core::ErrorKind::Unsupported => {
                return self.drop_in_transaction(index).await;
            }
            Err(e) => return Err(e),
        };
        let result = async {
            let locked: bool = sqlx::query_scalar(TRY_LOCK_BUILDS)
                .bind(BUILD_LOCK)
                .fetch_one(&mut conn)
                .await
                .map_err(during("waiting for index builds"))?;
            if !locked {
                return Ok(false);
            }
            let in_use: bool = sqlx::query_scalar(INDEX_IN_USE)
                .bind(index)
                .fetch_one(&mut conn)
                .await
                .map_err(during("looking for an index's collection"))?;
            if in_use {
                return Ok(true);
            }
            if let Some(wait) = wait {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "SET lock_timeout = '{}ms'",
                    wait.as_millis().max(1)
                )))
                .execute(&mut conn)
                .await
                .map_err(during("limiting an index drop's wait"))?;
            }
            match drop_concurrently(&mut conn, index).await {
                Ok(()) => Ok(true),
                Err(_) if wait.is_some() => Ok(false),
                Err(e) => Err(e),
            }
        }
        .await;
        let closed = conn
            .close()
            .await
            .map_err(during("closing the index drop connection"));
        let dropped = result?;
        closed.map(|()| dropped)
    }

    /// [`drop_forgotten_index`](Self::drop_forgotten_index) without a connection of its own.
    async fn drop_in_transaction(&self, index: &str) -> Result<bool> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL lock_timeout = '{}ms'",
            DROP_WAIT.as_millis()
        )))
        .execute(&mut *tx)
        .await
        .map_err(during("limiting an index drop's wait"))?;
        let in_use: bool = sqlx::query_scalar(INDEX_IN_USE)
            .bind(index)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await
            .map_err(during("looking for an index's collection"))?;
        if !in_use
            && sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {index}")))
                .execute(&mut *tx)
                .await
                .is_err()
        {
            return Ok(false);
        }
        tx.commit()
            .await
            .map_err(during("committing an index drop"))?;
        Ok(true)
    }

    async fn build_in_background(self) {
        loop {
            let drop = self.builder.state().drops.pop_front();
            if let Some((index, attempts)) = drop {
                let dropped = self.drop_forgotten_index(&index, None).await;
                match dropped {
                    Ok(true) => {}
                    Ok(false) | Err(_) if attempts >= DROP_ATTEMPTS => {
                        tracing::warn!(%index, "an emptied collection's index could not be dropped; the next build of a collection of that name drops it");
                    }
                    result => {
                        if let Err(e) = result {
                            tracing::info!(%index, error = %e, "dropping an emptied collection's index failed; trying again");
                        }
                        let delay = DROP_RETRY.saturating_mul(attempts);
                        self.builder.state().drops.push_back((index, attempts + 1));
                        tokio::time::sleep(delay).await;
                    }
                }
                continue;
            }
            let next = {
                let mut state = self.builder.state();
                match state.queued.pop_front() {
                    Some(c) => c,
                    None => {
                        state.worker = false;
                        state.last_write.clear();
                        self.builder.idle.send_replace(true);
                        return;
                    }
                }
            };
            // Wait for the collection's writes to pause: building into a bulk load would make
            // the rest of the load insert into the index, about 150x slower.
            loop {
                let quiet_for = self
                    .builder
                    .state()
                    .last_write
                    .get(&next)
                    .map(Instant::elapsed)
                    .unwrap_or(self.config.auto_index_delay);
                if quiet_for >= self.config.auto_index_delay {
                    break;
                }
                tokio::time::sleep(self.config.auto_index_delay - quiet_for).await;
            }
            self.builder.state().last_write.remove(&next);
            // An explicit optimize since it was queued may have done the work already.
            match self.still_due(&next).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(collection = %next, error = %e, "background index build skipped");
                    continue;
                }
            }
            match self.optimize(&next).await {
                Ok(plan) => {
                    self.builder.state().failed.remove(&next);
                    tracing::info!(collection = %next, ?plan, "background index build");
                }
                Err(e) => {
                    // The collection stays due (its write count is settled only by a build
                    // that finished), and is tried again after a rest.
                    self.builder
                        .state()
                        .failed
                        .insert(next.clone(), Instant::now());
                    tracing::warn!(collection = %next, error = %e,
                        "background index build failed; tried again after the next write \
                         once {} s have passed", BUILD_RETRY.as_secs());
                }
            }
        }
    }

    /// Whether the collection is still due for a build by its side-table counts.
    async fn still_due(&self, collection: &str) -> Result<bool> {
        let mut session = self.session().await?;
        let row: Option<(i64, Option<i64>)> = self
            .prepare
            .rows(WRITTEN)
            .bind(collection)
            .fetch_optional(&mut *session)
            .await
            .map_err(during("reading a collection's write count"))?;
        session.finish().await?;
        Ok(row.is_some_and(|(written, rows)| self.index_due(written, rows)))
    }

    /// Waits until no automatic index build is queued or running in this process (benchmarks
    /// and tests call it after a load; searches never need to).
    pub async fn wait_for_index_builds(&self) {
        let mut idle = self.builder.idle.subscribe();
        // The sender lives as long as the store, so this only ends when the builder is idle.
        let _ = idle.wait_for(|idle| *idle).await;
    }

    /// Chooses `collection`'s search plan by its size: at most `exact_max_rows` rows stay
    /// exact (and lose a partial index they had); a larger one gets its own partial HNSW index,
    /// built `CONCURRENTLY` (writes go on; searches stay exact until it is calibrated), then
    /// the smallest `ef_search` whose recall@10 against exact search, measured on 100 queries
    /// drawn from the neighbourhoods of sampled rows, reaches `target_recall`, plus one step
    /// of margin (none when every query found all its neighbours); both must beat the exact
    /// scan of the same queries. When
    /// none does (data without structure, such as uniform random vectors), the index is dropped and
    /// the collection stays exact. The collection's value counts of the filter keys are
    /// recorded with the plan, for filtered searches. Runs by itself in the background (see
    /// `PgVectorConfig::auto_index`); call it after bulk loads to have the plan at once.
    pub async fn optimize(&self, collection: &str) -> Result<CollectionPlan> {
        validate_collection(collection)?;
        let _one_at_a_time = self.builder.running.lock().await;
        let mut session = self.session().await?;
        // A collection that stays exact and has no index (every `file-{id}` of a few chunks)
        // is decided and recorded by one statement instead of four and two commits.
        let small: Option<(String, i64)> = self
            .prepare
            .rows(MARK_SMALL_EXACT)
            .bind([collection])
            .bind(self.config.exact_max_rows)
            .bind(self.schema.supports_hnsw())
            .fetch_optional(&mut *session)
            .await
            .map_err(during("marking a small collection exact"))?;
        if let Some((_, rows)) = small {
            session.finish().await?;
            return Ok(CollectionPlan {
                collection: collection.to_owned(),
                rows,
                plan: SearchPlan::Exact,
                measured_recall: None,
            });
        }
        let counted: i64 = self
            .prepare
            .rows::<(i64, Option<i64>)>(WRITTEN)
            .bind(collection)
            .fetch_optional(&mut *session)
            .await
            .map_err(during("reading a collection's write count"))?
            .map_or(0, |(written, _)| written);
        let rows: i64 = self
            .prepare
            .scalar(COUNT)
            .bind(collection)
            .fetch_one(&mut *session)
            .await
            .map_err(during("counting a collection"))?;
        session.finish().await?;
        if rows <= self.config.exact_max_rows || !self.schema.supports_hnsw() {
            self.mark_exact(collection, rows).await?;
            self.settle_written(collection, counted).await?;
            return Ok(CollectionPlan {
                collection: collection.to_owned(),
                rows,
                plan: SearchPlan::Exact,
                measured_recall: None,
            });
        }
        let key = self.build_index(collection).await?;
        let (plan, recall) = self.calibrate(collection, rows, key).await?;
        if plan == SearchPlan::Exact {
            self.mark_exact(collection, rows).await?;
        }
        self.settle_written(collection, counted).await?;
        Ok(CollectionPlan {
            collection: collection.to_owned(),
            rows,
            plan,
            measured_recall: recall,
        })
    }

    /// The part of [`optimize`](Self::optimize) for many collections at once: those that have
    /// no index and stay exact are decided by one statement; returns the others (larger ones,
    /// indexed ones, and those without a side-table row), which need `optimize` one by one.
    pub(crate) async fn mark_small_exact(&self, collections: &[String]) -> Result<Vec<String>> {
        for collection in collections {
            validate_collection(collection)?;
        }
        if collections.is_empty() {
            return Ok(Vec::new());
        }
        let _one_at_a_time = self.builder.running.lock().await;
        let mut session = self.session().await?;
        let decided: Vec<(String, i64)> = self
            .prepare
            .rows(MARK_SMALL_EXACT)
            .bind(collections)
            .bind(self.config.exact_max_rows)
            .bind(self.schema.supports_hnsw())
            .fetch_all(&mut *session)
            .await
            .map_err(during("marking small collections exact"))?;
        session.finish().await?;
        let decided: HashSet<String> = decided.into_iter().map(|(name, _)| name).collect();
        Ok(collections
            .iter()
            .filter(|c| !decided.contains(*c))
            .cloned()
            .collect())
    }

    /// Takes `counted` rows off the collection's write count ([`SETTLE_WRITTEN`]).
    async fn settle_written(&self, collection: &str, counted: i64) -> Result<()> {
        let mut session = self.session().await?;
        self.prepare
            .query(SETTLE_WRITTEN)
            .bind(collection)
            .bind(counted)
            .execute(&mut *session)
            .await
            .map_err(during("settling a collection's write count"))?;
        session.finish().await
    }

    /// [`optimize`](Self::optimize) for every collection that is large or has an index.
    pub async fn optimize_all(&self) -> Result<Vec<CollectionPlan>> {
        let mut session = self.session().await?;
        let counts: Vec<(String, i64)> = self
            .prepare
            .rows(COUNTS)
            .fetch_all(&mut *session)
            .await
            .map_err(during("counting collections"))?;
        let indexed: HashSet<String> = self
            .prepare
            .scalar(INDEXED)
            .fetch_all(&mut *session)
            .await
            .map_err(during("listing indexed collections"))?
            .into_iter()
            .collect();
        session.finish().await?;
        let mut plans = Vec::new();
        for (collection, rows) in counts {
            if rows > self.config.exact_max_rows || indexed.contains(&collection) {
                plans.push(self.optimize(&collection).await?);
            }
        }
        Ok(plans)
    }

    /// A connection of its own for DDL that cannot run in a transaction; closing it releases
    /// its session settings and advisory lock, whatever happened. Behind a transaction pooler
    /// it goes to `PgVectorConfig::direct_url`; without one, `Unsupported`.
    async fn ddl_connection(&self) -> Result<PgConnection> {
        let options = self.own_session.as_ref().ok_or_else(|| {
            chatstore_core::Error::unsupported(
                crate::BACKEND,
                "building a collection's HNSW index through a transaction pooler: the build \
                 (CREATE INDEX CONCURRENTLY under a session advisory lock) needs a connection \
                 of its own; set CHATSTORE_PGVECTOR_DIRECT_URL (PgVectorConfig::direct_url) to \
                 the PostgreSQL server's own URL (searches stay exact until then)",
            )
        })?;
        PgConnection::connect_with(options)
            .await
            .map_err(during("connecting for an index build"))
    }

    /// Makes sure the collection has a valid partial index with the configured parameters:
    /// keeps a fitting one, else builds one `CONCURRENTLY` under the other name and swaps it in.
    /// Returns what the index orders by: a narrow index's components (see "Narrow indexes" in
    /// the crate README) when the collection's dimension is less than the column's and every
    /// row is zero past it, else the whole column scaled to unit length (pgvector 0.7+).
    async fn build_index(&self, collection: &str) -> Result<IndexKey> {
        let mut conn = self.ddl_connection().await?;
        let result = self.build_on(&mut conn, collection).await;
        let closed = conn
            .close()
            .await
            .map_err(during("closing the index build connection"));
        let key = result?;
        closed.map(|()| key)
    }

    async fn build_on(&self, conn: &mut PgConnection, collection: &str) -> Result<IndexKey> {
        // Polled, not waited for: a session blocked in pg_advisory_lock holds a snapshot, and
        // the running build's CREATE INDEX CONCURRENTLY would wait for that snapshot while the
        // waiter waits for its lock (a deadlock across processes). Not for ever: a build
        // stuck elsewhere (behind a session idle in a transaction) would hold this process's
        // builds, and every `optimize` after them (a migration's last step), as long.
        let started = Instant::now();
        loop {
            let locked: bool = sqlx::query_scalar(TRY_LOCK_BUILDS)
                .bind(BUILD_LOCK)
                .fetch_one(&mut *conn)
                .await
                .map_err(during("waiting for other index builds"))?;
            if locked {
                break;
            }
            if started.elapsed() >= self.config.build_lock_wait {
                return Err(chatstore_core::Error::Unavailable {
                    message: format!(
                        "collection {collection:?}: another index build on this database has \
                         not finished in {} s (look for a CREATE INDEX CONCURRENTLY waiting in \
                         pg_stat_activity); its search stays as it was",
                        self.config.build_lock_wait.as_secs()
                    ),
                    source: None,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let first = index_name(collection);
        let names = vec![first.clone(), format!("{first}{SECOND_SUFFIX}")];
        let invalid: Vec<String> = sqlx::query_scalar(INVALID)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("looking for failed index builds"))?;
        for index in invalid {
            drop_concurrently(conn, &index).await?;
        }
        let row: Option<CurrentIndex> = sqlx::query_as(CURRENT_INDEX)
            .bind(collection)
            .fetch_optional(&mut *conn)
            .await
            .map_err(during("reading a collection's index"))?;
        let (current, current_prefix, current_normalised, dimension) =
            row.unwrap_or((None, None, false, None));
        let current = current.filter(|name| is_own_index_name(name));
        let current_key = IndexKey::recorded(
            current_prefix.and_then(|p| u32::try_from(p).ok()),
            current_normalised,
        );
        let key = match self.narrow_prefix(conn, collection, dimension).await? {
            Some(p) => IndexKey::Prefix(p),
            // `l2_normalize` came with pgvector 0.7.
            None if self.schema.pgvector_version >= (0, 7, 0)
                && self.schema.dimension.is_some() =>
            {
                IndexKey::Normalised
            }
            None => IndexKey::Column,
        };
        let same_kind = current_key == key;
        if let Some(current) = current.as_ref().filter(|_| same_kind) {
            let options: Option<Vec<String>> = sqlx::query_scalar(INDEX_OPTIONS)
                .bind(current)
                .fetch_optional(&mut *conn)
                .await
                .map_err(during("reading a collection's index options"))?;
            let wanted = [
                format!("m={}", self.config.hnsw_m),
                format!("ef_construction={}", self.config.hnsw_ef_construction),
            ];
            if options.is_some_and(|o| wanted.iter().all(|w| o.contains(w))) {
                return Ok(key);
            }
        }
        let new = match &current {
            Some(current) => other_index_name(collection, current),
            None => first,
        };
        // A valid index of that name that the side table does not point at (an interrupted
        // swap) is rebuilt, as its parameters are unknown.
        let stray: bool = sqlx::query_scalar(EXISTS)
            .bind(&new)
            .fetch_one(&mut *conn)
            .await
            .map_err(during("looking for an index"))?;
        if stray {
            drop_concurrently(conn, &new).await?;
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET maintenance_work_mem = '{}MB'",
            self.config.index_build_memory_mb.max(1)
        )))
        .execute(&mut *conn)
        .await
        .map_err(during("raising maintenance_work_mem"))?;
        let (expression, ops) = key.expression("vector", &self.schema);
        let expression = match key {
            IndexKey::Column => expression,
            IndexKey::Normalised | IndexKey::Prefix(_) => format!("({expression})"),
        };
        let ddl: String = sqlx::query_scalar(INDEX_DDL)
            .bind(&new)
            .bind(ops)
            .bind(collection)
            .bind(i32::try_from(self.config.hnsw_m).unwrap_or(i32::MAX))
            .bind(i32::try_from(self.config.hnsw_ef_construction).unwrap_or(i32::MAX))
            .bind(expression)
            .fetch_one(&mut *conn)
            .await
            .map_err(during("quoting the index DDL"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut *conn)
            .await
            .map_err(during("building a collection's HNSW index"))?;
        sqlx::query(MARK_INDEXED)
            .bind(collection)
            .bind(&new)
            .bind(key.prefix().and_then(|p| i32::try_from(p).ok()))
            .bind(key == IndexKey::Normalised)
            .execute(&mut *conn)
            .await
            .map_err(during("recording a collection's index"))?;
        if let Some(old) = current {
            drop_concurrently(conn, &old).await?;
        }
        sqlx::raw_sql(ANALYZE)
            .execute(&mut *conn)
            .await
            .map_err(during("analysing document_chunk"))?;
        Ok(key)
    }

    /// The components a narrow index of the collection covers: the collection's dimension
    /// when it is less than the column's (Open WebUI pads every vector with zeros to the
    /// column) and no row has a non-zero component past it; `None` for an index on the whole
    /// column.
    async fn narrow_prefix(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        dimension: Option<i32>,
    ) -> Result<Option<u32>> {
        let (Some(column), Some(d)) = (
            self.schema.dimension,
            dimension.and_then(|d| usize::try_from(d).ok()),
        ) else {
            return Ok(None);
        };
        // `subvector`, `l2_normalize` and `halfvec` came with pgvector 0.7.
        if d == 0 || d >= column || self.schema.pgvector_version < (0, 7, 0) {
            return Ok(None);
        }
        let norm = match self.schema.column_type {
            crate::ColumnType::Vector => "vector_norm",
            crate::ColumnType::HalfVec => "l2_norm",
        };
        let wide: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(WIDE_ROWS.replace("{norm}", norm)))
            .bind(collection)
            .bind(i32::try_from(d + 1).unwrap_or(i32::MAX))
            .bind(i32::try_from(column - d).unwrap_or(i32::MAX))
            .fetch_one(&mut *conn)
            .await
            .map_err(during("checking a collection's padding"))?;
        Ok(if wide { None } else { u32::try_from(d).ok() })
    }

    /// Measures recall@10 of the HNSW plan against exact search at increasing `ef_search`.
    async fn calibrate(
        &self,
        collection: &str,
        rows: i64,
        key: IndexKey,
    ) -> Result<(SearchPlan, Option<f64>)> {
        let mut conn = self.session().await?;
        let sample = self
            .prepare
            .query(sqlx::AssertSqlSafe(
                SAMPLE.replace("{vector}", self.statements.vector_expr),
            ))
            .bind(collection)
            .bind(CALIBRATION_QUERIES)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("sampling a collection"))?;
        let mut rows_sampled = Vec::with_capacity(sample.len());
        for row in &sample {
            let v = self
                .read_vector(row, 1)
                .map_err(during("reading a sample"))?;
            rows_sampled.extend(v);
        }
        if rows_sampled.is_empty() {
            conn.finish().await?;
            return Ok((SearchPlan::Exact, None));
        }
        let queries = self
            .calibration_queries(&mut conn, collection, &rows_sampled)
            .await?;
        let k = u32::try_from(CALIBRATION_K).unwrap_or(10);
        let started = Instant::now();
        let truth = self
            .run(&mut conn, collection, &queries, None, k, SearchPlan::Exact)
            .await?;
        let exact_time = started.elapsed();
        let mut best = None;
        // The first `ef_search` reaching the target, then the next one: the plan, one step
        // of margin past the target (the sample is only 100 queries). Both must beat the
        // exact scan, or the collection stays exact, unless the first found every
        // neighbour of every query (below).
        let mut first: Option<(u32, f64)> = None;
        let mut reached: Option<(u32, f64)> = None;
        for &ef in EF_STEPS {
            let plan = SearchPlan::Hnsw { ef_search: ef, key };
            let started = Instant::now();
            let found = self
                .run(&mut conn, collection, &queries, None, k, plan)
                .await?;
            let hnsw_time = started.elapsed();
            let recall = mean_recall(&truth, &found);
            tracing::debug!(
                collection,
                ef,
                recall,
                ?hnsw_time,
                ?exact_time,
                "calibrating HNSW"
            );
            if hnsw_time >= exact_time {
                // Higher ef only gets slower: the index cannot beat the exact scan here.
                break;
            }
            if let Some((_, r)) = first {
                reached = Some((ef, recall.max(r)));
                break;
            }
            best = Some(recall);
            if recall >= self.config.target_recall {
                first = Some((ef, recall));
            }
        }
        // A perfect score needs no margin: small easy collections, whose exact scan is so
        // cheap that the next step may no longer beat it (timing noise under load decides).
        let reached = reached.or(first.filter(|&(_, recall)| recall >= 1.0));
        if let Some((ef, recall)) = reached {
            // A filter matching up to this many rows is cheaper to search exactly (through its
            // index) than to walk the index: single queries as callers send them, the two
            // walks first, while the index is in the buffers as the searches that follow each
            // other find it, then the exact scans, which read their rows in.
            let counts = self.value_counts(&mut conn, collection).await?;
            let sample = Calibrating {
                collection,
                rows,
                queries: &queries,
                filters: calibration_filters(&counts, calibration_rows(rows)),
            };
            let hnsw = self
                .single_latency(
                    &mut conn,
                    collection,
                    &queries,
                    SearchPlan::Hnsw { ef_search: ef, key },
                    None,
                    None,
                )
                .await?
                .as_secs_f64();
            let walk = self.walk_unit(&mut conn, &sample, ef, key).await?;
            let (per_row, fixed) = self.exact_row_cost(&mut conn, &sample).await?;
            let unit = walk.unwrap_or(hnsw);
            let exact_filter_rows = ((unit - fixed).max(0.0) / per_row) as i64;
            tracing::debug!(
                collection,
                hnsw,
                ?walk,
                per_row,
                fixed,
                exact_filter_rows,
                "filter threshold"
            );
            self.prepare
                .query(SET_PLAN)
                .bind(collection)
                .bind(i32::try_from(ef).unwrap_or(1_000))
                .bind(rows)
                .bind(exact_filter_rows)
                .bind(counts)
                .execute(&mut *conn)
                .await
                .map_err(during("recording ef_search"))?;
            conn.finish().await?;
            return Ok((SearchPlan::Hnsw { ef_search: ef, key }, Some(recall)));
        }
        conn.finish().await?;
        Ok((SearchPlan::Exact, best))
    }

    /// The queries calibration measures recall with. Stored rows themselves make easy queries
    /// (each sits on an index node, and the walk finds its neighbourhood from it): on uniform
    /// random data they measured recall 0.995 where new queries got 0.966. So each sampled
    /// row's nearest neighbours are found exactly, and a query is drawn from every such
    /// neighbourhood ([`mixed_queries`]): in clustered data a new point of the row's cluster,
    /// in data without structure a new random point, as the callers' queries are.
    async fn calibration_queries(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        rows: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>> {
        let k = u32::try_from(MIXED_NEIGHBOURS).unwrap_or(10);
        let nearest = self
            .run(conn, collection, rows, None, k, SearchPlan::Exact)
            .await?;
        let ids: Vec<String> = nearest.iter().flatten().map(|h| h.id.clone()).collect();
        let fetched = self
            .prepare
            .query(sqlx::AssertSqlSafe(
                NEIGHBOUR_VECTORS.replace("{vector}", self.statements.vector_expr),
            ))
            .bind(collection)
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("reading a sample's neighbours"))?;
        let mut vectors: HashMap<String, Vec<f32>> = HashMap::with_capacity(fetched.len());
        for row in &fetched {
            let id: String = row.try_get(0).map_err(during("reading a neighbour"))?;
            if let Some(v) = self
                .read_vector(row, 1)
                .map_err(during("reading a neighbour"))?
            {
                vectors.insert(id, v);
            }
        }
        let neighbourhoods: Vec<Vec<Vec<f32>>> = nearest
            .iter()
            .zip(rows)
            .map(|(hits, row)| {
                std::iter::once(row.clone())
                    .chain(hits.iter().filter_map(|h| vectors.get(&h.id).cloned()))
                    .collect()
            })
            .collect();
        Ok(mixed_queries(&neighbourhoods))
    }

    /// What an exact scan of a filter's rows costs: per row, and fixed (the statement's own),
    /// in seconds, each the median of single searches as callers send them.
    ///
    /// Timed on two filters of the collection's own values ([`calibration_filters`]): the
    /// scan reads their rows as a search's filter does, through the filter index, wherever
    /// they lie (the chunks of one file are often written side by side, sharing pages). The
    /// difference of the two removes the statement's fixed cost. A collection without such
    /// values is timed on random subsets of its rows read by their `ctid` (a TID scan, page by
    /// page as a bitmap scan reads a filter's rows), which reads one page per row and parses
    /// every `ctid`: measured about 1.25x the per-row cost of a filter of as many scattered
    /// rows (100k rows of 1536 dimensions), so it errs towards the walk.
    async fn exact_row_cost(
        &self,
        conn: &mut PgConnection,
        sample: &Calibrating<'_>,
    ) -> Result<(f64, f64)> {
        let (collection, queries) = (sample.collection, sample.queries);
        // The large sample and the small one: a filter or the rows at some `ctid`s, and the
        // rows each holds.
        type Sample<'f> = (Option<&'f VectorFilter>, Option<Vec<String>>, i64);
        let samples: [Sample; 2] = match &sample.filters {
            Some([(large, large_rows), (small, small_rows)]) => [
                (Some(large), None, *large_rows),
                (Some(small), None, *small_rows),
            ],
            None => {
                let scattered: Vec<String> = self
                    .prepare
                    .scalar(SAMPLE_CTIDS)
                    .bind(collection)
                    .bind(calibration_rows(sample.rows))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(during("sampling a collection's rows"))?;
                let few = scattered[..scattered.len() / 8].to_vec();
                let (large_rows, small_rows) = (scattered.len() as i64, few.len() as i64);
                [
                    (None, Some(scattered), large_rows),
                    (None, Some(few), small_rows),
                ]
            }
        };
        let mut took = [0.0; 2];
        for (t, (filter, ctids, _)) in took.iter_mut().zip(&samples) {
            *t = self
                .single_latency(
                    conn,
                    collection,
                    queries,
                    SearchPlan::Exact,
                    *filter,
                    ctids.as_deref(),
                )
                .await?
                .as_secs_f64();
        }
        let [large, small] = took;
        let [(_, _, large_rows), (_, _, small_rows)] = samples;
        let per_row = ((large - small) / (large_rows - small_rows).max(1) as f64)
            // Noise can make the difference vanish: then a quarter of the large one's.
            .max(large / large_rows.max(1) as f64 / 4.0)
            .max(1e-9);
        let fixed = (small - per_row * small_rows as f64).max(0.0);
        Ok((per_row, fixed))
    }

    /// One unfiltered search's time as the walk's cost model ([`walk_cost`]) counts it,
    /// measured on a filtered walk: the walk of the sample's large filter (the rows
    /// [`Self::exact_row_cost`] then scans exactly, so both plans are timed on the same rows),
    /// divided by what the model reckons a walk at that filter's share costs. A filter near
    /// that share then takes the plan that measured faster there, where the unfiltered
    /// search's time alone left the choice to the model: at 100k rows of 1536 dimensions the
    /// 3 % filter walked at 1.6x the unfiltered search while its exact scan took 0.9x. `None`
    /// when the collection has no such filter.
    async fn walk_unit(
        &self,
        conn: &mut PgConnection,
        sample: &Calibrating<'_>,
        ef: u32,
        key: IndexKey,
    ) -> Result<Option<f64>> {
        let rows = sample.rows;
        let Some([(filter, matched), _]) = &sample.filters else {
            return Ok(None);
        };
        let share = (*matched as f64 / rows.max(1) as f64).clamp(1e-6, 1.0);
        let plan = SearchPlan::FilteredHnsw {
            ef_search: ef,
            max_scan_tuples: max_scan_tuples(10, share, rows),
            key,
        };
        let took = self
            .single_latency(
                conn,
                sample.collection,
                sample.queries,
                plan,
                Some(filter),
                None,
            )
            .await?;
        Ok(Some(took.as_secs_f64() / walk_cost(share)))
    }

    /// The median latency of single-query searches with `plan` (a few of the sample's
    /// vectors, after [`WARM_UP_QUERIES`] untimed), over the collection, or only its rows
    /// inside `filter` or at the given `ctid`s.
    async fn single_latency(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        queries: &[Vec<f32>],
        plan: SearchPlan,
        filter: Option<&VectorFilter>,
        ctids: Option<&[String]>,
    ) -> Result<std::time::Duration> {
        let mut times = Vec::with_capacity(LATENCY_QUERIES);
        for q in queries.iter().take(LATENCY_QUERIES + WARM_UP_QUERIES) {
            let started = Instant::now();
            self.run_within(
                conn,
                collection,
                std::slice::from_ref(q),
                filter,
                ctids,
                10,
                plan,
            )
            .await?;
            times.push(started.elapsed());
        }
        times.drain(..WARM_UP_QUERIES.min(times.len()));
        times.sort();
        Ok(times.get(times.len() / 2).copied().unwrap_or_default())
    }

    /// Counts the rows of each value of the filter keys in `collection`:
    /// `{"<key>": {"values": {"<value>": rows, ...}, "rest": rows}}` with the most frequent
    /// values, `rest` bounding the rows of any value left out (0 when none was).
    async fn value_counts(&self, conn: &mut PgConnection, collection: &str) -> Result<Value> {
        let keys: Vec<String> = FILTER_KEYS.iter().map(|k| (*k).to_owned()).collect();
        let rows: Vec<(String, String, i64)> = self
            .prepare
            .rows(VALUE_COUNTS)
            .bind(collection)
            .bind(keys)
            .bind(VALUES_KEPT + 1)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("counting a collection's metadata values"))?;
        let mut out = serde_json::Map::new();
        for key in FILTER_KEYS {
            let mut values: Vec<(&String, i64)> = rows
                .iter()
                .filter(|(k, _, _)| k == key)
                .map(|(_, v, n)| (v, *n))
                .collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let kept = usize::try_from(VALUES_KEPT).unwrap_or(256);
            let rest = values.get(kept).map_or(0, |(_, n)| *n);
            values.truncate(kept);
            let values: serde_json::Map<String, Value> = values
                .into_iter()
                .map(|(v, n)| (v.clone(), Value::from(n)))
                .collect();
            out.insert(
                key.to_owned(),
                serde_json::json!({"values": values, "rest": rest}),
            );
        }
        Ok(Value::Object(out))
    }

    /// Searches go exact; the index (if any) is dropped `CONCURRENTLY` after the side table
    /// stopped pointing at it.
    async fn mark_exact(&self, collection: &str, rows: i64) -> Result<()> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        let index: Option<Option<String>> = self
            .prepare
            .scalar(CURRENT_INDEX)
            .bind(collection)
            .fetch_optional(&mut *tx)
            .await
            .map_err(during("reading a collection's index"))?;
        self.prepare
            .query(MARK_EXACT)
            .bind(collection)
            .bind(rows)
            .execute(&mut *tx)
            .await
            .map_err(during("marking a collection exact"))?;
        tx.commit().await.map_err(during("committing a plan"))?;
        if let Some(Some(index)) = index {
            let mut conn = self.ddl_connection().await?;
            let dropped = drop_concurrently(&mut conn, &index).await;
            let closed = conn
                .close()
                .await
                .map_err(during("closing the index build connection"));
            dropped.and(closed)?;
        }
        Ok(())
    }
}

/// Mean over queries of |found ∩ truth| / |truth|, each list without the query's own id and cut
/// to [`CALIBRATION_K`].
fn mean_recall(truth: &[Vec<SearchHit>], found: &[Vec<SearchHit>]) -> f64 {
    let mut total = 0.0;
    for (t, f) in truth.iter().zip(found) {
        let f: HashSet<&str> = f.iter().map(|h| h.id.as_str()).collect();
        total += if t.is_empty() {
            1.0
        } else {
            t.iter().filter(|h| f.contains(h.id.as_str())).count() as f64 / t.len() as f64
        };
    }
    total / truth.len().max(1) as f64
}

/// Calibration queries drawn near stored rows, each component taken from the row or one of
/// its nearest neighbours (`neighbourhoods[i]`, the row first), chosen by a fixed
/// pseudo-random sequence: a new point from the row's neighbourhood, on no index node.
fn mixed_queries(neighbourhoods: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let mut state: u64 = 0x6361_6c69_6272_6174;
    let mut next = move || {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    neighbourhoods
        .iter()
        .filter_map(|vectors| {
            let dimension = vectors.iter().map(Vec::len).min()?;
            let n = vectors.len() as u64;
            Some(
                (0..dimension)
                    .map(|j| {
                        let from = usize::try_from(next() % n).unwrap_or(0);
                        vectors[from][j]
                    })
                    .collect(),
            )
        })
        .collect()
}

/// The rows of the large sample calibration times the exact scan (and the walk) on: a
/// twentieth of the collection, within 100 and [`SCATTERED_ROWS`].
fn calibration_rows(rows: i64) -> i64 {
    (rows / 20).clamp(100, SCATTERED_ROWS)
}

/// A collection whose filter threshold is being measured: its rows, the queries timed and
/// the two filters of its own values both plans are timed on ([`calibration_filters`];
/// `None` when it has no such values).
struct Calibrating<'a> {
    collection: &'a str,
    rows: i64,
    queries: &'a [Vec<f32>],
    filters: Option<[(VectorFilter, i64); 2]>,
}

/// Two filters for timing exact scans, from a collection's value counts (see
/// `PgVectorStore::value_counts`): about `wanted` rows and about an eighth of that, each the
/// `In` of whole values of one filter key, the least frequent values first. The first key of
/// [`FILTER_KEYS`] whose values make such a pair is taken (`file_id` before the others: the
/// filter Open WebUI sends most). `None` when no key's values do (a key with one value per
/// row, or with every value larger than `wanted`), with their row counts.
fn calibration_filters(counts: &Value, wanted: i64) -> Option<[(VectorFilter, i64); 2]> {
    FILTER_KEYS.iter().find_map(|key| {
        let values = counts.get(*key)?.get("values")?.as_object()?;
        let mut values: Vec<(&String, i64)> = values
            .iter()
            .filter_map(|(v, n)| Some((v, n.as_i64()?)))
            .filter(|&(_, n)| n > 0 && n <= wanted)
            .collect();
        values.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(b.0)));
        let taken = |target: i64| -> (usize, i64) {
            let mut rows = 0;
            for (i, (_, n)) in values.iter().enumerate() {
                rows += n;
                if rows >= target {
                    return (i + 1, rows);
                }
            }
            (values.len(), rows)
        };
        let (few, small_rows) = taken(wanted / 8);
        let (many, large_rows) = taken(wanted);
        // The difference of the two is the per-row cost: it has to span enough rows.
        if large_rows < wanted / 2 || large_rows - small_rows < wanted / 4 {
            return None;
        }
        let filter = |n: usize| {
            let picked = values[..n]
                .iter()
                .map(|(v, _)| Value::String((*v).clone()))
                .collect();
            VectorFilter::default().and_in(*key, picked)
        };
        Some([(filter(many), large_rows), (filter(few), small_rows)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::vectors::Condition;
    use serde_json::json;

    fn values_of(filter: &VectorFilter) -> (&str, Vec<&str>) {
        let [(key, Condition::In(values))] = filter.conditions.as_slice() else {
            panic!("one In condition expected: {filter:?}");
        };
        let values = values.iter().map(|v| v.as_str().unwrap_or("?")).collect();
        (key.as_str(), values)
    }

    #[test]
    fn calibration_filters_take_the_first_key_whose_values_make_a_large_and_a_small_set() {
        // `file_id`: ten values of 8,900 rows, each larger than the 2,000 wanted; `hash`: 890
        // rows a value (h9 fewer), so the small set is h9 alone and the large one adds the
        // next least frequent values until 2,000 rows.
        let mut hashes: serde_json::Map<String, Value> =
            (0..9).map(|i| (format!("h{i}"), json!(890))).collect();
        hashes.insert("h9".into(), json!(300));
        let files: serde_json::Map<String, Value> =
            (0..10).map(|i| (format!("f{i}"), json!(8_900))).collect();
        let counts = json!({
            "file_id": {"values": files, "rest": 0},
            "hash": {"values": hashes, "rest": 0},
            "source": {"values": {"s": 89_000}, "rest": 0},
        });
        let [(large, large_rows), (small, small_rows)] =
            calibration_filters(&counts, 2_000).expect("hash makes a pair");
        assert_eq!(values_of(&small), ("hash", vec!["h9"]));
        assert_eq!(small_rows, 300);
        assert_eq!(values_of(&large), ("hash", vec!["h9", "h0", "h1"]));
        assert_eq!(large_rows, 2_080);
    }

    #[test]
    fn calibration_filters_give_nothing_without_values_that_span_enough_rows() {
        // One value per row (a few rows in all), one value for every row, or no counts.
        let singles: serde_json::Map<String, Value> =
            (0..100).map(|i| (format!("r{i}"), json!(1))).collect();
        let counts = json!({
            "file_id": {"values": singles, "rest": 1},
            "name": {"values": {"n": 89_000}, "rest": 0},
        });
        assert!(calibration_filters(&counts, 2_000).is_none());
        assert!(calibration_filters(&json!({}), 2_000).is_none());
        assert!(calibration_filters(&Value::Null, 2_000).is_none());
    }

    #[test]
    fn mixed_queries_take_every_component_from_the_neighbourhood() {
        let neighbourhoods = vec![
            vec![vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]],
            vec![vec![0.5; 3], vec![-0.5; 3], vec![0.25; 4]],
            Vec::new(),
        ];
        let queries = mixed_queries(&neighbourhoods);
        assert_eq!(queries.len(), 2, "an empty neighbourhood gives no query");
        assert_eq!(queries[0].len(), 4);
        assert_eq!(queries[1].len(), 3, "the shortest vector's length");
        for (query, vectors) in queries.iter().zip(&neighbourhoods) {
            for (j, x) in query.iter().enumerate() {
                assert!(
                    vectors.iter().any(|v| v[j] == *x),
                    "component {j} of {query:?}"
                );
            }
        }
        assert_ne!(queries[0], neighbourhoods[0][0], "a new point, not the row");
        assert_ne!(queries[0], neighbourhoods[0][1]);
        assert_eq!(
            queries,
            mixed_queries(&neighbourhoods),
            "the same queries every time"
        );
    }

    #[test]
    fn index_names_are_own_and_safe() {
        let name = index_name("kb'; DROP TABLE x; --");
        assert!(is_own_index_name(&name));
        assert!(name.len() < 63);
        assert!(!is_own_index_name("idx_document_chunk_vector"));
        assert!(!is_own_index_name("chatstore_hnsw_zz; DROP"));
        let second = other_index_name("kb", &index_name("kb"));
        assert!(is_own_index_name(&second));
        assert_ne!(second, index_name("kb"));
        assert_eq!(other_index_name("kb", &second), index_name("kb"));
    }
}
