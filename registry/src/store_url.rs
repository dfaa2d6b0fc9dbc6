//! Store URLs: which backend a URL names, and how to show one without its password.

use std::fmt;
use std::path::PathBuf;

use chatstore_core::{Error, Result};
use percent_encoding::percent_decode_str;

/// The schemes this crate knows, for messages.
pub const SCHEMES: &str = "sqlite://PATH, sqlite::memory:, postgres://USER:PASSWORD@HOST:PORT/DB, \
                           pocketbase://HOST:PORT (pocketbases:// for TLS) or memory";

/// PocketBase's default port, used when a `pocketbase://` URL names none.
pub const POCKETBASE_DEFAULT_PORT: u16 = 8090;

/// A password or a URL that may hold one: shown as `***` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place that needs it (a driver's connect call).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// The in-process memory backend (`memory`).
    Memory,
    /// A SQLite database: `sqlite://PATH[?...]` or in memory (`sqlite::memory:`).
    Sqlite {
        /// The URL as given, for chatstore-sql.
        url: String,
        /// The database file; `None` for an in-memory database.
        path: Option<PathBuf>,
    },
    /// A PostgreSQL database (`postgres://`, `postgresql://` and Open WebUI's
    /// `postgresql+psycopg2://` spellings), normalised to `postgres://`.
    Postgres {
        /// The URL, password included.
        url: Secret,
    },
    /// A Chroma server (`chroma://HOST:PORT`, `chromas://` for TLS, optionally
    /// `?tenant=T&database=D`): vectors only.
    Chroma {
        /// The URL as given (a user part is sent as basic authentication).
        url: Secret,
    },
    /// A Chroma folder (`chroma-dir://PATH`, Open WebUI's `DATA_DIR/vector_db`), read through a
    /// private Chroma server on a copy of it: vectors only.
    ChromaDir {
        /// The folder.
        path: PathBuf,
    },
    /// A PocketBase server.
    PocketBase {
        /// `http://HOST:PORT[/PATH]` (`https://` for `pocketbases://`), without credentials.
        base_url: String,
        /// The superuser email from the URL's user part, percent-decoded.
        email: Option<String>,
        /// The superuser password from the URL's user part, percent-decoded.
        password: Option<Secret>,
        /// The collection name prefix from `?prefix=`.
        prefix: Option<String>,
    },
}

/// A parsed store URL. `Display` and `Debug` never show credentials: the user part of a URL
/// shows as `***`, and so does a `password=` parameter.
///
/// ```
/// use chatstore_registry::StoreUrl;
///
/// let url = StoreUrl::parse("postgres://owui:s3cret@db:5432/webui")?;
/// assert_eq!(url.backend(), "postgres");
/// assert_eq!(url.to_string(), "postgres://***@db:5432/webui");
/// # Ok::<(), chatstore_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl {
    target: Target,
    shown: String,
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreUrl").field(&self.shown).finish()
    }
}

impl std::str::FromStr for StoreUrl {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        StoreUrl::parse(s)
    }
}

impl StoreUrl {
    /// Parses a store URL; `InvalidInput` saying what to write instead when it is not one.
    pub fn parse(raw: &str) -> Result<StoreUrl> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(Error::invalid(format!(
                "the database URL is empty; use {SCHEMES}"
            )));
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            if s.eq_ignore_ascii_case("memory") {
                return Ok(StoreUrl::memory());
            }
            let shown = redact_raw(s);
            return Err(Error::invalid(format!(
                "{shown:?} is not a database URL (it has no scheme); for a SQLite file write \
                 sqlite://{shown}, otherwise use {SCHEMES}"
            )));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "memory" if rest.is_empty() || rest == "//" => Ok(StoreUrl::memory()),
            "sqlite" => sqlite(s, rest),
            "postgres" | "postgresql" | "postgresql+psycopg" | "postgresql+psycopg2" => {
                postgres(s, rest)
            }
            "chroma" | "chromas" => chroma(s, rest),
            "chroma-dir" => chroma_dir(s, rest),
            "pocketbase" => pocketbase(s, rest, false),
            "pocketbases" => pocketbase(s, rest, true),
            "http" | "https" => Err(Error::invalid(format!(
                "{} is a plain HTTP URL; for PocketBase write pocketbase://HOST:PORT \
                 (pocketbases://HOST for TLS)",
                redact_raw(s)
            ))),
            // Text before a `:` that is no scheme (a libpq key/value string, which may hold a
            // password) is not written back.
            _ if !scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c)) =>
            {
                Err(Error::invalid(format!(
                    "{} is not a database URL; use {SCHEMES}",
                    redact_raw(s)
                )))
            }
            _ => Err(Error::invalid(format!(
                "database URL scheme {scheme:?} is not supported; use {SCHEMES}"
            ))),
        }
    }

    fn memory() -> StoreUrl {
        StoreUrl {
            target: Target::Memory,
            shown: "memory".to_owned(),
        }
    }

    /// Where the URL points.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The backend the URL names: `memory`, `sqlite`, `postgres` or `pocketbase`.
    pub fn backend(&self) -> &'static str {
        match self.target {
            Target::Memory => "memory",
            Target::Sqlite { .. } => "sqlite",
            Target::Postgres { .. } => "postgres",
            Target::PocketBase { .. } => "pocketbase",
            Target::Chroma { .. } => "chroma",
            Target::ChromaDir { .. } => "chroma-dir",
        }
    }

    /// The URL with its user part (and any `password=` parameter) as `***`: what `Display`
    /// shows.
    pub fn redacted(&self) -> &str {
        &self.shown
    }
}

