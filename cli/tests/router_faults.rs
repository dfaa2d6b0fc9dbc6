//! The rollout router against a PocketBase process of the test's own, stopped and started
//! again: with the new store down during `dual` and `shadow`, every call succeeds and the
//! repair log records each missed write; once it is back, `chatstore reconcile` empties the
//! log and the two stores compare equal record by record. Rows of Open WebUI's remaining
//! tables (the workspace group) go the same way, repaired by table and primary key.
//!
//! Needs `CHATSTORE_TEST_POCKETBASE_BIN` (`scripts/services.sh start` sets it); the server is
//! chatstore-testkit's `PrivatePocketBase`. The shared
//! test PocketBase is never touched.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use chatstore_core::rows::{Cond, Row, RowOp, Table};
use chatstore_core::{ModelGroup, NewChat, NewFile, NewMessage, NewUser, UserPatch};
use chatstore_router::{Phase, RepairKey, RouterConfig};
use chatstore_testkit::PrivatePocketBase;
use serde_json::json;

fn temp_folder() -> PathBuf {
    chatstore_testkit::scratch_folder("chatstore-router-faults", "run")
}

fn table(name: &str) -> &'static Table {
    chatstore_core::rows::table(name).expect("an Open WebUI table")
}

fn note(id: &str, title: &str) -> Row {
    chatstore_core::rows::row([
        ("id", json!(id)),
        ("user_id", json!("u1")),
        ("title", json!(title)),
        ("data", json!({"content": {"md": title}})),
        ("meta", json!(null)),
        ("created_at", json!(1_732_000_000_123_456_789i64)),
        ("updated_at", json!(1_732_000_000_123_456_789i64)),
    ])
}

fn folder(id: &str) -> Row {
    chatstore_core::rows::row([
        ("id", json!(id)),
        ("parent_id", json!(null)),
        ("user_id", json!("u1")),
        ("name", json!("Work")),
        ("is_expanded", json!(false)),
        ("created_at", json!(1_700_000_000i64)),
        ("updated_at", json!(1_700_000_000i64)),
    ])
}

