//! `ChromaStore::open_dir`: an Open WebUI vector folder is read through a private Chroma server
//! on a copy; the original folder is never written, and the copy and the server are gone once
//! the store is dropped. Needs `CHATSTORE_CHROMA_BIN` (scripts/services.sh exports it).

use std::collections::BTreeMap;
use std::path::Path;

use chatstore_chroma::{ChromaConfig, ChromaStore};
use chatstore_core::{VectorItem, VectorRepo};
use serde_json::json;

/// Every file of the folder with its bytes' length and modification time.
fn fingerprint(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read the folder") {
            let entry = entry.expect("an entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let bytes = std::fs::read(entry.path()).expect("read a file");
                out.insert(
                    entry.path().display().to_string(),
                    (meta.len(), meta.modified().expect("mtime"), bytes),
                );
            }
        }
    }
    out
}

/// A Chroma folder written by Chroma itself: a server on `folder`, some records, server stopped.
async fn write_folder(server: chatstore_testkit::PrivateChroma) -> Vec<VectorItem> {
    let store = ChromaStore::connect(ChromaConfig::new(&server.url()).expect("url"))
        .await
        .expect("open the private Chroma");
    let items: Vec<VectorItem> = (0..50u32)
        .map(|i| VectorItem {
            id: format!("chunk-{i:03}"),
            text: format!("text {i}"),
            vector: vec![1.0 + i as f32, 2.0, (i % 7) as f32],
            metadata: json!({"file_id": "f1", "start_index": i})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        })
        .collect();
    store
        .insert("file-0b1c5e7e-2f4e-4c55-9b1a-3a0d4c2b9e10", items.clone())
        .await
        .expect("write records");
    drop(store);
    drop(server);
    items
}

/// The folder's records read back through the private server; the original is untouched and
/// nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vector_folder_is_read_from_a_copy_and_left_untouched() {
    let folder = tempfile_dir();
    let Some(server) = chatstore_testkit::PrivateChroma::start(&folder).await else {
        return;
    };
    let items = write_folder(server).await;
    let before = fingerprint(&folder);

    let store = ChromaStore::open_dir(&folder)
        .await
        .expect("open the folder");
    let work_dirs = |pid: u32| {
        std::fs::read_dir(std::env::temp_dir())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("chatstore-chroma-{pid}-"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(work_dirs(std::process::id()), 1, "one private copy");
    let names = store.collections().await.expect("collections");
    assert_eq!(names, ["file-0b1c5e7e-2f4e-4c55-9b1a-3a0d4c2b9e10"]);
    let got = store.get(&names[0]).await.expect("read");
    assert_eq!(got.len(), items.len());
    for (g, w) in got.iter().zip(&items) {
        assert_eq!((&g.id, &g.text, &g.metadata), (&w.id, &w.text, &w.metadata));
    }
    drop(store);
    assert_eq!(
        work_dirs(std::process::id()),
        0,
        "the copy is deleted on drop"
    );
    assert!(
        before == fingerprint(&folder),
        "the original folder is unchanged"
    );
    let _ = std::fs::remove_dir_all(&folder);

    let missing = ChromaStore::open_dir(Path::new("/nonexistent/vector_db")).await;
    assert_eq!(
        missing.expect_err("not a Chroma folder").kind(),
        chatstore_core::ErrorKind::InvalidInput
    );
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "chatstore-test-vector-db-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create a folder");
    dir
}
