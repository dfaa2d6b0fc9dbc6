//! Test kit of the bridge: a bridge served on loopback, real Socket.IO clients
//! (python-socketio from `scripts/services.sh`) driven as child processes, and tokens.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chatstore_bridge::{BridgeConfig, BridgeState, Claims, router, sign_token};
use chatstore_core::Store;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The key the test bridges verify tokens with.
pub const SECRET: &str = "bridge-test-secret";

/// Whether an env var the tests need is set; under CI a missing one fails the test.
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{name} is not set but CI=true (run scripts/services.sh start)"
            );
            eprintln!("SKIPPED: {name} is not set (run `eval \"$(scripts/services.sh start)\"`)");
            None
        }
    }
}

/// A token for `user_id`, valid for an hour.
pub fn token(user_id: &str) -> String {
    token_with(SECRET, user_id, Some(now_secs() + 3600))
}

/// A token signed with `key`, expiring at `exp`.
pub fn token_with(key: &str, user_id: &str, exp: Option<u64>) -> String {
    sign_token(
        key,
        &Claims {
            id: user_id.to_owned(),
            exp,
            session_stamp: None,
        },
    )
    .expect("sign a test token")
}

/// A token for `user_id` as Open WebUI issues it, with the user's session stamp in `store`,
/// valid for an hour.
pub async fn token_for(store: &Store, user_id: &str) -> String {
    chatstore_bridge::issue_token(store, SECRET, user_id, Some(now_secs() + 3600))
        .await
        .expect("issue a test token")
}

/// Epoch seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Serves a bridge over `store` on a free loopback port.
pub async fn serve(store: Store) -> SocketAddr {
    serve_with(store, BridgeConfig::default().secret_key(SECRET)).await
}

/// Serves a bridge with this configuration.
pub async fn serve_with(store: Store, config: BridgeConfig) -> SocketAddr {
    serve_state(BridgeState::new(store, config)).await
}

/// Serves the bridge of `state` on a free loopback port.
pub async fn serve_state(state: BridgeState) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A python-socketio client process.
pub struct Client {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
}

/// Which transport a client uses.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    /// Engine.IO websocket.
    Websocket,
    /// Engine.IO long polling.
    Polling,
}

impl Client {
    /// Starts a client of the bridge at `addr` with this token (none: no auth at all),
    /// joining these chats. `None` when the client is not installed (outside CI).
    pub async fn start(
        addr: SocketAddr,
        token: Option<&str>,
        transport: Transport,
        join: &[&str],
    ) -> Option<Client> {
        Client::start_with(addr, token, transport, join, &[]).await
    }

    /// [`Client::start`] that joins each chat `times` times at once, without waiting for the
    /// answers, and reports them all in one `flooded` line.
    pub async fn start_flooding(
        addr: SocketAddr,
        token: &str,
        chat: &str,
        times: usize,
    ) -> Option<Client> {
        let times = times.to_string();
        Client::start_with(
            addr,
            Some(token),
            Transport::Websocket,
            &[chat],
            &["--flood", &times],
        )
        .await
    }

    /// [`Client::start`] over a websocket, handling messages in the order they arrive, as a
    /// browser does (python-engineio's client otherwise gives each a thread of its own).
    pub async fn start_in_order(addr: SocketAddr, token: &str) -> Option<Client> {
        Client::start_with(
            addr,
            Some(token),
            Transport::Websocket,
            &[],
            &["--in-order"],
        )
        .await
    }

    async fn start_with(
        addr: SocketAddr,
        token: Option<&str>,
        transport: Transport,
        join: &[&str],
        extra: &[&str],
    ) -> Option<Client> {
        let path = require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH")?;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/socketio_client.py");
        let mut cmd = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
        cmd.arg(script)
            .arg("--url")
            .arg(format!("http://{addr}"))
            .arg("--transport")
            .arg(match transport {
                Transport::Websocket => "websocket",
                Transport::Polling => "polling",
            })
            .env("PYTHONPATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.arg("--token").arg(token);
        }
        for chat in join {
            cmd.arg("--join").arg(chat);
        }
        cmd.args(extra);
        let mut child = cmd.spawn().expect("start the python-socketio client");
        let stdout = child.stdout.take().expect("client stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("client: {line}"),
                }
            }
        });
        Some(Client { child, lines })
    }

    /// The next line of kind `event`, skipping others; panics after `within`.
    pub async fn expect(&mut self, event: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {event:?} from the client within {within:?}"))
                .unwrap_or_else(|| panic!("the client ended before {event:?}"));
            if line["event"] == event {
                return line;
            }
        }
    }

    /// Waits until the client connected and joined its chats; returns false when refused.
    pub async fn ready(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .expect("the client connects or is refused within 20 s")
                .expect("the client ended before connecting");
            match line["event"].as_str() {
                Some("ready") => return true,
                Some("connect_error") => return false,
                _ => {}
            }
        }
    }

    /// Waits until the client connected and joined its chats, and gives its socket's id.
    pub async fn ready_sid(&mut self) -> String {
        let line = self.expect("ready", Duration::from_secs(20)).await;
        line["data"]["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("no sid in {line}"))
            .to_owned()
    }

    /// The next `events` envelope for which `pred` holds (others skipped).
    pub async fn envelope(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching envelope within {within:?}"))
                .expect("the client ended while waiting for an envelope");
            if line["event"] == "events" && pred(&line["data"]) {
                return line["data"].clone();
            }
        }
    }

    /// Every line received within `window`.
    pub async fn drain(&mut self, window: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, self.lines.recv()).await {
            out.push(line);
        }
        out
    }

    /// Listens for half a second and fails if any `events` envelope arrived: `who` (another
    /// user, a refused client) must hear nothing of the owner's changes.
    pub async fn assert_hears_no_events(&mut self, who: &str) {
        let heard = self.drain(Duration::from_millis(500)).await;
        assert!(
            heard.iter().all(|l| l["event"] != "events"),
            "{who} heard the owner's events: {heard:?}"
        );
    }

    /// Sends the client a command line (see `socketio_client.py`: `heartbeat`,
    /// `heartbeat-ack`).
    pub async fn send(&mut self, command: &str) {
        let stdin = self
            .child
            .stdin
            .as_mut()
            .expect("the client's stdin is open");
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write a command to the client");
        stdin.flush().await.expect("flush the client's stdin");
    }

    /// Sends `heartbeat-ack` and waits for the bridge's answer, which comes once the
    /// heartbeat's activity write is done (or skipped).
    pub async fn heartbeat(&mut self) -> Value {
        self.send("heartbeat-ack").await;
        let line = self.expect("heartbeat", Duration::from_secs(15)).await;
        assert!(line["data"]["timeout"].is_null(), "no ack: {line}");
        line
    }

    /// Ends the client.
    pub async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// `envelope["data"]["type"] == kind` and the chat matches.
