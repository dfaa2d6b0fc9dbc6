//! Fresh stores and routers for the router's tests: SQLite files, PostgreSQL databases and
//! PocketBase collection sets of their own, and log files in a folder of their own.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chatstore_core::Store;
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use chatstore_router::{Phase, Router};
use chatstore_sql::SqlOptions;

/// When [`same_user`] creates its user.
pub const USER_CREATED: i64 = 1_700_000_000;

/// Creates user `id` (Ada, `ada@example.com`) on each of `stores` with the same timestamps
/// ([`USER_CREATED`]): left to "now", two creations may fall on two sides of a second, and
/// the stores then hold users a repair cannot make equal.
pub async fn same_user(stores: &[&Store], id: &str) {
    for store in stores {
        store
            .users
            .create(chatstore_core::NewUser {
                created_at: Some(USER_CREATED),
                ..chatstore_core::NewUser::new("ada@example.com", "Ada").with_id(id)
            })
            .await
            .expect("the same user on every store");
    }
}

/// A new folder under the system temp folder.
pub fn temp_folder(kind: &str) -> PathBuf {
    chatstore_testkit::scratch_folder("chatstore-router-tests", kind)
}

/// A router over `old` and `new` (for every group `new` can store) with every such group in
/// `phase`, logs in a new folder.
pub fn router(old: Store, new: &Store, phase: Phase) -> Router {
    let dir = temp_folder("logs");
    Router::builder(old)
        .new_store_for_all(new)
        .phase_for_all(phase)
        .repair_log(dir.join("repair.jsonl"))
        .shadow_log(Some(dir.join("diffs.jsonl")))
        .build()
        .expect("build a router")
}

/// A new SQLite file.
pub async fn sqlite() -> Store {
    let dir = temp_folder("sqlite");
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    chatstore_sql::connect(&url, SqlOptions::default())
        .await
        .expect("open a new SQLite file")
}

/// A new PostgreSQL database on the test server, or `None` without one; its file bytes go to a
/// temporary folder (PostgreSQL's default, `data/uploads` in the working folder, would be the
/// crate's own folder under `cargo test`).
pub async fn postgres() -> Option<Store> {
    let server = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    let options = SqlOptions::default()
        .max_connections(4)
        .upload_dir(temp_folder("uploads"));
    Some(
        chatstore_sql::connect(&url, options)
            .await
            .expect("open a new PostgreSQL database"),
    )
}

fn fresh_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("r{:x}{:x}{n}_", std::process::id(), nanos % 0xffff_ffff)
}

/// The shared test PocketBase's URL and superuser, or `None` without one.
pub fn pocketbase_server() -> Option<(String, String, String)> {
    let url = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} must be set with the URL"))
    };
    Some((
        url,
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
    ))
}

/// Collections of their own on a PocketBase server, dropped with the store.
pub async fn pocketbase_at(url: &str, email: &str, password: &str) -> Store {
    let config = PocketBaseConfig::new(url, email, password)
        .with_prefix(fresh_prefix())
        .dropping_collections_on_drop();
    match PocketBase::connect(config).await {
        Ok(pb) => pb.store(),
        Err(e) => panic!("cannot connect to PocketBase: {e}"),
    }
}

/// Collections of their own on the shared test PocketBase, or `None` without one.
pub async fn pocketbase() -> Option<Store> {
    let (url, email, password) = pocketbase_server()?;
    Some(pocketbase_at(&url, &email, &password).await)
}

