//! Open WebUI's own Socket.IO replicas, reached through their Redis manager.
//!
//! With `WEBSOCKET_MANAGER=redis`, Open WebUI's python-socketio servers (5.16.2) share emits
//! over one Redis pub/sub channel (`socketio` by default): each server publishes
//! `{"method": "emit", "event", "data": [payload], "binary": false, "namespace": "/", "room",
//! "skip_sid": null, "callback": null, "host_id"}` and every other server emits it to its own
//! sockets in `room`. The bridge takes part in that cluster both ways:
//!
//! - it publishes every envelope of its change feed there (unless told not to), so browsers
//!   connected to Open WebUI's replicas (rather than to the bridge) get the same events; such
//!   a message carries `"chatstore_feed": true` (python-socketio ignores keys it does not
//!   know), and other bridges skip it, since each follows the feed itself;
//! - it subscribes to the channel and emits every other server's emit to its own sockets in
//!   that room (a chat completion streamed by an Open WebUI replica to `user:{id}`, an event an
//!   application sent through another bridge), answering an emit that asks for an ack with a
//!   `callback` message to the server that asked, as python-socketio's manager does.
//!
//! `PUBLISH`, `SUBSCRIBE`, `PING` (and `AUTH` for a password in the URL) are spoken in RESP2,
//! each direction over a TCP connection of its own, so no Redis client library is needed.
//! Publishing is fire-and-forget, like python-socketio's own: messages wait in a bounded queue
//! while Redis is unreachable (the connection is retried with a growing pause) and are dropped,
//! counted, when it is full. Emits published while the subscription was down are not seen, as
//! with python-socketio.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chatstore_core::{Error, Result};
use futures::StreamExt;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::metric;

/// Envelopes waiting for Redis before new ones are dropped.
const QUEUE: usize = 16_384;

/// The key that marks a message published for a change of the store's feed.
const FEED_MARK: &str = "chatstore_feed";

/// How long an emit that asks for an ack waits for the client's answer (python-socketio's
/// `call` waits 60 s by default).
const ACK_WAIT: Duration = Duration::from_secs(60);

/// A subscribed connection that heard nothing for this long is sent a `PING`; one that then
/// stays silent as long again is counted as lost (its host gone without a word).
const QUIET: Duration = Duration::from_secs(30);

/// The largest bulk string read from Redis: a message above it ends the connection instead of
/// an allocation a server could make arbitrarily large.
const LARGEST_MESSAGE: usize = 64 << 20;

/// Where and how to publish.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `host:port`.
    pub addr: String,
    /// The user of `redis://user:password@host:port[/db]` (Redis 6 ACLs), if any; without one
    /// the password is the `default` user's.
    pub username: Option<String>,
    /// The password of `redis://[user]:password@host:port[/db]`, percent-decoded, if any.
    pub password: Option<String>,
    /// The pub/sub channel of Open WebUI's manager (python-socketio's default: `socketio`).
    pub channel: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("addr", &self.addr)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("channel", &self.channel)
            .finish()
    }
}

impl RedisTarget {
    /// Parses `redis://[[user]:password@]host[:port][/db]` (the database number does not
    /// matter to pub/sub); `channel` is the manager's channel.
    pub fn parse(url: &str, channel: impl Into<String>) -> Result<RedisTarget> {
        let shown = chatstore_core::redact::url_text(url);
        let rest = url.strip_prefix("redis://").ok_or_else(|| {
            Error::invalid(format!(
                "the Redis URL must look like redis://host:6379 (got {shown:?})"
            ))
        })?;
        // The user part ends at the last `@` (a password may hold `/`); the host at the path.
        let (auth, after) = match rest.rsplit_once('@') {
            Some((auth, after)) => (Some(auth), after),
            None => (None, rest),
        };
        let host = after.split('/').next().unwrap_or_default();
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|v| v.into_owned())
                .map_err(|_| Error::invalid(format!("the Redis {what} in the URL is not UTF-8")))
        };
        let (username, password) = match auth {
            Some(auth) => {
                let (user, password) = auth.split_once(':').unwrap_or(("", auth));
                let user = Some(decode(user, "user")?).filter(|u| !u.is_empty());
                let password = Some(decode(password, "password")?).filter(|p| !p.is_empty());
                (user, password)
            }
            None => (None, None),
        };
        if host.is_empty() {
            return Err(Error::invalid(format!(
                "the Redis URL {shown:?} names no host"
            )));
        }
        let addr = if host
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host.to_owned()
        } else {
            format!("{host}:6379")
        };
        let channel = channel.into();
        if channel.is_empty() {
            return Err(Error::invalid("the Redis channel must not be empty"));
        }
        Ok(RedisTarget {
            addr,
            username,
            password,
            channel,
        })
    }
}

