//! Configuration of the Chroma adapter, from code, a URL or the environment (Open WebUI's own
//! variable names are accepted where they mean the same).

use std::path::PathBuf;
use std::time::Duration;

use chatstore_core::{Error, Result};

/// How far vector ids are kept unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdScope {
    /// Across every collection of the database, as the chatstore contract (and Open WebUI's
    /// `document_chunk` key) says: an insert of an id another collection holds is a
    /// `Conflict`, an upsert moves it. Chroma has no such index, so every write first asks
    /// every collection of the database for its ids: one request per collection.
    Database,
    /// Per collection only, Chroma's own rule: writes cost no extra requests, but an id may
    /// live in two collections (Open WebUI's uuid4 ids make that practically impossible).
    Collection,
}

/// How to reach Chroma and how to behave on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChromaConfig {
    /// Base URL of the server, `http://host:port` (or `https://` with the `tls` feature).
    pub url: String,
    /// Tenant (Open WebUI: `CHROMA_TENANT`).
    pub tenant: String,
    /// Database (Open WebUI: `CHROMA_DATABASE`).
    pub database: String,
    /// Create the database when it is missing (Chroma's clients never do).
    pub create_database: bool,
    /// Extra HTTP headers sent with every request, e.g. an auth token (Open WebUI:
    /// `CHROMA_HTTP_HEADERS`, `key=value,key=value`).
    pub headers: Vec<(String, String)>,
    /// Timeout of one HTTP request.
    pub timeout: Duration,
    /// How far ids are kept unique.
    pub id_scope: IdScope,
    /// Searches over at most this many candidates (the collection, or the items inside the
    /// filter) ask Chroma for every candidate, so its HNSW walk goes as far as its graph
    /// reaches (exact in practice, not guaranteed: a record the graph does not link to is
    /// missed); larger ones get Chroma's approximate HNSW answer.
    pub exact_max_candidates: usize,
    /// How long a scan reuses the sorted id list of a collection before listing it again
    /// (Chroma cannot select "ids after X", so a scan pages through a sorted snapshot of ids).
    pub scan_snapshot_ttl: Duration,
    /// Requests in flight at once when a call fans out over many collections.
    pub fan_out: usize,
    /// A PEM file of CA certificates trusted for `chromas://` besides the system's (a private
    /// CA or a self-signed server certificate); environment: [`CA_CERT_ENV`].
    pub ca_cert: Option<PathBuf>,
}

/// The environment variable naming a PEM file of extra CA certificates for `chromas://`.
pub const CA_CERT_ENV: &str = "CHATSTORE_CHROMA_CA_CERT";

