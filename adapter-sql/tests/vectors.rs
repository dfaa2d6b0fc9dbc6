//! SQLite vectors give exactly the memory backend's answers, at Open WebUI's common dimensions
//! and up to 4096, with filters selecting a small share of a large collection.

mod support;

use chatstore_core::{ErrorKind, Store, VectorFilter, VectorItem, memory};
use serde_json::{Map, json};

/// Deterministic pseudo-random numbers in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next()).collect()
    }
}

fn items(rng: &mut Lcg, prefix: &str, n: usize, dim: usize) -> Vec<VectorItem> {
    (0..n)
        .map(|i| {
            let mut metadata = Map::new();
            metadata.insert("file_id".into(), json!(format!("f{}", i % 50)));
            metadata.insert("page".into(), json!(i % 7));
            VectorItem {
                id: format!("{prefix}-{i:05}"),
                text: format!("chunk {i}"),
                vector: rng.vector(dim),
                metadata,
            }
        })
        .collect()
}

async fn load(store: &Store, collection: &str, items: &[VectorItem]) {
    for chunk in items.chunks(500) {
        store
            .vectors
            .insert(collection, chunk.to_vec())
            .await
            .expect("insert");
    }
}

#[tokio::test]
async fn search_equals_the_memory_backend_up_to_4096_dimensions() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let reference = memory::store();
    let mut rng = Lcg(7);
    for (collection, dim, n) in [("small", 3, 200), ("ada", 1536, 600), ("big", 4096, 300)] {
        let items = items(&mut rng, collection, n, dim);
        load(&store, collection, &items).await;
        load(&reference, collection, &items).await;
        let queries: Vec<Vec<f32>> = (0..3).map(|_| rng.vector(dim)).collect();
        let filters = [
            None,
            Some(VectorFilter::eq("file_id", "f7")),
            Some(VectorFilter::eq("page", 3).and_in("file_id", vec![json!("f1"), json!("f2")])),
            Some(VectorFilter::eq("page", "3")),
        ];
        for filter in &filters {
            let got = store
                .vectors
                .search(collection, &queries, filter.as_ref(), 10)
                .await
                .expect("search");
            let want = reference
                .vectors
                .search(collection, &queries, filter.as_ref(), 10)
                .await
                .expect("search");
            assert_eq!(got, want, "{collection} with {filter:?}");
        }
    }
    assert_eq!(
        store.vectors.collections().await.expect("collections"),
        ["ada", "big", "small"]
    );
    db.finish().await;
}

#[tokio::test]
async fn a_filter_selecting_a_tiny_share_still_finds_its_true_neighbours() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let reference = memory::store();
    let mut rng = Lcg(11);
    let mut all = items(&mut rng, "item", 3000, 64);
    all[1234].metadata.insert("file_id".into(), json!("needle"));
    all[2999].metadata.insert("file_id".into(), json!("needle"));
    load(&store, "kb", &all).await;
    load(&reference, "kb", &all).await;
    let query = [rng.vector(64)];
    let filter = VectorFilter::eq("file_id", "needle");
    let got = store
        .vectors
        .search("kb", &query, Some(&filter), 5)
        .await
        .expect("search");
    let mut found: Vec<&str> = got[0].iter().map(|h| h.id.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, ["item-01234", "item-02999"]);
    assert_eq!(
        got,
        reference
            .vectors
            .search("kb", &query, Some(&filter), 5)
            .await
            .expect("search")
    );
    db.finish().await;
}

/// A call's items go in statements of several rows (64 at most, then powers of two): a taken
/// id in a later statement refuses the whole call by that id, and upserts of any size replace
/// what they name and nothing else.
#[tokio::test]
async fn writes_of_many_statements_are_all_or_nothing() {
    let db = support::sqlite_empty().await;
    let store = db.store().await;
    let mut rng = Lcg(5);
    let other = items(&mut rng, "other", 3, 8);
    load(&store, "other", &other).await;
    // 150 rows: statements of 64, 64, 16, 4 and 2; row 140 falls in the 16-row one.
    let mut batch = items(&mut rng, "kb", 150, 8);
    batch[140].id = other[1].id.clone();
    let err = store
        .vectors
        .insert("kb", batch.clone())
        .await
        .expect_err("a taken id");
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains(&other[1].id), "{err}");
    assert!(store.vectors.get("kb").await.expect("get").is_empty());
    assert_eq!(store.vectors.get("other").await.expect("get"), other);

    // Upsert 150 rows, 10 of them replacing rows already there (and one moving `other`'s).
    batch[140].id = "kb-00140".into();
    load(&store, "kb", &batch[..10]).await;
    let mut again = items(&mut rng, "kb", 150, 8);
    again[149].id = other[2].id.clone();
    store
        .vectors
        .upsert("kb", again.clone())
        .await
        .expect("upsert");
    let mut got = store.vectors.get("kb").await.expect("get");
    got.sort_by(|a, b| a.id.cmp(&b.id));
    again.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, again);
    assert_eq!(store.vectors.get("other").await.expect("get"), other[..2]);
    db.finish().await;
}