/// A new id among the cluster's servers (python-socketio's `host_id`), unique to each bridge
/// even when several run in one process: a server skips the messages carrying its own.
fn host_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static BRIDGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nth = BRIDGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u64(nth);
    format!(
        "chatstore-bridge-{}-{nth}-{:016x}",
        std::process::id(),
        random.finish()
    )
}

/// Publishes into Open WebUI's Redis manager channel from a background task.
#[derive(Debug, Clone)]
pub(crate) struct RedisPublisher {
    queue: mpsc::Sender<Vec<u8>>,
    host_id: String,
    channel: String,
}

impl RedisPublisher {
    /// Starts the publishing task (inside a Tokio runtime), under a new `host_id`.
    pub(crate) fn start(target: RedisTarget) -> RedisPublisher {
        let (queue, rx) = mpsc::channel(QUEUE);
        let channel = target.channel.clone();
        tokio::spawn(run(target, rx));
        RedisPublisher {
            queue,
            host_id: host_id(),
            channel,
        }
    }

    /// Queues `payload`, an envelope of the change feed, as an `events` emit to `room`.
    pub(crate) fn publish(&self, room: &str, payload: &Value) {
        let mut message = self.emit_message(room, "events", payload);
        message[FEED_MARK] = Value::Bool(true);
        self.queue(message);
    }

    /// Queues an emit of `event` with `data` to `room`, for every other server to deliver.
    pub(crate) fn publish_emit(&self, room: &str, event: &str, data: &Value) {
        self.queue(self.emit_message(room, event, data));
    }

    fn emit_message(&self, room: &str, event: &str, data: &Value) -> Value {
        json!({
            "method": "emit",
            "event": event,
            "data": [data],
            "binary": false,
            "namespace": "/",
            "room": room,
            "skip_sid": null,
            "callback": null,
            "host_id": self.host_id,
        })
    }

    /// Queues the answer to an emit of server `host_id` that asked for an ack.
    fn publish_callback(&self, ack: &AckRequest, args: Vec<Value>) {
        self.queue(json!({
            "method": "callback",
            "host_id": ack.host_id,
            "sid": ack.sid,
            "namespace": "/",
            "id": ack.id,
            "args": args,
        }));
    }

    fn queue(&self, message: Value) {
        let command = publish_command(&self.channel, message.to_string().as_bytes());
        if self.queue.try_send(command).is_err() {
            metrics::counter!(metric::REDIS_DROPPED).increment(1);
            tracing::warn!("bridge: the Redis queue is full; a message was not published");
        }
    }
}

/// An emit another server of the cluster published, to deliver to this bridge's sockets.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Inbound {
    event: String,
    /// The one argument (python-socketio sends `data` as the list of arguments).
    data: Value,
    /// Rooms to emit to; `None`: every socket.
    rooms: Option<Vec<String>>,
    skip: Vec<String>,
    ack: Option<AckRequest>,
}

/// Where the answer to an emit that asked for an ack goes.
#[derive(Debug, Clone, PartialEq)]
struct AckRequest {
    host_id: String,
    /// The socket the emit went to (python-socketio asks for acks from one socket only).
    sid: String,
    id: Value,
}

