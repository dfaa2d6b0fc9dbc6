//! An insert whose answer is lost after Chroma applied it, on the test server
//! (`CHATSTORE_TEST_CHROMA_URL`) behind a proxy that closes the connection instead of passing
//! Chroma's answer to `add` on: the insert fails as `Unavailable` and takes its records back,
//! so that the caller's retry succeeds instead of answering `Conflict`.

mod proxy;

use chatstore_core::{ErrorKind, VectorItem, VectorRepo};
use futures::FutureExt;
use serde_json::json;

fn item(i: usize) -> VectorItem {
    VectorItem {
        id: format!("chunk-{i}"),
        text: format!("text of chunk {i}"),
        vector: vec![1.0, i as f32 + 0.5],
        metadata: json!({"file_id": "f1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// A failed insert leaves none of its records, also those of the request whose answer was
/// lost after Chroma wrote them: all or nothing, and the retry is not a `Conflict`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_insert_whose_answer_is_lost_leaves_nothing_behind() {
    let Some(url) = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let (direct, proxy, through) = proxy::stores_on_a_fresh_database(&url).await;

    let items: Vec<VectorItem> = (0..3).map(item).collect();
    proxy.on_answer("/add HTTP/1.1", Box::new(|| async { false }.boxed()));
    let err = through
        .insert("file-f1", items.clone())
        .await
        .expect_err("the answer to add is lost");
    assert!(proxy.fired(), "the insert reached Chroma's add");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        direct.get("file-f1").await.expect("read").is_empty(),
        "the records Chroma wrote before the answer was lost are taken back"
    );

    through
        .insert("file-f1", items.clone())
        .await
        .expect("the retry of the failed insert");
    let mut got: Vec<String> = direct
        .get("file-f1")
        .await
        .expect("read")
        .into_iter()
        .map(|i| i.id)
        .collect();
    got.sort();
    assert_eq!(got, ["chunk-0", "chunk-1", "chunk-2"]);
}
