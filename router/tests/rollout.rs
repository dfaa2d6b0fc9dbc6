//! Rollout scenarios on SQLite (old) + PocketBase (new): a record changed on the new store
//! behind the router's back is reported by a shadow read and by verification; writes made in
//! `new` are all on the old store after moving back to `old`; the phase changes that would
//! lose writes are refused.

mod common;

use chatstore_core::{
    ChatPatch, ErrorKind, ModelGroup, NewChat, NewFile, NewMessage, NewUser, Store, UserPatch,
};
use chatstore_router::{Phase, Router};

const GROUPS: [ModelGroup; 3] = [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files];

/// A router over a new SQLite file and fresh PocketBase collections, with its log folder.
async fn sqlite_pocketbase(phase: Phase) -> Option<(Router, Store, std::path::PathBuf)> {
    let new = common::pocketbase().await?;
    let dir = common::temp_folder("rollout");
    let router = Router::builder(common::sqlite().await)
        .new_store_for_all(&new)
        .phase_for_all(phase)
        .repair_log(dir.join("repair.jsonl"))
        .shadow_log(Some(dir.join("diffs.jsonl")))
        .build()
        .expect("build a router");
    Some((router, new, dir))
}

/// A router in `dual` over `old` and `new` with its repair log in a new folder, and `u1` (Ada)
/// created through it.
async fn dual_with_ada(old: Store, new: &Store, kind: &str) -> Router {
    let dir = common::temp_folder(kind);
    let router = Router::builder(old)
        .new_store_for_all(new)
        .phase_for_all(Phase::Dual)
        .repair_log(dir.join("repair.jsonl"))
        .build()
        .expect("router");
    router
        .store()
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create u1");
    router
}

/// Open WebUI's `folder` row "Work" of user `u1`.
fn work_folder() -> chatstore_core::rows::Row {
    use serde_json::json;
    chatstore_core::rows::row([
        ("id", json!("fo1")),
        ("parent_id", json!(null)),
        ("user_id", json!("u1")),
        ("name", json!("Work")),
        ("is_expanded", json!(false)),
        ("created_at", json!(1_700_000_000i64)),
        ("updated_at", json!(1_700_000_000i64)),
    ])
}

/// An old store that answers `Unavailable` to a write whose new-store half comes after it (a
/// row batch, a streamed file) may have written all the same (its answer lost on the way), so
/// the keys are logged; the call fails with the old store's error, and reconciling leaves the
/// two stores alike. The old store is a SQLite file whose write lock another connection holds
/// past its busy timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_store_unavailable_after_an_old_first_write_is_logged_for_repair() {
    use chatstore_core::rows::{RowOp, RowQuery, table};
    let file = common::temp_folder("old-unavailable").join("webui.db");
    let url = format!("sqlite://{}", file.display());
    let options =
        chatstore_sql::SqlOptions::default().busy_timeout(std::time::Duration::from_millis(200));
    let old = chatstore_sql::connect(&url, options)
        .await
        .expect("open an old SQLite file");
    let new = chatstore_core::memory::store();
    let router = dual_with_ada(old.clone(), &new, "old-unavailable").await;
    let store = router.store();
    let folders = table("folder").expect("the folder table");
    let folder = work_folder();

    let locker = WriteLock::take(&url).await;
    let rows = store.rows().expect("rows");
    let err = rows
        .write(vec![RowOp::Insert {
            table: folders,
            row: folder,
        }])
        .await
        .expect_err("the old store is locked");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let err = store
        .files
        .put_stream(
            NewFile::new("u1", "notes.txt", Vec::new()).with_id("f1"),
            chatstore_core::transfer::stream_bytes(&b"the notes"[..]),
            None,
        )
        .await
        .expect_err("the old store is locked");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let pending = router.repair_log().pending().expect("log");
    assert_eq!(pending.len(), 2, "{pending:?}");
    locker.release().await;

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (2, 0), "{report:?}");
    for side in [&old, &new] {
        let held = side
            .rows()
            .expect("rows")
            .select(folders, &RowQuery::default())
            .await
            .expect("select");
        assert!(held.is_empty(), "{held:?}");
        assert_eq!(
            side.files.get("f1").await.expect_err("no file").kind(),
            ErrorKind::NotFound
        );
    }
}