/// Reads a manager message: the emit to deliver here, or `None` for one to leave (this
/// bridge's own, another bridge's feed envelope, another namespace, binary data, another
/// method). Never fails: a message of a server this bridge does not understand is skipped.
pub(crate) fn inbound(message: &[u8], own_host_id: &str) -> Option<Inbound> {
    let message: Value = serde_json::from_slice(message).ok()?;
    if message["method"] != "emit"
        || message["host_id"] == own_host_id
        || message[FEED_MARK] == true
        || message["binary"] == true
        || !(message["namespace"].is_null() || message["namespace"] == "/")
    {
        return None;
    }
    let event = message["event"].as_str()?.to_owned();
    let data = match &message["data"] {
        Value::Array(args) if args.len() == 1 => args[0].clone(),
        // Several arguments, or none: Open WebUI sends one; not spread here.
        Value::Array(_) => return None,
        other => other.clone(),
    };
    let names = |v: &Value| -> Option<Vec<String>> {
        match v {
            Value::Null => Some(Vec::new()),
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        }
    };
    let rooms = match &message["room"] {
        Value::Null => None,
        room => Some(names(room)?).filter(|r| !r.is_empty()),
    };
    let skip = names(&message["skip_sid"])?;
    let ack = match &message["callback"] {
        Value::Array(cb) if cb.len() == 3 => Some(AckRequest {
            host_id: message["host_id"].as_str()?.to_owned(),
            sid: cb[0].as_str()?.to_owned(),
            id: cb[2].clone(),
        }),
        _ => None,
    };
    Some(Inbound {
        event,
        data,
        rooms,
        skip,
        ack,
    })
}

/// Emits `emit` to this bridge's sockets; when it asked for an ack, waits for the socket's
/// answer and publishes it back to the server that asked.
async fn deliver(io: &SocketIo, publisher: &RedisPublisher, emit: Inbound) {
    let mut op = match emit.rooms {
        Some(rooms) => io.to(rooms),
        None => io.broadcast(),
    };
    if !emit.skip.is_empty() {
        op = op.except(emit.skip);
    }
    let Some(ack) = emit.ack else {
        match op.emit(&emit.event, &emit.data).await {
            Ok(()) => metrics::counter!(metric::REDIS_DELIVERED).increment(1),
            Err(e) => {
                metrics::counter!(metric::EMIT_FAILURES).increment(1);
                tracing::warn!(error = %e, "bridge: an emit from Redis did not reach every socket of its room");
            }
        }
        return;
    };
    let answers = op
        .timeout(ACK_WAIT)
        .emit_with_ack::<_, Value>(&emit.event, &emit.data)
        .await;
    let Ok(answers) = answers else {
        return;
    };
    let mut answers = std::pin::pin!(answers);
    // The socket is on one server only; on the others the stream ends at once, unanswered.
    if let Some((_, Ok(answer))) = answers.next().await {
        metrics::counter!(metric::REDIS_DELIVERED).increment(1);
        publisher.publish_callback(&ack, vec![answer]);
    }
}

