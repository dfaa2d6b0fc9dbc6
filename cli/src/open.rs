//! Which store a command opens: the URL from the flag or the environment, opened through
//! chatstore-registry, and wrapped in the rollout router when the environment configures one
//! (`CHATSTORE_<GROUP>_NEW_URL`, `CHATSTORE_<GROUP>_PHASE`, ...; see chatstore-router).

use chatstore_core::{Error, Result, Store};
use chatstore_registry::options::open_webui_database_url;
use chatstore_registry::{OpenOptions, StoreUrl, store_url::redact_raw};
use chatstore_router::{Router, RouterConfig};

/// The URL the demo uses when none is given: an embedded SQLite file in the working directory.
pub const DEFAULT_DEMO_URL: &str = "sqlite://chatstore-demo.db";

/// The URL from the flag/`CHATSTORE_DATABASE_URL`, else Open WebUI's `DATABASE_URL`, else the
/// embedded default.
pub fn resolve_url(flag: Option<String>) -> String {
    required_url(flag, "demo").unwrap_or_else(|_| DEFAULT_DEMO_URL.to_owned())
}

/// The URL from the flag/`CHATSTORE_DATABASE_URL`, else Open WebUI's `DATABASE_URL` (read as
/// Open WebUI reads it, see [`open_webui_database_url`]); for
/// commands that serve a deployment's data, where the demo's file would be an empty store
/// that answers everything and says nothing.
pub fn required_url(flag: Option<String>, command: &str) -> Result<String> {
    flag.filter(|u| !u.trim().is_empty())
        .or_else(|| open_webui_database_url(|n| std::env::var(n).ok()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "`chatstore {command}` serves a deployment's store: give it with --database-url \
                 or CHATSTORE_DATABASE_URL (or Open WebUI's DATABASE_URL)"
            ))
        })
}

/// Opens the store at `url` with the settings of the environment, its vectors from
/// `CHATSTORE_VECTOR_URL` (or Open WebUI's `CHATSTORE_PGVECTOR_URL` / `PGVECTOR_DB_URL`) when
/// one is set.
pub async fn open(url: &str) -> Result<Store> {
    open_with_vectors(url, None).await
}

/// Opens the store at `url` (vectors from `vectors_url` when given), with the settings of the
/// environment; when the environment gives any group a new store, the result is the router
/// over the two in the configured phases. Every command that opens a store comes here.
pub async fn open_with_vectors(url: &str, vectors_url: Option<String>) -> Result<Store> {
    let config = RouterConfig::from_env()?;
    let old = open_direct(url, vectors_url).await?;
    if !config.is_routed() {
        return Ok(old);
    }
    Ok(routed(&config, old).await?.store())
}

/// The rollout router the environment configures, over the store at `url` (the old store);
/// `InvalidInput` when no group has a new store.
pub async fn open_router(url: &str, vectors_url: Option<String>) -> Result<Router> {
    let config = RouterConfig::from_env()?;
    if !config.is_routed() {
        return Err(Error::invalid(
            "no group has a new store: set CHATSTORE_<GROUP>_NEW_URL (GROUP: USERS, CHATS, \
             FILES, WORKSPACE, VECTORS) as when the router ran",
        ));
    }
    let old = open_direct(url, vectors_url).await?;
    routed(&config, old).await
}

async fn routed(config: &RouterConfig, old: Store) -> Result<Router> {
    config
        .open(old, |new_url| async move {
            chatstore_registry::open(&new_url).await
        })
        .await
}

/// Opens the store at `url` itself, never routed; its vectors from `vectors_url`, else from the
/// environment as an application embedding chatstore reads it (`OpenOptions::from_env`): a
/// command opening the vectors of another database than the application's would write them
/// there (`reconcile` copies a group from the old store to the new). Open WebUI's `VECTOR_DB`
/// naming another store than pgvector without a vector URL is refused, as for the application.
async fn open_direct(url: &str, vectors_url: Option<String>) -> Result<Store> {
    OpenOptions::for_url_from_env(url, vectors_url)?
        .open()
        .await
}

/// A short description of where the data lives, without credentials.
pub fn describe(url: &str) -> String {
    StoreUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| redact_raw(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            describe("postgres://me:secret@db:5432/webui"),
            "postgres://***@db:5432/webui"
        );
        assert_eq!(describe("sqlite://x.db"), "sqlite://x.db");
    }
}
