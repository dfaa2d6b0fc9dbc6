//! # chatstore-sql
//!
//! chatstore on SQLite and PostgreSQL through sqlx, reading and writing **Open WebUI 0.12.4's
//! own tables** (`user`, `auth`, `chat`, `chat_message`, `tag`, `file`), so it can be pointed at
//! an existing `webui.db` or Open WebUI Postgres database, and Open WebUI starts on a database
//! chatstore created.
//!
//! [`SqlStore`] implements [`UserRepo`], [`ChatRepo`], [`MessageRepo`], [`TagRepo`] and
//! [`FileRepo`] on both dialects, and [`VectorRepo`] on SQLite (the embedded default vector
//! store: exact cosine search over its own `chatstore_vector` table, no server). On PostgreSQL
//! the store's vectors answer `Unsupported`; the pgvector adapter provides them there.
//! [`SqlRows`] implements [`RowStore`] on Open WebUI's other tables (folders, knowledge, notes,
//! models, channels, ...; see [`rows`]); the [`Store`] of a [`SqlStore`] carries it.
//!
//! Construct it from a URL (`sqlite://path/webui.db`, `sqlite::memory:`,
//! `postgres://user@host/db`) with [`SqlStore::connect`] or [`connect`]:
//!
//! - an empty database gets Open WebUI 0.12.4's complete schema and its `alembic_version` row;
//! - an existing one must be at that revision with the tables and columns chatstore needs,
//!   otherwise opening fails with a message naming what is wrong; its tables and columns are
//!   never altered (chatstore adds its own `chatstore_*` indexes, which lists use);
//! - SQLite runs in WAL mode with a busy timeout; every store has one pool of configurable size;
//! - file bytes go to an upload folder (`file.path`), chosen as Open WebUI chooses it:
//!   `CHATSTORE_UPLOAD_DIR`, else `UPLOAD_DIR`, else `DATA_DIR/uploads`, else `uploads/` next to
//!   the SQLite file or `data/uploads` in the working folder for PostgreSQL. It is never a
//!   temporary folder for a database that outlives the process (only `sqlite::memory:` gets
//!   one, removed when the store's last clone is dropped); replicas on one PostgreSQL share it
//!   through a common volume.
//!
//! ```
//! use chatstore_core::{ChatQuery, NewChat, NewMessage, NewUser};
//! use chatstore_sql::{SqlOptions, connect};
//!
//! # tokio_test_block(async {
//! let store = connect("sqlite::memory:", SqlOptions::default()).await?;
//! let user = store.users.create(NewUser::new("ada@example.com", "Ada")).await?;
//! let chat = store
//!     .chats
//!     .create(NewChat::new(&user.id, "Engines").with_tags(["Work", "math"]))
//!     .await?;
//! store
//!     .messages
//!     .upsert(NewMessage::text(&chat.id, "m1", "user", "Hello"))
//!     .await?;
//! let page = store.chats.list(&ChatQuery::for_user(&user.id).with_tags(["work"])).await?;
//! assert_eq!(page.total, 1);
//! let chat = store.chats.get(&chat.id).await?;
//! assert_eq!(chat.chat["history"]["currentId"], "m1");
//! # Ok::<(), chatstore_core::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f).expect("example");
//! # }
//! ```
//!
//! [`UserRepo`]: chatstore_core::UserRepo
//! [`ChatRepo`]: chatstore_core::ChatRepo
//! [`MessageRepo`]: chatstore_core::MessageRepo
//! [`TagRepo`]: chatstore_core::TagRepo
//! [`FileRepo`]: chatstore_core::FileRepo
//! [`VectorRepo`]: chatstore_core::VectorRepo
//! [`RowStore`]: chatstore_core::RowStore

pub mod changes;
mod chats;
mod error;
mod files;
mod indexes;
mod inspect;
mod json;
mod messages;
mod pool;
pub mod rows;
pub mod schema;
pub mod tables;
mod tag_links;
mod tags;
mod users;
mod vectors;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatstore_core::changes::{ChangeFeed, ChangeHub};
use chatstore_core::config::LONGEST_WAIT;
use chatstore_core::unsupported::NoVectors;
use chatstore_core::{Capabilities, Error, Result, Store, StoreParts, VectorRepo};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use changes::SqlFeed;
pub use chats::delete_orphan_tag_sql;
pub use files::{PARTIAL_UPLOAD_MAX_AGE, READ_BYTES, WRITE_BYTES};
pub use inspect::TableCounts;
pub use messages::message_probe_sql;
pub use pool::{Bound, Dialect};
pub use rows::SqlRows;
pub use users::{email_candidates_sql, emails_candidates_sql};
pub use vectors::vector_write_sizes;

