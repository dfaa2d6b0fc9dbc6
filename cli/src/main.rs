//! `chatstore`: the command-line tool of chatstore.
//!
//! - `chatstore demo [--database-url URL]` fills a store with a small data set and shows a
//!   tag-filtered chat list, a message thread and a vector search.
//! - `chatstore inspect --database-url URL [--json]` opens a database read-only and prints its
//!   schema version, row counts and each user's tags with their chat counts.
//! - `chatstore bench [--backends ...] [--scale ...] [--out DIR]` runs the benchmark workload
//!   on every configured backend and writes `report.md` with one SVG chart per operation.
//! - `chatstore bench-realtime [--sockets 1000 ...] [--out DIR]` measures commit → Socket.IO
//!   client latency and delivered envelopes/s of one bridge; writes `realtime.md`.
//! - `chatstore migrate --from URL --to URL [...]` copies one store into another, resumably,
//!   ending with a verification; `chatstore verify --from URL --to URL` compares two stores.
//! - `chatstore reconcile [--database-url URL]` replays the rollout router's repair log (the
//!   router is configured by the environment, as for every command) and exits 0 only when
//!   nothing is left pending.
//! - `chatstore bridge --database-url URL --listen ADDR` serves the realtime bridge: Open
//!   WebUI's Socket.IO events for every change the store's change feed reports.
//!
//! Warnings (a store opened without its vectors, PostgreSQL through a pooler without a direct
//! URL, a change feed reconnecting, ...) go to stderr, never into a command's stdout; `RUST_LOG`
//! chooses what is shown (default: [`DEFAULT_LOG`]).

/// `println!` that stops quietly on a closed stdout (`chatstore files ls | head -1`), where
/// `println!` would panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that stops quietly on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::emit_err(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod bench;
mod bridge;
mod demo;
mod embed;
mod ends;
mod files;
mod inspect;
mod load;
mod migrate;
mod open;
mod reconcile;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// chatstore: storage for Open WebUI-style chat applications.
#[derive(Debug, Parser)]
#[command(name = "chatstore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create demo users, chats, messages, tags, a file and vectors, then show what they answer.
    Demo {
        /// Where to store: `sqlite://chatstore-demo.db` (default), `sqlite::memory:`,
        /// `postgres://...`, `pocketbase://HOST:PORT`, or `memory`.
        #[arg(long, env = "CHATSTORE_DATABASE_URL")]
        database_url: Option<String>,
        /// Where vectors go, when not in the store itself: `postgres://...` (pgvector),
        /// `sqlite://PATH`, `memory`.
        #[arg(long, env = "CHATSTORE_VECTOR_URL")]
        vectors_url: Option<String>,
    },
    /// Show a database's schema version, row counts and tags per user, without changing it.
    Inspect {
        /// The store: `sqlite://path/to/webui.db`, `postgres://...` or `pocketbase://HOST:PORT`
        /// (Open WebUI's `DATABASE_URL` is accepted).
        #[arg(long, env = "CHATSTORE_DATABASE_URL")]
        database_url: Option<String>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark the backends on one seeded Open WebUI workload; writes report.md and charts.
    Bench(bench::BenchArgs),
    /// Measure the realtime bridge: commit → client latency on PostgreSQL and PocketBase and
    /// envelopes/s to many python-socketio clients; writes realtime.md.
    BenchRealtime(bench::RealtimeArgs),
    /// Serve Open WebUI's Socket.IO chat events for the store's changes, plus /health.
    Bridge(bridge::BridgeArgs),
    /// Copy one store into another (resumable, verified); every Open WebUI table between SQL
    /// databases.
    Migrate(migrate::MigrateArgs),
    /// Compare two stores record by record; exit 1 listing what differs.
    Verify(migrate::VerifyArgs),
    /// Replay the rollout router's repair log: re-copy every record the new store missed.
    /// Safe to re-run; exits 0 only when nothing is left pending.
    Reconcile(reconcile::ReconcileArgs),
    /// Put, get, link and list files, streaming (`files put|get|url|ls`).
    Files(files::FilesArgs),
    /// Drive N replica processes against one store for S seconds; check that nothing
    /// acknowledged was lost and print throughput and p50/p95/p99 per operation.
    Load(load::LoadArgs),
    /// One replica of `chatstore load` (started by it).
    #[command(hide = true)]
    LoadWorker(load::WorkerArgs),
}

/// Writes to stdout; a closed pipe (`chatstore demo | head`) is not an error worth a panic.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Writes to stderr, as [`emit`] to stdout.
fn emit_err(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// What is logged when `RUST_LOG` is unset or unreadable: warnings of chatstore's own crates
/// (every target starting with `chatstore`), nothing of the libraries under them.
const DEFAULT_LOG: &str = "chatstore=warn";

/// Logs `tracing` events to stderr, filtered by `RUST_LOG` (else [`DEFAULT_LOG`]): stdout
/// carries only what a command prints (`load-worker`'s JSON, `inspect --json`, a file).
fn install_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG));
    // Fails only when a subscriber is already installed, which then keeps logging.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo {
                database_url,
                vectors_url,
            } => {
                let url = open::resolve_url(database_url);
                let store = open::open_with_vectors(&url, vectors_url)
                    .await
                    .map_err(|e| e.to_string())?;
                let report = demo::run(&store).await.map_err(|e| e.to_string())?;
                emit(&demo::render(&report, &open::describe(&url)));
                Ok(())
            }
            Command::Inspect { database_url, json } => {
                let url = open::required_url(database_url, "inspect").map_err(|e| e.to_string())?;
                let text = inspect::run(&url, json).await.map_err(|e| e.to_string())?;
                emit(&text);
                Ok(())
            }
            Command::Bench(args) => bench::run(args).await.map_err(|e| e.to_string()),
            Command::BenchRealtime(args) => {
                bench::run_realtime(args).await.map_err(|e| e.to_string())
            }
            Command::Bridge(args) => bridge::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Verify(args) => migrate::run_verify(args).await,
            Command::Reconcile(args) => reconcile::run(args).await,
            Command::Files(args) => files::run(args).await,
            Command::Load(args) => load::run(args).await,
            Command::LoadWorker(args) => load::run_worker(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
