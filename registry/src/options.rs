//! What to open and how: the database URL, the vector URL and the settings every backend
//! reads, from code or from the environment.

use std::fmt;
use std::path::PathBuf;

use chatstore_core::{Config, Error, Result};

use crate::store_url::{Secret, redact_raw};

/// The environment variable naming the store (Open WebUI's `DATABASE_URL` is accepted too).
pub const DATABASE_URL_ENV: &str = "CHATSTORE_DATABASE_URL";
/// The environment variable naming a separate vector store.
pub const VECTOR_URL_ENV: &str = "CHATSTORE_VECTOR_URL";
/// The variables naming a separate vector store, the first set winning: chatstore's own, then
/// Open WebUI's names for its pgvector database.
pub const VECTOR_URL_ENVS: [&str; 3] =
    [VECTOR_URL_ENV, "CHATSTORE_PGVECTOR_URL", "PGVECTOR_DB_URL"];

/// The separate vector store's URL from the first of [`VECTOR_URL_ENVS`] set (not blank) in
/// `lookup`.
pub fn vector_url_from(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    VECTOR_URL_ENVS
        .iter()
        .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
}
/// Open WebUI's `DATABASE_URL` from `lookup` (not blank), written the way chatstore reads
/// URLs. Open WebUI reads it as a SQLAlchemy URL, where `sqlite:///data/webui.db` (three
/// slashes) is the relative path `data/webui.db` and `sqlite:////app/data/webui.db` (four) an
/// absolute one; chatstore's URLs follow sqlx, where three slashes start an absolute path, so
/// the same text would open (or create) another file. Other URLs are kept as they are.
pub fn open_webui_database_url(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let url = lookup("DATABASE_URL")?;
    let url = url.trim();
    if url.is_empty() {
        return None;
    }
    let sqlalchemy_sqlite = url
        .get(..10)
        .is_some_and(|head| head.eq_ignore_ascii_case("sqlite:///"));
    Some(if sqlalchemy_sqlite {
        format!("sqlite://{}", &url[10..])
    } else {
        url.to_owned()
    })
}

/// `InvalidInput` when `vector_db` (Open WebUI's `VECTOR_DB`, or `CHATSTORE_VECTOR_DB`, as
/// [`Config`] reads it) names a vector store other than pgvector and no vector URL is set:
/// Open WebUI keeps its vectors there, and opening the store without it would read (or write)
/// vectors Open WebUI never sees, in the app database.
fn check_vector_db(vector_db: Option<&str>, vectors_url: Option<&str>) -> Result<()> {
    let Some(name) = vector_db.filter(|_| vectors_url.is_none()) else {
        return Ok(());
    };
    let fix = format!(
        "set {VECTOR_URL_ENV} to where the vectors are (chroma://HOST:PORT for a Chroma \
         server, chroma-dir://DATA_DIR/vector_db for Open WebUI's own Chroma folder, \
         postgres://... for pgvector), or unset VECTOR_DB to keep chatstore's vectors in the \
         app database"
    );
    match name {
        "pgvector" => Ok(()),
        "chroma" => Err(Error::invalid(format!(
            "VECTOR_DB is chroma: Open WebUI keeps its vectors in Chroma, not in the app \
             database; {fix}"
        ))),
        other => Err(Error::invalid(format!(
            "VECTOR_DB is {other:?}, a vector store chatstore does not read; {fix}"
        ))),
    }
}

/// The environment variable holding the PocketBase superuser's email.
pub const POCKETBASE_EMAIL_ENV: &str = "CHATSTORE_POCKETBASE_ADMIN_EMAIL";
/// The environment variable holding the PocketBase superuser's password.
pub const POCKETBASE_PASSWORD_ENV: &str = "CHATSTORE_POCKETBASE_ADMIN_PASSWORD";
/// The environment variable holding the PocketBase collection name prefix.
pub const POCKETBASE_PREFIX_ENV: &str = "CHATSTORE_POCKETBASE_COLLECTION_PREFIX";
/// The environment variable naming the PostgreSQL server's own URL for pgvector's index builds
/// when the vector URL goes through a transaction pooler such as PgBouncer.
pub const PGVECTOR_DIRECT_URL_ENV: &str = "CHATSTORE_PGVECTOR_DIRECT_URL";
/// The environment variable naming the PostgreSQL server's own URL (past a transaction pooler
/// such as PgBouncer) for the SQL store's change feed (`LISTEN`) and index builds; pgvector's
/// index builds use it too when its own direct URL is not set and the vectors live in the same
/// database.
pub const POSTGRES_DIRECT_URL_ENV: &str = "CHATSTORE_POSTGRES_DIRECT_URL";
/// The environment variable naming the folder file bytes are written to (SQL backends).
pub const UPLOAD_DIR_ENV: &str = "CHATSTORE_UPLOAD_DIR";

