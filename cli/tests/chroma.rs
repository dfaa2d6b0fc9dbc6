//! An operator leaving Chroma, through the `chatstore` binary: an Open WebUI vector folder
//! (`DATA_DIR/vector_db`, written by a real `chroma run`) moves into pgvector with
//! `chatstore migrate --from-vectors chroma-dir://... --to-vectors postgres://... --groups
//! vectors`, and `chatstore verify` finds the two equal. Needs `CHATSTORE_CHROMA_BIN` and
//! `CHATSTORE_TEST_PGVECTOR_URL` (scripts/services.sh exports them).

use std::path::Path;
use std::process::{Command, Output};

use chatstore_core::VectorItem;
use serde_json::json;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_chatstore");

fn item(collection: &str, i: usize) -> VectorItem {
    VectorItem {
        id: format!("{collection}-{i:04}"),
        text: format!("chunk {i} of {collection}"),
        vector: (0..8).map(|k| ((i * 7 + k) % 11) as f32 - 5.0).collect(),
        metadata: json!({"file_id": collection, "page": i, "source": "report.pdf"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// Open WebUI's kinds of collections written into the folder of a real Chroma server, which
/// is stopped afterwards (Open WebUI is stopped before its folder is moved).
async fn write_folder(server: chatstore_testkit::PrivateChroma) -> usize {
    let url = format!("chroma://127.0.0.1:{}", server.port());
    let store = chatstore_registry::OpenOptions::new("memory")
        .vectors_url(url)
        .open()
        .await
        .expect("open the private Chroma");
    let mut total = 0;
    for (collection, n) in [
        ("file-3f2a9c1e-0b7d-4c55-9a61-2f8e4d1c7b90", 40),
        ("user-memory-7d1e5a2b-8c3f-4e9a-b6d0-1a2b3c4d5e6f", 3),
        ("9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e", 1_200),
    ] {
        let items: Vec<VectorItem> = (0..n).map(|i| item(collection, i)).collect();
        store
            .vectors
            .insert(collection, items)
            .await
            .expect("write to Chroma");
        total += n;
    }
    drop(store);
    drop(server);
    total
}

fn chatstore(dir: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args);
    if args.first() == Some(&"migrate") {
        c.arg("--state")
            .arg(dir.join("state.json"))
            .arg("--dead-letter")
            .arg(dir.join("dead.jsonl"));
    }
    c.env_remove("CHATSTORE_VECTOR_URL")
        .output()
        .expect("run chatstore")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `chatstore migrate` copies an Open WebUI vector folder into pgvector and `chatstore verify`
/// finds them equal; the folder is read through a private server on a copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_webui_vector_folder_moves_to_pgvector_through_the_binary() {
    let Some(pg) = chatstore_testkit::require_env("CHATSTORE_TEST_PGVECTOR_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("vector_db");
    std::fs::create_dir_all(&folder).expect("folder");
    let Some(server) = chatstore_testkit::PrivateChroma::start(&folder).await else {
        return;
    };
    let total = write_folder(server).await;
    let target = chatstore_testkit::fresh_postgres_database(&pg).await;
    let source = format!("chroma-dir://{}", folder.display());

    let out = chatstore(
        dir.path(),
        &[
            "migrate",
            "--from-vectors",
            &source,
            "--to-vectors",
            &target,
            "--groups",
            "vectors",
            "--batch-size",
            "500",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    let mut conn = sqlx::PgConnection::connect(&target).await.expect("connect");
    let (rows, collections): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT collection_name) FROM document_chunk")
            .fetch_one(&mut conn)
            .await
            .expect("count");
    assert_eq!((rows, collections), (total as i64, 3));

    let out = chatstore(
        dir.path(),
        &[
            "verify",
            "--from-vectors",
            &source,
            "--to-vectors",
            &target,
            "--groups",
            "vectors",
        ],
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the target equals the source"),
        "{}",
        show(&out)
    );
}
