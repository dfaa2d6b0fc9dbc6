//! How a migration or verification reports progress: a callback trait the binary implements
//! (progress bars, plain lines), plus `tracing` events from the engine itself.

use chatstore_core::ModelGroup;

use crate::state::Counts;

/// A point in a batch's life, for [`Progress::batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPoint {
    /// The target holds the batch; the state file does not say so yet.
    Written,
    /// The state file records the batch.
    Checkpointed,
}

/// Receives progress. Every method has a default that does nothing.
pub trait Progress: Send + Sync {
    /// Whether the engine should count each group's source records before copying them (one
    /// extra pass over ids), so that [`Progress::group_started`] gets a total. Vectors get
    /// none: counting them would read every collection whole.
    fn wants_totals(&self) -> bool {
        false
    }
    /// A group starts (or resumes with `counts` already done); `total` when counted.
    fn group_started(&self, _group: ModelGroup, _total: Option<u64>, _counts: &Counts) {}
    /// The group's counts after a batch.
    fn advanced(&self, _group: ModelGroup, _counts: &Counts) {}
    /// The group is done.
    fn group_finished(&self, _group: ModelGroup, _counts: &Counts) {}
    /// Batch `number` (counted from 1 within this run and group) reached `point`.
    fn batch(&self, _group: ModelGroup, _number: u64, _point: BatchPoint) {}
    /// Something an operator should read (a skipped group, an optimize result).
    fn note(&self, _message: &str) {}
}

/// Progress that goes nowhere (tracing events are still emitted).
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}