fn sqlite(s: &str, rest: &str) -> Result<StoreUrl> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    let path = path.strip_prefix("//").unwrap_or(path);
    let in_memory = path == ":memory:"
        || query
            .split('&')
            .any(|kv| kv.eq_ignore_ascii_case("mode=memory"));
    if path.is_empty() && !in_memory {
        return Err(Error::invalid(format!(
            "{s:?} names no SQLite file; write sqlite://data/webui.db (relative), \
             sqlite:///var/lib/webui.db (absolute) or sqlite::memory:"
        )));
    }
    Ok(StoreUrl {
        target: Target::Sqlite {
            url: s.to_owned(),
            path: (!in_memory).then(|| PathBuf::from(path)),
        },
        shown: s.to_owned(),
    })
}

fn postgres(s: &str, rest: &str) -> Result<StoreUrl> {
    let usage = "write postgres://USER:PASSWORD@HOST:PORT/DATABASE (percent-encode special \
                 characters in the password)";
    if !rest.starts_with("//") {
        return Err(Error::invalid(format!(
            "{} is not a PostgreSQL URL; {usage}",
            redact_raw(s)
        )));
    }
    let normalised = format!("postgres:{rest}");
    let parsed = url::Url::parse(&normalised).map_err(|e| {
        Error::invalid(format!(
            "the PostgreSQL URL {} is malformed ({e}); {usage}",
            redact_raw(s)
        ))
    })?;
    let host_param = parsed.query_pairs().any(|(k, _)| k == "host");
    if parsed.host_str().is_none_or(str::is_empty) && !host_param {
        return Err(Error::invalid(format!(
            "the PostgreSQL URL {} names no host; {usage}",
            redact_raw(s)
        )));
    }
    Ok(StoreUrl {
        shown: redact_url(&parsed),
        target: Target::Postgres {
            url: Secret(normalised),
        },
    })
}

fn chroma(s: &str, rest: &str) -> Result<StoreUrl> {
    let host = rest.strip_prefix("//").unwrap_or("");
    if host.is_empty() || host.starts_with(['/', '?', ':']) {
        return Err(Error::invalid(format!(
            "{} names no Chroma server; write chroma://HOST:PORT (chromas://HOST:PORT for TLS)",
            redact_raw(s)
        )));
    }
    Ok(StoreUrl {
        target: Target::Chroma {
            url: Secret(s.to_owned()),
        },
        shown: redact_raw(s),
    })
}

fn chroma_dir(s: &str, rest: &str) -> Result<StoreUrl> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.is_empty() {
        return Err(Error::invalid(format!(
            "{s:?} names no folder; write chroma-dir:///data/vector_db (Open WebUI's DATA_DIR/vector_db)"
        )));
    }
    Ok(StoreUrl {
        target: Target::ChromaDir {
            path: PathBuf::from(path),
        },
        shown: s.to_owned(),
    })
}

