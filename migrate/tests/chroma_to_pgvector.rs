//! Chroma -> pgvector through the migration engine, on the real servers: Open WebUI's
//! collections (names, metadata keys, 384-dimension embeddings into its `vector(1536)` column)
//! arrive with ids, text, metadata and vectors unchanged; verification compares every record
//! and the top-10 neighbours of sampled searches; Open WebUI's own start-up statements then
//! succeed on default settings against the >10k-row table; and a copy whose Chroma server is
//! killed mid-way resumes from its checkpoint after a restart.
//!
//! Needs `CHATSTORE_TEST_CHROMA_URL`, `CHATSTORE_TEST_PGVECTOR_URL` and `CHATSTORE_CHROMA_BIN`
//! (scripts/services.sh exports them).

use std::sync::Mutex;
use std::time::Instant;

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{ModelGroup, Store, VectorItem, VectorRepo, memory};
use chatstore_migrate::{
    BatchPoint, MigrateOptions, Migration, Progress, Silent, compare_searches, verify,
};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use chatstore_testkit::PrivateChroma;
use serde_json::{Map, Value, json};
use sqlx::Connection;

const DIM: usize = 384;

fn env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "{name} is not set but CI=true: start the servers with scripts/services.sh"
            );
            eprintln!("SKIPPED: {name} is not set");
            None
        }
    }
}

/// A deterministic generator (xorshift64*), so every run loads the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            b >> 52,
            b & 0xffff_ffff_ffff
        )
    }
}

