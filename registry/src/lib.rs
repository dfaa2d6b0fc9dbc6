//! # chatstore-registry
//!
//! One URL (or the environment) in, one [`Store`] out, for every chatstore backend: the only
//! library crate that names the adapters. The `chatstore` command, the benchmarks, the rollout
//! router and the migration tool open stores through it.
//!
//! | URL | store |
//! |---|---|
//! | `sqlite://PATH`, `sqlite::memory:` | SQLite through chatstore-sql, vectors in the same file, rows in Open WebUI's own tables |
//! | `postgres://USER:PASSWORD@HOST:PORT/DB` | PostgreSQL through chatstore-sql, vectors in pgvector on the same database, rows in Open WebUI's own tables |
//! | `pocketbase://HOST:PORT`, `pocketbases://HOST` (TLS) | PocketBase, with rows (Open WebUI's remaining tables); no vectors unless a vector URL names some |
//! | `memory` | the in-process memory backend |
//! | `chroma://HOST:PORT`, `chromas://HOST:PORT` (TLS; a private CA's PEM file in `CHATSTORE_CHROMA_CA_CERT`), `?tenant=T&database=D` | vectors only (a vector URL): a Chroma server through chatstore-chroma |
//! | `chroma-dir://PATH` | vectors only: an Open WebUI `DATA_DIR/vector_db` folder, read through a private `chroma run` on a copy (the original is never written; server and copy go with the store) |
//!
//! A separate vector URL ([`OpenOptions::vectors_url`], `CHATSTORE_VECTOR_URL`) takes the
//! store's vectors from another backend: `postgres://` (pgvector), `sqlite://PATH`, `memory`,
//! `chroma://`, `chroma-dir://`.
//! Passwords never appear in errors, `Debug` or `Display` ([`StoreUrl`] shows `***`).
//!
//! ```
//! # tokio_test_block(async {
//! let store = chatstore_registry::open("sqlite::memory:").await?;
//! assert_eq!(store.backend_name(), "sqlite");
//! assert!(store.has_rows()); // folders, notes, knowledge, ...: chatstore_core::rows
//!
//! let err = chatstore_registry::open("mysql://owui:hunter2@db/webui").await.unwrap_err();
//! assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
//! assert!(!err.to_string().contains("hunter2"));
//! # Ok::<(), chatstore_core::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f).expect("example");
//! # }
//! ```
//!
//! Cargo features, all on by default: `sql` (SQLite and PostgreSQL), `pgvector`, `pocketbase`,
//! `chroma`.
//! A URL whose backend was left out of the build is `InvalidInput` naming the feature.

mod open;
pub mod options;
pub mod store_url;

use chatstore_core::{Result, Store};

pub use options::OpenOptions;
pub use store_url::{Secret, StoreUrl, Target};

/// Opens the store at `url`, with the settings of the environment (pool size, PocketBase
/// superuser, upload folder; see [`OpenOptions::with_settings_from`]). The vector URL of the
/// environment is not read: `url` names the whole store.
pub async fn open(url: &str) -> Result<Store> {
    OpenOptions::for_url(url)?.open().await
}

/// Opens the store the environment names (`CHATSTORE_DATABASE_URL`, `CHATSTORE_VECTOR_URL`
/// and the settings; see [`OpenOptions::from_env`]).
pub async fn open_from_env() -> Result<Store> {
    OpenOptions::from_env()?.open().await
}
