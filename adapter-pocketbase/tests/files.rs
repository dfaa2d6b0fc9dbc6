//! Files: the size limit is raised beyond PocketBase's default 5 MiB, the bytes are protected
//! (no anonymous download), and the sha256 recorded at upload is checked on every read.

mod common;

use chatstore_core::{ErrorKind, NewFile};
use chatstore_pocketbase::error::Subject;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_beyond_pocketbases_default_limit_round_trip() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let bytes: Vec<u8> = (0..6 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    let meta = store
        .files
        .put(NewFile::new("u1", "Big Report (final).bin", bytes.clone()))
        .await
        .expect("6 MiB file");
    assert_eq!(meta.size, bytes.len() as u64);
    assert_eq!(meta.filename, "Big Report (final).bin");
    let back = store.files.read(&meta.id).await.expect("read");
    assert!(back == bytes, "bytes round trip");
    assert_eq!(store.files.get(&meta.id).await.expect("get"), meta);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_bytes_are_protected_and_hash_checked_on_read() {
    let Some(pb) = common::backend().await else {
        return;
    };
    let store = pb.store();
    let meta = store
        .files
        .put(NewFile::new("u1", "a.txt", b"hello".to_vec()).with_id("f1"))
        .await
        .expect("put");
    let cols = pb.collections();
    let record = pb
        .client()
        .get_record(&cols.files, "f1", None, Subject::new("file", "f1"))
        .await
        .expect("record");
    let stored = record["blob"]
        .as_str()
        .expect("stored file name")
        .to_owned();
    assert_ne!(
        stored, "a.txt",
        "PocketBase mangles the stored name; ours is kept apart"
    );
    // Protected: without a file token the bytes are not served.
    let url = format!(
        "{}/api/files/{}/f1/{stored}",
        pb.client().base(),
        cols.files
    );
    let anonymous = reqwest::get(&url).await.expect("request");
    assert_eq!(anonymous.status().as_u16(), 404);
    // Tampered metadata: the recorded sha256 no longer matches the bytes.
    pb.client()
        .update_record(
            &cols.files,
            "f1",
            &json!({"sha256": "0".repeat(64)}),
            Subject::new("file", "f1"),
        )
        .await
        .expect("tamper");
    let err = store.files.read("f1").await.expect_err("hash mismatch");
    assert_eq!(err.kind(), ErrorKind::Backend);
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(meta.sha256.len(), 64);
}