/// The keyset scans of the typed tables (a migration's or a verification's pages, in the
/// bytes order of their keys), each with its table, in `dialect`. Public so that a test can
/// ask the database how it reads them.
pub fn scan_sql(dialect: Dialect) -> Vec<(&'static str, &'static str)> {
    vec![
        ("chat", chats::SCAN_IDS.text(dialect)),
        ("chat", chats::SCAN.text(dialect)),
        ("chat_message", messages::SCAN.text(dialect)),
        ("user", users::SCAN_IDS.text(dialect)),
        ("user", users::SCAN.text(dialect)),
        ("file", files::SCAN_IDS.text(dialect)),
        ("file", files::SCAN.text(dialect)),
    ]
}

/// The keyset scan of every user's tags (a migration's or a verification's pages, in the
/// bytes order of `(user_id, id)`), in `dialect`. Public so that a test can ask the database
/// how it reads it.
pub fn tag_scan_sql(dialect: Dialect) -> &'static str {
    tags::SCAN.text(dialect)
}

/// The users page (newest first, by limit and offset), in `dialect`. Public so that a test can
/// ask the database how it reads it.
pub fn user_list_sql(dialect: Dialect) -> &'static str {
    users::LIST.text(dialect)
}

/// The change feed's catch-up read of the messages updated since `$1` (of user `$2`, or of
/// everyone when null), in `dialect`. Public so that a test can ask the database how it reads
/// it.
pub fn messages_since_sql(dialect: Dialect) -> &'static str {
    changes::MESSAGES_SINCE.text(dialect)
}

/// The change feed's catch-up read of the files updated since `$1` (see
/// [`messages_since_sql`]), in `dialect`.
pub fn files_since_sql(dialect: Dialect) -> &'static str {
    changes::FILES_SINCE.text(dialect)
}

/// How to open a database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlOptions {
    /// Connections in the pool (an in-memory SQLite database always uses one).
    pub max_connections: u32,
    /// How long a call waits for a free connection before failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another connection before `Unavailable`.
    pub busy_timeout: Duration,
    /// Where file bytes are written; `None` follows Open WebUI's rule (see
    /// [`SqlStore::connect`]): `CHATSTORE_UPLOAD_DIR`, else `UPLOAD_DIR`, else
    /// `DATA_DIR/uploads`; else `uploads/` next to a SQLite file, and `data/uploads` under the
    /// working folder for PostgreSQL. Only an in-memory SQLite database, which dies with the
    /// process, gets a temporary folder, removed with the store's last clone. Replicas sharing a
    /// PostgreSQL database must share this folder too (one volume mounted at the same path):
    /// `file.path` records where bytes are.
    pub upload_dir: Option<PathBuf>,
    /// Opens the database read-only: nothing is created, every write fails.
    pub read_only: bool,
    /// PostgreSQL: the server's own URL, for what needs a session of its own: the change
    /// feed's `LISTEN` and the builds of chatstore's indexes. Needed when the store's URL goes
    /// through a transaction-pooling PgBouncer (which can do neither); default: the store's URL.
    /// Through a pooler without it, the store has no change feed and builds no index (both
    /// logged at open).
    pub listen_url: Option<String>,
    /// Builds chatstore's own indexes (see [`SqlStore::indexes_ready`]) when they are missing:
    /// SQLite at open, PostgreSQL `CONCURRENTLY` in the background. Default on.
    pub build_indexes: bool,
    /// PostgreSQL: after this long without a notification the change feed's listening
    /// connection is asked to answer, and one that does not answer within as long again is
    /// replaced (then what changed meanwhile is read back). A connection a network drops
    /// silently (a NAT or firewall forgetting it, a failover behind a proxy) otherwise waits
    /// for ever while the feed counts as connected. Default 30 s.
    pub listen_heartbeat: Duration,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            upload_dir: None,
            read_only: false,
            listen_url: None,
            build_indexes: true,
            listen_heartbeat: Duration::from_secs(30),
        }
    }
}

