//! A private Chroma server on a copy of a Chroma folder (Open WebUI's `DATA_DIR/vector_db`).
//!
//! Open WebUI's embedded Chroma keeps its vectors in per-segment HNSW files next to
//! `chroma.sqlite3`, whose write-ahead log Chroma 1.5 purges: the records can only be read
//! through Chroma itself. chatstore copies the folder to a temporary one (the original is never
//! opened for writing, so a newer Chroma cannot upgrade it and a crash cannot damage it), runs
//! `chroma run` on the copy on a free loopback port, and on drop stops that server and deletes
//! the copy. A process killed before its drop ran (SIGKILL, the out-of-memory killer, a
//! power cut) leaves both behind: the next start removes the copies of processes that no
//! longer run, and stops their servers (on Linux, where `/proc` tells which processes run).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::{Error, Result};

/// Work folders are `chatstore-chroma-{pid}-{nanos}` in the temporary folder.
const WORK_PREFIX: &str = "chatstore-chroma-";

/// The file in a work folder holding the process id of its `chroma run`.
const SERVER_PID: &str = "chroma.pid";

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
        sweep_leftovers(&std::env::temp_dir());
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
        // For the sweep of a later process, should this one be killed before it cleans up.
        if let Err(e) = std::fs::write(work.join(SERVER_PID), child.id().to_string()) {
            tracing::warn!(error = %e, "cannot record the private Chroma server's pid");
        }
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

/// Removes the work folders in `temp` of processes that no longer run, first stopping the
/// `chroma run` each recorded when it still runs on that folder (best effort: what cannot be
/// removed is logged and left). Linux only: elsewhere nothing tells a dead process's folder
/// from a running one's, so nothing is removed.
fn sweep_leftovers(temp: &Path) {
    let proc = Path::new("/proc");
    if !proc.join("self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(temp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if owner == std::process::id() || proc.join(owner.to_string()).exists() {
            continue;
        }
        let folder = entry.path();
        if let Some(server) = std::fs::read_to_string(folder.join(SERVER_PID))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            && serves(proc, server, &folder)
        {
            stop_orphan(server);
        }
        match std::fs::remove_dir_all(&folder) {
            Ok(()) => tracing::info!(
                folder = %folder.display(),
                "removed the Chroma copy of a chatstore process that ended without cleaning up"
            ),
            Err(e) => tracing::warn!(
                folder = %folder.display(),
                error = %e,
                "cannot remove the Chroma copy of an ended chatstore process"
            ),
        }
    }
}

/// Whether process `pid` runs and its command line names `folder` (a pid reused by another
/// program since is left alone).
fn serves(proc: &Path, pid: u32, folder: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(proc.join(pid.to_string()).join("cmdline")) else {
        return false;
    };
    let folder = folder.as_os_str().as_encoded_bytes();
    cmdline.windows(folder.len()).any(|w| w == folder)
}

/// Stops an orphaned `chroma run` with `kill` (its parent, which could have waited for it, is
/// gone) and gives it a moment to end.
fn stop_orphan(pid: u32) {
    let killed = Command::new("kill")
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match killed {
        Ok(status) if status.success() => {
            let gone = Instant::now() + Duration::from_secs(5);
            let alive = Path::new("/proc").join(pid.to_string());
            while alive.exists() && Instant::now() < gone {
                std::thread::sleep(Duration::from_millis(20));
            }
            tracing::info!(
                pid,
                "stopped the private Chroma server of an ended chatstore process"
            );
        }
        Ok(status) => tracing::warn!(pid, %status, "cannot stop an orphaned private Chroma server"),
        Err(e) => {
            tracing::warn!(pid, error = %e, "cannot run kill for an orphaned private Chroma server")
        }
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
