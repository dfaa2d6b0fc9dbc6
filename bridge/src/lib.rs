//! # chatstore-bridge
//!
//! The realtime server of chatstore: an axum application that serves Open WebUI 0.12.4's
//! Socket.IO protocol at `/ws/socket.io` (Engine.IO 4 / Socket.IO 5, websocket and polling)
//! and turns a store's change feed ([`chatstore_core::changes`]) into the `events` envelopes
//! Open WebUI's web client reacts to, so that a chat renamed, tagged, archived or deleted in
//! one tab, device or replica shows up in every other tab at once.
//!
//! - A socket connects with `auth: {token}`: an HS256 JWT signed with `WEBUI_SECRET_KEY`, as
//!   Open WebUI issues them (claim `id`, optional `exp`). The user must exist and have the
//!   role `user` or `admin`; anything else is refused with `connect_error`. The token and the
//!   user are checked again every [`BridgeConfig::recheck_interval`] and whenever the user
//!   changes; a socket that fails is disconnected.
//! - The socket joins `user:{id}`. `events:chat` `{type: "join" | "leave", chat_id}` joins or
//!   leaves `chat:{id}`, only for a chat the user owns.
//! - Each change becomes `events` `{chat_id, message_id, data: {type, data}}` (see
//!   [`envelopes`]): `chat:list`, `chat:title`, `chat:tags` to the owner's `user:{id}` room,
//!   message changes to `chat:{id}`. A user never receives another user's event.
//!
//! - The socket joins `channel:{id}` for every channel its user sees (again on
//!   `join-channels`); `events:channel` `typing` goes to the channel's room with who types,
//!   `last_read_at` records the read.
//! - A socket's `heartbeat` (the web client sends one every 30 s) records the user's
//!   activity (`last_active_at`) in the store, as Open WebUI's own server does, at most once
//!   per user per [`BridgeConfig::activity_interval`].
//!
//! - With [`BridgeConfig::redis`], the bridge joins Open WebUI's own Socket.IO cluster (its
//!   Redis manager channel): every envelope is also published there, so browsers connected to
//!   Open WebUI's replicas get it too, and what Open WebUI's replicas (a streamed chat
//!   completion) or other bridges emit reaches the browsers connected to this bridge.
//! - An application sends its own events (e.g. a completion it streams) with
//!   [`BridgeState::emit`]: to this bridge's sockets and, through Redis, to every other
//!   server's.
//!
//! The bridge depends on `chatstore-core` only: it is given a [`Store`] (opened by the caller,
//! e.g. through the registry) and builds an [`axum::Router`] with [`router`]. Other routes
//! merge into that router. It reports through the `metrics` facade (see [`metric`]); the
//! binary installs the Prometheus exporter and hands its rendering to
//! [`BridgeState::with_metrics`] for `GET /metrics`.
//!
//! ```
//! use chatstore_bridge::{BridgeConfig, BridgeState, router};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
//! let config = BridgeConfig::default().secret_key("t0p-secret");
//! let state = BridgeState::new(chatstore_core::memory::store(), config);
//! let app: axum::Router = router(state);
//! # let _ = app;
//! # });
//! ```

mod activity;
mod auth;
pub mod downloads;
mod envelope;
mod health;
pub mod metric;
mod redis;
mod sockets;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use chatstore_core::Store;

pub use auth::{Claims, issue_token, sign_token};
pub use envelope::{Envelope, envelopes};
pub use health::Health;
pub use redis::RedisTarget;

/// The path Open WebUI's client connects to.
pub const SOCKET_PATH: &str = "/ws/socket.io";

/// How often a user's activity is written at most by default: Open WebUI's
/// `DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL` default.
pub const DEFAULT_ACTIVITY_INTERVAL: Duration = Duration::from_secs(60);