/// Another connection holding a SQLite file's write lock (`BEGIN IMMEDIATE`), so that a write
/// to that file waits until [`WriteLock::release`].
struct WriteLock(sqlx::SqliteConnection);

impl WriteLock {
    async fn take(url: &str) -> WriteLock {
        use sqlx::Connection as _;
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .expect("take the write lock");
        WriteLock(conn)
    }

    async fn release(mut self) {
        use sqlx::Connection as _;
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("release the lock");
        let _ = self.0.close().await;
    }
}

/// Both stores answer `Unavailable` to a dual write (a network blip on the application's host),
/// but the old store had committed it: the key is logged all the same, and reconciling copies
/// the write to the new store. Two failures of one kind used to count as the stores agreeing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_unavailable_after_the_old_one_wrote_is_logged_for_repair() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let router = dual_with_ada(
        common::HookedUsers::losing_updates(&old, true),
        &common::HookedUsers::losing_updates(&new, false),
        "both-unavailable",
    )
    .await;
    let err = router
        .store()
        .users
        .update(
            "u1",
            UserPatch {
                name: Some("Ada Lovelace".into()),
                ..UserPatch::default()
            },
        )
        .await
        .expect_err("the old store's answer");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(old.users.get("u1").await.expect("u1").name, "Ada Lovelace");
    assert_eq!(router.repair_log().pending().expect("log").len(), 1);

    // Reconciled by a router over the stores themselves (the old store's updates work again).
    let repairer = Router::builder(old.clone())
        .new_store_for_all(&new)
        .phase_for_all(Phase::Dual)
        .repair_log(router.repair_log().path())
        .build()
        .expect("router");
    let report = repairer.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    assert_eq!(new.users.get("u1").await.expect("u1").name, "Ada Lovelace");
}

async fn verify(router: &Router, new: &Store) -> chatstore_migrate::VerifyReport {
    chatstore_migrate::verify(router.old(), new, &GROUPS, &chatstore_migrate::Silent)
        .await
        .expect("verify")
}

