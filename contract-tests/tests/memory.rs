//! The contract suite against the memory backend: the reference model must pass its own
//! suite (and the property test compares it with a second memory store).

async fn fresh() -> Option<chatstore_core::Store> {
    Some(chatstore_core::memory::store())
}

chatstore_contract::contract_suite!(memory, fresh);
