//! The `chatstore` binary as a user runs it: the demo on the embedded default, `inspect` of
//! what it wrote, and one clear error line with a non-zero exit for bad input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn chatstore(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(args)
        .current_dir(dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("the chatstore binary runs")
}

/// The one `error:` line of a command that failed, as a user sees it.
fn one_error_line(out: &Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} must fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    err
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("chatstore-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn demo_writes_an_open_webui_sqlite_file_and_inspect_reads_it_back() {
    let dir = temp_dir("demo");
    let out = chatstore(&dir, &["demo"]);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Borrow checker puzzles"), "{text}");
    assert!(text.contains("Async traits in 2026"));
    assert!(
        !text.contains("Sourdough schedule"),
        "the tag filter keeps only work+rust chats"
    );
    assert!(
        text.contains("rust-book.md"),
        "the vector search answers from the demo chunks"
    );
    assert!(dir.join("chatstore-demo.db").is_file());

    let again = chatstore(&dir, &["demo"]);
    assert!(
        again.status.success(),
        "a second run replaces the demo data"
    );

    let out = chatstore(
        &dir,
        &[
            "inspect",
            "--database-url",
            "sqlite://chatstore-demo.db",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("inspect --json prints JSON");
    assert_eq!(doc["schema_version"], "0bd252b206fb");
    assert_eq!(doc["counts"]["users"], 2);
    assert_eq!(doc["counts"]["chats"], 5);
    assert_eq!(doc["counts"]["messages"], 12);
    assert_eq!(doc["counts"]["files"], 1);
    let ada = doc["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["email"] == "ada@example.com"))
        .expect("ada is listed");
    let work = ada["tags"]
        .as_array()
        .and_then(|tags| tags.iter().find(|t| t["id"] == "work"))
        .expect("ada has the work tag");
    assert_eq!(work["chats"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspect_of_a_missing_file_is_one_clear_line_and_a_failure() {
    let dir = temp_dir("missing");
    let out = chatstore(&dir, &["inspect", "--database-url", "sqlite://nowhere.db"]);
    let err = one_error_line(&out, "inspect of a missing file");
    assert!(err.contains("nowhere.db"), "{err}");
    assert!(
        !dir.join("nowhere.db").exists(),
        "inspect never creates a database"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bridge serves a deployment's data: without a store it refuses to start instead of
/// serving an empty demo file that never sends an event.
#[test]
fn the_bridge_without_a_store_refuses_to_start() {
    let dir = temp_dir("bridge-no-url");
    let out = chatstore(&dir, &["bridge", "--listen", "127.0.0.1:0"]);
    let err = one_error_line(&out, "bridge without a store");
    assert!(err.contains("--database-url"), "{err}");
    assert!(!dir.join("chatstore-demo.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Durations too large for the clock are refused with one line, not a panic.
#[test]
fn out_of_range_seconds_fail_with_one_line() {
    let dir = temp_dir("bad-seconds");
    for args in [
        &["bench", "--max-seconds", "1e20"][..],
        &["bench", "--max-seconds", "inf"][..],
        &[
            "load",
            "--database-url",
            "memory",
            "--fault",
            "true",
            "--fault-at",
            "inf",
        ][..],
        &[
            "load",
            "--database-url",
            "memory",
            "--fault",
            "true",
            "--fault-at",
            "1e300",
        ][..],
        &[
            "load",
            "--database-url",
            "memory",
            "--seconds",
            "18446744073709551615",
        ][..],
    ] {
        let err = one_error_line(&chatstore(&dir, args), &format!("{args:?}"));
        assert!(err.contains("seconds"), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_urls_and_unreachable_servers_fail_with_one_line() {
    let dir = temp_dir("bad-url");
    for url in [
        "mysql://x/y",
        "postgres://nobody:hunter2@127.0.0.1:1/db",
        "pocketbase://a%40b.c:hunter2@127.0.0.1:1",
        "pocketbase://",
        "webui.db",
    ] {
        for command in ["demo", "inspect"] {
            let out = chatstore(&dir, &[command, "--database-url", url]);
            let err = one_error_line(&out, &format!("{command} {url}"));
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_and_inspect_work_on_postgres_with_pgvector() {
    let Some(base) = chatstore_contract::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = rt.block_on(chatstore_testkit::fresh_postgres_database(&base));
    let dir = temp_dir("pg");
    let out = chatstore(&dir, &["demo", "--database-url", &url]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rust-book.md"),
        "pgvector answers the demo search: {text}"
    );
    let out = chatstore(&dir, &["inspect", "--database-url", &url, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["counts"]["chats"], 5);
    assert!(
        !doc["database"]
            .as_str()
            .unwrap_or_default()
            .contains("postgres@"),
        "no credentials shown"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_and_inspect_work_on_pocketbase() {
    let Some(base) = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL") else {
        return;
    };
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email set");
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD").expect("password set");
    let host = base.trim_start_matches("http://").trim_end_matches('/');
    // Collections of its own, so parallel tests on the server do not meet.
    let collections = common::PocketBasePrefix::new(&base, "cli");
    let url = collections.url.clone();
    let dir = temp_dir("pocketbase");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chatstore"))
            .args(args)
            .current_dir(&dir)
            .env_remove("CHATSTORE_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("CHATSTORE_VECTOR_URL")
            .env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", &email)
            .env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", &password)
            .output()
            .expect("the chatstore binary runs")
    };
    let out = run(&["demo", "--database-url", &url, "--vectors-url", "memory"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Borrow checker puzzles"), "{text}");
    assert!(
        text.contains("rust-book.md"),
        "vectors from --vectors-url: {text}"
    );
    assert!(!text.contains(&password));

    let out = run(&["inspect", "--database-url", &url, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["counts"]["users"], 2);
    assert_eq!(doc["counts"]["chats"], 5);
    assert_eq!(doc["counts"]["messages"], 12);
    assert_eq!(doc["counts"]["files"], 1);

    // The superuser may be written into the URL instead; a wrong password is one line that
    // does not show it.
    let wrong = format!(
        "pocketbase://{}:Wr0ng-hunter2@{host}",
        email.replace('@', "%40")
    );
    let out = chatstore(&dir, &["inspect", "--database-url", &wrong]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && !err.contains("Wr0ng-hunter2"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A warning a store logs while opening (PostgreSQL through PgBouncer without a direct URL:
/// no change feed) reaches stderr, from `load` and its replicas alike, and stdout stays the
/// command's JSON alone.
#[test]
fn warnings_go_to_stderr_and_leave_json_stdout_clean() {
    let Some(server) = chatstore_contract::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    let Some(bouncer) = chatstore_contract::require_env("CHATSTORE_TEST_PGBOUNCER_URL") else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (direct, pooled) = rt.block_on(chatstore_testkit::fresh_postgres_database_behind(
        &server, &bouncer,
    ));
    let dir = temp_dir("warnings");
    let out = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(["load", "--database-url", &pooled, "--json"])
        .args(["--replicas", "2", "--clients", "1", "--seconds", "1"])
        .current_dir(&dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("CHATSTORE_VECTOR_URL")
        .env_remove("CHATSTORE_POSTGRES_DIRECT_URL")
        .env_remove("RUST_LOG")
        .env("CHATSTORE_UPLOAD_DIR", dir.join("uploads"))
        .output()
        .expect("the chatstore binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings = stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("CHATSTORE_POSTGRES_DIRECT_URL"))
        .count();
    assert!(
        warnings >= 3,
        "load and both replicas warn that the pooler leaves no change feed: {stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout holds only the JSON report");
    assert_eq!(report["replicas"], 2);
    rt.block_on(chatstore_testkit::drop_postgres_database(&server, &direct));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Open WebUI's `VECTOR_DB` naming another vector store than pgvector (its vectors are in
/// Chroma) without a vector URL: every command opening the deployment's store refuses with
/// one line naming the URL to set, instead of writing vectors into the app database.
#[test]
fn a_vector_db_elsewhere_without_a_vector_url_is_refused() {
    let dir = temp_dir("vector-db");
    let url = format!("sqlite://{}", dir.join("x.db").display());
    for args in [
        &["demo", "--database-url", &url][..],
        &["files", "ls", "--database-url", &url][..],
        &["load", "--database-url", &url, "--seconds", "1"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_chatstore"))
            .args(args)
            .current_dir(&dir)
            .env_remove("CHATSTORE_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .env_remove("CHATSTORE_VECTOR_URL")
            .env_remove("CHATSTORE_PGVECTOR_URL")
            .env_remove("PGVECTOR_DB_URL")
            .env_remove("CHATSTORE_VECTOR_DB")
            .env("VECTOR_DB", "chroma")
            .output()
            .expect("the chatstore binary runs");
        let err = one_error_line(&out, &format!("{args:?} with VECTOR_DB=chroma"));
        assert!(err.contains("CHATSTORE_VECTOR_URL"), "{args:?}: {err}");
    }
    assert!(!dir.join("x.db").exists(), "nothing was written");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `migrate` and `verify` name their ends' vectors with flags: under `VECTOR_DB=chroma` an end
/// without one is opened with the store's own vectors and a warning names the flags.
#[test]
fn an_end_without_vectors_under_a_vector_db_elsewhere_is_warned_about() {
    let dir = temp_dir("vector-db-ends");
    let demo = chatstore(&dir, &["demo"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args(["verify", "--from", "sqlite://chatstore-demo.db"])
        .args(["--to", "sqlite://chatstore-demo.db", "--groups", "users"])
        .current_dir(&dir)
        .env_remove("CHATSTORE_VECTOR_URL")
        .env_remove("RUST_LOG")
        .env("VECTOR_DB", "chroma")
        .output()
        .expect("the chatstore binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARN") && stderr.contains("--from-vectors"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