/// How to open a store: [`OpenOptions::open`] gives the [`Store`](chatstore_core::Store).
///
/// `Debug` never shows a password.
///
/// ```
/// use chatstore_registry::OpenOptions;
///
/// # tokio_test_block(async {
/// let store = OpenOptions::new("sqlite::memory:")
///     .vectors_url("memory")
///     .open()
///     .await?;
/// assert_eq!(store.backend_name(), "sqlite+memory");
/// # Ok::<(), chatstore_core::Error>(())
/// # });
/// # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f).expect("example");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct OpenOptions {
    pub(crate) database_url: String,
    pub(crate) vectors_url: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) pool_size: Option<u32>,
    pub(crate) upload_dir: Option<PathBuf>,
    pub(crate) pgvector_direct_url: Option<Secret>,
    pub(crate) postgres_direct_url: Option<Secret>,
    pub(crate) pocketbase_email: Option<String>,
    pub(crate) pocketbase_password: Option<Secret>,
    pub(crate) pocketbase_prefix: Option<String>,
    /// pgvector's settings that are not URLs (`PGVECTOR_USE_HALFVEC`, ...), as read.
    pub(crate) pgvector_settings: Vec<(String, String)>,
    pub(crate) throwaway: bool,
    pub(crate) metrics: bool,
}

impl fmt::Debug for OpenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenOptions")
            .field("database_url", &redact(&self.database_url))
            .field("vectors_url", &self.vectors_url.as_deref().map(redact))
            .field("read_only", &self.read_only)
            .field("pool_size", &self.pool_size)
            .field("upload_dir", &self.upload_dir)
            .field("pgvector_direct_url", &self.pgvector_direct_url)
            .field("postgres_direct_url", &self.postgres_direct_url)
            .field("pocketbase_email", &self.pocketbase_email)
            .field("pocketbase_password", &self.pocketbase_password)
            .field("pocketbase_prefix", &self.pocketbase_prefix)
            .field("pgvector_settings", &self.pgvector_settings)
            .field("throwaway", &self.throwaway)
            .field("metrics", &self.metrics)
            .finish()
    }
}

fn redact(url: &str) -> String {
    crate::StoreUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| redact_raw(url))
}

impl OpenOptions {
    /// Options for the store at `database_url`, with nothing read from the environment.
    pub fn new(database_url: impl Into<String>) -> Self {
        OpenOptions {
            database_url: database_url.into(),
            ..OpenOptions::default()
        }
    }

    /// Options for the store at `database_url` with the settings of the process environment
    /// (see [`OpenOptions::with_settings_from`]); the vector URL is not read.
    pub fn for_url(database_url: impl Into<String>) -> Result<Self> {
        OpenOptions::new(database_url).with_settings_from(|n| std::env::var(n).ok())
    }

    /// Everything from the process environment: the store from `CHATSTORE_DATABASE_URL`
    /// (else Open WebUI's `DATABASE_URL`, see [`open_webui_database_url`]), the vector store
    /// from `CHATSTORE_VECTOR_URL` (else, as Open WebUI does, `CHATSTORE_PGVECTOR_URL` /
    /// `PGVECTOR_DB_URL` when set), and the settings. `InvalidInput` when Open WebUI's
    /// `VECTOR_DB` names another vector store than pgvector and no vector URL says where it is.
    pub fn from_env() -> Result<Self> {
        OpenOptions::from_lookup(|n| std::env::var(n).ok())
    }

