//! `chatstore load` with real replica processes on one database (SQLite file, PostgreSQL
//! directly and through PgBouncer, PocketBase): every acknowledged write is there exactly once
//! and the invariants hold. Then the same with a fault during the run, on servers of the
//! test's own (PostgreSQL with its durable defaults): a fast and an immediate restart, every
//! client connection terminated, the network paused, PocketBase killed and started again.
//! A few seconds each; longer runs by hand (`chatstore load --help`).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chatstore_testkit::{
    FaultProxy, POCKETBASE_EMAIL, POCKETBASE_PASSWORD, PrivatePocketBase, PrivatePostgres,
    Shutdown, drop_postgres_database, fresh_postgres_database, fresh_postgres_database_behind,
    require_env,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_chatstore");

/// The error kinds a call may answer while a server is down or unreachable: retryable
/// (`Unavailable`), or a write that lost a race with another replica's (`Conflict`).
const FAULT_KINDS: [&str; 2] = ["Unavailable", "Conflict"];

fn folder() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chatstore-load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn load_command(dir: &std::path::Path, url: &str, replicas: u32, seconds: u32) -> Command {
    let mut c = Command::new(BIN);
    c.args(["load", "--database-url", url, "--json", "--clients", "2"])
        .args(["--replicas", &replicas.to_string()])
        .args(["--seconds", &seconds.to_string()])
        .current_dir(dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("CHATSTORE_VECTOR_URL")
        .env("CHATSTORE_UPLOAD_DIR", dir.join("uploads"));
    if let (Ok(email), Ok(password)) = (
        std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
        std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
    ) {
        c.env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", email)
            .env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", password);
    }
    c
}

/// The run's JSON report, after checking that it exited 0 with no invariant broken and every
/// operation of the mix succeeding at least once.
fn report(out: &Output, ops: &[&str]) -> Value {
    let show = || {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(out.status.success(), "{}", show());
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(
        report["acknowledged_messages"].as_u64().unwrap_or(0) > 0,
        "{}",
        show()
    );
    assert_eq!(
        report["invariant_violations"],
        serde_json::json!([]),
        "{}",
        show()
    );
    for op in ops {
        assert!(
            report["operations"][op]["count"].as_u64().unwrap_or(0) > 0,
            "{op} never succeeded: {report}"
        );
    }
    report
}

const SQL_OPS: [&str; 5] = [
    "upsert message",
    "create chat",
    "tag change",
    "list chats",
    "put file",
];

/// Every error the run counted is of a kind a fault may cause.
fn only_fault_errors(report: &Value) {
    for (key, n) in report["errors"].as_object().into_iter().flatten() {
        let kind = key.rsplit(": ").next().unwrap_or_default();
        assert!(
            FAULT_KINDS.contains(&kind),
            "{n} calls failed with {key}, not a fault's error: {report}"
        );
    }
}

/// Three replica processes on one SQLite file keep every invariant and report per operation.
#[test]
fn three_replicas_on_one_sqlite_file_keep_every_invariant() {
    let dir = folder();
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    let out = load_command(&dir, &url, 3, 2)
        .output()
        .expect("the chatstore binary runs");
    let report = report(&out, &SQL_OPS);
    assert_eq!(report["replicas"], 3);
    only_fault_errors(&report);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three replicas on one PostgreSQL database, connected directly.
#[tokio::test]
async fn three_replicas_on_one_postgres_keep_every_invariant() {
    let Some(server) = require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let url = fresh_postgres_database(&server).await;
    let dir = folder();
    let out = load_command(&dir, &url, 3, 2).output().expect("runs");
    let report = report(
        &out,
        &[&SQL_OPS[..], &["insert vector", "search vectors"]].concat(),
    );
    only_fault_errors(&report);
    drop_postgres_database(&server, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three replicas on one PostgreSQL database through PgBouncer in transaction pooling mode,
/// vectors included (unnamed statements inside transactions, as behind any pooler).
#[tokio::test]
async fn three_replicas_through_pgbouncer_keep_every_invariant() {
    let Some(server) = require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let Some(bouncer) = require_env("CHATSTORE_TEST_PGBOUNCER_URL") else {
        return;
    };
    let (direct, url) = fresh_postgres_database_behind(&server, &bouncer).await;
    let dir = folder();
    let out = load_command(&dir, &url, 3, 2).output().expect("runs");
    let report = report(
        &out,
        &[&SQL_OPS[..], &["insert vector", "search vectors"]].concat(),
    );
    only_fault_errors(&report);
    drop_postgres_database(&server, &direct).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two replicas on one PocketBase (collections of the test's own prefix).
#[test]
fn two_replicas_on_one_pocketbase_keep_every_invariant() {
    let Some(pb) = require_env("CHATSTORE_TEST_POCKETBASE_URL") else {
        return;
    };
    let collections = common::PocketBasePrefix::new(&pb, "l");
    let url = collections.url.clone();
    let dir = folder();
    let out = load_command(&dir, &url, 2, 2).output().expect("runs");
    let report = report(&out, &SQL_OPS);
    only_fault_errors(&report);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A load run on a server of the test's own (`url`) with `fault` run after two seconds: the run keeps
/// every invariant, calls fail only as a fault makes them fail, and they all succeed again.
fn survives(url: &str, fault: &str) -> Value {
    let dir = folder();
    let out = load_command(&dir, url, 2, 10)
        .args(["--fault", fault, "--fault-at", "2"])
        .output()
        .expect("runs");
    let report = report(&out, &SQL_OPS);
    only_fault_errors(&report);
    let f = &report["fault"];
    assert_eq!(f["succeeded"], true, "the fault did not run: {report}");
    assert!(
        f["recovery_seconds"].as_f64().is_some(),
        "calls never succeeded again after the fault: {report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    report
}

#[test]
fn a_fast_postgres_restart_during_load_loses_nothing() {
    let Some(server) = PrivatePostgres::start() else {
        return;
    };
    let url = server.url();
    let report = survives(&url, &server.restart_command(Shutdown::Fast));
    eprintln!("fast restart: {}", report["fault"]);
}

#[test]
fn an_immediate_postgres_restart_during_load_loses_nothing() {
    let Some(server) = PrivatePostgres::start() else {
        return;
    };
    let url = server.url();
    let report = survives(&url, &server.restart_command(Shutdown::Immediate));
    assert!(
        report["fault"]["failed_calls"].as_u64().unwrap_or(0) > 0,
        "an immediate restart under load failed no call, so it did not happen under load: {report}"
    );
    eprintln!("immediate restart: {}", report["fault"]);
}

#[test]
fn terminated_connections_during_load_lose_nothing() {
    let Some(server) = PrivatePostgres::start() else {
        return;
    };
    let url = server.url();
    let report = survives(&url, &server.terminate_command());
    eprintln!("terminated connections: {}", report["fault"]);
}

/// The network to PostgreSQL stalls for three seconds mid-run (a proxy stops forwarding
/// bytes), then every connection through it is reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_network_during_load_loses_nothing() {
    let Some(server) = require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let direct = fresh_postgres_database(&server).await;
    let target = direct
        .trim_start_matches("postgres://")
        .split('/')
        .next()
        .and_then(|authority| authority.rsplit('@').next())
        .expect("host:port")
        .to_owned();
    let proxy = FaultProxy::start(&target).await.expect("proxy");
    let url = direct.replacen(&target, &format!("127.0.0.1:{}", proxy.port()), 1);
    let dir = folder();
    let mut child = load_command(&dir, &url, 2, 8)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    wait_for_replicas(&mut child);
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.reset();
    proxy.resume();
    let out = tokio::task::spawn_blocking(move || {
        let out = child.wait_with_output();
        out.expect("the load run ends")
    })
    .await
    .expect("waited");
    let report = report(&out, &SQL_OPS);
    only_fault_errors(&report);
    drop(proxy);
    drop_postgres_database(&server, &direct).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether process `pid` has started a child process (read from `/proc`).
fn has_children(pid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
            // `pid (comm) state ppid ...`; the command name may hold spaces and parentheses.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split(' ').nth(1))
                .is_some_and(|ppid| ppid == pid.to_string())
        })
    })
}

/// Waits until the load run `child` has started its replica processes, after its set-up (a
/// user and the shared chats), so that a fault lands in the run and not in the set-up on a slow
/// machine. A run that ended in its set-up returns at once; its report shows why.
fn wait_for_replicas(child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !has_children(child.id()) && matches!(child.try_wait(), Ok(None)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the load run started no replica within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PocketBase killed (SIGKILL) two seconds into a run and started again a second later.
#[test]
fn pocketbase_killed_during_load_loses_nothing() {
    let Some(mut pb) = PrivatePocketBase::start() else {
        return;
    };
    let url = pb.store_url();
    let dir = folder();
    let mut child = load_command(&dir, &url, 2, 8)
        .env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", POCKETBASE_EMAIL)
        .env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", POCKETBASE_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    wait_for_replicas(&mut child);
    std::thread::sleep(Duration::from_secs(2));
    pb.kill();
    std::thread::sleep(Duration::from_secs(1));
    pb.start_again();
    let out = child.wait_with_output().expect("the load run ends");
    let report = report(&out, &SQL_OPS);
    only_fault_errors(&report);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The command lines of the processes `pid` started (from `/proc`).
fn children_cmdlines(pid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| {
            std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|stat| {
                stat.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1))
                    .is_some_and(|ppid| ppid == pid.to_string())
            })
        })
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect()
}

/// The store's URL, password included, is on no replica's command line (`ps` shows those to
/// every user of the machine): the replicas get it through their environment.
#[tokio::test]
async fn replicas_get_the_database_url_out_of_sight_of_ps() {
    let Some(server) = require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let url = fresh_postgres_database(&server).await;
    let dir = folder();
    let mut child = load_command(&dir, &url, 2, 3)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    wait_for_replicas(&mut child);
    let cmdlines = children_cmdlines(child.id());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("ends"))
        .await
        .expect("waited");
    report(&out, &SQL_OPS);
    assert!(
        cmdlines.iter().any(|c| c.contains("load-worker")),
        "the replicas were seen: {cmdlines:?}"
    );
    for cmdline in &cmdlines {
        assert!(!cmdline.contains(&url), "{cmdline}");
        assert!(!cmdline.contains("--database-url"), "{cmdline}");
    }
    drop_postgres_database(&server, &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `load` finds its store as every command does: Open WebUI's `DATABASE_URL` (a SQLAlchemy
/// URL, three slashes before a relative path) is accepted, for the replicas too.
#[test]
fn load_reads_open_webuis_database_url() {
    let dir = folder();
    let mut command = Command::new(BIN);
    command
        .args(["load", "--json", "--clients", "1", "--replicas", "2"])
        .args(["--seconds", "1"])
        .current_dir(&dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("CHATSTORE_VECTOR_URL")
        .env("DATABASE_URL", "sqlite:///webui.db")
        .env("CHATSTORE_UPLOAD_DIR", dir.join("uploads"));
    let out = command.output().expect("runs");
    report(&out, &[]);
    assert!(dir.join("webui.db").is_file(), "the relative path is used");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fault command that fails, or a fault the calls never recover from within the run,
/// makes the run exit non-zero with one `error:` line saying so; the report says
/// "not recovered" instead of a recovery after 0 s.
#[test]
fn a_failed_or_unrecovered_fault_fails_the_run() {
    let dir = folder();
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    let out = load_command(&dir, &url, 1, 2)
        .args(["--fault", "exit 3", "--fault-at", "0.5"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["fault"]["succeeded"], false, "{report}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("`exit 3` failed"),
        "{stderr}"
    );

    // The fault outlasts the run: no call succeeds after it ends.
    let out = Command::new(BIN)
        .args(["load", "--database-url", &url, "--clients", "1"])
        .args(["--replicas", "1", "--seconds", "1"])
        .args(["--fault", "sleep 3", "--fault-at", "0"])
        .current_dir(&dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env("CHATSTORE_UPLOAD_DIR", dir.join("uploads"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}{stderr}");
    assert!(text.contains("not recovered within the run"), "{text}");
    assert!(!text.contains("succeed again"), "{text}");
    assert!(stderr.contains("not recovered"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
