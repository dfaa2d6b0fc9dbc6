//! The scaling table: one report per workload size (`chatstore bench --scales 1k,10k,100k`),
//! then every operation's adapter p50 at each size side by side, per backend, with the growth
//! from the smallest to the largest size against its target:
//!
//! - an operation on one chat, file or record (create, upsert message, get, add + remove tag,
//!   put and get file, each model's get) should cost the same at every size: at most
//!   [`FLAT_TARGET`]× (the spread this shared machine shows between two runs of one size);
//! - a list, the tag filter and the title search may grow, at most [`LIST_TARGET`]× from 1k to
//!   100k chats;
//! - vector operations are left out (their collection does not grow with the chats).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::BenchError;
use crate::ops::Op;
use crate::report::Report;
use crate::stats::format_duration;
use crate::workload::Scale;

/// The file the scaling table is written to, beside one folder per size.
pub const SCALING_FILE: &str = "scaling.md";

/// Largest acceptable growth of a single-record operation's p50 from the smallest to the
/// largest size.
pub const FLAT_TARGET: f64 = 1.5;

/// Largest acceptable growth of a list's p50 from the smallest to the largest size.
pub const LIST_TARGET: f64 = 3.0;

/// The growth target of `op`, `None` for operations the table leaves unjudged.
pub fn target(op: Op) -> Option<f64> {
    match op {
        Op::CreateChat
        | Op::UpsertMessage
        | Op::GetChat
        | Op::AddRemoveTag
        | Op::PutFile
        | Op::GetFile
        | Op::Get(_) => Some(FLAT_TARGET),
        Op::ListChatsFirstPage
        | Op::ListChatsDeepPage
        | Op::ListByTwoTags
        | Op::SearchTitle
        | Op::List(_) => Some(LIST_TARGET),
        // Its count sees every chat of the user, so it grows with them: shown beside the
        // lists Open WebUI makes (no total), not judged.
        Op::ListChatsWithTotal | Op::VectorInsertBatch | Op::VectorSearch => None,
    }
}

/// One row of the table: a backend's operation at every size.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The backend.
    pub backend: String,
    /// The operation.
    pub op: Op,
    /// The adapter's p50 at each size, in size order (`None`: not measured there).
    pub p50: Vec<Option<std::time::Duration>>,
    /// p50 at the largest measured size over p50 at the smallest.
    pub growth: Option<f64>,
    /// The growth target.
    pub target: Option<f64>,
}

impl Row {
    /// Whether the growth is beyond its target.
    pub fn missed(&self) -> bool {
        matches!((self.growth, self.target), (Some(g), Some(t)) if g > t)
    }
}

/// The rows of the table, backend by backend in the order they ran, operations in report
/// order; `runs` are sorted by size first.
pub fn rows(runs: &[(Scale, &Report)]) -> Vec<Row> {
    let mut sorted: Vec<&(Scale, &Report)> = runs.iter().collect();
    sorted.sort_by_key(|(scale, _)| scale.chats());
    let mut backends: Vec<&str> = Vec::new();
    for (_, report) in &sorted {
        for run in &report.runs {
            if !backends.contains(&run.name.as_str()) {
                backends.push(&run.name);
            }
        }
    }
    let mut out = Vec::new();
    for backend in backends {
        for op in Op::ALL {
            let p50: Vec<_> = sorted
                .iter()
                .map(|(_, report)| {
                    report
                        .runs
                        .iter()
                        .find(|r| r.name == backend)
                        .and_then(|r| r.result(op))
                        .and_then(|r| r.adapter.stats())
                        .map(|s| s.p50)
                })
                .collect();
            if p50.iter().all(Option::is_none) {
                continue;
            }
            let measured: Vec<_> = p50.iter().flatten().collect();
            let growth = match (measured.first(), measured.last()) {
                (Some(first), Some(last)) if measured.len() > 1 && !first.is_zero() => {
                    Some(last.as_secs_f64() / first.as_secs_f64())
                }
                _ => None,
            };
            out.push(Row {
                backend: backend.to_owned(),
                op,
                p50,
                growth,
                target: target(op),
            });
        }
    }
    out
}

/// The scaling table as Markdown: the runs (size, date, load, commit, build), then one
/// table per backend.
pub fn to_markdown(runs: &[(Scale, &Report)]) -> String {
    let mut sorted: Vec<&(Scale, &Report)> = runs.iter().collect();
    sorted.sort_by_key(|(scale, _)| scale.chats());
    let mut md = String::from("# chatstore scaling\n\n");
    md.push_str(
        "p50 of every operation through the adapter at each workload size, one full report per \
         size (in the folder named after it). Growth is p50 at the largest size over p50 at \
         the smallest. Targets: an operation on one chat, file or record costs the same at \
         every size (growth at most ",
    );
    let _ = write!(
        md,
        "{FLAT_TARGET}×, the spread between two runs of one size on a shared machine); lists, \
         the tag filter and the title search grow at most {LIST_TARGET}× (from 1k to 100k \
         chats); vector operations are not judged here.\n\n"
    );
    md.push_str("| size | chats | date | load at start (1, 5, 15 min) | commit | build |\n");
    md.push_str("|---|---:|---|---|---|---|\n");
    for (scale, report) in &sorted {
        let m = &report.machine;
        let _ = writeln!(
            md,
            "| [{scale}]({scale}/report.md) | {} | {} | {} | {} | {} |",
            scale.chats(),
            m.date,
            m.load,
            m.commit,
            m.build
        );
    }
    let all_rows = rows(runs);
    let misses: Vec<&Row> = all_rows.iter().filter(|r| r.missed()).collect();
    md.push_str("\n**Misses:** ");
    if misses.is_empty() {
        md.push_str("none.\n");
    } else {
        let list: Vec<String> = misses
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:.2}× (target {}×)",
                    r.backend,
                    r.op.name(),
                    r.growth.unwrap_or(0.0),
                    r.target.unwrap_or(0.0)
                )
            })
            .collect();
        md.push_str(&list.join("; "));
        md.push_str(".\n");
    }
    let mut current = "";
    for row in &all_rows {
        if row.backend != current {
            current = &row.backend;
            let _ = write!(md, "\n## {current}\n\n| operation |");
            for (scale, _) in &sorted {
                let _ = write!(md, " {scale} |");
            }
            md.push_str(" growth | target |\n|---|");
            for _ in &sorted {
                md.push_str("---:|");
            }
            md.push_str("---:|---:|\n");
        }
        let _ = write!(md, "| {} |", row.op.name());
        for p in &row.p50 {
            let _ = write!(md, " {} |", p.map_or("-".to_owned(), format_duration));
        }
        let growth = row.growth.map_or("-".to_owned(), |g| {
            if row.missed() {
                format!("**{g:.2}×**")
            } else {
                format!("{g:.2}×")
            }
        });
        let target = row.target.map_or("-".to_owned(), |t| format!("≤ {t}×"));
        let _ = writeln!(md, " {growth} | {target} |");
    }
    md
}

/// Writes [`to_markdown`] as `dir/scaling.md`.
pub fn write(runs: &[(Scale, &Report)], dir: &Path) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
    let path = dir.join(SCALING_FILE);
    std::fs::write(&path, to_markdown(runs)).map_err(|e| BenchError::io(&path, e))?;
    Ok(path)
}
