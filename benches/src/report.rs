//! The comparison report: the workload run once per configured backend, every operation timed
//! through the `Store` and through the backend's raw baseline, written as `report.md` with one
//! SVG chart per operation next to it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatstore_core::{ErrorKind, Store};
use chatstore_router::{Router, RouterStats};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backends::{
    self, BackendSpec, NOT_YET_BUILT, Opened, PGVECTOR_ENV, POSTGRES_ENV, Reference, Settle,
};
use crate::baseline::{self, RawBaseline};
use crate::chart::{self, Bar};
use crate::error::BenchError;
use crate::machine::Machine;
use crate::migration::{MigrationConfig, MigrationReport};
use crate::ops::{Fixture, Op};
use crate::stats::{Stats, format_duration, format_rate, group_thousands};
use crate::streaming::{
    self, FLAT_SLACK_BYTES, RssMethod, Sources, StreamOutcome, StreamResult, Transfers, format_mib,
    format_size,
};
use crate::vector_copy::{self, COPY_TARGET, CopyOutcome, CopySource};
use crate::workload::{DEFAULT_SEED, KNOWLEDGE_COLLECTION, Scale, Workload};

/// The name of the Markdown file a report is written to.
pub const REPORT_FILE: &str = "report.md";

/// Fewer samples than this are never taken because of the time budget.
const MIN_SAMPLES: usize = 10;

/// What to run and where to write it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportConfig {
    /// Workload size.
    pub scale: Scale,
    /// Workload seed.
    pub seed: u64,
    /// Backends to run by name; empty runs every registered one.
    pub backends: Vec<String>,
    /// Folder for `report.md` and the SVG charts (created when missing).
    pub out_dir: PathBuf,
    /// Timed samples per operation and backend (and as many for the raw baseline).
    pub samples: usize,
    /// Time after which an operation stops sampling (once it has 10 samples).
    pub max_time_per_op: Duration,
    /// Whether to draw a progress bar on the terminal.
    pub progress: bool,
    /// File sizes (bytes) of the streaming section; empty leaves it out.
    pub stream_sizes: Vec<u64>,
    /// Transfers per size and side in the streaming section; 0 leaves it out.
    pub stream_runs: usize,
    /// Only the streaming section: the workload's records are loaded (its users own the
    /// files), but no operation is timed and no bulk import runs.
    pub streaming_only: bool,
    /// Vectors of the vector copy sections (Chroma → pgvector when `chroma` is among the
    /// backends, SQLite → pgvector when `sqlite` is, each when a pgvector server is
    /// configured); 0 leaves them out.
    pub copy_items: u64,
    /// Rounds of the vector copy sections' three measurements (see [`vector_copy::ROUNDS`]).
    pub copy_rounds: usize,
    /// Only the vector copy sections: no backend's workload is loaded or timed.
    pub vector_copy_only: bool,
    /// The migration section (see [`crate::migration`]); `None` leaves it out.
    pub migration: Option<MigrationConfig>,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            scale: Scale::SMALL,
            seed: DEFAULT_SEED,
            backends: Vec::new(),
            out_dir: PathBuf::from("bench-report"),
            samples: 200,
            max_time_per_op: Duration::from_secs(5),
            progress: true,
            stream_sizes: streaming::DEFAULT_SIZES.to_vec(),
            stream_runs: streaming::DEFAULT_RUNS,
            streaming_only: false,
            copy_items: vector_copy::DEFAULT_ITEMS,
            copy_rounds: vector_copy::ROUNDS,
            vector_copy_only: false,
            migration: None,
        }
    }
}

/// How one side (adapter or raw baseline) of one operation went.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Timed.
    Measured(Stats),
    /// The backend or baseline does not do this operation.
    Unsupported,
    /// The operation failed; the message says how.
    Failed(String),
}

impl Outcome {
    /// The figures, when measured.
    pub fn stats(&self) -> Option<&Stats> {
        match self {
            Outcome::Measured(s) => Some(s),
            _ => None,
        }
    }
}

/// One operation on one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct OpResult {
    /// The operation.
    pub op: Op,
    /// Through the `Store`.
    pub adapter: Outcome,
    /// Through the raw baseline (`Unsupported` when the backend has none).
    pub raw: Outcome,
    /// The run's reference stores, each alone, measured in the same loop (see
    /// [`crate::backends::Reference`]; empty for most backends).
    pub references: Vec<(&'static str, Outcome)>,
}

impl OpResult {
    /// The outcome of the reference store `name`, when the run had one.
    pub fn reference(&self, name: &str) -> Option<&Outcome> {
        self.references
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, outcome)| outcome)
    }
}

/// One backend's run.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendRun {
    /// Backend name.
    pub name: String,
    /// The raw baseline's name, when the backend has one.
    pub baseline: Option<&'static str>,
    /// The largest acceptable adapter/raw ratio.
    pub baseline_target: Option<f64>,
    /// Time to load the workload.
    pub load_time: Duration,
    /// Records loaded.
    pub records: u64,
    /// The raw baseline's bulk import of the same workload into a second, fresh opening of
    /// the backend (a single sample; `Unsupported` when there is none).
    pub raw_import: Outcome,
    /// The smallest acceptable adapter/raw import throughput ratio.
    pub import_target: Option<f64>,
    /// Every operation, in [`Op::ALL`] order.
    pub ops: Vec<OpResult>,
    /// The streaming section, one entry per file size (empty when not streamed).
    pub streaming: Vec<StreamResult>,
    /// The smallest acceptable adapter/raw streaming throughput ratio.
    pub stream_target: Option<f64>,
    /// The router's counters over the timed operations (loading left out), when the backend
    /// is the rollout router (repairs logged and shadow differences: a clean rollout has
    /// none).
    pub router_stats: Option<RouterStats>,
}

impl BackendRun {
    /// This backend's result for `op`.
    pub fn result(&self, op: Op) -> Option<&OpResult> {
        self.ops.iter().find(|r| r.op == op)
    }
}

/// A finished comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The workload.
    pub workload: Workload,
    /// Samples asked for per operation.
    pub samples: usize,
    /// Time budget per operation.
    pub max_time_per_op: Duration,
    /// Where it ran.
    pub machine: Machine,
    /// The backends that ran.
    pub runs: Vec<BackendRun>,
    /// Backends left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Backends that failed to open or load, with the error.
    pub failed: Vec<(String, String)>,
    /// Transfers per size and side in the streaming section (0: not streamed).
    pub stream_runs: usize,
    /// How memory per transfer was measured.
    pub rss_method: RssMethod,
    /// Backends left out of the streaming section, with the reason.
    pub stream_skipped: Vec<(String, String)>,
    /// The vector copy sections, one per source backend that ran (`chroma`, `sqlite`).
    pub vector_copies: Vec<(CopySource, CopyOutcome)>,
    /// The migration section, when it ran.
    pub migration: Option<MigrationReport>,
}

/// Runs the workload on every selected backend and writes `report.md` and the charts into
/// `config.out_dir`. Returns the report; check [`Report::failures`] before trusting it.
pub async fn run(config: &ReportConfig) -> Result<Report, BenchError> {
    let report = measure(config).await?;
    report.write(&config.out_dir)?;
    Ok(report)
}

