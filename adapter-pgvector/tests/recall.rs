//! Recall: filtered search keeps its neighbours whatever the collection's share of the table.
//!
//! 20,000 vectors of 384 dimensions in one `document_chunk` table, in collections holding 1 %,
//! 10 % and 89 % of the rows (random membership, the worst case for post-filtering), with Open
//! WebUI's global HNSW index present and `optimize_all` run after the bulk load. 50 fresh query
//! vectors per collection, with and without a metadata filter (`file_id`, 10 % of each
//! collection): recall@10 against exact search must be at least 0.99 in every cell, on
//! clustered data (100 Gaussian clusters) and on uniform random vectors (where any ANN index
//! fails and exactness must still hold).

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chatstore_core::vectors::{VectorFilter, VectorItem, VectorRepo, exact_search};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use common::{Rng, fresh_database, normalise};
use serde_json::json;

const DIM: usize = 384;
const ROWS: usize = 20_000;
const QUERIES: usize = 50;
const K: u32 = 10;
const COLLECTIONS: [(&str, usize); 3] =
    [("kb_1pct", 200), ("kb_10pct", 2_000), ("kb_89pct", 17_800)];

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
    let store = PgVectorStore::connect(PgVectorConfig::new(url).dimension(DIM).pool_size(4))
        .await
        .expect("open store");

    // Random membership: shuffle the collection labels over the rows.
    let mut labels: Vec<usize> = COLLECTIONS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, n))| std::iter::repeat_n(i, *n))
        .collect();
    assert_eq!(labels.len(), ROWS);
    for i in (1..labels.len()).rev() {
        labels.swap(i, rng.below(i + 1));
    }
    let mut items: Vec<Vec<VectorItem>> = vec![Vec::new(); COLLECTIONS.len()];
    for (row, &c) in labels.iter().enumerate() {
        let file = rng.below(10);
        items[c].push(VectorItem {
            id: format!("{}-{row:05}", COLLECTIONS[c].0),
            text: format!("chunk {row}"),
            vector: data.draw(rng),
            metadata: json!({"file_id": format!("f-{file}"), "start_index": row})
                .as_object()
                .cloned()
                .expect("object"),
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
        ROWS as f64 / ingest.as_secs_f64(),
        started.elapsed()
    );

    let filter = VectorFilter::eq("file_id", "f-0");
    let mut failures = Vec::new();
    for (c, (name, _)) in COLLECTIONS.iter().enumerate() {
        let refs: Vec<&VectorItem> = items[c].iter().collect();
        let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| data.draw(rng)).collect();
        for f in [None, Some(&filter)] {
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
            for ((q, got), batch) in queries.iter().zip(&hits).zip(&batched) {
                let truth = exact_search(&refs, q, f, K);
                let want: HashSet<&str> = truth.iter().map(|h| h.id.as_str()).collect();
                let n = got.iter().filter(|h| want.contains(h.id.as_str())).count();
                let recall = n as f64 / want.len().max(1) as f64;
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
            let plan = store.plan(name).await.expect("plan");
            let which = if f.is_some() { "filter" } else { "no filter" };
            eprintln!(
                "[{label}] {name} {which}: recall@10 {recall:.3} (worst {worst:.1}) p50 {p50:.2?} p95 {p95:.2?} plan {plan:?}"
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
