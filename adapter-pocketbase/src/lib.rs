//! # chatstore-pocketbase
//!
//! The PocketBase backend of chatstore: [`UserRepo`](chatstore_core::UserRepo),
//! [`ChatRepo`](chatstore_core::ChatRepo), [`MessageRepo`](chatstore_core::MessageRepo),
//! [`TagRepo`](chatstore_core::TagRepo), [`FileRepo`](chatstore_core::FileRepo) and
//! [`RowStore`](chatstore_core::rows::RowStore) (Open WebUI's remaining tables, [`rows`]) over the
//! HTTP API of a PocketBase 0.23+ server (tested on 0.40). Vectors are not stored here:
//! its `VectorRepo` answers `Unsupported`.
//!
//! [`PocketBase::connect`] logs in as a superuser, brings the schema up to date (collections
//! import, never deleting anything), enables the batch API and checks that the server serves
//! the chatstore routes of `pb_hooks/chatstore.pb.js` (start PocketBase with
//! `--hooksDir adapter-pocketbase/pb_hooks`). Multi-record writes run in one transaction on
//! the server (the batch API, or the `tx` route for conditional writes); writes to a chat's
//! blob use optimistic concurrency, so two writers never lose each other's update.
//!
//! ```no_run
//! use chatstore_core::{ChatQuery, NewChat, NewUser};
//! use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
//!
//! # async fn demo() -> chatstore_core::Result<()> {
//! // CHATSTORE_POCKETBASE_URL, CHATSTORE_POCKETBASE_ADMIN_EMAIL, ..._ADMIN_PASSWORD
//! let pb = PocketBase::connect(PocketBaseConfig::from_env()?).await?;
//! let store = pb.store();
//! let user = store.users.create(NewUser::new("ada@example.com", "Ada")).await?;
//! store.chats.create(NewChat::new(&user.id, "Engines").with_tags(["work"])).await?;
//! let page = store.chats.list(&ChatQuery::for_user(&user.id).with_tags(["work"])).await?;
//! assert_eq!(page.total, 1);
//! # Ok(())
//! # }
//! ```

pub mod changes;
mod chats;
pub mod client;
pub mod error;
mod files;
pub mod filter;
mod messages;
mod record;
pub mod rows;
pub mod schema;
mod tags;
pub mod tx;
mod users;

use std::sync::Arc;
use std::time::Duration;

use chatstore_core::unsupported::NoVectors;
use chatstore_core::{Capabilities, Error, Result, Store, StoreParts};

pub use crate::chats::tag_record_id;
use crate::client::Client;
pub use crate::messages::{message_record_id, message_write};
pub use crate::schema::Collections;
pub use crate::tx::{MessageWrite, TxOp};

/// The name this backend reports.
pub const BACKEND: &str = "pocketbase";

/// How to reach a PocketBase server.
#[derive(Clone)]
pub struct PocketBaseConfig {
    /// Base URL, e.g. `http://127.0.0.1:8090`.
    pub url: String,
    /// Superuser email.
    pub admin_email: String,
    /// Superuser password.
    pub admin_password: String,
    /// Prefix of the collection names (`""`: `owui_users`, ...); lets several independent
    /// stores share one server (the tests use one per test).
    pub collection_prefix: String,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// Delete the collections when the last handle of the backend is dropped (throwaway
    /// test stores with their own prefix).
    pub drop_collections_on_drop: bool,
}

impl std::fmt::Debug for PocketBaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketBaseConfig")
            .field("url", &self.url)
            .field("admin_email", &self.admin_email)
            .field("admin_password", &"***")
            .field("collection_prefix", &self.collection_prefix)
            .field("timeout", &self.timeout)
            .field("drop_collections_on_drop", &self.drop_collections_on_drop)
            .finish()
    }
}

impl PocketBaseConfig {
    /// A config for the server at `url` with these superuser credentials.
    pub fn new(
        url: impl Into<String>,
        admin_email: impl Into<String>,
        admin_password: impl Into<String>,
    ) -> Self {
        PocketBaseConfig {
            url: url.into(),
            admin_email: admin_email.into(),
            admin_password: admin_password.into(),
            collection_prefix: String::new(),
            timeout: Duration::from_secs(120),
            drop_collections_on_drop: false,
        }
    }

