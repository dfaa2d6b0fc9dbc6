//! The bridge publishing into Open WebUI's Redis manager channel: a real python-socketio
//! server with `AsyncRedisManager` (as Open WebUI runs with `WEBSOCKET_MANAGER=redis`) hands
//! the bridge's envelopes to the browsers connected to it, and only to the owner's.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chatstore_bridge::{BridgeConfig, RedisTarget};
use chatstore_core::{NewChat, NewUser, Store, memory};
use support::{Client, SECRET, Transport, is};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

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

/// Starts the Open WebUI stand-in on `channel`; gives the process and its address.
async fn replica(pythonpath: &str, redis_url: &str, channel: &str) -> (Child, SocketAddr) {
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
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
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
    let (Some(redis_url), Some(pythonpath)) = (
        support::require_env("CHATSTORE_TEST_REDIS_URL"),
        support::require_env("CHATSTORE_TEST_SOCKETIO_PYTHONPATH"),
    ) else {
        return;
    };
    let channel = format!("socketio-test-{}", std::process::id());
    let store = memory::store();
    let ada = user(&store, "ada@example.com").await;
    let bob = user(&store, "bob@example.com").await;

    let (mut server, addr) = replica(&pythonpath, &redis_url, &channel).await;
    let mut owner = Client::start(addr, Some(&ada), Transport::Websocket, &[])
        .await
        .expect("client");
    let mut other = Client::start(addr, Some(&bob), Transport::Websocket, &[])
        .await
        .expect("client");
    assert!(owner.ready().await && other.ready().await);
    // The manager subscribes once its server has a first connection.
    let target = RedisTarget::parse(&redis_url, &channel).expect("Redis URL");
    let deadline = tokio::time::Instant::now() + WAIT;
    while subscribers(&target.addr, &channel).await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the python-socketio manager never subscribed to {channel}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    drop(server.stdin.take());
    let _ = tokio::time::timeout(Duration::from_secs(5), server.wait()).await;
}

/// A Redis that takes connections and refuses every command (a password is required and the
/// bridge was given none): the publisher pauses, growing, between its attempts instead of
/// connecting again at once in a loop (thousands of connections a second, a core busy).
#[tokio::test]
async fn a_redis_refusing_every_command_is_not_hammered() {
    let Some(bin) = support::require_env("CHATSTORE_TEST_REDIS_BIN") else {
        return;
    };
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("address").port()
    };
    let _redis = Command::new(bin)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            "s3cret",
        ])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start redis-server");
    let addr = format!("127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(&addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis-server never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    // 100 ms, 200, 400, 800, 1.6 s: six connections in three seconds, and some room.
    let made = connections_received(&addr, "s3cret").await - before - 1;
    assert!(made >= 1, "the publisher never tried");
    assert!(made <= 12, "{made} connections in 3 s");
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
