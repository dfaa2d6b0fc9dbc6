//! The registry of benchmarkable backends.
//!
//! Stores are opened through chatstore-registry, as every chatstore tool opens them; only the
//! raw baselines talk to the drivers.
//!
//! A backend is a name, the environment variable that points at its server (none for an
//! embedded backend), a function that opens a fresh, empty [`Store`] on it, and optionally a
//! [`RawBaseline`] doing the same operations directly on the driver. [`registry`] lists them;
//! the report and the criterion benches run every one whose server is configured and name
//! the others in a line saying why they were left out.
//!
//! Adding a backend is one entry in [`registry`] (and, for its baseline, one type implementing
//! [`RawBaseline`]):
//!
//! ```ignore
//! BackendSpec::server("postgres", "CHATSTORE_TEST_POSTGRES_URL", |url| {
//!     Box::pin(async move {
//!         let url = url.unwrap_or_default();
//!         let store = chatstore_registry::open(&url).await?;
//!         Ok(Opened::new(store))
//!     })
//! })
//! .with_baseline_target(1.15),
//! ```

use std::future::Future;
use std::pin::Pin;

use std::path::PathBuf;

use chatstore_core::{Error, Result, Store};
use chatstore_pocketbase::{Collections, PocketBaseConfig};
use chatstore_registry::OpenOptions;
use chatstore_router::{Phase, Router};
use chatstore_sql::SqlOptions;
use sqlx::postgres::PgConnectOptions;

use crate::baseline::RawBaseline;
use crate::raw_pocketbase::RawHttp;
use crate::raw_sql::RawSqlx;

/// The future that opens a backend.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Opened>> + Send>>;

/// How a backend is opened: given the value of its server variable (`None` for an embedded
/// backend), a future giving a fresh, empty store.
pub type OpenFn = fn(Option<String>) -> OpenFuture;

/// The future that tears a backend's run down (closes pools, drops the bench database).
pub type TeardownFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// What to do once a run of a backend is over.
pub type Teardown = Box<dyn FnOnce() -> TeardownFuture + Send>;

/// Waits until a store's background work (the router's shadow reads) has finished, so the
/// next timed call does not share the machine with the previous call's leftovers.
pub type Settle = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A backend opened for one benchmark run: a fresh, empty store and, when the backend has
/// one, its raw baseline on the same database.
pub struct Opened {
    /// The store under test.
    pub store: Store,
    /// The same operations written directly against the driver, when there is such a thing.
    pub baseline: Option<Box<dyn RawBaseline>>,
    /// Called when the run is over: closes pools, removes temporary folders, drops the
    /// bench database.
    pub teardown: Option<Teardown>,
    /// Run (untimed) after every timed call of the store, when the store works in the
    /// background after answering.
    pub settle: Option<Settle>,
    /// Stores measured alone in the same loop as the store under test, each operation's
    /// samples interleaved with its samples (the router's old and new stores): what the
    /// rollout router's targets compare with.
    pub references: Vec<Reference>,
    /// The router, when the store under test is one: its counters go into the report.
    pub router: Option<Router>,
}

/// A store measured alone beside the store under test, in the same loop.
pub struct Reference {
    /// Its name in the report (`sqlite`, `pocketbase`).
    pub name: &'static str,
    /// The store, alone.
    pub store: Store,
    /// Another reference's store that each call also runs on at the same time, on a task of
    /// its own (as the router runs a dual write's second store); the call is timed until both
    /// answered. `None` for a store alone.
    pub alongside: Option<Store>,
    /// The store under test's own inner store (the router's old store), called directly:
    /// loaded and cleaned up through the store under test, and only read (a write on it alone
    /// would leave the router's two stores different).
    pub inner: bool,
}

impl Reference {
    /// Whether this reference is loaded with the workload and cleaned up on its own.
    pub fn separate(&self) -> bool {
        self.alongside.is_none() && !self.inner
    }

    /// Whether `op` runs on this reference.
    pub fn runs(&self, op: crate::ops::Op) -> bool {
        !self.inner || op.is_read()
    }
}

impl Opened {
    /// A backend without a raw baseline.
    pub fn new(store: Store) -> Self {
        Opened {
            store,
            baseline: None,
            teardown: None,
            settle: None,
            references: Vec::new(),
            router: None,
        }
    }

