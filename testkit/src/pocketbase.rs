//! PocketBase servers of a test's own, for fault tests: stopped (SIGKILL, as a crash would) and
//! started again on the same data folder and port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser of every [`PrivatePocketBase`].
pub const POCKETBASE_EMAIL: &str = "faults@chatstore.test";
/// Its password.
pub const POCKETBASE_PASSWORD: &str = "Faults-0123456789";

/// A PocketBase server of the test's own: its own data folder (removed on drop) and port,
/// chatstore's hooks, a superuser ([`POCKETBASE_EMAIL`]). Needs `CHATSTORE_TEST_POCKETBASE_BIN`
/// (set by `scripts/services.sh`). The shared test server is never touched.
#[derive(Debug)]
pub struct PrivatePocketBase {
    bin: PathBuf,
    dir: PathBuf,
    hooks: PathBuf,
    port: u16,
    child: Option<Child>,
}

/// chatstore's PocketBase hooks (`adapter-pocketbase/pb_hooks`).
pub fn hooks_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapter-pocketbase/pb_hooks")
}

impl PrivatePocketBase {
    /// A started server, or `None` when `CHATSTORE_TEST_POCKETBASE_BIN` is not set (outside
    /// CI; under CI that fails, see [`crate::require_env`]).
    pub fn start() -> Option<PrivatePocketBase> {
        Self::start_with_hooks(&hooks_dir())
    }

    /// [`start`](Self::start), serving the hooks of `hooks` (an operator's folder).
    pub fn start_with_hooks(hooks: &Path) -> Option<PrivatePocketBase> {
        let bin = PathBuf::from(crate::require_env("CHATSTORE_TEST_POCKETBASE_BIN")?);
        let dir = std::env::temp_dir()
            .join("chatstore-private-pocketbase")
            .join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        let status = Command::new(&bin)
            .args([
                "superuser",
                "upsert",
                POCKETBASE_EMAIL,
                POCKETBASE_PASSWORD,
                "--dir",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("run pocketbase superuser upsert: {e}"));
        assert!(status.success(), "pocketbase superuser upsert failed");
        let mut server = PrivatePocketBase {
            bin,
            dir,
            hooks: hooks.to_owned(),
            port: crate::free_port(),
            child: None,
        };
        server.start_again();
        Some(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry URL, superuser included (percent-encoded).
    pub fn store_url(&self) -> String {
        format!(
            "pocketbase://{}:{POCKETBASE_PASSWORD}@127.0.0.1:{}",
            POCKETBASE_EMAIL.replace('@', "%40"),
            self.port
        )
    }

    /// The data folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts the process (again) and waits until it answers `/api/health` (30 s at most).
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            return;
        }
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("pocketbase.log"))
            .unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(&self.bin)
            .arg("serve")
            .arg("--http")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--hooksDir")
            .arg(&self.hooks)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start pocketbase: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.healthy() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the private PocketBase did not answer /api/health within 30 s");
    }

    /// Whether the server answers `/api/health` with 200.
    pub fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }

    /// Kills the process (SIGKILL, as a crash would) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivatePocketBase {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
