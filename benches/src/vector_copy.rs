//! The report's **vector copy** sections, one per source (**Chroma → pgvector**, **SQLite →
//! pgvector**): the copy rate of `chatstore migrate --groups vectors` from the source into
//! pgvector, against its two ceilings measured in the same run on the same data:
//!
//! - **reading the source alone**: every collection walked through the source adapter's keyset
//!   `scan`, in the migration's page size, whole collections as many at a time as the
//!   migration reads first pages ahead, nothing written;
//! - **binary COPY alone**: the same items written into an empty `document_chunk` by raw sqlx
//!   binary `COPY` (the rows the pgvector adapter writes: id, the vector zero-padded to the
//!   column, collection, text, `vmetadata` as jsonb), in transactions of the migration's batch
//!   size filled across collections (one per collection would make a workload of many small
//!   collections commit-bound: a ceiling any loader beats).
//!
//! The source is a fresh Chroma database or a fresh SQLite file (chatstore's `chatstore_vector`
//! table, where an Open WebUI SQLite deployment keeps its vectors), loaded untimed with the
//! workload's vectors. The copy time runs from the start of the migration to its last written
//! batch; the whole run adds what comes after the copy (pgvector's per-collection plan and Open
//! WebUI's ivfflat index, built so that Open WebUI starts on the table), shown apart. The
//! target: the copy at least [`COPY_TARGET`] of the slower ceiling.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::{Error, ModelGroup, Result, Store, VectorItem};
use chatstore_migrate::{BatchPoint, MigrateOptions, Migration, Progress};
use chatstore_registry::OpenOptions;
use futures::{StreamExt, TryStreamExt};
use sqlx::Connection;

use crate::backends::{
    Opened, create_postgres_database, drop_postgres_database, open_chroma_database, open_sqlite,
    vectors_only,
};
use crate::workload::{KNOWLEDGE_COLLECTION, Scale, Workload};

/// Items copied by default (about Open WebUI's ivfflat threshold of 5,000 rows, twice).
pub const DEFAULT_ITEMS: u64 = 10_000;

/// The copy rate's target: at least this share of the slower ceiling.
pub const COPY_TARGET: f64 = 0.8;

/// Rounds of the three measurements by default. Each round measures the three side by side,
/// so its share compares times taken moments apart; the verdict is the median of the rounds'
/// shares (a shared machine slows one side or the other of a round at random, and the best
/// times of different rounds can come from quiet moments of one side only). Each load starts
/// after a checkpoint, and COPY alone and the migration take turns going first (the second
/// shares the server with what the first left running), so an even count gives each order
/// the same weight.
pub const ROUNDS: usize = 6;

/// Where a section's vectors are copied from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A fresh database on the Chroma server at this URL (`http://HOST:PORT`).
    Chroma(String),
    /// A fresh SQLite file, vectors in chatstore's `chatstore_vector` table.
    Sqlite,
}

impl CopySource {
    /// The source of the report backend `backend` (whose server URL is `url`), when it has a
    /// section: `chroma` and `sqlite`.
    pub fn for_backend(backend: &str, url: Option<&str>) -> Option<CopySource> {
        match (backend, url) {
            ("chroma", Some(url)) => Some(CopySource::Chroma(url.to_owned())),
            ("sqlite", _) => Some(CopySource::Sqlite),
            _ => None,
        }
    }

