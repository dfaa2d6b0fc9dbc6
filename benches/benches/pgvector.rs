//! pgvector adapter benchmarks (issue 5): ingest rows/s and search latency, each next to its
//! references measured in the same run on the same server.
//!
//! - Ingest: chatstore `insert` and `upsert` (batched `unnest` with binary arrays) against the
//!   ceiling (binary `COPY` of the same rows into the same table) and the per-row baselines of
//!   Open WebUI's ORM (one INSERT per row in one transaction; for upsert a SELECT then an
//!   UPDATE or INSERT per row).
//! - Search: k = 10 in collections holding 1 %, 10 % and 89 % of the table (random membership,
//!   clustered data), after `optimize_all`, unfiltered and with metadata filters keeping 1 %,
//!   10 %, 50 % and 100 % of the collection (indexed keys and keys without an index), against
//!   an exact scan of the same rows. Recall@10 and p50/p95 are printed next to criterion's estimates.
//! - Scan: one page of 500 rows from the middle of each collection (the reads of a migration
//!   or a verification), with the time to walk each collection whole printed beside it.
//!
//! Rows have 384 dimensions, stored in a vector(384) and in a vector(1536) column (Open WebUI's
//! default size, zero-padded). Scale: `CHATSTORE_BENCH_SCALE` rows (default 10000; 100000 for
//! the second size), `CHATSTORE_BENCH_COLUMNS` (default `384,1536`),
//! `CHATSTORE_BENCH_ONLY` (`ingest`, `search` or `scan`), `CHATSTORE_BENCH_HNSW` (`m,ef_construction`
//! of the partial indexes; default the adapter's), `CHATSTORE_BENCH_KEEP` (keep each run's
//! `bench_<uuid>` database for psql or pgbench; dropped by default). Needs
//! `CHATSTORE_TEST_PGVECTOR_URL` (scripts/services.sh).
//!
//! `cargo bench -p chatstore-benches --bench pgvector`

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatstore_core::vectors::{
    Condition, MAX_DIMENSION, VectorFilter, VectorItem, VectorRepo, as_text, validate_items,
};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use sqlx::{Connection, PgPool};
use tokio::runtime::Runtime;

const DIM: usize = 384;
const K: u32 = 10;
const SHARES: [(&str, f64); 3] = [("kb_1pct", 0.01), ("kb_10pct", 0.10), ("kb_89pct", 0.89)];

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    fn gaussian(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.unit()).cos()
    }
}

fn normalise(v: &[f64]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| (x / n) as f32).collect()
}

/// 100 Gaussian clusters on the unit sphere (pgvector.md's "clustered" data).
struct Clusters(Vec<Vec<f64>>);

impl Clusters {
    fn new(rng: &mut Rng) -> Self {
        Clusters(
            (0..100)
                .map(|_| {
                    let v: Vec<f64> = (0..DIM).map(|_| rng.gaussian()).collect();
                    normalise(&v).into_iter().map(f64::from).collect()
                })
                .collect(),
        )
    }
    fn draw(&self, rng: &mut Rng) -> Vec<f32> {
        let c = &self.0[rng.below(self.0.len())];
        let sd = 1.0 / (DIM as f64).sqrt();
        let v: Vec<f64> = c.iter().map(|x| x + sd * rng.gaussian()).collect();
        normalise(&v)
    }
}

