//! A TCP proxy in front of a server that can pause traffic and reset connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy on a loopback port, forwarding to `target`. [`pause`](Self::pause) stops
/// forwarding bytes (connections stay open and stall, as on a dropped network);
/// [`stall_open`](Self::stall_open) stalls only the connections open now, for good, while new
/// ones flow (a peer that stopped answering on its old connections only);
/// [`reset`](Self::reset) closes every open connection; [`resume`](Self::resume) lets traffic
/// flow again. Dropped, it stops accepting and closes everything.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    paused: Arc<AtomicBool>,
    /// Connections are numbered as accepted; those numbered below this one are stalled.
    stalled_below: Arc<AtomicU64>,
    accepted: Arc<AtomicU64>,
    generation: watch::Sender<u64>,
    resets: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy to `target` (`host:port`) on a free loopback port.
    pub async fn start(target: &str) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let paused = Arc::new(AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let resets = Arc::new(AtomicU64::new(0));
        let stalled_below = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicU64::new(0));
        let target = target.to_owned();
        let task = {
            let paused = paused.clone();
            let generation = generation.clone();
            let (stalled_below, accepted) = (stalled_below.clone(), accepted.clone());
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let target = target.clone();
                    let hold = Hold {
                        paused: paused.clone(),
                        stalled_below: stalled_below.clone(),
                        number: accepted.fetch_add(1, Ordering::SeqCst),
                    };
                    let reset = generation.subscribe();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&target).await {
                            relay(client, server, hold, reset).await;
                        }
                    });
                }
            })
        };
        Ok(FaultProxy {
            addr,
            paused,
            stalled_below,
            accepted,
            generation,
            resets,
            task,
        })
    }

    /// A proxy in front of the server a URL names (`scheme://user@host:port/...`), and the same
    /// URL through the proxy.
    pub async fn in_front_of(url: &str) -> std::io::Result<(FaultProxy, String)> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
        let mut via = url::Url::parse(url).map_err(|e| bad(&format!("{url}: {e}")))?;
        let host = via.host_str().ok_or_else(|| bad("a URL without a host"))?;
        let port = via
            .port_or_known_default()
            .or((via.scheme() == "postgres" || via.scheme() == "postgresql").then_some(5432))
            .ok_or_else(|| bad("a URL without a port"))?;
        let proxy = FaultProxy::start(&format!("{host}:{port}")).await?;
        via.set_port(Some(proxy.port()))
            .map_err(|()| bad("a URL whose port cannot change"))?;
        Ok((proxy, via.to_string()))
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops forwarding bytes in both directions; connections stay open.
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Forwards bytes again.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    /// Stops forwarding bytes, for good, on every connection accepted so far; connections
    /// accepted later flow as usual (unless paused). The stalled ones stay open without an
    /// answer, as when a peer or middlebox stops answering on connections it still accepts
    /// bytes for; [`resume`](Self::resume) does not revive them, [`reset`](Self::reset) closes
    /// them.
    pub fn stall_open(&self) {
        let accepted = self.accepted.load(Ordering::SeqCst);
        self.stalled_below.fetch_max(accepted, Ordering::SeqCst);
    }

    /// Closes every connection open now (new ones are accepted as usual).
    pub fn reset(&self) {
        let n = self.resets.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.generation.send(n);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset();
    }
}

/// What holds one connection's bytes back: the proxy's pause, or a stall of the connections
/// accepted before a [`FaultProxy::stall_open`].
struct Hold {
    paused: Arc<AtomicBool>,
    stalled_below: Arc<AtomicU64>,
    /// The connection's number, in the order accepted.
    number: u64,
}

impl Hold {
    fn holds(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
            || self.number < self.stalled_below.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, hold: Hold, mut reset: watch::Receiver<u64>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = pump(&mut cr, &mut sw, &hold);
    let down = pump(&mut sr, &mut cw, &hold);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = reset.changed() => {}
    }
}

/// Copies bytes from `from` to `to`, holding them while `hold` says so.
async fn pump<R, W>(from: &mut R, to: &mut W, hold: &Hold)
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while hold.holds() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: every byte read is written back.
    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = conn.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr.to_string()
    }

    /// Sends one byte on `conn` and waits up to `within` for its echo.
    async fn echoes(conn: &mut TcpStream, within: Duration) -> bool {
        if conn.write_all(b"x").await.is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(within, conn.read_exact(&mut byte)).await,
            Ok(Ok(_))
        )
    }

    /// `stall_open` stalls the connections open when it is called, and no later one.
    #[tokio::test]
    async fn stall_open_stalls_only_the_connections_open_now() {
        let proxy = FaultProxy::start(&echo_server().await)
            .await
            .expect("proxy");
        let addr = format!("127.0.0.1:{}", proxy.port());
        let mut old = TcpStream::connect(&addr).await.expect("connect");
        assert!(echoes(&mut old, Duration::from_secs(10)).await);
        proxy.stall_open();
        let mut new = TcpStream::connect(&addr).await.expect("connect");
        assert!(
            echoes(&mut new, Duration::from_secs(10)).await,
            "a connection opened after the stall flows"
        );
        proxy.resume();
        assert!(
            !echoes(&mut old, Duration::from_millis(300)).await,
            "a stalled connection stays stalled"
        );
    }
}