/// A chat retitled on the new store directly is one line in the diff log (group, operation,
/// id, field path, both values), one count, and a difference `verify` lists; the caller
/// still gets the old store's chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_behind_the_routers_back_is_reported_by_shadow_reads_and_verify() {
    let Some((router, new, dir)) = sqlite_pocketbase(Phase::Shadow).await else {
        return;
    };
    let store = router.store();
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create u1");
    store
        .chats
        .create(NewChat::new("u1", "Engines").with_id("c1"))
        .await
        .expect("create c1");
    assert!(verify(&router, &new).await.equal);
    assert_eq!(store.chats.get("c1").await.expect("read").title, "Engines");
    router.shadow_settled().await;
    let stats = router.stats();
    assert_eq!(
        (stats.shadow_reads, stats.shadow_diffs),
        (1, 0),
        "equal answers are counted as compared, with no difference: {stats:?}"
    );

    new.chats
        .update(
            "c1",
            ChatPatch {
                title: Some("Tampered".into()),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("change the new store directly");
    assert_eq!(
        store.chats.get("c1").await.expect("shadowed read").title,
        "Engines",
        "the caller gets the old answer"
    );
    router.shadow_settled().await;
    let stats = router.stats();
    assert_eq!(
        (stats.shadow_reads, stats.shadow_diffs),
        (2, 1),
        "{stats:?}"
    );
    let log = std::fs::read_to_string(dir.join("diffs.jsonl")).expect("diff log");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = &lines[0];
    assert_eq!(line["group"], "chats");
    assert_eq!(line["operation"], "chats.get");
    assert_eq!(line["ids"], serde_json::json!(["c1"]));
    assert!(line["time"].as_i64().is_some_and(|t| t > 0));
    let title = line["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["path"] == "/title"))
        .expect("the title is among the differing fields");
    assert_eq!(title["old"], "Engines");
    assert_eq!(title["new"], "Tampered");

    let report = verify(&router, &new).await;
    assert!(!report.equal);
    assert!(
        report.differing_ids().iter().any(|id| id.contains("c1")),
        "{:?}",
        report.differing_ids()
    );
}

/// Writes made in `new` (read from PocketBase) all reach the old store: after moving every
/// group back to `old`, the old store answers them and `verify` finds the stores equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backout_from_new_to_old_loses_nothing() {
    let Some((router, new, _dir)) = sqlite_pocketbase(Phase::New).await else {
        return;
    };
    let store = router.store();
    store
        .users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("create u1");
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
    for (id, title) in [("c1", "Engines"), ("c2", "Looms")] {
        store
            .chats
            .create(NewChat::new("u1", title).with_id(id).with_tags(["work"]))
            .await
            .expect("create a chat");
    }
    store
        .messages
        .upsert(NewMessage::text("c1", "m1", "user", "Hello"))
        .await
        .expect("message");
    store
        .messages
        .upsert(NewMessage::text("c1", "m2", "assistant", "Hi").with_parent("m1"))
        .await
        .expect("reply");
    store.chats.add_tag("c1", "Later").await.expect("tag");
    store.chats.delete("c2").await.expect("delete c2");
    store
        .files
        .put(NewFile::new("u1", "notes.txt", b"bytes".to_vec()).with_id("f1"))
        .await
        .expect("file");
    assert!(router.repair_log().pending().expect("log").is_empty());

    for group in GROUPS {
        router
            .set_phase(group, Phase::Old)
            .await
            .expect("move back to old");
    }
    let chat = store.chats.get("c1").await.expect("c1 on the old store");
    assert_eq!(chat.tags.len(), 2);
    assert_eq!(store.messages.list("c1").await.expect("messages").len(), 2);
    assert_eq!(store.users.get("u1").await.expect("u1").name, "Ada L.");
    assert_eq!(
        store
            .chats
            .get("c2")
            .await
            .map(|_| ())
            .map_err(|e| e.kind()),
        Err(ErrorKind::NotFound)
    );
    assert_eq!(store.files.read("f1").await.expect("f1"), b"bytes");
    let report = verify(&router, &new).await;
    assert!(report.equal, "{:?}", report.differing_ids());
}

/// Entering `new-only` with repairs pending, and leaving `new-only` at run time, are refused:
/// both would make writes invisible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_changes_that_would_lose_writes_are_refused() {
    let new = chatstore_core::memory::store();
    let router = dual_with_ada(chatstore_core::memory::store(), &new, "refused").await;
    let store = router.store();
    // The new store lags: a user deleted there behind the router's back.
    new.users.delete("u1").await.expect("delete on new");
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
        .expect("the old store decides the answer");
    assert_eq!(router.repair_log().pending().expect("log").len(), 1);
    let refused = router.set_phase(ModelGroup::Users, Phase::NewOnly).await;
    assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0));
    assert_eq!(
        new.users.get("u1").await.expect("copied back").name,
        "Ada L."
    );
    router
        .set_phase(ModelGroup::Users, Phase::NewOnly)
        .await
        .expect("nothing pending");
    let refused = router.set_phase(ModelGroup::Users, Phase::New).await;
    assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::InvalidInput));
    assert_eq!(router.phase(ModelGroup::Users), Phase::NewOnly);
}

