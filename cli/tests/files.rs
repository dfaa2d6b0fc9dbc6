//! `chatstore files put|get|url|ls` on a SQLite store and on PocketBase, through the binary.

mod common;

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_chatstore");

fn chatstore(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("CHATSTORE_SIGNING_KEY")
        .env_remove("WEBUI_SECRET_KEY")
        .env_remove("CHATSTORE_PUBLIC_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run chatstore")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "chatstore failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A SQLite database URL in `dir`, and a file `name` there of `len` bytes (`i * step % 251`):
/// the URL, the file's path and its bytes.
fn sqlite_and_source(
    dir: &tempfile::TempDir,
    name: &str,
    len: u32,
    step: u32,
) -> (String, std::path::PathBuf, Vec<u8>) {
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    let source = dir.path().join(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i * step % 251) as u8).collect();
    std::fs::write(&source, &bytes).expect("write the source file");
    (url, source, bytes)
}

#[test]
fn files_put_get_url_and_ls_stream_through_the_store() {
    let dir = tempfile::tempdir().expect("temp folder");
    let (url, source, bytes) = sqlite_and_source(&dir, "Quarterly report.pdf", 3_000_000, 13);
    let src = source.to_str().expect("utf-8 path");

    let id = stdout(&chatstore(
        &["files", "put", "--database-url", &url, "--user", "u1", src],
        &[],
    ))
    .trim()
    .to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");

    let listed = stdout(&chatstore(
        &["files", "ls", "--database-url", &url, "--user", "u1"],
        &[],
    ));
    let sha = chatstore_core::files::sha256_hex(&bytes);
    assert_eq!(
        listed.trim(),
        format!("{id}\tu1\t3000000\t{sha}\tQuarterly report.pdf")
    );

    let out = dir.path().join("copy.pdf");
    stdout(&chatstore(
        &[
            "files",
            "get",
            "--database-url",
            &url,
            &id,
            out.to_str().expect("utf-8"),
        ],
        &[],
    ));
    assert_eq!(std::fs::read(&out).expect("written"), bytes);

    // A wrong expected hash stores nothing.
    let refused = chatstore(
        &[
            "files",
            "put",
            "--database-url",
            &url,
            "--user",
            "u1",
            "--sha256",
            &"0".repeat(64),
            src,
        ],
        &[],
    );
    assert!(!refused.status.success());
    let listed = stdout(&chatstore(&["files", "ls", "--database-url", &url], &[]));
    assert_eq!(listed.lines().count(), 1);

    // Links need a public URL and a key; without them the store cannot sign.
    let unsigned = chatstore(&["files", "url", "--database-url", &url, &id], &[]);
    assert!(!unsigned.status.success());
    assert!(String::from_utf8_lossy(&unsigned.stderr).contains("does not support"));
    let link = stdout(&chatstore(
        &["files", "url", "--database-url", &url, &id, "--ttl", "120"],
        &[
            ("CHATSTORE_PUBLIC_URL", "https://chat.example.com"),
            ("WEBUI_SECRET_KEY", "an Open WebUI secret key"),
        ],
    ));
    assert!(
        link.starts_with(&format!("https://chat.example.com/files/{id}?exp=")),
        "{link}"
    );
    assert!(link.contains("&sig="));
}

/// `files ls` into a pipe whose reader has gone (`chatstore files ls | head -1` once `head`
/// has its line) stops quietly: no panic message, no crash signal.
#[test]
fn files_ls_into_a_closed_pipe_stops_quietly() {
    let dir = tempfile::tempdir().expect("temp folder");
    let (url, source, _) = sqlite_and_source(&dir, "a.txt", 10, 1);
    let src = source.to_str().expect("utf-8 path");
    for _ in 0..3 {
        stdout(&chatstore(
            &["files", "put", "--database-url", &url, "--user", "u1", src],
            &[],
        ));
    }
    let mut child = Command::new(BIN)
        .args(["files", "ls", "--database-url", &url])
        .env_remove("CHATSTORE_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run chatstore");
    // The reader goes away before the listing is written.
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.code().is_some(),
        "ended by a signal: {:?}",
        out.status
    );
}

