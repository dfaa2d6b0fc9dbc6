//! # chatstore-bridge
//!
//! The realtime server of chatstore: an axum application that serves Open WebUI's Socket.IO
//! protocol at `/ws/socket.io` and turns a store's change feed into the `events` envelopes
//! Open WebUI's web client reacts to, so that a chat renamed, tagged, archived or deleted in
//! one tab (or on another replica) shows up in every other tab at once.
//!
//! The bridge depends on `chatstore-core` only: it is given a [`Store`] (opened by the caller,
//! e.g. through the registry) and builds an [`axum::Router`] with [`router`]. Other routes (file
//! downloads, ...) merge into that router; servers, exporters and listeners live in binaries
//! (`chatstore bridge`).
//!
//! ```
//! use chatstore_bridge::{BridgeConfig, BridgeState, router};
//!
//! let state = BridgeState::new(chatstore_core::memory::store(), BridgeConfig::default());
//! let app: axum::Router = router(state);
//! # let _ = app;
//! ```

pub mod downloads;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use chatstore_core::Store;

pub use health::Health;

/// How the bridge runs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// The key Open WebUI signs its session tokens with (`WEBUI_SECRET_KEY`). Without one,
    /// every Socket.IO connection is refused.
    pub secret_key: Option<String>,
    /// The key download links are signed with (`CHATSTORE_SIGNING_KEY`, else
    /// `WEBUI_SECRET_KEY`). Without one, `GET /files/{id}` refuses every request.
    pub download_signer: Option<chatstore_core::UrlSigner>,
}

impl BridgeConfig {
    /// With this download link signer (see [`downloads`]).
    pub fn download_signer(mut self, signer: chatstore_core::UrlSigner) -> Self {
        self.download_signer = Some(signer);
        self
    }

    /// With this token signing key.
    pub fn secret_key(mut self, key: impl Into<String>) -> Self {
        self.secret_key = Some(key.into());
        self
    }
}

/// What every route of the bridge shares; cheap to clone.
#[derive(Debug, Clone)]
pub struct BridgeState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    config: BridgeConfig,
}

impl BridgeState {
    /// The state of a bridge over `store`.
    pub fn new(store: Store, config: BridgeConfig) -> Self {
        BridgeState {
            inner: Arc::new(Shared { store, config }),
        }
    }

    /// The store the bridge reads from.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &BridgeConfig {
        &self.inner.config
    }
}

/// The bridge's routes: `GET /health` and the download proxy `GET /files/{id}` (see
/// [`downloads`]). Merge further routes into the result (`router(state).merge(other)`); serve
/// it with `axum::serve`.
pub fn router(state: BridgeState) -> Router {
    let downloads = downloads::Downloads::new(
        state.store().files.clone(),
        state.config().download_signer.clone(),
    );
    Router::new()
        .route("/health", get(health::health))
        .with_state(state)
        .merge(downloads.router())
}
