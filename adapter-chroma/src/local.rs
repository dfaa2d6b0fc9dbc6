//! A private Chroma server on a copy of a Chroma folder (Open WebUI's `DATA_DIR/vector_db`).
//!
//! Open WebUI's embedded Chroma keeps its vectors in per-segment HNSW files next to
//! `chroma.sqlite3`, whose write-ahead log Chroma 1.5 purges: the records can only be read
//! through Chroma itself. chatstore copies the folder to a temporary one (the original is never
//! opened for writing, so a newer Chroma cannot upgrade it and a crash cannot damage it), runs
//! `chroma run` on the copy on a free loopback port, and on drop stops that server and deletes
//! the copy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::{Error, Result};

/// How long the private server may take to answer its first heartbeat.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `chroma run` of this process on a copy of a folder; stopped and deleted on drop.
#[derive(Debug)]
pub struct LocalChroma {
    child: Mutex<Option<Child>>,
    work: PathBuf,
    url: String,
}

impl LocalChroma {
    /// Copies `folder` and starts Chroma on the copy. The `chroma` program is
    /// `CHATSTORE_CHROMA_BIN` when set, else `chroma` on the `PATH` (`pip install
    /// chromadb==1.5.9` provides it).
    pub async fn start(folder: &Path) -> Result<LocalChroma> {
        if !folder.join("chroma.sqlite3").is_file() {
            return Err(Error::invalid(format!(
                "{} is not a Chroma folder (it has no chroma.sqlite3); Open WebUI keeps it in \
                 DATA_DIR/vector_db",
                folder.display()
            )));
        }
        let bin = std::env::var("CHATSTORE_CHROMA_BIN")
            .ok()
            .filter(|b| !b.trim().is_empty())
            .unwrap_or_else(|| "chroma".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let work =
            std::env::temp_dir().join(format!("chatstore-chroma-{}-{nanos}", std::process::id()));
        let copy = work.join("vector_db");
        let cleanup = |e: Error| {
            let _ = std::fs::remove_dir_all(&work);
            e
        };
        copy_dir(folder, &copy).map_err(|e| {
            cleanup(Error::backend(
                format!("copying {} to {}", folder.display(), copy.display()),
                e,
            ))
        })?;
        let port = free_port().map_err(|e| cleanup(Error::backend("finding a free port", e)))?;
        let log = std::fs::File::create(work.join("chroma.log"))
            .map_err(|e| cleanup(Error::backend("creating the Chroma log file", e)))?;
        let err_log = log
            .try_clone()
            .map_err(|e| cleanup(Error::backend("creating the Chroma log file", e)))?;
        let child = Command::new(&bin)
            .arg("run")
            .arg("--path")
            .arg(&copy)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ANONYMIZED_TELEMETRY", "False")
            // Warnings and errors only: at its default level Chroma logs every request (three
            // or four lines each), work and disk a copy of a large folder does not need.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| {
                cleanup(Error::invalid(format!(
                    "cannot run {bin:?} ({e}); install Chroma (pip install chromadb==1.5.9) or \
                     set CHATSTORE_CHROMA_BIN to its `chroma` program"
                )))
            })?;
        let server = LocalChroma {
            child: Mutex::new(Some(child)),
            work,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT` of the private server.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn wait_ready(&self) -> Result<()> {
        let http = reqwest::Client::new();
        let heartbeat = format!("{}/api/v2/heartbeat", self.url);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(mut guard) = self.child.lock()
                && let Some(child) = guard.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = std::fs::read_to_string(self.work.join("chroma.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(15).collect::<Vec<_>>().join("\n");
                return Err(Error::backend_msg(format!(
                    "the private Chroma server exited ({status}) before answering:\n{tail}"
                )));
            }
            if let Ok(resp) = http.get(&heartbeat).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::unavailable(
            format!("the private Chroma server on {} did not answer", self.url),
            "timeout",
        ))
    }
}

impl Drop for LocalChroma {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock()
            && let Some(mut child) = guard.take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
