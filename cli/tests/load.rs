//! `chatstore load` with real replica processes on one SQLite file: every acknowledged write
//! is there exactly once and the invariants hold (a few seconds; longer runs by hand).

use std::process::Command;

/// Three replica processes on one SQLite file keep every invariant and report per operation.
#[test]
fn three_replicas_on_one_sqlite_file_keep_every_invariant() {
    let dir = std::env::temp_dir().join(format!("chatstore-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let url = format!("sqlite://{}", dir.join("webui.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_chatstore"))
        .args([
            "load",
            "--database-url",
            &url,
            "--replicas",
            "3",
            "--clients",
            "2",
        ])
        .args(["--seconds", "2", "--json"])
        .current_dir(&dir)
        .env_remove("CHATSTORE_DATABASE_URL")
        .output()
        .expect("the chatstore binary runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["replicas"], 3);
    assert!(report["acknowledged_messages"].as_u64().unwrap_or(0) > 0);
    assert_eq!(report["invariant_violations"], serde_json::json!([]));
    for op in [
        "upsert message",
        "create chat",
        "tag change",
        "list chats",
        "put file",
    ] {
        assert!(
            report["operations"][op]["count"].as_u64().unwrap_or(0) > 0,
            "{op} never succeeded: {report}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