/// A move to `new-only` made while a write to both stores is under way waits for it: when the
/// new store's half then fails, its repair is pending and the move is refused. Before, the
/// check ran first, the group went new-only, and the write acknowledged on the old store was
/// missing from the only store written from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_new_only_waits_for_the_writes_under_way() {
    let (started, is_started) = tokio::sync::oneshot::channel::<()>();
    let slow_create: common::Hook = Box::pin(async move {
        let _ = started.send(());
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    });
    let new_inner = chatstore_core::memory::store();
    let new = common::HookedUsers::around(&new_inner, None, Some(slow_create));
    let dir = common::temp_folder("new-only-gate");
    let router = Router::builder(chatstore_core::memory::store())
        .new_store(ModelGroup::Users, new)
        .phase(ModelGroup::Users, Phase::New)
        .secondary_timeout(std::time::Duration::from_millis(200))
        .repair_log(dir.join("repair.jsonl"))
        .build()
        .expect("router");
    let store = router.store();
    let write = tokio::spawn(async move {
        store
            .users
            .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
            .await
    });
    is_started.await.expect("the new store's write started");

    let moved = router.set_phase(ModelGroup::Users, Phase::NewOnly).await;
    let created = write
        .await
        .expect("the writer")
        .expect("the old store answered");
    assert_eq!(created.id, "u1");
    assert_eq!(
        moved.map_err(|e| e.kind()),
        Err(ErrorKind::InvalidInput),
        "the move waited for the write and saw its repair"
    );
    assert_eq!(router.phase(ModelGroup::Users), Phase::New);
    assert_eq!(router.repair_log().pending().expect("log").len(), 1);

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0));
    router
        .set_phase(ModelGroup::Users, Phase::NewOnly)
        .await
        .expect("nothing pending now");
    assert_eq!(
        router
            .store()
            .users
            .get("u1")
            .await
            .expect("on the new store")
            .name,
        "Ada"
    );
}

/// A repair logged for a group that is new-only where `reconcile` runs (another process still
/// in `new` logged it) is not copied from the old store: the new store, the only one written,
/// may hold a later state of the record, which the copy would undo. The entry stays pending
/// with a reason an operator can act on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_does_not_copy_the_old_store_over_a_new_only_group() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    old.users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("old");
    new.users
        .create(NewUser::new("ada@example.com", "Ada King").with_id("u1"))
        .await
        .expect("new, written since in new-only");
    let dir = common::temp_folder("new-only-reconcile");
    let router = Router::builder(old)
        .new_store(ModelGroup::Users, new.clone())
        .phase(ModelGroup::Users, Phase::NewOnly)
        .repair_log(dir.join("repair.jsonl"))
        .build()
        .expect("router");
    router
        .repair_log()
        .append(&[chatstore_router::RepairEntry {
            id: "e1".into(),
            time: 0,
            group: ModelGroup::Users,
            key: chatstore_router::RepairKey::User("u1".into()),
            operation: "users.update".into(),
            source: chatstore_router::Side::Old,
            reason: "the new store failed".into(),
        }])
        .expect("log a repair");

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (0, 1));
    let (_, why) = &report.failed[0];
    assert!(why.contains("new-only") && why.contains("verify"), "{why}");
    assert_eq!(new.users.get("u1").await.expect("kept").name, "Ada King");
}

/// A dual write whose caller goes away before both stores answered is logged for repair (the
/// new store's write runs on a task of its own and goes on; the old store's may not), and
/// reconciling then leaves both stores alike. The old store is a SQLite file another
/// connection holds the write lock of, so its write is still waiting when the caller leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_write_its_caller_abandons_is_logged_for_repair() {
    let file = common::temp_folder("abandoned").join("webui.db");
    let url = format!("sqlite://{}", file.display());
    let old = chatstore_sql::connect(&url, chatstore_sql::SqlOptions::default())
        .await
        .expect("open a new SQLite file");
    let new = chatstore_core::memory::store();
    let router = dual_with_ada(old, &new, "abandoned").await;
    assert!(router.repair_log().pending().expect("log").is_empty());

    let locker = WriteLock::take(&url).await;
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        router
            .store()
            .chats
            .create(NewChat::new("u1", "Engines").with_id("c1")),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the old store wrote through a held lock"
    );
    let pending = router.repair_log().pending().expect("log");
    assert_eq!(pending.len(), 1, "{pending:?}");
    locker.release().await;

    // Whatever each store did with the abandoned write, reconciling makes them agree.
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    let old_chat = router.old().chats.get("c1").await.map(|c| c.title);
    let new_chat = new.chats.get("c1").await.map(|c| c.title);
    assert_eq!(
        old_chat.map_err(|e| e.kind()),
        new_chat.map_err(|e| e.kind())
    );
}

