//! `chromas://` against the real Chroma server (`CHATSTORE_TEST_CHROMA_URL`) behind the test
//! kit's TLS terminator, whose certificate a throwaway CA signed: with that CA given
//! (`ChromaConfig::ca_cert`, `CHATSTORE_CHROMA_CA_CERT`) vectors are written, searched and
//! scanned over TLS; without it the connection is refused with an error that says how to trust
//! the CA; a CA file that holds no certificate, or TLS asked of a plain-HTTP server, fail
//! clearly too.

use chatstore_chroma::{CA_CERT_ENV, ChromaConfig, ChromaStore};
use chatstore_core::{ErrorKind, VectorItem, VectorRepo};
use chatstore_testkit::TlsTerminator;
use serde_json::json;

fn item(id: &str, vector: Vec<f32>) -> VectorItem {
    VectorItem {
        id: id.into(),
        text: format!("text of {id}"),
        vector,
        metadata: json!({"file_id": "f1"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// `host:port` of an `http://host:port` URL.
fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromas_talks_tls_and_refuses_an_untrusted_certificate_clearly() {
    let Some(url) = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let tls = TlsTerminator::start(&authority(&url))
        .await
        .expect("start the TLS terminator");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    tls.write_ca(&ca).expect("write the CA");
    let database = format!("tls_{}", uuid::Uuid::new_v4().simple());
    let secure = format!("chromas://localhost:{}?database={database}", tls.port());

    // Trusted: the whole round trip goes over TLS to the real server.
    let config = ChromaConfig::new(&secure)
        .expect("chromas URL")
        .create_database(true)
        .ca_cert(&ca);
    assert!(config.url.starts_with("https://"), "{}", config.url);
    let store = ChromaStore::connect(config)
        .await
        .expect("connect over TLS");
    store
        .insert(
            "file-tls",
            vec![
                item("a", vec![1.0, 0.0, 0.0]),
                item("b", vec![0.0, 1.0, 0.0]),
            ],
        )
        .await
        .expect("insert over TLS");
    let hits = store
        .search("file-tls", &[vec![0.9, 0.1, 0.0]], None, 2)
        .await
        .expect("search over TLS");
    assert_eq!(hits[0][0].id, "a");
    let page = store
        .scan("file-tls", None, 10)
        .await
        .expect("scan over TLS");
    assert_eq!(page.len(), 2);
    // The same database read through the plain port: the TLS writes reached the real server.
    let plain = ChromaStore::connect(
        ChromaConfig::new(&url)
            .expect("plain URL")
            .database(&database),
    )
    .await
    .expect("connect without TLS");
    assert_eq!(plain.get("file-tls").await.expect("read").len(), 2);

    // The IP address is in the certificate too.
    let by_ip = ChromaConfig::new(&format!(
        "chromas://127.0.0.1:{}?database={database}",
        tls.port()
    ))
    .expect("chromas URL")
    .ca_cert(&ca);
    ChromaStore::connect(by_ip)
        .await
        .expect("connect over TLS by IP");

    // Not trusted: a clear, non-retryable error naming the way to trust the CA.
    let untrusted = ChromaConfig::new(&secure).expect("chromas URL");
    let err = ChromaStore::connect(untrusted)
        .await
        .expect_err("an unknown CA is refused");
    let message = err.to_string();
    eprintln!("untrusted: {message}");
    assert!(!err.is_retryable(), "{message}");
    assert!(message.contains("certificate"), "{message}");
    assert!(message.contains(CA_CERT_ENV), "{message}");

    // A CA file without a certificate, and a missing one, are input errors.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    for bad in [junk, dir.path().join("missing.pem")] {
        let err = ChromaStore::connect(ChromaConfig::new(&secure).expect("url").ca_cert(&bad))
            .await
            .expect_err("no usable CA");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains(CA_CERT_ENV), "{err}");
    }

    // TLS asked of the plain-HTTP server fails instead of hanging or sending in clear.
    let wrong = ChromaConfig::new(&format!("chromas://{}", authority(&url))).expect("url");
    let err = ChromaStore::connect(wrong.timeout(std::time::Duration::from_secs(10)))
        .await
        .expect_err("the plain server speaks no TLS");
    eprintln!("plain server: {err}");
    assert!(!err.is_retryable(), "{err}");
    assert!(err.to_string().contains("chroma://"), "{err}");

    plain.delete_collection("file-tls").await.expect("clean up");
}
