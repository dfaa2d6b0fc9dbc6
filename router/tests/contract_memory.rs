//! The whole contract suite against a routed memory + memory store, in every phase
//! (`cargo test -p chatstore-router --test contract_memory shadow::` picks one).

mod common;

use chatstore_core::{Store, memory};
use chatstore_router::Phase;

macro_rules! in_every_phase {
    ($($phase:ident => $value:expr),* $(,)?) => {$(
        mod $phase {
            use super::*;

            async fn fresh() -> Option<Store> {
                Some(common::router(memory::store(), &memory::store(), $value).store())
            }

            chatstore_contract::contract_suite!(memory_memory, fresh);
        }
    )*};
}

in_every_phase!(
    old => Phase::Old,
    dual => Phase::Dual,
    shadow => Phase::Shadow,
    new => Phase::New,
    new_only => Phase::NewOnly,
);