/// The status code and body of a plain HTTP/1.0 GET of `url` (`http://host:port/path?query`).
fn plain_get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http link");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut conn = std::net::TcpStream::connect(host).expect("connect to PocketBase");
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("send the request");
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).expect("read the answer");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (status, answer[split + 4..].to_vec())
}

#[test]
fn files_put_get_url_and_ls_work_on_pocketbase() {
    let Some(base) = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL") else {
        return;
    };
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL").expect("email set");
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD").expect("password set");
    // Collections of its own, so parallel tests on the server do not meet.
    let collections = common::PocketBasePrefix::new(&base, "clif");
    let url = collections.url.clone();
    let env = [
        ("CHATSTORE_POCKETBASE_ADMIN_EMAIL", email.as_str()),
        ("CHATSTORE_POCKETBASE_ADMIN_PASSWORD", password.as_str()),
    ];
    let dir = tempfile::tempdir().expect("temp folder");
    let source = dir.path().join("voice memo.m4a");
    let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(&source, &bytes).expect("write the source file");
    let src = source.to_str().expect("utf-8 path");

    let id = stdout(&chatstore(
        &["files", "put", "--database-url", &url, "--user", "u1", src],
        &env,
    ))
    .trim()
    .to_owned();
    let listed = stdout(&chatstore(
        &["files", "ls", "--database-url", &url, "--user", "u1"],
        &env,
    ));
    let sha = chatstore_core::files::sha256_hex(&bytes);
    assert_eq!(
        listed.trim(),
        format!("{id}\tu1\t2500000\t{sha}\tvoice memo.m4a")
    );
    let out = dir.path().join("copy.m4a");
    let out_path = out.to_str().expect("utf-8");
    stdout(&chatstore(
        &["files", "get", "--database-url", &url, &id, out_path],
        &env,
    ));
    assert_eq!(std::fs::read(&out).expect("written"), bytes);

    // PocketBase signs its own links: the file URL with a file token, fetched by a plain
    // client without any other credential.
    let link = stdout(&chatstore(
        &["files", "url", "--database-url", &url, &id, "--ttl", "60"],
        &env,
    ));
    let link = link.trim();
    assert!(link.contains("token="), "{link}");
    let (status, body) = plain_get(link);
    assert_eq!(status, 200, "{link}");
    assert_eq!(body, bytes);
    let (status, _) = plain_get(link.split("?token=").next().expect("the file URL"));
    assert!(
        status == 403 || status == 404,
        "without its token the protected file is refused, got {status}"
    );
}

/// Two downloads to one OUT each write a temporary file of their own: both succeed, OUT is
/// whole, and a `.OUT.part` left by another download is neither written into nor renamed away.
#[test]
fn downloads_to_one_out_never_share_a_temporary_file() {
    let dir = tempfile::tempdir().expect("temp folder");
    let (url, source, bytes) = sqlite_and_source(&dir, "notes.bin", 2_000_000, 7);
    let id = stdout(&chatstore(
        &[
            "files",
            "put",
            "--database-url",
            &url,
            "--user",
            "u1",
            source.to_str().expect("utf-8"),
        ],
        &[],
    ))
    .trim()
    .to_owned();
    let out = dir.path().join("copy.bin");
    let other = dir.path().join(".copy.bin.part");
    std::fs::write(&other, b"another download's bytes").expect("write");
    let get = || {
        Command::new(BIN)
            .args(["files", "get", "--database-url", &url, &id])
            .arg(&out)
            .env_remove("CHATSTORE_DATABASE_URL")
            .env_remove("DATABASE_URL")
            .spawn()
            .expect("run chatstore")
    };
    let (mut a, mut b) = (get(), get());
    assert!(a.wait().expect("waited").success());
    assert!(b.wait().expect("waited").success());
    assert_eq!(std::fs::read(&out).expect("written"), bytes);
    assert_eq!(
        std::fs::read(&other).expect("still there"),
        b"another download's bytes"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part") && n != ".copy.bin.part")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