    /// [`OpenOptions::from_env`] reading variables through `lookup` (tests, embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        let database_url = get(&[DATABASE_URL_ENV])
            .or_else(|| open_webui_database_url(&lookup))
            .ok_or_else(|| {
            Error::invalid(format!(
                "no store configured: set {DATABASE_URL_ENV} (or DATABASE_URL) to a URL such as \
                 sqlite://webui.db, postgres://USER@HOST/DB or pocketbase://HOST:PORT"
            ))
        })?;
        OpenOptions::for_url_from_lookup(database_url, None, lookup)
    }

    /// Options for the store at `database_url`, the rest from the process environment as
    /// [`OpenOptions::from_env`] reads it: the vector URL (`vectors_url` when given, else
    /// `CHATSTORE_VECTOR_URL` / `CHATSTORE_PGVECTOR_URL` / `PGVECTOR_DB_URL`), the settings, and
    /// the same `InvalidInput` when Open WebUI's `VECTOR_DB` names another vector store than
    /// pgvector and no vector URL says where it is. For a tool given the store's URL in a flag
    /// (the `chatstore` command) that otherwise opens what the application would.
    pub fn for_url_from_env(
        database_url: impl Into<String>,
        vectors_url: Option<String>,
    ) -> Result<Self> {
        OpenOptions::for_url_from_lookup(database_url, vectors_url, |n| std::env::var(n).ok())
    }

    /// [`OpenOptions::for_url_from_env`] reading variables through `lookup` (tests, embedding).
    pub fn for_url_from_lookup(
        database_url: impl Into<String>,
        vectors_url: Option<String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let vectors_url = vectors_url
            .filter(|u| !u.trim().is_empty())
            .or_else(|| vector_url_from(&lookup));
        check_vector_db(
            Config::from_lookup(&lookup)?.vector_db.as_deref(),
            vectors_url.as_deref(),
        )?;
        let mut options = OpenOptions::new(database_url).with_settings_from(&lookup)?;
        options.vectors_url = vectors_url;
        Ok(options)
    }

    /// Reads the settings that are not URLs through `lookup`: pool size
    /// (`CHATSTORE_POOL_SIZE` / `DATABASE_POOL_SIZE`), PocketBase superuser
    /// (`CHATSTORE_POCKETBASE_ADMIN_EMAIL` / `_PASSWORD`) and collection prefix
    /// (`CHATSTORE_POCKETBASE_COLLECTION_PREFIX`), upload folder (`CHATSTORE_UPLOAD_DIR`),
    /// the PostgreSQL server's own URL behind a pooler (`CHATSTORE_POSTGRES_DIRECT_URL`,
    /// and pgvector's `CHATSTORE_PGVECTOR_DIRECT_URL`), and pgvector's other settings
    /// (`PGVECTOR_INITIALIZE_MAX_VECTOR_LENGTH`, `PGVECTOR_USE_HALFVEC`,
    /// `CHATSTORE_PGVECTOR_AUTO_INDEX`, ...: `chatstore_pgvector::SETTINGS_ENV`, checked when a
    /// pgvector store is opened). Values already set on `self` win.
    pub fn with_settings_from(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let config = Config::from_lookup(&lookup)?;
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        self.pool_size = self.pool_size.or(config.pool_size);
        self.pocketbase_email = self.pocketbase_email.or(config.pocketbase_admin_email);
        self.pocketbase_password = self
            .pocketbase_password
            .or(config.pocketbase_admin_password.map(Secret::new));
        self.pocketbase_prefix = self.pocketbase_prefix.or(get(POCKETBASE_PREFIX_ENV));
        self.upload_dir = self.upload_dir.or(get(UPLOAD_DIR_ENV).map(PathBuf::from));
        self.pgvector_direct_url = self
            .pgvector_direct_url
            .or(get(PGVECTOR_DIRECT_URL_ENV).map(Secret::new));
        self.postgres_direct_url = self
            .postgres_direct_url
            .or(get(POSTGRES_DIRECT_URL_ENV).map(Secret::new));
        #[cfg(feature = "pgvector")]
        for name in chatstore_pgvector::SETTINGS_ENV {
            // The direct URL holds a password: it is kept apart, as a secret.
            let known = self.pgvector_settings.iter().any(|(n, _)| n == name);
            if *name != PGVECTOR_DIRECT_URL_ENV
                && !known
                && let Some(value) = get(name)
            {
                self.pgvector_settings.push(((*name).to_owned(), value));
            }
        }
        Ok(self)
    }

    /// The store's URL.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Takes vectors from the store at `url` instead (`postgres://` for pgvector,
    /// `sqlite://PATH`, `memory`).
    pub fn vectors_url(mut self, url: impl Into<String>) -> Self {
        self.vectors_url = Some(url.into());
        self
    }

    /// Sets or clears the vector URL (an empty one clears it).
    pub fn maybe_vectors_url(mut self, url: Option<String>) -> Self {
        self.vectors_url = url.filter(|u| !u.trim().is_empty());
        self
    }

    /// Opens without creating or changing anything: a SQLite file must exist, SQL writes fail,
    /// no schema is created (PocketBase: the collections must exist and are only checked).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Connections per pool.
    pub fn pool_size(mut self, n: u32) -> Self {
        self.pool_size = Some(n);
        self
    }

    /// The folder SQL backends write file bytes to (default: `uploads/` next to a SQLite file,
    /// a temporary folder for PostgreSQL and in-memory SQLite).
    pub fn upload_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.upload_dir = Some(dir.into());
        self
    }

    /// The PostgreSQL server's own URL for pgvector's index builds, when the vector URL goes
    /// through a transaction pooler (PgBouncer): they need a connection of their own.
    pub fn pgvector_direct_url(mut self, url: impl Into<String>) -> Self {
        self.pgvector_direct_url = Some(Secret::new(url));
        self
    }

    /// The PostgreSQL server's own URL, when the database URL goes through a transaction
    /// pooler (PgBouncer): the change feed `LISTEN`s there and chatstore's indexes are built
    /// there. Without it, a store opened through a pooler has no change feed.
    pub fn postgres_direct_url(mut self, url: impl Into<String>) -> Self {
        self.postgres_direct_url = Some(Secret::new(url));
        self
    }

    /// The PocketBase superuser, when the URL does not carry it.
    pub fn pocketbase_superuser(
        mut self,
        email: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.pocketbase_email = Some(email.into());
        self.pocketbase_password = Some(Secret::new(password));
        self
    }

    /// The PocketBase collection name prefix (`""` by default: `owui_users`, ...).
    pub fn pocketbase_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.pocketbase_prefix = Some(prefix.into());
        self
    }

    /// Records every call on the `metrics` facade
    /// ([`Metrics`](chatstore_core::layers::metrics::Metrics) layer: calls, errors by kind and
    /// latency per backend, group and operation); the binary installs the exporter.
    pub fn metrics(mut self, metrics: bool) -> Self {
        self.metrics = metrics;
        self
    }

    /// A throwaway store (tests, benchmarks): PocketBase collections are deleted when the last
    /// handle of the store is dropped.
    pub fn throwaway(mut self, throwaway: bool) -> Self {
        self.throwaway = throwaway;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreUrl;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_environment_names_store_vectors_and_superuser() {
        let options = OpenOptions::from_lookup(lookup(&[
            ("DATABASE_URL", "sqlite://a.db"),
            ("CHATSTORE_DATABASE_URL", "pocketbase://h:1"),
            ("CHATSTORE_VECTOR_URL", "postgres://u@h/v"),
            ("PGVECTOR_DB_URL", "postgres://u@h/other"),
            ("CHATSTORE_POCKETBASE_ADMIN_EMAIL", "a@b.c"),
            ("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", "hunter2"),
            ("CHATSTORE_POOL_SIZE", "4"),
        ]))
        .expect("valid");
        assert_eq!(options.database_url, "pocketbase://h:1");
        assert_eq!(options.vectors_url.as_deref(), Some("postgres://u@h/v"));
        assert_eq!(options.pocketbase_email.as_deref(), Some("a@b.c"));
        assert_eq!(options.pool_size, Some(4));
        assert!(!format!("{options:?}").contains("hunter2"));
    }

    #[test]
    fn open_webui_pgvector_url_is_the_vector_url_when_no_chatstore_one_is_set() {
        let options = OpenOptions::from_lookup(lookup(&[
            ("DATABASE_URL", "postgres://u@h/app"),
            ("PGVECTOR_DB_URL", "postgres://u@h/vectors"),
        ]))
        .expect("valid");
        assert_eq!(
            options.vectors_url.as_deref(),
            Some("postgres://u@h/vectors")
        );
    }

    #[test]
    fn the_postgres_direct_url_is_read_and_never_shown() {
        let options = OpenOptions::from_lookup(lookup(&[
            ("CHATSTORE_DATABASE_URL", "postgres://u@bouncer:6432/app"),
            (
                "CHATSTORE_POSTGRES_DIRECT_URL",
                "postgres://u:hunter5@db:5432/app",
            ),
        ]))
        .expect("valid");
        assert_eq!(
            options.postgres_direct_url.as_ref().map(Secret::expose),
            Some("postgres://u:hunter5@db:5432/app")
        );
        assert!(!format!("{options:?}").contains("hunter5"));
    }

    /// Open WebUI's `DATABASE_URL` is a SQLAlchemy URL: three slashes before a SQLite path
    /// make it relative, four absolute; chatstore's own variable keeps sqlx's reading.
    #[test]
    fn open_webuis_sqlite_url_names_the_file_open_webui_opens() {
        for (given, read) in [
            ("sqlite:///data/webui.db", "sqlite://data/webui.db"),
            (
                "sqlite:////app/backend/data/webui.db",
                "sqlite:///app/backend/data/webui.db",
            ),
            ("SQLite:///webui.db", "sqlite://webui.db"),
            ("postgresql://u@h/app", "postgresql://u@h/app"),
        ] {
            let options =
                OpenOptions::from_lookup(lookup(&[("DATABASE_URL", given)])).expect("valid");
            assert_eq!(options.database_url, read, "{given}");
        }
        let sqlite = |url: &str| match StoreUrl::parse(url).expect("a URL").target() {
            crate::Target::Sqlite { path, .. } => path.clone(),
            other => panic!("{other:?}"),
        };
        let relative =
            OpenOptions::from_lookup(lookup(&[("DATABASE_URL", "sqlite:///data/webui.db")]))
                .expect("valid");
        assert_eq!(
            sqlite(&relative.database_url),
            Some(PathBuf::from("data/webui.db"))
        );
        let own = OpenOptions::from_lookup(lookup(&[
            ("CHATSTORE_DATABASE_URL", "sqlite:///var/lib/webui.db"),
            ("DATABASE_URL", "sqlite:///data/webui.db"),
        ]))
        .expect("valid");
        assert_eq!(own.database_url, "sqlite:///var/lib/webui.db");
    }

    /// Open WebUI with `VECTOR_DB=chroma` (or another store) keeps its vectors there: without
    /// a vector URL saying where, the store is refused instead of opened with vectors in the
    /// app database that Open WebUI never reads.
    #[test]
    fn a_vector_db_other_than_pgvector_needs_a_vector_url() {
        for name in ["chroma", "qdrant", "Chroma"] {
            let err = OpenOptions::from_lookup(lookup(&[
                ("DATABASE_URL", "postgres://u@h/app"),
                ("VECTOR_DB", name),
            ]))
            .expect_err("refused");
            assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(VECTOR_URL_ENV), "{err}");
        }
        for vars in [
            [
                ("VECTOR_DB", "chroma"),
                ("CHATSTORE_VECTOR_URL", "chroma://h:8000"),
            ],
            [("VECTOR_DB", "pgvector"), ("PGVECTOR_DB_URL", "")],
        ] {
            let mut vars = vars.to_vec();
            vars.push(("DATABASE_URL", "postgres://u@h/app"));
            OpenOptions::from_lookup(lookup(&vars)).expect("accepted");
        }
    }

    /// A store named by URL with the rest from the environment keeps the same `VECTOR_DB`
    /// rule; a vector URL given beside the store's (a flag) satisfies it and wins over the
    /// environment's.
    #[test]
    fn a_store_named_by_url_refuses_a_vector_db_without_a_vector_url() {
        let err = OpenOptions::for_url_from_lookup(
            "sqlite://x.db",
            None,
            lookup(&[("VECTOR_DB", "chroma")]),
        )
        .expect_err("refused");
        assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(VECTOR_URL_ENV), "{err}");
        let given = OpenOptions::for_url_from_lookup(
            "sqlite://x.db",
            Some("chroma://h:8000".into()),
            lookup(&[
                ("VECTOR_DB", "chroma"),
                ("CHATSTORE_VECTOR_URL", "chroma://other:8000"),
            ]),
        )
        .expect("accepted");
        assert_eq!(given.vectors_url.as_deref(), Some("chroma://h:8000"));
        let from_env = OpenOptions::for_url_from_lookup(
            "sqlite://x.db",
            None,
            lookup(&[
                ("VECTOR_DB", "chroma"),
                ("CHATSTORE_VECTOR_URL", "chroma://other:8000"),
            ]),
        )
        .expect("accepted");
        assert_eq!(from_env.vectors_url.as_deref(), Some("chroma://other:8000"));
        assert_eq!(from_env.database_url, "sqlite://x.db");
    }

    #[test]
    fn no_store_configured_says_which_variable_to_set() {
        let err = OpenOptions::from_lookup(lookup(&[])).expect_err("refused");
        assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("CHATSTORE_DATABASE_URL"));
    }

    #[test]
    fn debug_hides_passwords_in_urls_and_settings() {
        let options = OpenOptions::new("postgres://u:hunter2@h/db")
            .vectors_url("postgres://u:hunter3@h/v")
            .pocketbase_superuser("a@b.c", "hunter4");
        let shown = format!("{options:?}");
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