/// Starts the task that subscribes to the manager channel and delivers other servers' emits
/// to this bridge's sockets.
pub(crate) fn subscribe(
    target: RedisTarget,
    io: SocketIo,
    publisher: RedisPublisher,
    subscribed: Arc<AtomicBool>,
) {
    tokio::spawn(async move {
        let mut pause = Duration::from_millis(100);
        loop {
            let mut subscription = Subscription {
                pause: &mut pause,
                subscribed: &subscribed,
            };
            match listen(&target, &io, &publisher, &mut subscription, QUIET).await {
                Ok(()) => return,
                Err(e) => {
                    subscribed.store(false, Ordering::Relaxed);
                    metrics::gauge!(metric::REDIS_SUBSCRIBED).set(0.0);
                    tracing::warn!(error = %e, addr = %target.addr, "bridge: the Redis subscription failed; subscribing again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    });
}

/// What a subscription reports to its task: the pause before the next attempt (reset once
/// subscribed) and whether it is subscribed now.
struct Subscription<'a> {
    pause: &'a mut Duration,
    subscribed: &'a AtomicBool,
}

/// One subscribed connection, until it fails.
async fn listen(
    target: &RedisTarget,
    io: &SocketIo,
    publisher: &RedisPublisher,
    subscription: &mut Subscription<'_>,
    quiet: Duration,
) -> std::io::Result<()> {
    let mut conn = Connection::open(target).await?;
    conn.reader
        .get_mut()
        .write_all(&command(&[b"SUBSCRIBE", target.channel.as_bytes()]))
        .await?;
    let mut pinged = false;
    loop {
        // Waits for a reply's first byte (which consumes nothing, so giving up leaves the
        // stream whole), then reads the reply within the same bound.
        let arrived = tokio::time::timeout(quiet, conn.reader.fill_buf())
            .await
            .map(|read| read.map(|buf| !buf.is_empty()));
        match arrived {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(Err(e)) => return Err(e),
            Err(_) if pinged => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "Redis answered no PING",
                ));
            }
            Err(_) => {
                conn.reader
                    .get_mut()
                    .write_all(&command(&[b"PING"]))
                    .await?;
                pinged = true;
                continue;
            }
        }
        let push = tokio::time::timeout(quiet, read_push(&mut conn.reader))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "a Redis reply stopped halfway",
                )
            })??;
        pinged = false;
        match push.first().map(Vec::as_slice) {
            Some(b"subscribe") => {
                metrics::gauge!(metric::REDIS_SUBSCRIBED).set(1.0);
                subscription.subscribed.store(true, Ordering::Relaxed);
                *subscription.pause = Duration::from_millis(100);
            }
            Some(b"message") if push.len() == 3 => {
                match inbound(&push[2], &publisher.host_id) {
                    // A task of its own: waiting for the ack must not hold up the emits after.
                    Some(emit) if emit.ack.is_some() => {
                        let (io, publisher) = (io.clone(), publisher.clone());
                        tokio::spawn(async move { deliver(&io, &publisher, emit).await });
                    }
                    // In the order published: a streamed completion arrives as many emits,
                    // each adding to the text the previous ones gave.
                    Some(emit) => deliver(io, publisher, emit).await,
                    None => {}
                }
            }
            _ => {}
        }
    }
}

/// Reads one RESP2 reply of a subscribed connection: an array of bulk strings and integers
/// (`message`, `subscribe`, `pong`), as its elements' bytes. An error reply is an error.
async fn read_push(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<Vec<u8>>> {
    let header = read_line(reader).await?;
    let Some(count) = header.strip_prefix('*') else {
        return match header.as_bytes().first() {
            Some(b'-') => Err(std::io::Error::other(format!("Redis answered {header}"))),
            _ => Ok(vec![header.into_bytes()]),
        };
    };
    let count: usize = count.parse().map_err(|_| bad_reply(&header))?;
    let mut items = Vec::with_capacity(count.min(8));
    for _ in 0..count {
        let line = read_line(reader).await?;
        match line.as_bytes().first() {
            Some(b'$') => {
                let len: i64 = line[1..].parse().map_err(|_| bad_reply(&line))?;
                let Ok(len) = usize::try_from(len) else {
                    items.push(Vec::new());
                    continue;
                };
                if len > LARGEST_MESSAGE {
                    return Err(bad_reply(&line));
                }
                let mut bulk = vec![0; len + 2];
                reader.read_exact(&mut bulk).await?;
                bulk.truncate(len);
                items.push(bulk);
            }
            Some(b':' | b'+') => items.push(line.as_bytes()[1..].to_vec()),
            _ => return Err(bad_reply(&line)),
        }
    }
    Ok(items)
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut line = String::new();
    // Bounded: a line is a header, never data.
    let n = (&mut *reader).take(1024).read_line(&mut line).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end().to_owned())
}

