//! The rollout router's targets, read off one report: a shadowed read against the old store
//! alone, a dual write against the slower of the two stores alone.
//!
//! The router backends (`router-shadow`, `router-dual`) run over a fresh SQLite store (old) and
//! fresh PocketBase collections (new). Their references are measured in the same run and the
//! same loop: a second SQLite store and second PocketBase collections, loaded alike, each
//! alone, and for shadowed reads the router's own SQLite store read directly, their samples
//! interleaved with the router's so that every side follows every side equally often (see
//! `report::measure_op`). The `sqlite` and `pocketbase` runs of the report, measured minutes
//! apart, are shown beside them for comparison only.

use std::fmt::Write as _;

use std::time::Duration;

use crate::backends::{BOTH_AT_ONCE, ROUTER_OLD_DIRECT};
use crate::ops::Op;
use crate::report::{OpResult, Report};
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
    /// What the routed p50 is compared with: for a shadowed read the router's own SQLite
    /// store read directly, for a dual write the slower of the two stores.
    pub reference: &'static str,
    /// Routed p50 / reference p50.
    pub ratio: f64,
    /// Routed p50, reference p50 (both from the same loop).
    pub p50s: (Duration, Duration),
    /// The reference's p50 in its own run of the report (`sqlite` or `pocketbase`), when it
    /// ran: the same store measured on its own, minutes apart.
    pub own_run: Option<Duration>,
    /// For a dual write: the p50 of the same call on both reference stores at once without
    /// the router, from the same loop (what the machine charges for the two calls together).
    pub both_at_once: Option<Duration>,
    /// For a shadowed read: the p50 of the second SQLite store alone, from the same loop
    /// (what two equal stores differ by on this machine).
    pub second_store: Option<Duration>,
}

impl Check {
    /// Whether the ratio is within [`TARGET`].
    pub fn met(&self) -> bool {
        self.ratio <= TARGET
    }
}

fn run_result<'a>(report: &'a Report, backend: &str, op: Op) -> Option<&'a OpResult> {
    report.runs.iter().find(|r| r.name == backend)?.result(op)
}

/// The p50 of `backend`'s own run of `op`.
fn p50(report: &Report, backend: &str, op: Op) -> Option<Duration> {
    run_result(report, backend, op)?
        .adapter
        .stats()
        .map(|s| s.p50)
}

/// The p50 of the reference `name` measured in `backend`'s run of `op`.
fn reference_p50(report: &Report, backend: &str, name: &str, op: Op) -> Option<Duration> {
    run_result(report, backend, op)?
        .reference(name)?
        .stats()
        .map(|s| s.p50)
}

fn ratio(routed: Duration, reference: Duration) -> f64 {
    routed.as_secs_f64() / reference.as_secs_f64().max(1e-12)
}

/// Every router figure the report can give (none when the router did not run).
pub fn checks(report: &Report) -> Vec<Check> {
    let mut out = Vec::new();
    for op in SHADOWED_READS {
        if let (Some(routed), Some(old)) = (
            p50(report, SHADOW, op),
            reference_p50(report, SHADOW, ROUTER_OLD_DIRECT, op),
        ) {
            out.push(Check {
                backend: SHADOW,
                op,
                reference: ROUTER_OLD_DIRECT,
                ratio: ratio(routed, old),
                p50s: (routed, old),
                own_run: p50(report, OLD, op),
                both_at_once: None,
                second_store: reference_p50(report, SHADOW, OLD, op),
            });
        }
    }
    for op in DUAL_WRITES {
        if let (Some(routed), Some(old), Some(new)) = (
            p50(report, DUAL, op),
            reference_p50(report, DUAL, OLD, op),
            reference_p50(report, DUAL, NEW, op),
        ) {
            let (reference, slower) = if old >= new { (OLD, old) } else { (NEW, new) };
            out.push(Check {
                backend: DUAL,
                op,
                reference,
                ratio: ratio(routed, slower),
                p50s: (routed, slower),
                own_run: p50(report, reference, op),
                both_at_once: reference_p50(report, DUAL, BOTH_AT_ONCE, op),
                second_store: None,
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
         slower of `{OLD}` and `{NEW}` alone.\n\n\
         The references are measured in the router's run, in the same loop: a second SQLite \
         store and second PocketBase collections, loaded with the same workload, each called \
         alone, and, for shadowed reads, `{ROUTER_OLD_DIRECT}`: the very SQLite store the router \
         reads first, called directly (same file, connections and threads), so that the ratio \
         holds the router's cost and no difference between two stores (the second SQLite \
         store's ratio is shown beside it: what two equal stores differ by here). The router's \
         calls and theirs take turns in an order where each side follows every side equally \
         often; after every call of any side the router's background work (shadow reads and \
         their comparison) is waited for, untimed, and the next call starts after the same \
         short idle gap. So whatever a call leaves behind (an idle wait, a server still busy, \
         threads asleep, cold or warm caches) falls on routed and reference calls alike, and \
         the ratio is the cost a caller of the router pays over a caller of the store alone.\n\n\
         For dual writes, `{BOTH_AT_ONCE}` is a third reference in the same loop: the same call \
         on both reference stores at the same time without the router (the second on a task \
         of its own, as the router runs it). Its ratio to the slower store is what this \
         machine charges for running the two calls together (both stores' clients and \
         PocketBase's server share its cores); routed / both at once is the router's own \
         share. The last column is the reference store's p50 in its own run of this report \
         (minutes apart, beside its raw baseline), for comparison with the other sections.\n"
    );
    let _ = writeln!(
        md,
        "| backend | operation | routed p50 | reference | reference p50 | ratio | target | \
         both at once, no router | both at once / reference | routed / both at once | \
         a second store alone: p50 · routed / it | reference in its own run |"
    );
    let _ = writeln!(
        md,
        "|---|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|"
    );
    for c in &checks {
        let (both, machine, own) = match c.both_at_once {
            Some(both) => (
                format_duration(both),
                format!("{:.2}×", ratio(both, c.p50s.1)),
                format!("{:.2}×", ratio(c.p50s.0, both)),
            ),
            None => ("—".to_owned(), "—".to_owned(), "—".to_owned()),
        };
        let second = c.second_store.map_or("—".to_owned(), |p| {
            format!("{} · {:.2}×", format_duration(p), ratio(c.p50s.0, p))
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2}× | {} | {both} | {machine} | {own} | {second} | {} |",
            c.backend,
            c.op.name(),
            format_duration(c.p50s.0),
            c.reference,
            format_duration(c.p50s.1),
            c.ratio,
            if c.met() { "met" } else { "**missed**" },
            c.own_run.map_or("—".to_owned(), format_duration)
        );
    }
    let _ = writeln!(
        md,
        "\nWhat the routers did in the background during the timed operations (a rollout with \
         equal stores has no repair and no difference):\n"
    );
    for run in &report.runs {
        if let Some(stats) = run.router_stats {
            let _ = writeln!(
                md,
                "- {}: {} shadow reads compared, {} differing, {} unanswered, {} timed out, {} \
                 skipped; {} repairs logged.",
                run.name,
                stats.shadow_reads,
                stats.shadow_diffs,
                stats.shadow_errors,
                stats.shadow_timeouts,
                stats.shadow_skipped,
                stats.repairs_logged
            );
        }
    }
}
