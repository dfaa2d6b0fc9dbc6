//! # chatstore-testkit
//!
//! What chatstore's tests share, in one place (a dev-dependency only):
//!
//! - [`require_env`]: a server handle from the environment with the one CI rule (unset locally:
//!   a loud skip; unset under `CI=true`: a failure);
//! - [`fresh_postgres_database`]: a new, empty database on a test server, its URL built with a
//!   real URL parser so `?sslmode=` and other parameters survive;
//! - [`FaultProxy`]: a TCP proxy in front of a server that can pause traffic and reset every
//!   connection, for network faults;
//! - [`PrivatePostgres`]: a PostgreSQL server of the test's own (own data folder, own port,
//!   PostgreSQL's durable defaults) that can be restarted fast or immediately;
//! - [`PrivatePocketBase`]: a PocketBase server of the test's own, killed and started again;
//! - [`PrivateChroma`]: `chroma run` on a folder of the test's choosing, killed on drop;
//! - [`scratch_folder`]: a folder of a test's own under the temp folder, earlier runs'
//!   leftovers removed;
//! - `TlsTerminator` (feature `tls`): TLS in front of a plain server, its certificate signed
//!   by a throwaway CA made at start, for testing `https` clients against the real server.
//!
//! ```no_run
//! # async fn demo() {
//! let Some(server) = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
//!     return;
//! };
//! let url = chatstore_testkit::fresh_postgres_database(&server).await;
//! # let _ = url;
//! # }
//! ```

mod chroma;
mod pocketbase;
mod postgres;
mod proxy;
#[cfg(feature = "tls")]
mod tls;

pub use chroma::PrivateChroma;
pub use pocketbase::{POCKETBASE_EMAIL, POCKETBASE_PASSWORD, PrivatePocketBase, hooks_dir};
pub use postgres::{
    PrivatePostgres, Shutdown, database_name, drop_postgres_database, fresh_postgres_database,
    fresh_postgres_database_behind, fresh_postgres_database_from, with_database,
};
pub use proxy::FaultProxy;
#[cfg(feature = "tls")]
pub use tls::TlsTerminator;

/// The value of a server variable such as `CHATSTORE_TEST_POSTGRES_URL`. Unset or empty:
/// `None` after a loud message, or a panic when `CI=true` (a missing server fails CI).
pub fn require_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            assert!(
                !in_ci(),
                "{name} is not set but CI=true: start the servers with `scripts/services.sh start` \
                 (scripts/test.sh does it) so this test runs"
            );
            eprintln!(
                "SKIPPED: {name} is not set, so this test did not run. \
                 Run `eval \"$(scripts/services.sh start)\"` first, or use scripts/test.sh."
            );
            None
        }
    }
}

/// Scratch folders older than this are left over from earlier runs.
const SCRATCH_KEPT: std::time::Duration = std::time::Duration::from_secs(3 * 60 * 60);

/// A new folder `KIND-<uuid>` under the system temp folder's `suite` folder, for a test's
/// files (SQLite databases, uploads, logs). The stores made there outlive the function that
/// made them, so nothing removes a test's folder when it ends; instead, the first call in a
/// process removes the suite's folders untouched for three hours (earlier runs' leftovers,
/// gigabytes after a few days of runs; no test of a run still going is that old).
pub fn scratch_folder(suite: &str, kind: &str) -> std::path::PathBuf {
    static SWEPT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let root = std::env::temp_dir().join(suite);
    if let Ok(mut swept) = SWEPT.lock()
        && !swept.iter().any(|s| s == suite)
    {
        swept.push(suite.to_owned());
        sweep(&root, SCRATCH_KEPT);
    }
    let dir = root.join(format!("{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create the test folder {}: {e}", dir.display()));
    dir
}

/// Removes the folders under `root` last changed more than `age` ago (best effort).
fn sweep(root: &std::path::Path, age: std::time::Duration) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|elapsed| elapsed > age);
        if old && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A loopback port nobody listens on right now, for a server a test starts itself.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// The URL of a loopback HTTP server that answers one request with `raw` (status line,
/// headers and body, as sent) and closes the connection: how a test gets an answer a real
/// server sends only when it dies mid-answer, such as a body shorter than its `Content-Length`.
pub fn answer_once(raw: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("no loopback port: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut request = [0u8; 8192];
            let _ = conn.read(&mut request);
            let _ = conn.write_all(raw.as_bytes());
        }
    });
    format!("http://{addr}/")
}

/// Whether this is a CI run (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