impl SqlOptions {
    /// With this pool size.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    /// With this upload folder.
    pub fn upload_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.upload_dir = Some(dir.into());
        self
    }

    /// Read-only (or not).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// With this SQLite busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// With this direct PostgreSQL URL for the change feed's `LISTEN` connection and index
    /// builds (see [`SqlOptions::listen_url`](SqlOptions#structfield.listen_url)).
    pub fn listen_url(mut self, url: impl Into<String>) -> Self {
        self.listen_url = Some(url.into());
        self
    }

    /// With this silence before the change feed checks its listening connection (see
    /// [`SqlOptions::listen_heartbeat`](SqlOptions#structfield.listen_heartbeat)).
    pub fn listen_heartbeat(mut self, after: Duration) -> Self {
        self.listen_heartbeat = after;
        self
    }

    /// Builds chatstore's missing indexes, or leaves them to an operator (`false`).
    pub fn build_indexes(mut self, build: bool) -> Self {
        self.build_indexes = build;
        self
    }

    /// With this pool acquire timeout.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

/// A SQLite or PostgreSQL database with Open WebUI 0.12.4's schema; cheap to clone (clones share
/// the pool). Implements every repository trait; see [`SqlStore::store`].
#[derive(Debug, Clone)]
pub struct SqlStore {
    inner: Arc<Inner>,
    /// Where `download_url` points; the environment's when `None`.
    urls: Option<chatstore_core::LocalUrls>,
}

#[derive(Debug)]
struct Inner {
    pool: pool::Pool,
    uploads: PathBuf,
    /// The upload folder is this store's own temporary one (an in-memory database's): it goes
    /// when the store does.
    temporary_uploads: bool,
    /// Set once `chatstore_vector` is known to exist.
    vectors_ready: AtomicBool,
    /// The change feed's hub: SQLite publishes committed writes to it, PostgreSQL's listener
    /// what it hears.
    hub: Arc<ChangeHub>,
    /// PostgreSQL: how the listener connects.
    listen: Option<PgConnectOptions>,
    /// PostgreSQL: the listener's silence before it checks its connection.
    listen_heartbeat: Duration,
    /// PostgreSQL: the listener task, once a subscriber started it.
    listener: OnceLock<tokio::task::AbortHandle>,
    /// Becomes `true` once chatstore's indexes are dealt with (built, found, or given up on);
    /// see [`SqlStore::indexes_ready`].
    indexes: tokio::sync::watch::Receiver<bool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.listener.get() {
            task.abort();
        }
        if self.temporary_uploads {
            // The database is gone with its last connection, so nothing names these files.
            // Synchronous, as a drop must be; a folder that was never written is no error.
            if let Err(e) = std::fs::remove_dir_all(&self.uploads)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                let dir = self.uploads.display();
                tracing::warn!(error = %e, %dir, "cannot remove the temporary upload folder");
            }
        }
    }
}

/// Opens the database at `url` and gives a [`Store`] of it (see [`SqlStore::connect`]).
pub async fn connect(url: &str, options: SqlOptions) -> Result<Store> {
    Ok(SqlStore::connect(url, options).await?.store())
}

