//! Streaming file transfers: `files.put_stream` and `files.read_stream` of a 1 MB and a 100 MB
//! file, timed against the backend's raw client copying the same bytes (a file copy into the
//! upload folder for the SQL backends, a raw multipart upload and a raw GET with a file token
//! for PocketBase; see [`RawBaseline::upload`]), with the memory each transfer takes.
//!
//! The source files are written once per run into a temporary folder ([`Sources`]) and read
//! from disk by both sides, in [`CHUNK_BYTES`] chunks. Each size is transferred `runs` times per
//! side ([`runs_for`]: five times as often under 10 MB), the sides taking turns; throughput is
//! the size over the median time.
//!
//! Memory per transfer is the growth of the process's resident set during one transfer: the
//! kernel's peak-RSS mark is reset before it (`5` written to `/proc/self/clear_refs`) and
//! `VmHWM` minus the `VmRSS` before the transfer is read after it ([`RssMethod::PeakReset`]);
//! where the reset is refused, `VmRSS` is sampled every millisecond on a thread instead
//! ([`RssMethod::Sampling`]). Memory that the allocator already holds from an earlier
//! transfer does not count again, so the figure is what a transfer needs on top of a warm
//! process; a transfer that buffers the whole file shows as growth of about its size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatstore_core::transfer::{CHUNK_BYTES, Hashing, MAX_STREAMED_FILE_BYTES};
use chatstore_core::{ByteStream, Error, ErrorKind, NewFile, Result, Store};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::baseline::RawBaseline;
use crate::rng::Rng;

/// The file sizes a report streams by default: 1 MB and 100 MB (decimal megabytes).
pub const DEFAULT_SIZES: [u64; 2] = [1_000_000, 100_000_000];

/// Transfers per size and side by default (see [`runs_for`]).
pub const DEFAULT_RUNS: usize = 3;

/// Files smaller than this are transferred [`SMALL_FILE_RUNS_FACTOR`] times as often.
pub const SMALL_FILE_BYTES: u64 = 10_000_000;

/// How many times as many transfers a small file gets: one of 1 MB takes milliseconds, so a
/// median of three moves with whatever else the machine does in those milliseconds (a
/// PocketBase put share of 71% in one report, 124% over 15 transfers a few minutes later).
pub const SMALL_FILE_RUNS_FACTOR: usize = 5;

/// Transfers per side for a file of `size` bytes when `runs` are asked for.
pub fn runs_for(size: u64, runs: usize) -> usize {
    if size < SMALL_FILE_BYTES {
        runs.saturating_mul(SMALL_FILE_RUNS_FACTOR)
    } else {
        runs
    }
}

/// Memory per transfer counts as flat across sizes when the largest size grows the resident
/// set by at most this much more than the smallest.
pub const FLAT_SLACK_BYTES: u64 = 4 * 1024 * 1024;

/// One source file of a given size, with its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Where the bytes are.
    pub path: PathBuf,
    /// How many there are.
    pub size: u64,
    /// Their lower-case hex sha256.
    pub sha256: String,
}

impl Source {
    /// The bytes of this file as a stream read from disk in [`CHUNK_BYTES`] chunks, as an
    /// application streams an upload it received.
    pub async fn stream(&self) -> Result<ByteStream> {
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            file,
            CHUNK_BYTES,
        )))
    }
}

/// The source files of one run, in a temporary folder removed when this is dropped.
#[derive(Debug)]
pub struct Sources {
    dir: PathBuf,
    /// One per size, in the order asked for.
    pub files: Vec<Source>,
}

