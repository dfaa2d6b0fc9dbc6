//! Reconciling while another process writes the same record: a replica in `dual` that writes
//! a user to both stores while `reconcile` copies that user must not have its write on the new
//! store replaced by the older state the copy read first.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatstore_core::users::{NewUser, User, UserPatch, UserRepo};
use chatstore_core::{ModelGroup, Page, PageRequest, Result, Store, StoreParts, memory};
use chatstore_router::{Phase, RepairEntry, RepairKey, Router, Side};

type Hook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A user repository that runs a hook (another process's write) the first time a user is
/// read from it, before answering.
struct RacingUsers {
    inner: Arc<dyn UserRepo>,
    hook: Mutex<Option<Hook>>,
}

impl RacingUsers {
    async fn race(&self) {
        let hook = self.hook.lock().expect("hook").take();
        if let Some(hook) = hook {
            hook.await;
        }
    }
}

#[async_trait]
impl UserRepo for RacingUsers {
    async fn create(&self, user: NewUser) -> Result<User> {
        self.inner.create(user).await
    }
    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        self.inner.create_many(users).await
    }
    async fn get(&self, id: &str) -> Result<User> {
        self.race().await;
        self.inner.get(id).await
    }
    async fn get_by_email(&self, email: &str) -> Result<User> {
        self.inner.get_by_email(email).await
    }
    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        self.inner.update(id, patch).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.inner.delete(id).await
    }
    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        self.inner.list(page).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        self.inner.scan(after, limit).await
    }
    async fn session_stamp(&self, id: &str) -> Result<Option<String>> {
        self.inner.session_stamp(id).await
    }
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
    let parts = new.parts();
    let racing = Store::new(
        "memory (racing)",
        new.capabilities(),
        StoreParts {
            users: Arc::new(RacingUsers {
                inner: parts.users.clone(),
                hook: Mutex::new(Some(hook)),
            }),
            ..parts
        },
    );
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
