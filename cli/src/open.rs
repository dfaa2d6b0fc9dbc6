//! Opening a store from a database URL.

use chatstore_core::{Error, Result, Store, memory};

/// The URL the demo uses when none is given: an embedded SQLite file in the working directory.
pub const DEFAULT_DEMO_URL: &str = "sqlite://chatstore-demo.db";

/// The URL from the flag/`CHATSTORE_DATABASE_URL`, else Open WebUI's `DATABASE_URL`, else the
/// embedded default.
pub fn resolve_url(flag: Option<String>) -> String {
    flag.filter(|u| !u.trim().is_empty())
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_DEMO_URL.to_owned())
}

/// Opens the store a URL names.
pub async fn open(url: &str) -> Result<Store> {
    if url == "memory" {
        return Ok(memory::store());
    }
    Err(Error::invalid(format!(
        "cannot open {url:?}: this build knows only `memory`"
    )))
}

/// A short description of where the data lives, without credentials.
pub fn describe(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => {
            let scheme = scheme_user.split("://").next().unwrap_or("");
            format!("{scheme}://…@{host}")
        }
        None => url.to_owned(),
    }
}
