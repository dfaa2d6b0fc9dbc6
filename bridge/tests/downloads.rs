//! The download proxy on a real SQLite store with its upload folder, over HTTP: signed links,
//! headers, ranges, refusals, and a link made by one process verified by another (a replica).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use chatstore_bridge::{BridgeConfig, BridgeState, router};
use chatstore_core::files::sha256_hex;
use chatstore_core::{LocalUrls, NewFile, UrlSigner, validate};
use chatstore_sql::{SqlOptions, SqlStore};

const KEY: &str = "a test signing key of some length";

fn signer(key: &str) -> UrlSigner {
    UrlSigner::new(key).expect("a long enough key")
}

/// Serves the bridge over `store` on a free loopback port; gives its base URL.
async fn serve(store: &SqlStore, signer: Option<UrlSigner>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("address");
    let mut config = BridgeConfig::default();
    if let Some(signer) = signer {
        config = config.download_signer(signer);
    }
    let app = router(BridgeState::new(store.store(), config));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A new SQLite database (with its upload folder) in a temp folder.
async fn database() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp folder");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    (dir, url)
}

async fn open(url: &str) -> SqlStore {
    SqlStore::connect(url, SqlOptions::default())
        .await
        .expect("open the SQLite database")
}

fn content(len: usize) -> Vec<u8> {
    let mut bytes = b"SECRET-BYTES".to_vec();
    bytes.extend((0..len).map(|i| (i * 7 % 251) as u8));
    bytes
}

async fn put(store: &SqlStore, id: &str, name: &str, ct: &str, bytes: &[u8]) {
    let mut file = NewFile::new("u1", name, bytes.to_vec()).with_id(id);
    file.content_type = Some(ct.to_owned());
    store.store().files.put(file).await.expect("store the file");
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("the proxy answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("a body").to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_signed_link_streams_the_file_with_its_headers() {
    let (_dir, url) = database().await;
    let store = open(&url).await;
    let base = serve(&store, Some(signer(KEY))).await;
    let store = store.with_download_urls(LocalUrls::new(&base, signer(KEY)));
    let bytes = content(300_000);
    put(
        &store,
        "f1",
        "Q3 report (final) é.pdf",
        "application/pdf",
        &bytes,
    )
    .await;
    let link = store
        .store()
        .files
        .download_url("f1", Duration::from_secs(60))
        .await
        .expect("a link");
    assert!(link.url.starts_with(&format!("{base}/files/f1?exp=")));
    let (status, headers, body) = get(&link.url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    assert_eq!(header(&headers, "content-type"), "application/pdf");
    assert_eq!(header(&headers, "content-length"), bytes.len().to_string());
    assert_eq!(
        header(&headers, "etag"),
        format!("\"{}\"", sha256_hex(&bytes))
    );
    assert_eq!(header(&headers, "accept-ranges"), "bytes");
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&headers, "content-disposition"),
        "inline; filename=\"Q3 report (final) _.pdf\"; \
         filename*=UTF-8''Q3%20report%20%28final%29%20%C3%A9.pdf"
    );
    // An HTML upload is never shown in place.
    put(
        &store,
        "f2",
        "page.html",
        "text/html",
        b"<script>x</script>",
    )
    .await;
    let link = store
        .store()
        .files
        .download_url("f2", Duration::from_secs(60))
        .await
        .expect("link");
    let (status, headers, _) = get(&link.url, &[]).await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-disposition").starts_with("attachment;"));
}

