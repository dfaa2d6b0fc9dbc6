//! `chatstore bridge` as an operator runs it: a process of its own on PostgreSQL, a real
//! python-socketio client, writes made by another process (this test) through chatstore, and
//! the Prometheus counters at `/metrics`; also behind the rollout router once the groups are
//! new-only.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use chatstore_bridge::issue_token;
use chatstore_core::{ChatPatch, NewChat, NewUser, Store};
use chatstore_router::RouterConfig;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const SECRET: &str = "cli-bridge-test-secret";
const WAIT: Duration = Duration::from_secs(20);

/// A plain HTTP GET on loopback: status code and body.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.ok()?;
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await.ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// One python-socketio client (bridge/tests/socketio_client.py) and its JSON lines.
struct Client {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
}

impl Client {
    fn start(pythonpath: &str, port: u16, token: &str) -> Client {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../bridge/tests/socketio_client.py"
        );
        let mut child = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(script)
            .args([
                "--url",
                &format!("http://127.0.0.1:{port}"),
                "--token",
                token,
            ])
            .env("PYTHONPATH", pythonpath)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the python-socketio client");
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        Client { child, lines }
    }

    /// The next line of kind `event`.
    async fn expect(&mut self, event: &str) -> Value {
        loop {
            let line = tokio::time::timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event:?} within {WAIT:?}"))
                .expect("the client ended");
            if line["event"] == event {
                return line;
            }
        }
    }

    /// The `events` envelopes received within `window`.
    async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            if line["event"] == "events" {
                out.push(line["data"].clone());
            }
        }
        out
    }

    /// Sends a `heartbeat` asking for its ack; the bridge answers once it recorded (or
    /// skipped) the user's activity.
    async fn heartbeat(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("the client's stdin");
        stdin
            .write_all(b"heartbeat-ack\n")
            .await
            .expect("write to the client");
        stdin.flush().await.expect("flush");
        let line = self.expect("heartbeat").await;
        assert!(line["data"]["timeout"].is_null(), "no ack: {line}");
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

async fn user(store: &Store, email: &str) -> String {
    store
        .users
        .create(NewUser {
            role: Some("user".into()),
            ..NewUser::new(email, "U")
        })
        .await
        .expect("user")
        .id
}

/// A token as Open WebUI issues it, with the user's session stamp.
async fn token(store: &Store, user_id: &str) -> String {
    issue_token(store, SECRET, user_id, None)
        .await
        .expect("token")
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("/metrics has no {name}:\n{text}"))
}