/// Runs the workload on every selected backend without writing anything.
pub async fn measure(config: &ReportConfig) -> Result<Report, BenchError> {
    let specs = backends::select(&config.backends).map_err(BenchError::Config)?;
    let mut report = measure_backends(specs, config).await?;
    if let Some(migration) = &config.migration {
        match crate::migration::measure(migration).await {
            Ok(m) => report.migration = Some(m),
            Err(e) => report.failed.push(("migration".to_owned(), e.to_string())),
        }
    }
    Ok(report)
}

/// Runs the workload on the given backends (ignoring `config.backends`) without writing
/// anything; for backends that are not in the registry, such as test doubles.
pub async fn measure_backends(
    specs: Vec<BackendSpec>,
    config: &ReportConfig,
) -> Result<Report, BenchError> {
    let workload = Workload::new(config.scale, config.seed);
    let mut report = Report {
        workload,
        samples: config.samples.max(1),
        max_time_per_op: config.max_time_per_op,
        machine: Machine::detect(),
        runs: Vec::new(),
        skipped: Vec::new(),
        failed: Vec::new(),
        stream_runs: 0,
        rss_method: streaming::rss_method(),
        stream_skipped: Vec::new(),
        vector_copies: Vec::new(),
        migration: None,
    };
    // The streaming section's source files, written once for every backend.
    let streamed =
        config.stream_runs > 0 && !config.stream_sizes.is_empty() && !config.vector_copy_only;
    if streamed {
        report.stream_runs = config.stream_runs;
    }
    let sources = if streamed && specs.iter().any(|s| s.streams) {
        Some(
            Sources::create(&config.stream_sizes, config.seed)
                .await
                .map_err(|e| BenchError::store("streaming sources", e))?,
        )
    } else {
        None
    };
    for spec in specs {
        let url = match spec.availability() {
            Ok(url) => url,
            Err(reason) => {
                if config.progress {
                    eprintln!("skipping {}: {reason}", spec.name);
                }
                report.skipped.push((spec.name.to_owned(), reason));
                continue;
            }
        };
        if streamed && !spec.streams {
            report.stream_skipped.push((
                spec.name.to_owned(),
                "holds files in memory by design, or composes backends streamed on their own"
                    .to_owned(),
            ));
        }
        let sources = sources.as_ref().filter(|_| spec.streams);
        let copy_source = CopySource::for_backend(spec.name, url.as_deref())
            .filter(|_| config.copy_items > 0 && !config.streaming_only);
        if !config.vector_copy_only {
            match run_backend(&spec, url, workload, config, sources).await {
                Ok(run) => report.runs.push(run),
                Err(e) => report.failed.push((spec.name.to_owned(), e.to_string())),
            }
        }
        if let Some(source) = copy_source {
            if config.progress {
                eprintln!(
                    "{}: copying {} vectors into pgvector",
                    spec.name, config.copy_items
                );
            }
            let outcome = match [PGVECTOR_ENV, POSTGRES_ENV]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
            {
                Some(pg) => {
                    vector_copy::measure(
                        &source,
                        &pg,
                        config.copy_items,
                        config.seed,
                        config.copy_rounds,
                    )
                    .await
                }
                None => CopyOutcome::Skipped(format!(
                    "{PGVECTOR_ENV} (or {POSTGRES_ENV}) is unset: no pgvector to copy into"
                )),
            };
            report.vector_copies.push((source, outcome));
        }
    }
    Ok(report)
}

