//! `chatstore bridge`: serves the realtime bridge (Socket.IO at `/ws/socket.io`, `/health`,
//! `/metrics` in Prometheus text) over a store until interrupted.

use std::net::SocketAddr;

use chatstore_bridge::{BridgeConfig, BridgeState, router};
use clap::Args;

use crate::open;

/// Arguments of `chatstore bridge`.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// The store to follow: `postgres://...` or `pocketbase://...` (a store whose feed hears
    /// only its own process, SQLite or memory, is refused).
    #[arg(long, env = "CHATSTORE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Where to listen.
    #[arg(
        long,
        default_value = "127.0.0.1:8090",
        env = "CHATSTORE_BRIDGE_LISTEN"
    )]
    pub listen: SocketAddr,
    /// The key Open WebUI signs session tokens with.
    #[arg(long, env = "WEBUI_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Also publish every envelope into Open WebUI's Redis manager (its replicas run with
    /// WEBSOCKET_MANAGER=redis): their WEBSOCKET_REDIS_URL, e.g. `redis://127.0.0.1:6379/0`.
    #[arg(long, env = "CHATSTORE_BRIDGE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// The pub/sub channel of that manager (python-socketio's default).
    #[arg(
        long,
        default_value = "socketio",
        env = "CHATSTORE_BRIDGE_REDIS_CHANNEL"
    )]
    pub redis_channel: String,
}

/// Opens the store and serves until Ctrl-C.
pub async fn run(args: BridgeArgs) -> Result<(), String> {
    let url = open::required_url(args.database_url, "bridge").map_err(|e| e.to_string())?;
    let store = open::open(&url).await.map_err(|e| e.to_string())?;
    if store
        .changes()
        .is_some_and(|feed| !feed.hears_other_processes())
    {
        // SQLite's feed hears the writes of its own process only, and the bridge writes
        // nothing: it would start, report healthy, and never send an event.
        return Err(chatstore_core::Error::invalid(format!(
            "{} has a change feed that hears only writes made inside this process, and the \
             bridge runs as a process of its own, so it would send no events. Run the bridge \
             on a store whose feed hears every writer: PostgreSQL (the database Open WebUI \
             uses, DATABASE_URL=postgres://...) or PocketBase; or embed chatstore_bridge in \
             the process that writes",
            open::describe(&url)
        ))
        .to_string());
    }
    if store.changes().is_none() {
        // A bridge that starts and never sends an event is the failure an operator notices last.
        return Err(format!(
            "{} has no change feed, so the bridge would send no events. Behind a transaction \
             pooler (PgBouncer), set CHATSTORE_POSTGRES_DIRECT_URL to the PostgreSQL server's \
             own URL: the feed listens there",
            open::describe(&url)
        ));
    }
    let mut config = BridgeConfig::default();
    if let Some(key) = args.secret_key.filter(|k| !k.is_empty()) {
        config = config.secret_key(key);
    }
    if let Some(url) = args.redis_url.filter(|u| !u.trim().is_empty()) {
        let target = chatstore_bridge::RedisTarget::parse(&url, args.redis_channel)
            .map_err(|e| e.to_string())?;
        config = config.redis(target);
    }
    // Download links (`GET /files/{id}`): CHATSTORE_SIGNING_KEY, else WEBUI_SECRET_KEY.
    if let Some(signer) = chatstore_core::UrlSigner::from_lookup(|n| std::env::var(n).ok())
        .map_err(|e| e.to_string())?
    {
        config = config.download_signer(signer);
    }
    let mut state = BridgeState::new(store, config);
    match metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder() {
        Ok(handle) => state = state.with_metrics(std::sync::Arc::new(move || handle.render())),
        Err(e) => errln!("warning: /metrics is off: {e}"),
    }
    let app = router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    errln!(
        "chatstore bridge on http://{addr} ({})",
        open::describe(&url)
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| format!("bridge server failed: {e}"))
}
