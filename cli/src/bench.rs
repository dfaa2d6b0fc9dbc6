//! `chatstore bench`: runs the benchmark workload once per configured backend, with a progress
//! bar, and writes `report.md` plus one SVG chart per operation; `chatstore bench-realtime`
//! measures the realtime bridge and writes `realtime.md` beside it.

use std::path::PathBuf;
use std::time::Duration;

use chatstore_benches::migration::MigrationConfig;
use chatstore_benches::realtime;
use chatstore_benches::report::{self, REPORT_FILE, ReportConfig};
use chatstore_benches::scaling;
use chatstore_benches::workload::DEFAULT_SEED;
use chatstore_benches::{BenchError, Scale};

/// The options of `chatstore bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Backends to run, comma separated (default: every registered backend whose server is
    /// configured).
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Workload size in chats: 1k, 10k, 100k, or a plain number.
    #[arg(long, default_value = "1k")]
    pub scale: Scale,
    /// Several workload sizes, comma separated (e.g. `1k,10k,100k`): one full report per size
    /// in `<out>/<size>/`, and `<out>/scaling.md` with every operation's p50 at each size side
    /// by side. Replaces --scale.
    #[arg(long, value_delimiter = ',', conflicts_with = "scale")]
    pub scales: Vec<Scale>,
    /// Folder for report.md and the SVG charts.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// Timed samples per operation and backend.
    #[arg(long, default_value_t = 200)]
    pub samples: usize,
    /// Seconds after which an operation stops sampling.
    #[arg(long, default_value_t = 5.0)]
    pub max_seconds: f64,
    /// Workload seed.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// File sizes of the streaming section in MB (decimal), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,100")]
    pub stream_sizes: Vec<f64>,
    /// Transfers per size and side in the streaming section (five times as many for files
    /// under 10 MB); 0 leaves the section out.
    #[arg(long, default_value_t = chatstore_benches::streaming::DEFAULT_RUNS)]
    pub stream_runs: usize,
    /// Run only this section: `streaming` (file transfers against the raw client; the
    /// workload is still loaded, so a small `--scale` keeps it quick), `migration` (the
    /// migration section alone), `vector-copy` (the vector copy sections of `chroma` and
    /// `sqlite` alone, no workload timed).
    #[arg(long, value_enum)]
    pub only: Option<Section>,
    /// Vectors of the Chroma → pgvector and SQLite → pgvector copy sections (when `chroma`,
    /// `sqlite` run); 0 leaves them out.
    #[arg(long, default_value_t = chatstore_benches::vector_copy::DEFAULT_ITEMS)]
    pub copy_items: u64,
    /// Rounds of the vector copy sections' three measurements; the share is their median.
    #[arg(long, default_value_t = chatstore_benches::vector_copy::ROUNDS)]
    pub copy_rounds: usize,
    /// Adds the migration section: `chatstore migrate`'s engine against the raw bulk import of
    /// the same records into PostgreSQL and PocketBase, and its memory at two source sizes.
    #[arg(long)]
    pub migration: bool,
    /// The larger source size of the migration's memory measurement (default: ten times
    /// --scale).
    #[arg(long)]
    pub migration_memory_scale: Option<Scale>,
    /// Rounds of the migration section's throughput comparison per target; the share is
    /// their median.
    #[arg(long, default_value_t = chatstore_benches::migration::ROUNDS)]
    pub migration_rounds: usize,
}

/// A part of the report that can be run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// The streaming files section.
    Streaming,
    /// The migration section (written alone as report.md).
    Migration,
    /// The vector copy sections (Chroma → pgvector, SQLite → pgvector).
    VectorCopy,
}

/// Runs the benchmark and prints where the report went. Failed operations make it an error
/// after the report is written.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    if !(args.max_seconds.is_finite() && args.max_seconds > 0.0 && args.max_seconds <= 86_400.0) {
        return Err(BenchError::Config(format!(
            "--max-seconds must be a number of seconds above 0, at most 86400, got {}",
            args.max_seconds
        )));
    }
    if let Some(bad) = args
        .stream_sizes
        .iter()
        .find(|mb| !(mb.is_finite() && **mb > 0.0))
    {
        return Err(BenchError::Config(format!(
            "--stream-sizes takes positive sizes in MB, got {bad}"
        )));
    }
    if !args.scales.is_empty() {
        if args.only.is_some() {
            return Err(BenchError::Config(
                "--scales runs whole reports; --only takes one --scale".to_owned(),
            ));
        }
        return run_scales(args).await;
    }
    let migration_only = args.only == Some(Section::Migration);
    if let (true, Some(m)) = (migration_only, &migration_config(&args)) {
        let (report, path) = chatstore_benches::migration::run_alone(m, &args.out).await?;
        outln!("wrote {}", path.display());
        let failures = report.failures();
        return if failures.is_empty() {
            Ok(())
        } else {
            Err(BenchError::Config(failures.join("; ")))
        };
    }
    let config = report_config(&args);
    let report = report::run(&config).await?;
    let path = config.out_dir.join(REPORT_FILE);
    outln!(
        "wrote {} ({} backend(s) measured, {} left out) and one SVG chart per operation",
        path.display(),
        report.runs.len(),
        report.skipped.len()
    );
    failed(report.failures())
}

