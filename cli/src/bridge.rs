//! `chatstore bridge`: serves the realtime bridge (Socket.IO at `/ws/socket.io`, `/health`,
//! `/metrics` in Prometheus text) over a store until interrupted.

use std::net::SocketAddr;
use std::time::Duration;

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
    /// Join Open WebUI's Socket.IO cluster through its Redis manager (its replicas run with
    /// WEBSOCKET_MANAGER=redis): their WEBSOCKET_REDIS_URL, e.g. `redis://127.0.0.1:6379/0`.
    /// What the replicas emit (streamed completions) then reaches the browsers connected to
    /// this bridge, and the bridge's envelopes reach theirs. Give it to every bridge.
    #[arg(long, env = "CHATSTORE_BRIDGE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// With --redis-url, publish the change feed's envelopes there too. Every bridge hears
    /// every change: leave this on for one bridge of a deployment, `false` on the others.
    #[arg(
        long,
        default_value_t = true,
        action = clap::ArgAction::Set,
        env = "CHATSTORE_BRIDGE_REDIS_PUBLISH_CHANGES"
    )]
    pub redis_publish_changes: bool,
    /// The pub/sub channel of that manager (python-socketio's default).
    #[arg(
        long,
        default_value = "socketio",
        env = "CHATSTORE_BRIDGE_REDIS_CHANNEL"
    )]
    pub redis_channel: String,
    /// A user's `heartbeat` (sent by the web client every 30 s) writes their
    /// `last_active_at` at most once per this many seconds per bridge (0: every heartbeat), as
    /// Open WebUI does with the same variable; `off`: heartbeats write nothing.
    #[arg(
        long,
        default_value = "60",
        env = "DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL",
        value_parser = activity_interval
    )]
    pub activity_interval: ActivityInterval,
}

/// How often at most a heartbeat writes a user's activity; `None`: never.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActivityInterval(pub Option<Duration>);

/// Longest interval taken: Open WebUI counts a user as active for 180 s after the last write,
/// so anything longer than a day is a mistake, not a setting.
const LONGEST_ACTIVITY_INTERVAL: Duration = Duration::from_secs(86_400);

/// Parses `--activity-interval`: seconds (fractions allowed) or `off`.
fn activity_interval(text: &str) -> Result<ActivityInterval, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(ActivityInterval(None));
    }
    let every = text
        .parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|every| *every <= LONGEST_ACTIVITY_INTERVAL)
        .ok_or_else(|| {
            format!(
                "{text:?} is not an activity interval: give seconds from 0 (every heartbeat) \
                 to {} (a day), e.g. 60, or `off`",
                LONGEST_ACTIVITY_INTERVAL.as_secs()
            )
        })?;
    Ok(ActivityInterval(Some(every)))
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
    let mut config = BridgeConfig::default().activity_interval(args.activity_interval.0);
    if let Some(key) = args.secret_key.filter(|k| !k.is_empty()) {
        config = config.secret_key(key);
    }
    if let Some(url) = args.redis_url.filter(|u| !u.trim().is_empty()) {
        let target = chatstore_bridge::RedisTarget::parse(&url, args.redis_channel)
            .map_err(|e| e.to_string())?;
        config = config
            .redis(target)
            .publish_changes(args.redis_publish_changes);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds, fractions and `off` are taken; anything else is refused with what to give.
    #[test]
    fn the_activity_interval_is_seconds_or_off() {
        let secs = |s: f64| ActivityInterval(Some(Duration::from_secs_f64(s)));
        assert_eq!(activity_interval("60"), Ok(secs(60.0)));
        assert_eq!(activity_interval(" 0 "), Ok(secs(0.0)));
        assert_eq!(activity_interval("2.5"), Ok(secs(2.5)));
        assert_eq!(activity_interval("OFF"), Ok(ActivityInterval(None)));
        for bad in ["", "soon", "-1", "NaN", "inf", "86401", "1e300"] {
            let refused = activity_interval(bad).expect_err(bad);
            assert!(refused.contains("`off`"), "{bad}: {refused}");
        }
    }
}