fn bad_reply(line: &str) -> std::io::Error {
    let shown: String = line.chars().take(40).collect();
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("Redis sent an unexpected reply {shown:?}"),
    )
}

/// `PUBLISH channel message` in RESP2.
fn publish_command(channel: &str, message: &[u8]) -> Vec<u8> {
    command(&[b"PUBLISH", channel.as_bytes(), message])
}

fn command(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One connection: writes each queued command and reads its reply.
struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    async fn open(target: &RedisTarget) -> std::io::Result<Connection> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        stream.set_nodelay(true)?;
        let mut conn = Connection {
            reader: BufReader::new(stream),
        };
        match (&target.username, &target.password) {
            (Some(user), Some(password)) => {
                conn.send(&command(&[b"AUTH", user.as_bytes(), password.as_bytes()]))
                    .await?
            }
            (None, Some(password)) => conn.send(&command(&[b"AUTH", password.as_bytes()])).await?,
            _ => {}
        }
        Ok(conn)
    }

    /// Sends one command and reads its one-line reply (`+OK`, `:N`); `-ERR` is an error. The
    /// write and the reply together take at most 5 s: a server that stopped reading (its host
    /// gone without a word) fills the socket's buffer, and a write would wait for ever.
    async fn send(&mut self, command: &[u8]) -> std::io::Result<()> {
        let mut line = String::new();
        let exchange = async {
            self.reader.get_mut().write_all(command).await?;
            self.reader.read_line(&mut line).await
        };
        let n = tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply"))??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.starts_with('-') {
            return Err(std::io::Error::other(format!(
                "Redis answered {}",
                line.trim_end()
            )));
        }
        Ok(())
    }
}