/// How the bridge runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// The key Open WebUI signs its session tokens with (`WEBUI_SECRET_KEY`). Without one
    /// (or with an empty one, which anyone could sign with), every Socket.IO connection is
    /// refused.
    pub secret_key: Option<String>,
    /// The key download links are signed with (`CHATSTORE_SIGNING_KEY`, else
    /// `WEBUI_SECRET_KEY`). Without one, `GET /files/{id}` refuses every request.
    pub download_signer: Option<chatstore_core::UrlSigner>,
    /// How often a connected socket's token and user are checked again (Open WebUI: 30 s).
    pub recheck_interval: Duration,
    /// How many changes are translated at once (reads of titles, tags, messages run
    /// concurrently; envelopes still go out in the feed's order).
    pub concurrency: usize,
    /// Join Open WebUI's Socket.IO cluster through its Redis manager channel (its replicas'
    /// `WEBSOCKET_MANAGER=redis`): emits of the other servers reach this bridge's sockets, and
    /// [`BridgeState::emit`] reaches theirs. Give it to every bridge of a deployment.
    pub redis: Option<RedisTarget>,
    /// With [`BridgeConfig::redis`], also publish every envelope of the change feed there, so
    /// browsers connected to Open WebUI's replicas get them. Leave it on for one bridge of a
    /// deployment only: every bridge hears every change, and each would publish it.
    pub publish_changes: bool,
    /// A socket's `heartbeat` writes its user's `last_active_at` at most once per this
    /// interval (per bridge process; zero: every heartbeat), as Open WebUI's
    /// `DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL` does (60 s). `None`: heartbeats write
    /// nothing, and the bridge only reads the store.
    pub activity_interval: Option<Duration>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            secret_key: None,
            download_signer: None,
            recheck_interval: Duration::from_secs(30),
            concurrency: 64,
            redis: None,
            publish_changes: true,
            activity_interval: Some(DEFAULT_ACTIVITY_INTERVAL),
        }
    }
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

    /// Joining Open WebUI's Socket.IO cluster through its Redis manager channel.
    pub fn redis(mut self, target: RedisTarget) -> Self {
        self.redis = Some(target);
        self
    }

    /// Whether the change feed's envelopes are published into Redis too (default: yes).
    pub fn publish_changes(mut self, publish: bool) -> Self {
        self.publish_changes = publish;
        self
    }

    /// Heartbeats write a user's activity at most once per `every` (`None`: never).
    pub fn activity_interval(mut self, every: Option<Duration>) -> Self {
        self.activity_interval = every;
        self
    }

    /// With this re-check interval (at least 10 ms: every socket re-checks its session so
    /// often, and a zero interval cannot tick).
    pub fn recheck_interval(mut self, every: Duration) -> Self {
        self.recheck_interval = every.max(Duration::from_millis(10));
        self
    }
}

/// Renders the metrics text for `GET /metrics` (the binary's Prometheus exporter).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// What every route of the bridge shares; cheap to clone.
#[derive(Clone)]
pub struct BridgeState {
    inner: Arc<Shared>,
}

struct Shared {
    store: Store,
    config: BridgeConfig,
    metrics: Option<MetricsRender>,
    sockets: AtomicI64,
    activity: Option<Arc<activity::Throttle>>,
    cluster: Arc<std::sync::OnceLock<Cluster>>,
    redis_subscribed: Arc<std::sync::atomic::AtomicBool>,
}

/// What sends events once [`router`] serves: the Socket.IO server and, with Redis, the
/// publisher into the cluster's channel.
#[derive(Clone)]
pub(crate) struct Cluster {
    pub(crate) io: socketioxide::SocketIo,
    pub(crate) publisher: Option<redis::RedisPublisher>,
}

