//! `GET /health` (whether the bridge can serve, as JSON) and `GET /metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::BridgeState;

/// The body of `GET /health`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    /// `"ok"`, or `"degraded"` while the change feed's source is disconnected or the store
    /// has no feed.
    pub status: &'static str,
    /// The backend the bridge reads from.
    pub backend: String,
    /// Whether the store has a change feed.
    pub change_feed: bool,
    /// Whether the feed's source is connected.
    pub feed_connected: bool,
    /// Times the feed's source reconnected.
    pub feed_reconnects: u64,
    /// Read-backs after a reconnect that failed (each retried after a pause).
    pub feed_failed_catch_ups: u64,
    /// Sockets connected now.
    pub sockets: i64,
    /// With Redis (Open WebUI's Socket.IO cluster): whether the bridge is subscribed to its
    /// channel now, i.e. whether the other servers' emits reach this bridge's browsers. Not
    /// part of `status`: without it the bridge still sends its own events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_subscribed: Option<bool>,
}

pub(crate) async fn health(State(state): State<BridgeState>) -> Response {
    let feed = state.store().changes().map(|f| f.hub().status());
    let ok = feed.is_some_and(|s| s.connected);
    let body = Health {
        status: if ok { "ok" } else { "degraded" },
        backend: state.store().backend_name().to_owned(),
        change_feed: feed.is_some(),
        feed_connected: ok,
        feed_reconnects: feed.map_or(0, |s| s.reconnects),
        feed_failed_catch_ups: feed.map_or(0, |s| s.failed_catch_ups),
        sockets: state.sockets(),
        redis_subscribed: state.redis_subscribed(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

pub(crate) async fn metrics(State(state): State<BridgeState>) -> Response {
    let text = state
        .metrics_render()
        .map(|render| render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
