//! Fresh databases on a shared test server, and private PostgreSQL servers for fault tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{AssertSqlSafe, Connection};

/// `url` with its database (the path) replaced by `database`; user, password, host, port and
/// query parameters (`?sslmode=require`) are kept.
pub fn with_database(url: &str, database: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_path(&format!("/{database}"));
            parsed.to_string()
        }
        Err(e) => panic!("test server URL {url:?} does not parse: {e}"),
    }
}

/// A new, empty database on the server at `server_url` (see [`fresh_postgres_database`]) and
/// the same database reached through the pooler at `pooler_url` (PgBouncer, which serves every
/// database of its server under the same name): `(direct, pooled)`.
pub async fn fresh_postgres_database_behind(
    server_url: &str,
    pooler_url: &str,
) -> (String, String) {
    let direct = fresh_postgres_database(server_url).await;
    let pooled = with_database(pooler_url, &database_name(&direct));
    (direct, pooled)
}

/// The database a PostgreSQL URL names (its path).
pub fn database_name(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments()?.next().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| panic!("the URL {url:?} names no database"))
}

/// How many of the newest test databases (`t_*`) [`fresh_postgres_database`] keeps; older ones
/// nobody is connected to are dropped, so a whole test run stays within a few GB of disk
/// (an empty database with Open WebUI's schema takes about 10 MB).
pub const KEEP_TEST_DATABASES: i64 = 300;

const OLD_TEST_DATABASES: &str = "SELECT d.datname::text FROM pg_database d \
     WHERE d.datname LIKE 't\\_%' \
     AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) \
     AND d.oid < (SELECT min(oid) FROM (SELECT oid FROM pg_database WHERE datname LIKE 't\\_%' \
                  ORDER BY oid DESC LIMIT $1) newest)";

/// Creates a new, empty database `t_<uuid>` on the server at `server_url` and returns its URL.
/// Drops test databases older than the newest [`KEEP_TEST_DATABASES`] that have no session.
pub async fn fresh_postgres_database(server_url: &str) -> String {
    fresh_postgres_database_from(server_url, "template1").await
}

/// [`fresh_postgres_database`] copied from another template database: `template0` has none of
/// what an installation added to `template1` (such as an extension created there).
pub async fn fresh_postgres_database_from(server_url: &str, template: &str) -> String {
    assert!(
        !template.is_empty()
            && template
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "template database name {template:?} is not a plain identifier"
    );
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(server_url)
        .await
        .unwrap_or_else(|e| panic!("connect to the test PostgreSQL server: {e}"));
    // The name is a generated uuid, the template a checked identifier: not input.
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {template}"
    )))
    .execute(&mut admin)
    .await
    .unwrap_or_else(|e| panic!("create a test database: {e}"));
    let old: Vec<String> = sqlx::query_scalar(OLD_TEST_DATABASES)
        .bind(KEEP_TEST_DATABASES)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
    for db in old {
        if db.starts_with("t_") && db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // Without FORCE: a database someone connected to meanwhile stays.
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&mut admin)
                .await;
        }
    }
    let _ = admin.close().await;
    with_database(server_url, &name)
}

/// Drops a database made by [`fresh_postgres_database`] (its URL), closing its sessions;
/// best effort: a test that ends early leaves it to the server's own clean-up (`services.sh
/// stop` removes the whole server).
pub async fn drop_postgres_database(server_url: &str, database_url: &str) {
    let Some(name) = url::Url::parse(database_url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|n| {
            n.starts_with("t_") && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    else {
        return;
    };
    if let Ok(mut admin) = sqlx::PgConnection::connect(server_url).await {
        // The name is one of ours (checked above), not input.
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

/// How a [`PrivatePostgres`] is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// `pg_ctl stop -m fast`: sessions are terminated (SQLSTATE 57P01), a checkpoint is written.
    Fast,
    /// `pg_ctl stop -m immediate`: the server quits at once; recovery replays the WAL at start.
    Immediate,
}

/// A PostgreSQL server of the test's own: its own data folder and port, PostgreSQL's durable
/// defaults (fsync, synchronous_commit and full_page_writes on), stopped and removed on drop.
/// Needs `CHATSTORE_PG_BIN` (set by `scripts/services.sh`); as root it runs as `nobody`.
#[derive(Debug)]
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as `nobody` when root (PostgreSQL refuses root).
fn pg_command(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(program);
        c.current_dir("/");
        c
    } else {
        Command::new(program)
    }
}

impl PrivatePostgres {
    /// Starts a new server, or `None` when `CHATSTORE_PG_BIN` is not set (see [`require_env`]).
    ///
    /// [`require_env`]: crate::require_env
    pub fn start() -> Option<PrivatePostgres> {
        let bin = PathBuf::from(crate::require_env("CHATSTORE_PG_BIN")?);
        let dir = std::env::temp_dir().join(format!(
            "chatstore-private-pg-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir:?}: {e}"));
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(&dir)
                .status();
            assert!(status.is_ok_and(|s| s.success()), "chown {dir:?} to nobody");
        }
        let data = dir.join("data");
        let out = pg_command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .output()
            .unwrap_or_else(|e| panic!("run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let server = PrivatePostgres {
            bin,
            dir,
            port: crate::free_port(),
        };
        server.launch();
        Some(server)
    }

    /// The URL of database `postgres` on this server.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn launch(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            data.display()
        );
        let out = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap_or_else(|e| panic!("run pg_ctl start: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server the given way.
    pub fn stop(&self, how: Shutdown) {
        let mode = match how {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        };
        let _ = pg_command(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", mode, "-w", "-t", "60", "stop"])
            .output();
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&self) {
        self.launch();
    }

    /// A shell command that restarts this server the given way (for `chatstore load --fault`):
    /// `pg_ctl restart`, as `nobody` when root, keeping the port, socket folder and log.
    pub fn restart_command(&self, how: Shutdown) -> String {
        let mode = match how {
            Shutdown::Fast => "fast",
            Shutdown::Immediate => "immediate",
        };
        format!(
            "{}{} -D {} -l {} -m {mode} -w -t 60 restart",
            if is_root() {
                "runuser -u nobody -- "
            } else {
                ""
            },
            quote(&self.bin.join("pg_ctl")),
            quote(&self.dir.join("data")),
            quote(&self.dir.join("postgres.log")),
        )
    }

    /// A shell command that ends every client connection to this server with
    /// `pg_terminate_backend` (for `chatstore load --fault`).
    pub fn terminate_command(&self) -> String {
        format!(
            "{} -h 127.0.0.1 -p {} -U postgres -d postgres -Atqc \"SELECT count(pg_terminate_backend(pid)) \
             FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'\"",
            quote(&self.bin.join("psql")),
            self.port
        )
    }

    /// Stops the server the given way and starts it again; returns how long it was down.
    pub fn restart(&self, how: Shutdown) -> Duration {
        let t = Instant::now();
        self.stop(how);
        self.launch();
        t.elapsed()
    }
}

/// A path in single quotes for `sh -c`.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop(Shutdown::Immediate);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://u@h:5/chatstore", "t_1"),
            "postgres://u@h:5/t_1"
        );
        assert_eq!(
            with_database("postgres://u:p%40w@h:5/db?sslmode=require&x=1", "t_1"),
            "postgres://u:p%40w@h:5/t_1?sslmode=require&x=1"
        );
        assert_eq!(with_database("postgres://u@h", "t_1"), "postgres://u@h/t_1");
    }
}
