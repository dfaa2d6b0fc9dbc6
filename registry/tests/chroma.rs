//! Chroma vector URLs: `chroma://HOST:PORT` opens the test server's vectors beside any
//! database, a Chroma URL as the database URL is refused with what to write instead.

use chatstore_core::{ErrorKind, VectorItem};
use chatstore_registry::{OpenOptions, StoreUrl};
use serde_json::json;

#[test]
fn chroma_urls_parse_and_show() {
    let url = StoreUrl::parse("chroma://127.0.0.1:8000").expect("valid");
    assert_eq!(url.backend(), "chroma");
    assert_eq!(
        StoreUrl::parse("chromas://db.example:443?tenant=t&database=d")
            .expect("valid")
            .backend(),
        "chroma"
    );
    assert_eq!(
        StoreUrl::parse("chroma-dir:///data/vector_db")
            .expect("valid")
            .backend(),
        "chroma-dir"
    );
    for bad in ["chroma://", "chroma-dir://", "chroma:///x"] {
        assert_eq!(
            StoreUrl::parse(bad).expect_err(bad).kind(),
            ErrorKind::InvalidInput
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chroma_vector_url_opens_chroma_beside_the_database() {
    let refused = OpenOptions::new("chroma://127.0.0.1:9").open().await;
    assert_eq!(
        refused.expect_err("vectors only").kind(),
        ErrorKind::InvalidInput
    );
    let Some(url) = chatstore_contract::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let database = format!("t_{}", uuid::Uuid::new_v4().simple());
    // The database must exist: Chroma's clients never create one, and neither does the registry.
    chatstore_chroma::ChromaStore::connect(
        chatstore_chroma::ChromaConfig::new(&url)
            .expect("url")
            .database(database.clone())
            .create_database(true),
    )
    .await
    .expect("create the test database");
    let vector_url = format!(
        "{}?database={database}",
        url.replace("http://", "chroma://")
    );
    // CHATSTORE_VECTOR_URL takes a Chroma URL the same way.
    let from_env = OpenOptions::from_lookup(|name| match name {
        "CHATSTORE_DATABASE_URL" => Some("memory".to_owned()),
        "CHATSTORE_VECTOR_URL" => Some(vector_url.clone()),
        _ => None,
    })
    .expect("options from the environment")
    .open()
    .await
    .expect("open memory + chroma from CHATSTORE_VECTOR_URL");
    assert_eq!(from_env.backend_name(), "memory+chroma");
    let store = OpenOptions::new("memory")
        .vectors_url(vector_url)
        .open()
        .await
        .expect("open memory + chroma");
    assert_eq!(store.backend_name(), "memory+chroma");
    assert!(store.capabilities().vectors);
    assert!(!store.capabilities().exact_vectors);
    store
        .vectors
        .insert(
            "file-abc",
            vec![VectorItem {
                id: "c1".into(),
                text: "hello".into(),
                vector: vec![1.0, 0.0],
                metadata: json!({"file_id": "abc"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            }],
        )
        .await
        .expect("insert");
    let hits = store
        .vectors
        .search("file-abc", &[vec![1.0, 0.1]], None, 1)
        .await
        .expect("search");
    assert_eq!(hits[0][0].id, "c1");
}