    /// With `store`, measured alone under `name` in the same loop as the store under test.
    pub fn with_reference(mut self, name: &'static str, store: Store) -> Self {
        self.references.push(Reference {
            name,
            store,
            alongside: None,
            inner: false,
        });
        self
    }

    /// With `store`, a store inside the store under test (the router's old store), read
    /// directly under `name` in the same loop (see [`Reference::inner`]).
    pub fn with_inner_reference(mut self, name: &'static str, store: Store) -> Self {
        self.references.push(Reference {
            name,
            store,
            alongside: None,
            inner: true,
        });
        self
    }

    /// With the same call on two reference stores at once (`second` on a task of its own),
    /// measured under `name` in the same loop; both stores must be references already (they
    /// are loaded and cleaned up as such).
    pub fn with_both_at_once(mut self, name: &'static str, first: Store, second: Store) -> Self {
        self.references.push(Reference {
            name,
            store: first,
            alongside: Some(second),
            inner: false,
        });
        self
    }

    /// With a wait for the store's background work, run after each of its timed calls.
    pub fn with_settle(mut self, settle: Settle) -> Self {
        self.settle = Some(settle);
        self
    }

    /// With a raw baseline that works on the same database as the store.
    pub fn with_baseline(mut self, baseline: impl RawBaseline + 'static) -> Self {
        self.baseline = Some(Box::new(baseline));
        self
    }

    /// With a clean-up to run when the run is over.
    pub fn with_teardown(mut self, teardown: Teardown) -> Self {
        self.teardown = Some(teardown);
        self
    }

    /// Runs the clean-up, if any, after dropping the store and baseline. The store's
    /// background work (pgvector's automatic index builds) is waited for first, so that
    /// dropping its database cuts nothing off.
    pub async fn close(self) -> Result<()> {
        let Opened {
            store,
            baseline,
            teardown,
            settle,
            references,
            router,
        } = self;
        if let Err(e) = store.vectors.settle().await {
            eprintln!("closing the bench's store: its background work did not settle: {e}");
        }
        drop(router);
        drop(references);
        drop(settle);
        drop(baseline);
        drop(store);
        match teardown {
            Some(teardown) => teardown().await,
            None => Ok(()),
        }
    }
}

/// One benchmarkable backend.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// Its name in reports, charts and `--backends`.
    pub name: &'static str,
    /// The environment variable holding its server's URL; `None` for embedded backends.
    pub server_env: Option<&'static str>,
    /// The largest acceptable ratio of adapter to raw-baseline latency (p50), when the project
    /// sets one; the report says by how much a miss misses.
    pub baseline_target: Option<f64>,
    /// The smallest acceptable ratio of the adapter's load throughput to the raw baseline's
    /// bulk import, when the project sets one.
    pub import_target: Option<f64>,
    /// Whether the report streams files through this backend (see [`crate::streaming`]).
    pub streams: bool,
    /// The smallest acceptable ratio of the adapter's streaming throughput to the raw
    /// client's, when the project sets one.
    pub stream_target: Option<f64>,
    open: OpenFn,
}

impl BackendSpec {
    /// A backend that needs no server.
    pub fn embedded(name: &'static str, open: OpenFn) -> Self {
        BackendSpec {
            name,
            server_env: None,
            baseline_target: None,
            import_target: None,
            streams: true,
            stream_target: None,
            open,
        }
    }

    /// A backend whose server URL is in the environment variable `env`; it is left out of runs
    /// when the variable is unset or empty.
    pub fn server(name: &'static str, env: &'static str, open: OpenFn) -> Self {
        BackendSpec {
            name,
            server_env: Some(env),
            baseline_target: None,
            import_target: None,
            streams: true,
            stream_target: None,
            open,
        }
    }

    /// Sets the largest acceptable adapter/raw p50 ratio.
    pub fn with_baseline_target(mut self, ratio: f64) -> Self {
        self.baseline_target = Some(ratio);
        self
    }

    /// Sets the smallest acceptable adapter/raw bulk-import throughput ratio (e.g. `0.8`).
    pub fn with_import_target(mut self, ratio: f64) -> Self {
        self.import_target = Some(ratio);
        self
    }

    /// Leaves the backend out of the streaming section (an in-memory store holds every file
    /// by design; the router's phases are compositions of backends streamed on their own).
    pub fn without_streaming(mut self) -> Self {
        self.streams = false;
        self
    }