/// The writes that reach the new store only once the old store has written (a row batch, a
/// streamed file) are logged for repair too when their caller goes away between the two, and
/// reconciling copies them. The new store is a SQLite file another connection holds the write
/// lock of, so the old store (memory) has written and the new store is still waiting when the
/// caller leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_after_the_old_store_wrote_is_logged_for_repair() {
    use chatstore_core::rows::{RowOp, RowQuery, table};
    let file = common::temp_folder("abandoned-after-old").join("webui.db");
    let url = format!("sqlite://{}", file.display());
    let new = chatstore_sql::connect(&url, chatstore_sql::SqlOptions::default())
        .await
        .expect("open a new SQLite file");
    let router = dual_with_ada(chatstore_core::memory::store(), &new, "abandoned-after-old").await;
    let store = router.store();
    let folders = table("folder").expect("the folder table");
    let folder = work_folder();

    let locker = WriteLock::take(&url).await;
    let wait = std::time::Duration::from_millis(300);
    let rows = store.rows().expect("rows");
    let abandoned_rows = tokio::time::timeout(
        wait,
        rows.write(vec![RowOp::Insert {
            table: folders,
            row: folder,
        }]),
    )
    .await;
    assert!(
        abandoned_rows.is_err(),
        "the new store wrote through a held lock"
    );
    let abandoned_put = tokio::time::timeout(
        wait,
        store.files.put_stream(
            NewFile::new("u1", "notes.txt", Vec::new()).with_id("f1"),
            chatstore_core::transfer::stream_bytes(&b"the notes"[..]),
            None,
        ),
    )
    .await;
    assert!(
        abandoned_put.is_err(),
        "the new store wrote through a held lock"
    );
    assert!(
        router.old().files.get("f1").await.is_ok(),
        "the old store took the file before the caller left"
    );
    let pending = router.repair_log().pending().expect("log");
    assert_eq!(pending.len(), 2, "{pending:?}");
    locker.release().await;

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (2, 0), "{report:?}");
    assert_eq!(new.files.read("f1").await.expect("the file"), b"the notes");
    let copied = new
        .rows()
        .expect("rows")
        .select(folders, &RowQuery::default())
        .await
        .expect("select");
    assert_eq!(copied.len(), 1, "{copied:?}");
}

/// A dual write from outside Tokio (another executor) is answered, not a panic: the new
/// store's timeout needs Tokio's timer, so there both writes are awaited together.
#[test]
fn a_dual_write_outside_tokio_is_answered() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let router = Router::builder(old.clone())
        .new_store_for_all(&new)
        .phase_for_all(Phase::Dual)
        .repair_log(common::temp_folder("outside-tokio").join("repair.jsonl"))
        .build()
        .expect("router");
    let created = futures::executor::block_on(
        router
            .store()
            .users
            .create(NewUser::new("ada@example.com", "Ada").with_id("u1")),
    )
    .expect("create u1");
    assert_eq!(created.id, "u1");
    for store in [&old, &new] {
        let got = futures::executor::block_on(store.users.get("u1")).expect("on both stores");
        assert_eq!(got, created);
    }
}

/// A dual row write and a dual streamed upload from outside Tokio are answered too: each
/// bounded the new store's half with Tokio's timer after the old store had written, and
/// panicked there.
#[test]
fn dual_row_writes_and_uploads_outside_tokio_are_answered() {
    use chatstore_core::rows::{RowOp, RowQuery, table};
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let router = common::router(old.clone(), &new, Phase::Dual);
    let store = router.store();
    let folders = table("folder").expect("the folder table");
    let counts =
        futures::executor::block_on(store.rows().expect("rows").write(vec![RowOp::Insert {
            table: folders,
            row: work_folder(),
        }]))
        .expect("the row write");
    assert_eq!(counts, [1]);
    let stored = futures::executor::block_on(store.files.put_stream(
        NewFile::new("u1", "notes.txt", Vec::new()).with_id("f1"),
        chatstore_core::transfer::stream_bytes(&b"the notes"[..]),
        None,
    ))
    .expect("the upload");
    for side in [&old, &new] {
        let rows = side.rows().expect("rows");
        let held = futures::executor::block_on(rows.select(folders, &RowQuery::default()));
        assert_eq!(held.expect("select").len(), 1);
        let file = futures::executor::block_on(side.files.get("f1")).expect("on both stores");
        assert_eq!(file.sha256, stored.sha256);
    }
    assert!(router.repair_log().pending().expect("log").is_empty());
}