    /// Its name in the report ("Chroma", "SQLite").
    pub fn name(&self) -> &'static str {
        match self {
            CopySource::Chroma(_) => "Chroma",
            CopySource::Sqlite => "SQLite",
        }
    }

    /// What holds the vectors, for the report's text.
    pub fn holder(&self) -> &'static str {
        match self {
            CopySource::Chroma(_) => "a fresh Chroma database",
            CopySource::Sqlite => {
                "a fresh SQLite file (chatstore's `chatstore_vector` table, where Open WebUI's \
                 SQLite database gets its vectors)"
            }
        }
    }

    /// A fresh source holding `workload`'s vectors, opened as a vectors-only store, with its
    /// clean-up.
    async fn open_loaded(&self, workload: &Workload) -> Result<Opened> {
        let opened = match self {
            CopySource::Chroma(url) => {
                let (opened, vectors_url) = open_chroma_database(url.clone()).await?;
                // Loaded without the adapter's cross-collection id check (one request per
                // collection per write: quadratic over a thousand `file-{id}` collections);
                // the workload's ids are unique anyway. The copy reads through the store
                // opened above, as the migration does.
                let loaded = async {
                    let loader = chatstore_chroma::ChromaStore::connect(
                        chatstore_chroma::ChromaConfig::new(&vectors_url)?
                            .id_scope(chatstore_chroma::IdScope::Collection),
                    )
                    .await?
                    .into_store(&chatstore_core::memory::store());
                    workload
                        .load(&vectors_only("chroma", &loader), &|_| {})
                        .await
                }
                .await;
                (opened, loaded)
            }
            CopySource::Sqlite => {
                let mut opened = open_sqlite().await?;
                opened.store = vectors_only("sqlite", &opened.store);
                let loaded = workload.load(&opened.store, &|_| {}).await;
                (opened, loaded)
            }
        };
        match opened {
            (opened, Ok(())) => Ok(opened),
            (opened, Err(e)) => {
                let _ = opened.close().await;
                Err(e)
            }
        }
    }
}

/// One measurement of a section.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyResult {
    /// Items in the source.
    pub items: u64,
    /// Collections they are in.
    pub collections: usize,
    /// Records per batch (the migration's default).
    pub batch: u32,
    /// Reading every collection from the source, nothing written.
    pub read_alone: Duration,
    /// Raw binary COPY of the same items into an empty pgvector table.
    pub copy_alone: Duration,
    /// The migration, from its start to its last written batch.
    pub migration_copy: Duration,
    /// The whole migration run (the copy, then the target's preparation for its readers).
    pub migration_total: Duration,
    /// Each round's share (its copy's rate against the slower of its own two ceilings), in
    /// the order the rounds ran. The times above are each the best of the rounds.
    pub round_shares: Vec<f64>,
}

impl CopyResult {
    /// Items per second over `d`.
    pub fn rate(&self, d: Duration) -> f64 {
        self.items as f64 / d.as_secs_f64().max(1e-9)
    }

    /// The copy's rate as a share of the slower ceiling: the median of the rounds' shares
    /// (the share of the best times when no round is recorded).
    pub fn share(&self) -> f64 {
        crate::stats::median(&self.round_shares).unwrap_or_else(|| self.best_share())
    }

    /// The share of the best times, each possibly from another round.
    pub fn best_share(&self) -> f64 {
        let ceiling = self.rate(self.read_alone).min(self.rate(self.copy_alone));
        self.rate(self.migration_copy) / ceiling
    }
}

/// How a section went.
#[derive(Debug, Clone, PartialEq)]
pub enum CopyOutcome {
    /// Measured.
    Measured(CopyResult),
    /// Not run, with the reason.
    Skipped(String),
    /// Failed, with the error.
    Failed(String),
}

/// Runs a section: loads `items` vectors of the seeded workload (its `file-{id}` collections
/// and its knowledge collection) into a fresh `source`, then measures the two ceilings and the
/// migration on fresh databases of `pg_url`; every database is removed afterwards.
/// `rounds` rounds (at least one) of the three measurements.
pub async fn measure(
    source: &CopySource,
    pg_url: &str,
    items: u64,
    seed: u64,
    rounds: usize,
) -> CopyOutcome {
    let workload = Workload::new(Scale::new(items), seed);
    let opened = match source.open_loaded(&workload).await {
        Ok(opened) => opened,
        Err(e) => return CopyOutcome::Failed(e.to_string()),
    };
    let mut pg_databases = Vec::new();
    let outcome = run(&opened.store, &workload, pg_url, rounds, &mut pg_databases).await;
    let mut cleanup = opened.close().await;
    for name in pg_databases {
        cleanup = cleanup.and(drop_postgres_database(pg_url, &name).await);
    }
    match (outcome, cleanup) {
        (Ok(result), Ok(())) => CopyOutcome::Measured(result),
        (Ok(_), Err(e)) => CopyOutcome::Failed(format!("cleaning up: {e}")),
        (Err(e), _) => CopyOutcome::Failed(e.to_string()),
    }
}