    /// Sets the smallest acceptable adapter/raw streaming throughput ratio (e.g. `0.8`).
    pub fn with_stream_target(mut self, ratio: f64) -> Self {
        self.stream_target = Some(ratio);
        self
    }

    /// The server URL to use (`Ok(None)` for an embedded backend), or why the backend cannot
    /// run here.
    pub fn availability(&self) -> std::result::Result<Option<String>, String> {
        match self.server_env {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => Ok(Some(url)),
                _ => Err(format!(
                    "{var} is unset (start the servers with `eval \"$(scripts/services.sh start)\"`)"
                )),
            },
        }
    }

    /// Opens a fresh, empty store on this backend.
    pub async fn open(&self, url: Option<String>) -> Result<Opened> {
        (self.open)(url).await
    }
}

/// Every backend this build can benchmark, in report order.
pub fn registry() -> Vec<BackendSpec> {
    vec![
        BackendSpec::embedded(chatstore_core::memory::BACKEND, |_| {
            Box::pin(async { Ok(Opened::new(OpenOptions::new("memory").open().await?)) })
        })
        .without_streaming(),
        BackendSpec::embedded("sqlite", |_| Box::pin(open_sqlite()))
            .with_baseline_target(1.15)
            .with_stream_target(0.8),
        BackendSpec::server("postgres", POSTGRES_ENV, |url| {
            Box::pin(open_postgres(url.unwrap_or_default()))
        })
        .with_baseline_target(1.15)
        .with_stream_target(0.8),
        BackendSpec::server("pocketbase", POCKETBASE_ENV, |url| {
            Box::pin(open_pocketbase(url.unwrap_or_default()))
        })
        .with_baseline_target(1.15)
        .with_import_target(0.8)
        .with_stream_target(0.8),
        // Vectors only (Chroma stores nothing else): the vector rows of the report, beside
        // SQLite's and pgvector's.
        BackendSpec::server("chroma", CHROMA_ENV, |url| {
            Box::pin(open_chroma(url.unwrap_or_default()))
        })
        .without_streaming(),
        // The rollout router over SQLite (old) and PocketBase (new), one backend per phase;
        // compare with `sqlite` (reads, shadow overhead) and `pocketbase` (dual writes, the
        // slower store) in the same run.
        BackendSpec::server("router-old", POCKETBASE_ENV, |url| {
            Box::pin(open_routed(url.unwrap_or_default(), Phase::Old))
        })
        .without_streaming(),
        BackendSpec::server("router-dual", POCKETBASE_ENV, |url| {
            Box::pin(open_routed(url.unwrap_or_default(), Phase::Dual))
        })
        .without_streaming(),
        BackendSpec::server("router-shadow", POCKETBASE_ENV, |url| {
            Box::pin(open_routed(url.unwrap_or_default(), Phase::Shadow))
        })
        .without_streaming(),
        BackendSpec::server("router-new", POCKETBASE_ENV, |url| {
            Box::pin(open_routed(url.unwrap_or_default(), Phase::New))
        })
        .without_streaming(),
        BackendSpec::server("router-new-only", POCKETBASE_ENV, |url| {
            Box::pin(open_routed(url.unwrap_or_default(), Phase::NewOnly))
        })
        .without_streaming(),
    ]
}

/// The name of the shadow run's reference that reads the router's own old store directly,
/// without the router.
pub const ROUTER_OLD_DIRECT: &str = "the router's sqlite";

/// The name of the dual-write run's reference that runs each call on SQLite and PocketBase at
/// once, without the router.
pub const BOTH_AT_ONCE: &str = "sqlite + pocketbase at once";

