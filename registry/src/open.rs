//! Opening each backend a URL names; the only place that names the adapters.

use std::sync::Arc;

use chatstore_core::{Error, Result, Store, VectorRepo, memory};

use crate::options::OpenOptions;
use crate::store_url::{Secret, StoreUrl, Target};

impl OpenOptions {
    /// Opens the store: its backend from the database URL, its vectors from the vector URL
    /// when one is set. A URL is checked before anything is opened (`InvalidInput` saying what
    /// to write instead); a server that cannot be reached is `Unavailable`.
    pub async fn open(&self) -> Result<Store> {
        let url = StoreUrl::parse(&self.database_url)?;
        let vectors_url = match &self.vectors_url {
            Some(v) => Some(vector_url(v)?),
            None => None,
        };
        let base = self.open_base(&url, vectors_url.is_none()).await?;
        let mut store = match &vectors_url {
            None => base,
            Some(vectors_url) => {
                let (name, vectors) = self.open_vectors(vectors_url).await?;
                with_vectors(&base, name, vectors)
            }
        };
        if let Some(vectors_url) = &vectors_url
            && matches!(
                vectors_url.target(),
                Target::Chroma { .. } | Target::ChromaDir { .. }
            )
        {
            // Chroma: writes are not atomic across batches and collections, and cosine vectors
            // read back within f32 rounding (see chatstore-chroma's README).
            let mut capabilities = store.capabilities();
            capabilities.atomic_bulk = false;
            capabilities.exact_vectors = false;
            store = store.rebuild(store.backend_name().to_owned(), capabilities, store.parts());
        }
        if self.metrics {
            return Ok(store.with_layer(&chatstore_core::layers::metrics::Metrics::new()));
        }
        Ok(store)
    }

    async fn open_base(&self, url: &StoreUrl, own_vectors: bool) -> Result<Store> {
        match url.target() {
            Target::Memory => Ok(memory::store()),
            Target::Sqlite { .. } | Target::Postgres { .. } => {
                self.open_sql(url, own_vectors).await
            }
            Target::PocketBase { .. } => self.open_pocketbase(url).await,
            Target::Chroma { .. } | Target::ChromaDir { .. } => Err(Error::invalid(format!(
                "{url} holds only vectors; give it as the vector URL (--from-vectors, \
                 --to-vectors, CHATSTORE_VECTOR_URL) beside a database URL"
            ))),
        }
    }

    #[cfg(feature = "sql")]
    async fn open_sql(&self, url: &StoreUrl, own_vectors: bool) -> Result<Store> {
        // A bad pgvector setting is refused before anything is opened, not taken for a
        // database without pgvector.
        #[cfg(feature = "pgvector")]
        if own_vectors && matches!(url.target(), Target::Postgres { .. }) {
            self.pgvector_config()?;
        }
        let sql = self.connect_sql(url).await?;
        let raw = match url.target() {
            Target::Postgres { url: raw } if own_vectors => raw.expose(),
            _ => return Ok(sql.store()),
        };
        // PostgreSQL keeps its vectors next to the data, in pgvector's `document_chunk`, as
        // Open WebUI does; a database without the `vector` extension still opens.
        // Same database: its own direct URL serves pgvector's index builds too.
        let direct = self
            .pgvector_direct_url
            .as_ref()
            .or(self.postgres_direct_url.as_ref());
        // Only a database without the extension opens without vectors: any other failure of
        // the vector store (a refused setting, an encrypted table, a pool that does not fit,
        // rights missing on the table) is the caller's to see, or a migration would find "no
        // vectors" on a database holding them and verify it as equal.
        match self.connect_pgvector(raw, direct).await {
            Ok(vectors) => {
                Ok(vectors
                    .marked(sql.store_with_vectors("postgres+pgvector", vectors.repo.clone())))
            }
            Err(e) if !without_vectors(&e) => Err(e),
            Err(e) => {
                tracing::warn!(
                    database = %url,
                    "vectors are unavailable on this database ({e}); opening without them"
                );
                Ok(sql.store())
            }
        }
    }

    /// The SQL database itself (`sqlite://`, `postgres://`), for tools that need more than a
    /// [`Store`]: its Open WebUI schema revision and row counts (`chatstore inspect`).
    /// `InvalidInput` for a URL of another backend.
    #[cfg(feature = "sql")]
    pub async fn open_sql_database(&self) -> Result<chatstore_sql::SqlStore> {
        self.connect_sql(&StoreUrl::parse(&self.database_url)?)
            .await
    }

