//! A TCP proxy in front of the test Chroma server that acts once on the answer to one chosen
//! request: it runs a step before Chroma's answer goes back (another client deleting a
//! collection, say), then forwards that answer or closes the connection instead (an answer
//! lost after Chroma applied the request). Everything else is forwarded untouched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does, once, when Chroma answers a request whose head contains a needle:
/// the returned future runs first; `true` forwards the answer, `false` closes the connection.
pub type Hook = Box<dyn FnOnce() -> BoxFuture<'static, bool> + Send>;

/// The hook waiting for its request, with that request's needle.
type Armed = Arc<Mutex<Option<(String, Hook)>>>;

/// A proxy on a loopback port in front of one Chroma server. Dropped, it stops accepting.
pub struct AnswerProxy {
    url: String,
    armed: Armed,
    task: tokio::task::JoinHandle<()>,
}

impl AnswerProxy {
    /// Starts a proxy in front of `chroma_url` (`http://HOST:PORT`).
    pub async fn start(chroma_url: &str) -> AnswerProxy {
        let target = chroma_url
            .trim_start_matches("http://")
            .trim_start_matches("chroma://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port for the proxy");
        let url = format!(
            "http://{}",
            listener.local_addr().expect("the proxy's address")
        );
        let armed: Armed = Arc::new(Mutex::new(None));
        let task = {
            let armed = armed.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let target = target.clone();
                    let armed = armed.clone();
                    tokio::spawn(async move {
                        if let Ok(server) = TcpStream::connect(&target).await {
                            relay(client, server, armed).await;
                        }
                    });
                }
            })
        };
        AnswerProxy { url, armed, task }
    }

    /// The URL that reaches Chroma through the proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs `hook` when the next request whose head contains `needle` is answered.
    pub fn on_answer(&self, needle: &str, hook: Hook) {
        *self.armed.lock().expect("proxy lock") = Some((needle.to_owned(), hook));
    }

    /// Whether the hook has run.
    pub fn fired(&self) -> bool {
        self.armed.lock().expect("proxy lock").is_none()
    }
}

impl Drop for AnswerProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards one connection both ways. HTTP/1.1 clients send one request at a time on a
/// connection, so the next answer after a matching request is that request's answer.
async fn relay(client: TcpStream, server: TcpStream, armed: Armed) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let waiting = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let matched = armed
                .lock()
                .expect("proxy lock")
                .as_ref()
                .is_some_and(|(needle, _)| {
                    buf[..n]
                        .windows(needle.len())
                        .any(|w| w == needle.as_bytes())
                });
            if matched {
                waiting.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if waiting.swap(false, Ordering::SeqCst) {
                let hook = armed.lock().expect("proxy lock").take();
                if let Some((_, hook)) = hook
                    && !hook().await
                {
                    return;
                }
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// Two stores on one fresh database of the Chroma server at `url`: one direct, one through a
/// new [`AnswerProxy`] (returned too, to arm it).
pub async fn stores_on_a_fresh_database(
    url: &str,
) -> (
    chatstore_chroma::ChromaStore,
    AnswerProxy,
    chatstore_chroma::ChromaStore,
) {
    use chatstore_chroma::{ChromaConfig, ChromaStore};
    let database = format!("t_{}", uuid::Uuid::new_v4().simple());
    let direct = ChromaStore::connect(
        ChromaConfig::new(url)
            .expect("a valid Chroma URL")
            .database(&database)
            .create_database(true),
    )
    .await
    .expect("open the Chroma store");
    let proxy = AnswerProxy::start(url).await;
    let through = ChromaStore::connect(
        ChromaConfig::new(proxy.url())
            .expect("the proxy's URL")
            .database(&database),
    )
    .await
    .expect("open the Chroma store through the proxy");
    (direct, proxy, through)
}