/// The rollout router in `phase` over a fresh SQLite store (old) and fresh PocketBase
/// collections (new), every group PocketBase stores routed, logs in a fresh folder; both
/// stores are torn down with the run.
///
/// Beside it, a second fresh SQLite store and second fresh PocketBase collections are the run's
/// references (`sqlite`, `pocketbase`): loaded with the same workload and measured alone in the
/// same loop as the router, so a routed call and the calls it is compared with are timed under
/// the same conditions. In `dual`, a third reference runs each call on both of them at once
/// ([`BOTH_AT_ONCE`]): what the machine charges for two stores' calls together. They are stores of their own, not the router's: a write measured on
/// one store alone would leave the router's two stores different, and the router would then
/// (rightly) spend time logging repairs and differences that a real rollout does not have.
async fn open_routed(pocketbase_url: String, phase: Phase) -> Result<Opened> {
    let mut opened: Vec<Opened> = Vec::with_capacity(4);
    for sqlite in [true, false, true, false] {
        let next = if sqlite {
            open_sqlite().await
        } else {
            open_pocketbase(pocketbase_url.clone()).await
        };
        match next {
            Ok(next) => opened.push(next),
            Err(e) => {
                close_all(opened).await;
                return Err(e);
            }
        }
    }
    let (old, new, ref_old, ref_new) = (
        opened[0].store.clone(),
        opened[1].store.clone(),
        opened[2].store.clone(),
        opened[3].store.clone(),
    );
    let router = fresh_dir("router").and_then(|dir| {
        let router = Router::builder(old)
            .new_store_for_all(&new)
            .phase_for_all(phase)
            .repair_log(dir.join("repair.jsonl"))
            .shadow_log(Some(dir.join("shadow-diffs.jsonl")))
            .build();
        if router.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        router.map(|r| (r, dir))
    });
    let (router, dir) = match router {
        Ok(pair) => pair,
        Err(e) => {
            close_all(opened).await;
            return Err(e);
        }
    };
    let settled = router.clone();
    let mut routed = Opened::new(router.store());
    routed.router = Some(router);
    let routed = routed
        .with_reference("sqlite", ref_old.clone())
        .with_reference("pocketbase", ref_new.clone());
    // A shadowed read against the very store the router reads first, called directly: the
    // same file, connections and threads, so the ratio holds no difference between two
    // stores, only the router's.
    let routed = if phase == Phase::Shadow {
        routed.with_inner_reference(ROUTER_OLD_DIRECT, opened[0].store.clone())
    } else {
        routed
    };
    // What running both stores' calls at once costs on this machine without the router: a
    // dual write cannot be cheaper than that.
    let routed = if phase == Phase::Dual {
        routed.with_both_at_once(BOTH_AT_ONCE, ref_old, ref_new)
    } else {
        routed
    };
    Ok(routed
        .with_settle(Box::new(move || {
            let router = settled.clone();
            Box::pin(async move { router.shadow_settled().await })
        }))
        .with_teardown(Box::new(move || {
            Box::pin(async move {
                let mut result = Ok(());
                for store in opened {
                    result = result.and(store.close().await);
                }
                let _ = std::fs::remove_dir_all(&dir);
                result
            })
        })))
}

/// Closes every opening (after a failure; errors are dropped, the first one is reported).
async fn close_all(opened: Vec<Opened>) {
    for store in opened {
        let _ = store.close().await;
    }
}

/// The variable holding the PostgreSQL server's URL (the contract tests' own).
pub const POSTGRES_ENV: &str = "CHATSTORE_TEST_POSTGRES_URL";

/// The variable holding the PocketBase server's URL; its superuser's credentials are in
/// `CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL` and `CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD`.
pub const POCKETBASE_ENV: &str = "CHATSTORE_TEST_POCKETBASE_URL";

/// The variable holding the Chroma server's URL (`http://HOST:PORT` or `chroma://HOST:PORT`).
pub const CHROMA_ENV: &str = "CHATSTORE_TEST_CHROMA_URL";

/// The variable holding the PostgreSQL + pgvector server's URL.
pub const PGVECTOR_ENV: &str = "CHATSTORE_TEST_PGVECTOR_URL";

/// A Chroma database `bench_<uuid>` created on the server at `url` (`http://HOST:PORT` or
/// `chroma://HOST:PORT`), opened through the registry as a vectors-only store (every other
/// aggregate answers "not supported"); the database is deleted when the run ends.
async fn open_chroma(url: String) -> Result<Opened> {
    open_chroma_database(url).await.map(|(opened, _)| opened)
}

/// [`open_chroma`]'s opening with the vectors URL of its database (to reach it another way
/// too).
pub async fn open_chroma_database(url: String) -> Result<(Opened, String)> {
    let database = create_chroma_database(&url).await?;
    let vectors_url = format!("chroma://{}?database={database}", chroma_authority(&url));
    let opened = OpenOptions::new("memory")
        .vectors_url(vectors_url.clone())
        .open()
        .await;
    let store = match opened {
        Ok(store) => vectors_only("chroma", &store),
        Err(e) => {
            let _ = drop_chroma_database(&url, &database).await;
            return Err(e);
        }
    };
    let opened = Opened::new(store).with_teardown(Box::new(move || {
        Box::pin(async move { drop_chroma_database(&url, &database).await })
    }));
    Ok((opened, vectors_url))
}