    /// From chatstore's [`Config`](chatstore_core::config::Config): its PocketBase URL and
    /// superuser credentials (`InvalidInput` naming the variable when one is missing).
    pub fn from_config(config: &chatstore_core::config::Config) -> Result<Self> {
        let need = |value: &Option<String>, name: &str| {
            value
                .clone()
                .ok_or_else(|| Error::invalid(format!("{name} is not set")))
        };
        Ok(PocketBaseConfig::new(
            need(&config.pocketbase_url, "CHATSTORE_POCKETBASE_URL")?,
            need(
                &config.pocketbase_admin_email,
                "CHATSTORE_POCKETBASE_ADMIN_EMAIL",
            )?,
            need(
                &config.pocketbase_admin_password,
                "CHATSTORE_POCKETBASE_ADMIN_PASSWORD",
            )?,
        ))
    }

    /// From `CHATSTORE_POCKETBASE_URL`, `CHATSTORE_POCKETBASE_ADMIN_EMAIL`,
    /// `CHATSTORE_POCKETBASE_ADMIN_PASSWORD` and optionally
    /// `CHATSTORE_POCKETBASE_COLLECTION_PREFIX`.
    pub fn from_env() -> Result<Self> {
        let mut config = Self::from_config(&chatstore_core::config::Config::from_env()?)?;
        if let Ok(prefix) = std::env::var("CHATSTORE_POCKETBASE_COLLECTION_PREFIX") {
            config.collection_prefix = prefix;
        }
        Ok(config)
    }

    /// Deletes the collections (and all their data) when the backend is dropped; for
    /// throwaway test stores with a prefix of their own.
    pub fn dropping_collections_on_drop(mut self) -> Self {
        self.drop_collections_on_drop = true;
        self
    }

    /// With this collection name prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.collection_prefix = prefix.into();
        self
    }
}

#[derive(Debug)]
struct Inner {
    client: Client,
    cols: Collections,
    config: PocketBaseConfig,
    /// Where the change feed publishes.
    hub: Arc<chatstore_core::changes::ChangeHub>,
    /// The realtime listener, once it runs; stopped when the store drops.
    listener: std::sync::OnceLock<changes::Listener>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Stop listening first: the cleanup below takes a while, and a listener left running
        // through it would still be reading the stream (the deletions' events among it) when
        // its runtime shuts down after the drop.
        if let Some(listener) = self.listener.get() {
            listener.stop();
        }
        if !self.config.drop_collections_on_drop {
            return;
        }
        // The caller's runtime may be shutting down: clean up on a thread with a runtime and
        // a client of its own (with the store's token, so no second login), and wait for it
        // so the server is tidy when the test ends.
        let config = self.config.clone();
        let token = self.client.token_now();
        let cols = self.cols.clone();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let patience = Duration::from_secs(60);
        let cleanup = std::thread::spawn(move || {
            let _done = done;
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let client = Client::new(
                    &config.url,
                    &config.admin_email,
                    &config.admin_password,
                    config.timeout,
                )?
                .with_token(token);
                schema::drop_collections(&client, &cols).await
            })
            .unwrap_or_else(|e| tracing::warn!("dropping collections {cols:?}: {e}"));
        });
        // The cleanup waits for this process's schema lock, which a task of the dropping
        // thread's own runtime may hold: a runtime worker hands its other tasks on while it
        // waits, and no thread waits longer than a minute (the collections
        // then stay behind, with a warning) rather than for ever.
        let wait = || match finished.recv_timeout(patience) {
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = cleanup.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!("dropping collections {:?}: gave up waiting", self.cols);
            }
        };
        let on_worker = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if on_worker {
            tokio::task::block_in_place(wait);
        } else {
            wait();
        }
    }
}

/// A connected PocketBase backend; cheap to clone (clones share the connection pool).
#[derive(Debug, Clone)]
pub struct PocketBase {
    inner: Arc<Inner>,
}

