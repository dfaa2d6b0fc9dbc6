//! Collections another client deletes while the adapter walks the database, on the test server
//! (`CHATSTORE_TEST_CHROMA_URL`) behind a proxy that deletes one through a second store just
//! before an answer reaches the adapter (the listing's, or the write's): the adapter then asks
//! a collection Chroma no longer has (404), and takes it as gone.

mod proxy;

use chatstore_chroma::ChromaStore;
use chatstore_core::{VectorItem, VectorRepo};
use futures::FutureExt;
use serde_json::json;

/// The request that lists the database's collections.
const LISTING: &str = "/collections?limit=";
/// The request that upserts records.
const UPSERT: &str = "/upsert HTTP/1.1";

fn item(id: &str) -> VectorItem {
    VectorItem {
        id: id.into(),
        text: format!("text of {id}"),
        vector: vec![1.0, 2.0],
        metadata: json!({"file_id": id})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// Deletes `collection` through `other` when the next request whose head holds `needle` is
/// answered, before the answer goes on.
fn delete_on_answer(
    proxy: &proxy::AnswerProxy,
    needle: &str,
    other: &ChromaStore,
    collection: &'static str,
) {
    let other = other.clone();
    proxy.on_answer(
        needle,
        Box::new(move || {
            async move {
                other
                    .delete_collection(collection)
                    .await
                    .expect("delete through the other store");
                true
            }
            .boxed()
        }),
    );
}

/// A collection deleted between the listing and its own request is left out of
/// `collections()`, a write's id check across collections skips it, and an upsert that moves
/// an id out of a collection deleted meanwhile succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_deleted_during_a_walk_is_gone_not_an_error() {
    let Some(url) = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let (other, proxy, store) = proxy::stores_on_a_fresh_database(&url).await;
    for name in ["notes-a", "notes-b", "notes-c"] {
        other
            .upsert(name, vec![item(&format!("{name}-1"))])
            .await
            .expect("write");
    }

    delete_on_answer(&proxy, LISTING, &other, "notes-b");
    let listed = store
        .collections()
        .await
        .expect("list while one is deleted");
    assert!(proxy.fired(), "the listing was answered");
    assert_eq!(listed, ["notes-a", "notes-c"]);

    delete_on_answer(&proxy, LISTING, &other, "notes-c");
    store
        .insert("notes-d", vec![item("notes-d-1")])
        .await
        .expect("insert while a collection is deleted");
    assert!(proxy.fired(), "the insert listed the collections");

    delete_on_answer(&proxy, UPSERT, &other, "notes-a");
    store
        .upsert("notes-d", vec![item("notes-a-1")])
        .await
        .expect("move an id out of a collection deleted meanwhile");
    assert!(proxy.fired(), "the upsert was answered");
    assert_eq!(
        other.collections().await.expect("list"),
        ["notes-d"],
        "only the collection written since is left"
    );
    assert_eq!(store.get("notes-d").await.expect("read").len(), 2);
}