fn progress_bar(config: &ReportConfig, len: u64) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:34} [{bar:32.cyan/blue}] {percent:>3}% {elapsed_precise} (eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn run_backend(
    spec: &BackendSpec,
    url: Option<String>,
    workload: Workload,
    config: &ReportConfig,
    sources: Option<&Sources>,
) -> Result<BackendRun, BenchError> {
    let fail = |e| BenchError::store(spec.name, e);
    let opened = spec.open(url.clone()).await.map_err(fail)?;
    let outcome = measure_opened(spec, url, workload, config, &opened, sources).await;
    let closed = opened.close().await;
    let run = outcome?;
    closed.map_err(fail)?;
    Ok(run)
}

async fn measure_opened(
    spec: &BackendSpec,
    url: Option<String>,
    workload: Workload,
    config: &ReportConfig,
    opened: &Opened,
    sources: Option<&Sources>,
) -> Result<BackendRun, BenchError> {
    let fail = |e| BenchError::store(spec.name, e);
    let store = &opened.store;
    if let Ok(existing) = store.chats.scan(None, 1).await
        && !existing.is_empty()
    {
        return Err(BenchError::Config(format!(
            "{}: the store is not empty; a backend's open function must give a fresh store",
            spec.name
        )));
    }
    let samples = config.samples.max(1) as u64;
    let sides = 1 + u64::from(opened.baseline.is_some()) + opened.references.len() as u64;
    let per_op = samples * sides;
    let timed_ops: &[Op] = if config.streaming_only { &[] } else { &Op::ALL };
    let sources = sources.filter(|_| store.capabilities().files);
    let transfers = sources.map_or(0, |s| {
        s.files
            .iter()
            .map(|f| streaming::runs_for(f.size, config.stream_runs) as u64 * 2)
            .sum()
    });
    let loaded_per_store =
        workload.records() + workload.notes() + crate::models::records(&workload);
    let loaded_references = opened.references.iter().filter(|r| r.separate()).count() as u64;
    let bar = progress_bar(
        config,
        loaded_per_store * (1 + loaded_references) + per_op * timed_ops.len() as u64 + transfers,
    );
    bar.set_message(format!("{}: loading", spec.name));
    let started = Instant::now();
    workload.load(store, &|n| bar.inc(n)).await.map_err(fail)?;
    let load_time = started.elapsed();
    let fx = Arc::new(Fixture::new(workload));
    if !config.streaming_only {
        // Rows (Open WebUI's other tables) are loaded apart: the bulk-import comparison keeps
        // comparing the same records on both sides.
        workload
            .load_rows(store, &|n| bar.inc(n))
            .await
            .map_err(fail)?;
        if store.capabilities().vectors {
            // What an operator does after a bulk load (pgvector indexes and calibrates the
            // collection now rather than in the background during the measurements).
            bar.set_message(format!("{}: preparing vectors", spec.name));
            store
                .vectors
                .optimize(KNOWLEDGE_COLLECTION)
                .await
                .map_err(fail)?;
        }
        fx.record_row_plans(store).await.map_err(fail)?;
        for reference in opened.references.iter().filter(|r| r.separate()) {
            bar.set_message(format!("{}: loading {} alone", spec.name, reference.name));
            load_reference(&reference.store, workload, &bar)
                .await
                .map_err(fail)?;
        }
    }
    // The router's counters from here on: loading races its own shadow reads (a read's
    // shadow on the new store may run after the loader's next write), the timed calls do not
    // (each is settled before the next starts).
    if let Some(settle) = &opened.settle {
        settle().await;
    }
    let router_before = opened.router.as_ref().map(Router::stats);
    let mut ops = Vec::with_capacity(timed_ops.len());
    for &op in timed_ops {
        bar.set_message(format!("{}: {}", spec.name, op.name()));
        let before = bar.position();
        let mut result = measure_op(
            store,
            opened.baseline.as_deref(),
            &opened.references,
            opened.settle.as_ref(),
            &fx,
            op,
            config,
            &bar,
        )
        .await;
        // The references first: what they created is not on the store under test, whose
        // deletes then find only its own records.
        let mut stores: Vec<&Store> = opened
            .references
            .iter()
            .filter(|r| r.separate())
            .map(|r| &r.store)
            .collect();
        stores.push(store);
        if let Err(e) = fx.clean_up_on(&stores).await {
            result.adapter = Outcome::Failed(format!("cleaning up after the operation: {e}"));
        }
        ops.push(result);
        bar.set_position(before + per_op);
    }
    let streaming = match sources {
        Some(sources) => {
            bar.set_message(format!("{}: streaming files", spec.name));
            streaming::measure(
                store,
                opened.baseline.as_deref(),
                &fx.heavy_user_id,
                sources,
                config.stream_runs,
                &|| bar.inc(1),
            )
            .await
        }
        None => Vec::new(),
    };
    let raw_import = match &opened.baseline {
        Some(_) if !config.streaming_only => {
            bar.set_message(format!("{}: raw import", spec.name));
            raw_import(spec, url, workload).await
        }
        _ => Outcome::Unsupported,
    };
    bar.finish_and_clear();
    // The store's name tells where its vectors live ("postgres+pgvector" -> "postgres (pgvector)").
    let name = match store.backend_name().split_once('+') {
        Some((_, vectors)) if !spec.name.contains(vectors) => format!("{} ({vectors})", spec.name),
        _ => spec.name.to_owned(),
    };
    Ok(BackendRun {
        name,
        baseline: opened.baseline.as_ref().map(|b| b.name()),
        baseline_target: spec.baseline_target,
        load_time,
        records: workload.records(),
        raw_import,
        import_target: spec.import_target,
        ops,
        streaming,
        stream_target: spec.stream_target,
        router_stats: opened
            .router
            .as_ref()
            .zip(router_before)
            .map(|(router, before)| since(router.stats(), before)),
    })
}

/// The router's counts between `before` and `after`.
fn since(after: RouterStats, before: RouterStats) -> RouterStats {
    RouterStats {
        shadow_reads: after.shadow_reads.saturating_sub(before.shadow_reads),
        shadow_diffs: after.shadow_diffs.saturating_sub(before.shadow_diffs),
        shadow_errors: after.shadow_errors.saturating_sub(before.shadow_errors),
        shadow_timeouts: after.shadow_timeouts.saturating_sub(before.shadow_timeouts),
        shadow_skipped: after.shadow_skipped.saturating_sub(before.shadow_skipped),
        repairs_logged: after.repairs_logged.saturating_sub(before.repairs_logged),
        repair_log_failures: after
            .repair_log_failures
            .saturating_sub(before.repair_log_failures),
    }
}

/// Loads a reference store the way the store under test was loaded (records, rows, vectors
/// prepared).
async fn load_reference(
    store: &Store,
    workload: Workload,
    bar: &ProgressBar,
) -> chatstore_core::Result<()> {
    workload.load(store, &|n| bar.inc(n)).await?;
    workload.load_rows(store, &|n| bar.inc(n)).await?;
    if store.capabilities().vectors {
        store.vectors.optimize(KNOWLEDGE_COLLECTION).await?;
    }
    Ok(())
}

/// Times the raw baseline's bulk import of the workload into a second, fresh opening of the
/// backend.
async fn raw_import(spec: &BackendSpec, url: Option<String>, workload: Workload) -> Outcome {
    let opened = match spec.open(url).await {
        Ok(opened) => opened,
        Err(e) => return Outcome::Failed(format!("opening a second store: {e}")),
    };
    let outcome = match &opened.baseline {
        None => Outcome::Unsupported,
        Some(raw) => {
            let started = Instant::now();
            match raw.import(&workload, &|_| {}).await {
                Ok(()) => {
                    Stats::of(&[started.elapsed()]).map_or(Outcome::Unsupported, Outcome::Measured)
                }
                Err(e) if e.kind() == ErrorKind::Unsupported => Outcome::Unsupported,
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
    };
    match opened.close().await {
        Err(e) if !matches!(outcome, Outcome::Failed(_)) => {
            Outcome::Failed(format!("closing the second store: {e}"))
        }
        _ => outcome,
    }
}

/// One side of a measurement: samples so far, or why it stopped.
struct Side {
    samples: Vec<Duration>,
    stopped: Option<Outcome>,
}

impl Side {
    fn new(stopped: Option<Outcome>) -> Self {
        Side {
            samples: Vec::new(),
            stopped,
        }
    }

    fn active(&self) -> bool {
        self.stopped.is_none()
    }

    fn record(&mut self, result: chatstore_core::Result<()>, took: Duration, timed: bool) {
        match result {
            Ok(()) if timed => self.samples.push(took),
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                self.stopped = Some(Outcome::Unsupported)
            }
            Err(e) => self.stopped = Some(Outcome::Failed(e.to_string())),
        }
    }

    fn outcome(self) -> Outcome {
        match self.stopped {
            Some(outcome) => outcome,
            None => Stats::of(&self.samples).map_or(Outcome::Unsupported, Outcome::Measured),
        }
    }
}

/// The order in which `n` sides take their samples: a cycle of `n²` turns in which every side
/// follows every side (itself included) exactly once. Whatever one call leaves behind (an idle
/// wait for a router's shadow read, a warm or cold cache, a server still busy) falls on the
/// next call, and with this order every side is the next call equally often; for two sides it
/// is `0 0 1 1`, the same as alternating which side goes first.
///
/// It is a de Bruijn sequence of order 2: every `a`, then `a b` for every `b > a`.
fn balanced_order(n: usize) -> Vec<usize> {
    let mut order = Vec::with_capacity(n * n);
    for a in 0..n {
        order.push(a);
        for b in a + 1..n {
            order.extend([a, b]);
        }
    }
    order
}

/// What one side of a measurement runs.
enum Runner<'a> {
    /// The store under test (then settled, when it works in the background).
    Store(&'a Store),
    /// Its raw baseline.
    Raw(&'a dyn RawBaseline),
    /// A reference store, alone, or with a second store called at the same time.
    Reference(&'a Store, Option<&'a Store>),
}

/// The untimed pause after every call (see [`measure_op`]): longer than a thread spins
/// before it sleeps, so that every call of every side starts with the process's threads
/// asleep.
///
/// Without it, a call inherited whatever the previous call, often the other side's, left
/// awake: on the 2-core benchmark machine raw sqlx's pool hands every connection back on a
/// task of its own, which kept a second core awake for the adapter's next call or not, and a
/// woken sleeping core costs tens of microseconds per hand-off to SQLite's worker thread.
/// Measured with SQLite's upsert message, the same statements on both sides: 482 µs adapter
/// against 326 µs raw back to back; 450 against 511 with the adapter's kept connection
/// switched off (the cost moved to whichever side followed); 294 against 293 with the
/// process on one core, 344 against 334 with the second core kept busy, 504 against 466
/// with this gap (`benches/README.md`, "Every call starts idle").
const IDLE_GAP: Duration = Duration::from_millis(2);

/// Times `op` on the store under test, its raw baseline and its references, their samples
/// interleaved in [`balanced_order`], each side's `i`-th sample on the same input. When the
/// store under test works in the background (the router's shadow reads), that work is
/// settled (untimed) after every call of any side; then the next call of any side starts
/// after the same [`IDLE_GAP`].
#[allow(clippy::too_many_arguments)]
async fn measure_op(
    store: &Store,
    raw: Option<&dyn RawBaseline>,
    references: &[Reference],
    settle: Option<&Settle>,
    fx: &Arc<Fixture>,
    op: Op,
    config: &ReportConfig,
    bar: &ProgressBar,
) -> OpResult {
    let supported = op.supported_by(store.capabilities());
    let mut runners = vec![Runner::Store(store)];
    let mut sides = vec![Side::new((!supported).then_some(Outcome::Unsupported))];
    if let Some(raw) = raw {
        runners.push(Runner::Raw(raw));
        sides.push(Side::new(None));
    }
    for reference in references {
        let supported = reference.runs(op) && op.supported_by(reference.store.capabilities());
        runners.push(Runner::Reference(
            &reference.store,
            reference.alongside.as_ref(),
        ));
        sides.push(Side::new((!supported).then_some(Outcome::Unsupported)));
    }
    let order = balanced_order(runners.len());
    let samples = config.samples.max(1);
    let mut warmup = (samples / 10).clamp(1, 20);
    let mut taken = vec![0usize; runners.len()];
    let started = Instant::now();
    let mut measuring_since: Option<Instant> = None;
    for &s in order.iter().cycle() {
        // The fewest samples any side still sampling has taken.
        let Some(least) = (0..sides.len())
            .filter(|&s| sides[s].active())
            .map(|s| taken[s])
            .min()
        else {
            break;
        };
        if least >= warmup + samples {
            break;
        }
        if measuring_since.is_none() {
            // Warm up for at most a tenth of the budget, so that slow operations keep their
            // time for timed samples.
            if least > 0 && least < warmup && started.elapsed() > config.max_time_per_op / 10 {
                warmup = least;
            }
            if least >= warmup {
                measuring_since = Some(Instant::now());
            }
        }
        if let Some(since) = measuring_since
            && least >= warmup + MIN_SAMPLES.min(samples)
            && since.elapsed() > config.max_time_per_op
        {
            break;
        }
        if !sides[s].active() || taken[s] >= warmup + samples {
            continue;
        }
        let i = taken[s];
        taken[s] += 1;
        let timed = i >= warmup;
        let t = Instant::now();
        let result = match runners[s] {
            Runner::Store(store) | Runner::Reference(store, None) => {
                op.run(store, fx, i as u64).await
            }
            Runner::Reference(first, Some(second)) => {
                let (second, fixture, i) = (second.clone(), fx.clone(), i as u64);
                let task = tokio::spawn(async move { op.run(&second, &fixture, i).await });
                let first = op.run(first, fx, i).await;
                match task.await {
                    Ok(second) => first.and(second),
                    Err(e) => Err(chatstore_core::Error::backend(
                        "the second store's call did not finish",
                        e,
                    )),
                }
            }
            Runner::Raw(raw) => baseline::run(raw, op, fx, i as u64).await,
        };
        sides[s].record(result, t.elapsed(), timed);
        if let Some(settle) = settle {
            // The store under test's background work is waited for: a routed call's shadow
            // read must not run into the next call.
            settle().await;
        }
        // Every side's next call, whichever side made this one, starts after the same idle
        // gap: otherwise it would find awake whatever this call left awake (see IDLE_GAP).
        tokio::time::sleep(IDLE_GAP).await;
        if timed {
            bar.inc(1);
        }
    }
    let mut sides = sides.into_iter();
    let adapter = sides.next().map_or(Outcome::Unsupported, Side::outcome);
    let raw = match raw {
        Some(_) => sides.next().map_or(Outcome::Unsupported, Side::outcome),
        None => Outcome::Unsupported,
    };
    OpResult {
        op,
        adapter,
        raw,
        references: references
            .iter()
            .map(|r| r.name)
            .zip(sides.map(Side::outcome))
            .collect(),
    }
}

impl Report {
    /// Everything that went wrong: backends that failed to open or load, operations that
    /// failed. Empty when the report can be trusted.
    pub fn failures(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .failed
            .iter()
            .map(|(name, e)| format!("{name}: {e}"))
            .collect();
        for (source, outcome) in &self.vector_copies {
            if let CopyOutcome::Failed(e) = outcome {
                out.push(format!("{} → pgvector copy: {e}", source.name()));
            }
        }
        if let Some(migration) = &self.migration {
            out.extend(migration.failures());
        }
        for run in &self.runs {
            if let Outcome::Failed(e) = &run.raw_import {
                out.push(format!("{} raw import: {e}", run.name));
            }
            for s in &run.streaming {
                if let StreamOutcome::Failed(e) = &s.adapter {
                    out.push(format!(
                        "{} streaming {}: {e}",
                        run.name,
                        format_size(s.size)
                    ));
                }
                if let StreamOutcome::Failed(e) = &s.raw {
                    out.push(format!(
                        "{} {} streaming {}: {e}",
                        run.name,
                        run.baseline.unwrap_or("baseline"),
                        format_size(s.size)
                    ));
                }
            }
            for r in &run.ops {
                if let Outcome::Failed(e) = &r.adapter {
                    out.push(format!("{} {}: {e}", run.name, r.op.slug()));
                }
                if let Outcome::Failed(e) = &r.raw {
                    out.push(format!(
                        "{} {} {}: {e}",
                        run.name,
                        run.baseline.unwrap_or("baseline"),
                        r.op.slug()
                    ));
                }
                for (name, outcome) in &r.references {
                    if let Outcome::Failed(e) = outcome {
                        out.push(format!("{} {name} alone {}: {e}", run.name, r.op.slug()));
                    }
                }
            }
        }
        out
    }

    /// The fastest adapter p50 of `op` across backends.
    pub fn fastest(&self, op: Op) -> Option<Duration> {
        self.runs
            .iter()
            .filter_map(|run| run.result(op)?.adapter.stats().map(|s| s.p50))
            .min()
    }

    /// The chart of `op`: one bar per backend and per raw baseline that measured it.
    pub fn bars(&self, op: Op) -> Vec<Bar> {
        let mut bars = Vec::new();
        for run in &self.runs {
            let Some(r) = run.result(op) else { continue };
            if let Some(s) = r.adapter.stats() {
                bars.push(Bar {
                    label: run.name.clone(),
                    p50: s.p50,
                    p95: s.p95,
                    raw: false,
                });
            }
            if let Some(s) = r.raw.stats() {
                bars.push(Bar {
                    label: format!("{} ({})", run.name, run.baseline.unwrap_or("raw")),
                    p50: s.p50,
                    p95: s.p95,
                    raw: true,
                });
            }
        }
        bars
    }

    /// Target misses: `(backend, op, ratio, target)` where the adapter is slower than its raw
    /// baseline by more than the project accepts.
    pub fn target_misses(&self) -> Vec<(String, Op, f64, f64)> {
        let mut out = Vec::new();
        for run in &self.runs {
            let Some(target) = run.baseline_target else {
                continue;
            };
            for r in &run.ops {
                if let Some(ratio) = raw_ratio(r)
                    && ratio > target
                {
                    out.push((run.name.clone(), r.op, ratio, target));
                }
            }
        }
        out
    }

    /// Targets that were set and could not be judged, `(what, why)`: an operation whose
    /// adapter or raw side failed on a backend with a latency target, a raw bulk import that
    /// failed (or never ran) on one with an import target, a streamed size that failed on one
    /// with a streaming target, and a backend with any target that failed to open or load.
    /// A report is within its targets only when this and every `*_misses` list are empty.
    pub fn targets_not_measured(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for run in &self.runs {
            let baseline = run.baseline.unwrap_or("the raw baseline");
            if run.baseline_target.is_some() {
                for r in &run.ops {
                    let side = match (&r.adapter, &r.raw) {
                        // The baseline does not do this operation: no target to judge.
                        (_, Outcome::Unsupported) | (Outcome::Unsupported, _) => continue,
                        (Outcome::Measured(_), Outcome::Measured(_)) => continue,
                        (Outcome::Failed(_), _) => "the adapter failed",
                        (_, Outcome::Failed(_)) => "the raw side failed",
                    };
                    out.push((
                        format!("{}, {}", run.name, r.op.name()),
                        format!("{side}; {baseline}"),
                    ));
                }
            }
            if run.import_target.is_some() && run.raw_import.stats().is_none() {
                let why = match &run.raw_import {
                    Outcome::Failed(_) => "the raw import failed",
                    _ => "no raw import ran",
                };
                out.push((format!("{}, bulk import", run.name), why.to_owned()));
            }
            if run.stream_target.is_some() {
                for s in run.streaming.iter().filter(|s| s.shares().is_none()) {
                    out.push((
                        format!("{}, streaming {}", run.name, format_size(s.size)),
                        "a side failed".to_owned(),
                    ));
                }
            }
        }
        let specs = crate::backends::registry();
        for (name, _) in &self.failed {
            let targeted = specs.iter().any(|spec| {
                spec.name == name
                    && (spec.baseline_target.is_some()
                        || spec.import_target.is_some()
                        || spec.stream_target.is_some())
            });
            if targeted {
                out.push((
                    name.clone(),
                    "the backend failed to open or load".to_owned(),
                ));
            }
        }
        out
    }

    /// Streaming misses: `(backend, size, direction, share, target)` where the adapter's
    /// throughput is below `target` of its raw client's (`direction` is `put` or `get`).
    pub fn stream_misses(&self) -> Vec<(String, u64, &'static str, f64, f64)> {
        let mut out = Vec::new();
        for run in &self.runs {
            let Some(target) = run.stream_target else {
                continue;
            };
            for s in &run.streaming {
                if let Some((put, get)) = s.shares() {
                    for (direction, share) in [("put", put), ("get", get)] {
                        if share < target {
                            out.push((run.name.clone(), s.size, direction, share, target));
                        }
                    }
                }
            }
        }
        out
    }

    /// Backends whose largest streamed size grew the resident set by more than
    /// [`FLAT_SLACK_BYTES`] over the smallest, `(backend, direction, small, large)` in bytes.
    pub fn memory_not_flat(&self) -> Vec<(String, &'static str, u64, u64)> {
        let mut out = Vec::new();
        for run in &self.runs {
            let measured: Vec<&Transfers> = run
                .streaming
                .iter()
                .filter_map(|s| s.adapter.transfers())
                .collect();
            let (Some(first), Some(last)) = (measured.first(), measured.last()) else {
                continue;
            };
            if measured.len() < 2 {
                continue;
            }
            for (direction, small, large) in [
                ("put", first.put_rss, last.put_rss),
                ("get", first.get_rss, last.get_rss),
            ] {
                if let (Some(small), Some(large)) = (small, large)
                    && large > small + FLAT_SLACK_BYTES
                {
                    out.push((run.name.clone(), direction, small, large));
                }
            }
        }
        out
    }

    /// Import misses: `(backend, share, target)` where the adapter loads the workload at less
    /// than `target` of its raw baseline's bulk-import throughput.
    pub fn import_misses(&self) -> Vec<(String, f64, f64)> {
        let mut out = Vec::new();
        for run in &self.runs {
            if let (Some(target), Some(raw)) = (run.import_target, run.raw_import.stats()) {
                let share = raw.mean.as_secs_f64() / run.load_time.as_secs_f64().max(1e-9);
                if share < target {
                    out.push((run.name.clone(), share, target));
                }
            }
        }
        out
    }

    /// The report as Markdown; charts are linked as `{op slug}.svg` next to it.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let w = &self.workload;
        let m = &self.machine;
        let _ = writeln!(md, "# chatstore benchmark report\n");
        let _ = writeln!(
            md,
            "Workload at scale **{}**: {} chats of {} users (the heavy user owns {}), {} files, \
             {} vector chunks of 384 dimensions; seed `{:#x}`. Up to {} timed samples per \
             operation and backend after a warm-up, at most {:.0} s each; operations run one at \
             a time. p50 and p95 are nearest-rank percentiles; ops/s is 1 / mean latency.\n",
            w.scale,
            group_thousands(w.chats()),
            group_thousands(w.users()),
            group_thousands(w.heavy_user_chats()),
            group_thousands(w.files()),
            group_thousands(w.chats()),
            w.seed,
            self.samples,
            self.max_time_per_op.as_secs_f64()
        );
        let _ = writeln!(md, "## Machine\n");
        let _ = writeln!(md, "| | |\n|---|---|");
        let _ = writeln!(md, "| CPU | {} |", m.cpu);
        let _ = writeln!(md, "| cores (`nproc`) | {} |", m.nproc);
        let _ = writeln!(md, "| memory | {} |", m.memory);
        let _ = writeln!(md, "| kernel | {} |", m.kernel);
        let _ = writeln!(md, "| idle CPUs (cpuidle) | {} |", m.cpu_idle);
        let _ = writeln!(md, "| load average at start | {} |", m.load);
        let _ = writeln!(md, "| date | {} |", m.date);
        let _ = writeln!(md, "| git commit | `{}` |", m.commit);
        let _ = writeln!(md, "| build | {} ({}) |", m.build, m.rustc);
        if m.build == "debug" {
            let _ = writeln!(
                md,
                "\n**Debug build:** these figures are not comparable with release builds; run \
                 `cargo run --release -p chatstore-cli -- bench` for real numbers."
            );
        }
        let _ = writeln!(md, "\n## Backends\n");
        for run in &self.runs {
            let rate = run.records as f64 / run.load_time.as_secs_f64().max(1e-9);
            let _ = writeln!(
                md,
                "- **{}**: loaded {} records in {:.2} s ({} records/s); {}.",
                run.name,
                group_thousands(run.records),
                run.load_time.as_secs_f64(),
                format_rate(rate),
                match (run.baseline, run.baseline_target) {
                    (Some(b), Some(t)) =>
                        format!("raw baseline: {b} (target: adapter ≤ {t:.2}× raw)"),
                    (Some(b), None) => format!("raw baseline: {b}"),
                    (None, _) => "no raw baseline".to_owned(),
                }
            );
            match &run.raw_import {
                Outcome::Measured(s) => {
                    let raw_rate = run.records as f64 / s.mean.as_secs_f64().max(1e-9);
                    let share = rate / raw_rate;
                    let verdict = match run.import_target {
                        Some(t) if share < t => format!(
                            " (target ≥ {:.0}%: **missed by {} points**)",
                            t * 100.0,
                            points_short(t, share)
                        ),
                        Some(t) => format!(" (target ≥ {:.0}%: met)", t * 100.0),
                        None => String::new(),
                    };
                    let _ = writeln!(
                        md,
                        "  - raw bulk import of the same workload: {:.2} s ({} records/s); \
                         the adapter loads at {:.0}% of it{verdict}.",
                        s.mean.as_secs_f64(),
                        format_rate(raw_rate),
                        share * 100.0
                    );
                }
                Outcome::Failed(e) => {
                    let _ = writeln!(md, "  - raw bulk import **failed**: {e}");
                }
                Outcome::Unsupported => {}
            }
        }
        for (name, reason) in &self.skipped {
            let _ = writeln!(md, "- {name}: left out of this report: {reason}.");
        }
        for (name, error) in &self.failed {
            let _ = writeln!(md, "- {name}: **failed**: {error}");
        }
        let in_build: Vec<String> = self
            .runs
            .iter()
            .map(|r| r.name.clone())
            .chain(self.skipped.iter().map(|(n, _)| n.clone()))
            .chain(self.failed.iter().map(|(n, _)| n.clone()))
            .collect();
        for (name, krate) in NOT_YET_BUILT {
            if !in_build.iter().any(|n| n == name) {
                let _ = writeln!(
                    md,
                    "- {name}: left out of this report: not in this build yet (waits for `{krate}`)."
                );
            }
        }
        self.summary_markdown(&mut md);
        self.targets_markdown(&mut md);
        crate::rollout::markdown(self, &mut md);
        self.streaming_markdown(&mut md);
        for (source, outcome) in &self.vector_copies {
            vector_copy_markdown(&mut md, source, outcome);
        }
        if let Some(migration) = &self.migration {
            let _ = writeln!(md, "\n{}", migration.to_markdown());
        }
        for op in self.timed_ops() {
            self.op_markdown(&mut md, op);
        }
        md
    }

    fn streaming_markdown(&self, md: &mut String) {
        let streamed: Vec<&BackendRun> = self
            .runs
            .iter()
            .filter(|r| !r.streaming.is_empty())
            .collect();
        if self.stream_runs == 0 || (streamed.is_empty() && self.stream_skipped.is_empty()) {
            return;
        }
        let _ = writeln!(md, "\n## Streaming files\n");
        let _ = writeln!(
            md,
            "`files.put_stream` of a file read from disk in 64 KiB chunks, then `files.read_stream` \
             of it drained (sha256 checked on the way), against the backend's raw client copying \
             the same bytes: for local storage the same upload stream written into a new file in \
             the upload folder in 1 MiB writes and hashed on the way, the file and then the \
             folder synced (a durable, hashed file copy, without the store's row), and a read of \
             it in 256 KiB chunks, hashed; for PocketBase a \
             raw multipart record creation on the same collection with the bytes streamed from \
             disk and hashed, and the record read plus a GET of the file with a file token, its \
             body taken chunk by chunk and hashed. Both sides do the same logical work: the \
             sha256 Open WebUI records for a file, and the check a trusted read makes. {} transfers per size and side ({} for files under {} MB, whose transfers take milliseconds), the sides taking turns; MB/s is \
             decimal megabytes over the median time; share is adapter / raw throughput. Memory \
             per transfer is the growth of this process's resident set during one transfer, the \
             largest of the runs: {} (the server's own memory, PocketBase's or PostgreSQL's, is \
             not counted). Memory is flat when the largest size grows it by at most {} more than \
             the smallest.\n",
            self.stream_runs,
            streaming::runs_for(0, self.stream_runs),
            streaming::SMALL_FILE_BYTES / 1_000_000,
            self.rss_method.describe(),
            format_mib(Some(FLAT_SLACK_BYTES))
        );
        if !streamed.is_empty() {
            let _ = writeln!(
                md,
                "| backend | size | put MB/s | raw put MB/s | put share | get MB/s | raw get MB/s \
                 | get share | memory per put | per get | raw: per put | per get |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
        }
        for run in &streamed {
            for s in &run.streaming {
                let size = format_size(s.size);
                let mut row = format!("| {} | {size} |", run.name);
                let (a, r) = (s.adapter.transfers(), s.raw.transfers());
                let share = |x: f64| match run.stream_target {
                    Some(t) if x < t => format!(
                        "**{}** (target ≥ {:.0}%: missed by {} points)",
                        share_below(x, t),
                        t * 100.0,
                        points_short(t, x)
                    ),
                    _ => format!("{:.0}%", x * 100.0),
                };
                let shares = s.shares();
                for (k, direction) in ["put", "get"].into_iter().enumerate() {
                    let rate = |t: &Transfers| {
                        if direction == "put" {
                            t.put_mbps(s.size)
                        } else {
                            t.get_mbps(s.size)
                        }
                    };
                    let adapter = match &s.adapter {
                        StreamOutcome::Measured(t) => format!("{:.0}", rate(t)),
                        other => stream_cell(other),
                    };
                    let raw = match &s.raw {
                        StreamOutcome::Measured(t) => format!("{:.0}", rate(t)),
                        other => stream_cell(other),
                    };
                    let ratio =
                        shares.map_or("—".to_owned(), |(p, g)| share(if k == 0 { p } else { g }));
                    row.push_str(&format!(" {adapter} | {raw} | {ratio} |"));
                }
                for t in [a, r] {
                    row.push_str(&format!(
                        " {} | {} |",
                        format_mib(t.and_then(|t| t.put_rss)),
                        format_mib(t.and_then(|t| t.get_rss))
                    ));
                }
                let _ = writeln!(md, "{row}");
            }
        }
        for run in &streamed {
            let measured: Vec<(u64, &Transfers)> = run
                .streaming
                .iter()
                .filter_map(|s| Some((s.size, s.adapter.transfers()?)))
                .collect();
            if let (Some((small, a)), Some((large, b)), true) =
                (measured.first(), measured.last(), measured.len() > 1)
            {
                let flat = !self
                    .memory_not_flat()
                    .iter()
                    .any(|(name, ..)| *name == run.name);
                let _ = writeln!(
                    md,
                    "\n- **{}**: memory per transfer {} between {} and {} (put {} → {}, get {} → \
                     {}).",
                    run.name,
                    if flat { "flat" } else { "**not flat**" },
                    format_size(*small),
                    format_size(*large),
                    format_mib(a.put_rss),
                    format_mib(b.put_rss),
                    format_mib(a.get_rss),
                    format_mib(b.get_rss)
                );
            }
        }
        for (name, reason) in &self.stream_skipped {
            let _ = writeln!(md, "\n- {name}: not streamed: {reason}.");
        }
    }

    fn summary_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Summary (p50)\n");
        let mut header = "| operation |".to_owned();
        let mut rule = "|---|".to_owned();
        for run in &self.runs {
            header.push_str(&format!(" {} |", run.name));
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for op in Op::ALL {
            let mut row = format!("| [{}](#{}) |", op.name(), anchor(op.name()));
            for run in &self.runs {
                let cell = run.result(op).map_or("—".to_owned(), |r| cell(&r.adapter));
                row.push_str(&format!(" {cell} |"));
            }
            let _ = writeln!(md, "{row}");
        }
    }

    fn targets_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Targets\n");
        let with_target: Vec<&BackendRun> = self
            .runs
            .iter()
            .filter(|r| {
                r.baseline.is_some()
                    && (r.baseline_target.is_some()
                        || r.import_target.is_some()
                        || r.stream_target.is_some())
            })
            .collect();
        let not_measured = self.targets_not_measured();
        if with_target.is_empty() && not_measured.is_empty() {
            let _ = writeln!(
                md,
                "No backend in this run has a raw baseline with a target (the SQL and PocketBase \
                 adapters must stay within 1.15× of raw sqlx / raw HTTP per operation, and \
                 PocketBase's bulk import must reach 80% of the batch API's throughput)."
            );
            return;
        }
        for (name, size, direction, share, target) in self.stream_misses() {
            let _ = writeln!(
                md,
                "- **{name}, streaming {direction} of {}**: {} of the raw client's throughput, \
                 target ≥ {:.0}%: missed by {} points.",
                format_size(size),
                share_below(share, target),
                target * 100.0,
                points_short(target, share)
            );
        }
        for (name, direction, small, large) in self.memory_not_flat() {
            let _ = writeln!(
                md,
                "- **{name}, streaming {direction}**: memory per transfer not flat ({} at the \
                 smallest size, {} at the largest).",
                format_mib(Some(small)),
                format_mib(Some(large))
            );
        }
        for (name, share, target) in self.import_misses() {
            let _ = writeln!(
                md,
                "- **{name}, bulk import**: the adapter loads at {} of the raw import's \
                 throughput, target ≥ {:.0}%: missed by {} points.",
                share_below(share, target),
                target * 100.0,
                points_short(target, share)
            );
        }
        for (what, why) in &not_measured {
            let _ = writeln!(md, "- **{what}**: not measured ({why}).");
        }
        let misses = self.target_misses();
        if misses.is_empty()
            && self.stream_misses().is_empty()
            && self.memory_not_flat().is_empty()
            && self.import_misses().is_empty()
            && not_measured.is_empty()
        {
            let _ = writeln!(
                md,
                "Every adapter is within its target of its raw baseline."
            );
        }
        for (name, op, ratio, target) in misses {
            let _ = writeln!(
                md,
                "- **{name}, {}**: {ratio:.2}× raw, target ≤ {target:.2}×: missed by {:.0}%.",
                op.name(),
                (ratio / target - 1.0) * 100.0
            );
        }
    }

    /// The operations some backend has a result for (none in a run of the streaming or vector
    /// copy sections alone), in [`Op::ALL`] order.
    fn timed_ops(&self) -> impl Iterator<Item = Op> + '_ {
        Op::ALL
            .into_iter()
            .filter(|&op| self.runs.iter().any(|run| run.result(op).is_some()))
    }

    fn op_markdown(&self, md: &mut String, op: Op) {
        let _ = writeln!(md, "\n## {}\n", op.name());
        let _ = writeln!(md, "{}.\n", op.describe());
        let _ = writeln!(
            md,
            "| backend | p50 | p95 | ops/s | × fastest | × raw | samples |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        let fastest = self.fastest(op);
        for run in &self.runs {
            let Some(r) = run.result(op) else { continue };
            match &r.adapter {
                Outcome::Measured(s) => {
                    let vs_fastest =
                        fastest.map_or("—".to_owned(), |f| format!("{:.2}", ratio(s.p50, f)));
                    let vs_raw = match (raw_ratio(r), run.baseline_target) {
                        (Some(x), Some(t)) if x > t => {
                            format!(
                                "**{x:.2}** (target ≤ {t:.2}: over by {:.0}%)",
                                (x / t - 1.0) * 100.0
                            )
                        }
                        (Some(x), _) => format!("{x:.2}"),
                        (None, _) => "—".to_owned(),
                    };
                    let _ = writeln!(
                        md,
                        "| {} | {} | {} | {} | {vs_fastest} | {vs_raw} | {} |",
                        run.name,
                        format_duration(s.p50),
                        format_duration(s.p95),
                        format_rate(s.ops_per_sec),
                        s.samples
                    );
                }
                other => {
                    let _ = writeln!(md, "| {} | {} | | | | | |", run.name, cell(other));
                }
            }
            if let Outcome::Measured(s) = &r.raw {
                let _ = writeln!(
                    md,
                    "| ↳ {} | {} | {} | {} | | | {} |",
                    run.baseline.unwrap_or("raw"),
                    format_duration(s.p50),
                    format_duration(s.p95),
                    format_rate(s.ops_per_sec),
                    s.samples
                );
            } else if let Outcome::Failed(e) = &r.raw {
                let _ = writeln!(
                    md,
                    "| ↳ {} | failed: {e} | | | | | |",
                    run.baseline.unwrap_or("raw")
                );
            }
            for (name, outcome) in &r.references {
                match outcome {
                    Outcome::Measured(s) => {
                        let _ = writeln!(
                            md,
                            "| ↳ {name} alone, same loop | {} | {} | {} | | | {} |",
                            format_duration(s.p50),
                            format_duration(s.p95),
                            format_rate(s.ops_per_sec),
                            s.samples
                        );
                    }
                    Outcome::Failed(e) => {
                        let _ =
                            writeln!(md, "| ↳ {name} alone, same loop | failed: {e} | | | | | |");
                    }
                    Outcome::Unsupported => {}
                }
            }
        }
        let _ = writeln!(md, "\n![{}]({}.svg)", op.name(), op.slug());
    }

    /// Writes `report.md` and one `{op slug}.svg` per operation into `dir` (created when
    /// missing); returns the paths written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        let mut written = Vec::with_capacity(Op::ALL.len() + 1);
        for op in self.timed_ops() {
            let path = dir.join(format!("{}.svg", op.slug()));
            chart::draw(&path, op.name(), &self.bars(op))?;
            written.push(path);
        }
        let path = dir.join(REPORT_FILE);
        std::fs::write(&path, self.to_markdown()).map_err(|e| BenchError::io(&path, e))?;
        written.push(path);
        Ok(written)
    }
}

/// How far `share` falls short of `target`, in percentage points: one decimal under a point,
/// so a near miss never reads "missed by 0 points".
fn points_short(target: f64, share: f64) -> String {
    let points = (target - share) * 100.0;
    if points < 1.0 {
        format!("{points:.1}")
    } else {
        format!("{points:.0}")
    }
}

/// `share` as a percentage: one decimal when it rounds to `target` but falls short of it.
fn share_below(share: f64, target: f64) -> String {
    if (share * 100.0).round() >= (target * 100.0).round() {
        format!("{:.1}%", share * 100.0)
    } else {
        format!("{:.0}%", share * 100.0)
    }
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-12)
}