/// A one-shot piece of work a [`HookedUsers`] runs inside a call.
pub type Hook = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A user repository that runs a hook before its first `get` (another process's write landing
/// mid-way) and another before its first `create` (a slow store), then answers as `inner`;
/// or one whose updates answer `Unavailable` (see [`HookedUsers::losing_updates`]).
pub struct HookedUsers {
    inner: std::sync::Arc<dyn chatstore_core::users::UserRepo>,
    before_get: std::sync::Mutex<Option<Hook>>,
    before_create: std::sync::Mutex<Option<Hook>>,
    /// Updates answer `Unavailable`: after writing (`Some(true)`) or without (`Some(false)`).
    lost_updates: Option<bool>,
}

impl HookedUsers {
    /// `store` with its users behind the hooks.
    pub fn around(store: &Store, before_get: Option<Hook>, before_create: Option<Hook>) -> Store {
        Self::wrap(store, before_get, before_create, None)
    }

    /// `store` whose user updates answer `Unavailable` (a connection lost mid-call), after
    /// writing when `writes`, else without writing.
    pub fn losing_updates(store: &Store, writes: bool) -> Store {
        Self::wrap(store, None, None, Some(writes))
    }

    fn wrap(
        store: &Store,
        before_get: Option<Hook>,
        before_create: Option<Hook>,
        lost_updates: Option<bool>,
    ) -> Store {
        let parts = store.parts();
        let users = HookedUsers {
            inner: parts.users.clone(),
            before_get: std::sync::Mutex::new(before_get),
            before_create: std::sync::Mutex::new(before_create),
            lost_updates,
        };
        let parts = chatstore_core::StoreParts {
            users: std::sync::Arc::new(users),
            ..parts
        };
        let hooked = Store::new("hooked", store.capabilities(), parts);
        match store.changes() {
            Some(feed) => hooked.with_changes(feed),
            None => hooked,
        }
    }
}

async fn run_once(hook: &std::sync::Mutex<Option<Hook>>) {
    let hook = hook.lock().expect("hook").take();
    if let Some(hook) = hook {
        hook.await;
    }
}

#[async_trait::async_trait]
impl chatstore_core::users::UserRepo for HookedUsers {
    async fn create(
        &self,
        user: chatstore_core::NewUser,
    ) -> chatstore_core::Result<chatstore_core::User> {
        run_once(&self.before_create).await;
        self.inner.create(user).await
    }
    async fn create_many(
        &self,
        users: Vec<chatstore_core::NewUser>,
    ) -> chatstore_core::Result<Vec<chatstore_core::User>> {
        self.inner.create_many(users).await
    }
    async fn get(&self, id: &str) -> chatstore_core::Result<chatstore_core::User> {
        run_once(&self.before_get).await;
        self.inner.get(id).await
    }
    async fn get_by_email(&self, email: &str) -> chatstore_core::Result<chatstore_core::User> {
        self.inner.get_by_email(email).await
    }
    async fn update(
        &self,
        id: &str,
        patch: chatstore_core::UserPatch,
    ) -> chatstore_core::Result<chatstore_core::User> {
        match self.lost_updates {
            None => self.inner.update(id, patch).await,
            Some(writes) => {
                if writes {
                    self.inner.update(id, patch).await?;
                }
                Err(chatstore_core::Error::unavailable(
                    "the connection was lost",
                    "connection reset by peer",
                ))
            }
        }
    }
    async fn set_last_active(&self, id: &str, at: i64) -> chatstore_core::Result<()> {
        self.inner.set_last_active(id, at).await
    }
    async fn delete(&self, id: &str) -> chatstore_core::Result<()> {
        self.inner.delete(id).await
    }
    async fn list(
        &self,
        page: chatstore_core::PageRequest,
    ) -> chatstore_core::Result<chatstore_core::Page<chatstore_core::User>> {
        self.inner.list(page).await
    }
    async fn scan(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<chatstore_core::User>> {
        self.inner.scan(after, limit).await
    }
    async fn session_stamp(&self, id: &str) -> chatstore_core::Result<Option<String>> {
        self.inner.session_stamp(id).await
    }
}

/// A chat repository whose `add_tag` (or `remove_tag`) waits `delay` first (a slow store),
/// then answers as `inner`.
pub struct SlowTagging {
    inner: std::sync::Arc<dyn chatstore_core::chats::ChatRepo>,
    delay: std::time::Duration,
    /// `remove_tag` is the slow one, not `add_tag`.
    removing: bool,
}

impl SlowTagging {
    /// `store` with its chats' `add_tag` slowed by `delay`.
    pub fn around(store: &Store, delay: std::time::Duration) -> Store {
        Self::wrapping(store, delay, false)
    }

    /// `store` with its chats' `remove_tag` slowed by `delay`.
    pub fn removing(store: &Store, delay: std::time::Duration) -> Store {
        Self::wrapping(store, delay, true)
    }

    fn wrapping(store: &Store, delay: std::time::Duration, removing: bool) -> Store {
        let parts = store.parts();
        let chats = SlowTagging {
            inner: parts.chats.clone(),
            delay,
            removing,
        };
        let parts = chatstore_core::StoreParts {
            chats: std::sync::Arc::new(chats),
            ..parts
        };
        Store::new("slow-tagging", store.capabilities(), parts)
    }
}

#[async_trait::async_trait]
impl chatstore_core::chats::ChatRepo for SlowTagging {
    async fn create(
        &self,
        chat: chatstore_core::NewChat,
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.create(chat).await
    }
    async fn create_many(
        &self,
        chats: Vec<chatstore_core::NewChat>,
    ) -> chatstore_core::Result<Vec<chatstore_core::Chat>> {
        self.inner.create_many(chats).await
    }
    async fn get(&self, id: &str) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.get(id).await
    }
    async fn update(
        &self,
        id: &str,
        patch: chatstore_core::ChatPatch,
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.update(id, patch).await
    }
    async fn delete(&self, id: &str) -> chatstore_core::Result<()> {
        self.inner.delete(id).await
    }
    async fn delete_for_user(&self, user_id: &str) -> chatstore_core::Result<u64> {
        self.inner.delete_for_user(user_id).await
    }
    async fn list(
        &self,
        query: &chatstore_core::ChatQuery,
    ) -> chatstore_core::Result<chatstore_core::Page<chatstore_core::chats::ChatSummary>> {
        self.inner.list(query).await
    }
    async fn set_tags(
        &self,
        id: &str,
        names: &[String],
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        self.inner.set_tags(id, names).await
    }
    async fn add_tag(&self, id: &str, name: &str) -> chatstore_core::Result<chatstore_core::Chat> {
        if !self.removing {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.add_tag(id, name).await
    }
    async fn remove_tag(
        &self,
        id: &str,
        name_or_id: &str,
    ) -> chatstore_core::Result<chatstore_core::Chat> {
        if self.removing {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.remove_tag(id, name_or_id).await
    }
    async fn scan(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> chatstore_core::Result<Vec<chatstore_core::Chat>> {
        self.inner.scan(after, limit).await
    }
}

/// A row store whose writes wait first: `delete_delay` before a write holding a delete,
/// `insert_delay` before one holding an insert (a slow store), then answer as `inner`.
pub struct SlowRows {
    inner: std::sync::Arc<dyn chatstore_core::rows::RowStore>,
    delete_delay: std::time::Duration,
    insert_delay: std::time::Duration,
}

impl SlowRows {
    /// `store` with its row writes slowed.
    pub fn around(
        store: &Store,
        delete_delay: std::time::Duration,
        insert_delay: std::time::Duration,
    ) -> Store {
        let rows = SlowRows {
            inner: store.rows().expect("rows"),
            delete_delay,
            insert_delay,
        };
        store.clone().with_checked_rows(std::sync::Arc::new(rows))
    }
}

#[async_trait::async_trait]
impl chatstore_core::rows::RowStore for SlowRows {
    async fn select(
        &self,
        table: &'static chatstore_core::rows::Table,
        query: &chatstore_core::rows::RowQuery,
    ) -> chatstore_core::Result<Vec<chatstore_core::rows::Row>> {
        self.inner.select(table, query).await
    }
    async fn count(
        &self,
        table: &'static chatstore_core::rows::Table,
        filter: &[chatstore_core::rows::Cond],
    ) -> chatstore_core::Result<u64> {
        self.inner.count(table, filter).await
    }
    async fn write(
        &self,
        ops: Vec<chatstore_core::rows::RowOp>,
    ) -> chatstore_core::Result<Vec<u64>> {
        use chatstore_core::rows::RowOp;
        if ops.iter().any(|op| matches!(op, RowOp::Delete { .. })) {
            tokio::time::sleep(self.delete_delay).await;
        }
        if ops.iter().any(|op| matches!(op, RowOp::Insert { .. })) {
            tokio::time::sleep(self.insert_delay).await;
        }
        self.inner.write(ops).await
    }
}
