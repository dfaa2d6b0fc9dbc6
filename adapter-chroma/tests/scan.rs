//! `VectorRepo::scan` on the test server (`CHATSTORE_TEST_CHROMA_URL`): pages by id never skip
//! or repeat a record, even while another writer deletes and adds records of the collection.

use std::collections::HashSet;
use std::time::Duration;

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{VectorItem, VectorRepo};
use serde_json::json;

async fn fresh(ttl: Duration) -> Option<ChromaStore> {
    let Ok(url) = std::env::var("CHATSTORE_TEST_CHROMA_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "CHATSTORE_TEST_CHROMA_URL is not set but CI=true: start scripts/services.sh"
        );
        eprintln!("SKIPPED: CHATSTORE_TEST_CHROMA_URL is not set");
        return None;
    };
    let mut config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    config.scan_snapshot_ttl = ttl;
    Some(
        ChromaStore::connect(config)
            .await
            .expect("open the Chroma store"),
    )
}

fn item(id: String, i: u64) -> VectorItem {
    let vector: Vec<f32> = (0..8u64)
        .map(|d| ((i * 31 + d * 7) % 17) as f32 + 1.0)
        .collect();
    VectorItem {
        text: format!("text of {id}"),
        metadata: json!({"file_id": format!("f{}", i % 5), "n": i})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        id,
        vector,
    }
}

/// Ids that sort all over the range: a hash-like spread of the number.
fn id_of(prefix: &str, i: u64) -> String {
    format!(
        "{:04x}-{prefix}-{i}",
        (i.wrapping_mul(2_654_435_761)) % 0xffff
    )
}

async fn walk_while_written(ttl: Duration) {
    let Some(store) = fresh(ttl).await else {
        return;
    };
    let stable: Vec<VectorItem> = (0..1_500).map(|i| item(id_of("s", i), i)).collect();
    let churn: Vec<VectorItem> = (0..300).map(|i| item(id_of("c", i), i)).collect();
    store
        .insert("kb-scan", stable.iter().chain(&churn).cloned().collect())
        .await
        .expect("load the collection");

    // A second handle writes while the first one walks: deletes the churn records one batch at
    // a time and adds new ones spread over the whole id range.
    let writer = store.clone();
    let batches_done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let done = batches_done.clone();
    let churn_ids: Vec<String> = churn.iter().map(|i| i.id.clone()).collect();
    let writing = tokio::spawn(async move {
        for (n, batch) in churn_ids.chunks(20).enumerate() {
            writer
                .delete("kb-scan", Some(batch), None)
                .await
                .expect("delete a batch");
            let added: Vec<VectorItem> = (0..20)
                .map(|i| item(id_of("n", n as u64 * 100 + i), 5_000 + i))
                .collect();
            writer.insert("kb-scan", added).await.expect("add a batch");
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let at_start = batches_done.load(std::sync::atomic::Ordering::SeqCst);
    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .scan("kb-scan", after.as_deref(), 50)
            .await
            .expect("scan a page");
        for item in &page {
            if let Some(last) = seen.last() {
                assert!(item.id > *last, "{} after {last}: ids go up", item.id);
            }
            seen.push(item.id.clone());
        }
        if page.len() < 50 {
            break;
        }
        after = page.last().map(|i| i.id.clone());
        // The walk must overlap the writes: after the first page, wait for the writer to
        // finish a batch (a fast machine could otherwise read everything first).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while batches_done.load(std::sync::atomic::Ordering::SeqCst) == at_start
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let at_end = batches_done.load(std::sync::atomic::Ordering::SeqCst);
    writing.await.expect("the writer finished");
    assert!(
        at_end > at_start,
        "the collection was written while it was read"
    );

    let seen_set: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen_set.len(), seen.len(), "no record is returned twice");
    for s in &stable {
        assert!(
            seen_set.contains(&s.id),
            "stable record {} was skipped",
            s.id
        );
    }
    // Items come back whole.
    let first = store
        .scan("kb-scan", None, 1)
        .await
        .expect("scan one")
        .pop()
        .expect("one item");
    let want = stable
        .iter()
        .chain(&churn)
        .find(|i| i.id == first.id)
        .cloned();
    if let Some(want) = want {
        assert_eq!(first.text, want.text);
        assert_eq!(first.metadata, want.metadata);
        assert_eq!(first.vector.len(), want.vector.len());
    }
}

/// With the snapshot reused between pages, nothing present throughout is skipped or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_never_skips_or_repeats_while_the_collection_changes() {
    walk_while_written(Duration::from_secs(30)).await;
}

/// With the id list read again for every page (the snapshot expires at once), the same holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_with_a_fresh_id_list_per_page_never_skips_or_repeats() {
    walk_while_written(Duration::ZERO).await;
}

/// A missing collection scans as empty; a zero limit is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_of_a_missing_collection_is_empty() {
    let Some(store) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    assert!(
        store
            .scan("nothing-here", None, 10)
            .await
            .expect("scan")
            .is_empty()
    );
    assert!(store.scan("nothing-here", None, 0).await.is_err());
}