#[tokio::test]
async fn ranges_get_206_and_ranges_outside_the_file_get_416() {
    let (_dir, url) = database().await;
    let store = open(&url).await;
    let base = serve(&store, Some(signer(KEY))).await;
    let store = store.with_download_urls(LocalUrls::new(&base, signer(KEY)));
    let bytes = content(100_000);
    let size = bytes.len();
    put(&store, "f1", "audio.ogg", "audio/ogg", &bytes).await;
    let link = store
        .store()
        .files
        .download_url("f1", Duration::from_secs(60))
        .await
        .expect("link");
    let (status, headers, body) = get(&link.url, &[("range", "bytes=10-19")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, bytes[10..20]);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 10-19/{size}")
    );
    assert_eq!(header(&headers, "content-length"), "10");
    let (status, _, body) = get(&link.url, &[("range", "bytes=-5")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, bytes[size - 5..]);
    let (status, _, body) = get(&link.url, &[("range", "bytes=99990-")]).await;
    assert_eq!(status, 206);
    assert_eq!(body, bytes[99_990..]);
    let (status, headers, body) = get(&link.url, &[("range", &format!("bytes={size}-"))]).await;
    assert_eq!(status, 416);
    assert_eq!(header(&headers, "content-range"), format!("bytes */{size}"));
    assert!(body.is_empty());
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let (status, _, body) = get(&link.url, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    // If-Range with another version: the whole file.
    let (status, _, body) = get(
        &link.url,
        &[("range", "bytes=0-0"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
}

#[tokio::test]
async fn missing_altered_and_expired_links_get_403_and_no_byte() {
    let (_dir, url) = database().await;
    let store = open(&url).await;
    let base = serve(&store, Some(signer(KEY))).await;
    let bytes = content(10_000);
    put(&store, "f1", "a.bin", "application/octet-stream", &bytes).await;
    put(&store, "f2", "b.bin", "application/octet-stream", &bytes).await;
    let s = signer(KEY);
    let now = validate::now();
    let exp = now + 60;
    let sig = s.sign("f1", exp);
    let good = format!("{base}/files/f1?exp={exp}&sig={sig}");
    assert_eq!(get(&good, &[]).await.0, 200);
    let mut flipped = sig.clone().into_bytes();
    flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).expect("hex");
    let expired_sig = s.sign("f1", now - 1);
    let other_key = signer("some other key, also long").sign("f1", exp);
    let refused = [
        format!("{base}/files/f1"),
        format!("{base}/files/f1?exp={exp}"),
        format!("{base}/files/f1?sig={sig}"),
        format!("{base}/files/f1?exp={exp}&sig={flipped}"),
        format!("{base}/files/f2?exp={exp}&sig={sig}"),
        format!("{base}/files/f1?exp={}&sig={sig}", exp + 1),
        format!("{base}/files/f1?exp={}&sig={expired_sig}", now - 1),
        format!("{base}/files/f1?exp={exp}&sig={other_key}"),
        format!("{base}/files/f1?exp=soon&sig={sig}"),
    ];
    for url in refused {
        let (status, _, body) = get(&url, &[("range", "bytes=0-100")]).await;
        assert_eq!(status, 403, "{url}");
        assert!(
            !body.windows(12).any(|w| w == b"SECRET-BYTES"),
            "no byte of the file for {url}"
        );
    }
    // A bridge without a key refuses even a link that another key signed.
    let closed = serve(&store, None).await;
    let (status, _, _) = get(&format!("{closed}/files/f1?exp={exp}&sig={sig}"), &[]).await;
    assert_eq!(status, 403);
    // A valid link to a deleted file is 404.
    store.store().files.delete("f1").await.expect("delete");
    assert_eq!(get(&good, &[]).await.0, 404);
}

/// Run by `a_link_made_here_works_on_another_replica` in a child process: a second replica of
/// the same database, configured the way Open WebUI is (`WEBUI_SECRET_KEY`).
#[tokio::test]
#[ignore = "started by a_link_made_here_works_on_another_replica"]
async fn replica_process() {
    let Ok(url) = std::env::var("CHATSTORE_TEST_REPLICA_DATABASE") else {
        return;
    };
    let signer = UrlSigner::from_lookup(|n| std::env::var(n).ok())
        .expect("a valid key")
        .expect("WEBUI_SECRET_KEY is set");
    let store = open(&url).await;
    let base = serve(&store, Some(signer)).await;
    println!("LISTENING {base}");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_link_made_here_works_on_another_replica() {
    let (_dir, url) = database().await;
    let store = open(&url).await;
    let bytes = content(200_000);
    put(
        &store,
        "f1",
        "shared.bin",
        "application/octet-stream",
        &bytes,
    )
    .await;
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["replica_process", "--exact", "--ignored", "--nocapture"])
        .env("CHATSTORE_TEST_REPLICA_DATABASE", &url)
        .env("WEBUI_SECRET_KEY", KEY)
        .env_remove("CHATSTORE_SIGNING_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the replica process");
    let stdout = child.stdout.take().expect("piped stdout");
    let base = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("LISTENING ").map(str::to_owned))
    })
    .await
    .expect("reader")
    .expect("the replica says where it listens");
    let store = store.with_download_urls(LocalUrls::new(&base, signer(KEY)));
    let link = store
        .store()
        .files
        .download_url("f1", Duration::from_secs(60))
        .await
        .expect("link");
    let (status, _, body) = get(&link.url, &[]).await;
    let tampered = link.url.replace("/files/f1?", "/files/f2?");
    let (tampered_status, _, _) = get(&tampered, &[]).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    assert_eq!(tampered_status, 403);
}