impl SqlStore {
    /// Opens the database at `url` (`sqlite://path`, `sqlite::memory:`, `postgres://...`;
    /// Open WebUI's `postgresql+psycopg2://` spellings are accepted), creating Open WebUI's
    /// schema on an empty database and checking it on an existing one.
    ///
    /// `InvalidInput` for a URL chatstore cannot use, `Unavailable` when the server cannot be
    /// reached, `Backend` when the schema is not one chatstore can work on (the message says why).
    pub async fn connect(url: &str, mut options: SqlOptions) -> Result<SqlStore> {
        if options.max_connections == 0 {
            return Err(Error::invalid("max_connections must be at least 1"));
        }
        let mut listen = None;
        let (pool, uploads, temporary_uploads) = if let Some(rest) = strip_scheme(url, &["sqlite:"])
        {
            open_sqlite(rest, &options).await?
        } else if let Some(rest) = strip_scheme(
            url,
            &[
                "postgres://",
                "postgresql://",
                "postgresql+psycopg://",
                "postgresql+psycopg2://",
            ],
        ) {
            let listen_url = match &options.listen_url {
                Some(u) => u.clone(),
                None => format!("postgres://{rest}"),
            };
            listen = Some(
                PgConnectOptions::from_str(&listen_url)
                    .map_err(|e| Error::invalid(format!("bad PostgreSQL listen URL: {e}")))?,
            );
            let (pool, uploads) = open_postgres(rest, &options).await?;
            (pool, uploads, false)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(Error::invalid(format!(
                "database URL scheme {scheme:?} is not supported; use sqlite://PATH, \
                 sqlite::memory: or postgres://USER@HOST/DB"
            )));
        };
        if let Err(e) = schema::prepare(&pool, options.read_only).await {
            pool.close().await;
            return Err(e);
        }
        if let (pool::Pool::Postgres(pg, _), Some(direct)) = (&pool, &options.listen_url)
            && !direct_url_names_this_database(&pg.pool, direct).await
        {
            // One environment opens several stores (a router's old and new, a migration's two
            // ends): a direct URL of another database would have this store hear that one's
            // changes and build its indexes there.
            tracing::warn!(
                "the direct URL (CHATSTORE_POSTGRES_DIRECT_URL) names another database than \
                 this store's; it is not used for this store"
            );
            options.listen_url = None;
            listen = match &pool {
                pool::Pool::Postgres(_, pool::Statements::Cached) => Some(postgres_options(url)?),
                _ => None,
            };
        }
        if let pool::Pool::Postgres(_, pool::Statements::Unnamed) = pool
            && options.listen_url.is_none()
        {
            // `LISTEN` through a transaction pooler is accepted and then hears nothing: a feed
            // that silently misses events is worse than none.
            tracing::warn!(
                "PostgreSQL is reached through a pooler and no direct URL is set: this store \
                 has no change feed and builds no index (set CHATSTORE_POSTGRES_DIRECT_URL, \
                 or SqlOptions::listen_url, to the server's own address)"
            );
            listen = None;
        }
        let indexes = if options.read_only || !options.build_indexes {
            tokio::sync::watch::channel(true).1
        } else {
            build_indexes(&pool, url, &options).await
        };
        // Absolute, so `file.path` names the same bytes whatever folder a replica runs in.
        let uploads = std::path::absolute(&uploads).unwrap_or(uploads);
        tracing::info!(upload_dir = %uploads.display(), "file bytes go to the upload folder");
        if !options.read_only
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // In the background: an upload folder can hold many files, and start-up need not wait.
            let dir = uploads.clone();
            runtime.spawn(async move {
                if let Err(e) =
                    files::sweep_partial_uploads(&dir, files::PARTIAL_UPLOAD_MAX_AGE).await
                {
                    tracing::warn!(error = %e, "cannot sweep partial uploads");
                }
            });
        }
        // SQLite publishes its own commits: its feed is connected from the start. PostgreSQL's
        // is once its listener has caught up.
        let hub = match listen {
            Some(_) => ChangeHub::awaiting_source(),
            None => ChangeHub::default(),
        };
        Ok(SqlStore {
            inner: Arc::new(Inner {
                pool,
                uploads,
                temporary_uploads,
                vectors_ready: AtomicBool::new(false),
                hub: Arc::new(hub),
                listen,
                listen_heartbeat: options.listen_heartbeat,
                listener: OnceLock::new(),
                indexes,
            }),
            urls: None,
        })
    }

    /// Waits until chatstore's own indexes are dealt with: built, found valid, being built by
    /// another process (which this one does not wait for), or given up on (logged). SQLite
    /// builds them at open, so it never waits; PostgreSQL builds them in the background after
    /// open (lists are correct meanwhile, only slower). For tests and operators' tools.
    pub async fn indexes_ready(&self) {
        let mut indexes = self.inner.indexes.clone();
        // An error means the build task is gone (its runtime shut down): nothing to wait for.
        let _ = indexes.wait_for(|done| *done).await;
    }

    /// A [`Store`] whose repositories are this database, with its change feed and its row
    /// store (Open WebUI's other tables, see [`rows`]). On PostgreSQL, vectors
    /// answer `Unsupported`.
    pub fn store(&self) -> Store {
        let repo = Arc::new(self.clone());
        let store = match self.dialect() {
            Dialect::Sqlite => Store::new(
                "sqlite",
                Capabilities::ALL,
                StoreParts {
                    users: repo.clone(),
                    chats: repo.clone(),
                    messages: repo.clone(),
                    tags: repo.clone(),
                    files: repo.clone(),
                    vectors: repo,
                },
            ),
            Dialect::Postgres => Store::new(
                "postgres",
                Capabilities {
                    vectors: false,
                    ..Capabilities::ALL
                },
                StoreParts {
                    users: repo.clone(),
                    chats: repo.clone(),
                    messages: repo.clone(),
                    tags: repo.clone(),
                    files: repo,
                    vectors: Arc::new(NoVectors {
                        backend: "postgres",
                    }),
                },
            ),
        };
        let store = store.with_rows(Arc::new(self.rows()));
        match (self.dialect(), &self.inner.listen) {
            // Through a pooler without a direct URL: no feed (see `SqlOptions::listen_url`).
            (Dialect::Postgres, None) => store,
            _ => store.with_changes(self.changes()),
        }
    }

    /// The change feed of this database (see [`changes`](crate::changes)).
    pub fn changes(&self) -> Arc<dyn ChangeFeed> {
        Arc::new(SqlFeed::new(self.clone()))
    }

    pub(crate) fn hub(&self) -> &ChangeHub {
        &self.inner.hub
    }

    /// PostgreSQL: starts the listener task unless it runs (needs a Tokio runtime).
    pub(crate) fn start_listener(&self) {
        let Some(options) = &self.inner.listen else {
            return;
        };
        if self.inner.listener.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("change feed: no Tokio runtime to listen on; nothing will be heard");
            return;
        };
        let _ = self.inner.listener.get_or_init(|| {
            runtime
                .spawn(changes::listen(
                    Arc::downgrade(&self.inner),
                    options.clone(),
                    self.inner.listen_heartbeat,
                    self.inner.hub.clone(),
                ))
                .abort_handle()
        });
    }

    /// Begins a transaction whose announced changes reach the feed.
    pub(crate) async fn begin(&self, entity: &'static str, mode: pool::Mode) -> Result<pool::Tx> {
        let mut tx = self.pool().begin(entity, mode).await?;
        if self.dialect() == Dialect::Sqlite {
            tx.publish_to(self.inner.hub.clone());
        }
        Ok(tx)
    }

    /// A [`Store`] of this database whose vectors come from another repository (e.g. the
    /// pgvector adapter on the same PostgreSQL), named `backend` (e.g. `"postgres+pgvector"`).
    pub fn store_with_vectors(
        &self,
        backend: impl Into<String>,
        vectors: Arc<dyn VectorRepo>,
    ) -> Store {
        let repo = Arc::new(self.clone());
        let store = Store::new(
            backend,
            Capabilities::ALL,
            StoreParts {
                users: repo.clone(),
                chats: repo.clone(),
                messages: repo.clone(),
                tags: repo.clone(),
                files: repo,
                vectors,
            },
        );
        let store = store.with_rows(Arc::new(self.rows()));
        match (self.dialect(), &self.inner.listen) {
            // Through a pooler without a direct URL: no feed (see `SqlOptions::listen_url`).
            (Dialect::Postgres, None) => store,
            _ => store.with_changes(self.changes()),
        }
    }

    /// The database's dialect.
    pub fn dialect(&self) -> Dialect {
        self.inner.pool.dialect()
    }

    /// Signs download links for the proxy at `urls` (instead of `CHATSTORE_PUBLIC_URL` and
    /// `CHATSTORE_SIGNING_KEY` from the environment).
    pub fn with_download_urls(mut self, urls: chatstore_core::LocalUrls) -> Self {
        self.urls = Some(urls);
        self
    }

    /// Removes partial uploads older than `older_than` from the upload folder (left by a
    /// process that died during an upload); returns how many. Opening a writable store does
    /// this in the background with [`PARTIAL_UPLOAD_MAX_AGE`].
    pub async fn sweep_partial_uploads(&self, older_than: std::time::Duration) -> Result<u64> {
        files::sweep_partial_uploads(&self.inner.uploads, older_than).await
    }

    /// The folder file bytes are written to.
    pub fn upload_dir(&self) -> &Path {
        &self.inner.uploads
    }

    /// Closes the pool; later calls fail.
    pub async fn close(&self) {
        self.inner.pool.close().await;
    }

    pub(crate) fn pool(&self) -> &pool::Pool {
        &self.inner.pool
    }
}

