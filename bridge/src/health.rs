//! `GET /health`: whether the bridge can serve, as JSON.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::BridgeState;

/// The body of `GET /health`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    /// `"ok"`.
    pub status: &'static str,
    /// The backend the bridge reads from.
    pub backend: String,
}

pub(crate) async fn health(State(state): State<BridgeState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        backend: state.store().backend_name().to_owned(),
    })
}
