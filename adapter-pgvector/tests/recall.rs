//! Recall: filtered search keeps its neighbours whatever the collection's share of the table,
//! whatever the filter's key and share of the collection.
//!
//! 20,000 vectors of 384 dimensions in one `document_chunk` table (`CHATSTORE_RECALL_ROWS`
//! for more), in collections holding 1 %, 10 % and 89 % of the rows (random membership, the
//! worst case for post-filtering), with Open WebUI's global HNSW index present and
//! `optimize_all` run after the bulk load. 50 fresh query vectors per collection, unfiltered
//! and filtered on each metadata key Open WebUI filters by (`hash` 1 %, `file_id` 10 %,
//! `source` 50 %, `name` 100 % of the collection; an `$in` of two, three and five hashes: 2, 3
//! and 5 %, where the plan switches from an exact scan to the index walk) and on a key
//! without an index (`page`, 25 %): recall@10 against exact search must be at least 0.99 in
//! every cell, on clustered data (100 Gaussian clusters) and on uniform random vectors (where
//! any ANN index fails and exactness must still hold).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatstore_core::vectors::{VectorFilter, VectorItem, VectorRepo, cosine_distance};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use common::{Rng, fresh_database, normalise};
use serde_json::json;

const DIM: usize = 384;
/// Rows in the table: `CHATSTORE_RECALL_ROWS` (default 20,000; the shares stay 1/10/89 %).
fn rows() -> usize {
    std::env::var("CHATSTORE_RECALL_ROWS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(20_000)
}
const QUERIES: usize = 50;
const K: u32 = 10;
/// Collections and their share of the table, in 1/1000.
const COLLECTIONS: [(&str, usize); 3] = [("kb_1pct", 10), ("kb_10pct", 100), ("kb_89pct", 890)];

/// The filters of every cell: a label and the filter (values drawn in `metadata`).
fn filters() -> Vec<(&'static str, Option<VectorFilter>)> {
    vec![
        ("no filter", None),
        ("hash 1%", Some(VectorFilter::eq("hash", "h-7"))),
        ("hash $in 2%", Some(hashes(2))),
        ("hash $in 3%", Some(hashes(3))),
        ("hash $in 5%", Some(hashes(5))),
        ("file_id 10%", Some(VectorFilter::eq("file_id", "f-0"))),
        ("page 25% (no index)", Some(VectorFilter::eq("page", 2))),
        ("source 50%", Some(VectorFilter::eq("source", "s-1"))),
        ("name 100%", Some(VectorFilter::eq("name", "doc.pdf"))),
    ]
}

/// `hash` in `n` of its 100 values: about `n` % of a collection (around the share where
/// filtered searches switch from the exact scan to the index walk).
fn hashes(n: usize) -> VectorFilter {
    VectorFilter::default().and_in("hash", (1..=n).map(|i| json!(format!("h-{i}"))).collect())
}

/// The metadata of row `row`: keys Open WebUI filters by, and one it does not.
fn metadata(rng: &mut Rng, row: usize) -> serde_json::Map<String, serde_json::Value> {
    json!({
        "file_id": format!("f-{}", rng.below(10)),
        "hash": format!("h-{}", rng.below(100)),
        "source": format!("s-{}", rng.below(2)),
        "name": "doc.pdf",
        "page": rng.below(4),
        "start_index": row,
    })
    .as_object()
    .cloned()
    .expect("object")
}

enum Data {
    Clustered { centres: Vec<Vec<f64>> },
    Uniform,
}

impl Data {
    fn clustered(rng: &mut Rng) -> Self {
        let centres = (0..100)
            .map(|_| {
                rng.unit_vector(DIM)
                    .into_iter()
                    .map(f64::from)
                    .collect::<Vec<f64>>()
            })
            .collect();
        Data::Clustered { centres }
    }

    /// One draw: a cluster centre plus isotropic noise of norm about 1, normalised; or a
    /// uniform unit vector.
    fn draw(&self, rng: &mut Rng) -> Vec<f32> {
        match self {
            Data::Clustered { centres } => {
                let c = &centres[rng.below(centres.len())];
                let sd = 1.0 / (DIM as f64).sqrt();
                let v: Vec<f64> = c.iter().map(|x| x + sd * rng.gaussian()).collect();
                normalise(&v)
            }
            Data::Uniform => rng.unit_vector(DIM),
        }
    }
}

async fn check_recall(label: &str, data: Data, rng: &mut Rng) {
    let Some(url) = fresh_database("template1").await else {
        return;
    };
    // The plans come from the explicit optimize_all below, not from a background build.
    let config = PgVectorConfig::new(url)
        .dimension(DIM)
        .pool_size(4)
        .auto_index(false);
    let store = PgVectorStore::connect(config).await.expect("open store");

    // Random membership: shuffle the collection labels over the rows.
    let total = rows();
    let mut labels: Vec<usize> = COLLECTIONS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, per_mille))| std::iter::repeat_n(i, total * per_mille / 1000))
        .collect();
    for i in (1..labels.len()).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    let mut items: Vec<Vec<VectorItem>> = vec![Vec::new(); COLLECTIONS.len()];
    for (row, &c) in labels.iter().enumerate() {
        items[c].push(VectorItem {
            id: format!("{}-{row:06}", COLLECTIONS[c].0),
            text: format!("chunk {row}"),
            vector: data.draw(rng),
            metadata: metadata(rng, row),
        });
    }
    let started = Instant::now();
    for (c, (name, _)) in COLLECTIONS.iter().enumerate() {
        for batch in items[c].chunks(2_000) {
            store.insert(name, batch.to_vec()).await.expect("insert");
        }
    }
    let ingest = started.elapsed();
    let started = Instant::now();
    store
        .create_global_index()
        .await
        .expect("global HNSW index");
    let global = started.elapsed();
    let started = Instant::now();
    let plans = store.optimize_all().await.expect("optimize");
    eprintln!(
        "[{label}] ingest {ingest:.2?} ({:.0} rows/s), global HNSW {global:.2?}, optimize {:.2?}: {plans:?}",
        labels.len() as f64 / ingest.as_secs_f64(),
        started.elapsed()
    );

    let mut failures = Vec::new();
    for (c, (name, _)) in COLLECTIONS.iter().enumerate() {
        let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| data.draw(rng)).collect();
        // Every row's distance to each query, once; each cell's truth is a filter over it.
        let ranked: Vec<Vec<(f64, &VectorItem)>> = queries
            .iter()
            .map(|q| {
                let mut all: Vec<(f64, &VectorItem)> = items[c]
                    .iter()
                    .map(|item| (cosine_distance(&item.vector, q), item))
                    .collect();
                all.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
                all
            })
            .collect();
        let mut unfiltered_p50 = Duration::ZERO;
        for (which, f) in filters() {
            let f = f.as_ref();
            let mut latencies: Vec<Duration> = Vec::with_capacity(QUERIES);
            let mut hits = Vec::with_capacity(QUERIES);
            for q in &queries {
                let t = Instant::now();
                let mut found = store
                    .search(name, std::slice::from_ref(q), f, K)
                    .await
                    .expect("search");
                latencies.push(t.elapsed());
                hits.push(found.remove(0));
            }
            // Many query vectors in one call give the same answers.
            let batched = store.search(name, &queries, f, K).await.expect("batch");
            let mut recall_sum = 0.0;
            let mut worst: f64 = 1.0;
            for ((all, got), batch) in ranked.iter().zip(&hits).zip(&batched) {
                let want: HashSet<&str> = all
                    .iter()
                    .filter(|(_, item)| f.is_none_or(|f| f.matches(&item.metadata)))
                    .take(K as usize)
                    .map(|(_, item)| item.id.as_str())
                    .collect();
                let n = got.iter().filter(|h| want.contains(h.id.as_str())).count();
                let recall = if want.is_empty() {
                    if got.is_empty() { 1.0 } else { 0.0 }
                } else {
                    n as f64 / want.len() as f64
                };
                recall_sum += recall;
                worst = worst.min(recall);
                let got_ids: Vec<&str> = got.iter().map(|h| h.id.as_str()).collect();
                let batch_ids: Vec<&str> = batch.iter().map(|h| h.id.as_str()).collect();
                assert_eq!(got_ids, batch_ids, "batched search differs");
            }
            let recall = recall_sum / QUERIES as f64;
            latencies.sort();
            let p50 = latencies[QUERIES / 2];
            let p95 = latencies[QUERIES * 95 / 100];
            if f.is_none() {
                unfiltered_p50 = p50;
            }
            let plan = store.plan_for(name, f, K).await.expect("plan");
            eprintln!(
                "[{label}] {name} {which}: recall@10 {recall:.3} (worst {worst:.1}) p50 {p50:.2?} ({:.2}x unfiltered) p95 {p95:.2?} plan {plan:?}",
                p50.as_secs_f64() / unfiltered_p50.as_secs_f64().max(1e-9)
            );
            if recall < 0.99 {
                failures.push(format!("{name} {which}: {recall:.3}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "[{label}] recall below 0.99: {failures:?}"
    );
}

/// Clustered data (100 Gaussian clusters): recall@10 ≥ 0.99 in every collection share.
#[tokio::test]
async fn clustered_data_keeps_recall_in_every_collection_share() {
    let mut rng = Rng::new(2);
    let data = Data::clustered(&mut rng);
    check_recall("clustered", data, &mut rng).await;
}

/// Uniform random vectors (no ANN index can do well): exactness still holds.
#[tokio::test]
async fn uniform_data_keeps_recall_in_every_collection_share() {
    let mut rng = Rng::new(1);
    check_recall("uniform", Data::Uniform, &mut rng).await;
}
