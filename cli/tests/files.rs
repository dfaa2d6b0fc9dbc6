//! `chatstore files put|get|url|ls` on a SQLite store, through the binary.

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

#[test]
fn files_put_get_url_and_ls_stream_through_the_store() {
    let dir = tempfile::tempdir().expect("temp folder");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    let source = dir.path().join("Quarterly report.pdf");
    let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 13 % 251) as u8).collect();
    std::fs::write(&source, &bytes).expect("write the source file");
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
