//! # chatstore-migrate
//!
//! Copies any chatstore [`Store`](chatstore_core::Store) into any other, group by group
//! (users; chats with their tag rows and messages; files with their bytes; vectors collection by
//! collection), in keyset batches by id, keeping ids and timestamps. After committed batches
//! (every batch; for vectors at least a batch's worth of records or 2 s, since Open WebUI's many
//! small collections would otherwise cost one synced state file each) a checkpoint is written
//! atomically, so a run killed at any moment resumes with no loss
//! and no duplicates (every batch can be written again: records the target holds already are
//! skipped, vectors are upserted). Records the source cannot read or the target refuses go to a
//! dead-letter JSONL file and the run goes on. [`verify`] compares two stores record by record
//! (content hashes, keyset-paged on both sides).
//!
//! Depends on `chatstore-core` only; the binary opens the stores and draws the progress.
//!
//! No id map is kept: every current target (SQLite, PostgreSQL, PocketBase, pgvector, memory)
//! stores the source's ids as they are, and the engine refuses a record whose id the target
//! does not accept (dead letter) rather than renaming it.

mod claims;
pub mod deadletter;
pub mod engine;
pub mod progress;
pub mod read;
pub mod rows;
pub mod searches;
mod sink;
pub mod state;
pub mod verify;

pub use deadletter::{DeadLetter, DeadLetters};
pub use engine::{GroupSummary, MigrateOptions, Migration, Summary, count};
pub use progress::{BatchPoint, Progress, Silent};
pub use searches::{SearchReport, compare_searches};
pub use state::{Counts, State, StateFile};
pub use verify::{GroupReport, VerifyReport, verify};