    #[cfg(feature = "sql")]
    async fn connect_sql(&self, url: &StoreUrl) -> Result<chatstore_sql::SqlStore> {
        use chatstore_sql::{SqlOptions, SqlStore};
        let raw = match url.target() {
            Target::Sqlite { url: raw, path } => {
                if self.read_only
                    && let Some(path) = path
                    && !path.is_file()
                {
                    return Err(Error::invalid(format!(
                        "no SQLite database at {path:?} (read-only opening never creates one)"
                    )));
                }
                raw.as_str()
            }
            Target::Postgres { url: raw } => raw.expose(),
            _ => {
                return Err(Error::invalid(format!(
                    "{url} is not a SQL database (sqlite:// or postgres://)"
                )));
            }
        };
        let mut options = SqlOptions::default().read_only(self.read_only);
        if let Some(n) = self.pool_size {
            options = options.max_connections(n);
        }
        if let Some(dir) = &self.upload_dir {
            options = options.upload_dir(dir);
        }
        if let Some(direct) = &self.postgres_direct_url {
            options = options.listen_url(direct.expose());
        }
        SqlStore::connect(raw, options).await
    }

    #[cfg(not(feature = "sql"))]
    async fn open_sql(&self, url: &StoreUrl, _own_vectors: bool) -> Result<Store> {
        Err(missing_feature(url, "sql"))
    }

    #[cfg(feature = "pgvector")]
    async fn connect_pgvector(&self, raw: &str, direct: Option<&Secret>) -> Result<Vectors> {
        use chatstore_pgvector::{ColumnType, PgVectorStore};
        let mut config = self.pgvector_config()?.read_only(self.read_only);
        config.url = raw.to_owned();
        // pgvector's own pool size (`PGVECTOR_POOL_SIZE`) wins over the store's.
        let own_pool_size = self
            .pgvector_settings
            .iter()
            .any(|(n, _)| n.ends_with("POOL_SIZE"));
        if let Some(n) = self.pool_size
            && !own_pool_size
        {
            config = config.pool_size(n);
        }
        if let Some(direct) = direct {
            config = config.direct_url(direct.expose());
        }
        let store = PgVectorStore::connect(config).await?;
        Ok(Vectors {
            half: store.schema().column_type == ColumnType::HalfVec,
            repo: Arc::new(store),
        })
    }

