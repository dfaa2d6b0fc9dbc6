//! The whole contract suite against routed stores on real servers: SQLite (old) + PocketBase
//! (new) and PostgreSQL (old) + PocketBase (new).
//!
//! By default each pair runs the suite in one phase where the routed behaviour differs from
//! either store alone: SQLite + PocketBase in `shadow` (dual writes, old reads, shadow reads
//! on PocketBase), PostgreSQL + PocketBase in `new` (dual writes, reads from PocketBase).
//! `old` and `new-only` send every call to one store (whose own suite runs too) and memory +
//! memory runs every phase. A full pair run takes about a minute on a loaded 2-core machine,
//! so the full matrix (every phase, both pairs) runs with `CHATSTORE_ROUTER_ALL_PHASES=1`;
//! the suites it leaves out show as ignored. The full matrix also runs the rows contracts
//! (the workspace group) on SQLite + PocketBase in `dual`, `shadow` and `new`.

mod common;

use std::process::ExitCode;

use chatstore_contract::{every_contract, every_rows_contract, harness};
use chatstore_core::Store;
use chatstore_router::Phase;

/// Whether the full matrix was asked for.
fn every_phase() -> bool {
    std::env::var("CHATSTORE_ROUTER_ALL_PHASES").is_ok_and(|v| v == "1")
}

/// SQLite (old) + PocketBase (new) in `phase`; `None` (the suite shows as ignored) without a
/// PocketBase server or when the phase is not part of this run.
async fn sqlite_pocketbase(phase: Phase) -> Option<Store> {
    if phase != Phase::Shadow && !every_phase() {
        return None;
    }
    let new = common::pocketbase().await?;
    Some(common::router(common::sqlite().await, &new, phase).store())
}

/// SQLite (old) + PocketBase (new) in `phase` for the rows contracts (the row store and the
/// models over it, routed by the workspace group): only with the full matrix, since every
/// phase of them runs on memory + memory and `tests/rows.rs` covers the routed rows on these
/// servers.
async fn sqlite_pocketbase_rows(phase: Phase) -> Option<Store> {
    if !every_phase() {
        return None;
    }
    let new = common::pocketbase().await?;
    Some(common::router(common::sqlite().await, &new, phase).store())
}

/// PostgreSQL (old) + PocketBase (new) in `phase` (see [`sqlite_pocketbase`]).
async fn postgres_pocketbase(phase: Phase) -> Option<Store> {
    if phase != Phase::New && !every_phase() {
        return None;
    }
    let new = common::pocketbase().await?;
    let old = common::postgres().await?;
    Some(common::router(old, &new, phase).store())
}

macro_rules! suites {
    ($trials:ident; $($name:literal => $pair:ident($phase:expr)),* $(,)?) => {$(
        $trials.extend(harness::suite_trials($name, || $pair($phase), every_contract()));
    )*};
}

fn main() -> ExitCode {
    let mut trials = Vec::new();
    suites!(trials;
        "sqlite_pocketbase::old" => sqlite_pocketbase(Phase::Old),
        "sqlite_pocketbase::dual" => sqlite_pocketbase(Phase::Dual),
        "sqlite_pocketbase::shadow" => sqlite_pocketbase(Phase::Shadow),
        "sqlite_pocketbase::new" => sqlite_pocketbase(Phase::New),
        "sqlite_pocketbase::new_only" => sqlite_pocketbase(Phase::NewOnly),
        "postgres_pocketbase::old" => postgres_pocketbase(Phase::Old),
        "postgres_pocketbase::dual" => postgres_pocketbase(Phase::Dual),
        "postgres_pocketbase::shadow" => postgres_pocketbase(Phase::Shadow),
        "postgres_pocketbase::new" => postgres_pocketbase(Phase::New),
        "postgres_pocketbase::new_only" => postgres_pocketbase(Phase::NewOnly),
    );
    for (name, phase) in [
        ("sqlite_pocketbase_rows::dual", Phase::Dual),
        ("sqlite_pocketbase_rows::shadow", Phase::Shadow),
        ("sqlite_pocketbase_rows::new", Phase::New),
    ] {
        trials.extend(harness::suite_trials(
            name,
            move || sqlite_pocketbase_rows(phase),
            every_rows_contract(),
        ));
    }
    harness::run_trials(trials)
}
