//! `VectorRepo::scan` on the test server (`CHATSTORE_TEST_CHROMA_URL`): pages by id never skip
//! or repeat a record, even while another writer deletes and adds records of the collection.

use std::collections::HashSet;
use std::time::Duration;

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{VectorItem, VectorRepo};
use serde_json::json;

async fn fresh(ttl: Duration) -> Option<ChromaStore> {
    let config = fresh_config(ttl)?;
    Some(
        ChromaStore::connect(config)
            .await
            .expect("open the Chroma store"),
    )
}

/// The configuration of a new database of the test server (`None`, outside CI, without one).
fn fresh_config(ttl: Duration) -> Option<ChromaConfig> {
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
    Some(config)
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

/// A small collection comes whole in one page, in id order and with every field; a page that
/// holds exactly the collection is followed by an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_collection_comes_whole_and_sorted() {
    let Some(store) = fresh(Duration::from_secs(30)).await else {
        return;
    };
    let items: Vec<VectorItem> = (0..40).map(|i| item(id_of("small", i), i)).collect();
    store
        .insert("file-small", items.clone())
        .await
        .expect("load the collection");
    let page = store.scan("file-small", None, 500).await.expect("scan");
    let mut want = items.clone();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        page.iter().map(|i| &i.id).collect::<Vec<_>>(),
        want.iter().map(|i| &i.id).collect::<Vec<_>>(),
        "every record, in id order"
    );
    for (got, want) in page.iter().zip(&want) {
        assert_eq!(got.text, want.text);
        assert_eq!(got.metadata, want.metadata);
        // Chroma keeps cosine collections' vectors normalised: equal within f32 rounding.
        assert_eq!(got.vector.len(), want.vector.len());
        for (g, w) in got.vector.iter().zip(&want.vector) {
            assert!((g - w).abs() <= w.abs() * 1e-6, "{g} for {w}");
        }
    }

    // Exactly a page: the next one is empty.
    let full = store.scan("file-small", None, 40).await.expect("scan 40");
    assert_eq!(full.len(), 40);
    let after = full.last().map(|i| i.id.clone());
    let rest = store
        .scan("file-small", after.as_deref(), 40)
        .await
        .expect("scan after the last");
    assert!(rest.is_empty(), "nothing after the last record");

    // One short of the collection: the walk goes on to the last record.
    let first = store.scan("file-small", None, 39).await.expect("scan 39");
    assert_eq!(first.len(), 39);
    let after = first.last().map(|i| i.id.clone());
    let last = store
        .scan("file-small", after.as_deref(), 39)
        .await
        .expect("scan the rest");
    assert_eq!(
        last.iter().map(|i| &i.id).collect::<Vec<_>>(),
        [&want[39].id]
    );
}

/// The walk remembers collection ids from the listing; a collection deleted and made again
/// since (by another client) is read under its new id, and one deleted scans empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_collection_id_that_went_stale_is_looked_up_again() {
    let Some(config) = fresh_config(Duration::from_secs(30)) else {
        return;
    };
    let store = ChromaStore::connect(config.clone())
        .await
        .expect("open the Chroma store");
    // Another client of the same database (a clone would share what the first remembers).
    let other = ChromaStore::connect(config.create_database(false))
        .await
        .expect("open it again");
    store
        .insert("file-remade", vec![item(id_of("old", 1), 1)])
        .await
        .expect("load a collection");
    store
        .insert("file-gone", vec![item(id_of("gone", 1), 1)])
        .await
        .expect("load another");
    let names = store
        .collection_names()
        .await
        .expect("list the collections");
    assert_eq!(names, ["file-gone", "file-remade"]);

    other
        .delete_collection("file-remade")
        .await
        .expect("delete behind the first handle's back");
    let new: Vec<VectorItem> = (2..5).map(|i| item(id_of("new", i), i)).collect();
    other
        .insert("file-remade", new.clone())
        .await
        .expect("make it again");
    other
        .delete_collection("file-gone")
        .await
        .expect("delete the other");

    let mut got: Vec<String> = store
        .scan("file-remade", None, 10)
        .await
        .expect("scan the remade collection")
        .into_iter()
        .map(|i| i.id)
        .collect();
    got.sort();
    let mut want: Vec<String> = new.iter().map(|i| i.id.clone()).collect();
    want.sort();
    assert_eq!(got, want, "the new collection's records, not an error");
    assert!(
        store
            .scan("file-gone", None, 10)
            .await
            .expect("scan the deleted collection")
            .is_empty()
    );
}