    /// pgvector's configuration from its settings (no URL yet): a setting that does not parse
    /// is `InvalidInput` naming its variable.
    #[cfg(feature = "pgvector")]
    fn pgvector_config(&self) -> Result<chatstore_pgvector::PgVectorConfig> {
        chatstore_pgvector::PgVectorConfig::default().with_settings_from(|name| {
            self.pgvector_settings
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[cfg(not(feature = "pgvector"))]
    async fn connect_pgvector(&self, _raw: &str, _direct: Option<&Secret>) -> Result<Vectors> {
        Err(Error::invalid(
            "this build of chatstore-registry has no pgvector support (cargo feature \"pgvector\")",
        ))
    }

    /// Chroma: a server, or a folder read through a private server on a copy of it. Open
    /// WebUI's `CHROMA_TENANT`, `CHROMA_DATABASE` and `CHROMA_HTTP_HEADERS` apply, and
    /// `CHATSTORE_CHROMA_CA_CERT` (a PEM file of CAs trusted for `chromas://`).
    #[cfg(feature = "chroma")]
    async fn connect_chroma(&self, url: &StoreUrl) -> Result<Arc<dyn VectorRepo>> {
        use chatstore_chroma::{ChromaConfig, ChromaStore};
        match url.target() {
            Target::Chroma { url: raw } => {
                let raw = raw.expose();
                let mut config = ChromaConfig::new(raw)?;
                let env = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
                if !raw.contains("tenant=")
                    && let Some(t) = env("CHROMA_TENANT")
                {
                    config = config.tenant(t);
                }
                if !raw.contains("database=")
                    && let Some(d) = env("CHROMA_DATABASE")
                {
                    config = config.database(d);
                }
                config.headers = chatstore_chroma::headers_from_env()?;
                config.ca_cert = chatstore_chroma::ca_cert_from_env();
                Ok(Arc::new(ChromaStore::connect(config).await?))
            }
            Target::ChromaDir { path } => Ok(Arc::new(ChromaStore::open_dir(path).await?)),
            _ => Err(Error::invalid(format!("{url} is not a Chroma URL"))),
        }
    }

    #[cfg(not(feature = "chroma"))]
    async fn connect_chroma(&self, url: &StoreUrl) -> Result<Arc<dyn VectorRepo>> {
        Err(Error::invalid(format!(
            "{url}: this build of chatstore-registry has no Chroma support (cargo feature \"chroma\")"
        )))
    }

    #[cfg(feature = "pocketbase")]
    async fn open_pocketbase(&self, url: &StoreUrl) -> Result<Store> {
        use crate::options::{POCKETBASE_EMAIL_ENV, POCKETBASE_PASSWORD_ENV};
        use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
        let Target::PocketBase {
            base_url,
            email,
            password,
            prefix,
        } = url.target()
        else {
            return Err(Error::invalid(format!("{url} is not a PocketBase server")));
        };
        let email = email.clone().or_else(|| self.pocketbase_email.clone());
        let password = password
            .clone()
            .or_else(|| self.pocketbase_password.clone());
        let (Some(email), Some(password)) = (email, password) else {
            return Err(Error::invalid(format!(
                "{url} needs a superuser: set {POCKETBASE_EMAIL_ENV} and {POCKETBASE_PASSWORD_ENV}, \
                 or write it into the URL as pocketbase://EMAIL:PASSWORD@HOST:PORT \
                 (percent-encoded: @ is %40)"
            )));
        };
        let mut config = PocketBaseConfig::new(base_url, email, password.expose());
        if let Some(prefix) = prefix.clone().or_else(|| self.pocketbase_prefix.clone()) {
            config = config.with_prefix(prefix);
        }
        if self.throwaway {
            config = config.dropping_collections_on_drop();
        }
        let pb = if self.read_only {
            PocketBase::connect_existing(config).await?
        } else {
            PocketBase::connect(config).await?
        };
        Ok(pb.store())
    }

    #[cfg(not(feature = "pocketbase"))]
    async fn open_pocketbase(&self, url: &StoreUrl) -> Result<Store> {
        Err(missing_feature(url, "pocketbase"))
    }

    /// The vector repository at a vector URL, with the backend name it adds to the store's.
    async fn open_vectors(&self, url: &StoreUrl) -> Result<(String, Vectors)> {
        match url.target() {
            Target::Postgres { url: raw } => Ok((
                "pgvector".to_owned(),
                // Another URL than the store's: only pgvector's own direct URL applies.
                self.connect_pgvector(raw.expose(), self.pgvector_direct_url.as_ref())
                    .await?,
            )),
            Target::Chroma { .. } | Target::ChromaDir { .. } => Ok((
                url.backend().to_owned(),
                Vectors {
                    repo: self.connect_chroma(url).await?,
                    half: false,
                },
            )),
            _ => {
                let store = self.open_base(url, true).await?;
                Ok((
                    store.backend_name().to_owned(),
                    Vectors {
                        half: store.capabilities().half_vectors,
                        repo: store.parts().vectors,
                    },
                ))
            }
        }
    }
}

/// Whether a failure to open pgvector leaves a PostgreSQL database to open without vectors:
/// the database has no `vector` extension, or this build has no pgvector support.
#[cfg(all(feature = "sql", feature = "pgvector"))]
fn without_vectors(e: &Error) -> bool {
    chatstore_pgvector::is_missing_extension(e)
}

#[cfg(all(feature = "sql", not(feature = "pgvector")))]
fn without_vectors(_: &Error) -> bool {
    true
}

/// Parses a vector URL, refusing backends that hold no vectors.
fn vector_url(raw: &str) -> Result<StoreUrl> {
    let url = StoreUrl::parse(raw)?;
    if let Target::PocketBase { .. } = url.target() {
        return Err(Error::invalid(format!(
            "PocketBase stores no vectors ({url}); for the vector URL use postgres://... \
             (pgvector), sqlite://PATH, chroma://HOST:PORT, chroma-dir://PATH or memory"
        )));
    }
    Ok(url)
}

/// A vector repository as opened, and whether it keeps vectors in half precision.
struct Vectors {
    repo: Arc<dyn VectorRepo>,
    half: bool,
}

impl Vectors {
    /// `store` (whose vectors these are) with [`Capabilities::half_vectors`] set when they
    /// are kept in half precision (then not `exact_vectors` either).
    ///
    /// [`Capabilities::half_vectors`]: chatstore_core::Capabilities::half_vectors
    fn marked(&self, store: Store) -> Store {
        if !self.half {
            return store;
        }
        let mut capabilities = store.capabilities();
        capabilities.half_vectors = true;
        capabilities.exact_vectors = false;
        store.rebuild(store.backend_name().to_owned(), capabilities, store.parts())
    }
}

/// `base` with its vectors replaced by `vectors`, named `base+name`.
fn with_vectors(base: &Store, name: String, vectors: Vectors) -> Store {
    let mut capabilities = base.capabilities();
    capabilities.vectors = true;
    // What the base said of its own vectors does not hold for these.
    capabilities.exact_vectors = true;
    capabilities.half_vectors = false;
    let mut parts = base.parts();
    parts.vectors = vectors.repo.clone();
    let store = base.rebuild(
        format!("{}+{name}", base.backend_name()),
        capabilities,
        parts,
    );
    vectors.marked(store)
}

#[cfg(any(not(feature = "sql"), not(feature = "pocketbase")))]
fn missing_feature(url: &StoreUrl, feature: &str) -> Error {
    Error::invalid(format!(
        "{url}: this build of chatstore-registry has no {} support (cargo feature {feature:?})",
        url.backend()
    ))
}
