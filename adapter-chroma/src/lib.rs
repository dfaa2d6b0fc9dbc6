//! # chatstore-chroma
//!
//! chatstore's [`VectorRepo`](chatstore_core::VectorRepo) over **Chroma's HTTP API v2** (tested
//! on `chroma run` from `chromadb` 1.5.9, the version Open WebUI 0.12.4 pins), so that a
//! deployment's Chroma collections can be read, searched and copied (to pgvector) as they are.
//!
//! - Collections are Open WebUI's: created in cosine space (`{"hnsw:space": "cosine"}`) under
//!   their own names (`file-{id}`, knowledge ids, `user-memory-{id}`, `web-search-...`); names
//!   Chroma refuses (`kb`, anything with spaces) are stored encoded, see the crate README.
//! - Search keeps the contract: scores `(2 - distance) / 2`, ties broken by id, metadata
//!   filters `{k: v}` and `{k: {"$in": [...]}}` compared as text. Up to
//!   [`ChromaConfig::exact_max_candidates`] candidates (the collection or the items inside the
//!   filter) Chroma is asked for every candidate, so its HNSW walk goes as far as its graph
//!   reaches: exact in practice, but a record the graph does not link to is missed (seen once
//!   in a 10,651-record collection, see the crate README). Larger searches get Chroma's
//!   approximate HNSW answer.
//! - Ids are unique across collections ([`IdScope::Database`], the default): every write first
//!   asks each collection of the database for the ids it writes, one request per collection.
//!   Writes of one store are serialised so that check and write cannot interleave.
//! - What Chroma cannot keep is reported in [`Capabilities`](chatstore_core::Capabilities):
//!   bulk writes are not atomic (`atomic_bulk = false`: a write larger than Chroma's batch
//!   limit is several requests, and a failed one is undone only best-effort; an upsert that
//!   moves ids deletes them from their old collection after writing), and vectors read back
//!   within f32 rounding, not bit for bit (`exact_vectors = false`: Chroma keeps a cosine
//!   collection's vectors normalised, with their norm).
//! - [`ChromaStore::open_dir`] reads an Open WebUI vector folder (`DATA_DIR/vector_db`)
//!   through a private `chroma run` on a copy of it; the original is never written.
//! - `scan` walks a collection by id in pages (Chroma itself pages only by
//!   offset in its own order, which skips or repeats records when the collection changes).
//!
//! ```no_run
//! use chatstore_chroma::{ChromaConfig, ChromaStore};
//! use chatstore_core::{VectorFilter, VectorItem, VectorRepo};
//!
//! # async fn example() -> chatstore_core::Result<()> {
//! let vectors = ChromaStore::connect(ChromaConfig::new("chroma://127.0.0.1:8000")?).await?;
//! let item = VectorItem {
//!     id: "chunk-1".into(),
//!     text: "Ada wrote the first program.".into(),
//!     vector: vec![0.1, 0.7, 0.2],
//!     metadata: serde_json::json!({"file_id": "f1"}).as_object().cloned().unwrap_or_default(),
//! };
//! vectors.insert("file-f1", vec![item]).await?;
//! let hits = vectors
//!     .search("file-f1", &[vec![0.1, 0.6, 0.3]], Some(&VectorFilter::eq("file_id", "f1")), 5)
//!     .await?;
//! assert_eq!(hits[0][0].id, "chunk-1");
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod error;
mod filter;
mod local;
mod names;
mod scan;
mod vectors;

use std::sync::Arc;

use chatstore_core::{Result, Store, StoreParts};

pub use config::{
    CA_CERT_ENV, ChromaConfig, DEFAULT_PORT, IdScope, ca_cert_from_env, headers_from_env,
};
pub use error::ServerError;
pub use local::LocalChroma;

/// The name this backend reports.
pub const BACKEND: &str = "chroma";

/// Vectors in a Chroma database (one tenant and database). Cheap to clone; clones share the
/// connection pool and the write lock.
#[derive(Debug, Clone)]
pub struct ChromaStore {
    client: client::Client,
    config: Arc<ChromaConfig>,
    /// Serialises this store's writes, so that the id check and the write cannot interleave
    /// with another write of the same store.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    snapshots: Arc<scan::Snapshots>,
    /// The private server this store reads, when opened on a folder; stopped with the last clone.
    local: Option<Arc<LocalChroma>>,
}

impl ChromaStore {
    /// Connects: checks that the server answers, reads its batch limit, and opens (or, with
    /// `create_database`, creates) the database.
    pub async fn connect(config: ChromaConfig) -> Result<Self> {
        let client = client::Client::connect(&config).await?;
        Ok(ChromaStore {
            client,
            config: Arc::new(config),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            snapshots: Arc::new(scan::Snapshots::default()),
            local: None,
        })
    }

    /// Opens a Chroma folder (Open WebUI's `DATA_DIR/vector_db`) through a private server on a
    /// copy of it ([`LocalChroma`]); the original folder is never written. The server stops and
    /// the copy is deleted when the last clone of the store is dropped.
    pub async fn open_dir(folder: &std::path::Path) -> Result<Self> {
        let server = LocalChroma::start(folder).await?;
        let config = ChromaConfig::new(server.url())?;
        let mut store = ChromaStore::connect(config).await?;
        store.local = Some(Arc::new(server));
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &ChromaConfig {
        &self.config
    }

    /// Chroma's limit of records per write request.
    pub fn max_batch_size(&self) -> usize {
        self.client.max_batch
    }

    /// A [`Store`] whose vectors are this store and whose other repositories come from `base`.
    pub fn into_store(self, base: &Store) -> Store {
        let name = format!("{}+{BACKEND}", base.backend_name());
        let mut capabilities = base.capabilities();
        capabilities.vectors = true;
        capabilities.atomic_bulk = false;
        capabilities.exact_vectors = false;
        // Rebuilt from `base`, so its rows (Open WebUI's other tables) and its change feed stay.
        let parts = StoreParts {
            vectors: Arc::new(self),
            ..base.parts()
        };
        base.rebuild(name, capabilities, parts)
    }
}

/// Runs `f` over `items` with at most `n` futures in flight, keeping the input order.
pub(crate) async fn fan_out<T, R, F, Fut>(items: Vec<T>, n: usize, f: F) -> Result<Vec<R>>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<R>>,
{
    use futures::StreamExt;
    futures::stream::iter(items.into_iter().map(f))
        .buffered(n.max(1))
        .collect::<Vec<Result<R>>>()
        .await
        .into_iter()
        .collect()
}
