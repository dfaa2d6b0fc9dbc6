//! `chatstore migrate` on the real servers, run as the operator runs it (the binary):
//! Open WebUI-shaped rows (JSON nulls, millisecond timestamps, a legacy flat message list,
//! messages only in the blob, tags only in `meta`, a file on disk, other Open WebUI tables)
//! moved SQLite -> PostgreSQL -> SQLite and SQLite -> PocketBase -> SQLite and verified; a
//! run killed with SIGKILL at several points and resumed; a target server killed mid-run; bad
//! source rows set aside with their reasons. PostgreSQL and PocketBase come from
//! `scripts/services.sh` (`CHATSTORE_TEST_*`); without them those tests say so and pass, unless
//! CI=true.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chatstore_core::files::sha256_hex;
use chatstore_core::{NewChat, NewFile, NewMessage, NewUser};
use chatstore_sql::{SqlOptions, SqlStore};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection as _, Row as _};

const BIN: &str = env!("CARGO_BIN_EXE_chatstore");

/// Users (one with JSON nulls and an auth row with a password), chats of every shape, tag rows,
/// and rows of tables outside the aggregates.
const OWUI_ROWS: &str = r#"
INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, updated_at,
    created_at, oauth, info, settings, scim)
VALUES ('u1', 'Ada', 'Ada@Example.com', 'admin', '/user.png', 1700000300, 1700000200,
    1700000100, '{"sub":"oidc|1"}', 'null', 'null', 'null');
INSERT INTO "user" (id, name, email, role, profile_image_url, last_active_at, updated_at,
    created_at, info, settings)
VALUES ('u2', 'Bob', 'bob@example.com', 'user', '/user.png', 5, 5, 5,
    '{"location":"Paris"}', '{"ui":{"theme":"dark"}}');
INSERT INTO auth (id, email, password, active) VALUES ('u1', 'Ada@Example.com', '$2b$12$x', TRUE),
    ('u2', 'bob@example.com', '$2b$12$y', TRUE);
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, share_id, archived, pinned,
    meta, folder_id, tasks, last_read_at, current_message_id)
VALUES ('c1', 'u1', 'Trip to Zürich',
    '{"title":"Trip to Zürich","models":["llama3"],"history":{"messages":{"m1":{"id":"m1","parentId":null,"childrenIds":["m2"],"role":"user","content":"hi é","timestamp":1700000000123,"models":["llama3"]},"m2":{"id":"m2","parentId":"m1","childrenIds":[],"role":"assistant","content":[{"type":"text","text":"hello"}],"model":"llama3","done":true,"timestamp":1700000001,"usage":{"input_tokens":3}}},"currentId":"m2"},"timestamp":1700000000123}',
    1700000000, 1700000500, NULL, FALSE, FALSE, '{"tags":["travel","ideas"]}', NULL, 'null',
    1700000500, 'm2');
INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, output, model_id,
    files, sources, embeds, done, status_history, error, usage, created_at, updated_at,
    context_summary, meta)
VALUES
    ('c1-m1', 'c1', 'u1', 'user', NULL, '"hi é"', 'null', NULL, 'null', 'null', 'null', TRUE,
     'null', 'null', 'null', 1700000000123, 1700000000, NULL, 'null'),
    ('c1-m2', 'c1', 'u1', 'assistant', 'm1', '[{"type":"text","text":"hello"}]', 'null',
     'llama3', 'null', 'null', 'null', TRUE, 'null', 'null', '{"input_tokens":3}', 1700000001,
     1700000009, NULL, 'null');
INSERT INTO tag (id, name, user_id, meta) VALUES ('travel', 'Travel', 'u1', NULL),
    ('unused', 'Unused', 'u2', '{"color":"red"}');
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c2', 'u1', 'Old times',
    '{"title":"Old times","messages":[{"id":"a","role":"user","content":"question","timestamp":1600000000000},{"id":"b","parentId":"a","role":"assistant","content":"answer","timestamp":1600000001}]}',
    1600000000, 1600000001, FALSE, FALSE, '{}');
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c3', 'u1', 'Blob only',
    '{"title":"Blob only","history":{"messages":{"x":{"id":"x","parentId":null,"childrenIds":["y"],"role":"user","content":"one","timestamp":1650000000},"y":{"id":"y","parentId":"x","childrenIds":[],"role":"assistant","content":"two","timestamp":1650000005}},"currentId":"y"}}',
    1650000000, 1650000005, FALSE, TRUE, '{"tags":["ideas"]}');
INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
VALUES ('c4', 'u2', 'Internal', '{"title":"Internal"}', 1800000000, 1800000000, FALSE, FALSE,
    '{"internal":true,"tags":["travel"]}');
INSERT INTO folder (id, parent_id, user_id, name, items, meta, is_expanded, created_at, updated_at)
VALUES ('fo1', NULL, 'u1', 'Work', 'null', '{"icon":"x"}', FALSE, 1700000000, 1700000000);
INSERT INTO memory (id, user_id, content, updated_at, created_at)
VALUES ('me1', 'u1', 'likes tea', 1700000000, 1700000000);
"#;

fn env_or_skip(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "{name} is not set but CI=true");
            eprintln!("SKIPPED: {name} is not set (scripts/services.sh start sets it)");
            None
        }
    }
}

fn folder() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("chatstore-migrate-tests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).expect("temp folder");
    dir
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// Runs literal SQL on a database.
async fn exec(url: &str, sql: &str) {
    let sql = AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("test SQL");
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut c).await.expect("test SQL");
    }
}

/// The first column of the first row as text.
async fn text(url: &str, sql: &str) -> Option<String> {
    let sql = AssertSqlSafe(sql.to_owned());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
        let row = sqlx::query(sql)
            .fetch_optional(&mut c)
            .await
            .expect("query");
        row.and_then(|r| r.try_get::<Option<String>, _>(0).expect("text"))
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        let row = sqlx::query(sql)
            .fetch_optional(&mut c)
            .await
            .expect("query");
        row.and_then(|r| r.try_get::<Option<String>, _>(0).expect("text"))
    }
}

async fn count(url: &str, table: &str) -> i64 {
    let sql = AssertSqlSafe(format!("SELECT count(*) FROM \"{table}\""));
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .expect("count")
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut c)
            .await
            .expect("count")
    }
}

/// An Open WebUI SQLite database (rollback journal, as Open WebUI leaves it) with
/// [`OWUI_ROWS`], a file on disk, and `extra` more chats with messages.
async fn owui_sqlite(dir: &Path, extra: usize) -> String {
    let url = sqlite_url(dir, "webui.db");
    let store = SqlStore::connect(&url, SqlOptions::default().upload_dir(dir.join("uploads")))
        .await
        .expect("create the source");
    exec(&url, OWUI_ROWS).await;
    let s = store.store();
    let report = dir.join("owui-uploads");
    std::fs::create_dir_all(&report).expect("uploads");
    let path = report.join("f7_report.pdf");
    std::fs::write(&path, b"%PDF-1.7 ...").expect("upload");
    exec(
        &url,
        &format!(
            r#"INSERT INTO "file" (id, user_id, hash, filename, path, data, meta, created_at, updated_at)
               VALUES ('f7', 'u1', 'texthash', 'report.pdf', '{}',
               '{{"status":"completed"}}',
               '{{"name":"report.pdf","content_type":"application/pdf","size":12,"file_hash":"{}","collection_name":"file-f7"}}',
               1700000000, 1700000050)"#,
            path.display(),
            sha256_hex(b"%PDF-1.7 ...")
        ),
    )
    .await;
    for i in 0..extra {
        let user = format!("x{:03}", i % 7);
        if i < 7 {
            s.users
                .create(NewUser::new(format!("{user}@example.com"), "X").with_id(&user))
                .await
                .expect("user");
        }
        let id = format!("k{i:03}");
        let mut c = NewChat::new(&user, format!("chat {i}"))
            .with_id(&id)
            .with_tags([format!("t{}", i % 3)]);
        c.created_at = Some(1_700_000_000 + i as i64);
        c.updated_at = Some(1_800_000_000);
        s.chats.create(c).await.expect("chat");
        s.messages
            .upsert_many(
                &id,
                vec![
                    NewMessage::text(&id, "q", "user", "question").at(1_700_000_100),
                    NewMessage::text(&id, "a", "assistant", "answer")
                        .with_parent("q")
                        .at(1_700_000_200),
                ],
            )
            .await
            .expect("messages");
        if i % 8 == 0 {
            s.files
                .put(
                    NewFile::new(&user, "notes.txt", vec![b'n'; i + 1])
                        .with_id(format!("fx{i:03}")),
                )
                .await
                .expect("file");
        }
    }
    for (collection, n) in [("file-f7", 7usize), ("knowledge-kb1", 12)] {
        let items = (0..n)
            .map(|i| chatstore_core::VectorItem {
                id: format!("{collection}-{i:02}"),
                text: format!("chunk {i}"),
                vector: vec![1.0, i as f32 / 3.0, 0.25, -0.5],
                metadata: serde_json::json!({"file_id": "f7", "page": i})
                    .as_object()
                    .cloned()
                    .expect("object"),
            })
            .collect();
        s.vectors.insert(collection, items).await.expect("vectors");
    }
    store.close().await;
    let mut c = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("connect");
    sqlx::query("PRAGMA journal_mode=DELETE")
        .execute(&mut c)
        .await
        .expect("rollback journal");
    c.close().await.expect("close");
    url
}

