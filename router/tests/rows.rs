//! The workspace group (Open WebUI's remaining tables, through each store's rows) behind the
//! router: dual writes reach both stores, a write the new store misses is logged by table and
//! primary key and `reconcile` re-copies it, a row changed behind the router's back is
//! reported by a shadow read, and moving back from `new` loses nothing. Each scenario runs on
//! memory + memory and on SQLite (old) + PocketBase (new); the PostgreSQL (old) + PocketBase
//! (new) pair runs the repair scenario (`CHATSTORE_TEST_*` servers from `scripts/services.sh`).

mod common;

use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, row, table};
use chatstore_core::{ModelGroup, Store, memory};
use chatstore_router::{Phase, RepairKey, Router};
use serde_json::json;

fn note(id: &str, user: &str, title: &str) -> Row {
    row([
        ("id", json!(id)),
        ("user_id", json!(user)),
        ("title", json!(title)),
        ("data", json!({"content": {"md": "# hi"}})),
        ("meta", json!(null)),
        ("created_at", json!(1_700_000_000_000_000_000i64)),
        ("updated_at", json!(1_700_000_000_000_000_001i64)),
    ])
}

fn prompt(id: &str, command: &str) -> Row {
    row([
        ("id", json!(id)),
        ("command", json!(command)),
        ("user_id", json!("u1")),
        ("name", json!("Summarise")),
        ("content", json!("Summarise {{text}}")),
        ("is_active", json!(true)),
        ("created_at", json!(1_700_000_000i64)),
        ("updated_at", json!(1_700_000_000i64)),
    ])
}

fn notes() -> &'static chatstore_core::rows::Table {
    table("note").expect("note table")
}

fn prompts() -> &'static chatstore_core::rows::Table {
    table("prompt").expect("prompt table")
}

/// Which stores a scenario runs on.
#[derive(Clone, Copy)]
enum Pair {
    Memory,
    SqlitePocketBase,
    PostgresPocketBase,
}

/// The old and the new store of `pair`, or `None` without its servers.
async fn stores(pair: Pair) -> Option<(Store, Store)> {
    Some(match pair {
        Pair::Memory => (memory::store(), memory::store()),
        Pair::SqlitePocketBase => {
            let new = common::pocketbase().await?;
            (common::sqlite().await, new)
        }
        Pair::PostgresPocketBase => {
            let new = common::pocketbase().await?;
            (common::postgres().await?, new)
        }
    })
}

/// A router routing only the workspace group, in `phase`.
async fn router(pair: Pair, phase: Phase) -> Option<(Router, Store, std::path::PathBuf)> {
    let (old, new) = stores(pair).await?;
    let dir = common::temp_folder("rows");
    let router = Router::builder(old)
        .new_store(ModelGroup::Workspace, new.clone())
        .phase(ModelGroup::Workspace, phase)
        .repair_log(dir.join("repair.jsonl"))
        .shadow_log(Some(dir.join("diffs.jsonl")))
        .build()
        .expect("build a router");
    Some((router, new, dir))
}

async fn equal(router: &Router, new: &Store) -> bool {
    let report = chatstore_migrate::verify(
        router.old(),
        new,
        &[ModelGroup::Workspace],
        &chatstore_migrate::Silent,
    )
    .await
    .expect("verify");
    if !report.equal {
        eprintln!("{:?}", report.differing_ids());
    }
    report.equal
}

/// In `dual`, a batch reaches both stores; a batch the new store refuses still succeeds for
/// the caller, its rows are logged by table and primary key, and `reconcile` re-copies them
/// from the old store once the cause is gone.
async fn a_write_the_new_store_refuses_is_logged_by_key_and_reconciled(pair: Pair) {
    let Some((router, new, _dir)) = router(pair, Phase::Dual).await else {
        return;
    };
    let rows = router.store().rows().expect("routed rows");
    rows.write(vec![
        RowOp::Insert {
            table: notes(),
            row: note("n1", "u1", "Groceries"),
        },
        RowOp::Insert {
            table: notes(),
            row: note("n2", "u1", "Books"),
        },
    ])
    .await
    .expect("insert notes");
    assert!(equal(&router, &new).await);

    // Behind the router's back, the new store holds another prompt with the command `/sum`.
    let squatter = prompt("zz", "/sum");
    new.rows()
        .expect("rows")
        .write(vec![RowOp::Insert {
            table: prompts(),
            row: squatter,
        }])
        .await
        .expect("squatter");
    rows.write(vec![RowOp::Insert {
        table: prompts(),
        row: prompt("p1", "/sum"),
    }])
    .await
    .expect("the old store decides the answer");
    let pending = router.repair_log().pending().expect("log");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].group, ModelGroup::Workspace);
    assert_eq!(
        pending[0].key,
        RepairKey::Row {
            table: "prompt".into(),
            key: [("id".to_owned(), "p1".to_owned())].into()
        }
    );

    // A refused batch never reaches the new store.
    let refused = rows
        .write(vec![
            RowOp::Insert {
                table: notes(),
                row: note("n3", "u1", "Films"),
            },
            RowOp::Insert {
                table: notes(),
                row: note("n1", "u1", "Taken"),
            },
        ])
        .await;
    assert!(refused.is_err());
    assert_eq!(
        new.rows()
            .expect("rows")
            .count(notes(), &[])
            .await
            .expect("count"),
        2
    );

    new.rows()
        .expect("rows")
        .write(vec![RowOp::Delete {
            table: prompts(),
            filter: vec![Cond::Eq("id", json!("zz"))],
        }])
        .await
        .expect("the operator removes the squatter");
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    assert!(equal(&router, &new).await);
}