fn pocketbase(s: &str, rest: &str, tls: bool) -> Result<StoreUrl> {
    let scheme = if tls { "pocketbases" } else { "pocketbase" };
    let usage = format!(
        "write {scheme}://HOST:PORT, optionally with the superuser as \
         {scheme}://EMAIL:PASSWORD@HOST:PORT (percent-encoded: @ is %40)"
    );
    if !rest.starts_with("//") {
        return Err(Error::invalid(format!(
            "{} is not a PocketBase URL; {usage}",
            redact_raw(s)
        )));
    }
    let http = if tls { "https" } else { "http" };
    let parsed = url::Url::parse(&format!("{http}:{rest}")).map_err(|e| {
        Error::invalid(format!(
            "the PocketBase URL {} is malformed ({e}); {usage}",
            redact_raw(s)
        ))
    })?;
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(Error::invalid(format!(
            "the PocketBase URL {} names no host; {usage}",
            redact_raw(s)
        )));
    };
    let decode = |part: &str, what: &str| {
        percent_decode_str(part)
            .decode_utf8()
            .map(|v| v.into_owned())
            .map_err(|_| Error::invalid(format!("the PocketBase {what} in the URL is not UTF-8")))
    };
    let email = match parsed.username() {
        "" => None,
        user => Some(decode(user, "superuser email")?),
    };
    let password = match parsed.password() {
        None | Some("") => None,
        Some(p) => Some(Secret(decode(p, "superuser password")?)),
    };
    let mut prefix = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "prefix" => prefix = Some(value.into_owned()),
            other => {
                return Err(Error::invalid(format!(
                    "the PocketBase URL parameter {other:?} is unknown; the only one is \
                     ?prefix=NAME_ (the collection name prefix)"
                )));
            }
        }
    }
    // Parsed as http(s), a port written as 80 (443) reads as no port; parsed under a scheme of
    // no default port, every written port is there.
    let written_port = url::Url::parse(&format!("pocketbase-port:{rest}"))
        .ok()
        .and_then(|u| u.port());
    let port = match parsed.port().or(written_port) {
        Some(p) => format!(":{p}"),
        None if tls => String::new(),
        None => format!(":{POCKETBASE_DEFAULT_PORT}"),
    };
    let host = match parsed.host() {
        Some(url::Host::Ipv6(addr)) => format!("[{addr}]"),
        _ => host.to_owned(),
    };
    let path = parsed.path().trim_end_matches('/');
    let base_url = format!("{http}://{host}{port}{path}");
    let mut shown = format!("{scheme}://");
    if email.is_some() || password.is_some() {
        shown.push_str("***@");
    }
    shown.push_str(&format!("{host}{port}{path}"));
    if let Some(p) = &prefix {
        shown.push_str(&format!("?prefix={p}"));
    }
    Ok(StoreUrl {
        target: Target::PocketBase {
            base_url,
            email,
            password,
            prefix,
        },
        shown,
    })
}

/// A parsed URL with its password (in the user part or a `password=` parameter) as `***`.
fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if !shown.username().is_empty() || shown.password().is_some() {
        let _ = shown.set_password(None);
        let _ = shown.set_username("***");
    }
    if shown.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = shown
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        shown.query_pairs_mut().clear().extend_pairs(pairs);
    }
    shown.to_string()
}