async fn run(target: RedisTarget, mut rx: mpsc::Receiver<Vec<u8>>) {
    let mut conn: Option<Connection> = None;
    let mut pause = Duration::from_millis(100);
    let mut pending: Option<Vec<u8>> = None;
    loop {
        let next = match pending.take() {
            Some(command) => command,
            None => match rx.recv().await {
                Some(command) => command,
                None => return,
            },
        };
        let Some(c) = conn.as_mut() else {
            match Connection::open(&target).await {
                // The pause is not reset here: a server that takes connections and refuses
                // every command (protected mode, a password required, too many clients) would
                // be connected to again and again without one.
                Ok(c) => {
                    conn = Some(c);
                    metrics::gauge!(metric::REDIS_CONNECTED).set(1.0);
                }
                Err(e) => {
                    metrics::gauge!(metric::REDIS_CONNECTED).set(0.0);
                    tracing::warn!(error = %e, addr = %target.addr, "bridge: cannot reach Redis; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
            pending = Some(next);
            continue;
        };
        match c.send(&next).await {
            Ok(()) => {
                metrics::counter!(metric::REDIS_PUBLISHED).increment(1);
                pause = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!(error = %e, addr = %target.addr, "bridge: publishing to Redis failed; reconnecting");
                metrics::gauge!(metric::REDIS_CONNECTED).set(0.0);
                conn = None;
                // Sent again on the next connection: a subscriber may see it twice, which
                // envelopes allow.
                pending = Some(next);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that accepted the connection and then stopped reading (its host gone without a
    /// word): the write fills the socket's buffers and the send gives up instead of waiting
    /// for ever, so the publisher connects again.
    #[tokio::test]
    async fn a_server_that_stopped_reading_fails_the_send() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        });
        let target = RedisTarget {
            addr: addr.to_string(),
            username: None,
            password: None,
            channel: "socketio".into(),
        };
        let mut conn = Connection::open(&target).await.expect("connect");
        // More than loopback's socket buffers hold together.
        let big = publish_command("socketio", &vec![b'x'; 64 << 20]);
        let sent = tokio::time::timeout(Duration::from_secs(30), conn.send(&big))
            .await
            .expect("the send ends by itself");
        let err = sent.expect_err("nobody reads");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        silent.abort();
    }

    #[test]
    fn urls_give_the_address_and_password() {
        let t = RedisTarget::parse("redis://127.0.0.1:6380/0", "socketio").expect("url");
        assert_eq!((t.addr.as_str(), t.password), ("127.0.0.1:6380", None));
        let t = RedisTarget::parse("redis://:s3cret@cache", "owui").expect("url");
        assert_eq!(t.addr, "cache:6379");
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.channel, "owui");
        let t = RedisTarget::parse("redis://default:pw@cache:7000", "socketio").expect("url");
        assert_eq!(
            (t.addr.as_str(), t.password.as_deref()),
            ("cache:7000", Some("pw"))
        );
        // An ACL user is kept; a password is percent-decoded and may hold `/`.
        let t = RedisTarget::parse("redis://alice:p%40ss/x@cache:7000/2", "socketio").expect("url");
        assert_eq!(t.addr, "cache:7000");
        assert_eq!(t.username.as_deref(), Some("alice"));
        assert_eq!(t.password.as_deref(), Some("p@ss/x"));
        assert!(!format!("{t:?}").contains("p@ss"), "{t:?}");
        for bad in ["rediss://:s3cret@cache", "redis://:s3cret@"] {
            let e = RedisTarget::parse(bad, "socketio").expect_err(bad);
            assert!(!e.to_string().contains("s3cret"), "{e}");
        }
        for bad in ["http://cache:6379", "redis://", "redis:///0"] {
            assert!(RedisTarget::parse(bad, "socketio").is_err(), "{bad}");
        }
        assert!(RedisTarget::parse("redis://cache", "").is_err());
    }

    /// Another server's emit is taken with its rooms, skipped sockets and ack request; this
    /// bridge's own messages, other bridges' feed envelopes, other namespaces, binary data,
    /// other methods and malformed messages are left.
    #[test]
    fn other_servers_emits_are_taken_and_the_rest_left() {
        let emit = |extra: Value| {
            let mut m = json!({
                "method": "emit", "event": "events", "data": [{"chat_id": "c1"}],
                "binary": false, "namespace": "/", "room": "user:u1", "skip_sid": null,
                "callback": null, "host_id": "owui-1",
            });
            for (k, v) in extra.as_object().expect("an object") {
                m[k] = v.clone();
            }
            serde_json::to_vec(&m).expect("json")
        };
        let taken = inbound(&emit(json!({})), "me").expect("an emit");
        assert_eq!(taken.event, "events");
        assert_eq!(taken.data, json!({"chat_id": "c1"}));
        assert_eq!(taken.rooms, Some(vec!["user:u1".to_owned()]));
        assert!(taken.skip.is_empty() && taken.ack.is_none());

        let many = inbound(
            &emit(json!({"room": ["a", "b"], "skip_sid": "s1", "namespace": null})),
            "me",
        )
        .expect("an emit");
        assert_eq!(many.rooms, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(many.skip, vec!["s1".to_owned()]);
        let everyone = inbound(&emit(json!({"room": null})), "me").expect("an emit");
        assert_eq!(everyone.rooms, None);

        let asked = inbound(&emit(json!({"callback": ["sid9", "/", 7]})), "me").expect("an emit");
        assert_eq!(
            asked.ack,
            Some(AckRequest {
                host_id: "owui-1".into(),
                sid: "sid9".into(),
                id: json!(7),
            })
        );

        for left in [
            emit(json!({"host_id": "me"})),
            emit(json!({FEED_MARK: true})),
            emit(json!({"namespace": "/admin"})),
            emit(json!({"binary": true})),
            emit(json!({"method": "enter_room"})),
            emit(json!({"data": [1, 2]})),
            emit(json!({"room": 5})),
            emit(json!({"event": null})),
            b"not json".to_vec(),
        ] {
            assert_eq!(
                inbound(&left, "me"),
                None,
                "{}",
                String::from_utf8_lossy(&left)
            );
        }
    }

    /// The replies of a subscribed connection are read as their elements; an error reply and
    /// a bulk string larger than allowed end the connection.
    #[tokio::test]
    async fn subscribed_replies_are_read() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let replies = format!(
                "*3\r\n$9\r\nsubscribe\r\n$8\r\nsocketio\r\n:1\r\n\
                 *3\r\n$7\r\nmessage\r\n$8\r\nsocketio\r\n$4\r\n{{}}\r\n\r\n\
                 *2\r\n$4\r\npong\r\n$0\r\n\r\n\
                 -ERR nope\r\n\
                 *1\r\n${}\r\n",
                LARGEST_MESSAGE + 1
            );
            socket.write_all(replies.as_bytes()).await.expect("write");
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut reader = BufReader::new(stream);
        let bytes = |items: &[&[u8]]| items.iter().map(|i| i.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            read_push(&mut reader).await.expect("subscribe"),
            bytes(&[b"subscribe", b"socketio", b"1"])
        );
        assert_eq!(
            read_push(&mut reader).await.expect("message"),
            bytes(&[b"message", b"socketio", b"{}\r\n"])
        );
        assert_eq!(
            read_push(&mut reader).await.expect("pong"),
            bytes(&[b"pong", b""])
        );
        assert!(read_push(&mut reader).await.is_err(), "an error reply");
        let too_big = read_push(&mut reader).await.expect_err("too large");
        assert_eq!(too_big.kind(), std::io::ErrorKind::InvalidData);
        server.abort();
    }

    /// A subscribed connection that goes silent is sent a `PING`; when that gets no answer
    /// either, the subscription is given up (and made again), instead of waiting for ever on
    /// a Redis host gone without a word.
    #[tokio::test]
    async fn a_silent_subscription_is_pinged_then_given_up() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let target = RedisTarget {
            addr: listener.local_addr().expect("address").to_string(),
            username: None,
            password: None,
            channel: "socketio".into(),
        };
        let server = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            let mut socket = BufReader::new(socket);
            let mut heard = Vec::new();
            let mut line = String::new();
            while !heard.iter().any(|l: &String| l.contains("PING")) {
                line.clear();
                if socket.read_line(&mut line).await.expect("read") == 0 {
                    break;
                }
                heard.push(line.trim_end().to_owned());
                if line.contains("SUBSCRIBE") {
                    socket
                        .get_mut()
                        .write_all(b"*3\r\n$9\r\nsubscribe\r\n$8\r\nsocketio\r\n:1\r\n")
                        .await
                        .expect("write");
                }
            }
            // Silent from here on, the connection kept open.
            tokio::time::sleep(Duration::from_secs(30)).await;
            heard
        });
        let (_layer, io) = SocketIo::builder().build_layer();
        let publisher = RedisPublisher::start(target.clone());
        let mut pause = Duration::from_secs(1);
        let subscribed = AtomicBool::new(false);
        let mut subscription = Subscription {
            pause: &mut pause,
            subscribed: &subscribed,
        };
        let quiet = Duration::from_millis(200);
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            listen(&target, &io, &publisher, &mut subscription, quiet),
        )
        .await
        .expect("the subscription ends by itself");
        assert!(subscribed.load(Ordering::Relaxed), "it had subscribed");
        let err = ended.expect_err("nobody answered the PING");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("PING"), "{err}");
        assert_eq!(pause, Duration::from_millis(100), "it had subscribed");
        server.abort();
    }

    #[test]
    fn publish_is_resp2() {
        assert_eq!(
            publish_command("socketio", b"{}"),
            b"*3\r\n$7\r\nPUBLISH\r\n$8\r\nsocketio\r\n$2\r\n{}\r\n".to_vec()
        );
    }
}