async fn run(
    source: &Store,
    workload: &Workload,
    pg_url: &str,
    rounds: usize,
    pg_databases: &mut Vec<String>,
) -> Result<CopyResult> {
    let batches = batches(
        workload,
        chatstore_migrate::engine::DEFAULT_BATCH_SIZE as usize,
    );
    let batch = chatstore_migrate::engine::DEFAULT_BATCH_SIZE;
    let collections = source.vectors.collections().await?;
    let count: u64 = batches.iter().map(|(_, b)| b.len() as u64).sum();

    let mut best: Option<CopyResult> = None;
    for number in 0..rounds.max(1) {
        let round = round(
            source,
            &collections,
            &batches,
            count,
            batch,
            pg_url,
            pg_databases,
            number % 2 == 1,
        )
        .await?;
        let share = round.best_share();
        best = Some(match best {
            None => CopyResult {
                round_shares: vec![share],
                ..round
            },
            Some(mut b) => {
                b.round_shares.push(share);
                CopyResult {
                    read_alone: b.read_alone.min(round.read_alone),
                    copy_alone: b.copy_alone.min(round.copy_alone),
                    migration_copy: b.migration_copy.min(round.migration_copy),
                    migration_total: b.migration_total.min(round.migration_total),
                    ..b
                }
            }
        });
    }
    best.ok_or_else(|| Error::backend_msg("no round ran"))
}

/// One round of the three measurements: reading alone, then COPY alone and the migration (the
/// migration first when `migration_first`).
#[allow(clippy::too_many_arguments)]
async fn round(
    source: &Store,
    collections: &[String],
    batches: &[(String, Vec<VectorItem>)],
    count: u64,
    batch: u32,
    pg_url: &str,
    pg_databases: &mut Vec<String>,
    migration_first: bool,
) -> Result<CopyResult> {
    // 1. Reading the source alone, at least as fast as the migration reads: page by page until
    // a short page, whole collections `COLLECTIONS_AHEAD` at a time (the migration reads only
    // their first pages ahead).
    let started = Instant::now();
    let walk = |c: &String| {
        let vectors = source.vectors.clone();
        let c = c.clone();
        async move {
            let mut read = 0u64;
            let mut after: Option<String> = None;
            loop {
                let page = vectors.scan(&c, after.as_deref(), batch).await?;
                read += page.len() as u64;
                if page.len() < batch as usize {
                    return Ok::<u64, Error>(read);
                }
                after = page.last().map(|last| last.id.clone());
            }
        }
    };
    let read: u64 = futures::stream::iter(collections)
        .map(walk)
        .buffered(chatstore_migrate::engine::COLLECTIONS_AHEAD)
        .try_fold(0u64, |sum, n| async move { Ok(sum + n) })
        .await?;
    let read_alone = started.elapsed();
    if read != count {
        return Err(Error::backend_msg(format!(
            "read {read} vectors back from the source, loaded {count}"
        )));
    }

    // 2 and 3. Raw binary COPY alone and the migration, each into an empty document_chunk
    // (the schema made by the adapter), in turns (each after a checkpoint, but whichever runs
    // second still shares the server with the first one's background work).
    let (copy_alone, (migration_copy, migration_total)) = if migration_first {
        let migration = migrate(source, count, batch, pg_url, pg_databases).await?;
        (
            copy_alone(batches, batch, pg_url, pg_databases).await?,
            migration,
        )
    } else {
        let copy = copy_alone(batches, batch, pg_url, pg_databases).await?;
        (
            copy,
            migrate(source, count, batch, pg_url, pg_databases).await?,
        )
    };
    Ok(CopyResult {
        items: count,
        collections: collections.len(),
        batch,
        read_alone,
        copy_alone,
        migration_copy,
        migration_total,
        round_shares: Vec::new(),
    })
}

