//! The whole contract suite, rows and the models over them included, against a routed
//! memory + memory store, in every phase
//! (`cargo test -p chatstore-router --test contract_memory -- shadow::` picks one).

mod common;

use std::process::ExitCode;

use chatstore_contract::{every_contract, every_rows_contract, harness};
use chatstore_core::{Store, memory};
use chatstore_router::Phase;

async fn routed(phase: Phase) -> Option<Store> {
    Some(common::router(memory::store(), &memory::store(), phase).store())
}

fn main() -> ExitCode {
    let mut trials = Vec::new();
    trials.extend(harness::suite_trials(
        "old",
        || routed(Phase::Old),
        every_contract()
            .into_iter()
            .chain(every_rows_contract())
            .collect(),
    ));
    trials.extend(harness::suite_trials(
        "dual",
        || routed(Phase::Dual),
        every_contract()
            .into_iter()
            .chain(every_rows_contract())
            .collect(),
    ));
    trials.extend(harness::suite_trials(
        "shadow",
        || routed(Phase::Shadow),
        every_contract()
            .into_iter()
            .chain(every_rows_contract())
            .collect(),
    ));
    trials.extend(harness::suite_trials(
        "new",
        || routed(Phase::New),
        every_contract()
            .into_iter()
            .chain(every_rows_contract())
            .collect(),
    ));
    trials.extend(harness::suite_trials(
        "new_only",
        || routed(Phase::NewOnly),
        every_contract()
            .into_iter()
            .chain(every_rows_contract())
            .collect(),
    ));
    harness::run_trials(trials)
}