/// A row delete by a filter and an insert of a row it matches, at the same time, end alike on
/// both stores. The delete locked the rows the old store matched before it; the insert landed
/// on the old store before the delete ran there and on the slow new store after, so the new
/// store kept the row the old one deleted, with equal answers and nothing logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_row_delete_and_an_insert_at_once_end_alike_on_both_stores() {
    use chatstore_core::rows::{Cond, RowOp, RowQuery, table};
    use std::time::Duration;
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let slow_old = common::SlowRows::around(&old, Duration::from_millis(200), Duration::ZERO);
    let slow_new = common::SlowRows::around(&new, Duration::ZERO, Duration::from_millis(400));
    let router = common::router(slow_old, &slow_new, Phase::Dual);
    let rows = router.store().rows().expect("rows");
    let folders = table("folder").expect("the folder table");
    let delete = rows.write(vec![RowOp::Delete {
        table: folders,
        filter: vec![Cond::Eq("user_id", serde_json::json!("u1"))],
    }]);
    let insert = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows.write(vec![RowOp::Insert {
            table: folders,
            row: work_folder(),
        }])
        .await
    };
    let (deleted, inserted) = tokio::join!(delete, insert);
    deleted.expect("delete");
    inserted.expect("insert");
    let held = |store: &chatstore_core::Store| {
        let rows = store.rows().expect("rows");
        async move { rows.select(folders, &RowQuery::default()).await }
    };
    let on_old = held(&old).await.expect("old rows");
    let on_new = held(&new).await.expect("new rows");
    let pending = router.repair_log().pending().expect("log");
    assert!(
        on_old == on_new || !pending.is_empty(),
        "old {on_old:?}, new {on_new:?}, nothing logged"
    );
}

/// A tag delete and a tag added to a chat at the same time reach both stores in the same
/// order, even when the new store is slow to add it: the stores end alike. Before, the delete
/// (repaired through the user's chats) did not wait for the add (repaired through its chat),
/// so the slow new store deleted the tag first and added it back after; both calls answered
/// alike on both stores and nothing was logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_delete_and_a_tag_added_at_once_end_alike_on_both_stores() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let slow = common::SlowTagging::around(&new, std::time::Duration::from_millis(300));
    let router = dual_with_ada(old.clone(), &slow, "tag-delete-race").await;
    let store = router.store();
    store
        .chats
        .create(NewChat::new("u1", "Engines").with_id("c1"))
        .await
        .expect("c1");
    store
        .chats
        .create(
            NewChat::new("u1", "Looms")
                .with_id("c2")
                .with_tags(["work"]),
        )
        .await
        .expect("c2");

    let adder = store.clone();
    let adding = tokio::spawn(async move { adder.chats.add_tag("c1", "work").await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    store
        .tags
        .delete("u1", "work")
        .await
        .expect("delete the tag");
    adding.await.expect("the add task").expect("add the tag");

    for id in ["c1", "c2"] {
        assert_eq!(
            new.chats.get(id).await.expect("new").tags,
            old.chats.get(id).await.expect("old").tags,
            "{id}'s tags on both stores"
        );
    }
    assert_eq!(
        new.tags.list("u1").await.expect("new"),
        old.tags.list("u1").await.expect("old")
    );
}

/// A group moved back to `old` stops writing the new store, which falls behind: reads cannot
/// move to the new store again until `reconcile` has copied the group over, which it does
/// once the group writes both stores again (in `dual`); records changed, deleted and created
/// meanwhile all arrive. Before, `old` -> `new` was accepted and served the stale records.
#[tokio::test]
async fn a_group_moved_back_to_old_is_copied_over_before_reads_move_to_the_new_store() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let router = dual_with_ada(old.clone(), &new, "behind").await;
    let store = router.store();
    for id in ["c1", "c2"] {
        store
            .chats
            .create(NewChat::new("u1", "Engines").with_id(id))
            .await
            .expect("chat");
    }
    for group in [ModelGroup::Users, ModelGroup::Chats] {
        router
            .set_phase(group, Phase::Old)
            .await
            .expect("back to old");
    }
    let renamed = UserPatch {
        name: Some("Ada Lovelace".into()),
        ..UserPatch::default()
    };
    store.users.update("u1", renamed).await.expect("rename");
    store.chats.delete("c2").await.expect("delete c2");
    let retitled = ChatPatch {
        title: Some("Analytical Engines".into()),
        ..ChatPatch::default()
    };
    store.chats.update("c1", retitled).await.expect("retitle");
    store
        .chats
        .create(NewChat::new("u1", "Looms").with_id("c3"))
        .await
        .expect("chat c3");

    let refused = router.set_phase(ModelGroup::Users, Phase::New).await;
    assert_eq!(
        refused.expect_err("the new store is behind").kind(),
        ErrorKind::InvalidInput
    );
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!(report.remaining, 2, "in old, nothing is copied: {report:?}");
    for group in [ModelGroup::Users, ModelGroup::Chats] {
        router.set_phase(group, Phase::Dual).await.expect("dual");
    }
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (2, 0), "{report:?}");
    assert_eq!(new.users.get("u1").await.expect("u1").name, "Ada Lovelace");
    assert_eq!(
        new.chats.get("c2").await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        new.chats.get("c1").await.expect("c1"),
        old.chats.get("c1").await.expect("c1")
    );
    assert_eq!(
        new.chats.get("c3").await.expect("c3"),
        old.chats.get("c3").await.expect("c3")
    );
    for group in [ModelGroup::Users, ModelGroup::Chats] {
        router.set_phase(group, Phase::New).await.expect("new");
    }
    assert_eq!(
        store.users.get("u1").await.expect("u1").name,
        "Ada Lovelace"
    );
}

