//! Requests within what Chroma takes, on the test server (`CHATSTORE_TEST_CHROMA_URL`): Chroma
//! 1.5.9 refuses a request body over 40 MiB ("Payload too large"), whatever its record count.
//! A write of many large records is sent in several requests, a search of many query vectors
//! too, and an item no request can carry is refused before anything is written.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{ErrorKind, VectorItem, VectorRepo};
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

/// An 8-dimensional vector of its number, never all zeros.
fn vector(i: usize) -> Vec<f32> {
    (0..8)
        .map(|d| ((i * 7 + d * 3) % 11) as f32 + 0.5)
        .collect()
}

fn item(i: usize, text_bytes: usize) -> VectorItem {
    let id = format!("doc-{i:03}");
    let mut text = format!("{id} ");
    text.push_str(&"x".repeat(text_bytes.saturating_sub(text.len())));
    VectorItem {
        id,
        text,
        vector: vector(i),
        metadata: json!({"file_id": format!("f{}", i % 3)})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// 96 records of 512 KiB (48 MiB, far fewer records than Chroma's batch limit of 5461) are
/// written whole and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_larger_than_one_request_is_sent_in_several() {
    let Some(store) = fresh().await else {
        return;
    };
    assert!(
        store.max_batch_size() > 96,
        "the count alone fits one batch"
    );
    let items: Vec<VectorItem> = (0..96).map(|i| item(i, 512 << 10)).collect();
    store
        .upsert("large-docs", items.clone())
        .await
        .expect("upsert 48 MiB");
    let got = store.get("large-docs").await.expect("get");
    assert_eq!(got.len(), items.len());
    for want in &items {
        let found = got.iter().find(|g| g.id == want.id).expect("every item");
        assert_eq!(found.text, want.text);
        assert!(
            found
                .vector
                .iter()
                .zip(&want.vector)
                .all(|(a, b)| (a - b).abs() < 1e-5),
            "{}: {:?}",
            want.id,
            found.vector
        );
        assert_eq!(found.metadata, want.metadata);
    }

    // An insert of as much into a new collection, too.
    let more: Vec<VectorItem> = (100..196).map(|i| item(i, 512 << 10)).collect();
    store
        .insert("large-docs-2", more)
        .await
        .expect("insert 48 MiB");
    assert_eq!(store.get("large-docs-2").await.expect("get").len(), 96);
}

/// An item whose text alone is more than Chroma takes in a request is refused with a message
/// naming it, and nothing of the call is written, in a bulk write across collections too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_no_request_can_carry_is_refused_before_anything_is_written() {
    let Some(store) = fresh().await else {
        return;
    };
    let huge = item(1, 41 << 20);
    let err = store
        .upsert("notes", vec![item(0, 10), huge.clone()])
        .await
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(
        message.contains("doc-001") && message.contains("40 MiB"),
        "{message}"
    );
    let err = store
        .upsert_many(vec![
            ("notes-a".into(), vec![item(2, 10)]),
            ("notes-b".into(), vec![huge]),
        ])
        .await
        .expect_err("too large");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        store.collections().await.expect("list").is_empty(),
        "nothing written"
    );
}

/// A search of 1,000 query vectors (the most a search takes) of 4,096 dimensions (about 50 MiB
/// as JSON numbers) answers every query, each with its nearest record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_of_many_query_vectors_is_sent_in_several_requests() {
    let Some(store) = fresh().await else {
        return;
    };
    let dim = 4096;
    let wide = |i: usize| -> Vec<f32> {
        (0..dim)
            .map(|d| -(((i * 7919 + d * 104_729) % 1000) as f32 + 1.0) / 997.0)
            .collect()
    };
    let items: Vec<VectorItem> = (0..20)
        .map(|i| VectorItem {
            id: format!("r{i:02}"),
            text: String::new(),
            vector: wide(i),
            metadata: Default::default(),
        })
        .collect();
    store.upsert("wide", items).await.expect("upsert");
    let queries: Vec<Vec<f32>> = (0..1000).map(|q| wide(q % 20)).collect();
    let hits = store
        .search("wide", &queries, None, 1)
        .await
        .expect("search 1,000 vectors");
    assert_eq!(hits.len(), queries.len());
    for (q, hit) in hits.iter().enumerate() {
        assert_eq!(hit.len(), 1, "query {q}");
        assert_eq!(hit[0].id, format!("r{:02}", q % 20), "query {q}");
    }
}