fn strip_scheme<'a>(url: &'a str, schemes: &[&str]) -> Option<&'a str> {
    schemes.iter().find_map(|s| {
        url.get(..s.len())
            .filter(|head| head.eq_ignore_ascii_case(s))
            .map(|_| &url[s.len()..])
    })
}

/// Open WebUI's default `DATA_DIR`, relative to where it runs.
const OPEN_WEBUI_DATA_DIR: &str = "data";

fn temp_uploads() -> PathBuf {
    std::env::temp_dir().join(format!("chatstore-uploads-{}", uuid::Uuid::new_v4()))
}

/// SQLite's page cache per connection (`PRAGMA cache_size`, negative: KiB), 8 MiB instead of
/// SQLite's 2 MiB. A list of a user with 10,000 chats walks about 1.7 MB of
/// `chatstore_chat_list`; with the default cache every deep page or count of that user read its
/// pages through the OS again (1.1-1.2 ms at offset 9,000 on the benchmark's 100k database,
/// 0.62-0.66 ms with 4 or 8 MiB). Memory is taken as pages are read.
const SQLITE_CACHE_SIZE: &str = "-8192";

/// Opens a SQLite database; gives its pool, its upload folder and whether that folder is a
/// temporary one of this store's own (an in-memory database's, removed with the store).
async fn open_sqlite(rest: &str, options: &SqlOptions) -> Result<(pool::Pool, PathBuf, bool)> {
    let in_memory = rest.contains(":memory:") || rest.contains("mode=memory");
    let url = format!("sqlite:{rest}");
    let mut connect = SqliteConnectOptions::from_str(&url)
        .map_err(|e| Error::invalid(format!("bad SQLite URL {url:?}: {e}")))?
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        .pragma("cache_size", SQLITE_CACHE_SIZE);
    if options.read_only {
        connect = connect.read_only(true);
    } else {
        connect = connect.create_if_missing(true);
        if !in_memory {
            connect = connect
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal);
        }
    }
    let uploads = match (&options.upload_dir, in_memory) {
        (Some(dir), _) => dir.clone(),
        // The database dies with the process; so may its files.
        (None, true) => temp_uploads(),
        (None, false) => chatstore_core::config::upload_dir_from_env().unwrap_or_else(|| {
            let file = connect.get_filename();
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .join("uploads")
        }),
    };
    let mut pool =
        SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout.min(LONGEST_WAIT));
    pool = if in_memory {
        // An in-memory database lives as long as its last connection: keep exactly one.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(options.max_connections)
    };
    let pool = connect_sqlite(pool, connect, options.busy_timeout)
        .await
        .map_err(|e| error::db_error("connect", e))?;
    let temporary = in_memory && options.upload_dir.is_none();
    Ok((
        pool::Pool::Sqlite(pool::Handle::new(pool)),
        uploads,
        temporary,
    ))
}