/// A tag row made (`tags.ensure`) while the last chat carrying it drops it, with the new store
/// slow to drop it: the stores end alike. Before, the removal (which deletes the tag row no
/// chat carries any more) did not wait for the ensure, so the old store kept the row and the
/// slow new store deleted it after the ensure; both calls answered alike and nothing was
/// logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_made_while_its_last_chat_drops_it_ends_alike_on_both_stores() {
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let slow = common::SlowTagging::removing(&new, std::time::Duration::from_millis(300));
    let router = dual_with_ada(old.clone(), &slow, "tag-orphan-race").await;
    let store = router.store();
    store
        .chats
        .create(
            NewChat::new("u1", "Looms")
                .with_id("c1")
                .with_tags(["work"]),
        )
        .await
        .expect("c1");

    let remover = store.clone();
    let removing = tokio::spawn(async move { remover.chats.remove_tag("c1", "work").await });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    store
        .tags
        .ensure("u1", "work")
        .await
        .expect("ensure the tag");
    removing
        .await
        .expect("the remove task")
        .expect("remove the tag");

    assert_eq!(
        new.tags.list("u1").await.expect("new"),
        old.tags.list("u1").await.expect("old"),
        "the tag rows on both stores"
    );
    assert!(router.repair_log().pending().expect("log").is_empty());
}

