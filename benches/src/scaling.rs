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
        | Op::ListChatsDeepCursor
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
    /// p50 at the largest size over p50 at the smallest; `None` unless both were measured (a
    /// growth between the sizes that happened to be measured would judge a smaller range).
    pub growth: Option<f64>,
    /// The growth target.
    pub target: Option<f64>,
    /// The sizes where the operation was not measured (the backend failed there, or this
    /// operation did), in size order.
    pub not_measured_at: Vec<Scale>,
}

impl Row {
    /// Whether the growth is beyond its target.
    pub fn missed(&self) -> bool {
        matches!((self.growth, self.target), (Some(g), Some(t)) if g > t)
    }

    /// Whether the row has a target that could not be judged: the smallest or the largest
    /// size was not measured.
    pub fn unjudged(&self) -> bool {
        self.target.is_some() && self.growth.is_none() && !self.not_measured_at.is_empty()
    }

    /// `not measured at 1000, 100000` (the sizes where it was not measured).
    fn not_measured(&self) -> String {
        let sizes: Vec<String> = self.not_measured_at.iter().map(Scale::to_string).collect();
        format!("not measured at {}", sizes.join(", "))
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
            let growth = match (p50.first(), p50.last()) {
                (Some(Some(first)), Some(Some(last))) if p50.len() > 1 && !first.is_zero() => {
                    Some(last.as_secs_f64() / first.as_secs_f64())
                }
                _ => None,
            };
            let not_measured_at = sorted
                .iter()
                .zip(&p50)
                .filter(|(_, p)| p.is_none())
                .map(|((scale, _), _)| *scale)
                .collect();
            out.push(Row {
                backend: backend.to_owned(),
                op,
                p50,
                growth,
                target: target(op),
                not_measured_at,
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
    let list: Vec<String> = all_rows
        .iter()
        .filter(|r| r.missed())
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
    let unjudged: Vec<String> = all_rows
        .iter()
        .filter(|r| r.unjudged())
        .map(|r| format!("{} {} {}", r.backend, r.op.name(), r.not_measured()))
        .collect();
    md.push_str("\n**Misses:** ");
    match (list.is_empty(), unjudged.is_empty()) {
        (true, true) => md.push_str("none"),
        (true, false) => md.push_str("none among the operations measured at every size"),
        (false, _) => md.push_str(&list.join("; ")),
    }
    if !unjudged.is_empty() {
        let _ = write!(md, ". **Not judged:** {}", unjudged.join("; "));
    }
    md.push_str(".\n");
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
        let growth = match row.growth {
            Some(g) if row.missed() => format!("**{g:.2}×**"),
            Some(g) => format!("{g:.2}×"),
            None if row.unjudged() => row.not_measured(),
            None => "-".to_owned(),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BackendRun, OpResult, Outcome, Report};
    use crate::stats::Stats;
    use crate::streaming::RssMethod;
    use crate::workload::Workload;
    use std::time::Duration;

    /// A report at `scale` with `backend` having run get chat at `ms` p50, or (`None`) the
    /// backend failed to load at that size.
    fn report(scale: Scale, backend: &str, ms: Option<u64>) -> Report {
        let run = |ms: u64| BackendRun {
            name: backend.to_owned(),
            baseline: None,
            baseline_target: None,
            load_time: Duration::from_secs(1),
            records: 1,
            raw_import: Outcome::Unsupported,
            import_target: None,
            ops: vec![OpResult {
                op: Op::GetChat,
                adapter: Outcome::Measured(
                    Stats::of(&[Duration::from_millis(ms)]).expect("one sample"),
                ),
                raw: Outcome::Unsupported,
                references: Vec::new(),
            }],
            streaming: Vec::new(),
            stream_target: None,
            router_stats: None,
        };
        Report {
            workload: Workload::new(scale, 1),
            samples: 1,
            max_time_per_op: Duration::from_secs(1),
            machine: crate::machine::Machine::detect(),
            runs: ms.map(run).into_iter().collect(),
            skipped: Vec::new(),
            failed: match ms {
                Some(_) => Vec::new(),
                None => vec![(backend.to_owned(), "connection refused".to_owned())],
            },
            stream_runs: 0,
            rss_method: RssMethod::Unavailable,
            stream_skipped: Vec::new(),
            vector_copies: Vec::new(),
            migration: None,
        }
    }

    /// A backend measured at the smaller sizes and failed at the largest has no growth: the
    /// row says where it was not measured and the misses line does not read "none.".
    #[test]
    fn a_row_missing_its_largest_size_is_not_judged() {
        let reports = [
            (
                Scale::new(1000),
                report(Scale::new(1000), "sqlite", Some(1)),
            ),
            (
                Scale::new(10_000),
                report(Scale::new(10_000), "sqlite", Some(1)),
            ),
            (
                Scale::new(100_000),
                report(Scale::new(100_000), "sqlite", None),
            ),
        ];
        let runs: Vec<_> = reports.iter().map(|(s, r)| (*s, r)).collect();
        let row = rows(&runs)
            .into_iter()
            .find(|r| r.op == Op::GetChat)
            .expect("a get chat row");
        assert_eq!(row.growth, None);
        assert_eq!(row.not_measured_at, [Scale::new(100_000)]);
        assert!(row.unjudged() && !row.missed());
        let md = to_markdown(&runs);
        assert!(!md.contains("**Misses:** none."), "{md}");
        assert!(
            md.contains("**Not judged:** sqlite get chat not measured at 100k"),
            "{md}"
        );
        assert!(md.contains("| not measured at 100k | ≤ 1.5× |"), "{md}");
    }

    /// Measured at every size, the growth is judged and nothing is "not judged".
    #[test]
    fn a_row_measured_at_every_size_is_judged() {
        let reports = [
            (
                Scale::new(1000),
                report(Scale::new(1000), "sqlite", Some(1)),
            ),
            (
                Scale::new(100_000),
                report(Scale::new(100_000), "sqlite", Some(1)),
            ),
        ];
        let runs: Vec<_> = reports.iter().map(|(s, r)| (*s, r)).collect();
        let md = to_markdown(&runs);
        assert!(md.contains("**Misses:** none.\n"), "{md}");
        assert!(!md.contains("Not judged"), "{md}");
    }
}
