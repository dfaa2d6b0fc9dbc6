//! The bridge in Open WebUI's Socket.IO cluster (its Redis manager channel): a real
//! python-socketio server with `AsyncRedisManager` (as Open WebUI runs with
//! `WEBSOCKET_MANAGER=redis`) hands the bridge's envelopes to the browsers connected to it,
//! and only to the owner's; its emits and calls reach the browsers connected to the bridge;
//! an application's emit reaches every server once.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chatstore_bridge::{BridgeConfig, BridgeState, RedisTarget};
use chatstore_core::{NewChat, NewUser, Store, memory};
use serde_json::json;
use support::{Client, SECRET, Transport, is, token};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(20);

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

/// An Open WebUI stand-in (`owui_replica.py`): its process, its address, its output lines.
struct Replica {
    child: Child,
    addr: SocketAddr,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Replica {
    /// Sends a command line (`emit ROOM EVENT JSON`, `call SID EVENT JSON`) and gives the
    /// line it answers.
    async fn command(&mut self, line: &str) -> String {
        let stdin = self.child.stdin.as_mut().expect("server stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the server");
        stdin.flush().await.expect("flush");
        tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the server answers within 20 s")
            .expect("server stdout")
            .expect("the server answered")
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

/// Starts the Open WebUI stand-in on `channel`.
async fn replica(pythonpath: &str, redis_url: &str, channel: &str) -> Replica {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/owui_replica.py");
    let mut child = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(script)
        .args(["--redis-url", redis_url, "--channel", channel])
        .env("PYTHONPATH", pythonpath)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the python-socketio server");
    let stdout = child.stdout.take().expect("server stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the server starts within 20 s")
        .expect("server stdout")
        .expect("the server printed its port");
    let port: u16 = line
        .strip_prefix("listening ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected server line {line:?}"));
    Replica {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        lines,
    }
}

/// Waits until `channel` has at least `n` subscribers (each server of the cluster is one).
async fn await_subscribers(target: &RedisTarget, n: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while subscribers(&target.addr, &target.channel).await < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has fewer than {n} subscribers",
            target.channel
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `events` envelopes among a client's lines.
fn events(lines: Vec<serde_json::Value>) -> impl Iterator<Item = serde_json::Value> {
    lines
        .into_iter()
        .filter(|l| l["event"] == "events")
        .map(|l| l["data"].clone())
}

/// Subscribers of `channel` on the Redis at `addr` (`PUBSUB NUMSUB`).
async fn subscribers(addr: &str, channel: &str) -> i64 {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to Redis");
    let cmd = format!(
        "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n",
        channel.len()
    );
    conn.write_all(cmd.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 256];
    let mut text = String::new();
    // `*2 $len channel :N` arrives in one or a few reads.
    while !text.contains("\r\n:") || !text.ends_with("\r\n") {
        let n = conn.read(&mut buf).await.expect("read");
        assert!(n > 0, "Redis closed the connection");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    text.rsplit_once(':')
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A chat created and renamed on a bridge that publishes to Redis reaches the owner's client
/// connected to a python-socketio server with AsyncRedisManager (not to the bridge) as
/// `chat:list` and `chat:title`; another user's client there hears nothing.
#[tokio::test]
async fn envelopes_reach_clients_of_open_webui_replicas_through_redis() {
    let Some((redis_url, pythonpath)) = redis_and_clients() else {
        return;
    };
    let channel = format!("socketio-test-{}", std::process::id());
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;

    let server = replica(&pythonpath, &redis_url, &channel).await;
    let mut owner = Client::start(server.addr, Some(&ada), Transport::Websocket, &[])
        .await
        .expect("client");
    let mut other = Client::start(server.addr, Some(&bob), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(owner.ready().await && other.ready().await);
    // The manager subscribes once its server has a first connection.
    let target = RedisTarget::parse(&redis_url, &channel).expect("Redis URL");
    await_subscribers(&target, 1).await;

    support::serve_with(
        store.clone(),
        BridgeConfig::default().secret_key(SECRET).redis(target),
    )
    .await;
    let chat = store
        .chats
        .create(NewChat::new(&ada, "first"))
        .await
        .expect("chat");
    owner.envelope(WAIT, is("chat:list", &chat.id)).await;
    support::rename(&store, &chat.id, "renamed").await;
    let title = owner.envelope(WAIT, is("chat:title", &chat.id)).await;
    assert_eq!(title["data"]["data"], "renamed");
    other.assert_hears_no_events("another user").await;
    owner.stop().await;
    other.stop().await;
    server.stop().await;
}

/// An Open WebUI replica's emit to `user:{id}` (a chat completion it streams) reaches that
/// user's browser connected to the bridge, once and in order, and no other user's; its emit
/// to `channel:{id}` reaches the channel's members only; its `call` to a socket of the bridge
/// gets the browser's answer back through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_webui_replica_reaches_the_browsers_of_the_bridge() {
    let Some((redis_url, pythonpath)) = redis_and_clients() else {
        return;
    };
    let channel = format!("socketio-replica-{}", std::process::id());
    let target = RedisTarget::parse(&redis_url, &channel).expect("Redis URL");
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;
    let team = store
        .workspace()
        .expect("workspace")
        .channels()
        .create(chatstore_core::models::NewChannel {
            user_id: ada.clone(),
            name: "team".into(),
            kind: Some("group".into()),
            ..Default::default()
        })
        .await
        .expect("channel");
    let mut server = replica(&pythonpath, &redis_url, &channel).await;
    let mut at_replica = Client::start(server.addr, Some(&bob), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(at_replica.ready().await);
    let bridge = support::serve_with(
        store.clone(),
        BridgeConfig::default()
            .secret_key(SECRET)
            .redis(target.clone()),
    )
    .await;
    let mut owner = Client::start_in_order(bridge, &token(&ada))
        .await
        .expect("client");
    let mut other = Client::start(bridge, Some(&token(&bob)), Transport::Polling, &[])
        .await
        .expect("client");
    let sid = owner.ready_sid().await;
    assert!(other.ready().await);
    await_subscribers(&target, 2).await;

    let completion = json!({
        "chat_id": "c1",
        "message_id": "m1",
        "data": {"type": "chat:completion", "data": {"content": "Hello"}},
    });
    let emitted = server
        .command(&format!("emit user:{ada} events {completion}"))
        .await;
    assert_eq!(emitted, "emitted");
    let heard = owner.envelope(WAIT, is("chat:completion", "c1")).await;
    assert_eq!(heard, completion);
    let again = owner.drain(Duration::from_millis(500)).await;
    assert!(
        again.iter().all(|l| l["event"] != "events"),
        "heard twice: {again:?}"
    );
    other.assert_hears_no_events("another user").await;
    // A completion streams as many emits; they arrive in the order sent.
    let delta = json!({"chat_id": "c2", "data": {"type": "chat:completion", "data": {}}});
    let emitted = server
        .command(&format!("burst user:{ada} events {delta}"))
        .await;
    assert_eq!(emitted, "emitted");
    for n in 0..50 {
        let heard = owner.envelope(WAIT, is("chat:completion", "c2")).await;
        assert_eq!(heard["n"], n, "out of order: {heard}");
    }

    // A channel's message goes to the sockets of its members, which joined its room.
    let posted = json!({
        "channel_id": team.id,
        "message_id": "cm1",
        "data": {"type": "message", "data": {"content": "Hi team"}},
    });
    let emitted = server
        .command(&format!("emit channel:{} events:channel {posted}", team.id))
        .await;
    assert_eq!(emitted, "emitted");
    let heard = owner.expect("events:channel", WAIT).await;
    assert_eq!(heard["data"], posted);
    let heard = other.drain(Duration::from_millis(500)).await;
    assert!(
        heard.iter().all(|l| l["event"] != "events:channel"),
        "bob is no member: {heard:?}"
    );

    let question = json!({
        "chat_id": "c1",
        "message_id": "m1",
        "data": {"type": "confirmation", "data": {"title": "Run?"}},
    });
    let reply = server
        .command(&format!("call {sid} events {question}"))
        .await;
    assert_eq!(reply, r#"reply {"heard": "confirmation"}"#);
    owner.envelope(WAIT, is("confirmation", "c1")).await;

    owner.stop().await;
    other.stop().await;
    at_replica.stop().await;
    server.stop().await;
}

/// An application's emit through one bridge reaches the user's browsers on that bridge, on
/// a second bridge and on an Open WebUI replica, each once; and a change of the store's feed
/// reaches each of them once too, with only the first bridge publishing changes.
#[tokio::test]
async fn an_emit_and_a_change_reach_every_server_of_the_cluster_once() {
    let Some((redis_url, pythonpath)) = redis_and_clients() else {
        return;
    };
    let channel = format!("socketio-cluster-{}", std::process::id());
    let target = RedisTarget::parse(&redis_url, &channel).expect("Redis URL");
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let server = replica(&pythonpath, &redis_url, &channel).await;
    let config = BridgeConfig::default()
        .secret_key(SECRET)
        .redis(target.clone());
    let first = BridgeState::new(store.clone(), config.clone());
    let a = support::serve_state(first.clone()).await;
    let b = support::serve_with(store.clone(), config.publish_changes(false)).await;
    let mut clients = Vec::new();
    for (addr, token) in [
        (a, token(&ada)),
        (b, token(&ada)),
        (server.addr, ada.clone()),
    ] {
        let mut client = Client::start(addr, Some(&token), Transport::Websocket, &[])
            .await
            .expect("client");
        assert!(client.ready().await);
        clients.push(client);
    }
    await_subscribers(&target, 3).await;

    let completion = json!({
        "chat_id": "c1",
        "message_id": "m1",
        "data": {"type": "chat:completion", "data": {"content": "Hi"}},
    });
    first
        .emit(&format!("user:{ada}"), "events", &completion)
        .await
        .expect("emit");
    let chat = store
        .chats
        .create(NewChat::new(&ada, "first"))
        .await
        .expect("chat");
    let listed = is("chat:list", &chat.id);
    for (i, client) in clients.iter_mut().enumerate() {
        // The emit and the change take different paths (Redis, the feed): either may come
        // first. Both are awaited, then whatever else arrives within 700 ms.
        let mut heard: Vec<serde_json::Value> = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        while !(heard.contains(&completion) && heard.iter().any(&listed)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "client {i} heard only {heard:?}"
            );
            heard.extend(events(client.drain(Duration::from_millis(100)).await));
        }
        heard.extend(events(client.drain(Duration::from_millis(700)).await));
        let completions = heard.iter().filter(|e| **e == completion).count();
        let lists = heard.iter().filter(|e| listed(e)).count();
        assert_eq!(
            (completions, lists),
            (1, 1),
            "client {i}: each once: {heard:?}"
        );
    }

    assert!(
        first.emit("", "events", &completion).await.is_err(),
        "an emit needs a room"
    );
    for client in clients {
        client.stop().await;
    }
    server.stop().await;
}

/// A Redis that takes connections and refuses every command (a password is required and the
/// bridge was given none): the publisher pauses, growing, between its attempts instead of
/// connecting again at once in a loop (thousands of connections a second, a core busy).
#[tokio::test]
async fn a_redis_refusing_every_command_is_not_hammered() {
    let Some(bin) = support::require_env("CHATSTORE_TEST_REDIS_BIN") else {
        return;
    };
    let port = free_port();
    let _redis = redis_server(&bin, port, &["--requirepass", "s3cret"]).await;
    let addr = format!("127.0.0.1:{port}");
    let before = connections_received(&addr, "s3cret").await;

    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let target = RedisTarget::parse(&format!("redis://{addr}"), "socketio").expect("Redis URL");
    support::serve_with(
        store.clone(),
        BridgeConfig::default().secret_key(SECRET).redis(target),
    )
    .await;
    store
        .chats
        .create(NewChat::new(&ada, "first"))
        .await
        .expect("chat");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 100 ms, 200, 400, 800, 1.6 s: six connections in three seconds for the publisher and
    // six for the subscriber, and some room.
    let made = connections_received(&addr, "s3cret").await - before - 1;
    assert!(made >= 2, "the publisher and the subscriber never tried");
    assert!(made <= 24, "{made} connections in 3 s");
}

/// The services' Redis URL and python-socketio's folder; `None` outside CI without them.
fn redis_and_clients() -> Option<(String, String)> {
    let redis_url = support::require_env("CHATSTORE_TEST_REDIS_URL");
    let pythonpath = support::require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH");
    redis_url.zip(pythonpath)
}

/// A free loopback port.
fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    probe.local_addr().expect("address").port()
}

/// Starts `redis-server` (unpersisted, with `extra` options) on loopback `port` and waits
/// until it listens.
async fn redis_server(bin: &str, port: u16, extra: &[&str]) -> Child {
    let server = Command::new(bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .args(extra)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

/// Publishes `message` on `channel` as another server of the cluster would; gives the number
/// of subscribers that got it.
async fn publish(addr: &str, channel: &str, message: &str) -> i64 {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to Redis");
    let cmd = format!(
        "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{message}\r\n",
        channel.len(),
        message.len()
    );
    conn.write_all(cmd.as_bytes()).await.expect("write");
    let mut reply = BufReader::new(conn);
    let mut line = String::new();
    reply.read_line(&mut line).await.expect("read");
    line.trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("PUBLISH answered {line:?}"))
}

/// Redis killed (SIGKILL) and started again on the same port while the bridge is subscribed:
/// `/health` reports the subscription lost, the bridge subscribes again by itself, and an emit
/// published after the restart reaches its browser.
#[tokio::test]
async fn the_subscription_survives_a_redis_restart() {
    let (Some(bin), Some(_)) = (
        support::require_env("CHATSTORE_TEST_REDIS_BIN"),
        support::require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH"),
    ) else {
        return;
    };
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut redis = redis_server(&bin, port, &[]).await;
    let target = RedisTarget::parse(&format!("redis://{addr}"), "socketio").expect("Redis URL");
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bridge = support::serve_with(
        store.clone(),
        BridgeConfig::default()
            .secret_key(SECRET)
            .redis(target.clone()),
    )
    .await;
    let mut owner = Client::start(bridge, Some(&token(&ada)), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(owner.ready().await);
    let emit = |n: u32| {
        json!({
            "method": "emit", "event": "events", "namespace": "/", "room": format!("user:{ada}"),
            "data": [{"chat_id": "c1", "message_id": null, "data": {"type": "chat:completion", "data": {"n": n}}}],
            "binary": false, "skip_sid": null, "callback": null, "host_id": "owui-test",
        })
        .to_string()
    };
    await_subscribers(&target, 1).await;
    assert_eq!(publish(&addr, "socketio", &emit(1)).await, 1);
    let heard = owner.envelope(WAIT, is("chat:completion", "c1")).await;
    assert_eq!(heard["data"]["data"]["n"], 1);

    assert_eq!(
        subscribed(bridge).await,
        Some(true),
        "/health before the kill"
    );

    redis.kill().await.expect("kill redis-server");
    let deadline = tokio::time::Instant::now() + WAIT;
    while subscribed(bridge).await != Some(false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "/health never said the subscription was lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _redis = redis_server(&bin, port, &[]).await;
    await_subscribers(&target, 1).await;
    assert_eq!(publish(&addr, "socketio", &emit(2)).await, 1);
    let heard = owner.envelope(WAIT, is("chat:completion", "c1")).await;
    assert_eq!(heard["data"]["data"]["n"], 2);
    owner.stop().await;
}

/// `redis_subscribed` of the bridge's `GET /health`.
async fn subscribed(bridge: SocketAddr) -> Option<bool> {
    let health: serde_json::Value = reqwest::get(format!("http://{bridge}/health"))
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("a JSON body");
    health["redis_subscribed"].as_bool()
}

/// `total_connections_received` of the Redis at `addr`, asked with `password` (one more
/// connection).
async fn connections_received(addr: &str, password: &str) -> i64 {
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to Redis");
    let cmd = format!(
        "*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n",
        password.len()
    );
    conn.write_all(cmd.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let mut text = String::new();
    let field = "total_connections_received:";
    loop {
        if let Some((_, rest)) = text.split_once(field)
            && let Some((n, _)) = rest.split_once("\r\n")
        {
            return n.trim().parse().expect("a count");
        }
        let n = conn.read(&mut buf).await.expect("read");
        assert!(n > 0, "Redis closed the connection: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}
