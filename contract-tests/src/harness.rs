//! The suite's own test harness (libtest-mimic): [`contract_suite!`](crate::contract_suite)
//! expands to a `main` that opens one store, reads its [`Capabilities`], and registers exactly
//! the groups those capabilities promise. A backend whose server is not configured shows every
//! contract as **ignored** (never as passed); under `CI=true` it fails instead (see
//! [`require_env`](crate::require_env)).
//!
//! A test file using the suite needs its own entry in `contract-tests/Cargo.toml`:
//!
//! ```toml
//! [[test]]
//! name = "postgres"
//! harness = false
//! ```

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::process::ExitCode;

use chatstore_core::{Capabilities, Result, Store};
pub use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Failed};

/// A contract's future.
pub type ContractFuture = Pin<Box<dyn Future<Output = Result<()>>>>;

/// One contract: its group (`"users"`, ...), its name, and the function that checks it.
#[derive(Clone, Copy)]
pub struct Contract {
    /// The group the contract belongs to: `users`, `chats`, `tags`, `messages`, `files`,
    /// `vectors` or `store`.
    pub group: &'static str,
    /// The contract's name (its function's name).
    pub name: &'static str,
    /// Runs the contract on a store.
    pub run: fn(Store) -> ContractFuture,
}

/// Whether a store with `caps` takes part in contract group `group`.
pub fn group_applies(group: &str, caps: &Capabilities) -> bool {
    match group {
        "users" => caps.users,
        "chats" | "tags" | "messages" => caps.chats,
        "files" => caps.files,
        "vectors" => caps.vectors,
        // The change feed, where the store has one.
        "changes" => caps.change_feed,
        // Cascades across users, chats, messages, tags and files, and the check that every
        // missing capability answers Unsupported.
        "store" => caps.users && caps.chats,
        // Open WebUI's remaining tables: every store that keeps app data must have rows (not
        // gated on `Store::has_rows`: a store without fails them).
        group if crate::ROWS_GROUPS.contains(&group) => caps.users && caps.chats,
        _ => false,
    }
}

fn runtime() -> std::result::Result<tokio::runtime::Runtime, Failed> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot start a tokio runtime: {e}")))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panicked".to_owned())
}

/// Runs the suite for `backend`: `factory` gives a fresh, empty store (or `None` when its
/// server is not configured), `contracts` every contract of the groups the file names.
pub fn run_suite<F, Fut>(backend: &'static str, factory: F, contracts: Vec<Contract>) -> ExitCode
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Option<Store>>,
{
    run_trials(suite_trials(backend, factory, contracts))
}

/// Runs trials gathered from several suites (a file that runs the suite against several
/// stores, e.g. a router in every phase) with the command line's filters.
pub fn run_trials(trials: Vec<Trial>) -> ExitCode {
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// The trials of one suite, named `backend::group::contract`, without running them: the
/// groups `factory`'s store can do (read from one store opened up front) plus the property
/// test, all ignored when the factory has no server.
pub fn suite_trials<F, Fut>(
    backend: &'static str,
    factory: F,
    contracts: Vec<Contract>,
) -> Vec<Trial>
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Option<Store>>,
{
    // One store up front, only to read what the backend can do.
    let probe = match runtime() {
        Ok(rt) => rt.block_on(async {
            let store = factory().await?;
            Some(store.capabilities())
        }),
        Err(e) => panic!("{e:?}"),
    };
    let skipped = probe.is_none();
    let caps = probe.unwrap_or(Capabilities::ALL);
    let mut groups: Vec<&'static str> = Vec::new();
    let mut trials = Vec::new();
    for contract in contracts {
        if !group_applies(contract.group, &caps) {
            continue;
        }
        if !groups.contains(&contract.group) {
            groups.push(contract.group);
        }
        let name = format!("{backend}::{}::{}", contract.group, contract.name);
        let trial = Trial::test(name, move || {
            let rt = runtime()?;
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
                rt.block_on(async {
                    let Some(store) = factory().await else {
                        return Ok(());
                    };
                    (contract.run)(store).await
                })
            }));
            match outcome {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => {
                    Err(format!("contract failed with an error: {error} ({error:?})").into())
                }
                Err(panic) => Err(panic_message(&*panic).into()),
            }
        });
        trials.push(trial.with_ignored_flag(skipped));
    }
    let model_groups = groups.clone();
    let model = Trial::test(
        format!("{backend}::behaves_like_the_memory_model"),
        move || {
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                crate::model::check_against_memory(factory, &model_groups)
            }))
            .map_err(|panic| Failed::from(panic_message(&*panic)))
        },
    );
    trials.push(model.with_ignored_flag(skipped));
    trials
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_follow_capabilities() {
        let postgres = Capabilities {
            vectors: false,
            ..Capabilities::ALL
        };
        for group in ["users", "chats", "tags", "messages", "files", "store"] {
            assert!(group_applies(group, &postgres), "{group}");
        }
        assert!(!group_applies("vectors", &postgres));
        let vectors_only = Capabilities {
            vectors: true,
            ..Capabilities::default()
        };
        assert!(group_applies("vectors", &vectors_only));
        for group in ["users", "chats", "tags", "messages", "files", "store", "x"] {
            assert!(!group_applies(group, &vectors_only), "{group}");
        }
    }
}