/// The PEM file named by [`CA_CERT_ENV`], when set.
pub fn ca_cert_from_env() -> Option<PathBuf> {
    std::env::var_os(CA_CERT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Chroma's default port.
pub const DEFAULT_PORT: u16 = 8000;

impl Default for ChromaConfig {
    fn default() -> Self {
        ChromaConfig {
            url: format!("http://127.0.0.1:{DEFAULT_PORT}"),
            tenant: "default_tenant".into(),
            database: "default_database".into(),
            create_database: false,
            headers: Vec::new(),
            timeout: Duration::from_secs(120),
            id_scope: IdScope::Database,
            exact_max_candidates: 10_000,
            scan_snapshot_ttl: Duration::from_secs(30),
            fan_out: 8,
            ca_cert: None,
        }
    }
}

impl ChromaConfig {
    /// Defaults with this URL: `chroma://HOST[:PORT]`, `chromas://HOST[:PORT]` (TLS),
    /// `http://...` or `https://...`, optionally with `?tenant=T&database=D`.
    pub fn new(url: &str) -> Result<Self> {
        let mut config = ChromaConfig::default();
        let shown = chatstore_core::redact::url_text(url);
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let (scheme, rest) = base.split_once("://").ok_or_else(|| {
            Error::invalid(format!(
                "{shown:?} is not a Chroma URL; use chroma://HOST:PORT (or chromas:// for TLS)"
            ))
        })?;
        let https = match scheme {
            "chroma" | "http" => false,
            "chromas" | "https" => true,
            other => {
                return Err(Error::invalid(format!(
                    "unknown Chroma URL scheme {other:?}; use chroma://HOST:PORT or chromas://HOST:PORT"
                )));
            }
        };
        let host_port = rest.trim_end_matches('/');
        if host_port.is_empty() || host_port.contains('/') {
            return Err(Error::invalid(format!(
                "{shown:?}: expected chroma://HOST:PORT with no path (tenant and database go in \
                 ?tenant=...&database=...)"
            )));
        }
        let has_port = host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        let host_port = if has_port || scheme.starts_with("http") {
            host_port.to_owned()
        } else {
            format!("{host_port}:{DEFAULT_PORT}")
        };
        config.url = format!("{}://{host_port}", if https { "https" } else { "http" });
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "tenant" => config.tenant = v.to_owned(),
                "database" => config.database = v.to_owned(),
                other => {
                    return Err(Error::invalid(format!(
                        "unknown Chroma URL parameter {other:?} (known: tenant, database)"
                    )));
                }
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Sets the tenant.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }

    /// Sets the database.
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = database.into();
        self
    }

    /// Creates the database when it is missing.
    pub fn create_database(mut self, yes: bool) -> Self {
        self.create_database = yes;
        self
    }

    /// Sets how far ids are kept unique.
    pub fn id_scope(mut self, scope: IdScope) -> Self {
        self.id_scope = scope;
        self
    }

    /// Sets the largest candidate count searched exactly.
    pub fn exact_max_candidates(mut self, n: usize) -> Self {
        self.exact_max_candidates = n;
        self
    }

    /// Trusts the CA certificates of this PEM file for `chromas://`, besides the system's.
    pub fn ca_cert(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.ca_cert = Some(pem_file.into());
        self
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Reads `CHATSTORE_CHROMA_URL`, or Open WebUI's `CHROMA_HTTP_HOST`, `CHROMA_HTTP_PORT`
    /// and `CHROMA_HTTP_SSL`; then `CHROMA_TENANT`, `CHROMA_DATABASE`,
    /// `CHROMA_HTTP_HEADERS` and [`CA_CERT_ENV`].
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let mut config = if let Some(url) = var("CHATSTORE_CHROMA_URL") {
            ChromaConfig::new(&url)?
        } else if let Some(host) = var("CHROMA_HTTP_HOST") {
            let port = var("CHROMA_HTTP_PORT").unwrap_or_else(|| DEFAULT_PORT.to_string());
            let ssl = var("CHROMA_HTTP_SSL")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
            let scheme = if ssl { "chromas" } else { "chroma" };
            ChromaConfig::new(&format!("{scheme}://{host}:{port}"))?
        } else {
            return Err(Error::invalid(
                "set CHATSTORE_CHROMA_URL=chroma://HOST:PORT (or CHROMA_HTTP_HOST and CHROMA_HTTP_PORT)",
            ));
        };
        if let Some(t) = var("CHROMA_TENANT") {
            config.tenant = t;
        }
        if let Some(d) = var("CHROMA_DATABASE") {
            config.database = d;
        }
        if let Some(h) = var("CHROMA_HTTP_HEADERS") {
            config.headers = parse_headers(&h)?;
        }
        config.ca_cert = ca_cert_from_env();
        config.check()?;
        Ok(config)
    }

    /// Checks the tenant and database names (they go into URL paths).
    pub fn check(&self) -> Result<()> {
        for (what, name) in [("tenant", &self.tenant), ("database", &self.database)] {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(Error::invalid(format!(
                    "Chroma {what} {name:?} must be non-empty and use only letters, digits, '.', '_' and '-'"
                )));
            }
        }
        Ok(())
    }
}

/// Open WebUI's `CHROMA_HTTP_HEADERS` (`key=value,key=value`), empty when unset.
pub fn headers_from_env() -> Result<Vec<(String, String)>> {
    match std::env::var("CHROMA_HTTP_HEADERS") {
        Ok(v) if !v.trim().is_empty() => parse_headers(&v),
        _ => Ok(Vec::new()),
    }
}

fn parse_headers(value: &str) -> Result<Vec<(String, String)>> {
    value
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "CHROMA_HTTP_HEADERS entry {pair:?} is not key=value"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let c = ChromaConfig::new("chroma://localhost").expect("valid");
        assert_eq!(c.url, "http://localhost:8000");
        let c = ChromaConfig::new("chromas://db.example:443?tenant=t1&database=d1").expect("valid");
        assert_eq!(c.url, "https://db.example:443");
        assert_eq!((c.tenant.as_str(), c.database.as_str()), ("t1", "d1"));
        let c = ChromaConfig::new("http://127.0.0.1:9000/").expect("valid");
        assert_eq!(c.url, "http://127.0.0.1:9000");
        assert!(ChromaConfig::new("postgres://x").is_err());
        assert!(ChromaConfig::new("chroma://h:1/path").is_err());
        assert!(ChromaConfig::new("chroma://h:1?tenant=a/b").is_err());
        assert!(ChromaConfig::new("chroma://h:1?colour=red").is_err());
    }

    #[test]
    fn headers_parse() {
        assert_eq!(
            parse_headers("Authorization=Bearer x, X-Y=1").expect("valid"),
            vec![
                ("Authorization".to_owned(), "Bearer x".to_owned()),
                ("X-Y".to_owned(), "1".to_owned())
            ]
        );
        assert!(parse_headers("nokey").is_err());
    }
}