/// An update or delete by filter logs every row it matched on the old store when the new
/// store changed a different number of rows (it lagged behind); reconcile brings each row,
/// its absence included.
async fn updates_and_deletes_by_filter_are_repaired_row_by_row(pair: Pair) {
    let Some((router, new, _dir)) = router(pair, Phase::Old).await else {
        return;
    };
    let rows = router.store().rows().expect("routed rows");
    let seed: Vec<RowOp> = ["n1", "n2", "n3"]
        .iter()
        .map(|id| RowOp::Insert {
            table: notes(),
            row: note(id, "u1", "Draft"),
        })
        .collect();
    rows.write(seed)
        .await
        .expect("notes written before the rollout");
    router
        .set_phase(ModelGroup::Workspace, Phase::Shadow)
        .await
        .expect("shadow");
    let counts = rows
        .write(vec![
            RowOp::Update {
                table: notes(),
                filter: vec![Cond::Eq("user_id", json!("u1"))],
                set: row([("title", json!("Final"))]),
            },
            RowOp::Delete {
                table: notes(),
                filter: vec![Cond::Eq("id", json!("n3"))],
            },
        ])
        .await
        .expect("the old store decides the answer");
    assert_eq!(counts, [3, 1]);
    let mut keys: Vec<String> = router
        .repair_log()
        .pending()
        .expect("log")
        .iter()
        .map(|e| e.key.describe())
        .collect();
    keys.sort();
    assert_eq!(keys, ["row:note/n1", "row:note/n2", "row:note/n3"]);
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (3, 0), "{report:?}");
    assert!(equal(&router, &new).await);
    let titles: Vec<_> = new
        .rows()
        .expect("rows")
        .select(notes(), &RowQuery::default())
        .await
        .expect("notes")
        .into_iter()
        .map(|r| r["title"].clone())
        .collect();
    assert_eq!(titles, [json!("Final"), json!("Final")]);
}

/// A row changed on the new store directly is one line in the diff log (group `workspace`,
/// operation `rows.select`, the field and both values) while the caller gets the old rows.
async fn a_row_changed_behind_the_routers_back_is_reported_by_a_shadow_read(pair: Pair) {
    let Some((router, new, dir)) = router(pair, Phase::Shadow).await else {
        return;
    };
    let rows = router.store().rows().expect("routed rows");
    rows.write(vec![RowOp::Insert {
        table: notes(),
        row: note("n1", "u1", "Groceries"),
    }])
    .await
    .expect("insert");
    new.rows()
        .expect("rows")
        .write(vec![RowOp::Update {
            table: notes(),
            filter: vec![Cond::Eq("id", json!("n1"))],
            set: row([("title", json!("Tampered"))]),
        }])
        .await
        .expect("change the new store directly");
    let read = rows
        .select(
            notes(),
            &RowQuery::filter(vec![Cond::Eq("user_id", json!("u1"))]),
        )
        .await
        .expect("shadowed read");
    assert_eq!(
        read[0]["title"], "Groceries",
        "the caller gets the old rows"
    );
    router.shadow_settled().await;
    assert_eq!(router.stats().shadow_diffs, 1);
    let log = std::fs::read_to_string(dir.join("diffs.jsonl")).expect("diff log");
    let line: serde_json::Value = serde_json::from_str(log.trim()).expect("one JSON line");
    assert_eq!(line["group"], "workspace");
    assert_eq!(line["operation"], "rows.select");
    let field = &line["fields"][0];
    assert_eq!(field["path"], "/0/title");
    assert_eq!(
        (&field["old"], &field["new"]),
        (&json!("Groceries"), &json!("Tampered"))
    );
    assert!(!equal(&router, &new).await);
}

/// Rows written in `new` (read from the new store) are all on the old store after moving
/// back to `old`.
async fn backout_from_new_to_old_loses_no_row(pair: Pair) {
    let Some((router, new, _dir)) = router(pair, Phase::New).await else {
        return;
    };
    let rows = router.store().rows().expect("routed rows");
    rows.write(vec![
        RowOp::Insert {
            table: notes(),
            row: note("n1", "u1", "Groceries"),
        },
        RowOp::Insert {
            table: prompts(),
            row: prompt("p1", "/sum"),
        },
    ])
    .await
    .expect("insert");
    rows.write(vec![RowOp::Update {
        table: notes(),
        filter: vec![Cond::Eq("id", json!("n1"))],
        set: row([("title", json!("Groceries, Sunday"))]),
    }])
    .await
    .expect("update");
    assert_eq!(rows.count(notes(), &[]).await.expect("count from new"), 1);
    router
        .set_phase(ModelGroup::Workspace, Phase::Old)
        .await
        .expect("back out");
    let back = rows
        .select(notes(), &RowQuery::default())
        .await
        .expect("old rows");
    assert_eq!(back[0]["title"], "Groceries, Sunday");
    // The one entry: the group is behind on the new store from now on.
    let pending = router.repair_log().pending().expect("log");
    let keys: Vec<_> = pending.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys, [RepairKey::Group(ModelGroup::Workspace)]);
    assert!(equal(&router, &new).await);
}

macro_rules! on_every_pair {
    ($($scenario:ident),* $(,)?) => {
        mod memory_memory {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::Pair::Memory).await;
            }
        )*}
        mod sqlite_pocketbase {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                super::$scenario(super::Pair::SqlitePocketBase).await;
            }
        )*}
    };
}

on_every_pair!(
    a_write_the_new_store_refuses_is_logged_by_key_and_reconciled,
    updates_and_deletes_by_filter_are_repaired_row_by_row,
    a_row_changed_behind_the_routers_back_is_reported_by_a_shadow_read,
    backout_from_new_to_old_loses_no_row,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pocketbase_repairs_rows_by_key() {
    a_write_the_new_store_refuses_is_logged_by_key_and_reconciled(Pair::PostgresPocketBase).await;
}