/// SQLite: the pool's first connection, tried again while another connection holds the lock,
/// until `busy_timeout` has passed. Turning a rollback-journal database to WAL (the first open
/// of an Open WebUI `webui.db`, or replicas opening one at once) needs the file to itself, and
/// while another connection writes SQLite answers `BUSY` at once instead of waiting its busy
/// timeout (a connection that already reads must not wait for a lock that waits for it).
async fn connect_sqlite(
    pool: SqlitePoolOptions,
    connect: SqliteConnectOptions,
    busy_timeout: Duration,
) -> std::result::Result<sqlx::SqlitePool, sqlx::Error> {
    use backon::Retryable;
    let started = std::time::Instant::now();
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(5))
        .with_max_delay(Duration::from_millis(50))
        .without_max_times()
        .with_jitter();
    (|| pool.clone().connect_with(connect.clone()))
        .retry(backoff)
        .when(|e| error::sqlite_busy(e) && started.elapsed() < busy_timeout)
        .await
}

/// Builds chatstore's own indexes ([`indexes`]) and gives the flag that turns `true` once
/// that is done. A failure is logged, not returned: lists are correct without the indexes,
/// only slower, and the next open tries again.
///
/// SQLite builds them here (about a second per 100,000 chats, once). PostgreSQL checks them
/// here and, when one is missing or invalid, builds it on a task of its own: a
/// `CREATE INDEX CONCURRENTLY` waits for every transaction older than it (an idle session
/// holding one open would hold the open up) and reads the whole table, so `open` must not wait
/// for it. Without a Tokio runtime to run on, it is built here.
async fn build_indexes(
    pool: &pool::Pool,
    url: &str,
    options: &SqlOptions,
) -> tokio::sync::watch::Receiver<bool> {
    let (done, ready) = tokio::sync::watch::channel(false);
    let Some(connect) = indexes_to_build(pool, url, options).await else {
        let _ = done.send(true);
        return ready;
    };
    let build = async move {
        match indexes::ensure_postgres_with(&connect).await {
            Ok(built @ indexes::IndexBuild::Built { .. }) => {
                tracing::info!(?built, "built chatstore's indexes");
            }
            Ok(indexes::IndexBuild::BuiltElsewhere) => tracing::info!(
                "another connection is building chatstore's indexes; lists use them once valid"
            ),
            Ok(indexes::IndexBuild::Present) => {}
            Err(e) => log_index_failure(&e),
        }
        let _ = done.send(true);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            tracing::info!("building chatstore's indexes in the background");
            runtime.spawn(build);
        }
        Err(_) => build.await,
    }
    ready
}

