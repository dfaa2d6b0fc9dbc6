//! `chatstore`: the command-line tool of chatstore.
//!
//! - `chatstore demo [--database-url URL]` fills a store with a small data set and shows a
//!   tag-filtered chat list, a message thread and a vector search.
//! - `chatstore bench [--backends ...] [--scale ...] [--out DIR]` runs the benchmark workload
//!   on every configured backend and writes `report.md` with one SVG chart per operation.

mod bench;
mod demo;
mod embed;
mod open;

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
        /// `postgres://...`, or `memory`.
        #[arg(long, env = "CHATSTORE_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Benchmark the backends on one seeded Open WebUI workload; writes report.md and charts.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo { database_url } => {
                let url = open::resolve_url(database_url);
                let store = open::open(&url).await.map_err(|e| e.to_string())?;
                let report = demo::run(&store).await.map_err(|e| e.to_string())?;
                demo::print(&report, &open::describe(&url));
                Ok(())
            }
            Command::Bench(args) => bench::run(args).await.map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