async fn fresh_postgres() -> Option<String> {
    let server = env_or_skip("CHATSTORE_TEST_POSTGRES_URL")?;
    let name = format!("mig_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&server).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let (base, _) = server.rsplit_once('/').expect("a database in the URL");
    Some(format!("{base}/{name}"))
}

fn pocketbase_env() -> Option<(String, String, String)> {
    let url = env_or_skip("CHATSTORE_TEST_POCKETBASE_URL")?;
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email");
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD").expect("password");
    Some((url, email, password))
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    if args.first() == Some(&"migrate") {
        c.arg("--state")
            .arg(dir.join("state.json"))
            .arg("--dead-letter")
            .arg(dir.join("dead.jsonl"));
    }
    c.env_remove("CHATSTORE_VECTOR_URL")
        .env("CHATSTORE_UPLOAD_DIR", dir.join("target-uploads"));
    if let Ok(email) = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL") {
        c.env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", email);
    }
    if let Ok(p) = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD") {
        c.env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", p);
    }
    c
}

fn migrate(dir: &Path, args: &[&str]) -> Output {
    let mut full = vec!["migrate"];
    full.extend_from_slice(args);
    command(dir, &full).output().expect("run chatstore")
}

/// Runs `chatstore verify --from FROM --to TO --groups GROUPS` in `dir`.
fn run_verify(dir: &Path, from: &str, to: &str, groups: &str) -> Output {
    command(
        dir,
        &["verify", "--from", from, "--to", to, "--groups", groups],
    )
    .output()
    .expect("run chatstore verify")
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test]
async fn sqlite_to_postgres_copies_every_table_and_back_again() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let dir = folder();
    let src = owui_sqlite(&dir, 10).await;
    let file = dir.join("webui.db");
    let before = sha256_hex(&std::fs::read(&file).expect("source file"));

    let args = ["--batch-size", "3", "--chat-page-mib", "1"];
    let out = migrate(&dir, &[&["--from", &src, "--to", &pg][..], &args].concat());
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the target equals the source"),
        "{}",
        show(&out)
    );
    // The source is untouched: same bytes, still a rollback journal.
    assert_eq!(
        sha256_hex(&std::fs::read(&file).expect("source file")),
        before
    );
    assert!(!dir.join("webui.db-wal").exists());
    assert_eq!(
        text(&src, "PRAGMA journal_mode").await.as_deref(),
        Some("delete")
    );
    // Rows unchanged, in the tables outside the aggregates and in columns the model lacks.
    assert_eq!(
        text(&pg, "SELECT password FROM auth WHERE id = 'u1'")
            .await
            .as_deref(),
        Some("$2b$12$x")
    );
    assert_eq!(
        text(
            &pg,
            "SELECT CAST(oauth AS TEXT) FROM \"user\" WHERE id = 'u1'"
        )
        .await
        .as_deref(),
        Some(r#"{"sub":"oidc|1"}"#)
    );
    assert_eq!(
        text(
            &pg,
            "SELECT CAST(created_at AS TEXT) FROM chat_message WHERE id = 'c1-m1'"
        )
        .await
        .as_deref(),
        Some("1700000000123")
    );
    let blob = text(&pg, "SELECT CAST(chat AS TEXT) FROM chat WHERE id = 'c1'")
        .await
        .expect("blob");
    let blob_src = text(&src, "SELECT chat FROM chat WHERE id = 'c1'").await;
    assert_eq!(Some(blob), blob_src, "the blob as Open WebUI wrote it");
    assert_eq!(
        text(&pg, "SELECT name FROM folder WHERE id = 'fo1'")
            .await
            .as_deref(),
        Some("Work")
    );
    assert_eq!(
        text(
            &pg,
            "SELECT CAST(is_expanded AS TEXT) FROM folder WHERE id = 'fo1'"
        )
        .await
        .as_deref(),
        Some("false")
    );
    assert_eq!(count(&pg, "memory").await, 1);
    assert_eq!(
        count(&pg, "document_chunk").await,
        19,
        "vectors in pgvector"
    );
    for t in ["user", "chat", "chat_message", "tag", "file", "auth"] {
        assert_eq!(
            count(&pg, t).await,
            count(&src, t).await + extra_rows(t),
            "{t}"
        );
    }

    let back = sqlite_url(&dir, "back.db");
    std::fs::remove_file(dir.join("state.json")).expect("new run");
    let out = migrate(&dir, &["--from", &pg, "--to", &back]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        text(&back, "SELECT password FROM auth WHERE id = 'u2'")
            .await
            .as_deref(),
        Some("$2b$12$y")
    );
    assert_eq!(
        text(
            &back,
            "SELECT CAST(is_expanded AS TEXT) FROM folder WHERE id = 'fo1'"
        )
        .await
        .as_deref(),
        Some("0")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows the target has beyond the source's: message rows written for chats whose messages
/// Open WebUI kept only in the blob (c2: a, b; c3: x, y), tag rows for tags only in `meta`.
fn extra_rows(table: &str) -> i64 {
    match table {
        "chat_message" => 4,
        // Tags Open WebUI kept only in `chat.meta.tags` (u1's `ideas`, u2's `travel`) become
        // tag rows.
        "tag" => 2,
        _ => 0,
    }
}

/// An entry of a chat's blob that does not read as a message (here without a `role`) cannot
/// be written to PocketBase, whose chats are rebuilt from their messages: it is set aside with
/// its chat's id, the entry whole and why, and the chat arrives with its other messages.
#[tokio::test]
async fn a_blob_entry_that_is_no_message_is_set_aside_on_the_way_to_pocketbase() {
    let Some((pb, _, _)) = pocketbase_env() else {
        return;
    };
    let dir = folder();
    let src = owui_sqlite(&dir, 0).await;
    exec(
        &src,
        r#"INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
           VALUES ('c10', 'u1', 'Half broken', '{"history":{"currentId":"m1","messages":{
             "m1":{"id":"m1","role":"user","content":"kept","timestamp":5},
             "x1":{"id":"x1","content":"no role","rating":1}}}}', 5, 5, FALSE, FALSE, '{}');"#,
    )
    .await;
    let collections = common::PocketBasePrefix::new(&pb, "x");
    let target = collections.url.clone();
    let out = migrate(
        &dir,
        &[
            "--from",
            &src,
            "--to",
            &target,
            "--skip-unmodelled",
            "--groups",
            "users,chats",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    let x1 = &letters[0];
    assert_eq!(
        (&x1["entity"], &x1["id"]),
        (&"message".into(), &"c10-x1".into())
    );
    assert!(
        x1["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not read as a message") && e.contains("no role")),
        "{x1}"
    );
    assert_eq!(x1["record"]["rating"], 1, "{x1}");

    std::fs::remove_file(dir.join("state.json")).expect("new run");
    let back = sqlite_url(&dir, "back.db");
    let out = migrate(
        &dir,
        &["--from", &target, "--to", &back, "--groups", "users,chats"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let c10 = text(&back, "SELECT chat FROM chat WHERE id = 'c10'")
        .await
        .expect("c10 arrived");
    assert!(c10.contains("kept") && !c10.contains("x1"), "{c10}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sqlite_to_pocketbase_and_back_to_sqlite() {
    let Some((pb, _, _)) = pocketbase_env() else {
        return;
    };
    let dir = folder();
    let src = owui_sqlite(&dir, 6).await;
    let collections = common::PocketBasePrefix::new(&pb, "m");
    let target = collections.url.clone();
    let groups = ["--groups", "users,chats,files"];

    let out = migrate(
        &dir,
        &[&["--from", &src, "--to", &target][..], &groups].concat(),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth (")
            && err.contains("folder (1 rows)")
            && err.contains("--skip-unmodelled"),
        "{}",
        show(&out)
    );
    assert!(!dir.join("state.json").exists(), "nothing was started");

    let out = migrate(
        &dir,
        &[
            &["--from", &src, "--to", &target, "--skip-unmodelled"][..],
            &groups,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("left out (--skip-unmodelled): auth"));

    std::fs::remove_file(dir.join("state.json")).expect("new run");
    let back = sqlite_url(&dir, "back.db");
    let out = migrate(
        &dir,
        &[&["--from", &target, "--to", &back][..], &groups].concat(),
    );
    assert!(out.status.success(), "{}", show(&out));
    let verify = run_verify(&dir, &src, &back, "users,chats,files");
    assert!(verify.status.success(), "{}", show(&verify));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_source_rows_are_set_aside_with_their_reasons() {
    let dir = folder();
    let src = owui_sqlite(&dir, 3).await;
    exec(
        &src,
        r#"PRAGMA foreign_keys = OFF;
           INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
           VALUES ('c9', 'u1', 'Broken', '{not json', 1, 1, FALSE, FALSE, '{}');
           INSERT INTO chat_message (id, chat_id, user_id, role, content, done, created_at, updated_at)
           VALUES ('ghost-m1', 'ghost', 'u1', 'user', '"boo"', TRUE, 1, 1);
           INSERT INTO "file" (id, user_id, filename, path, data, meta, created_at, updated_at)
           VALUES ('f8', 'u1', 'gone.txt', '/nonexistent/f8_gone.txt', '{}',
           '{"name":"gone.txt","size":3,"file_hash":"abc"}', 1, 1);
           INSERT INTO chat (id, user_id, title, chat, created_at, updated_at, archived, pinned, meta)
           VALUES ('c10', 'u1', 'Half broken', '{"history":{"currentId":"m1","messages":{
             "m1":{"id":"m1","role":"user","content":"kept","timestamp":5},
             "x1":{"id":"x1","content":"no role","rating":1}}}}', 5, 5, FALSE, FALSE, '{}');"#,
    )
    .await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate(
        &dir,
        &[
            "--from",
            &src,
            "--to",
            &target,
            "--groups",
            "users,chats,files",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    let find = |entity: &str, id: &str| {
        letters
            .iter()
            .find(|l| l["entity"] == entity && l["id"] == id)
            .unwrap_or_else(|| panic!("no dead letter for {entity} {id}: {letters:#?}"))
    };
    assert!(
        find("chat", "c9")["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not read"))
    );
    assert!(
        find("message", "ghost-m1")["error"]
            .as_str()
            .is_some_and(|e| e.contains("chat the source does not hold"))
    );
    let f8 = find("file", "f8");
    assert!(
        f8["error"].as_str().is_some_and(|e| e.contains("missing")),
        "{f8}"
    );
    assert_eq!(f8["record"]["filename"], "gone.txt");
    assert_eq!(letters.len(), 3, "{letters:#?}");
    // SQL to SQL, the chat row follows as the source holds it: a blob entry that is no message
    // arrives in it (it is set aside on the way to PocketBase:
    // `a_blob_entry_that_is_no_message_is_set_aside_on_the_way_to_pocketbase`).
    let c10 = text(&target, "SELECT chat FROM chat WHERE id = 'c10'")
        .await
        .expect("c10 arrived");
    assert!(
        c10.contains("kept") && c10.contains("\"rating\":1"),
        "{c10}"
    );
    // Everything else arrived.
    for (table, n) in [("chat", 8), ("user", 5), ("file", 2)] {
        assert_eq!(count(&target, table).await, n, "{table}\n{}", show(&out));
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 records were set aside"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`migrate`] that is killed and fails the test when it runs longer than `limit`.
fn migrate_within(dir: &Path, args: &[&str], limit: Duration) -> Output {
    let mut full = vec!["migrate"];
    full.extend_from_slice(args);
    let mut child = command(dir, &full)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatstore");
    let started = std::time::Instant::now();
    while child.try_wait().expect("poll chatstore").is_none() {
        if started.elapsed() > limit {
            child.kill().expect("SIGKILL");
            let out = child.wait_with_output().expect("reap");
            panic!("the run did not end within {limit:?}\n{}", show(&out));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// `chatstore migrate` from `src` to `target` for `groups` in batches of `batch`, within
/// `limit_secs`.
fn migrate_groups(
    dir: &Path,
    src: &str,
    target: &str,
    groups: &str,
    batch: u32,
    limit_secs: u64,
) -> Output {
    let batch = batch.to_string();
    let args = [
        "--from",
        src,
        "--to",
        target,
        "--groups",
        groups,
        "--batch-size",
        batch.as_str(),
    ];
    migrate_within(dir, &args, Duration::from_secs(limit_secs))
}

/// Message rows without a chat are set aside once each and the run ends, whatever the shape
/// of their row id: one that does not start with its chat's id sorts elsewhere than its key.
#[tokio::test]
async fn orphan_rows_of_any_id_shape_are_set_aside_once_and_the_run_ends() {
    let dir = folder();
    let src = owui_sqlite(&dir, 0).await;
    exec(
        &src,
        r#"PRAGMA foreign_keys = OFF;
           INSERT INTO chat_message (id, chat_id, user_id, role, content, done, created_at, updated_at)
           VALUES ('zz-orphan', 'ghost', 'u1', 'user', '"a"', TRUE, 1, 1),
                  ('a-orphan', 'ghost', 'u1', 'user', '"b"', TRUE, 1, 1),
                  ('b1-x', 'b1', 'u1', 'user', '"c"', TRUE, 1, 1);"#,
    )
    .await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate_groups(&dir, &src, &target, "users,chats", 1, 30);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let mut ids: Vec<String> = dead_letters(&dir)
        .iter()
        .filter(|l| l["entity"] == "message")
        .map(|l| l["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["b1-x", "ghost-a-orphan", "ghost-zz-orphan"],
        "{}",
        show(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a run that stops at `pause` (see `CHATSTORE_MIGRATE_PAUSE`) and kills it there with
/// SIGKILL.
fn run_and_kill(dir: &Path, args: &[&str], pause: &str) {
    let mut full = vec!["migrate"];
    full.extend_from_slice(args);
    let mut child = command(dir, &full)
        .env("CHATSTORE_MIGRATE_PAUSE", pause)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatstore");
    let stderr = child.stderr.take().expect("stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.expect("stderr line");
        let paused = line.starts_with("paused:");
        seen.push(line);
        if paused {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.starts_with("paused:")),
        "the run never reached {pause}:\n{}",
        seen.join("\n")
    );
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
}

#[tokio::test]
async fn a_run_killed_at_any_point_resumes_without_loss_or_duplicates() {
    let dir = folder();
    let src = owui_sqlite(&dir, 24).await;
    let target = sqlite_url(&dir, "target.db");
    let args = [
        "--from",
        src.as_str(),
        "--to",
        target.as_str(),
        "--batch-size",
        "4",
    ];
    // Mid-batch (written, not checkpointed), between groups (the last user batch is
    // checkpointed, the group is not marked done), in the middle of chats and during files.
    run_and_kill(&dir, &args, "users:2:written");
    run_and_kill(&dir, &args, "users:2:checkpointed");
    run_and_kill(&dir, &args, "chats:3:written");
    run_and_kill(&dir, &args, "files:1:written");
    // Vectors read ahead of the write: killed with a page written but not checkpointed (the
    // second page of `file-f7`), then right after a checkpoint in the next collection.
    run_and_kill(&dir, &args, "vectors:2:written");
    run_and_kill(&dir, &args, "vectors:3:checkpointed");
    let out = migrate(&dir, &args);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the target equals the source"));
    for t in [
        "user",
        "chat",
        "chat_message",
        "tag",
        "file",
        "auth",
        "chatstore_vector",
    ] {
        assert_eq!(
            count(&target, t).await,
            count(&src, t).await + extra_rows(t),
            "{t}"
        );
    }
    assert!(dead_letters(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A PocketBase server of this test's own (own folder, own port), never the shared one.
struct PrivatePocketBase {
    child: std::process::Child,
    bin: String,
    data: PathBuf,
    port: u16,
}

impl PrivatePocketBase {
    fn start(bin: &str, data: &Path, port: u16) -> Self {
        let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("../adapter-pocketbase/pb_hooks");
        let mut c = Command::new(bin);
        c.args(["serve", "--http", &format!("127.0.0.1:{port}"), "--dir"])
            .arg(data)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if hooks.is_dir() {
            c.arg("--hooksDir").arg(&hooks);
        }
        let child = c.spawn().expect("start PocketBase");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        PrivatePocketBase {
            child,
            bin: bin.to_owned(),
            data: data.to_owned(),
            port,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivatePocketBase {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_target_server_lost_mid_run_stops_the_run_and_it_resumes_after_the_restart() {
    let Some(bin) = env_or_skip("CHATSTORE_POCKETBASE_BIN") else {
        return;
    };
    let dir = folder();
    let data = dir.join("pb");
    let (email, password) = ("admin@migrate.test", "Pb-migrate-test-1");
    let status = Command::new(&bin)
        .args(["superuser", "upsert", email, password, "--dir"])
        .arg(&data)
        .output()
        .expect("superuser");
    assert!(status.status.success(), "{}", show(&status));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut pb = PrivatePocketBase::start(&bin, &data, port);
    let src = owui_sqlite(&dir, 20).await;
    let target = format!("pocketbase://127.0.0.1:{port}");
    let args = [
        "migrate",
        "--from",
        &src,
        "--to",
        &target,
        "--groups",
        "users,chats,files",
        "--batch-size",
        "4",
        "--skip-unmodelled",
    ];
    let mut child = command(&dir, &args)
        .env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", email)
        .env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", password)
        .env("CHATSTORE_MIGRATE_PAUSE", "chats:2:checkpointed:3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatstore");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr line");
        let paused = line.starts_with("paused:");
        seen.push(line);
        if paused {
            break;
        }
    }
    // The run waits 3 s at the pause; the server goes away meanwhile.
    pb.kill();
    seen.extend(lines.map(|l| l.unwrap_or_default()));
    let status = child.wait().expect("the run ends");
    let err = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("unavailable") && err.contains("run the same command again to resume"),
        "{err}"
    );
    let _pb = PrivatePocketBase::start(&pb.bin, &pb.data, pb.port);
    let out = command(&dir, &args)
        .env("CHATSTORE_POCKETBASE_ADMIN_EMAIL", email)
        .env("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", password)
        .output()
        .expect("resume");
    assert!(out.status.success(), "{}", show(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records written per second by a `chatstore migrate --json` run, per group, and its peak RSS.
fn rates(out: &Output) -> (Vec<(String, f64, u64)>, u64) {
    assert!(out.status.success(), "{}", show(out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let groups = v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap_or("?").to_owned(),
                g["records_per_second"].as_f64().unwrap_or(0.0),
                g["counts"]["written"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    (groups, v["peak_rss_kib"].as_u64().unwrap_or(0))
}

/// A source of `chats` chats (4 messages each, 20 users) and `vectors` 384-dimension vectors.
async fn bench_source(dir: &Path, chats: usize, vectors: usize) -> String {
    let url = sqlite_url(dir, "bench.db");
    let sql = SqlStore::connect(&url, SqlOptions::default().upload_dir(dir.join("uploads")))
        .await
        .expect("source");
    let s = sql.store();
    let users = (0..20)
        .map(|u| NewUser::new(format!("b{u}@example.com"), "B").with_id(format!("b{u:02}")))
        .collect();
    s.users.create_many(users).await.expect("users");
    for start in (0..chats).step_by(500) {
        let batch = (start..(start + 500).min(chats))
            .map(|i| {
                let mut c = NewChat::new(format!("b{:02}", i % 20), format!("chat {i}"))
                    .with_id(format!("c{i:06}"))
                    .with_tags([format!("t{}", i % 5)]);
                let msgs: serde_json::Map<String, Value> = (0..4)
                    .map(|m| {
                        (
                            format!("m{m}"),
                            serde_json::json!({"id": format!("m{m}"), "role": if m % 2 == 0 {"user"} else {"assistant"},
                                "parentId": if m == 0 { Value::Null } else { Value::String(format!("m{}", m - 1)) },
                                "content": "some words of a message ".repeat(8), "timestamp": 1_700_000_000 + m}),
                        )
                    })
                    .collect();
                c.chat = Some(serde_json::json!({"history": {"messages": msgs, "currentId": "m3"}}));
                c.created_at = Some(1_700_000_000);
                c
            })
            .collect();
        s.chats.create_many(batch).await.expect("chats");
    }
    for start in (0..vectors).step_by(1000) {
        let items = (start..(start + 1000).min(vectors))
            .map(|i| chatstore_core::VectorItem {
                id: format!("v{i:07}"),
                text: format!("chunk {i}"),
                vector: (0..384)
                    .map(|d| ((i * 31 + d * 7) % 97) as f32 / 97.0 + 0.01)
                    .collect(),
                metadata: serde_json::json!({"file_id": format!("f{}", i % 10)})
                    .as_object()
                    .cloned()
                    .expect("object"),
            })
            .collect();
        s.vectors.insert("kb", items).await.expect("vectors");
    }
    sql.close().await;
    url
}

/// Throughput against raw baselines and peak memory at two sizes; run with
/// `CHATSTORE_MIGRATE_BENCH=2000 cargo test -p chatstore-cli --test migrate migration_throughput -- --nocapture`
/// (chats at the small size; the large size is four times that). Skipped unless the variable
/// is set: it takes minutes, and ratios in a debug build say less than in release.
#[tokio::test]
async fn migration_throughput_against_raw_loads() {
    let Some(n) = std::env::var("CHATSTORE_MIGRATE_BENCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        eprintln!("SKIPPED: set CHATSTORE_MIGRATE_BENCH=CHATS to measure");
        return;
    };
    let Some(_) = env_or_skip("CHATSTORE_TEST_POSTGRES_URL") else {
        return;
    };
    for size in [n, 4 * n] {
        let dir = folder();
        let src = bench_source(&dir, size, size).await;
        let source = SqlStore::connect(&src, SqlOptions::default().read_only(true))
            .await
            .expect("source");

        // Raw multi-row load of the same rows (chatstore-sql's table copy: one INSERT per
        // batch of rows, values unchanged) into a fresh database.
        let raw_pg = fresh_postgres().await.expect("postgres");
        let raw = SqlStore::connect(&raw_pg, SqlOptions::default())
            .await
            .expect("raw target");
        let t0 = std::time::Instant::now();
        let mut rows = 0;
        for table in ["user", "chat", "tag", "chat_message"] {
            rows += source
                .copy_table(
                    &raw,
                    table,
                    chatstore_sql::tables::RowMode::Upsert,
                    500,
                    &mut |_| {},
                )
                .await
                .expect("raw copy")
                .written;
        }
        let raw_rate = rows as f64 / t0.elapsed().as_secs_f64();

        // Binary COPY of the vectors into pgvector: one insert of every item.
        let items: Vec<chatstore_core::VectorItem> = {
            let s = source.store();
            let mut all = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = s
                    .vectors
                    .scan("kb", after.as_deref(), 5000)
                    .await
                    .expect("scan");
                let Some(last) = page.last() else { break };
                after = Some(last.id.clone());
                all.extend(page);
            }
            all
        };
        let pgv = chatstore_pgvector::PgVectorStore::connect(
            chatstore_pgvector::PgVectorConfig::new(&raw_pg),
        )
        .await
        .expect("pgvector");
        use chatstore_core::VectorRepo as _;
        let t0 = std::time::Instant::now();
        let count_items = items.len();
        pgv.insert("kb", items).await.expect("COPY");
        let copy_rate = count_items as f64 / t0.elapsed().as_secs_f64();

        let pg = fresh_postgres().await.expect("postgres");
        let out = migrate(
            &dir,
            &[
                "--from",
                &src,
                "--to",
                &pg,
                "--json",
                "--batch-size",
                "1000",
            ],
        );
        let (groups, rss) = rates(&out);
        let rate = |g: &str| groups.iter().find(|x| x.0 == g).map(|x| x.1).unwrap_or(0.0);
        // Chats count chats only; the raw load counts users, chats, tags and messages.
        let chat_records = 6.0 * rate("chats") / 1.0;
        eprintln!(
            "size {size}: migrate->postgres chats {:.0} chats/s (~{:.0} rows/s incl. 4 messages + tag) vs raw multi-row {raw_rate:.0} rows/s; \
             vectors {:.0}/s vs binary COPY {copy_rate:.0}/s; peak RSS {rss} KiB",
            rate("chats"),
            chat_records,
            rate("vectors"),
        );
        if let Some((pb, _, _)) = pocketbase_env() {
            std::fs::remove_file(dir.join("state.json")).ok();
            let collections = common::PocketBasePrefix::new(&pb, "b");
            let target = collections.url.clone();
            let out = migrate(
                &dir,
                &[
                    "--from",
                    &src,
                    "--to",
                    &target,
                    "--json",
                    "--groups",
                    "users,chats",
                    "--skip-unmodelled",
                    "--batch-size",
                    "500",
                ],
            );
            let (groups, rss) = rates(&out);
            let chats = groups
                .iter()
                .find(|x| x.0 == "chats")
                .map(|x| x.1)
                .unwrap_or(0.0);
            eprintln!(
                "size {size}: migrate->pocketbase chats {chats:.0} chats/s; peak RSS {rss} KiB"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn a_postgres_source_gains_no_table() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let db = SqlStore::connect(&pg, SqlOptions::default())
        .await
        .expect("schema");
    db.store()
        .users
        .create(NewUser::new("p@example.com", "P").with_id("p1"))
        .await
        .expect("user");
    db.close().await;
    let tables = || async {
        text(
            &pg,
            "SELECT string_agg(table_name::text, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await
    };
    let before = tables().await;
    let dir = folder();
    let out = migrate(&dir, &["--from", &pg, "--to", &sqlite_url(&dir, "t.db")]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(tables().await, before);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_dry_run_counts_and_writes_nothing() {
    let dir = folder();
    let src = owui_sqlite(&dir, 2).await;
    let target = sqlite_url(&dir, "t.db");
    let out = migrate(
        &dir,
        &["--from", &src, "--to", &target, "--dry-run", "--json"],
    );
    assert!(out.status.success(), "{}", show(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let groups = v["groups"].as_array().expect("groups");
    assert_eq!(groups[0]["group"], "users");
    assert_eq!(groups[0]["source"], 4);
    assert_eq!(groups[0]["target"], 0);
    assert_eq!(groups[1]["source"], 6, "chats");
    // Open WebUI's remaining tables move with the workspace group (a folder and a memory).
    assert_eq!(groups[3]["group"], "workspace");
    assert_eq!(groups[3]["source"], 2);
    assert_eq!(groups[3]["target"], 0);
    assert_eq!(v["file_bytes_to_copy"], 12 + 1);
    assert_eq!(v["source"]["schema"], "0bd252b206fb");
    let other: Vec<&str> = v["other_tables"]["copied"]
        .as_array()
        .expect("tables")
        .iter()
        .filter(|t| t["rows"].as_u64() > Some(0))
        .filter_map(|t| t["table"].as_str())
        .collect();
    assert_eq!(other, ["auth"], "the rest is the workspace group's");
    assert!(!dir.join("state.json").exists());
    assert!(!dir.join("dead.jsonl").exists());
    assert_eq!(v["target"]["exists"], false);
    assert!(!dir.join("t.db").exists(), "a dry run creates no target");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows in every one of Open WebUI's remaining tables (`chatstore_core::rows::ALL_TABLES`), as
/// Open WebUI writes them: JSON as Python's `json.dumps` leaves it (with and without spaces),
/// the JSON literal `null` beside SQL `NULL`, booleans as 0/1, nanosecond timestamps for
/// notes, channels and channel messages, a group and a knowledge directory whose parent sorts
/// after them, a channel message answering one that sorts after it. They point at the users,
/// chats and file of [`OWUI_ROWS`] (`u1`, `u2`, `c1`, `f7`).
const WORKSPACE_ROWS: &str = r#"
INSERT INTO folder (id, parent_id, user_id, name, items, meta, is_expanded, created_at, updated_at, data)
VALUES ('fo2', 'fo9', 'u1', 'Child before parent', 'null', NULL, 1, 1700000001, 1700000002, '{"files": []}'),
    ('fo9', NULL, 'u2', 'Ünïcode 📁', '{"chats": ["c1"]}', '{"icon": "x"}', 0, 1700000003, 1700000004, 'null');
INSERT INTO "group" (id, user_id, name, description, data, meta, permissions, created_at, updated_at, parent_group_id)
VALUES ('g-a', 'u1', 'Readers', 'sorts before its parent', 'null', NULL, '{"workspace":{"models":false}}', 1700000000, 1700000000, 'g-z'),
    ('g-z', 'u1', 'Everyone', NULL, '{"config": {"share": true}}', 'null', 'null', 1700000000, 1700000001, NULL);
INSERT INTO group_member (id, group_id, user_id, created_at, updated_at)
VALUES ('gm1', 'g-a', 'u2', 1700000000, 1700000000), ('gm2', 'g-z', 'u1', NULL, NULL);
INSERT INTO access_grant (id, resource_type, resource_id, principal_type, principal_id, permission, created_at)
VALUES ('ag1', 'knowledge', 'kb1', 'group', 'g-a', 'read', 1700000000),
    ('ag2', 'note', 'n1', 'user', '*', 'read', 1700000001);
INSERT INTO knowledge (id, user_id, name, description, meta, created_at, updated_at, data)
VALUES ('kb1', 'u1', 'Manuals', 'Product docs', '{"document": true}', 1700000000, 1700000100, '{"file_ids":["f7"]}');
INSERT INTO knowledge_directory (id, knowledge_id, parent_id, name, user_id, created_at, updated_at)
VALUES ('kd-a', 'kb1', 'kd-b', 'Sub', 'u1', 1700000000, 1700000000),
    ('kd-b', 'kb1', NULL, 'Top', 'u1', 1700000000, 1700000000);
INSERT INTO knowledge_file (id, user_id, knowledge_id, file_id, created_at, updated_at, directory_id)
VALUES ('kf1', 'u1', 'kb1', 'f7', 1700000000, 1700000000, 'kd-a');
INSERT INTO note (id, user_id, title, data, meta, created_at, updated_at)
VALUES ('n1', 'u1', 'Groceries', '{"content":{"json":null,"html":"<p>milk</p>","md":"milk"}}', 'null', 1732000000123456789, 1732000000987654321),
    ('n2', 'u2', NULL, NULL, NULL, NULL, NULL);
INSERT INTO pinned_note (id, user_id, note_id, created_at)
VALUES ('pn1', 'u1', 'n1', 1732000000123456789);
INSERT INTO memory (id, user_id, content, updated_at, created_at, type, path, meta)
VALUES ('me2', 'u2', 'speaks French', 1700000000, 1700000000, 'fact', '/prefs', '{"source": "chat"}');
INSERT INTO prompt (id, command, user_id, name, content, data, meta, is_active, version_id, tags, created_at, updated_at)
VALUES ('p1', '/summarise', 'u1', 'Summarise', 'Summarise {{CLIPBOARD}}', 'null', '{"tags": []}', 1, 'ph1', '["writing"]', 1700000000, 1700000001),
    ('p2', NULL, 'u2', 'No command', 'text', NULL, NULL, 0, NULL, NULL, 1, 2);
INSERT INTO prompt_history (id, prompt_id, parent_id, snapshot, user_id, commit_message, created_at)
VALUES ('ph1', 'p1', NULL, '{"name":"Summarise","content":"Summarise {{CLIPBOARD}}"}', 'u1', 'first', 1700000000);
INSERT INTO model (id, user_id, base_model_id, name, params, meta, updated_at, created_at, is_active, version_id)
VALUES ('llama3:custom', 'u1', 'llama3', 'Custom', '{"temperature": 0.7, "stop": null}', '{"description": "x", "profile_image_url": "/static/favicon.png"}', 1700000001, 1700000000, 1, 'mh1'),
    ('arena-model', 'u2', NULL, NULL, '{}', 'null', NULL, NULL, 0, NULL);
INSERT INTO model_history (id, model_id, parent_id, snapshot, user_id, commit_message, created_at)
VALUES ('mh1', 'llama3:custom', NULL, '{"params":{"temperature":0.7}}', 'u1', NULL, 1700000000);
INSERT INTO channel (id, user_id, name, description, data, meta, created_at, updated_at, type, is_private, archived_at, archived_by, deleted_at, deleted_by, updated_by)
VALUES ('ch1', 'u1', 'general', 'All of us', 'null', '{"color": "blue"}', 1732000000000000001, 1732000000000000002, NULL, 0, NULL, NULL, NULL, NULL, NULL),
    ('ch2', 'u2', 'dm', NULL, NULL, NULL, 1732000000000000003, 1732000000000000004, 'dm', 1, 1732000000000000005, 'u2', NULL, NULL, 'u2');
INSERT INTO channel_member (id, channel_id, user_id, created_at, status, is_active, is_channel_muted, is_channel_pinned, data, meta, joined_at, left_at, last_read_at, updated_at, role, invited_by, invited_at, app_id)
VALUES ('cm1', 'ch1', 'u1', 1732000000000000001, 'joined', 1, 0, 1, 'null', NULL, 1732000000000000001, NULL, 1732000000000000009, 1732000000000000009, 'owner', NULL, NULL, NULL),
    ('cm2', 'ch1', NULL, 1732000000000000002, NULL, 1, 0, 0, NULL, '{"bot": true}', 1732000000000000002, NULL, NULL, NULL, NULL, 'u1', 1732000000000000002, 'bot-1');
INSERT INTO message (id, user_id, channel_id, content, data, meta, created_at, updated_at, parent_id, reply_to_id, is_pinned, pinned_at, pinned_by, app_id)
VALUES ('msg-b', 'u1', 'ch1', 'hello **all**', '{"files": []}', 'null', 1732000000000000010, 1732000000000000010, NULL, NULL, 0, NULL, NULL, NULL),
    ('msg-a', 'u2', 'ch1', 'a reply in the thread', NULL, NULL, 1732000000000000020, 1732000000000000021, 'msg-b', 'msg-b', 1, 1732000000000000030, 'u1', NULL);
INSERT INTO message_reaction (id, user_id, message_id, name, created_at)
VALUES ('mr1', 'u2', 'msg-b', '👍', 1732000000000000040);
INSERT INTO channel_file (id, user_id, channel_id, file_id, created_at, updated_at, message_id)
VALUES ('cf1', 'u1', 'ch1', 'f7', 1700000000, 1700000000, 'msg-b');
INSERT INTO feedback (id, user_id, version, type, data, meta, snapshot, created_at, updated_at)
VALUES ('fb1', 'u1', 0, 'rating', '{"rating": 1, "model_id": "llama3", "reason": "", "comment": "good"}', '{"chat_id": "c1", "message_id": "m2"}', '{"chat": {"title": "Trip"}}', 1700000000, 1700000001);
INSERT INTO shared_chat (id, chat_id, user_id, title, chat, created_at, updated_at)
VALUES ('sc1', 'c1', 'u1', 'Trip to Zürich', '{"title":"Trip to Zürich","history":{"messages":{},"currentId":null}}', 1700000000, 1700000000);
INSERT INTO chat_file (id, user_id, chat_id, message_id, file_id, created_at, updated_at)
VALUES ('chf1', 'u1', 'c1', 'm1', 'f7', 1700000000, 1700000000);
"#;

/// [`owui_sqlite`] with [`WORKSPACE_ROWS`]: rows in every table.
async fn owui_sqlite_with_workspace(dir: &Path, extra: usize) -> String {
    let url = owui_sqlite(dir, extra).await;
    exec(&url, WORKSPACE_ROWS).await;
    for table in chatstore_core::rows::ALL_TABLES {
        assert!(count(&url, table.name).await > 0, "{} has rows", table.name);
    }
    url
}

/// Every table of the workspace group holds the source's rows, no more.
async fn same_counts(src: &str, target: &str) {
    for table in chatstore_core::rows::ALL_TABLES {
        assert_eq!(
            count(target, table.name).await,
            count(src, table.name).await,
            "{}",
            table.name
        );
    }
}

/// An Open WebUI SQLite database with rows in every one of its remaining tables moves to
/// PostgreSQL through the workspace group (not the row-for-row copy, which carries only the
/// tables outside it) with its values exact (nanosecond timestamps, parents before children
/// under PostgreSQL's foreign keys), and `verify` finds the two equal.
#[tokio::test]
async fn every_open_webui_table_moves_to_postgres_through_the_workspace_group() {
    let Some(pg) = fresh_postgres().await else {
        return;
    };
    let dir = folder();
    let src = owui_sqlite_with_workspace(&dir, 0).await;
    let out = migrate(&dir, &["--from", &src, "--to", &pg, "--batch-size", "1"]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("the target equals the source"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("verify workspace: source 35, target 35, equal 35, differences 0"),
        "{}",
        show(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("table auth: 2 rows"), "{}", show(&out));
    assert!(
        !stderr.contains("table folder:") && !stderr.contains("table note:"),
        "the row-for-row copy leaves the workspace tables alone\n{}",
        show(&out)
    );
    same_counts(&src, &pg).await;
    for (sql, want) in [
        (
            "SELECT CAST(created_at AS TEXT) FROM note WHERE id = 'n1'",
            "1732000000123456789",
        ),
        (
            "SELECT CAST(pinned_at AS TEXT) FROM message WHERE id = 'msg-a'",
            "1732000000000000030",
        ),
        (
            "SELECT parent_group_id FROM \"group\" WHERE id = 'g-a'",
            "g-z",
        ),
        ("SELECT name FROM folder WHERE id = 'fo9'", "Ünïcode 📁"),
        (
            "SELECT CAST(is_expanded AS TEXT) FROM folder WHERE id = 'fo2'",
            "true",
        ),
    ] {
        assert_eq!(text(&pg, sql).await.as_deref(), Some(want), "{sql}");
    }
    let verify = run_verify(&dir, &src, &pg, "workspace");
    assert!(verify.status.success(), "{}", show(&verify));
    // A row changed behind the copy's back is named by table and key.
    exec(&pg, "UPDATE note SET title = 'Changed' WHERE id = 'n1'").await;
    let verify = run_verify(&dir, &src, &pg, "workspace");
    assert_eq!(verify.status.code(), Some(1), "{}", show(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("note:n1 differs at /title"),
        "{}",
        show(&verify)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Into PocketBase the workspace tables need no `--skip-unmodelled` (only the tables outside
/// every group, here `auth`, do), arrive with every value, verify equal, and come back to a
/// new SQLite file equal again.
#[tokio::test]
async fn every_open_webui_table_moves_to_pocketbase_and_back() {
    let Some((pb, _, _)) = pocketbase_env() else {
        return;
    };
    let dir = folder();
    let src = owui_sqlite_with_workspace(&dir, 0).await;
    let collections = common::PocketBasePrefix::new(&pb, "w");
    let target = collections.url.clone();
    // PocketBase stores no vectors: those stay for a vector store of their own.
    let groups = ["--groups", "users,chats,files,workspace"];
    let out = migrate(
        &dir,
        &[&["--from", &src, "--to", &target][..], &groups].concat(),
    );
    assert!(!out.status.success(), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("auth (2 rows)") && err.contains("--skip-unmodelled"),
        "{}",
        show(&out)
    );
    for table in chatstore_core::rows::ALL_TABLES {
        assert!(
            !err.contains(&format!(" {} (", table.name)),
            "{} is not left behind\n{}",
            table.name,
            show(&out)
        );
    }

    let out = migrate(
        &dir,
        &[
            &[
                "--from",
                &src,
                "--to",
                &target,
                "--skip-unmodelled",
                "--batch-size",
                "2",
            ][..],
            &groups,
        ]
        .concat(),
    );
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("left out (--skip-unmodelled): auth (2 rows)\n"),
        "{}",
        show(&out)
    );
    assert!(
        stdout.contains("verify workspace: source 35, target 35, equal 35, differences 0"),
        "{}",
        show(&out)
    );

    std::fs::remove_file(dir.join("state.json")).expect("new run");
    let back = sqlite_url(&dir, "back.db");
    let out = migrate(
        &dir,
        &[&["--from", &target, "--to", &back][..], &groups].concat(),
    );
    assert!(out.status.success(), "{}", show(&out));
    same_counts(&src, &back).await;
    assert_eq!(
        text(
            &back,
            "SELECT CAST(updated_at AS TEXT) FROM note WHERE id = 'n1'"
        )
        .await
        .as_deref(),
        Some("1732000000987654321")
    );
    let verify = run_verify(&dir, &src, &back, "users,chats,files,workspace");
    assert!(verify.status.success(), "{}", show(&verify));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A run killed in the workspace group (mid-batch and right after a checkpoint, in several
/// tables) and resumed ends with exactly the source's rows in every table.
#[tokio::test]
async fn a_run_killed_in_the_workspace_group_resumes_without_loss_or_duplicates() {
    let dir = folder();
    let src = owui_sqlite_with_workspace(&dir, 0).await;
    let target = sqlite_url(&dir, "target.db");
    let args = [
        "--from",
        src.as_str(),
        "--to",
        target.as_str(),
        "--batch-size",
        "1",
    ];
    run_and_kill(&dir, &args, "workspace:2:written");
    run_and_kill(&dir, &args, "workspace:5:checkpointed");
    run_and_kill(&dir, &args, "workspace:11:written");
    let out = migrate(&dir, &args);
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("the target equals the source"));
    same_counts(&src, &target).await;
    assert!(dead_letters(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A workspace row the source cannot read (invalid JSON in a cell, one with a one-column key
/// and one with a two-column key) is set aside with its key and reason, and so is the row
/// the target then refuses for pointing at it (a pin of the unreadable note); every other row
/// arrives, and the run exits non-zero.
#[tokio::test]
async fn unreadable_workspace_rows_are_set_aside_with_their_keys() {
    let dir = folder();
    let src = owui_sqlite_with_workspace(&dir, 0).await;
    exec(
        &src,
        "UPDATE note SET data = '{not json' WHERE id = 'n1';
         UPDATE folder SET meta = '{\"icon\":' WHERE id = 'fo2';",
    )
    .await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate(
        &dir,
        &[
            "--from",
            &src,
            "--to",
            &target,
            "--groups",
            "users,chats,files,workspace",
            "--batch-size",
            "2",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    let ids: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l["entity"].as_str().unwrap_or_default().to_owned(),
                l["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            ("folder".to_owned(), "fo2/u1".to_owned()),
            ("note".to_owned(), "n1".to_owned()),
            ("pinned_note".to_owned(), "pn1".to_owned())
        ],
        "{letters:#?}"
    );
    assert!(
        letters[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("valid JSON")),
        "{letters:#?}"
    );
    assert_eq!(count(&target, "note").await, 1);
    assert_eq!(count(&target, "folder").await, 2);
    assert_eq!(count(&target, "pinned_note").await, 0);
    assert_eq!(count(&target, "channel").await, 2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("verify workspace: source 35, target 32"),
        "{}",
        show(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A parent row the source cannot read does not stop the walk: it is set aside with its key
/// when the walk reaches it, a child the target refuses without it is set aside with the
/// target's reason, a child the target takes arrives, and every other table is copied.
#[tokio::test]
async fn an_unreadable_parent_row_is_set_aside_and_the_walk_goes_on() {
    let dir = folder();
    let src = owui_sqlite_with_workspace(&dir, 0).await;
    exec(
        &src,
        "UPDATE folder SET meta = '{\"icon\":' WHERE id = 'fo9';
         UPDATE \"group\" SET data = '{x' WHERE id = 'g-z';",
    )
    .await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate_groups(&dir, &src, &target, "users,chats,files,workspace", 2, 60);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    let mut ids: Vec<(String, String)> = letters
        .iter()
        .map(|l| {
            (
                l["entity"].as_str().unwrap_or_default().to_owned(),
                l["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    ids.sort();
    let expected = [
        ("folder", "fo9/u2"),
        ("group", "g-a"),
        ("group", "g-z"),
        ("group_member", "gm1"),
        ("group_member", "gm2"),
    ]
    .map(|(e, i)| (e.to_owned(), i.to_owned()));
    assert_eq!(ids, expected, "{letters:#?}");
    for l in &letters {
        assert!(l["error"].as_str().is_some_and(|e| !e.is_empty()), "{l}");
    }
    let unreadable = |id: &str| {
        letters
            .iter()
            .find(|l| l["id"] == id)
            .and_then(|l| l["error"].as_str())
            .is_some_and(|e| e.contains("could not read"))
    };
    assert!(unreadable("fo9/u2") && unreadable("g-z"), "{letters:#?}");
    // The child folder needs no parent on SQLite; the other tables arrive whole.
    assert_eq!(count(&target, "folder").await, 2);
    assert_eq!(count(&target, "group").await, 0);
    for table in ["channel", "message", "knowledge_directory", "chat_file"] {
        assert_eq!(
            count(&target, table).await,
            count(&src, table).await,
            "{table}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tag row the source cannot read (invalid JSON in `meta`) is set aside with its key and the
/// other tag rows and the chats are copied.
#[tokio::test]
async fn an_unreadable_tag_row_is_set_aside_and_the_rest_copied() {
    let dir = folder();
    let src = owui_sqlite(&dir, 3).await;
    exec(&src, "UPDATE tag SET meta = '{x' WHERE id = 'unused'").await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate_groups(&dir, &src, &target, "users,chats", 2, 60);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0]["entity"], "tag");
    assert_eq!(letters[0]["id"], "u2/unused");
    assert!(
        letters[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not read")),
        "{letters:#?}"
    );
    let travel = text(
        &target,
        "SELECT name FROM tag WHERE user_id = 'u1' AND id = 'travel'",
    );
    assert_eq!(travel.await.as_deref(), Some("Travel"));
    assert_eq!(
        text(&target, "SELECT id FROM tag WHERE id = 'unused'").await,
        None
    );
    assert_eq!(count(&target, "chat").await, count(&src, "chat").await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A message row without a chat that the source cannot read (invalid JSON in a cell) is set
/// aside with its key, and so is every other such row; the run ends.
#[tokio::test]
async fn an_unreadable_orphan_row_is_set_aside_and_the_pass_goes_on() {
    let dir = folder();
    let src = owui_sqlite(&dir, 0).await;
    exec(
        &src,
        r#"PRAGMA foreign_keys = OFF;
           INSERT INTO chat_message (id, chat_id, user_id, role, content, done, created_at, updated_at, usage)
           VALUES ('ghost-a', 'ghost', 'u1', 'user', '"a"', TRUE, 1, 1, NULL),
                  ('ghost-b', 'ghost', 'u1', 'user', '"b"', TRUE, 1, 1, '{x'),
                  ('zz-c', 'ghost', 'u1', 'user', '"c"', TRUE, 1, 1, '{x'),
                  ('ghost-d', 'ghost', 'u1', 'user', '"d"', TRUE, 1, 1, NULL);"#,
    )
    .await;
    let target = sqlite_url(&dir, "target.db");
    let out = migrate_groups(&dir, &src, &target, "users,chats", 3, 60);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(&dir);
    let mut ids: Vec<(String, bool)> = letters
        .iter()
        .map(|l| {
            let id = l["id"].as_str().unwrap_or_default().to_owned();
            let unreadable = l["error"]
                .as_str()
                .is_some_and(|e| e.contains("could not read"));
            (id, unreadable)
        })
        .collect();
    ids.sort();
    let expected = [
        ("ghost-a", false),
        ("ghost-b", true),
        ("ghost-d", false),
        ("ghost-zz-c", true),
    ]
    .map(|(id, unreadable)| (id.to_owned(), unreadable));
    assert_eq!(ids, expected, "{letters:#?}");
    assert_eq!(count(&target, "chat").await, count(&src, "chat").await);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `verify` reads every target file through (streamed, checked against its sha256 as it
/// passes): a file whose bytes changed on disk after the copy is reported, and the exit is 1.
#[tokio::test]
async fn verify_finds_a_target_file_whose_bytes_changed() {
    let dir = folder();
    let src = owui_sqlite(&dir, 8).await;
    let to = sqlite_url(&dir, "t.db");
    let out = migrate(&dir, &["--from", &src, "--to", &to]);
    assert!(out.status.success(), "{}", show(&out));
    let verify = || {
        command(&dir, &["verify", "--from", &src, "--to", &to])
            .output()
            .expect("run chatstore verify")
    };
    let out = verify();
    assert!(out.status.success(), "{}", show(&out));
    let victim = std::fs::read_dir(dir.join("target-uploads"))
        .expect("the target's uploads")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("fx000"))
        })
        .expect("file fx000 on disk");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[0] ^= 0xff;
    std::fs::write(&victim, bytes).expect("write");
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(show(&out).contains("fx000"), "{}", show(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `chatstore migrate --from FROM --to TO`, which must end with exit 1, having set aside the
/// record `entity` `id`.
fn migrate_setting_aside(dir: &Path, from: &str, to: &str, entity: &str, id: &str) {
    let out = migrate(dir, &["--from", from, "--to", to]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let letters = dead_letters(dir);
    assert!(
        letters
            .iter()
            .any(|d| d["entity"] == entity && d["id"] == id),
        "no dead letter for {entity} {id}: {letters:#?}"
    );
}

/// A user set aside (the target holds another user with that email) keeps its credentials
/// behind too: the table copy that follows the engine used to upsert its `auth` row, a
/// password hash for an id the target does not hold, under the target user's email.
#[tokio::test]
async fn a_user_set_aside_leaves_its_credentials_behind() {
    let dir = folder();
    let src = owui_sqlite(&dir, 0).await;
    let to = sqlite_url(&dir, "t.db");
    let target = SqlStore::connect(&to, SqlOptions::default().upload_dir(dir.join("up")))
        .await
        .expect("the target");
    target
        .store()
        .users
        .create(NewUser::new("bob@example.com", "Robert").with_id("b1"))
        .await
        .expect("the target's own user");
    target.close().await;
    migrate_setting_aside(&dir, &src, &to, "user", "u2");
    assert_eq!(text(&to, "SELECT id FROM auth WHERE id = 'u2'").await, None);
    assert_eq!(
        text(&to, "SELECT email FROM auth WHERE id = 'u1'")
            .await
            .as_deref(),
        Some("Ada@Example.com"),
        "the other users' credentials arrive"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A file the target already holds under a source id with other bytes is set aside, and the
/// table copy that follows the engine leaves the target's row as it was: its bytes still read
/// (the copy used to give the row the source's name and sha256 over the target's bytes).
#[tokio::test]
async fn a_file_set_aside_keeps_the_targets_own_row() {
    let dir = folder();
    let src = owui_sqlite(&dir, 8).await;
    let to = sqlite_url(&dir, "t.db");
    let open_target = || async {
        SqlStore::connect(
            &to,
            SqlOptions::default().upload_dir(dir.join("target-uploads")),
        )
        .await
        .expect("the target")
    };
    let target = open_target().await;
    let t = target.store();
    t.users
        .create(NewUser::new("x000@example.com", "X").with_id("x000"))
        .await
        .expect("user");
    t.files
        .put(NewFile::new("x000", "mine.txt", b"the target's own bytes".to_vec()).with_id("fx000"))
        .await
        .expect("file");
    target.close().await;

    migrate_setting_aside(&dir, &src, &to, "file", "fx000");
    let target = open_target().await;
    let t = target.store();
    assert_eq!(
        t.files.get("fx000").await.expect("meta").filename,
        "mine.txt"
    );
    assert_eq!(
        t.files
            .read("fx000")
            .await
            .expect("the target's file still reads"),
        b"the target's own bytes"
    );
    target.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A message Open WebUI holds only in the chat's blob (its `chat_message` row write failed,
/// which it only logs, and it merges such entries back when it reads the chat) arrives with its
/// own keys, and verification sees it. Before, the run rebuilt each chat's history from the
/// rows alone: the message (with a user's rating in `annotation`) was dropped, and verify,
/// comparing the same rows on both sides, reported the stores equal.
#[tokio::test]
async fn a_message_only_in_the_chat_blob_arrives() {
    let dir = folder();
    let src = sqlite_url(&dir, "webui.db");
    let store = SqlStore::connect(&src, SqlOptions::default().upload_dir(dir.join("uploads")))
        .await
        .expect("create the source");
    let s = store.store();
    s.users
        .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
        .await
        .expect("user");
    let rating = serde_json::json!({"rating": 1, "tags": ["helpful"]});
    let mut chat = NewChat::new("u1", "Engines").with_id("c1");
    chat.chat = Some(
        serde_json::json!({"history": {"currentId": "m2", "messages": {
            "m1": {"id": "m1", "parentId": null, "role": "assistant", "content": "hello",
                   "timestamp": 1_700_000_100, "annotation": rating},
            "m2": {"id": "m2", "parentId": "m1", "role": "user", "content": "thanks",
                   "timestamp": 1_700_000_200}
        }}}),
    );
    s.chats.create(chat).await.expect("chat");
    store.close().await;
    exec(&src, "DELETE FROM chat_message WHERE id = 'c1-m1'").await;

    let target = sqlite_url(&dir, "target.db");
    let groups = ["--groups", "users,chats"];
    let out = migrate(
        &dir,
        &[&["--from", &src, "--to", &target][..], &groups].concat(),
    );
    assert!(out.status.success(), "{}", show(&out));
    let moved = SqlStore::connect(&target, SqlOptions::default().upload_dir(dir.join("up2")))
        .await
        .expect("open the target");
    let t = moved.store();
    let listed: Vec<String> = t
        .messages
        .list("c1")
        .await
        .expect("messages")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, ["m1", "m2"]);
    let blob = t.chats.get("c1").await.expect("chat").chat;
    assert_eq!(blob["history"]["messages"]["m1"]["annotation"], rating);
    moved.close().await;
    let verify = run_verify(&dir, &src, &target, "users,chats");
    assert!(verify.status.success(), "{}", show(&verify));
    let _ = std::fs::remove_dir_all(&dir);
}