pub fn is(kind: &str, chat_id: &str) -> impl Fn(&Value) -> bool {
    let kind = kind.to_owned();
    let chat_id = chat_id.to_owned();
    move |v: &Value| v["data"]["type"] == kind.as_str() && v["chat_id"] == chat_id.as_str()
}

/// A fresh PostgreSQL database on the test server (dropped by [`drop_database`]); `None`
/// when the server is not configured (outside CI).
pub async fn postgres_database() -> Option<String> {
    let server = require_env("CHATSTORE_TEST_POSTGRES_URL")?;
    Some(chatstore_testkit::fresh_postgres_database(&server).await)
}

/// Drops a database made by [`postgres_database`] (its URL).
pub async fn drop_database(url: &str) {
    if let Ok(server) = std::env::var("CHATSTORE_TEST_POSTGRES_URL") {
        chatstore_testkit::drop_postgres_database(&server, url).await;
    }
}

/// Every envelope kind through a real backend: `bridge` is served, `writer` (another store on
/// the same database, as another replica) creates, renames, tags, writes a message in and
/// deletes a chat of a new user; that user's client (joined to the chat) receives `chat:list`,
/// `chat:title`, `chat:tags`, `chat:message` and the deletion's `chat:list`; another user's
/// client, asking to join the same chat, is refused and receives nothing.
pub async fn every_envelope_kind_reaches_only_the_owner(writer: &Store, bridge: Store) {
    use chatstore_core::{NewChat, NewMessage, NewUser};
    let wait = Duration::from_secs(20);
    let mut ids = Vec::new();
    for email in ["kind-owner@example.com", "kind-other@example.com"] {
        let user = writer
            .users
            .create(NewUser {
                role: Some("user".into()),
                ..NewUser::new(email, "K")
            })
            .await
            .expect("user");
        ids.push(user.id);
    }
    let (owner_id, other_id) = (&ids[0], &ids[1]);
    let chat = writer
        .chats
        .create(NewChat::new(owner_id, "Engines"))
        .await
        .expect("chat");
    let addr = serve(bridge).await;
    let Some(mut owner) = Client::start(
        addr,
        Some(&token_for(writer, owner_id).await),
        Transport::Websocket,
        &[chat.id.as_str()],
    )
    .await
    else {
        return;
    };
    let mut other = Client::start(
        addr,
        Some(&token_for(writer, other_id).await),
        Transport::Websocket,
        &[chat.id.as_str()],
    )
    .await
    .expect("client");
    assert_eq!(
        owner.expect("joined", wait).await["data"]["reply"]["ok"],
        true
    );
    assert_eq!(
        other.expect("joined", wait).await["data"]["reply"]["ok"],
        false
    );
    assert!(owner.ready().await && other.ready().await);

    rename(writer, &chat.id, "Analytical engines").await;
    let title = owner.envelope(wait, is("chat:title", &chat.id)).await;
    assert_eq!(title["data"]["data"], "Analytical engines");
    writer.chats.add_tag(&chat.id, "Work").await.expect("tag");
    let tags = owner
        .envelope(wait, |v| {
            is("chat:tags", &chat.id)(v) && v["data"]["data"] == serde_json::json!(["work"])
        })
        .await;
    assert_eq!(tags["chat_id"], chat.id.as_str());
    writer
        .messages
        .upsert(NewMessage::text(&chat.id, "m1", "user", "Hello"))
        .await
        .expect("message");
    let message = owner.envelope(wait, is("chat:message", &chat.id)).await;
    assert_eq!(message["message_id"], "m1");
    assert_eq!(message["data"]["data"]["content"], "Hello");
    writer.chats.delete(&chat.id).await.expect("delete");
    // The deletion: a chat:list after the message (a read-back may repeat earlier kinds).
    owner.envelope(wait, is("chat:list", &chat.id)).await;

    other.assert_hears_no_events("another user").await;
    owner.stop().await;
    other.stop().await;
}

/// Renames a chat through `store`.
pub async fn rename(store: &chatstore_core::Store, chat_id: &str, title: &str) {
    store
        .chats
        .update(
            chat_id,
            chatstore_core::ChatPatch {
                title: Some(title.into()),
                ..chatstore_core::ChatPatch::default()
            },
        )
        .await
        .expect("rename");
}