/// `store`'s vectors as a store of their own, named `name`: users, chats and files answer
/// "not supported" (a backend that holds only vectors).
pub fn vectors_only(name: &str, store: &Store) -> Store {
    let capabilities = chatstore_core::Capabilities {
        users: false,
        chats: false,
        files: false,
        vectors: true,
        atomic_bulk: false,
        change_feed: false,
        exact_vectors: store.capabilities().exact_vectors,
        half_vectors: store.capabilities().half_vectors,
    };
    Store::new(name, capabilities, store.parts())
}

/// `HOST:PORT` of a Chroma server URL (`http://`, `chroma://` or bare).
pub fn chroma_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// The database URL prefix of Chroma's HTTP API v2 for the default tenant.
fn chroma_databases(url: &str) -> String {
    format!(
        "http://{}/api/v2/tenants/default_tenant/databases",
        chroma_authority(url)
    )
}

/// Creates an empty Chroma database `bench_<uuid>` (default tenant); gives its name.
pub async fn create_chroma_database(url: &str) -> Result<String> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let answer = reqwest::Client::new()
        .post(chroma_databases(url))
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    match answer {
        Ok(_) => Ok(name),
        Err(e) => Err(Error::unavailable(
            format!("creating the Chroma bench database on {url}"),
            e,
        )),
    }
}

/// Deletes the Chroma database `name` (default tenant) with everything in it.
pub async fn drop_chroma_database(url: &str, name: &str) -> Result<()> {
    reqwest::Client::new()
        .delete(format!("{}/{name}", chroma_databases(url)))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(|e| Error::backend(format!("dropping the Chroma bench database {name}"), e))
}

/// A new, empty folder under the system's temporary folder, for one opening of an embedded
/// backend.
pub fn fresh_dir(backend: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "chatstore-bench-{backend}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::backend(format!("creating the bench folder {}", dir.display()), e))?;
    Ok(dir)
}