fn words(rng: &mut Rng) -> String {
    let mut s = String::with_capacity(520);
    while s.len() < 500 {
        let len = 3 + rng.below(8);
        for _ in 0..len {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
        s.push(' ');
    }
    s.truncate(500);
    s
}

/// `n` rows: (collection, item), collections by share, random membership.
fn rows(n: usize, seed: u64) -> Vec<(&'static str, VectorItem)> {
    let mut rng = Rng(seed);
    let clusters = Clusters::new(&mut rng);
    (0..n)
        .map(|i| {
            let u = rng.unit();
            let collection = if u < SHARES[0].1 {
                SHARES[0].0
            } else if u < SHARES[0].1 + SHARES[1].1 {
                SHARES[1].0
            } else {
                SHARES[2].0
            };
            let f = rng.below(10);
            let item = VectorItem {
                id: format!("{:016x}-{i:08}", rng.next_u64()),
                text: words(&mut rng),
                vector: clusters.draw(&mut rng),
                metadata: json!({
                    "file_id": format!("{collection}-file-{f}"),
                    "name": format!("doc_{f}.pdf"),
                    "source": format!("doc_{f}.pdf"),
                    "hash": format!("h{}", rng.below(100)),
                    "page": rng.below(2),
                    "created_by": "0b9c6d3e-8f00-4d2e-9d8e-1f2a3b4c5d6e",
                    "start_index": i,
                    "embedding_config": {"engine": "", "model": "sentence-transformers/all-MiniLM-L6-v2"}
                })
                .as_object()
                .cloned()
                .unwrap_or_default(),
            };
            (collection, item)
        })
        .collect()
}

/// Column sizes to run: `CHATSTORE_BENCH_COLUMNS` (e.g. `1536`), default both.
fn columns() -> Vec<usize> {
    std::env::var("CHATSTORE_BENCH_COLUMNS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![384, 1536])
}

/// `m,ef_construction` of the partial HNSW indexes: `CHATSTORE_BENCH_HNSW` (e.g. `16,64`),
/// default the adapter's.
fn hnsw_params(config: PgVectorConfig) -> PgVectorConfig {
    let parsed = std::env::var("CHATSTORE_BENCH_HNSW").ok().and_then(|s| {
        let (m, ef) = s.split_once(',')?;
        Some((m.trim().parse().ok()?, ef.trim().parse().ok()?))
    });
    match parsed {
        Some((m, ef)) => config.hnsw(m, ef),
        None => config,
    }
}

fn scale() -> usize {
    std::env::var("CHATSTORE_BENCH_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10_000)
}

/// A store on a database of its own (`bench_<uuid>`), returned with that database's name.
async fn fresh_store(server: &str, column: usize) -> (PgVectorStore, String) {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let base = server.rsplit_once('/').map(|(b, _)| b).expect("url path");
    // Plans come from the explicit optimize_all after each load, not from background builds.
    let config = hnsw_params(
        PgVectorConfig::new(format!("{base}/{name}"))
            .dimension(column)
            .auto_index(false),
    );
    let store = PgVectorStore::connect(config).await.expect("open store");
    (store, name)
}

/// Closes `store` and drops its database (a 100,000-row database of 1536-d vectors takes
/// about 1.5 GB), unless `CHATSTORE_BENCH_KEEP` is set: then it is kept for looking into with
/// psql or pgbench, and its name printed.
async fn drop_store(server: &str, store: PgVectorStore, name: &str) {
    if std::env::var_os("CHATSTORE_BENCH_KEEP").is_some() {
        eprintln!("kept database {name} (CHATSTORE_BENCH_KEEP)");
        return;
    }
    store.pool().close().await;
    let mut admin = sqlx::PgConnection::connect(server).await.expect("connect");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop database");
}

/// Empties `document_chunk` only: the side table keeps what chatstore knows of each collection
/// (its dimension), as it does between two writes of a deployment.
async fn truncate_rows(pool: &PgPool) {
    sqlx::raw_sql("TRUNCATE document_chunk; CHECKPOINT")
        .execute(pool)
        .await
        .expect("truncate rows");
}

async fn truncate(pool: &PgPool) {
    sqlx::raw_sql("TRUNCATE document_chunk; TRUNCATE chatstore_collection; CHECKPOINT")
        .execute(pool)
        .await
        .expect("truncate");
}

fn padded(v: &[f32], column: usize) -> Vec<f32> {
    let mut p = v.to_vec();
    p.resize(column, 0.0);
    p
}

/// The rows as one binary COPY payload (built before the timer starts).
fn copy_payload(rows: &[(&str, VectorItem)], column: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.len() * (column * 4 + 800));
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for (collection, item) in rows {
        out.extend_from_slice(&5i16.to_be_bytes());
        let field = |out: &mut Vec<u8>, bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        field(&mut out, item.id.as_bytes());
        let mut v = Vec::with_capacity(4 + column * 4);
        v.extend_from_slice(&(column as u16).to_be_bytes());
        v.extend_from_slice(&0u16.to_be_bytes());
        for x in padded(&item.vector, column) {
            v.extend_from_slice(&x.to_be_bytes());
        }
        field(&mut out, &v);
        field(&mut out, collection.as_bytes());
        field(&mut out, item.text.as_bytes());
        let mut j = vec![1u8];
        j.extend_from_slice(
            serde_json::Value::Object(item.metadata.clone())
                .to_string()
                .as_bytes(),
        );
        field(&mut out, &j);
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

async fn copy_rows(pool: &PgPool, payload: &[u8]) {
    let mut conn = pool.acquire().await.expect("conn");
    let mut copy = conn
        .copy_in_raw(
            "COPY document_chunk (id, vector, collection_name, text, vmetadata) FROM STDIN (FORMAT binary)",
        )
        .await
        .expect("copy");
    copy.send(payload).await.expect("send");
    copy.finish().await.expect("finish");
}

const ROW_INSERT: &str = "INSERT INTO document_chunk (id, vector, collection_name, text, vmetadata) \
     VALUES ($1, $2, $3, $4, $5)";
const ROW_SELECT: &str = "SELECT id FROM document_chunk WHERE id = $1";
const ROW_UPDATE: &str = "UPDATE document_chunk SET vector = $2, collection_name = $3, text = $4, \
     vmetadata = $5 WHERE id = $1";

async fn per_row(pool: &PgPool, rows: &[(&str, VectorItem)], column: usize, upsert: bool) {
    let mut tx = pool.begin().await.expect("tx");
    for (collection, item) in rows {
        let exists = upsert
            && sqlx::query(ROW_SELECT)
                .bind(&item.id)
                .fetch_optional(&mut *tx)
                .await
                .expect("select")
                .is_some();
        let sql = if exists { ROW_UPDATE } else { ROW_INSERT };
        sqlx::query(sql)
            .bind(&item.id)
            .bind(pgvector::Vector::from(padded(&item.vector, column)))
            .bind(*collection)
            .bind(&item.text)
            .bind(serde_json::Value::Object(item.metadata.clone()))
            .execute(&mut *tx)
            .await
            .expect("row");
    }
    tx.commit().await.expect("commit");
}

/// The rows as chatstore calls: per collection, 5,000 items per call (cloned before timing,
/// as the COPY ceiling's payload is built before timing).
fn batches(rows: &[(&'static str, VectorItem)]) -> Vec<(&'static str, Vec<VectorItem>)> {
    let mut out = Vec::new();
    for (collection, _) in SHARES {
        let items: Vec<VectorItem> = rows
            .iter()
            .filter(|(c, _)| *c == collection)
            .map(|(_, i)| i.clone())
            .collect();
        for batch in items.chunks(5_000) {
            out.push((collection, batch.to_vec()));
        }
    }
    out
}

async fn chatstore_write(
    store: &PgVectorStore,
    batches: Vec<(&'static str, Vec<VectorItem>)>,
    upsert: bool,
) {
    for (collection, items) in batches {
        if upsert {
            store.upsert(collection, items).await.expect("upsert");
        } else {
            store.insert(collection, items).await.expect("insert");
        }
    }
}

/// The body of criterion's `iter_custom` for a write: each iteration runs `setup` untimed
/// (emptying the table, cloning the batches) and times only `write` on what it prepared.
fn timed_writes<S, SFut, T, W, WFut>(rt: &Runtime, iters: u64, setup: S, mut write: W) -> Duration
where
    S: Fn() -> SFut,
    SFut: std::future::Future<Output = T>,
    W: FnMut(T) -> WFut,
    WFut: std::future::Future<Output = ()>,
{
    rt.block_on(async {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let prepared = setup().await;
            let t = Instant::now();
            write(prepared).await;
            total += t.elapsed();
        }
        total
    })
}

/// Paired rounds of the COPY ceiling and the upsert replacing its rows (odd, for a median).
const PAIRED_ROUNDS: usize = 9;

fn ingest(c: &mut Criterion, rt: &Runtime, server: &str) {
    let n = scale();
    let data = rows(n, 7);
    let mut group = c.benchmark_group("pgvector_ingest");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(n as u64));
    for column in columns() {
        let (owned, database) = rt.block_on(fresh_store(server, column));
        let pool = owned.pool().clone();
        let payload = copy_payload(&data, column);
        let label = |what: &str| BenchmarkId::new(what, format!("{n}x384_in_vector{column}"));
        let (pool, store, data, payload) = (&pool, &owned, &data, &payload);
        let fresh = move || async move { truncate(pool).await };
        // Paired rounds, for a ratio the shared machine's slowly moving load does not skew:
        // the COPY ceiling into the emptied table, then chatstore's upsert replacing every row
        // the COPY just wrote. The collections are chatstore's, as in the criterion cell
        // below (its setup writes the rows through chatstore): their side rows stay between
        // rounds. (A collection chatstore has never written, such as one Open WebUI filled,
        // costs its first write a look at a few of its other rows, once.)
        let mut ratios: Vec<f64> = rt.block_on(async {
            truncate(pool).await;
            chatstore_write(store, batches(data), false).await;
            let mut ratios = Vec::new();
            for _ in 0..PAIRED_ROUNDS {
                truncate_rows(pool).await;
                let t = Instant::now();
                copy_rows(pool, payload).await;
                let ceiling = t.elapsed();
                let calls = batches(data);
                let t = Instant::now();
                chatstore_write(store, calls, true).await;
                ratios.push(ceiling.as_secs_f64() / t.elapsed().as_secs_f64());
            }
            ratios
        });
        let in_order = ratios.clone();
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "[vector{column}] upsert of existing ids / binary COPY ceiling, rows/s, \
             {PAIRED_ROUNDS} paired rounds in order: {in_order:.2?}, median {:.2}",
            ratios[ratios.len() / 2]
        );
        // The input checks every write runs first (twice behind the registry: the validation
        // layer, then the adapter), on the same rows: the share of a write they take.
        let items: Vec<VectorItem> = data.iter().map(|(_, item)| item.clone()).collect();
        group.bench_function(label("validate_items"), |b| {
            b.iter(|| validate_items(&items, None, MAX_DIMENSION).expect("valid"))
        });
        drop(items);
        group.bench_function(label("copy_binary_ceiling"), |b| {
            b.iter_custom(|iters| {
                timed_writes(rt, iters, fresh, |()| async move {
                    copy_rows(pool, payload).await
                })
            })
        });
        group.bench_function(label("chatstore_insert"), |b| {
            b.iter_custom(|iters| {
                let setup = move || async move {
                    truncate(pool).await;
                    batches(data)
                };
                timed_writes(rt, iters, setup, |b| chatstore_write(store, b, false))
            })
        });
        group.bench_function(label("per_row_insert_baseline"), |b| {
            b.iter_custom(|iters| {
                timed_writes(rt, iters, fresh, |()| per_row(pool, data, column, false))
            })
        });
        group.bench_function(label("chatstore_upsert_new"), |b| {
            b.iter_custom(|iters| {
                let setup = move || async move {
                    truncate(pool).await;
                    batches(data)
                };
                timed_writes(rt, iters, setup, |b| chatstore_write(store, b, true))
            })
        });
        group.bench_function(label("per_row_upsert_new_baseline"), |b| {
            b.iter_custom(|iters| {
                timed_writes(rt, iters, fresh, |()| per_row(pool, data, column, true))
            })
        });
        // Upserts that replace rows that exist (every id is already stored). Each iteration
        // starts from the rows written afresh (untimed), as the ceiling starts from an emptied
        // table: iterations run back to back would otherwise replace rows in a table holding
        // every earlier iteration's dead versions (no VACUUM between them), a bloat no
        // deployment under autovacuum keeps.
        group.bench_function(label("chatstore_upsert_existing"), |b| {
            b.iter_custom(|iters| {
                let setup = move || async move {
                    truncate(pool).await;
                    chatstore_write(store, batches(data), false).await;
                    // The insert's own work settles first (the ceiling's setup leaves nothing
                    // running). Its batches wait, set aside, to be freed in the tail of the next
                    // COPY: the timed upsert's first, as a deployment's next write does.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    batches(data)
                };
                timed_writes(rt, iters, setup, |b| chatstore_write(store, b, true))
            })
        });
        group.bench_function(label("per_row_upsert_existing_baseline"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let t = Instant::now();
                    for _ in 0..iters {
                        per_row(pool, data, column, true).await;
                    }
                    t.elapsed()
                })
            })
        });
        rt.block_on(drop_store(server, owned, &database));
    }
    group.finish();
}