fn raw_ratio(r: &OpResult) -> Option<f64> {
    Some(ratio(r.adapter.stats()?.p50, r.raw.stats()?.p50))
}

fn stream_cell(outcome: &StreamOutcome) -> String {
    match outcome {
        StreamOutcome::Measured(_) => String::new(),
        StreamOutcome::Unsupported => "—".to_owned(),
        StreamOutcome::Failed(e) => format!("failed: {e}"),
    }
}

fn cell(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Measured(s) => format_duration(s.p50),
        Outcome::Unsupported => "not supported".to_owned(),
        Outcome::Failed(e) => format!("failed: {e}"),
    }
}

/// GitHub's heading anchor for a heading text.
fn anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The section of one vector copy source.
fn vector_copy_markdown(md: &mut String, source: &CopySource, outcome: &CopyOutcome) {
    let name = source.name();
    let _ = writeln!(md, "\n## {name} → pgvector copy\n");
    let r = match outcome {
        CopyOutcome::Measured(r) => r,
        CopyOutcome::Skipped(why) => {
            let _ = writeln!(md, "Not measured: {why}.");
            return;
        }
        CopyOutcome::Failed(e) => {
            let _ = writeln!(md, "**Failed**: {e}");
            return;
        }
    };
    let _ = writeln!(
        md,
        "{} vectors of 384 dimensions in {} collections (the workload's `file-{{id}}` \
         collections and its knowledge collection) in {}, copied into \
         an empty pgvector `document_chunk` by `chatstore migrate --groups vectors` (batches \
         of {}), against the two ceilings measured in the same run on the same data: \
         reading every collection through the {name} adapter's keyset scan alone (same \
         pages, nothing written), and raw binary `COPY` of the same rows into an empty \
         table alone (transactions of {} rows filled across collections), in {} rounds of \
         the three. Each time below is the best of its rounds; the share is the median of \
         the rounds' own shares (each round's copy against its own ceilings, measured moments \
         apart).\n",
        group_thousands(r.items),
        r.collections,
        source.holder(),
        r.batch,
        r.batch,
        r.round_shares.len().max(1)
    );
    let _ = writeln!(md, "| | time | vectors/s |\n|---|---:|---:|");
    for (what, d) in [
        (format!("reading {name} alone"), r.read_alone),
        ("binary COPY into pgvector alone".to_owned(), r.copy_alone),
        (
            "migration: the copy (to its last written batch)".to_owned(),
            r.migration_copy,
        ),
        (
            "migration: whole run (with the plan per collection and Open WebUI's ivfflat index)"
                .to_owned(),
            r.migration_total,
        ),
    ] {
        let _ = writeln!(
            md,
            "| {what} | {:.2} s | {} |",
            d.as_secs_f64(),
            format_rate(r.rate(d))
        );
    }
    let share = r.share();
    let verdict = if share >= COPY_TARGET {
        "met".to_owned()
    } else {
        format!("**missed by {} points**", points_short(COPY_TARGET, share))
    };
    let _ = writeln!(
        md,
        "\nThe copy runs at **{}** of the slower ceiling (target ≥ {:.0}%: {verdict}).",
        share_below(share, COPY_TARGET),
        COPY_TARGET * 100.0
    );
    let rounds: Vec<String> = r
        .round_shares
        .iter()
        .map(|s| share_below(*s, COPY_TARGET))
        .collect();
    let _ = writeln!(
        md,
        "The rounds, in the order they ran: {}. The best times taken together: {}.",
        rounds.join(", "),
        share_below(r.best_share(), COPY_TARGET)
    );
}

