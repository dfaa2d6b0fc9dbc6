//! # chatstore-router
//!
//! A [`Store`](chatstore_core::Store) made of two stores, an old one and a new one, with a
//! rollout [`Phase`] per [`ModelGroup`](chatstore_core::ModelGroup) (users; chats with their
//! messages and tags; files; workspace, Open WebUI's remaining tables through each store's
//! rows; vectors), changeable at run time:
//!
//! - `old`: the old store only. `new-only`: the new store only.
//! - `dual`: writes go to both at once, with the ids and timestamps fixed by the router first
//!   so both store the same record; reads come from old. The old store is authoritative: its
//!   answer is the caller's. When the new store fails, times out or answers differently, the
//!   write is logged in the durable [`RepairLog`] and [`Router::reconcile`] re-copies the
//!   record later.
//! - `shadow`: dual, and reads (or a sampled share) also run on the new store in the
//!   background, compared with `chatstore_core::compare`; differences go to a JSONL diff log
//!   and counters. The caller gets the old answer and never waits for the new store.
//! - `new`: writes to both (old still authoritative, so moving back loses nothing), reads from
//!   new.
//!
//! ```
//! use chatstore_core::{memory, ModelGroup, NewUser};
//! use chatstore_router::{Phase, Router};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(async {
//! let (old, new) = (memory::store(), memory::store());
//! let log = std::env::temp_dir().join(format!("doc-repair-{}.jsonl", std::process::id()));
//! let router = Router::builder(old.clone())
//!     .new_store_for_all(&new)
//!     .phase(ModelGroup::Users, Phase::Dual)
//!     .repair_log(&log)
//!     .build()?;
//! let store = router.store();
//! let ada = store.users.create(NewUser::new("ada@example.com", "Ada")).await?;
//! assert_eq!(new.users.get(&ada.id).await?, ada); // same id and timestamps on both sides
//! router.set_phase(ModelGroup::Users, Phase::New).await?; // at run time
//! assert_eq!(store.users.get(&ada.id).await?, ada);
//! # std::fs::remove_file(&log).ok();
//! # Ok::<(), chatstore_core::Error>(())
//! # }).expect("example");
//! ```
//!
//! The router names no backend: [`RouterConfig::open`] takes the caller's URL -> store
//! function. See the crate README for the operator's steps and the decisions taken.

mod changes;
mod chats;
pub mod config;
pub mod copy;
mod files;
mod intent;
mod messages;
pub mod phase;
pub mod reconcile;
pub mod repair;
mod router;
mod rows;
pub mod shadow;
mod tags;
mod users;
mod vectors;

pub use config::RouterConfig;
pub use phase::Phase;
pub use reconcile::ReconcileReport;
pub use repair::{RepairEntry, RepairKey, RepairLog, Side};
pub use router::{
    DEFAULT_SECONDARY_TIMEOUT, DEFAULT_SHADOW_TIMEOUT, DEFAULT_SHADOW_YIELD, MAX_SHADOW_IN_FLIGHT,
    Router, RouterBuilder, RouterStats,
};
pub use shadow::{DiffLog, DiffRecord, FieldChange};