impl std::fmt::Debug for BridgeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeState")
            .field("store", &self.inner.store)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl BridgeState {
    /// The state of a bridge over `store`.
    pub fn new(store: Store, config: BridgeConfig) -> Self {
        let activity = config
            .activity_interval
            .map(|every| Arc::new(activity::Throttle::new(every)));
        BridgeState {
            inner: Arc::new(Shared {
                store,
                config,
                metrics: None,
                sockets: AtomicI64::new(0),
                activity,
                cluster: Arc::default(),
                redis_subscribed: Arc::default(),
            }),
        }
    }

    /// With `GET /metrics` answering `render()` (call before [`router`]).
    pub fn with_metrics(self, render: MetricsRender) -> Self {
        BridgeState {
            inner: Arc::new(Shared {
                store: self.inner.store.clone(),
                config: self.inner.config.clone(),
                metrics: Some(render),
                sockets: AtomicI64::new(self.sockets()),
                activity: self.inner.activity.clone(),
                cluster: self.inner.cluster.clone(),
                redis_subscribed: self.inner.redis_subscribed.clone(),
            }),
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

    /// Sockets connected now.
    pub fn sockets(&self) -> i64 {
        self.inner.sockets.load(Ordering::Relaxed)
    }

    pub(crate) fn socket_delta(&self, delta: i64) {
        let now = self.inner.sockets.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!(metric::SOCKETS).set(now as f64);
    }

    /// Sends `event` with `data` to the sockets in `room` (`user:{id}`, `chat:{id}`, a
    /// socket's id), on this bridge and, with [`BridgeConfig::redis`], on every other server
    /// of the cluster (Open WebUI's replicas, other bridges), as Open WebUI's own server emits:
    /// e.g. `events` with `{chat_id, message_id, data: {type: "chat:completion", data}}` for
    /// a completion the application streams. Fire-and-forget, like python-socketio: a socket
    /// whose buffer is full misses it (counted in `chatstore_bridge_emit_failures_total`).
    /// `InvalidInput` for an empty room or event, and before [`router`] was called.
    pub async fn emit(
        &self,
        room: &str,
        event: &str,
        data: &serde_json::Value,
    ) -> chatstore_core::Result<()> {
        if room.is_empty() || event.is_empty() {
            return Err(chatstore_core::Error::invalid(
                "an emit needs a room (e.g. user:{id}) and an event name",
            ));
        }
        let Some(cluster) = self.inner.cluster.get() else {
            return Err(chatstore_core::Error::invalid(
                "the bridge is not serving yet: build its routes with chatstore_bridge::router first",
            ));
        };
        if let Some(publisher) = &cluster.publisher {
            publisher.publish_emit(room, event, data);
        }
        if let Err(e) = cluster.io.to(room.to_owned()).emit(event, data).await {
            metrics::counter!(metric::EMIT_FAILURES).increment(1);
            tracing::warn!(error = %e, "bridge: an emit did not reach every socket of its room");
        }
        Ok(())
    }

    /// Whether the bridge is subscribed to the Redis channel now (`None` without
    /// [`BridgeConfig::redis`]).
    pub fn redis_subscribed(&self) -> Option<bool> {
        self.config()
            .redis
            .as_ref()
            .map(|_| self.inner.redis_subscribed.load(Ordering::Relaxed))
    }

    pub(crate) fn redis_subscribed_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.inner.redis_subscribed.clone()
    }

    pub(crate) fn set_cluster(&self, cluster: Cluster) {
        let _ = self.inner.cluster.set(cluster);
    }

    pub(crate) fn cluster(&self) -> Option<&Cluster> {
        self.inner.cluster.get()
    }

    pub(crate) fn activity(&self) -> Option<&activity::Throttle> {
        self.inner.activity.as_deref()
    }

    pub(crate) fn metrics_render(&self) -> Option<&MetricsRender> {
        self.inner.metrics.as_ref()
    }
}

/// The bridge's routes: Socket.IO at [`SOCKET_PATH`], `GET /health`, the download proxy
/// `GET /files/{id}` (see [`downloads`]), and `GET /metrics` when
/// [`BridgeState::with_metrics`] was given. Merge further routes into the result
/// (`router(state).merge(other)`); serve it with `axum::serve`. Must run inside a Tokio
/// runtime: it starts the task that follows the store's change feed (if the store has one).
pub fn router(state: BridgeState) -> Router {
    let layer = sockets::layer(state.clone());
    let mut app = Router::new().route("/health", get(health::health));
    if state.metrics_render().is_some() {
        app = app.route("/metrics", get(health::metrics));
    }
    let downloads = downloads::Downloads::new(
        state.store().files.clone(),
        state.config().download_signer.clone(),
    );
    app.with_state(state).merge(downloads.router()).layer(layer)
}