/// The migration section asked for by `args`, if any.
fn migration_config(args: &BenchArgs) -> Option<MigrationConfig> {
    let migration_only = args.only == Some(Section::Migration);
    (args.migration || migration_only).then(|| {
        let mut m = MigrationConfig::new(args.scale, args.seed);
        if let Some(large) = args.migration_memory_scale {
            m.memory_scales = vec![args.scale, large];
        }
        if !args.backends.is_empty() {
            m.targets.retain(|t| args.backends.contains(t));
        }
        m.progress = true;
        m.rounds = args.migration_rounds.max(1);
        m
    })
}

/// The report run `args` ask for, at `args.scale`.
fn report_config(args: &BenchArgs) -> ReportConfig {
    ReportConfig {
        scale: args.scale,
        seed: args.seed,
        backends: args.backends.clone(),
        out_dir: args.out.clone(),
        samples: args.samples.max(1),
        max_time_per_op: Duration::from_secs_f64(args.max_seconds),
        progress: true,
        stream_sizes: args
            .stream_sizes
            .iter()
            .map(|mb| (mb * 1e6).round() as u64)
            .collect(),
        stream_runs: args.stream_runs,
        streaming_only: args.only == Some(Section::Streaming),
        copy_items: args.copy_items,
        copy_rounds: args.copy_rounds.max(1),
        vector_copy_only: args.only == Some(Section::VectorCopy),
        migration: migration_config(args),
    }
}

/// `--scales`: one report per size, each in its own folder, then the scaling table.
async fn run_scales(args: BenchArgs) -> Result<(), BenchError> {
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for scale in args.scales.clone() {
        let one = BenchArgs {
            scale,
            scales: Vec::new(),
            out: args.out.join(scale.to_string()),
            ..args.clone()
        };
        outln!("scale {scale}:");
        let config = report_config(&one);
        let report = report::run(&config).await?;
        outln!("wrote {}", config.out_dir.join(REPORT_FILE).display());
        failures.extend(
            report
                .failures()
                .into_iter()
                .map(|f| format!("{scale}: {f}")),
        );
        reports.push((scale, report));
    }
    let runs: Vec<_> = reports.iter().map(|(s, r)| (*s, r)).collect();
    let path = scaling::write(&runs, &args.out)?;
    outln!("wrote {}", path.display());
    failed(failures)
}

/// `Ok` when no operation failed, else one error naming them all.
fn failed(failures: Vec<String>) -> Result<(), BenchError> {
    if failures.is_empty() {
        Ok(())
    } else {
        Err(BenchError::Config(format!(
            "{} operation(s) failed: {}",
            failures.len(),
            failures.join("; ")
        )))
    }
}

/// The options of `chatstore bench-realtime` (servers from `scripts/services.sh`:
/// `CHATSTORE_TEST_POSTGRES_URL`, `CHATSTORE_TEST_POCKETBASE_URL` and its superuser,
/// `CHATSTORE_TEST_SOCKETIO_PYTHONPATH`).
#[derive(Debug, Clone, clap::Args)]
pub struct RealtimeArgs {
    /// Backends, comma separated: postgres, pocketbase, memory (the bridge's own ceiling),
    /// redis (emits of another bridge through Open WebUI's Socket.IO cluster channel);
    /// default: every one whose server is configured, and memory.
    #[arg(long, value_delimiter = ',')]
    pub backends: Vec<String>,
    /// Sockets connected to the bridge.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Users the sockets log in as (a chat reaches sockets/users sockets).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Python processes holding the sockets.
    #[arg(long, default_value_t = 4)]
    pub processes: usize,
    /// Chats created one at a time (latency of an idle bridge).
    #[arg(long, default_value_t = 300)]
    pub paced_events: usize,
    /// Milliseconds between two paced writes.
    #[arg(long, default_value_t = 20)]
    pub pace_ms: u64,
    /// Chats created by concurrent writers (deliveries per second).
    #[arg(long, default_value_t = 3000)]
    pub burst_events: usize,
    /// Concurrent writers in the burst.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Chats per create_many transaction of a burst writer (1: one create per chat).
    #[arg(long, default_value_t = 8)]
    pub burst_batch: usize,
    /// Folder for realtime.md.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
}

/// Runs the realtime benchmark and prints the section it wrote. Envelopes not delivered make
/// it an error after the file is written.
pub async fn run_realtime(args: RealtimeArgs) -> Result<(), BenchError> {
    let config = realtime::RealtimeConfig {
        backends: args.backends,
        sockets: args.sockets,
        users: args.users,
        processes: args.processes,
        paced_events: args.paced_events,
        pace: Duration::from_millis(args.pace_ms),
        burst_events: args.burst_events,
        writers: args.writers,
        burst_batch: args.burst_batch,
        out_dir: args.out,
        ..realtime::RealtimeConfig::default()
    };
    let report = realtime::run(&config).await?;
    outln!("{}", report.to_markdown());
    outln!(
        "wrote {}",
        config.out_dir.join(realtime::REALTIME_FILE).display()
    );
    let losses = report.losses();
    if losses.is_empty() {
        Ok(())
    } else {
        Err(BenchError::Config(format!(
            "envelopes lost: {}",
            losses.join("; ")
        )))
    }
}