/// A collection whose Chroma name no chatstore name leads back to (`300.1.1.1`: Chroma takes
/// it, chatstore stores such a name encoded) is an error of the listing a migration starts
/// from, naming it; before, it was listed under a name whose reads found nothing, so its
/// records were skipped and the verification found the two sides equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_chatstore_cannot_address_is_named_not_skipped() {
    let Some(config) = fresh_config(Duration::from_secs(30)) else {
        return;
    };
    let store = ChromaStore::connect(config.clone())
        .await
        .expect("open the Chroma store");
    store
        .upsert("notes", vec![item("n1".into(), 1)])
        .await
        .expect("write");
    assert_eq!(
        store.collection_names().await.expect("list"),
        vec!["notes".to_owned()]
    );
    // Another program's collection, made through Chroma's own API.
    let url = format!(
        "{}/api/v2/tenants/{}/databases/{}/collections",
        config.url, config.tenant, config.database
    );
    let status = reqwest::Client::new()
        .post(url)
        .json(&json!({"name": "300.1.1.1", "metadata": {"hnsw:space": "cosine"}}))
        .send()
        .await
        .expect("create")
        .status();
    assert!(status.is_success(), "Chroma refused the name: {status}");
    let err = store
        .collection_names()
        .await
        .expect_err("a collection chatstore cannot read");
    assert!(err.to_string().contains("\"300.1.1.1\""), "{err}");
}

/// A collection another program named by Chroma's rules and not chatstore's (`docs.v2`: Chroma
/// takes a dot, chatstore's names for writes do not) reads back: it is listed, counted, scanned
/// and read whole, through the store and through a `Store` behind core's validation layer.
/// Before, every read of it was `InvalidInput`, and a migration stopped at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_named_by_chromas_rules_reads_back() {
    let Some(config) = fresh_config(Duration::from_secs(30)) else {
        return;
    };
    let store = ChromaStore::connect(config.clone())
        .await
        .expect("open the Chroma store");
    let collections = format!(
        "{}/api/v2/tenants/{}/databases/{}/collections",
        config.url, config.tenant, config.database
    );
    let http = reqwest::Client::new();
    let made: serde_json::Value = http
        .post(&collections)
        .json(&json!({"name": "docs.v2", "metadata": {"hnsw:space": "cosine"}}))
        .send()
        .await
        .expect("create")
        .error_for_status()
        .expect("Chroma takes the name")
        .json()
        .await
        .expect("the collection");
    let id = made["id"].as_str().expect("a collection id");
    let items: Vec<VectorItem> = (0..3).map(|i| item(format!("d{i}"), i)).collect();
    http.post(format!("{collections}/{id}/add"))
        .json(&json!({
            "ids": items.iter().map(|i| &i.id).collect::<Vec<_>>(),
            "embeddings": items.iter().map(|i| &i.vector).collect::<Vec<_>>(),
            "documents": items.iter().map(|i| &i.text).collect::<Vec<_>>(),
            "metadatas": items.iter().map(|i| &i.metadata).collect::<Vec<_>>(),
        }))
        .send()
        .await
        .expect("add")
        .error_for_status()
        .expect("Chroma adds the records");

    assert_eq!(
        store.collection_names().await.expect("list"),
        vec!["docs.v2".to_owned()]
    );
    let ids = |items: Vec<VectorItem>| items.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let want = vec!["d0".to_owned(), "d1".to_owned(), "d2".to_owned()];
    let layered = store.clone().into_store(&chatstore_core::memory::store());
    for vectors in [
        &store as &dyn VectorRepo,
        layered.vectors.as_ref() as &dyn VectorRepo,
    ] {
        assert!(vectors.has_collection("docs.v2").await.expect("count"));
        let first = vectors.scan("docs.v2", None, 2).await.expect("scan");
        assert_eq!(ids(first), want[..2]);
        let rest = vectors
            .scan("docs.v2", Some("d1"), 2)
            .await
            .expect("scan on");
        assert_eq!(ids(rest), want[2..]);
        assert_eq!(ids(vectors.get("docs.v2").await.expect("get")), want);
    }
    // Writes keep chatstore's names.
    let refused = store
        .upsert("docs.v2", vec![item("d9".into(), 9)])
        .await
        .expect_err("a write under a name with a dot");
    assert_eq!(refused.kind(), chatstore_core::ErrorKind::InvalidInput);
}