/// What [`build_indexes`] has left to do once it returns: SQLite's indexes are built here;
/// PostgreSQL's are checked here, and when one is missing or invalid, the connect options of
/// the session to build them on (`None`: nothing to build, or no session to build on).
async fn indexes_to_build(
    pool: &pool::Pool,
    url: &str,
    options: &SqlOptions,
) -> Option<PgConnectOptions> {
    let statements = match pool {
        pool::Pool::Sqlite(_) => {
            if let Err(e) = indexes::ensure_sqlite(pool).await {
                log_index_failure(&e);
            }
            return None;
        }
        pool::Pool::Postgres(_, statements) => statements,
    };
    match indexes::all_valid_pooled(pool).await {
        Ok(true) => return None,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot check chatstore's indexes");
            return None;
        }
    }
    // A build needs a session of its own (the advisory lock, `CONCURRENTLY` outside a
    // transaction): through a transaction pooler only the direct URL gives one.
    let direct = match (&options.listen_url, statements) {
        (Some(listen), _) => listen.as_str(),
        (None, pool::Statements::Cached) => url,
        (None, pool::Statements::Unnamed) => return None,
    };
    postgres_options(direct).inspect_err(log_index_failure).ok()
}

/// Whether `direct` reaches the database `pool` serves (the same database on the same server
/// run: [`chatstore_core::pool_budget::DATABASE_IDENTITY`]); `true` when it cannot be told (the
/// direct URL is down for now, and its listener retries).
async fn direct_url_names_this_database(pool: &sqlx::PgPool, direct: &str) -> bool {
    use sqlx::Row as _;
    let identity = chatstore_core::pool_budget::DATABASE_IDENTITY;
    let through_pool = sqlx::raw_sql(identity).fetch_one(pool);
    let Ok(Ok(row)) = tokio::time::timeout(std::time::Duration::from_secs(10), through_pool).await
    else {
        return true;
    };
    let Ok(options) = postgres_options(direct) else {
        return true;
    };
    let read_direct = async {
        let mut conn = PgConnection::connect_with(&options).await?;
        let row = sqlx::raw_sql(identity).fetch_one(&mut conn).await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(row)
    };
    let Ok(Ok(direct_row)) =
        tokio::time::timeout(std::time::Duration::from_secs(10), read_direct).await
    else {
        return true;
    };
    let id = |row: &sqlx::postgres::PgRow| row.try_get::<String, _>(0).ok();
    id(&row) == id(&direct_row)
}

fn log_index_failure(e: &Error) {
    tracing::warn!(
        error = %e,
        "cannot build chatstore's indexes; chat lists stay correct but read every chat of a user"
    );
}

/// The connect options of a PostgreSQL URL in any of the accepted spellings.
fn postgres_options(url: &str) -> Result<PgConnectOptions> {
    let rest = strip_scheme(
        url,
        &[
            "postgres://",
            "postgresql://",
            "postgresql+psycopg://",
            "postgresql+psycopg2://",
        ],
    )
    .unwrap_or(url);
    PgConnectOptions::from_str(&format!("postgres://{rest}"))
        .map_err(|e| Error::invalid(format!("bad PostgreSQL URL: {e}")))
}

