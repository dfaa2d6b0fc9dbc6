//! Reconciling while another process writes the same record: a replica in `dual` that writes
//! a user to both stores while `reconcile` copies that user must not have its write on the new
//! store replaced by the older state the copy read first.

mod common;

use chatstore_core::users::UserPatch;
use chatstore_core::{ModelGroup, Store, memory};
use chatstore_router::{Phase, RepairEntry, RepairKey, Router, Side};

use common::{Hook, HookedUsers};

/// A router over `old` with `new` as `group`'s new store in `dual`, whose repair log holds one
/// entry: `key`, to be copied from the old store.
fn router_with_a_repair(old: &Store, group: ModelGroup, new: Store, key: RepairKey) -> Router {
    let dir = common::temp_folder("reconcile-race");
    let router = Router::builder(old.clone())
        .new_store(group, new)
        .phase(group, Phase::Dual)
        .repair_log(dir.join("repair.jsonl"))
        .build()
        .expect("router");
    router
        .repair_log()
        .append(&[RepairEntry {
            id: "e1".into(),
            time: 0,
            group,
            key,
            operation: "a write".into(),
            source: Side::Old,
            reason: "the new store failed".into(),
        }])
        .expect("log the repair");
    router
}

fn renamed(name: &str) -> UserPatch {
    UserPatch {
        name: Some(name.into()),
        ..UserPatch::default()
    }
}

/// A user whose new-store write was missed is being reconciled when another process renames
/// it on both stores (after the copy read the old store, before it wrote the new one): the
/// stores end equal, holding that later name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_landing_while_reconcile_copies_the_record_is_kept() {
    let (old, new) = (memory::store(), memory::store());
    common::same_user(&[&old, &new], "u1").await;
    // The write the new store missed, and its repair entry.
    old.users
        .update("u1", renamed("Ada Lovelace"))
        .await
        .expect("rename on the old store");

    // Another process's dual write, run when the copy first reads the new store.
    let hook: Hook = {
        let (old, new) = (old.clone(), new.clone());
        Box::pin(async move {
            old.users
                .update("u1", renamed("Ada King"))
                .await
                .expect("rename on the old store");
            new.users
                .update("u1", renamed("Ada King"))
                .await
                .expect("rename on the new store");
        })
    };
    let racing = HookedUsers::around(&new, Some(hook), None);
    let router = router_with_a_repair(
        &old,
        ModelGroup::Users,
        racing,
        RepairKey::User("u1".into()),
    );

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    let on_old = old.users.get("u1").await.expect("old").name;
    let on_new = new.users.get("u1").await.expect("new").name;
    assert_eq!(on_old, "Ada King");
    assert_eq!(on_new, on_old, "the new store kept the copy's older state");
}

/// A vector collection's repair makes the new store's collection the old store's, item for
/// item (read from the old store again after the copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_repair_copies_the_old_stores_items() {
    use chatstore_core::VectorItem;
    let (old, new) = (memory::store(), memory::store());
    let item = |id: &str, x: f32| VectorItem {
        id: id.into(),
        vector: vec![x, 1.0, 0.5],
        text: format!("chunk {id}"),
        metadata: serde_json::Map::new(),
    };
    old.vectors
        .insert("kb", vec![item("v1", 0.1), item("v2", 0.2)])
        .await
        .expect("the old store's items");
    new.vectors
        .insert("kb", vec![item("v1", 0.9), item("v3", 0.3)])
        .await
        .expect("the new store's stale items");
    let router = router_with_a_repair(
        &old,
        ModelGroup::Vectors,
        new.clone(),
        RepairKey::Collection("kb".into()),
    );
    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    assert_eq!(
        new.vectors.get("kb").await.expect("new"),
        old.vectors.get("kb").await.expect("old")
    );
}
