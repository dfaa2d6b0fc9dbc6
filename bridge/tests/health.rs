//! The bridge's HTTP routes, served on loopback.

use chatstore_bridge::{BridgeConfig, BridgeState, router};

/// `GET /health` answers 200 with the backend's name.
#[tokio::test]
async fn health_names_the_backend() {
    let state = BridgeState::new(chatstore_core::memory::store(), BridgeConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    let body: serde_json::Value = reqwest::get(format!("http://{addr}/health"))
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("JSON body");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["backend"], "memory");
}
