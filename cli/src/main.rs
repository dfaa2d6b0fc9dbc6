//! `chatstore`: the command-line tool of chatstore.
//!
//! - `chatstore demo [--database-url URL]` fills a store with a small data set and shows a
//!   tag-filtered chat list, a message thread and a vector search.

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
                let store = open::open(&url).await?;
                let report = demo::run(&store).await?;
                demo::print(&report, &open::describe(&url));
                Ok::<(), chatstore_core::Error>(())
            }
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
