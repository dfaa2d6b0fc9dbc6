//! The registry of benchmarkable backends.
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
//!         let store = chatstore_sql::open_fresh(&url).await?;
//!         Ok(Opened::new(store))
//!     })
//! })
//! .with_baseline_target(1.15),
//! ```

use std::future::Future;
use std::pin::Pin;

use chatstore_core::{Result, Store, memory};

use crate::baseline::RawBaseline;

/// The future that opens a backend.
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<Opened>> + Send>>;

/// How a backend is opened: given the value of its server variable (`None` for an embedded
/// backend), a future giving a fresh, empty store.
pub type OpenFn = fn(Option<String>) -> OpenFuture;

/// A backend opened for one benchmark run: a fresh, empty store and, when the backend has
/// one, its raw baseline on the same database.
pub struct Opened {
    /// The store under test.
    pub store: Store,
    /// The same operations written directly against the driver, when there is such a thing.
    pub baseline: Option<Box<dyn RawBaseline>>,
}

impl Opened {
    /// A backend without a raw baseline.
    pub fn new(store: Store) -> Self {
        Opened {
            store,
            baseline: None,
        }
    }

    /// With a raw baseline that works on the same database as the store.
    pub fn with_baseline(mut self, baseline: impl RawBaseline + 'static) -> Self {
        self.baseline = Some(Box::new(baseline));
        self
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
    vec![BackendSpec::embedded(memory::BACKEND, |_| {
        Box::pin(async { Ok(Opened::new(memory::store())) })
    })]
}

/// Backends the project plans whose adapter crates are not part of this build yet, with the
/// crate each waits for. Whoever adds a backend to [`registry`] removes it here.
pub const NOT_YET_BUILT: [(&str, &str); 5] = [
    ("sqlite", "adapter-sql"),
    ("postgres", "adapter-sql"),
    ("pocketbase", "adapter-pocketbase"),
    ("pgvector", "adapter-pgvector"),
    ("sqlite-vectors", "adapter-sql"),
];

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
