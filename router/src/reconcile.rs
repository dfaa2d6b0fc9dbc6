//! Replaying the repair log.

use std::collections::BTreeMap;

use chatstore_core::{Error, Result};

use crate::Router;
use crate::copy::{copy_key, group_keys};
use crate::phase::Phase;
use crate::repair::{RepairKey, Side};

/// What a reconcile run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Entries read from the log at the start.
    pub entries: usize,
    /// Distinct records re-copied.
    pub repaired: usize,
    /// Records that could not be re-copied, with the error (their entries stay pending).
    pub failed: Vec<(String, String)>,
    /// Entries pending after the run (failed ones and any logged meanwhile).
    pub remaining: usize,
}

impl Router {
    /// Replays the repair log, after logging the writes routers gone since left under way
    /// ([`crate::RepairLog::adopt_orphans`]): for each distinct record, the source side's current state is
    /// copied to the other side, then its entries are marked done. Safe to run again at any
    /// time (copies are idempotent) and while the router serves calls (in this process,
    /// writes to the same record wait; a record another process writes while it is copied is
    /// read again after the copy and copied again, see [`crate::copy::settle`]). Records that fail are retried once more at the end (one may wait on another,
    /// e.g. an email freed by a deleted user). `progress(done, total)` follows the records.
    pub async fn reconcile(
        &self,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<ReconcileReport> {
        // Writes a router that is gone left under way come first into the log.
        self.shared.repair.adopt_orphans()?;
        let entries = self.shared.repair.pending()?;
        let mut work: BTreeMap<(RepairKey, Side), (usize, Vec<String>)> = BTreeMap::new();
        for (order, entry) in entries.iter().enumerate() {
            work.entry((entry.key.clone(), entry.source))
                .or_insert_with(|| (order, Vec::new()))
                .1
                .push(entry.id.clone());
        }
        // In the order first logged.
        let mut todo: Vec<_> = work.into_iter().collect();
        todo.sort_by_key(|(_, (order, _))| *order);
        let total = todo.len();
        let mut report = ReconcileReport {
            entries: entries.len(),
            ..ReconcileReport::default()
        };
        let mut done = 0;
        progress(done, total);
        let mut retry = Vec::new();
        for pass in 0..2 {
            let batch = if pass == 0 {
                std::mem::take(&mut todo)
            } else {
                std::mem::take(&mut retry)
            };
            for ((key, source), (order, ids)) in batch {
                match self.repair_one(&key, source).await {
                    Ok(()) => {
                        self.shared.repair.mark_done(&ids)?;
                        report.repaired += 1;
                        done += 1;
                        progress(done, total);
                    }
                    Err(e) if pass == 0 => {
                        tracing::warn!(key = %key.describe(), error = %e, "repair failed; retrying at the end");
                        retry.push(((key, source), (order, ids)));
                    }
                    Err(e) => {
                        tracing::error!(key = %key.describe(), error = %e, "repair failed");
                        report.failed.push((key.describe(), e.to_string()));
                        done += 1;
                        progress(done, total);
                    }
                }
            }
        }
        report.remaining = self.shared.repair.compact()?;
        Ok(report)
    }

    async fn repair_one(&self, key: &RepairKey, source: Side) -> Result<()> {
        let group = key.group();
        if source == Side::Old && self.phase(group) == Phase::NewOnly {
            // The new store is the only one written now: it may hold writes the old store's
            // copy lacks, which a copy would undo.
            return Err(Error::invalid(format!(
                "{group} is new-only here, so the old store's {} is not copied over the new \
                 store's, which may be newer; compare them with `chatstore verify --from OLD \
                 --to NEW --groups {group}` and copy what is missing by hand, or run reconcile \
                 with CHATSTORE_{}_PHASE=new while no process runs {group} new-only",
                key.describe(),
                group.env_name()
            )));
        }
        let from = self.shared.side(group, source)?;
        let to = self.shared.side(group, source.other())?;
        if let RepairKey::Group(group) = key {
            if !self.phase(*group).writes_both() {
                // Copied now, the new store would fall behind again with the next write.
                return Err(Error::invalid(format!(
                    "{group} runs in {} here, so the new store is not written: move {group} \
                     to dual (CHATSTORE_{}_PHASE=dual), then reconcile to copy its records over",
                    self.phase(*group),
                    group.env_name()
                )));
            }
            // Every record either store holds, each under its own lock.
            for key in group_keys(*group, from, to).await? {
                let _locks = self.shared.lock_keys(std::slice::from_ref(&key)).await;
                copy_key(&key, from, to).await?;
            }
            return Ok(());
        }
        let _locks = self.shared.lock_keys(std::slice::from_ref(key)).await;
        copy_key(key, from, to).await
    }
}
