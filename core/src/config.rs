//! Configuration from the environment: `CHATSTORE_*` variables, with Open WebUI's own names
//! accepted where they mean the same.
//!
//! | setting | chatstore variable | Open WebUI variable |
//! |---|---|---|
//! | app database | `CHATSTORE_DATABASE_URL` | `DATABASE_URL` |
//! | pool size | `CHATSTORE_POOL_SIZE` | `DATABASE_POOL_SIZE` |
//! | vector backend | `CHATSTORE_VECTOR_DB` | `VECTOR_DB` |
//! | pgvector database | `CHATSTORE_PGVECTOR_URL` | `PGVECTOR_DB_URL` |
//! | upload folder | `CHATSTORE_UPLOAD_DIR` | `UPLOAD_DIR`, else `DATA_DIR/uploads` |
//! | PocketBase | `CHATSTORE_POCKETBASE_URL`, `CHATSTORE_POCKETBASE_ADMIN_EMAIL`, `CHATSTORE_POCKETBASE_ADMIN_PASSWORD` | |
//!
//! The chatstore name wins when both are set.

use crate::{Error, Result};

/// Where each part of the data lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The app database URL (`sqlite://...`, `postgres://...`); `None` when unset.
    pub database_url: Option<String>,
    /// Connections per pool; `None` leaves the backend's default.
    pub pool_size: Option<u32>,
    /// The vector backend's name (`sqlite`, `pgvector`, ...); `None` when unset.
    pub vector_db: Option<String>,
    /// The pgvector database URL; Open WebUI defaults it to the app database.
    pub pgvector_url: Option<String>,
    /// The folder file bytes are written to (see [`upload_dir_from`]); `None` when unset.
    pub upload_dir: Option<std::path::PathBuf>,
    /// PocketBase base URL.
    pub pocketbase_url: Option<String>,
    /// PocketBase superuser email.
    pub pocketbase_admin_email: Option<String>,
    /// PocketBase superuser password.
    pub pocketbase_admin_password: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (for tests and embedding).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| lookup(n).filter(|v| !v.trim().is_empty()))
        };
        let pool_size = match get(&["CHATSTORE_POOL_SIZE", "DATABASE_POOL_SIZE"]) {
            None => None,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "pool size {raw:?} is not a whole number of connections"
                    )));
                }
            },
        };
        let database_url = get(&["CHATSTORE_DATABASE_URL", "DATABASE_URL"]);
        let pgvector_url = get(&["CHATSTORE_PGVECTOR_URL", "PGVECTOR_DB_URL"])
            .or_else(|| database_url.clone().filter(|u| u.starts_with("postgres")));
        Ok(Config {
            database_url,
            pool_size,
            vector_db: get(&["CHATSTORE_VECTOR_DB", "VECTOR_DB"]).map(|v| v.to_lowercase()),
            pgvector_url,
            upload_dir: upload_dir_from(&lookup),
            pocketbase_url: get(&["CHATSTORE_POCKETBASE_URL"]),
            pocketbase_admin_email: get(&["CHATSTORE_POCKETBASE_ADMIN_EMAIL"]),
            pocketbase_admin_password: get(&["CHATSTORE_POCKETBASE_ADMIN_PASSWORD"]),
        })
    }
}

/// The upload folder the environment names, by Open WebUI's rule: `CHATSTORE_UPLOAD_DIR`, else
/// `UPLOAD_DIR`, else `DATA_DIR/uploads`; `None` when none is set. Every replica must see the
/// same folder (a shared volume), since `file.path` records where the bytes are.
pub fn upload_dir_from(lookup: impl Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    get("CHATSTORE_UPLOAD_DIR")
        .or_else(|| get("UPLOAD_DIR"))
        .map(std::path::PathBuf::from)
        .or_else(|| get("DATA_DIR").map(|d| std::path::Path::new(&d).join("uploads")))
}

/// [`upload_dir_from`] the process environment.
pub fn upload_dir_from_env() -> Option<std::path::PathBuf> {
    upload_dir_from(|name| std::env::var(name).ok())
}

/// The longest wait chatstore hands to a timer or a pool (a year): a caller's longer
/// `Duration` (`Duration::MAX` for "never") is cut to it, because adding it to an `Instant`
/// would overflow.
pub const LONGEST_WAIT: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 60 * 60);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn open_webui_names_are_accepted_and_chatstore_names_win() {
        let c = config(&[
            ("DATABASE_URL", "postgres://a/b"),
            ("VECTOR_DB", "PGVector"),
            ("DATABASE_POOL_SIZE", "8"),
        ])
        .expect("valid");
        assert_eq!(c.database_url.as_deref(), Some("postgres://a/b"));
        assert_eq!(c.pgvector_url.as_deref(), Some("postgres://a/b"));
        assert_eq!(c.vector_db.as_deref(), Some("pgvector"));
        assert_eq!(c.pool_size, Some(8));
        let c = config(&[
            ("DATABASE_URL", "sqlite://x.db"),
            ("CHATSTORE_DATABASE_URL", "sqlite://y.db"),
        ])
        .expect("valid");
        assert_eq!(c.database_url.as_deref(), Some("sqlite://y.db"));
        assert_eq!(c.pgvector_url, None);
    }

    #[test]
    fn upload_dir_follows_open_webui_and_chatstore_wins() {
        let dir = |vars: &[(&str, &str)]| config(vars).expect("valid").upload_dir;
        assert_eq!(dir(&[]), None);
        assert_eq!(
            dir(&[("DATA_DIR", "/srv/data")]),
            Some("/srv/data/uploads".into())
        );
        assert_eq!(
            dir(&[("DATA_DIR", "/srv/data"), ("UPLOAD_DIR", "/mnt/up")]),
            Some("/mnt/up".into())
        );
        assert_eq!(
            dir(&[("UPLOAD_DIR", "/mnt/up"), ("CHATSTORE_UPLOAD_DIR", "/cs")]),
            Some("/cs".into())
        );
        assert_eq!(dir(&[("UPLOAD_DIR", " ")]), None);
    }

    #[test]
    fn a_bad_pool_size_is_invalid_input() {
        let err = config(&[("CHATSTORE_POOL_SIZE", "many")]).expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
    }
}
