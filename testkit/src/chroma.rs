//! A Chroma server of the test's own, on a folder the test chooses.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `chroma run` on a folder of the test's choosing, on a free loopback port; killed on drop
/// (the folder stays: Chroma wrote it, the test reads or copies it). Needs
/// `CHATSTORE_CHROMA_BIN` (set by `scripts/services.sh`).
#[derive(Debug)]
pub struct PrivateChroma {
    child: Option<Child>,
    port: u16,
    path: PathBuf,
}

impl PrivateChroma {
    /// Starts a server on `path` and waits (up to 30 s) until its heartbeat answers; `None` when
    /// `CHATSTORE_CHROMA_BIN` is not set (see [`require_env`]).
    ///
    /// [`require_env`]: crate::require_env
    pub async fn start(path: &Path) -> Option<PrivateChroma> {
        let bin = crate::require_env("CHATSTORE_CHROMA_BIN")?;
        let port = crate::free_port();
        let child = Command::new(bin)
            .args(["run", "--path"])
            .arg(path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ANONYMIZED_TELEMETRY", "False")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start chroma run: {e}"));
        let mut server = PrivateChroma {
            child: Some(child),
            port,
            path: path.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !server.answers().await {
            if Instant::now() > deadline {
                server.stop();
                panic!(
                    "the private Chroma server did not answer on {}",
                    server.url()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(server)
    }

    /// Whether `GET /api/v2/heartbeat` answers 200.
    async fn answers(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let request = format!(
            "GET /api/v2/heartbeat HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.is_ok() && head.ends_with(b" 200")
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The folder it serves.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Kills the server (as a crash would) and waits for it to end.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateChroma {
    fn drop(&mut self) {
        self.stop();
    }
}
