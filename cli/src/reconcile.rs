//! `chatstore reconcile`: replays the rollout router's repair log, with a progress bar on a
//! terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::open;

/// The options of `chatstore reconcile`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// The old store (the router's `CHATSTORE_DATABASE_URL`).
    #[arg(long, env = "CHATSTORE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// The old store's vectors, when not in the store itself.
    #[arg(long, env = "CHATSTORE_VECTOR_URL")]
    pub vectors_url: Option<String>,
}

/// Replays the log; an error when records failed or remain pending.
pub async fn run(args: ReconcileArgs) -> Result<(), String> {
    let url = open::required_url(args.database_url, "reconcile").map_err(|e| e.to_string())?;
    let router = open::open_router(&url, args.vectors_url)
        .await
        .map_err(|e| e.to_string())?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} records {msg}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = router
        .reconcile(&|done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        })
        .await
        .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    outln!(
        "{}: {} entr{} read, {} record(s) re-copied, {} failed, {} pending",
        router.repair_log().path().display(),
        report.entries,
        if report.entries == 1 { "y" } else { "ies" },
        report.repaired,
        report.failed.len(),
        report.remaining
    );
    for (key, error) in &report.failed {
        errln!("failed: {key}: {error}");
    }
    if report.remaining == 0 {
        Ok(())
    } else {
        Err(format!(
            "{} repair(s) still pending; fix what failed and run `chatstore reconcile` again",
            report.remaining
        ))
    }
}