impl PocketBase {
    /// Logs in, brings the schema up to date and checks the server's chatstore routes. A
    /// server whose schema cannot be brought up to date is an error naming what is wrong.
    pub async fn connect(config: PocketBaseConfig) -> Result<Self> {
        let cols = Collections::new(&config.collection_prefix)?;
        let client = Client::new(
            &config.url,
            &config.admin_email,
            &config.admin_password,
            config.timeout,
        )?;
        client.authenticate().await?;
        schema::ensure(&client, &cols).await?;
        let store = PocketBase {
            inner: Arc::new(Inner {
                client,
                cols,
                config,
                hub: Arc::new(chatstore_core::changes::ChangeHub::awaiting_source()),
                listener: std::sync::OnceLock::new(),
            }),
        };
        store.rekey_rows().await?;
        Ok(store)
    }

    /// Logs in and checks, changing nothing, that the schema is there and the chatstore routes
    /// are served: for read-only tools such as `chatstore inspect`. (The superuser could still
    /// write through the store; read-only tools do not.)
    pub async fn connect_existing(config: PocketBaseConfig) -> Result<Self> {
        let cols = Collections::new(&config.collection_prefix)?;
        let client = Client::new(
            &config.url,
            &config.admin_email,
            &config.admin_password,
            config.timeout,
        )?;
        client.authenticate().await?;
        schema::check(&client, &cols).await?;
        Ok(PocketBase {
            inner: Arc::new(Inner {
                client,
                cols,
                config,
                hub: Arc::new(chatstore_core::changes::ChangeHub::awaiting_source()),
                listener: std::sync::OnceLock::new(),
            }),
        })
    }

    /// A [`Store`] whose users, chats, messages, tags and files, and the rows of Open WebUI's
    /// remaining tables ([`rows`]), live on this server, with its [change feed](changes)
    /// (PocketBase's realtime API, caught up after every reconnect); vectors answer
    /// `Unsupported`.
    pub fn store(&self) -> Store {
        let repo = Arc::new(self.clone());
        Store::new(
            BACKEND,
            Capabilities {
                users: true,
                chats: true,
                files: true,
                vectors: false,
                atomic_bulk: true,
                change_feed: false,
                exact_vectors: true,
                half_vectors: false,
            },
            StoreParts {
                users: repo.clone(),
                chats: repo.clone(),
                messages: repo.clone(),
                tags: repo.clone(),
                files: repo,
                vectors: Arc::new(NoVectors { backend: BACKEND }),
            },
        )
        .with_rows(Arc::new(self.clone()))
        .with_changes(Arc::new(changes::PocketBaseFeed::new(self.clone())))
    }

    /// The collection names in use.
    pub fn collections(&self) -> &Collections {
        &self.inner.cols
    }

    /// Deletes this store's collections and everything in them (for throwaway test stores).
    pub async fn drop_collections(&self) -> Result<()> {
        schema::drop_collections(&self.inner.client, &self.inner.cols).await
    }

    /// The authenticated HTTP client (for tooling and tests that talk to PocketBase directly).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    fn cols(&self) -> &Collections {
        &self.inner.cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_comes_from_chatstores_config_and_names_what_is_missing() {
        let mut core = chatstore_core::Config {
            pocketbase_url: Some("http://127.0.0.1:8090".into()),
            pocketbase_admin_email: Some("a@x.io".into()),
            ..chatstore_core::Config::default()
        };
        let err = PocketBaseConfig::from_config(&core).expect_err("no password");
        assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .contains("CHATSTORE_POCKETBASE_ADMIN_PASSWORD")
        );
        core.pocketbase_admin_password = Some("pw".into());
        let config = PocketBaseConfig::from_config(&core).expect("complete");
        assert_eq!(config.url, "http://127.0.0.1:8090");
        assert!(config.collection_prefix.is_empty());
        assert!(
            !format!("{config:?}").contains("pw\""),
            "the password is not printed"
        );
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(Collections::new("t1_").is_ok());
        assert!(Collections::new("bad-prefix").is_err());
        assert!(Collections::new("x\"; DROP").is_err());
    }
}