async fn open_postgres(rest: &str, options: &SqlOptions) -> Result<(pool::Pool, PathBuf)> {
    let url = format!("postgres://{rest}");
    let mut connect = PgConnectOptions::from_str(&url)
        .map_err(|e| Error::invalid(format!("bad PostgreSQL URL: {e}")))?;
    let plain = connect.clone();
    if options.read_only {
        connect = connect.options([("default_transaction_read_only", "on")]);
    }
    // One direct connection first: the pool retries an unreachable server until its acquire
    // timeout and then reports only "timed out"; this reports the cause at once.
    let (mut probe, per_transaction) = match PgConnection::connect_with(&connect).await {
        Ok(probe) => (probe, false),
        // PgBouncer refuses startup options it does not know (unless told to ignore them):
        // a read-only store then begins every transaction read-only instead, which a pooler
        // passes through and which leaves nothing behind on the server connection.
        Err(e) if options.read_only && refused_startup_option(&e) => {
            connect = plain;
            let probe = PgConnection::connect_with(&connect)
                .await
                .map_err(|e| error::db_error("connect", e))?;
            (probe, true)
        }
        Err(e) => return Err(error::db_error("connect", e)),
    };
    let dialled = connect.get_socket().is_none().then(|| connect.get_port());
    let pooled = check_pool_budget(&mut probe, dialled, options.max_connections).await;
    let _ = probe.close().await;
    // Read-only transactions guard only what runs in a transaction: every statement does
    // with unnamed statements.
    let statements = if pooled? || per_transaction {
        tracing::info!(
            "PostgreSQL is reached through a pooler: unnamed statements in transactions"
        );
        // PgBouncer (transaction mode) cannot keep named statements between transactions.
        connect = connect.statement_cache_capacity(0);
        pool::Statements::Unnamed
    } else {
        pool::Statements::Cached
    };
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout.min(LONGEST_WAIT))
        .connect_with(connect)
        .await
        .map_err(|e| error::db_error("connect", e))?;
    let uploads = options
        .upload_dir
        .clone()
        .or_else(chatstore_core::config::upload_dir_from_env)
        .unwrap_or_else(|| Path::new(OPEN_WEBUI_DATA_DIR).join("uploads"));
    let mut handle = pool::Handle::new(pool);
    if per_transaction {
        handle = handle.read_only_transactions();
    }
    Ok((pool::Pool::Postgres(handle, statements), uploads))
}

/// Whether the server (a pooler such as PgBouncer) refused a startup parameter it does not
/// know ([`chatstore_core::sqlstate::refuses_startup_parameter`]).
fn refused_startup_option(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| chatstore_core::sqlstate::refuses_startup_parameter(d.message()))
}

/// Refuses a pool that cannot fit in the server's connection budget (see
/// [`chatstore_core::pool_budget`]); `probe` is one connection of our own, not counted. Through
/// a pooler, or when the server will not say, the pool is let through. `Ok(true)` when the
/// connection goes through a pooler such as PgBouncer.
async fn check_pool_budget(
    probe: &mut PgConnection,
    dialled_port: Option<u16>,
    pool_size: u32,
) -> Result<bool> {
    use chatstore_core::pool_budget::{POSTGRES_QUERY, PoolBudget, behind_pooler};
    use sqlx::Row as _;
    // In a transaction with an unnamed statement: through PgBouncer in transaction mode
    // that is the only way a statement reliably stays on one server connection.
    let read = async {
        let mut tx = sqlx::Connection::begin(&mut *probe).await?;
        let row = sqlx::query(POSTGRES_QUERY)
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(row)
    };
    let row = match read.await {
        Ok(row) => row,
        Err(e) => {
            tracing::warn!("cannot read the server's connection budget: {e}");
            return Ok(false);
        }
    };
    let number = |name: &str| {
        row.try_get::<i32, _>(name)
            .map(|n| u32::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    };
    let server_port = row.try_get::<Option<i32>, _>("server_port").ok().flatten();
    if behind_pooler(dialled_port, server_port) {
        return Ok(true);
    }
    PoolBudget {
        max_connections: number("max_connections"),
        superuser_reserved: number("superuser_reserved"),
        reserved: number("reserved"),
        in_use: number("in_use").saturating_sub(1),
    }
    .check(pool_size)?;
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::strip_scheme;

    #[test]
    fn schemes_are_matched_case_insensitively() {
        assert_eq!(
            strip_scheme("SQLite::memory:", &["sqlite:"]),
            Some(":memory:")
        );
        assert_eq!(
            strip_scheme("postgresql+psycopg2://u@h/db", &["postgresql+psycopg2://"]),
            Some("u@h/db")
        );
        assert_eq!(strip_scheme("mysql://x", &["sqlite:"]), None);
        assert_eq!(strip_scheme("é", &["sqlite:"]), None);
    }
}
