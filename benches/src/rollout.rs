//! The rollout router's targets, read off one report: a shadowed read against the old store
//! alone, a dual write against the slower of the two stores alone.
//!
//! The router backends (`router-shadow`, `router-dual`) run over a fresh SQLite store (old) and
//! fresh PocketBase collections (new), so their references are the `sqlite` and `pocketbase`
//! runs of the same report.

use std::fmt::Write as _;

use crate::ops::Op;
use crate::report::Report;
use crate::stats::format_duration;

/// The largest acceptable p50 ratio of a shadowed read to the old store alone, and of a dual
/// write to the slower store alone.
pub const TARGET: f64 = 1.10;

/// The reads the `router-shadow` run is held to.
pub const SHADOWED_READS: [Op; 3] = [Op::GetChat, Op::ListChatsFirstPage, Op::GetFile];

/// The writes the `router-dual` run is held to.
pub const DUAL_WRITES: [Op; 4] = [
    Op::CreateChat,
    Op::UpsertMessage,
    Op::AddRemoveTag,
    Op::PutFile,
];

const OLD: &str = "sqlite";
const NEW: &str = "pocketbase";
const SHADOW: &str = "router-shadow";
const DUAL: &str = "router-dual";

/// One router figure: the routed p50 against its reference p50.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `router-shadow` or `router-dual`.
    pub backend: &'static str,
    /// The operation.
    pub op: Op,
    /// What the routed p50 is compared with (`sqlite`, or the slower of the two stores).
    pub reference: &'static str,
    /// Routed p50 / reference p50.
    pub ratio: f64,
    /// Routed p50, reference p50.
    pub p50s: (std::time::Duration, std::time::Duration),
}

impl Check {
    /// Whether the ratio is within [`TARGET`].
    pub fn met(&self) -> bool {
        self.ratio <= TARGET
    }
}

fn p50(report: &Report, backend: &str, op: Op) -> Option<std::time::Duration> {
    let run = report.runs.iter().find(|r| r.name == backend)?;
    run.result(op)?.adapter.stats().map(|s| s.p50)
}

/// Every router figure the report can give (none when the router or its references did not
/// run).
pub fn checks(report: &Report) -> Vec<Check> {
    let mut out = Vec::new();
    for op in SHADOWED_READS {
        if let (Some(routed), Some(old)) = (p50(report, SHADOW, op), p50(report, OLD, op)) {
            out.push(Check {
                backend: SHADOW,
                op,
                reference: OLD,
                ratio: routed.as_secs_f64() / old.as_secs_f64().max(1e-12),
                p50s: (routed, old),
            });
        }
    }
    for op in DUAL_WRITES {
        if let (Some(routed), Some(old), Some(new)) = (
            p50(report, DUAL, op),
            p50(report, OLD, op),
            p50(report, NEW, op),
        ) {
            let (reference, slower) = if old >= new { (OLD, old) } else { (NEW, new) };
            out.push(Check {
                backend: DUAL,
                op,
                reference,
                ratio: routed.as_secs_f64() / slower.as_secs_f64().max(1e-12),
                p50s: (routed, slower),
            });
        }
    }
    out
}

/// The report's router section (nothing when the router did not run beside its references).
pub fn markdown(report: &Report, md: &mut String) {
    let checks = checks(report);
    if checks.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Rollout router\n");
    let _ = writeln!(
        md,
        "The router over SQLite (old) and PocketBase (new). A shadowed read (`{SHADOW}`) is held \
         to p50 ≤ {TARGET:.2}× `{OLD}` alone; a dual write (`{DUAL}`) to p50 ≤ {TARGET:.2}× the \
         slower of `{OLD}` and `{NEW}` alone. Each routed sample starts once the background work \
         of the samples before it (shadow reads and their comparison) has settled, so it times \
         one call on a router with spare capacity, as a user sees it.\n"
    );
    let _ = writeln!(
        md,
        "| backend | operation | routed p50 | reference | reference p50 | ratio | target |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---:|---:|---|");
    for c in &checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2}× | {} |",
            c.backend,
            c.op.name(),
            format_duration(c.p50s.0),
            c.reference,
            format_duration(c.p50s.1),
            c.ratio,
            if c.met() { "met" } else { "**missed**" }
        );
    }
}
