//! Reconciling while another process writes the same record: a replica in `dual` that writes
//! a user to both stores while `reconcile` copies that user must not have its write on the new
//! store replaced by the older state the copy read first.

mod common;

use chatstore_core::users::{NewUser, UserPatch};
use chatstore_core::{ModelGroup, memory};
use chatstore_router::{Phase, RepairEntry, RepairKey, Router, Side};

use common::{Hook, HookedUsers};

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
    for store in [&old, &new] {
        store
            .users
            .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
            .await
            .expect("create u1");
    }
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
    let dir = common::temp_folder("reconcile-race");
    let router = Router::builder(old.clone())
        .new_store(ModelGroup::Users, racing)
        .phase(ModelGroup::Users, Phase::Dual)
        .repair_log(dir.join("repair.jsonl"))
        .build()
        .expect("router");
    router
        .repair_log()
        .append(&[RepairEntry {
            id: "e1".into(),
            time: 0,
            group: ModelGroup::Users,
            key: RepairKey::User("u1".into()),
            operation: "users.update".into(),
            source: Side::Old,
            reason: "the new store failed".into(),
        }])
        .expect("log the repair");

    let report = router.reconcile(&|_, _| {}).await.expect("reconcile");
    assert_eq!((report.repaired, report.remaining), (1, 0), "{report:?}");
    let on_old = old.users.get("u1").await.expect("old").name;
    let on_new = new.users.get("u1").await.expect("new").name;
    assert_eq!(on_old, "Ada King");
    assert_eq!(on_new, on_old, "the new store kept the copy's older state");
}