#[cfg(test)]
mod tests {
    use super::{
        BackendRun, Machine, OpResult, Outcome, Report, RssMethod, balanced_order, points_short,
        share_below,
    };
    use crate::ops::Op;
    use crate::stats::Stats;
    use crate::workload::{Scale, Workload};
    use std::time::Duration;

    fn measured(ms: u64) -> Outcome {
        Outcome::Measured(Stats::of(&[Duration::from_millis(ms)]).expect("one sample"))
    }

    /// A run of `name` within its latency target on every operation it has: get chat at 1 ms
    /// through the adapter and the raw baseline alike.
    fn run_within_target(name: &str) -> BackendRun {
        BackendRun {
            name: name.to_owned(),
            baseline: Some("raw sqlx"),
            baseline_target: Some(1.15),
            load_time: Duration::from_secs(1),
            records: 100,
            raw_import: measured(1000),
            import_target: Some(0.8),
            ops: vec![OpResult {
                op: Op::GetChat,
                adapter: measured(1),
                raw: measured(1),
                references: Vec::new(),
            }],
            streaming: Vec::new(),
            stream_target: None,
            router_stats: None,
        }
    }

    fn report(runs: Vec<BackendRun>, failed: Vec<(String, String)>) -> Report {
        Report {
            workload: Workload::new(Scale::new(60), 1),
            samples: 1,
            max_time_per_op: Duration::from_secs(1),
            machine: Machine::detect(),
            runs,
            skipped: Vec::new(),
            failed,
            stream_runs: 0,
            rss_method: RssMethod::Unavailable,
            stream_skipped: Vec::new(),
            vector_copies: Vec::new(),
            migration: None,
        }
    }