impl Sources {
    /// Writes one file of pseudo-random bytes (seeded) per size.
    pub async fn create(sizes: &[u64], seed: u64) -> Result<Sources> {
        let dir = crate::backends::fresh_dir("stream-sources")?;
        let mut sources = Sources {
            dir,
            files: Vec::with_capacity(sizes.len()),
        };
        let mut rng = Rng::for_item(seed, "stream", 0);
        let block: Vec<u8> = (0..CHUNK_BYTES).map(|_| rng.below(256) as u8).collect();
        for &size in sizes {
            let path = sources.dir.join(format!("source-{size}.bin"));
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(|e| io_error(&path, e))?;
            let mut left = size;
            while left > 0 {
                let n = left.min(block.len() as u64) as usize;
                file.write_all(&block[..n])
                    .await
                    .map_err(|e| io_error(&path, e))?;
                left -= n as u64;
            }
            file.flush().await.map_err(|e| io_error(&path, e))?;
            drop(file);
            let mut source = Source {
                path,
                size,
                sha256: String::new(),
            };
            let mut hashing = Hashing::new(source.stream().await?, MAX_STREAMED_FILE_BYTES);
            while hashing.next_chunk().await?.is_some() {}
            source.sha256 = hashing
                .received()
                .map(|r| r.sha256)
                .ok_or_else(|| Error::backend_msg("hashing a stream source did not finish"))?;
            sources.files.push(source);
        }
        Ok(sources)
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::backend(format!("stream source {}", path.display()), e)
}

/// How memory per transfer was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssMethod {
    /// The peak-RSS mark reset before each transfer and read after it (`VmHWM`).
    PeakReset,
    /// `VmRSS` sampled every millisecond during each transfer.
    Sampling,
    /// Neither is available (no `/proc`): no memory figures.
    Unavailable,
}