/// The search cells of a collection: unfiltered, and filters keeping 1 % (`hash`, indexed),
/// 3 % (`hash` in three values), 6 % (`hash` in six: near where the plans meet), 10 %
/// (`file_id`, indexed), 50 % (`file_id` in five values; `page`, no index) and 100 % (`name`
/// in all ten values; `created_by`, no index).
fn filters(collection: &str) -> Vec<(&'static str, Option<VectorFilter>)> {
    let files = |n: usize| -> Vec<serde_json::Value> {
        (0..n)
            .map(|f| json!(format!("{collection}-file-{f}")))
            .collect()
    };
    vec![
        ("no_filter", None),
        ("hash_1pct", Some(VectorFilter::eq("hash", "h7"))),
        (
            "hash_in_3pct",
            Some(
                VectorFilter::default().and_in("hash", vec![json!("h1"), json!("h2"), json!("h3")]),
            ),
        ),
        (
            "hash_in_6pct",
            Some(
                VectorFilter::default()
                    .and_in("hash", (1..=6).map(|h| json!(format!("h{h}"))).collect()),
            ),
        ),
        (
            "file_id_10pct",
            Some(VectorFilter::eq("file_id", format!("{collection}-file-0"))),
        ),
        (
            "file_id_in_50pct",
            Some(VectorFilter::default().and_in("file_id", files(5))),
        ),
        (
            "name_in_100pct",
            Some(VectorFilter::default().and_in(
                "name",
                (0..10).map(|f| json!(format!("doc_{f}.pdf"))).collect(),
            )),
        ),
        ("page_50pct_no_index", Some(VectorFilter::eq("page", 1))),
        (
            "created_by_100pct_no_index",
            Some(VectorFilter::eq(
                "created_by",
                "0b9c6d3e-8f00-4d2e-9d8e-1f2a3b4c5d6e",
            )),
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn search(c: &mut Criterion, rt: &Runtime, server: &str) {
    let n = scale();
    let data = rows(n, 11);
    let mut qrng = Rng(99);
    let clusters = {
        let mut rng = Rng(11);
        Clusters::new(&mut rng)
    };
    let queries: Vec<Vec<f32>> = (0..50).map(|_| clusters.draw(&mut qrng)).collect();
    let warm_up: Vec<Vec<f32>> = (0..3).map(|_| clusters.draw(&mut qrng)).collect();
    let mut group = c.benchmark_group("pgvector_search");
    group.sample_size(20);
    for column in columns() {
        let (store, database) = rt.block_on(fresh_store(server, column));
        let pool = store.pool().clone();
        let (plans, optimized_in) = rt.block_on(async {
            chatstore_write(&store, batches(&data), false).await;
            let t = Instant::now();
            let plans = store.optimize_all().await.expect("optimize");
            (plans, t.elapsed())
        });
        eprintln!(
            "[vector{column}] {n} rows, optimize_all {optimized_in:.1?} (index builds + calibration), plans: {plans:?}"
        );
        // The filter threshold calibration measured (the rows an exact scan reads in the time
        // of the walk's unit, about one unfiltered search).
        let thresholds: Vec<(String, Option<i64>)> = rt.block_on(async {
            sqlx::query_as("SELECT name, exact_filter_rows FROM chatstore_collection ORDER BY name")
                .fetch_all(&pool)
                .await
                .expect("read the filter thresholds")
        });
        eprintln!("[vector{column}] exact_filter_rows: {thresholds:?}");
        for (collection, _) in SHARES {
            let cells = filters(collection);
            for (what, f) in cells.iter().map(|(w, f)| (*w, f.as_ref())) {
                // Recall and latency percentiles over the 50 queries, then criterion's run.
                let (recall, p50, p95, exact_p50, unfiltered_p50) = rt.block_on(async {
                    // chatstore's searches first (3 warm-up queries, then the 50 timed), then
                    // the exact scans: interleaving them would let every 89k-row scan evict
                    // the index pages from shared_buffers (128 MB) between two searches.
                    for q in &warm_up {
                        store
                            .search(collection, std::slice::from_ref(q), f, K)
                            .await
                            .expect("search");
                    }
                    // Each filtered search right after the unfiltered search of the same
                    // query, so the ratio of the two compares neighbours in time (the load on
                    // a shared machine moves).
                    let mut lat = Vec::new();
                    let mut unfiltered_lat = Vec::new();
                    let mut found = Vec::new();
                    for q in &queries {
                        if f.is_some() {
                            let t = Instant::now();
                            store
                                .search(collection, std::slice::from_ref(q), None, K)
                                .await
                                .expect("search");
                            unfiltered_lat.push(t.elapsed());
                        }
                        let t = Instant::now();
                        let hits = store
                            .search(collection, std::slice::from_ref(q), f, K)
                            .await
                            .expect("search");
                        lat.push(t.elapsed());
                        found.push(hits);
                    }
                    if f.is_none() {
                        unfiltered_lat = lat.clone();
                    }
                    let mut exact_lat = Vec::new();
                    let mut recall = 0.0;
                    for (q, hits) in queries.iter().zip(&found) {
                        let t = Instant::now();
                        let mut exact = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                            "SELECT id FROM (SELECT id, vector <=> ",
                        );
                        exact.push_bind(pgvector::Vector::from(padded(q, column)));
                        exact.push(" AS d FROM document_chunk WHERE collection_name = ");
                        exact.push_bind(collection);
                        for (key, condition) in f.iter().flat_map(|f| &f.conditions) {
                            // The key bound, so no filter index serves it: the reference
                            // reads the collection.
                            let values: Vec<String> = match condition {
                                Condition::Eq(v) => vec![as_text(v)],
                                Condition::In(vs) => vs.iter().map(as_text).collect(),
                            };
                            exact.push(" AND (vmetadata ->> ");
                            exact.push_bind(key.clone());
                            exact.push(") = ANY(");
                            exact.push_bind(values);
                            exact.push(")");
                        }
                        exact.push(" OFFSET 0) s ORDER BY d, id COLLATE \"C\" LIMIT 10");
                        let exact: Vec<String> = exact
                            .build_query_scalar()
                            .persistent(false)
                            .fetch_all(&pool)
                            .await
                            .expect("exact");
                        exact_lat.push(t.elapsed());
                        let want: HashSet<&str> = exact.iter().map(String::as_str).collect();
                        let got = hits[0]
                            .iter()
                            .filter(|h| want.contains(h.id.as_str()))
                            .count();
                        // A filter no row matches: an empty answer is the whole truth.
                        recall += if want.is_empty() {
                            if hits[0].is_empty() { 1.0 } else { 0.0 }
                        } else {
                            got as f64 / want.len() as f64
                        };
                    }
                    lat.sort();
                    unfiltered_lat.sort();
                    exact_lat.sort();
                    (
                        recall / queries.len() as f64,
                        percentile(&lat, 0.5),
                        percentile(&lat, 0.95),
                        percentile(&exact_lat, 0.5),
                        percentile(&unfiltered_lat, 0.5),
                    )
                });
                let plan = rt.block_on(store.plan_for(collection, f, K)).expect("plan");
                eprintln!(
                    "[vector{column}] {collection} {what}: recall@10 {recall:.3} p50 {p50:.2?} p95 {p95:.2?} \
                     ({:.2}x the unfiltered p50 {unfiltered_p50:.2?}, interleaved; exact scan p50 \
                     {exact_p50:.2?}) plan {plan:?}",
                    p50.as_secs_f64() / unfiltered_p50.as_secs_f64().max(1e-9)
                );
                let id = BenchmarkId::new(
                    format!("{collection}_{what}"),
                    format!("{n}x384_in_vector{column}"),
                );
                let mut i = 0usize;
                group.bench_function(id, |b| {
                    b.iter(|| {
                        i = (i + 1) % queries.len();
                        rt.block_on(store.search(
                            collection,
                            std::slice::from_ref(&queries[i]),
                            f,
                            K,
                        ))
                        .expect("search")
                    })
                });
            }
        }
        rt.block_on(drop_store(server, store, &database));
    }
    group.finish();
}

/// Rows a scan page holds (the migration engine's and the verifier's pages are of this order).
const SCAN_PAGE: u32 = 500;

/// Export reads (`scan`, as the migration engine and the verifier walk a collection): each
/// collection of the table written by chatstore and analyzed, no vector index built.
fn scan(c: &mut Criterion, rt: &Runtime, server: &str) {
    let n = scale();
    let data = rows(n, 11);
    let mut group = c.benchmark_group("pgvector_scan");
    group.sample_size(20);
    for column in columns() {
        let (store, database) = rt.block_on(fresh_store(server, column));
        rt.block_on(async {
            chatstore_write(&store, batches(&data), false).await;
            // Statistics as autovacuum would leave them.
            sqlx::raw_sql("ANALYZE document_chunk")
                .execute(store.pool())
                .await
                .expect("analyze");
        });
        for (collection, _) in SHARES {
            scan_cells(&mut group, rt, &store, collection, n, column);
        }
        rt.block_on(drop_store(server, store, &database));
    }
    group.finish();
}

/// Export reads of `collection`: the time to walk it whole in pages of [`SCAN_PAGE`] (printed
/// once), and criterion's cell for one page from its middle. A page that cost the whole
/// collection would make the walk grow with the square of its size.
fn scan_cells(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    store: &PgVectorStore,
    collection: &str,
    n: usize,
    column: usize,
) {
    let (walked, pages, took, middle) = rt.block_on(async {
        let t = Instant::now();
        let mut after: Option<String> = None;
        let mut firsts = Vec::new();
        let mut walked = 0usize;
        loop {
            let page = store
                .scan(collection, after.as_deref(), SCAN_PAGE)
                .await
                .expect("scan");
            walked += page.len();
            firsts.push(after.clone());
            match page.last() {
                Some(last) if page.len() == SCAN_PAGE as usize => after = Some(last.id.clone()),
                _ => break,
            }
        }
        let pages = firsts.len();
        (walked, pages, t.elapsed(), firsts.swap_remove(pages / 2))
    });
    eprintln!(
        "[vector{column}] {collection} scan: {walked} rows in {pages} pages of {SCAN_PAGE} in {took:.2?}"
    );
    let id = BenchmarkId::new(
        format!("{collection}_scan_page_{SCAN_PAGE}"),
        format!("{n}x384_in_vector{column}"),
    );
    group.bench_function(id, |b| {
        b.iter(|| {
            rt.block_on(store.scan(collection, middle.as_deref(), SCAN_PAGE))
                .expect("scan")
        })
    });
}

fn benches(c: &mut Criterion) {
    let Ok(server) = std::env::var("CHATSTORE_TEST_PGVECTOR_URL") else {
        eprintln!(
            "SKIPPED: set CHATSTORE_TEST_PGVECTOR_URL (eval \"$(scripts/services.sh start)\")"
        );
        return;
    };
    let rt = Runtime::new().expect("runtime");
    let only = std::env::var("CHATSTORE_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "ingest" {
        ingest(c, &rt, &server);
    }
    if only.is_empty() || only == "search" {
        search(c, &rt, &server);
    }
    if only.is_empty() || only == "scan" {
        scan(c, &rt, &server);
    }
}

criterion_group!(pgvector_benches, benches);
criterion_main!(pgvector_benches);
