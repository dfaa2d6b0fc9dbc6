//! Open WebUI's own Socket.IO replicas, reached through their Redis manager.
//!
//! With `WEBSOCKET_MANAGER=redis`, Open WebUI's python-socketio servers (5.16.2) share emits
//! over one Redis pub/sub channel (`socketio` by default): each server publishes
//! `{"method": "emit", "event", "data": [payload], "binary": false, "namespace": "/", "room",
//! "skip_sid": null, "callback": null, "host_id"}` and every other server emits it to its own
//! sockets in `room`. The bridge publishes every envelope there too, so browsers connected to
//! Open WebUI's replicas (rather than to the bridge) get the same events.
//!
//! Only `PUBLISH` (and `AUTH` for a password in the URL) is spoken, in RESP2 over one TCP
//! connection, so no Redis client library is needed. Publishing is fire-and-forget, like
//! python-socketio's own: envelopes wait in a bounded queue while Redis is unreachable (the
//! connection is retried with a growing pause) and are dropped, counted, when it is full.

use std::time::Duration;

use chatstore_core::{Error, Result};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::metric;

/// Envelopes waiting for Redis before new ones are dropped.
const QUEUE: usize = 16_384;

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

/// Publishes envelopes into Open WebUI's Redis manager channel from a background task.
#[derive(Debug, Clone)]
pub(crate) struct RedisPublisher {
    queue: mpsc::Sender<Vec<u8>>,
    host_id: String,
    channel: String,
}

impl RedisPublisher {
    /// Starts the publishing task (inside a Tokio runtime).
    pub(crate) fn start(target: RedisTarget) -> RedisPublisher {
        let (queue, rx) = mpsc::channel(QUEUE);
        let host_id = format!(
            "chatstore-bridge-{}-{}",
            std::process::id(),
            chatstore_core::changes::now_ms()
        );
        let channel = target.channel.clone();
        tokio::spawn(run(target, rx));
        RedisPublisher {
            queue,
            host_id,
            channel,
        }
    }

    /// Queues `payload` as an `events` emit to `room`.
    pub(crate) fn publish(&self, room: &str, payload: &Value) {
        let message = json!({
            "method": "emit",
            "event": "events",
            "data": [payload],
            "binary": false,
            "namespace": "/",
            "room": room,
            "skip_sid": null,
            "callback": null,
            "host_id": self.host_id,
        });
        let command = publish_command(&self.channel, message.to_string().as_bytes());
        if self.queue.try_send(command).is_err() {
            metrics::counter!(metric::REDIS_DROPPED).increment(1);
            tracing::warn!("bridge: the Redis queue is full; an envelope was not published");
        }
    }
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

    #[test]
    fn publish_is_resp2() {
        assert_eq!(
            publish_command("socketio", b"{}"),
            b"*3\r\n$7\r\nPUBLISH\r\n$8\r\nsocketio\r\n$2\r\n{}\r\n".to_vec()
        );
    }
}