fn row_key(table: &str, key: &[(&str, &str)]) -> RepairKey {
    RepairKey::Row {
        table: table.to_owned(),
        key: key
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Runs `chatstore` with `vars`; returns its exit status and stdout.
fn chatstore(args: &[&str], vars: &HashMap<String, String>) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(args)
        .envs(vars)
        .output()
        .expect("run chatstore");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every user call succeeds while PocketBase is down in `dual` and `shadow`; the repair log
/// has an entry for each write PocketBase missed; after PocketBase is back, `chatstore
/// reconcile` (twice: it is safe to re-run) leaves nothing pending and `chatstore verify`
/// finds the stores equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pocketbase_down_during_dual_and_shadow_loses_nothing() {
    let Some(mut pb) = PrivatePocketBase::start() else {
        return;
    };
    let dir = temp_folder();
    let old_url = format!("sqlite://{}", dir.join("old.db").display());
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("CHATSTORE_DATABASE_URL".into(), old_url.clone());
    for group in ["USERS", "CHATS", "FILES", "WORKSPACE"] {
        vars.insert(format!("CHATSTORE_{group}_NEW_URL"), pb.store_url());
        vars.insert(format!("CHATSTORE_{group}_PHASE"), "dual".into());
    }
    vars.insert(
        "CHATSTORE_REPAIR_LOG".into(),
        dir.join("repair.jsonl").display().to_string(),
    );
    vars.insert(
        "CHATSTORE_SHADOW_LOG".into(),
        dir.join("diffs.jsonl").display().to_string(),
    );
    // A dead store fails fast instead of after the adapter's retries.
    vars.insert("CHATSTORE_SECONDARY_TIMEOUT_MS".into(), "3000".into());
    let config = RouterConfig::from_lookup(|name| vars.get(name).cloned()).expect("config");
    let old = chatstore_registry::open(&old_url)
        .await
        .expect("open SQLite");
    let router = config
        .open(
            old,
            |url| async move { chatstore_registry::open(&url).await },
        )
        .await
        .expect("open the router");
    let store = router.store();

    // Both stores up: nothing to repair.
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create u1");
    store
        .chats
        .create(
            NewChat::new("u1", "Engines")
                .with_id("c1")
                .with_tags(["work"]),
        )
        .await
        .expect("create c1");
    store
        .messages
        .upsert(NewMessage::text("c1", "m1", "user", "Hello"))
        .await
        .expect("message m1");
    store
        .files
        .put(NewFile::new("u1", "notes.txt", b"first".to_vec()).with_id("f1"))
        .await
        .expect("put f1");
    let rows = store.rows().expect("routed rows");
    rows.write(vec![
        RowOp::Insert {
            table: table("note"),
            row: note("n1", "Groceries"),
        },
        RowOp::Insert {
            table: table("folder"),
            row: folder("fo1"),
        },
    ])
    .await
    .expect("rows on both stores");
    assert!(router.repair_log().pending().expect("read log").is_empty());

    pb.kill();
    // dual, PocketBase down: every call succeeds.
    store
        .users
        .create(NewUser::new("bob@example.com", "Bob").with_id("u2"))
        .await
        .expect("create u2 with the new store down");
    store
        .users
        .update(
            "u1",
            UserPatch {
                name: Some("Ada L.".into()),
                ..UserPatch::default()
            },
        )
        .await
        .expect("update u1");
    store
        .chats
        .create(
            NewChat::new("u2", "Looms")
                .with_id("c2")
                .with_tags(["Work", "cards"]),
        )
        .await
        .expect("create c2");
    store
        .messages
        .upsert(NewMessage::text("c1", "m2", "assistant", "Hi").with_parent("m1"))
        .await
        .expect("message m2");
    store.chats.add_tag("c1", "later").await.expect("add a tag");
    store
        .files
        .put(NewFile::new("u2", "cards.txt", b"second".to_vec()).with_id("f2"))
        .await
        .expect("put f2");
    store.files.delete("f1").await.expect("delete f1");
    assert_eq!(store.chats.get("c1").await.expect("read c1").tags.len(), 2);
    rows.write(vec![
        RowOp::Insert {
            table: table("note"),
            row: note("n2", "Books"),
        },
        RowOp::Update {
            table: table("note"),
            filter: vec![Cond::Eq("id", json!("n1"))],
            set: chatstore_core::rows::row([("title", json!("Groceries, Sunday"))]),
        },
    ])
    .await
    .expect("rows with the new store down");

    // shadow, still down.
    for group in [
        ModelGroup::Users,
        ModelGroup::Chats,
        ModelGroup::Files,
        ModelGroup::Workspace,
    ] {
        router
            .set_phase(group, Phase::Shadow)
            .await
            .expect("move to shadow");
    }
    rows.write(vec![RowOp::Delete {
        table: table("folder"),
        filter: vec![Cond::Eq("user_id", json!("u1"))],
    }])
    .await
    .expect("delete a folder with the new store down");
    assert_eq!(
        rows.count(table("note"), &[])
            .await
            .expect("shadowed count"),
        2
    );
    store
        .users
        .create(NewUser::new("cy@example.com", "Cy").with_id("u3"))
        .await
        .expect("create u3");
    store
        .chats
        .update(
            "c2",
            chatstore_core::ChatPatch {
                title: Some("Looms and cards".into()),
                ..Default::default()
            },
        )
        .await
        .expect("rename c2");
    store
        .messages
        .upsert(NewMessage::text("c2", "m1", "user", "Punch cards?"))
        .await
        .expect("message in c2");
    assert_eq!(
        store.chats.get("c2").await.expect("shadowed read").title,
        "Looms and cards"
    );
    assert_eq!(
        store.users.get("u3").await.expect("shadowed read").name,
        "Cy"
    );
    router.shadow_settled().await;
    let stats = router.stats();
    assert_eq!(stats.shadow_diffs, 0, "an outage is not a difference");
    assert!(
        stats.shadow_errors + stats.shadow_timeouts >= 2,
        "{stats:?}"
    );

    // One entry per missed write.
    let pending = router.repair_log().pending().expect("read log");
    assert_eq!(pending.len(), 13, "{pending:#?}");
    let keys: BTreeSet<RepairKey> = pending.iter().map(|e| e.key.clone()).collect();
    let want: BTreeSet<RepairKey> = [
        RepairKey::User("u1".into()),
        RepairKey::User("u2".into()),
        RepairKey::User("u3".into()),
        RepairKey::Chat("c1".into()),
        RepairKey::Chat("c2".into()),
        RepairKey::File("f1".into()),
        RepairKey::File("f2".into()),
        row_key("note", &[("id", "n1")]),
        row_key("note", &[("id", "n2")]),
        row_key("folder", &[("id", "fo1"), ("user_id", "u1")]),
    ]
    .into();
    assert_eq!(keys, want);

    pb.start_again();
    let (ok, out, err) = chatstore(&["reconcile"], &vars);
    assert!(ok, "reconcile failed:\n{out}\n{err}");
    assert!(out.contains("0 failed, 0 pending"), "{out}");
    let (ok, out, err) = chatstore(&["reconcile"], &vars);
    assert!(
        ok && out.contains("0 entries read"),
        "re-run:\n{out}\n{err}"
    );

    let (ok, out, err) = chatstore(
        &[
            "verify",
            "--from",
            &old_url,
            "--to",
            &pb.store_url(),
            "--groups",
            "users,chats,files,workspace",
        ],
        &vars,
    );
    assert!(ok, "verify found differences:\n{out}\n{err}");
    assert!(
        out.contains("verify workspace: source 2, target 2"),
        "{out}"
    );
    let new = router
        .new_store(ModelGroup::Chats)
        .expect("new store")
        .clone();
    assert_eq!(new.users.get("u1").await.expect("u1").name, "Ada L.");
    assert_eq!(new.messages.list("c1").await.expect("c1 messages").len(), 2);
    assert!(new.files.get("f1").await.is_err());
    assert_eq!(new.files.read("f2").await.expect("f2"), b"second");
    let notes = new
        .rows()
        .expect("rows")
        .select(table("note"), &Default::default())
        .await
        .expect("notes on PocketBase");
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0]["title"], "Groceries, Sunday");
    assert_eq!(
        new.rows()
            .expect("rows")
            .count(table("folder"), &[])
            .await
            .expect("folders"),
        0
    );
}