    fn targets(report: &Report) -> String {
        let md = report.to_markdown();
        let start = md.find("## Targets").expect("a Targets section");
        let rest = &md[start..];
        let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
        rest[..end].to_owned()
    }

    const WITHIN: &str = "Every adapter is within its target";

    /// Within every target, the section says so.
    #[test]
    fn a_run_within_every_target_says_so() {
        let section = targets(&report(vec![run_within_target("sqlite")], Vec::new()));
        assert!(section.contains(WITHIN), "{section}");
    }

    /// A bulk import below its target is a miss in the Targets section, never "within".
    #[test]
    fn an_import_miss_is_listed_among_the_targets() {
        let mut run = run_within_target("pocketbase");
        run.load_time = Duration::from_secs(2);
        let report = report(vec![run], Vec::new());
        assert_eq!(report.import_misses().len(), 1);
        let section = targets(&report);
        assert!(!section.contains(WITHIN), "{section}");
        assert!(
            section.contains("**pocketbase, bulk import**") && section.contains("missed by 30"),
            "{section}"
        );
    }

    /// A targeted operation whose raw side failed, a raw import that failed and a targeted
    /// backend that never loaded are "not measured", never "within".
    #[test]
    fn targets_left_unmeasured_are_named_not_passed() {
        let mut run = run_within_target("sqlite");
        run.ops.push(OpResult {
            op: Op::AddRemoveTag,
            adapter: measured(1),
            raw: Outcome::Failed("no such table".into()),
            references: Vec::new(),
        });
        run.raw_import = Outcome::Failed("refused".into());
        let report = report(vec![run], Vec::new());
        assert_eq!(report.targets_not_measured().len(), 2);
        let section = targets(&report);
        assert!(!section.contains(WITHIN), "{section}");
        assert!(
            section.contains("**sqlite, add + remove tag**: not measured (the raw side failed"),
            "{section}"
        );
        assert!(
            section.contains("**sqlite, bulk import**: not measured"),
            "{section}"
        );

        let never_loaded = report_of_failed("postgres");
        let section = targets(&never_loaded);
        assert!(!section.contains(WITHIN), "{section}");
        assert!(
            section.contains("**postgres**: not measured (the backend failed to open or load)"),
            "{section}"
        );
    }