impl RssMethod {
    /// How the report explains the figures.
    pub fn describe(self) -> &'static str {
        match self {
            RssMethod::PeakReset => {
                "the kernel's peak-RSS mark reset before each transfer (`5` written to \
                 `/proc/self/clear_refs`), then `VmHWM` after it minus `VmRSS` before it"
            }
            RssMethod::Sampling => {
                "`VmRSS` sampled every millisecond during each transfer (the peak-RSS reset was \
                 refused), highest sample minus the value before it"
            }
            RssMethod::Unavailable => "not measured (`/proc/self/status` is not readable)",
        }
    }
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`).
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Measures the growth of the resident set across one transfer (or one migration).
pub(crate) struct RssWatch {
    before: u64,
    method: RssMethod,
    sampler: Option<(Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>)>,
}

impl RssWatch {
    pub(crate) fn start() -> RssWatch {
        let Some(before) = status_bytes("VmRSS") else {
            return RssWatch {
                before: 0,
                method: RssMethod::Unavailable,
                sampler: None,
            };
        };
        if reset_peak() {
            return RssWatch {
                before,
                method: RssMethod::PeakReset,
                sampler: None,
            };
        }
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(before));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_bytes("VmRSS") {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        RssWatch {
            before,
            method: RssMethod::Sampling,
            sampler: Some((stop, peak, thread)),
        }
    }

    /// The growth in bytes (`None` when not measurable).
    pub(crate) fn finish(self) -> Option<u64> {
        let peak = match (self.method, self.sampler) {
            (RssMethod::PeakReset, _) => status_bytes("VmHWM")?,
            (RssMethod::Sampling, Some((stop, peak, thread))) => {
                stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
                peak.load(Ordering::Relaxed)
            }
            _ => return None,
        };
        Some(peak.saturating_sub(self.before))
    }
}

/// The method this process can use (probed once per run).
pub fn rss_method() -> RssMethod {
    let watch = RssWatch::start();
    let method = watch.method;
    let _ = watch.finish();
    method
}

/// One side's figures for one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Transfers {
    /// Upload times, one per run.
    pub put: Vec<Duration>,
    /// Download times, one per run.
    pub get: Vec<Duration>,
    /// The largest resident-set growth of an upload, in bytes.
    pub put_rss: Option<u64>,
    /// The largest resident-set growth of a download, in bytes.
    pub get_rss: Option<u64>,
}

impl Transfers {
    fn new() -> Self {
        Transfers {
            put: Vec::new(),
            get: Vec::new(),
            put_rss: None,
            get_rss: None,
        }
    }

    /// Upload throughput in MB/s at the median time.
    pub fn put_mbps(&self, size: u64) -> f64 {
        mbps(size, &self.put)
    }

    /// Download throughput in MB/s at the median time.
    pub fn get_mbps(&self, size: u64) -> f64 {
        mbps(size, &self.get)
    }
}

fn mbps(size: u64, times: &[Duration]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = sorted
        .get(sorted.len() / 2)
        .map_or(0.0, Duration::as_secs_f64);
    size as f64 / 1e6 / median.max(1e-9)
}

/// How one side of one size went.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamOutcome {
    /// Timed.
    Measured(Transfers),
    /// The backend or baseline does not stream files.
    Unsupported,
    /// A transfer failed; the message says how.
    Failed(String),
}

impl StreamOutcome {
    /// The figures, when measured.
    pub fn transfers(&self) -> Option<&Transfers> {
        match self {
            StreamOutcome::Measured(t) => Some(t),
            _ => None,
        }
    }
}

/// One size on one backend: the adapter and the raw client.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamResult {
    /// File size in bytes.
    pub size: u64,
    /// Through `put_stream` / `read_stream`.
    pub adapter: StreamOutcome,
    /// Through the raw client (`Unsupported` when the backend has none).
    pub raw: StreamOutcome,
}

impl StreamResult {
    /// Adapter throughput as a share of the raw client's, `(put, get)`, when both measured.
    pub fn shares(&self) -> Option<(f64, f64)> {
        let (a, r) = (self.adapter.transfers()?, self.raw.transfers()?);
        Some((
            a.put_mbps(self.size) / r.put_mbps(self.size).max(1e-12),
            a.get_mbps(self.size) / r.get_mbps(self.size).max(1e-12),
        ))
    }
}

/// Streams every source through the store (as `user_id`'s file) and through the raw baseline,
/// [`runs_for`] its size times each, the sides taking turns; what each side stores is deleted
/// again after each run.
pub async fn measure(
    store: &Store,
    raw: Option<&dyn RawBaseline>,
    user_id: &str,
    sources: &Sources,
    runs: usize,
    progress: &(dyn Fn() + Sync),
) -> Vec<StreamResult> {
    let mut out = Vec::with_capacity(sources.files.len());
    for source in &sources.files {
        let mut adapter = Side::new(None);
        let mut baseline = Side::new(raw.is_none().then_some(StreamOutcome::Unsupported));
        for run in 0..runs_for(source.size, runs) {
            for raw_turn in [run % 2 == 1, run % 2 == 0] {
                let id = format!("stream-{}-{run}-{}", source.size, u8::from(raw_turn));
                if raw_turn {
                    if let (Some(raw), true) = (raw, baseline.active()) {
                        let result = raw_transfer(raw, &id, source, user_id).await;
                        baseline.record(result);
                    }
                } else if adapter.active() {
                    let result = adapter_transfer(store, &id, source, user_id).await;
                    adapter.record(result);
                }
                progress();
            }
        }
        out.push(StreamResult {
            size: source.size,
            adapter: adapter.outcome(),
            raw: baseline.outcome(),
        });
    }
    out
}

struct Side {
    transfers: Transfers,
    stopped: Option<StreamOutcome>,
}

/// One transfer: upload time and growth, download time and growth.
type Timed = (Duration, Option<u64>, Duration, Option<u64>);

impl Side {
    fn new(stopped: Option<StreamOutcome>) -> Self {
        Side {
            transfers: Transfers::new(),
            stopped,
        }
    }

    fn active(&self) -> bool {
        self.stopped.is_none()
    }

    fn record(&mut self, result: Result<Timed>) {
        match result {
            Ok((put, put_rss, get, get_rss)) => {
                let t = &mut self.transfers;
                t.put.push(put);
                t.get.push(get);
                t.put_rss = max_opt(t.put_rss, put_rss);
                t.get_rss = max_opt(t.get_rss, get_rss);
            }
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                self.stopped = Some(StreamOutcome::Unsupported)
            }
            Err(e) => self.stopped = Some(StreamOutcome::Failed(e.to_string())),
        }
    }

    fn outcome(self) -> StreamOutcome {
        match self.stopped {
            Some(outcome) => outcome,
            None if self.transfers.put.is_empty() => StreamOutcome::Unsupported,
            None => StreamOutcome::Measured(self.transfers),
        }
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

async fn adapter_transfer(
    store: &Store,
    id: &str,
    source: &Source,
    user_id: &str,
) -> Result<Timed> {
    let file = NewFile::new(user_id, "stream.bin", Vec::new()).with_id(id);
    let body = source.stream().await?;
    let watch = RssWatch::start();
    let started = Instant::now();
    let stored = store.files.put_stream(file, body, None).await;
    let put = started.elapsed();
    let put_rss = watch.finish();
    stored?;
    let watch = RssWatch::start();
    let started = Instant::now();
    let read = async {
        let mut stream = store.files.read_stream(id, None).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.body.next().await {
            n += chunk
                .map_err(|e| Error::backend("reading a streamed file", e))?
                .len() as u64;
        }
        Ok::<_, Error>(n)
    }
    .await;
    let get = started.elapsed();
    let get_rss = watch.finish();
    let deleted = store.files.delete(id).await;
    let n = read?;
    deleted?;
    check_size(n, source)?;
    Ok((put, put_rss, get, get_rss))
}

async fn raw_transfer(
    raw: &dyn RawBaseline,
    id: &str,
    source: &Source,
    user_id: &str,
) -> Result<Timed> {
    let watch = RssWatch::start();
    let started = Instant::now();
    let stored = raw.upload(id, source, user_id).await;
    let put = started.elapsed();
    let put_rss = watch.finish();
    stored?;
    let watch = RssWatch::start();
    let started = Instant::now();
    let read = raw.download(id).await;
    let get = started.elapsed();
    let get_rss = watch.finish();
    let removed = raw.remove_upload(id).await;
    let n = read?;
    removed?;
    check_size(n, source)?;
    Ok((put, put_rss, get, get_rss))
}

/// The lower-case hex sha256 a raw client computes of the bytes it moves: the hash Open WebUI
/// records for a file (`file.hash`) and a checked read compares, so the raw clients do that
/// work too and the comparison is of the same logical work.
pub(crate) fn hex_digest(hasher: sha2::Sha256) -> String {
    use sha2::Digest;
    chatstore_core::files::hex(&hasher.finalize())
}

/// A raw client's hash that differs from the source's: the bytes did not arrive intact.
pub(crate) fn check_digest(what: &str, got: &str, source: &Source) -> Result<()> {
    if got == source.sha256 {
        Ok(())
    } else {
        Err(Error::backend_msg(format!(
            "raw {what}: sha256 {got} of the bytes moved, the source has {}",
            source.sha256
        )))
    }
}

fn check_size(n: u64, source: &Source) -> Result<()> {
    if n == source.size {
        Ok(())
    } else {
        Err(Error::backend_msg(format!(
            "a streamed file of {} bytes read back as {n}",
            source.size
        )))
    }
}

/// `1 MB`, `100 MB`, `250 kB`: a decimal size for people.
pub fn format_size(bytes: u64) -> String {
    if bytes >= 1_000_000 && bytes.is_multiple_of(1_000_000) {
        format!("{} MB", bytes / 1_000_000)
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.0} kB", bytes as f64 / 1e3)
    }
}

/// `0.4 MiB`: a memory figure for people.
pub fn format_mib(bytes: Option<u64>) -> String {
    match bytes {
        Some(b) => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_memory_format_for_people() {
        assert_eq!(format_size(1_000_000), "1 MB");
        assert_eq!(format_size(100_000_000), "100 MB");
        assert_eq!(format_size(250_000), "250 kB");
        assert_eq!(format_mib(Some(3 * 1024 * 1024 / 2)), "1.5 MiB");
        assert_eq!(format_mib(None), "—");
    }

    #[test]
    fn throughput_is_the_size_over_the_median_time() {
        let times = [1, 2, 4].map(Duration::from_secs);
        assert!((mbps(10_000_000, &times) - 5.0).abs() < 1e-9);
    }

    /// A transfer that holds its whole payload shows as resident-set growth of about its size.
    #[test]
    fn a_buffered_transfer_shows_as_growth() {
        let watch = RssWatch::start();
        if watch.method == RssMethod::Unavailable {
            return;
        }
        let held = vec![1u8; 32 * 1024 * 1024];
        std::hint::black_box(&held);
        let grown = watch.finish().expect("measured");
        drop(held);
        assert!(grown >= 30 * 1024 * 1024, "grew by {grown} bytes");
    }
}
