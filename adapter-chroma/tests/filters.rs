//! Filters on the test server (`CHATSTORE_TEST_CHROMA_URL`): keys Chroma cannot store match
//! nothing, and a filter matching more records than one of Chroma's SQLite statements can
//! bind (32,766) is answered whole.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{VectorFilter, VectorItem, VectorRepo};
use serde_json::json;

async fn fresh() -> Option<ChromaStore> {
    let url = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL")?;
    let config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    Some(
        ChromaStore::connect(config)
            .await
            .expect("open the Chroma store"),
    )
}

fn item(i: usize, file_id: &str) -> VectorItem {
    VectorItem {
        id: format!("chunk-{i:06}"),
        text: String::new(),
        vector: vec![1.0, (i % 97) as f32 + 0.5],
        metadata: json!({"file_id": file_id, "page": i % 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// A filter on a key Chroma keeps for itself (`$...`, `#...`), which no record can hold,
/// matches nothing: query and search find nothing, delete deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_on_a_key_chroma_cannot_store_matches_nothing() {
    let Some(store) = fresh().await else {
        return;
    };
    let items: Vec<VectorItem> = (0..4).map(|i| item(i, "f1")).collect();
    store.insert("file-f1", items).await.expect("insert");
    for key in ["$x", "$and", "#document", "#x"] {
        for filter in [
            VectorFilter::eq(key, 1),
            VectorFilter::eq("file_id", "f1").and_eq(key, "y"),
            VectorFilter::default().and_in(key, vec![json!("a"), json!(2)]),
        ] {
            let found = store
                .query("file-f1", &filter, None)
                .await
                .unwrap_or_else(|e| panic!("query {filter:?}: {e}"));
            assert!(found.is_empty(), "{filter:?}");
            let hits = store
                .search("file-f1", &[vec![1.0, 1.0]], Some(&filter), 5)
                .await
                .unwrap_or_else(|e| panic!("search {filter:?}: {e}"));
            assert_eq!(hits, vec![Vec::new()], "{filter:?}");
            let deleted = store
                .delete("file-f1", None, Some(&filter))
                .await
                .unwrap_or_else(|e| panic!("delete {filter:?}: {e}"));
            assert_eq!(deleted, 0, "{filter:?}");
        }
    }
    assert_eq!(store.get("file-f1").await.expect("read").len(), 4);
}

/// More matching records than Chroma 1.5.9 binds in one SQLite statement: query, search and
/// delete by that filter see every one of them (they failed with Chroma's 500 "too many SQL
/// variables").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_matching_more_records_than_one_sqlite_statement_binds_is_answered() {
    const MATCHING: usize = 33_000;
    let Some(store) = fresh().await else {
        return;
    };
    let started = std::time::Instant::now();
    let mut items: Vec<VectorItem> = (0..MATCHING).map(|i| item(i, "big")).collect();
    items.extend((MATCHING..MATCHING + 10).map(|i| item(i, "small")));
    store.insert("file-big", items).await.expect("insert");
    eprintln!("written in {:?}", started.elapsed());

    let big = VectorFilter::eq("file_id", "big");
    let found = store.query("file-big", &big, None).await.expect("query");
    assert_eq!(found.len(), MATCHING);
    assert!(found.iter().all(|i| i.metadata["file_id"] == "big"));
    let first = store.query("file-big", &big, Some(3)).await.expect("query");
    let ids: Vec<&str> = first.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["chunk-000000", "chunk-000001", "chunk-000002"]);

    let page = big.clone().and_eq("page", 1);
    let hits = store
        .search("file-big", &[vec![1.0, 0.5]], Some(&page), 5)
        .await
        .expect("search");
    assert_eq!(hits[0].len(), 5);
    assert!(hits[0].iter().all(|h| h.metadata["page"] == 1));

    let deleted = store
        .delete("file-big", None, Some(&big))
        .await
        .expect("delete by filter");
    assert_eq!(deleted, MATCHING as u64);
    assert_eq!(store.get("file-big").await.expect("read").len(), 10);
    // The test server is shared: its largest collection does not outlive the test.
    store.reset().await.expect("reset");
    eprintln!("done in {:?}", started.elapsed());
}