/// SQLite in a fresh temporary folder (database file and uploads), with raw sqlx on the same
/// file; the folder is removed when the run ends.
pub async fn open_sqlite() -> Result<Opened> {
    let dir = fresh_dir("sqlite")?;
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    let options = SqlOptions::default().upload_dir(dir.join("uploads"));
    let opened = async {
        let store = OpenOptions::new(&url)
            .upload_dir(dir.join("uploads"))
            .open()
            .await?;
        let raw = RawSqlx::sqlite(&url, &options).await?;
        Ok::<_, Error>((store, raw))
    }
    .await;
    let (store, raw) = match opened {
        Ok(pair) => pair,
        Err(e) => {
            // Nothing will tear this opening down: remove its folder now.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    Ok(Opened::new(store)
        .with_baseline(raw)
        .with_teardown(Box::new(move || {
            Box::pin(async move {
                std::fs::remove_dir_all(&dir).map_err(|e| {
                    Error::backend(format!("removing the bench folder {}", dir.display()), e)
                })
            })
        })))
}

/// PostgreSQL on a fresh database `bench_<uuid>` created on the server at `url`, with raw sqlx
/// on the same database; the database is dropped when the run ends.
async fn open_postgres(url: String) -> Result<Opened> {
    let (db_url, name) = create_postgres_database(&url).await?;
    let uploads = fresh_dir("postgres-uploads")?;
    let options = SqlOptions::default().upload_dir(&uploads);
    let opened = async {
        // Vectors on the same database through pgvector (Open WebUI's default layout: a
        // 1536-wide `document_chunk`, shorter vectors padded).
        let store = OpenOptions::new(&db_url)
            .upload_dir(&uploads)
            .open()
            .await?;
        if !store.capabilities().vectors {
            return Err(Error::invalid(format!(
                "the bench database has no pgvector vectors ({})",
                store.backend_name()
            )));
        }
        let raw = RawSqlx::postgres(&db_url, &options).await?;
        Ok::<_, Error>((store, raw))
    }
    .await;
    let (store, raw) = match opened {
        Ok(parts) => parts,
        Err(e) => {
            // Nothing will tear this opening down: drop its database and folder now.
            let _ = std::fs::remove_dir_all(&uploads);
            let _ = drop_postgres_database(&url, &name).await;
            return Err(e);
        }
    };
    Ok(Opened::new(store)
        .with_baseline(raw)
        .with_teardown(Box::new(move || {
            Box::pin(async move {
                let _ = std::fs::remove_dir_all(&uploads);
                drop_postgres_database(&url, &name).await
            })
        })))
}

/// Creates an empty database `bench_<uuid>` on the server of `url`; gives its URL and name.
pub async fn create_postgres_database(url: &str) -> Result<(String, String)> {
    use sqlx::{ConnectOptions, Connection};
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin: PgConnectOptions = url
        .parse()
        .map_err(|e| Error::invalid(format!("bad {POSTGRES_ENV}: {e}")))?;
    let mut conn = admin
        .connect()
        .await
        .map_err(|e| Error::backend("connecting to PostgreSQL", e))?;
    // The name is ours (hex digits), so it is safe to splice: CREATE DATABASE takes no
    // bound parameters.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .map_err(|e| Error::backend("creating the bench database", e))?;
    let _ = conn.close().await;
    let db_url = admin.database(&name).to_url_lossy().to_string();
    Ok((db_url, name))
}

/// Drops the bench database `name` on the server of `url`, closing what still uses it.
pub async fn drop_postgres_database(url: &str, name: &str) -> Result<()> {
    use sqlx::{ConnectOptions, Connection};
    let admin: PgConnectOptions = url
        .parse()
        .map_err(|e| Error::invalid(format!("bad {POSTGRES_ENV}: {e}")))?;
    let mut conn = admin
        .connect()
        .await
        .map_err(|e| Error::backend("connecting to PostgreSQL", e))?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .map_err(|e| Error::backend("dropping the bench database", e))?;
    let _ = conn.close().await;
    Ok(())
}

/// PocketBase collections under a fresh prefix on the server at `url` (superuser from
/// `CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL` / `_PASSWORD`), dropped when the store goes away,
/// with raw HTTP on the same collections.
async fn open_pocketbase(url: String) -> Result<Opened> {
    let var =
        |name: &str| std::env::var(name).map_err(|_| Error::invalid(format!("{name} is not set")));
    let (email, password) = (
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL")?,
        var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD")?,
    );
    let prefix = fresh_prefix();
    let host = url.trim_end_matches('/');
    let host = host
        .strip_prefix("http://")
        .ok_or_else(|| Error::invalid(format!("{POCKETBASE_ENV} must be an http:// URL")))?;
    let store = OpenOptions::new(format!("pocketbase://{host}"))
        .pocketbase_superuser(&email, &password)
        .pocketbase_prefix(&prefix)
        .throwaway(true)
        .open()
        .await?;
    let config = PocketBaseConfig::new(url, email, password);
    let raw = RawHttp::connect(&config, &Collections::new(&prefix)?).await?;
    Ok(Opened::new(store).with_baseline(raw))
}

/// A PocketBase collection prefix no other opening uses (letters and digits, then `_`).
fn fresh_prefix() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("b{}_", &id[..12])
}

/// Backends the project plans whose adapter crates are not part of this build yet, with the
/// crate each waits for. Whoever adds a backend to [`registry`] removes it here.
///
/// SQLite vectors are not a backend of their own: they are the `sqlite` store's vectors (its
/// `VectorRepo`), measured in that backend's vector rows.
pub const NOT_YET_BUILT: [(&str, &str); 0] = [];

/// The registered backends named in `names` (all of them when `names` is empty), or an error
/// naming the unknown ones and the known ones.
pub fn select(names: &[String]) -> std::result::Result<Vec<BackendSpec>, String> {
    let all = registry();
    if names.is_empty() {
        return Ok(all);
    }
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !all.iter().any(|b| b.name == *n))
        .collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = all.iter().map(|b| b.name).collect();
        let pending: Vec<&str> = unknown
            .iter()
            .copied()
            .filter(|n| NOT_YET_BUILT.iter().any(|(p, _)| p == n))
            .collect();
        let mut message = format!(
            "unknown backend(s) {}; this build knows {}",
            unknown.join(", "),
            known.join(", ")
        );
        if !pending.is_empty() {
            message.push_str(&format!(
                " ({} will join when their adapter crates land)",
                pending.join(", ")
            ));
        }
        return Err(message);
    }
    Ok(all
        .into_iter()
        .filter(|b| names.iter().any(|n| n == b.name))
        .collect())
}