    fn report_of_failed(name: &str) -> Report {
        report(
            vec![run_within_target("sqlite")],
            vec![(name.to_owned(), "connection refused".to_owned())],
        )
    }

    /// A share just under its target never reads as the target or as "missed by 0 points".
    #[test]
    fn near_misses_show_a_decimal() {
        assert_eq!(share_below(0.796, 0.8), "79.6%");
        assert_eq!(points_short(0.8, 0.796), "0.4");
        assert_eq!(share_below(0.72, 0.8), "72%");
        assert_eq!(points_short(0.8, 0.72), "8");
    }

    /// In one cycle every side takes `n` turns and follows every side (itself included, the
    /// cycle read round) exactly once.
    #[test]
    fn every_side_follows_every_side_once_per_cycle() {
        for n in 1..=5 {
            let order = balanced_order(n);
            assert_eq!(order.len(), n * n, "{order:?}");
            let mut pairs = std::collections::BTreeSet::new();
            for k in 0..order.len() {
                pairs.insert((order[k], order[(k + 1) % order.len()]));
            }
            assert_eq!(pairs.len(), n * n, "{n} sides: {order:?}");
            for side in 0..n {
                assert_eq!(order.iter().filter(|&&s| s == side).count(), n);
            }
        }
        assert_eq!(balanced_order(2), [0, 0, 1, 1]);
    }
}