/// Raw binary COPY of `batches` into an empty document_chunk of a fresh database.
async fn copy_alone(
    batches: &[(String, Vec<VectorItem>)],
    batch: u32,
    pg_url: &str,
    pg_databases: &mut Vec<String>,
) -> Result<Duration> {
    let (copy_url, name) = create_postgres_database(pg_url).await?;
    pg_databases.push(name);
    let copy_store = OpenOptions::new("memory")
        .vectors_url(copy_url.clone())
        .open()
        .await?;
    drop(copy_store);
    write_out_dirty_buffers(pg_url).await;
    raw_copy(&copy_url, batches, batch as usize).await
}

/// `chatstore migrate --groups vectors` of `source` (`count` items) into a fresh database:
/// the copy's time (to its last written batch) and the whole run's.
async fn migrate(
    source: &Store,
    count: u64,
    batch: u32,
    pg_url: &str,
    pg_databases: &mut Vec<String>,
) -> Result<(Duration, Duration)> {
    let (target_url, name) = create_postgres_database(pg_url).await?;
    pg_databases.push(name);
    let target = OpenOptions::new("memory")
        .vectors_url(target_url)
        .open()
        .await?;
    let target = vectors_only("pgvector", &target);
    let dir = crate::backends::fresh_dir("vector-copy")?;
    let mut options = MigrateOptions::new(
        format!("{}-bench", source.backend_name()),
        "pgvector-bench",
        dir.join("state.json"),
        dir.join("dead.jsonl"),
    );
    options.groups = vec![ModelGroup::Vectors];
    options.batch_size = batch;
    let last = LastBatch(Mutex::new(None));
    write_out_dirty_buffers(pg_url).await;
    let started = Instant::now();
    let summary = Migration::new(source, &target, options, &last).run().await;
    let migration_total = started.elapsed();
    // Untimed: index builds the load queued on the target must not run into the next round's
    // timed loads, nor be cut off when its database is dropped.
    if let Err(e) = target.vectors.settle().await {
        eprintln!("vector copy: the target's background work did not settle: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summary?;
    let written: u64 = summary.groups.iter().map(|g| g.counts.written).sum();
    if written != count || summary.dead_letters != 0 {
        return Err(Error::backend_msg(format!(
            "the migration wrote {written} of {count} vectors ({} dead letters)",
            summary.dead_letters
        )));
    }
    let migration_copy = last
        .0
        .lock()
        .ok()
        .and_then(|t| *t)
        .map_or(migration_total, |t| t.duration_since(started));
    Ok((migration_copy, migration_total))
}

/// Asks the server for a checkpoint (untimed) before a timed load, so that neither load pays
/// for writing out the rows the one before it left in the buffers (Open WebUI's ivfflat index,
/// built at the end of every migration, leaves many). Without the right to (`pg_checkpoint` or
/// a superuser), the loads go on as they are: their alternating order still balances it.
async fn write_out_dirty_buffers(pg_url: &str) {
    if let Ok(mut conn) = sqlx::PgConnection::connect(pg_url).await {
        let _ = sqlx::query("CHECKPOINT").execute(&mut conn).await;
        let _ = conn.close().await;
    }
}

/// When the last batch was written (the end of the copy).
struct LastBatch(Mutex<Option<Instant>>);

impl Progress for LastBatch {
    fn batch(&self, _group: ModelGroup, _number: u64, point: BatchPoint) {
        if point == BatchPoint::Written
            && let Ok(mut last) = self.0.lock()
        {
            *last = Some(Instant::now());
        }
    }
}

/// The workload's vectors as the migration pages them: per collection, batches of `size`.
fn batches(workload: &Workload, size: usize) -> Vec<(String, Vec<VectorItem>)> {
    let mut out = Vec::new();
    for i in 0..workload.files() {
        let items = (0..crate::workload::CHUNKS_PER_FILE)
            .map(|k| workload.file_chunk(i, k))
            .collect();
        out.push((workload.file_collection(i), items));
    }
    let knowledge: Vec<VectorItem> = (0..workload.knowledge_chunks())
        .map(|i| workload.knowledge_chunk(i))
        .collect();
    for chunk in knowledge.chunks(size.max(1)) {
        out.push((KNOWLEDGE_COLLECTION.to_owned(), chunk.to_vec()));
    }
    out
}

const COPY: &str = "COPY document_chunk (id, vector, collection_name, text, vmetadata) \
     FROM STDIN (FORMAT binary)";
const DIMENSION: &str = "SELECT atttypmod FROM pg_attribute \
     WHERE attrelid = 'document_chunk'::regclass AND attname = 'vector'";

/// Binary COPY of every item in transactions of `size` rows (filled across collections, in the
/// migration's order), on one connection; returns the time.
async fn raw_copy(
    url: &str,
    batches: &[(String, Vec<VectorItem>)],
    size: usize,
) -> Result<Duration> {
    let raw = |what: &'static str| move |e: sqlx::Error| Error::backend(what, e);
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(raw("raw COPY: connecting"))?;
    let dim: i32 = sqlx::query_scalar(DIMENSION)
        .fetch_one(&mut conn)
        .await
        .map_err(raw("raw COPY: reading the column's dimension"))?;
    let dim = usize::try_from(dim).unwrap_or(0);
    // Encoded before timing: the ceiling is the server's side and the wire.
    let rows: Vec<(&str, &VectorItem)> = batches
        .iter()
        .flat_map(|(collection, items)| items.iter().map(move |item| (collection.as_str(), item)))
        .collect();
    let encoded: Vec<Vec<u8>> = rows
        .chunks(size.max(1))
        .map(|chunk| encode(chunk, dim))
        .collect();
    let started = Instant::now();
    for data in encoded {
        let mut tx = conn.begin().await.map_err(raw("raw COPY: BEGIN"))?;
        let mut copy = tx
            .copy_in_raw(COPY)
            .await
            .map_err(raw("raw COPY: starting"))?;
        copy.send(data).await.map_err(raw("raw COPY: sending"))?;
        copy.finish().await.map_err(raw("raw COPY: finishing"))?;
        tx.commit().await.map_err(raw("raw COPY: COMMIT"))?;
    }
    let took = started.elapsed();
    let _ = conn.close().await;
    Ok(took)
}

/// The binary COPY stream of `rows`: `(id, vector padded to dim, collection, text, jsonb)`.
fn encode(rows: &[(&str, &VectorItem)], dim: usize) -> Vec<u8> {
    fn field(buf: &mut Vec<u8>, bytes: &[u8]) {
        buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        buf.extend_from_slice(bytes);
    }
    let mut buf = b"PGCOPY\n\xff\r\n\0".to_vec();
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    for &(collection, item) in rows {
        let dim = dim.max(item.vector.len());
        buf.extend_from_slice(&5i16.to_be_bytes());
        field(&mut buf, item.id.as_bytes());
        buf.extend_from_slice(&((4 + 4 * dim) as i32).to_be_bytes());
        buf.extend_from_slice(&(dim as u16).to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes());
        for x in item
            .vector
            .iter()
            .copied()
            .chain(std::iter::repeat(0.0))
            .take(dim)
        {
            buf.extend_from_slice(&x.to_be_bytes());
        }
        field(&mut buf, collection.as_bytes());
        field(&mut buf, item.text.as_bytes());
        let mut json = vec![1u8];
        json.extend_from_slice(
            serde_json::to_string(&item.metadata)
                .unwrap_or_default()
                .as_bytes(),
        );
        field(&mut buf, &json);
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::CopyResult;
    use std::time::Duration;

    /// The verdict is the median round; the best times taken together are shown apart.
    #[test]
    fn the_share_is_the_median_of_the_rounds() {
        let r = CopyResult {
            items: 1000,
            collections: 2,
            batch: 500,
            read_alone: Duration::from_millis(100),
            copy_alone: Duration::from_millis(400),
            migration_copy: Duration::from_millis(500),
            migration_total: Duration::from_millis(900),
            round_shares: vec![2.3, 0.7, 0.85, 0.9, 0.6, 0.95],
        };
        assert!((r.share() - 0.875).abs() < 1e-9);
        assert!((r.best_share() - 0.8).abs() < 1e-9);
        let unpaired = CopyResult {
            round_shares: Vec::new(),
            ..r
        };
        assert!((unpaired.share() - 0.8).abs() < 1e-9);
    }
}