/// A move to `new-only` waits for the group's writes under way a bounded time (twice the
/// secondary timeout and a second):
/// behind an upload still read from its caller it is refused (`Unavailable`, try again), and
/// the group's other writes go on meanwhile. Before, the move queued for the upload's whole
/// length and every later write of the group queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_to_new_only_behind_a_long_upload_is_refused_in_time() {
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let router = Router::builder(old.clone())
        .new_store_for_all(&new)
        .phase_for_all(Phase::Dual)
        .secondary_timeout(Duration::from_millis(200))
        .repair_log(common::temp_folder("long-upload").join("repair.jsonl"))
        .build()
        .expect("router");
    let store = router.store();
    store
        .files
        .put(NewFile::new("u1", "a.txt", b"a".to_vec()).with_id("f0"))
        .await
        .expect("f0");
    let uploaded = Arc::new(AtomicBool::new(false));
    let body: chatstore_core::transfer::ByteStream = Box::pin(
        futures::stream::once(tokio::time::sleep(Duration::from_secs(4)))
            .filter_map(|()| async { None })
            .chain(chatstore_core::transfer::stream_bytes(
                &b"the slow bytes"[..],
            )),
    );
    let uploader = store.clone();
    let done = uploaded.clone();
    let upload = tokio::spawn(async move {
        let file = NewFile::new("u1", "slow.txt", Vec::new()).with_id("f1");
        let stored = uploader.files.put_stream(file, body, None).await;
        done.store(true, Ordering::SeqCst);
        stored
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = router.set_phase(ModelGroup::Files, Phase::NewOnly).await;
    assert_eq!(
        refused.expect_err("the upload holds the group").kind(),
        ErrorKind::Unavailable
    );
    assert!(
        !uploaded.load(Ordering::SeqCst),
        "refused before the upload ended"
    );
    store
        .files
        .delete("f0")
        .await
        .expect("another write of the group");
    assert!(
        !uploaded.load(Ordering::SeqCst),
        "the group's other writes do not wait for the upload"
    );
    upload.await.expect("upload task").expect("the upload");
    assert_eq!(router.phase(ModelGroup::Files), Phase::Dual);
}

/// A shadow read that runs beside a write of its group compares stores the write may have
/// reached one at a time: the old store holds the row, the slow new store not yet (a row
/// write reaches the new store after the old one). That is no
/// difference: once the write has ended both are read again and agree. A row written to the
/// new store behind the router's back still is one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_read_beside_a_write_of_its_group_is_no_difference() {
    use chatstore_core::rows::{RowOp, RowQuery, table};
    use std::time::Duration;
    let (old, new) = (
        chatstore_core::memory::store(),
        chatstore_core::memory::store(),
    );
    let slow_new = common::SlowRows::around(&new, Duration::ZERO, Duration::from_millis(300));
    let dir = common::temp_folder("shadow-beside-write");
    let router = Router::builder(old)
        .new_store_for_all(&slow_new)
        .phase_for_all(Phase::Shadow)
        .repair_log(dir.join("repair.jsonl"))
        .shadow_log(Some(dir.join("diffs.jsonl")))
        // The comparison starts while the write still runs, and may wait for it.
        .shadow_yield(Duration::from_millis(5))
        .shadow_timeout(Duration::from_secs(10))
        .build()
        .expect("router");
    let rows = router.store().rows().expect("rows");
    let folders = table("folder").expect("the folder table");
    let folder = |id: &str| {
        let mut row = work_folder();
        row.insert("id".into(), serde_json::json!(id));
        RowOp::Insert {
            table: folders,
            row,
        }
    };
    // A routed insert of folder `id` and, 50 ms into it, a routed list of the folders (the
    // old store has the row by then; the new store is still waiting to write it): the list's
    // length, and the router's shadow reads and differences once its comparisons are done.
    let insert_beside_a_list = |id: &'static str| {
        let rows = rows.clone();
        let router = router.clone();
        async move {
            let list = async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                rows.select(folders, &RowQuery::default()).await
            };
            let (inserted, listed) = tokio::join!(rows.write(vec![folder(id)]), list);
            inserted.expect("insert");
            let listed = listed.expect("list").len();
            router.shadow_settled().await;
            let stats = router.stats();
            (listed, (stats.shadow_reads, stats.shadow_diffs))
        }
    };
    assert_eq!(insert_beside_a_list("fo1").await, (1, (1, 0)));

    // A row only the new store holds, written behind the router's back, is a difference ...
    new.rows()
        .expect("rows")
        .write(vec![folder("fo2")])
        .await
        .expect("write behind the router");
    rows.select(folders, &RowQuery::default())
        .await
        .expect("list");
    router.shadow_settled().await;
    let stats = router.stats();
    assert_eq!((stats.shadow_reads, stats.shadow_diffs), (2, 1));
    // ... and still one when read beside a write: read again after it, the stores differ.
    assert_eq!(insert_beside_a_list("fo3").await, (2, (3, 2)));
    std::fs::remove_dir_all(&dir).ok();
}
