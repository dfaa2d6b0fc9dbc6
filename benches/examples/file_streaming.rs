//! Streaming file throughput against a raw copy of the same bytes, at 1 MB and 100 MB:
//! SQLite's upload folder (`put_stream` vs copying the file and syncing it; `read_stream` vs
//! reading the file) and, when `CHATSTORE_TEST_POCKETBASE_URL` is set, PocketBase (streamed
//! `put_stream` / `read_stream`, absolute figures only). Peak RSS (`VmHWM`) is printed after
//! each size so that memory per transfer can be compared between the sizes.
//!
//! `cargo run --release -p chatstore-benches --example file_streaming`
//! (`CHATSTORE_BENCH_FILE_SIZES=1,100` in MB, `CHATSTORE_BENCH_FILE_RUNS=5`).

use std::path::Path;
use std::time::Instant;

use chatstore_core::transfer::CHUNK_BYTES;
use chatstore_core::{ByteStream, NewFile, Store};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn file_stream(path: &Path) -> ByteStream {
    let file = tokio::fs::File::open(path).await.expect("open source");
    Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        CHUNK_BYTES,
    ))
}

async fn drain(mut body: ByteStream) -> u64 {
    let mut n = 0;
    while let Some(c) = body.next().await {
        n += c.expect("bytes").len() as u64;
    }
    n
}

async fn raw_copy(src: &Path, dst: &Path) {
    tokio::fs::copy(src, dst).await.expect("copy");
    tokio::fs::File::open(dst)
        .await
        .expect("open")
        .sync_all()
        .await
        .expect("sync");
}

async fn raw_read(path: &Path) -> u64 {
    let mut f = tokio::fs::File::open(path).await.expect("open");
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut n = 0;
    loop {
        let k = f.read(&mut buf).await.expect("read");
        if k == 0 {
            return n;
        }
        n += k as u64;
    }
}

async fn measure(
    store: &Store,
    label: &str,
    src: &Path,
    mb: u64,
    runs: usize,
    raw_dir: Option<&Path>,
) {
    let (mut put, mut get, mut raw_put, mut raw_get) = (vec![], vec![], vec![], vec![]);
    for run in 0..runs {
        let id = format!("bench-{mb}-{run}");
        let t = Instant::now();
        store
            .files
            .put_stream(
                NewFile::new("u1", "bench.bin", Vec::new()).with_id(&id),
                file_stream(src).await,
                None,
            )
            .await
            .expect("put_stream");
        put.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let n = drain(
            store
                .files
                .read_stream(&id, None)
                .await
                .expect("read_stream")
                .body,
        )
        .await;
        get.push(t.elapsed().as_secs_f64());
        assert_eq!(n, mb * 1_000_000);
        store.files.delete(&id).await.expect("delete");
        if let Some(dir) = raw_dir {
            let dst = dir.join(format!("raw-{run}"));
            let t = Instant::now();
            raw_copy(src, &dst).await;
            raw_put.push(t.elapsed().as_secs_f64());
            let t = Instant::now();
            raw_read(&dst).await;
            raw_get.push(t.elapsed().as_secs_f64());
            let _ = tokio::fs::remove_file(&dst).await;
        }
    }
    let mbps = |s: f64| mb as f64 / s;
    let (p, g) = (median(put), median(get));
    if raw_dir.is_some() {
        let (rp, rg) = (median(raw_put), median(raw_get));
        println!(
            "| {label} | {mb} MB | put {:.0} MB/s (raw {:.0}, {:.0}%) | get {:.0} MB/s (raw {:.0}, {:.0}%) | peak RSS {:.1} MiB |",
            mbps(p),
            mbps(rp),
            100.0 * rp / p,
            mbps(g),
            mbps(rg),
            100.0 * rg / g,
            peak_rss_mib()
        );
    } else {
        println!(
            "| {label} | {mb} MB | put {:.0} MB/s | get {:.0} MB/s | peak RSS {:.1} MiB |",
            mbps(p),
            mbps(g),
            peak_rss_mib()
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<u64> = std::env::var("CHATSTORE_BENCH_FILE_SIZES")
        .unwrap_or_else(|_| "1,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = std::env::var("CHATSTORE_BENCH_FILE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp folder");
    let url = format!("sqlite://{}", dir.path().join("webui.db").display());
    let sqlite = chatstore_sql::connect(&url, chatstore_sql::SqlOptions::default())
        .await
        .expect("sqlite");
    let pocketbase = match std::env::var("CHATSTORE_TEST_POCKETBASE_URL") {
        Ok(pb_url) => {
            let var = |n: &str| std::env::var(n).unwrap_or_default();
            let config = chatstore_pocketbase::PocketBaseConfig::new(
                pb_url,
                var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
                var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
            )
            .with_prefix(format!("fb{}_", std::process::id()))
            .dropping_collections_on_drop();
            Some(
                chatstore_pocketbase::PocketBase::connect(config)
                    .await
                    .expect("pocketbase"),
            )
        }
        Err(_) => None,
    };
    println!("| backend | size | put (vs raw) | get (vs raw) | memory |\n|---|---|---|---|---|");
    for mb in sizes {
        let src = dir.path().join(format!("src-{mb}"));
        {
            let mut f = tokio::fs::File::create(&src).await.expect("source");
            let block: Vec<u8> = (0..1_000_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect();
            for _ in 0..mb {
                f.write_all(&block).await.expect("write source");
            }
            f.sync_all().await.expect("sync source");
        }
        measure(&sqlite, "sqlite", &src, mb, runs, Some(dir.path())).await;
        if let Some(pb) = &pocketbase {
            measure(&pb.store(), "pocketbase", &src, mb, runs, None).await;
        }
    }
}