/// Text that may be a URL, its user part and `password=` parameters hidden: for messages
/// about URLs that did not parse ([`chatstore_core::redact::url_text`]).
pub fn redact_raw(s: &str) -> String {
    chatstore_core::redact::url_text(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatstore_core::ErrorKind;

    fn target(url: &str) -> Target {
        StoreUrl::parse(url).expect("a valid URL").target().clone()
    }

    fn refused(url: &str) -> String {
        let err = StoreUrl::parse(url).expect_err("an invalid URL");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{url}: {err}");
        err.to_string()
    }

    /// A libpq key/value string is no URL; refused without writing its password back.
    #[test]
    fn a_key_value_string_is_refused_without_its_password() {
        for given in [
            "host=db user=owui password=hunter2 dbname=webui",
            "host=db user=owui password=hun:ter2 dbname=webui",
            "password=hunter2",
        ] {
            let message = refused(given);
            assert!(!message.contains("hun"), "{message}");
        }
    }

    #[test]
    fn memory_is_spelled_three_ways() {
        for url in ["memory", "MEMORY", "memory:", "memory://"] {
            assert_eq!(target(url), Target::Memory, "{url}");
        }
    }

    #[test]
    fn sqlite_urls_name_a_file_or_memory() {
        assert_eq!(
            target("sqlite://data/webui.db?mode=ro"),
            Target::Sqlite {
                url: "sqlite://data/webui.db?mode=ro".into(),
                path: Some("data/webui.db".into())
            }
        );
        assert_eq!(
            target("sqlite:///var/lib/webui.db"),
            Target::Sqlite {
                url: "sqlite:///var/lib/webui.db".into(),
                path: Some("/var/lib/webui.db".into())
            }
        );
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://x?mode=memory",
        ] {
            assert!(
                matches!(target(url), Target::Sqlite { path: None, .. }),
                "{url}"
            );
        }
        assert!(refused("sqlite://").contains("sqlite::memory:"));
    }

    #[test]
    fn postgres_spellings_are_normalised() {
        for url in [
            "postgres://u:p@h:5432/db",
            "postgresql://u:p@h:5432/db",
            "postgresql+psycopg2://u:p@h:5432/db",
        ] {
            let Target::Postgres { url: inner } = target(url) else {
                panic!("{url} is PostgreSQL");
            };
            assert_eq!(inner.expose(), "postgres://u:p@h:5432/db");
        }
        assert!(matches!(
            target("postgres:///webui?host=/run/postgresql"),
            Target::Postgres { .. }
        ));
        assert!(refused("postgres:///webui").contains("names no host"));
        assert!(refused("postgres:db").contains("postgres://USER"));
    }

    #[test]
    fn pocketbase_urls_carry_the_superuser_percent_decoded() {
        assert_eq!(
            target("pocketbase://admin%40example.com:p%40ss%3Aword@127.0.0.1:8091?prefix=t1_"),
            Target::PocketBase {
                base_url: "http://127.0.0.1:8091".into(),
                email: Some("admin@example.com".into()),
                password: Some(Secret::new("p@ss:word")),
                prefix: Some("t1_".into()),
            }
        );
        assert_eq!(
            target("pocketbase://localhost"),
            Target::PocketBase {
                base_url: "http://localhost:8090".into(),
                email: None,
                password: None,
                prefix: None,
            }
        );
        assert!(matches!(
            target("pocketbases://pb.example.com/base/"),
            Target::PocketBase { base_url, .. } if base_url == "https://pb.example.com/base"
        ));
        // A port written as http's own is kept, not replaced by PocketBase's.
        for (url, base) in [
            ("pocketbase://pb.example.com:80", "http://pb.example.com:80"),
            ("pocketbase://[::1]:80/", "http://[::1]:80"),
            (
                "pocketbases://pb.example.com:443",
                "https://pb.example.com:443",
            ),
        ] {
            assert!(
                matches!(target(url), Target::PocketBase { base_url, .. } if base_url == base),
                "{url}"
            );
        }
        assert!(refused("pocketbase://").contains("pocketbase://HOST:PORT"));
        assert!(refused("pocketbase://h:1?x=1").contains("prefix"));
    }

    #[test]
    fn unknown_schemes_and_bare_paths_say_what_to_write() {
        assert!(refused("mysql://u@h/db").contains("sqlite://PATH"));
        assert!(refused("webui.db").contains("sqlite://webui.db"));
        assert!(refused("  ").contains("empty"));
        assert!(refused("http://127.0.0.1:8090").contains("pocketbase://HOST:PORT"));
    }

    #[test]
    fn passwords_never_show() {
        let cases = [
            ("postgres://owui:hunter2@db/webui", "hunter2"),
            (
                "postgresql://owui@db/webui?password=hunter2&sslmode=disable",
                "hunter2",
            ),
            ("pocketbase://a%40b.c:hunter2@h:8090", "hunter2"),
            ("pocketbases://a%40b.c:hunter2@h", "hunter2"),
            ("chroma://user:hunter2@h:8000", "hunter2"),
        ];
        for (url, password) in cases {
            let parsed = StoreUrl::parse(url).expect("valid");
            for shown in [
                parsed.to_string(),
                format!("{parsed:?}"),
                format!("{:?}", parsed.target()),
            ] {
                assert!(!shown.contains(password), "{shown}");
            }
        }
        assert_eq!(
            StoreUrl::parse("postgres://owui:hunter2@db/webui")
                .expect("valid")
                .to_string(),
            "postgres://***@db/webui"
        );
        for bad in [
            "postgres://owui:hunter2@db:notaport/webui",
            "pocketbase://a:hunter2@:99999",
            "mysql://owui:hunter2@db/webui",
            "owui:hunter2@db",
            "http://owui:hunter2@db",
            "postgres:///webui?user=owui&password=hunter2",
            "postgresql://owui@db:notaport/webui?password=hunter2",
            "chroma://",
        ] {
            let message = refused(bad);
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