/// Embeddings around a few topics, like a document's chunks.
fn embedding(rng: &mut Rng, topic: &[f32]) -> Vec<f32> {
    let v: Vec<f32> = topic.iter().map(|t| t + 0.35 * rng.unit()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Chunks of one uploaded file, with the metadata Open WebUI's ingestion writes to Chroma
/// (`embedding_config` as Python's repr, as its `process_metadata` leaves it).
fn file_chunks(rng: &mut Rng, file_id: &str, n: usize, user: &str) -> Vec<VectorItem> {
    let topics: Vec<Vec<f32>> = (0..4)
        .map(|_| (0..DIM).map(|_| rng.unit()).collect())
        .collect();
    (0..n)
        .map(|i| VectorItem {
            id: rng.uuid(),
            text: format!("chunk {i} of {file_id}: the quarterly report says revenue grew {i}%"),
            vector: embedding(rng, &topics[i % topics.len()]),
            metadata: object(json!({
                "file_id": file_id,
                "name": format!("report-{}.pdf", &file_id[..8]),
                "source": format!("report-{}.pdf", &file_id[..8]),
                "created_by": user,
                "hash": format!("{:016x}{:016x}", rng.next(), rng.next()),
                "start_index": i * 800,
                "page": i / 3,
                "embedding_config": "{'engine': '', 'model': 'sentence-transformers/all-MiniLM-L6-v2'}",
            })),
        })
        .collect()
}

/// Open WebUI's kinds of collections, one of them over Chroma's 10,000-record page.
fn open_webui_collections(big: usize) -> Vec<(String, Vec<VectorItem>)> {
    let mut rng = Rng(0x5eed_cafe);
    let user = rng.uuid();
    let file = rng.uuid();
    let kb = rng.uuid();
    let web = format!("web-search-{user}-{:016x}{:016x}", rng.next(), rng.next());
    let web: String = web.chars().take(63).collect();
    let memories: Vec<VectorItem> = (0..6)
        .map(|i| VectorItem {
            id: rng.uuid(),
            text: format!("User prefers answers in bullet points ({i})"),
            vector: embedding(&mut rng, &vec![0.1; DIM]),
            metadata: object(json!({"created_at": 1_717_000_000 + i})),
        })
        .collect();
    let web_items: Vec<VectorItem> = (0..25)
        .map(|i| VectorItem {
            id: rng.uuid(),
            text: format!("search result {i}"),
            vector: embedding(&mut rng, &vec![-0.05; DIM]),
            metadata: object(json!({
                "source": format!("https://example.com/{i}"),
                "title": format!("Result {i}"),
                "language": "en",
            })),
        })
        .collect();
    vec![
        (
            format!("file-{file}"),
            file_chunks(&mut rng, &file, 120, &user),
        ),
        (kb.clone(), file_chunks(&mut rng, &kb, big, &user)),
        (format!("user-memory-{user}"), memories),
        (web, web_items),
    ]
}

async fn load(chroma: &ChromaStore, data: &[(String, Vec<VectorItem>)]) {
    for (name, items) in data {
        for chunk in items.chunks(5_000) {
            chroma
                .insert(name, chunk.to_vec())
                .await
                .expect("load Chroma the way Open WebUI writes it");
        }
    }
}

async fn fresh_pg_database(base_url: &str) -> String {
    chatstore_testkit::fresh_postgres_database(base_url).await
}

async fn pg_store(url: &str) -> Store {
    // Collections stay exact (no partial HNSW), so searches compare exactly with Chroma's.
    let config = PgVectorConfig::new(url)
        .pool_size(4)
        .exact_max_rows(1_000_000);
    PgVectorStore::connect(config)
        .await
        .expect("open pgvector")
        .into_store(&memory::store())
}

fn chroma_store(vectors: ChromaStore) -> Store {
    vectors.into_store(&memory::store())
}

/// Open WebUI 0.12.4's start-up on pgvector (`PgvectorClient.__init__`, no pgcrypto, a
/// `vector(1536)` column, default index settings), statement by statement, in one
/// transaction on a connection with the server's default settings.
async fn open_webui_start_up(url: &str) -> Result<(), sqlx::Error> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(
        "DO $$
                    BEGIN
                    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector') THEN
                        CREATE EXTENSION IF NOT EXISTS vector;
                    END IF;
                    END $$;",
    )
    .execute(&mut *tx)
    .await?;
    // SQLAlchemy's create_all: the table exists, so it creates nothing.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('document_chunk') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    assert!(exists, "document_chunk exists");
    let existing: Option<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename = 'document_chunk' AND indexname = $1",
    )
    .bind("idx_document_chunk_vector")
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(def) = &existing {
        assert!(
            def.contains("USING ivfflat"),
            "Open WebUI refuses an index of another method: {def}"
        );
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM document_chunk")
        .fetch_one(&mut *tx)
        .await?;
    if existing.is_none() && rows >= 50 * 100 {
        sqlx::raw_sql(
            "CREATE INDEX IF NOT EXISTS idx_document_chunk_vector ON document_chunk \
             USING ivfflat (vector vector_cosine_ops) WITH (lists = 100)",
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::raw_sql(
        "CREATE INDEX IF NOT EXISTS idx_document_chunk_text_search ON document_chunk \
         USING GIN (to_tsvector('simple', coalesce(text, '')))",
    )
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(
        "CREATE INDEX IF NOT EXISTS idx_document_chunk_collection_name \
         ON document_chunk (collection_name);",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Every collection arrives unchanged, verification (records and searches) passes, and Open
/// WebUI's start-up statements succeed on default settings against the 10k-row table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chroma_collections_arrive_in_pgvector_and_open_webui_starts() {
    let (Some(chroma_url), Some(pg_url)) = (
        env("CHATSTORE_TEST_CHROMA_URL"),
        env("CHATSTORE_TEST_PGVECTOR_URL"),
    ) else {
        return;
    };
    let config = ChromaConfig::new(&chroma_url)
        .expect("Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true)
        .exact_max_candidates(100_000);
    let chroma = ChromaStore::connect(config).await.expect("open Chroma");
    let data = open_webui_collections(10_500);
    let t = Instant::now();
    load(&chroma, &data).await;
    eprintln!(
        "loaded {} Chroma records in {:?}",
        data.iter().map(|(_, i)| i.len()).sum::<usize>(),
        t.elapsed()
    );
    let source = chroma_store(chroma);
    let target_url = fresh_pg_database(&pg_url).await;
    let target = pg_store(&target_url).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = MigrateOptions::new(
        "chroma-test",
        "pgvector-test",
        dir.path().join("state.json"),
        dir.path().join("dead.jsonl"),
    );
    options.groups = vec![ModelGroup::Vectors];
    options.batch_size = 2_000;
    let t = Instant::now();
    let summary = Migration::new(&source, &target, options, &Silent)
        .run()
        .await
        .expect("migrate");
    eprintln!("copied in {:?}: {summary:?}", t.elapsed());
    assert_eq!(summary.dead_letters, 0);

    // Ids, text, metadata and vectors, every collection.
    for (name, items) in &data {
        let got = target.vectors.get(name).await.expect("read pgvector");
        assert_eq!(got.len(), items.len(), "{name}: every record");
        let mut want = items.clone();
        want.sort_by(|a, b| a.id.cmp(&b.id));
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.id, w.id);
            assert_eq!(g.text, w.text, "{name}/{}", w.id);
            assert_eq!(g.metadata, w.metadata, "{name}/{}", w.id);
            assert_eq!(
                g.vector.len(),
                DIM,
                "the true dimension, not the padded column"
            );
            for (a, b) in g.vector.iter().zip(&w.vector) {
                assert!(
                    (a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1e-3),
                    "{name}/{}: {a} vs {b}",
                    w.id
                );
            }
        }
    }
    let report = verify(&source, &target, &[ModelGroup::Vectors], &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "verification: {:?}", report.differing_ids());
    let searches = compare_searches(&source, &target, 5, 10)
        .await
        .expect("compare searches");
    assert_eq!(searches.collections, 4);
    assert!(searches.agrees(), "searches: {:?}", searches.disagreements);
    eprintln!(
        "{} searches agree; neighbours Chroma's own search missed: {}",
        searches.queries, searches.source_missed
    );

    // Open WebUI starts on the migrated table with the server's default settings...
    open_webui_start_up(&target_url)
        .await
        .expect("Open WebUI's start-up statements succeed after the migration");
    // ...and the trap is real: without the index the migration built, its own build fails.
    let mut conn = sqlx::PgConnection::connect(&target_url)
        .await
        .expect("connect");
    let mem: String = sqlx::query_scalar("SHOW maintenance_work_mem")
        .fetch_one(&mut conn)
        .await
        .expect("show");
    assert_eq!(mem, "64MB", "the server runs PostgreSQL's default");
    sqlx::raw_sql("DROP INDEX idx_document_chunk_vector")
        .execute(&mut conn)
        .await
        .expect("drop the index");
    let err = open_webui_start_up(&target_url)
        .await
        .expect_err("Open WebUI's own ivfflat build needs more than 64MB here");
    assert!(err.to_string().contains("memory required"), "{err}");
}

/// Kills the private Chroma server once a few batches are checkpointed.
struct KillAfter {
    batches: u64,
    server: Mutex<Option<PrivateChroma>>,
}

impl Progress for KillAfter {
    fn batch(&self, _group: ModelGroup, number: u64, point: BatchPoint) {
        if number >= self.batches
            && matches!(point, BatchPoint::Checkpointed)
            && let Ok(mut server) = self.server.lock()
            && let Some(mut server) = server.take()
        {
            server.stop();
        }
    }
}

/// A copy whose Chroma server dies mid-way stops with its checkpoint; after a restart it
/// resumes there and finishes with nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_resumes_after_the_chroma_server_is_killed() {
    let Some(pg_url) = env("CHATSTORE_TEST_PGVECTOR_URL") else {
        return;
    };
    let folder = tempfile::tempdir().expect("temp dir");
    let Some(server) = PrivateChroma::start(folder.path()).await else {
        return;
    };
    let chroma = ChromaStore::connect(ChromaConfig::new(&server.url()).expect("url"))
        .await
        .expect("open the private Chroma");
    let data = open_webui_collections(1_500);
    load(&chroma, &data).await;
    let total: usize = data.iter().map(|(_, i)| i.len()).sum();
    let source = chroma_store(chroma);
    let target_url = fresh_pg_database(&pg_url).await;
    let target = pg_store(&target_url).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = MigrateOptions::new(
        "chroma-private",
        "pgvector-test",
        dir.path().join("state.json"),
        dir.path().join("dead.jsonl"),
    );
    options.groups = vec![ModelGroup::Vectors];
    options.batch_size = 100;
    let killer = KillAfter {
        batches: 6,
        server: Mutex::new(Some(server)),
    };
    let first = Migration::new(&source, &target, options.clone(), &killer)
        .run()
        .await;
    let err = first.expect_err("the copy stops when Chroma dies");
    assert!(err.is_retryable(), "an Unavailable error: {err}");
    let copied: usize = {
        let mut n = 0;
        for (name, _) in &data {
            n += target.vectors.get(name).await.expect("read").len();
        }
        n
    };
    assert!(
        copied > 0 && copied < total,
        "stopped mid-way: {copied} of {total}"
    );

    // Restart Chroma on the same folder (a new port), resume with the same state.
    let Some(server) = PrivateChroma::start(folder.path()).await else {
        return;
    };
    let source = chroma_store(
        ChromaStore::connect(ChromaConfig::new(&server.url()).expect("url"))
            .await
            .expect("reopen Chroma"),
    );
    let summary = Migration::new(&source, &target, options, &Silent)
        .run()
        .await
        .expect("the resumed copy finishes");
    let read: u64 = summary.groups.iter().map(|g| g.counts.read).sum();
    assert!(
        (read as usize) < total + 100,
        "resumed, not restarted: read {read} of {total}"
    );
    let report = verify(&source, &target, &[ModelGroup::Vectors], &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "verification: {:?}", report.differing_ids());
    drop(server);
}

/// Copy rate against its two ceilings, measured in one run on the same data: reading every
/// collection from Chroma alone (the engine's page size), and writing the same items into an
/// empty pgvector table by binary COPY alone. Gated (it loads Chroma first):
/// `CHATSTORE_CHROMA_BENCH=10000 cargo test --release -p chatstore-migrate --test
/// chroma_to_pgvector copy_rate -- --nocapture` (the number is the large collection's size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_rate_against_reading_chroma_and_copy_into_pgvector() {
    let Some(big) = std::env::var("CHATSTORE_CHROMA_BENCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("SKIPPED: set CHATSTORE_CHROMA_BENCH=N to measure the copy rate");
        return;
    };
    let (Some(chroma_url), Some(pg_url)) = (
        env("CHATSTORE_TEST_CHROMA_URL"),
        env("CHATSTORE_TEST_PGVECTOR_URL"),
    ) else {
        return;
    };
    let config = ChromaConfig::new(&chroma_url)
        .expect("Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    let chroma = ChromaStore::connect(config).await.expect("open Chroma");
    let data = open_webui_collections(big);
    let total: usize = data.iter().map(|(_, i)| i.len()).sum();
    load(&chroma, &data).await;
    let source = chroma_store(chroma);
    let batch = 2_000u32;

    // 1. Reading alone.
    let t = Instant::now();
    let mut read = 0usize;
    for c in source.vectors.collections().await.expect("collections") {
        let mut after: Option<String> = None;
        loop {
            let page = source
                .vectors
                .scan(&c, after.as_deref(), batch)
                .await
                .expect("scan");
            read += page.len();
            match page.last() {
                Some(last) => after = Some(last.id.clone()),
                None => break,
            }
        }
    }
    let read_rate = read as f64 / t.elapsed().as_secs_f64();

    // 2. Binary COPY alone (pgvector's insert of new ids is one binary COPY per call).
    let copy_target = pg_store(&fresh_pg_database(&pg_url).await).await;
    let t = Instant::now();
    for (name, items) in &data {
        for chunk in items.chunks(batch as usize) {
            copy_target
                .vectors
                .insert(name, chunk.to_vec())
                .await
                .expect("COPY");
        }
    }
    let copy_rate = total as f64 / t.elapsed().as_secs_f64();

    // 3. The migration.
    let target = pg_store(&fresh_pg_database(&pg_url).await).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = MigrateOptions::new(
        "chroma-bench",
        "pgvector-bench",
        dir.path().join("state.json"),
        dir.path().join("dead.jsonl"),
    );
    options.groups = vec![ModelGroup::Vectors];
    options.batch_size = batch;
    let last = LastBatch(Mutex::new(None));
    let t = Instant::now();
    Migration::new(&source, &target, options, &last)
        .run()
        .await
        .expect("migrate");
    let whole = t.elapsed();
    let copied = last
        .0
        .lock()
        .ok()
        .and_then(|at| *at)
        .map_or(whole, |at| at.duration_since(t));
    let migrate_rate = total as f64 / copied.as_secs_f64();
    let ceiling = read_rate.min(copy_rate);
    eprintln!(
        "{total} items ({DIM} dims into vector(1536)): read Chroma alone {read_rate:.0}/s, \
         binary COPY alone {copy_rate:.0}/s, migration {migrate_rate:.0}/s to its last \
         batch = {:.0}% of the slower; whole run {:.2} s (Open WebUI's index {:.2} s)",
        100.0 * migrate_rate / ceiling,
        whole.as_secs_f64(),
        (whole - copied).as_secs_f64()
    );
}

/// When the last batch was written (the end of the copy; Open WebUI's index comes after).
struct LastBatch(Mutex<Option<Instant>>);

impl Progress for LastBatch {
    fn batch(&self, _group: ModelGroup, _number: u64, point: BatchPoint) {
        if point == BatchPoint::Written
            && let Ok(mut at) = self.0.lock()
        {
            *at = Some(Instant::now());
        }
    }
}

/// Into a `halfvec` column (Open WebUI's `PGVECTOR_USE_HALFVEC`), vectors arrive rounded to
/// half precision: verification compares them, and the searches' distances, within that
/// rounding, and still finds a component changed beyond it. (It compared within 1e-6 and
/// called every vector of such a copy different.)
#[tokio::test]
async fn a_copy_into_a_halfvec_column_verifies_within_half_precision() {
    let Some(pg_url) = env("CHATSTORE_TEST_PGVECTOR_URL") else {
        return;
    };
    let data = open_webui_collections(300);
    let source = memory::store();
    for (name, items) in &data {
        source
            .vectors
            .insert(name, items.clone())
            .await
            .expect("load");
    }
    let target_url = fresh_pg_database(&pg_url).await;
    let mut config = PgVectorConfig::new(&target_url)
        .pool_size(4)
        .exact_max_rows(1_000_000);
    config.use_halfvec = true;
    let target = PgVectorStore::connect(config)
        .await
        .expect("open pgvector")
        .into_store(&memory::store());
    assert!(target.capabilities().half_vectors && !target.capabilities().exact_vectors);

    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = MigrateOptions::new(
        "memory",
        "pgvector-halfvec",
        dir.path().join("state.json"),
        dir.path().join("dead.jsonl"),
    );
    options.groups = vec![ModelGroup::Vectors];
    let summary = Migration::new(&source, &target, options, &Silent)
        .run()
        .await
        .expect("migrate");
    assert_eq!(summary.dead_letters, 0, "{summary:?}");
    let (name, items) = &data[1];
    let stored = target.vectors.get(name).await.expect("read back");
    let stored = stored
        .into_iter()
        .find(|i| i.id == items[0].id)
        .expect("arrived");
    assert_ne!(stored.vector, items[0].vector, "halfvec rounds");

    let report = verify(&source, &target, &[ModelGroup::Vectors], &Silent)
        .await
        .expect("verify");
    assert!(report.equal, "{:?}", report.differing_ids());
    let searches = compare_searches(&source, &target, 5, 10)
        .await
        .expect("searches");
    assert!(searches.agrees(), "{searches:?}");

    let mut changed = stored.clone();
    changed.vector[7] += 0.01;
    target
        .vectors
        .upsert(name, vec![changed])
        .await
        .expect("change one vector");
    let report = verify(&source, &target, &[ModelGroup::Vectors], &Silent)
        .await
        .expect("verify");
    let vectors = &report.groups[0];
    assert_eq!(vectors.differences, 1, "{:?}", report.differing_ids());
    let fields: Vec<&str> = vectors.differing[0]
        .fields
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(fields, ["/vector/7"], "{:?}", report.differing_ids());
}
