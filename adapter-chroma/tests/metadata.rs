//! Metadata keys Chroma refuses (the empty key, and those starting with `$` or `#`, its
//! operators' and its own reserved names) are refused before anything is written, on the test server
//! (`CHATSTORE_TEST_CHROMA_URL`): a bulk write whose later collection held one used to write
//! the earlier collections first, then fail.

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::vectors::CollectionItems;
use chatstore_core::{ErrorKind, VectorItem, VectorRepo};
use serde_json::{Value, json};

fn item(id: &str, metadata: Value) -> VectorItem {
    VectorItem {
        id: id.into(),
        text: format!("text of {id}"),
        vector: vec![1.0, 2.0, 3.0],
        metadata: metadata.as_object().cloned().unwrap_or_default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_keys_chroma_refuses_are_refused_before_anything_is_written() {
    let Some(url) = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let config = ChromaConfig::new(&url)
        .expect("a valid Chroma URL")
        .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
        .create_database(true);
    let store = ChromaStore::connect(config)
        .await
        .expect("open the Chroma store");
    for key in ["$where", "#document", ""] {
        let entries: Vec<CollectionItems> = vec![
            (
                "notes-a".into(),
                vec![item("a1", json!({"source": "a.txt"}))],
            ),
            ("notes-b".into(), vec![item("b1", json!({ key: "x" }))]),
        ];
        let err = store
            .upsert_many(entries)
            .await
            .expect_err("a key Chroma refuses");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(
            store.get("notes-a").await.expect("read").is_empty(),
            "{key}: the earlier collection was written before the refusal"
        );
        let named = if key.is_empty() { "empty" } else { key };
        assert!(err.to_string().contains(named), "{err}");
        assert!(err.to_string().contains("b1"), "names the item: {err}");
    }
}
