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
/// [`reset`](Self::reset) closes every open connection; [`resume`](Self::resume) lets traffic
/// flow again. Dropped, it stops accepting and closes everything.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    paused: Arc<AtomicBool>,
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
        let target = target.to_owned();
        let task = {
            let paused = paused.clone();
            let generation = generation.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let target = target.clone();
                    let paused = paused.clone();
                    let reset = generation.subscribe();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&target).await {
                            relay(client, server, paused, reset).await;
                        }
                    });
                }
            })
        };
        Ok(FaultProxy {
            addr,
            paused,
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

async fn relay(
    client: TcpStream,
    server: TcpStream,
    paused: Arc<AtomicBool>,
    mut reset: watch::Receiver<u64>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = pump(&mut cr, &mut sw, &paused);
    let down = pump(&mut sr, &mut cw, &paused);
    tokio::select! {
        _ = up => {}
        _ = down => {}
        _ = reset.changed() => {}
    }
}

/// Copies bytes from `from` to `to`, holding them while paused.
async fn pump<R, W>(from: &mut R, to: &mut W, paused: &AtomicBool)
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
        while paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