/// The bridge binary on PostgreSQL: a chat created and renamed by another process reaches the
/// owner's client as `chat:list` and `chat:title` and never another user's client; `/health`
/// is 200 and `/metrics` counts the changes in, the envelopes out and the two sockets. Two
/// heartbeats within `DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL` write the user's activity
/// once.
#[tokio::test]
async fn the_bridge_command_delivers_another_process_writes_and_counts_them() {
    let (Some(server), Some(pythonpath)) = (
        chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL"),
        chatstore_testkit::require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH"),
    ) else {
        return;
    };
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    // File bytes in a folder of the test's own, not `data/uploads` under the crate's folder.
    let uploads = tempfile::tempdir().expect("a temp folder");
    let store = chatstore_registry::OpenOptions::new(&url)
        .upload_dir(uploads.path())
        .open()
        .await
        .expect("open the store");
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;

    let mut env = HashMap::new();
    env.insert("CHATSTORE_DATABASE_URL".to_owned(), url.clone());
    env.insert(
        "CHATSTORE_UPLOAD_DIR".to_owned(),
        uploads.path().display().to_string(),
    );
    env.insert(
        "DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL".to_owned(),
        "3600".to_owned(),
    );
    let (mut bridge, port) = start_bridge(&env).await;

    let mut owner = Client::start(&pythonpath, port, &token(&store, &ada).await);
    let mut other = Client::start(&pythonpath, port, &token(&store, &bob).await);
    owner.expect("ready").await;
    other.expect("ready").await;

    let chat = store
        .chats
        .create(NewChat::new(&ada, "first"))
        .await
        .expect("chat");
    store
        .chats
        .update(
            &chat.id,
            ChatPatch {
                title: Some("renamed".into()),
                ..ChatPatch::default()
            },
        )
        .await
        .expect("rename");
    let mut kinds = Vec::new();
    while !(kinds.contains(&"chat:list".to_owned()) && kinds.contains(&"chat:title".to_owned())) {
        let line = owner.expect("events").await;
        assert_eq!(line["data"]["chat_id"], chat.id.as_str(), "{line}");
        if line["data"]["data"]["type"] == "chat:title" {
            assert_eq!(line["data"]["data"]["data"], "renamed");
        }
        kinds.push(
            line["data"]["data"]["type"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    let heard = other.drain(Duration::from_millis(500)).await;
    assert!(heard.is_empty(), "another user heard {heard:?}");

    store.users.set_last_active(&ada, 5).await.expect("idle");
    let before = chatstore_core::changes::now_ms() / 1000;
    owner.heartbeat().await;
    owner.heartbeat().await;
    let active = store.users.get(&ada).await.expect("ada").last_active_at;
    assert!(active >= before, "activity {active}, heartbeat at {before}");

    let (status, text) = get(port, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(
        metric(&text, "chatstore_bridge_events_in_total") >= 2.0,
        "{text}"
    );
    assert!(
        metric(&text, "chatstore_bridge_events_out_total") >= 2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "chatstore_bridge_connected_sockets"),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "chatstore_bridge_feed_connected"),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "chatstore_bridge_activity_writes_total"),
        1.0,
        "two heartbeats within the interval: {text}"
    );

    owner.stop().await;
    other.stop().await;
    let _ = bridge.kill().await;
    drop(store);
    chatstore_testkit::drop_postgres_database(&server, &url).await;
}

/// `chatstore bridge` on a free loopback port with `env` (its store's URL among it), once it
/// answers `/health` with a connected feed.
async fn start_bridge(env: &HashMap<String, String>) -> (Child, u16) {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("addr").port()
    };
    let bridge = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(["bridge", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("WEBUI_SECRET_KEY", SECRET)
        .envs(env)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chatstore bridge");
    healthy(port).await;
    (bridge, port)
}

/// Waits until the bridge on `port` answers `/health` with 200 and a connected feed.
async fn healthy(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, body)) = get(port, "/health").await {
            assert!(body.contains("\"feed_connected\":true"), "{body}");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bridge behind the rollout router (PostgreSQL old, PocketBase new) with users, chats and
/// files new-only: a chat another process creates through its router reaches PocketBase only,
/// and the bridge, whose routed feed follows PocketBase for those groups, delivers it.
#[tokio::test]
async fn behind_the_router_the_bridge_delivers_new_only_writes() {
    let (Some(server), Some(pythonpath), Some(pb_base)) = (
        chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL"),
        chatstore_testkit::require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH"),
        chatstore_testkit::require_env("CHATSTORE_TEST_POCKETBASE_URL"),
    ) else {
        return;
    };
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    let uploads = tempfile::tempdir().expect("a temp folder");
    let logs = tempfile::tempdir().expect("a temp folder");
    let pb = common::PocketBasePrefix::new(&pb_base, "bridge");
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email set");
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD").expect("password set");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("CHATSTORE_DATABASE_URL".into(), url.clone());
    for group in ["USERS", "CHATS", "FILES"] {
        vars.insert(format!("CHATSTORE_{group}_NEW_URL"), pb.url.clone());
        vars.insert(format!("CHATSTORE_{group}_PHASE"), "new-only".into());
    }
    let log = |name: &str| logs.path().join(name).display().to_string();
    vars.insert("CHATSTORE_REPAIR_LOG".into(), log("repair.jsonl"));
    vars.insert("CHATSTORE_SHADOW_LOG".into(), log("diffs.jsonl"));
    vars.insert("CHATSTORE_POCKETBASE_ADMIN_EMAIL".into(), email.clone());
    vars.insert(
        "CHATSTORE_POCKETBASE_ADMIN_PASSWORD".into(),
        password.clone(),
    );
    vars.insert(
        "CHATSTORE_UPLOAD_DIR".into(),
        uploads.path().display().to_string(),
    );

    // This process writes through a router configured the same way.
    let config = RouterConfig::from_lookup(|name| vars.get(name).cloned()).expect("config");
    let old = chatstore_registry::OpenOptions::new(&url)
        .upload_dir(uploads.path())
        .open()
        .await
        .expect("open PostgreSQL");
    let router = config
        .open(old, |new_url| {
            let (email, password) = (email.clone(), password.clone());
            async move {
                chatstore_registry::OpenOptions::new(&new_url)
                    .pocketbase_superuser(&email, &password)
                    .open()
                    .await
            }
        })
        .await
        .expect("open the router");
    let store = router.store();
    let ada = user(&store, "ada@example.com").await;

    let (mut bridge, port) = start_bridge(&vars).await;
    let mut owner = Client::start(&pythonpath, port, &token(&store, &ada).await);
    owner.expect("ready").await;

    let chat = store
        .chats
        .create(NewChat::new(&ada, "after the cutover"))
        .await
        .expect("chat");
    assert!(
        router.old().chats.get(&chat.id).await.is_err(),
        "a new-only chat is not on the old store"
    );
    loop {
        let line = owner.expect("events").await;
        if line["data"]["chat_id"] == chat.id.as_str()
            && line["data"]["data"]["type"] == "chat:list"
        {
            break;
        }
    }

    owner.stop().await;
    let _ = bridge.kill().await;
    drop((store, router));
    chatstore_testkit::drop_postgres_database(&server, &url).await;
}

/// Through a transaction-pooling PgBouncer a store has no change feed unless it is given the
/// server's own URL: `chatstore bridge` refuses to start without it (naming the variable), and
/// starts with a connected feed when `CHATSTORE_POSTGRES_DIRECT_URL` is set.
#[tokio::test]
async fn through_pgbouncer_the_bridge_needs_the_direct_url() {
    let (Some(server), Some(bouncer)) = (
        chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL"),
        chatstore_testkit::require_env("CHATSTORE_TEST_PGBOUNCER_URL"),
    ) else {
        return;
    };
    let (direct, pooled) =
        chatstore_testkit::fresh_postgres_database_behind(&server, &bouncer).await;
    let uploads = tempfile::tempdir().expect("a temp folder");
    let bridge = |port: u16| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_chatstore"));
        c.args(["bridge", "--database-url", &pooled, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("WEBUI_SECRET_KEY", SECRET)
            .env("CHATSTORE_UPLOAD_DIR", uploads.path())
            .env_remove("CHATSTORE_DATABASE_URL")
            .env_remove("CHATSTORE_POSTGRES_DIRECT_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    };
    let free_port = || {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("addr").port()
    };

    let refused = tokio::time::timeout(WAIT, bridge(free_port()).output())
        .await
        .expect("the bridge refuses at once")
        .expect("run chatstore bridge");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("CHATSTORE_POSTGRES_DIRECT_URL"), "{stderr}");
    assert!(stderr.contains("no change feed"), "{stderr}");

    let port = free_port();
    let _running = bridge(port)
        .env("CHATSTORE_POSTGRES_DIRECT_URL", &direct)
        .stderr(Stdio::null())
        .spawn()
        .expect("start chatstore bridge");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some((200, body)) = get(port, "/health").await
            && body.contains("\"feed_connected\":true")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge with the direct URL did not become healthy with its feed connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SQLite's change feed hears only the writes of its own process, and the bridge is a process
/// of its own: `chatstore bridge` on SQLite refuses to start, saying to use PostgreSQL or
/// PocketBase, instead of reporting healthy and never sending an event.
#[tokio::test]
async fn on_sqlite_the_bridge_refuses_to_start() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    // The database exists and has a user, as a deployment's would.
    let store = chatstore_registry::OpenOptions::new(&url)
        .upload_dir(dir.path().join("uploads"))
        .open()
        .await
        .expect("open SQLite");
    user(&store, "ada@example.com").await;
    drop(store);
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        probe.local_addr().expect("addr").port()
    };
    let run = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(["bridge", "--database-url", &url, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("WEBUI_SECRET_KEY", SECRET)
        .env("CHATSTORE_UPLOAD_DIR", dir.path().join("uploads"))
        .env_remove("CHATSTORE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let refused = tokio::time::timeout(WAIT, run)
        .await
        .expect("the bridge refuses at once instead of serving")
        .expect("run chatstore bridge");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("invalid input"), "{stderr}");
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("PocketBase"),
        "{stderr}"
    );
}
