//! A file larger than the process may comfortably hold round-trips through the streaming
//! calls with peak memory bounded, on SQLite (upload folder) and PocketBase.
//!
//! Each round trip runs in a child process (this test binary re-run on the ignored
//! `round_trip_process`), so its peak RSS (`VmHWM` in `/proc/self/status`) measures that
//! transfer alone. The bytes are generated on the fly and never held whole. The size is
//! 200 MiB by default to keep CI short; `CHATSTORE_TEST_BIG_FILE_MIB=1024` runs the 1 GiB
//! variant.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use chatstore_core::files::hex;
use chatstore_core::transfer::CHUNK_BYTES;
use chatstore_core::{ByteRange, ByteStream, NewFile, Store};
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Peak memory a transfer may add to the process, whatever the file size.
const GROWTH_LIMIT_KIB: u64 = 96 * 1024;

fn size_mib() -> u64 {
    std::env::var("CHATSTORE_TEST_BIG_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// Chunk `i` of the generated file: a fixed pseudo-random block stamped with its index.
fn chunk(i: u64) -> Bytes {
    let mut block = vec![0u8; CHUNK_BYTES];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    block[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(block)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn store_for(backend: &str) -> Option<(Store, Option<tempfile::TempDir>)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir().expect("temp folder");
            let url = format!("sqlite://{}", dir.path().join("webui.db").display());
            let store = chatstore_sql::connect(&url, chatstore_sql::SqlOptions::default())
                .await
                .expect("open SQLite");
            Some((store, Some(dir)))
        }
        "pocketbase" => {
            let url = chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
            let var = |n: &str| std::env::var(n).unwrap_or_default();
            let config = chatstore_pocketbase::PocketBaseConfig::new(
                url,
                var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
                var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
            )
            .with_prefix(format!("big{}_", std::process::id()))
            .dropping_collections_on_drop();
            let pb = chatstore_pocketbase::PocketBase::connect(config)
                .await
                .expect("connect to PocketBase");
            Some((pb.store(), None))
        }
        other => panic!("no big-file round trip for {other}"),
    }
}

/// The child: one round trip of `CHATSTORE_TEST_BIG_FILE_BACKEND`, reporting its peak memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by big_files_round_trip_with_bounded_memory in a process of its own"]
async fn round_trip_process() {
    let Ok(backend) = std::env::var("CHATSTORE_TEST_BIG_FILE_BACKEND") else {
        return;
    };
    let Some((store, _dir)) = store_for(&backend).await else {
        return;
    };
    let chunks = size_mib() * 1024 * 1024 / CHUNK_BYTES as u64;
    let before = peak_rss_kib();
    let started = Instant::now();
    let sent = Arc::new(Mutex::new(Sha256::new()));
    let hashing = sent.clone();
    let body: ByteStream = Box::pin(futures::stream::iter(0..chunks).map(move |i| {
        let c = chunk(i);
        if let Ok(mut h) = hashing.lock() {
            h.update(&c);
        }
        Ok(c)
    }));
    let meta = store
        .files
        .put_stream(
            NewFile::new("u1", "big.bin", Vec::new()).with_id("big"),
            body,
            None,
        )
        .await
        .expect("streamed upload");
    let sent = hex(&sent.lock().expect("hasher").clone().finalize());
    assert_eq!(meta.size, chunks * CHUNK_BYTES as u64);
    assert_eq!(meta.sha256, sent);
    let put_secs = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut stream = store.files.read_stream("big", None).await.expect("read");
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = stream.body.next().await {
        let c = c.expect("intact bytes");
        n += c.len() as u64;
        got.update(&c);
    }
    assert_eq!(n, meta.size);
    assert_eq!(hex(&got.finalize()), sent);
    let get_secs = started.elapsed().as_secs_f64();

    // The last two chunks through a byte range.
    let start = (chunks - 2) * CHUNK_BYTES as u64;
    let tail = store
        .files
        .read_stream("big", Some(ByteRange::from(start)))
        .await
        .expect("range")
        .into_vec()
        .await
        .expect("range bytes");
    let mut expected = chunk(chunks - 2).to_vec();
    expected.extend_from_slice(&chunk(chunks - 1));
    assert!(tail == expected, "the range holds the last two chunks");
    store.files.delete("big").await.expect("delete");
    let after = peak_rss_kib();
    println!(
        "BIGFILE backend={backend} mib={} before_kib={before} peak_kib={after} put_s={put_secs:.1} get_s={get_secs:.1}",
        size_mib()
    );
}

fn round_trip(backend: &str) {
    if backend == "pocketbase"
        && chatstore_contract::require_env("CHATSTORE_TEST_POCKETBASE_URL").is_none()
    {
        return;
    }
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["round_trip_process", "--exact", "--ignored", "--nocapture"])
        .env("CHATSTORE_TEST_BIG_FILE_BACKEND", backend)
        .output()
        .expect("run the round trip process");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "round trip on {backend} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("BIGFILE "))
        .unwrap_or_else(|| panic!("no report from the round trip: {text}"));
    eprintln!("{line}");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {line}"))
    };
    let growth = field("peak_kib").saturating_sub(field("before_kib"));
    assert!(
        growth < GROWTH_LIMIT_KIB,
        "a {} MiB round trip on {backend} raised peak RSS by {} MiB (limit {} MiB)",
        size_mib(),
        growth / 1024,
        GROWTH_LIMIT_KIB / 1024
    );
}

#[test]
fn a_big_file_round_trips_on_sqlite_with_bounded_memory() {
    round_trip("sqlite");
}

#[test]
fn a_big_file_round_trips_on_pocketbase_with_bounded_memory() {
    round_trip("pocketbase");
}
