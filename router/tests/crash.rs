//! A router process killed (`SIGKILL`, the real process) after the old store committed its
//! writes and while the new store had not answered: the next router to open the repair log
//! logs those writes for repair from the dead router's intent file, and `reconcile` makes the
//! new store whole. Before intents, nothing recorded such a write and only `verify` found it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, row, table};
use chatstore_core::{ErrorKind, NewUser, Store};
use chatstore_router::{Phase, RepairKey, Router};
use chatstore_sql::SqlOptions;
use serde_json::json;

/// The folder the two processes share (the stores' files and the repair log).
const FOLDER: &str = "CHATSTORE_TEST_CRASH_FOLDER";

async fn sqlite(path: &Path) -> Store {
    chatstore_sql::connect(
        &format!("sqlite://{}", path.display()),
        SqlOptions::default(),
    )
    .await
    .expect("open a SQLite file")
}

fn note(id: &str) -> Row {
    row([
        ("id", json!(id)),
        ("user_id", json!("u-kept")),
        ("title", json!("Written before the kill")),
        ("data", json!(null)),
        ("meta", json!(null)),
        ("created_at", json!(1_700_000_000_000_000_000i64)),
        ("updated_at", json!(1_700_000_000_000_000_000i64)),
    ])
}

fn notes() -> &'static chatstore_core::rows::Table {
    table("note").expect("note table")
}

fn router(old: &Store, new: &Store, folder: &Path) -> Router {
    Router::builder(old.clone())
        .new_store_for_all(new)
        .phase_for_all(Phase::Dual)
        .repair_log(folder.join("repair.jsonl"))
        .secondary_timeout(Duration::from_secs(3600))
        .build()
        .expect("build a router")
}

async fn note_on(store: &Store) -> Vec<Row> {
    store
        .rows()
        .expect("rows")
        .select(
            notes(),
            &RowQuery::filter(vec![Cond::Eq("id", json!("n-kept"))]),
        )
        .await
        .expect("select the note")
}

/// The router process the test kills: a user create (both stores at once) and a note insert
/// (old store first, then new) in `dual`, with a new store that never answers either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "started by a_router_killed_mid_write_leaves_its_writes_logged_for_repair"]
async fn router_process() {
    let folder = PathBuf::from(std::env::var(FOLDER).expect("the shared folder"));
    let old = sqlite(&folder.join("old.db")).await;
    let new = sqlite(&folder.join("new.db")).await;
    let hang: common::Hook = Box::pin(std::future::pending());
    let slow_rows = common::SlowRows::around(&new, Duration::ZERO, Duration::from_secs(3600));
    let new = common::HookedUsers::around(&new, None, Some(hang))
        .with_checked_rows(slow_rows.rows().expect("rows"));
    let store = router(&old, &new, &folder).store();
    let users = store.clone();
    let user = tokio::spawn(async move {
        users
            .users
            .create(NewUser::new("kept@example.com", "Kept").with_id("u-kept"))
            .await
    });
    let rows = store.rows().expect("routed rows");
    let insert = rows.write(vec![RowOp::Insert {
        table: notes(),
        row: note("n-kept"),
    }]);
    let (user, insert) = tokio::join!(user, insert);
    panic!("the new store answered, which it never does: {user:?} {insert:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_mid_write_leaves_its_writes_logged_for_repair() {
    let folder = common::temp_folder("crash");
    let old = sqlite(&folder.join("old.db")).await;
    let new = sqlite(&folder.join("new.db")).await;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["router_process", "--exact", "--ignored", "--nocapture"])
        .env(FOLDER, &folder)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the router process");

    // Killed once the old store holds both writes: the new store is still waiting.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let user = old.users.get("u-kept").await;
        if user.is_ok() && !note_on(&old).await.is_empty() {
            break;
        }
        if let Some(status) = child.try_wait().expect("the router process") {
            panic!("the router process ended by itself: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the old store never got the writes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("kill the router process");
    child.wait().expect("reap the router process");
    assert_eq!(
        new.users.get("u-kept").await.map_err(|e| e.kind()),
        Err(ErrorKind::NotFound)
    );
    assert!(note_on(&new).await.is_empty());

    let router = router(&old, &new, &folder);
    let pending = router.repair_log().pending().expect("the repair log");
    let keys: Vec<&RepairKey> = pending.iter().map(|e| &e.key).collect();
    assert!(
        keys.contains(&&RepairKey::User("u-kept".into())),
        "{pending:?}"
    );
    let row_key = RepairKey::Row {
        table: "note".into(),
        key: [("id".to_owned(), "n-kept".to_owned())].into(),
    };
    assert!(keys.contains(&&row_key), "{pending:?}");
    assert!(
        pending
            .iter()
            .all(|e| e.reason.contains("stopped before both answered")),
        "{pending:?}"
    );

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.remaining, 0);
    assert_eq!(
        new.users.get("u-kept").await.expect("user copied"),
        old.users.get("u-kept").await.expect("user")
    );
    assert_eq!(note_on(&new).await, note_on(&old).await);

    // The dead router's intent file is gone; the live router's own is the only one.
    let intents = std::fs::read_dir(folder.join("repair.jsonl.intents"))
        .expect("the intents folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .count();
    assert_eq!(intents, 1);
    drop(router);
    // A router closed with every write settled leaves nothing to adopt.
    let again = self::router(&old, &new, &folder);
    assert!(again.repair_log().pending().expect("log").is_empty());
}
