//! `chatstore bench`: runs the benchmark workload once per configured backend, with a progress
//! bar, and writes `report.md` plus one SVG chart per operation.

use std::path::PathBuf;
use std::time::Duration;

use chatstore_benches::report::{self, REPORT_FILE, ReportConfig};
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
    /// Transfers per size and side in the streaming section; 0 leaves the section out.
    #[arg(long, default_value_t = chatstore_benches::streaming::DEFAULT_RUNS)]
    pub stream_runs: usize,
}

/// Runs the benchmark and prints where the report went. Failed operations make it an error
/// after the report is written.
pub async fn run(args: BenchArgs) -> Result<(), BenchError> {
    if !(args.max_seconds.is_finite() && args.max_seconds > 0.0) {
        return Err(BenchError::Config(format!(
            "--max-seconds must be a positive number, got {}",
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
    let config = ReportConfig {
        scale: args.scale,
        seed: args.seed,
        backends: args.backends,
        out_dir: args.out,
        samples: args.samples.max(1),
        max_time_per_op: Duration::from_secs_f64(args.max_seconds),
        progress: true,
        stream_sizes: args
            .stream_sizes
            .iter()
            .map(|mb| (mb * 1e6).round() as u64)
            .collect(),
        stream_runs: args.stream_runs,
    };
    let report = report::run(&config).await?;
    let path = config.out_dir.join(REPORT_FILE);
    println!(
        "wrote {} ({} backend(s) measured, {} left out) and one SVG chart per operation",
        path.display(),
        report.runs.len(),
        report.skipped.len()
    );
    let failures = report.failures();
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
