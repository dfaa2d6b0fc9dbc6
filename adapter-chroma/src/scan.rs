//! Keyset scan of a collection by id.
//!
//! Chroma's `get` pages only by offset in its own insertion order, so a reader paging that way
//! skips a record whenever an earlier one is deleted meanwhile. chatstore pages by id instead: the sorted id list of the collection (ids only, a
//! few bytes per record) is taken once and reused for `scan_snapshot_ttl`; each page is the next
//! `limit` ids after the caller's last id, fetched with their embeddings, documents and
//! metadatas. A record present for the whole walk is returned exactly once whatever is written
//! meanwhile: the position in the walk is an id, not an offset. Records added during the walk
//! appear when a later snapshot holds them and their id is still ahead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chatstore_core::Result;
use chatstore_core::vectors::{VectorItem, validate_scan};

use crate::ChromaStore;

/// Snapshots kept at once (one per collection being walked).
const MAX_SNAPSHOTS: usize = 32;

/// The sorted ids of a collection at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    ids: Arc<Vec<String>>,
    taken: Instant,
}

/// Sorted id lists of the collections being scanned, by Chroma collection id.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    inner: Mutex<HashMap<String, Snapshot>>,
}

impl Snapshots {
    fn get(&self, coll: &str, ttl: std::time::Duration) -> Option<Arc<Vec<String>>> {
        let map = self.inner.lock().ok()?;
        map.get(coll)
            .filter(|s| s.taken.elapsed() < ttl)
            .map(|s| s.ids.clone())
    }

    fn put(&self, coll: &str, ids: Arc<Vec<String>>) {
        if let Ok(mut map) = self.inner.lock() {
            if map.len() >= MAX_SNAPSHOTS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.taken)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(
                coll.to_owned(),
                Snapshot {
                    ids,
                    taken: Instant::now(),
                },
            );
        }
    }

    /// Drops the snapshot of a collection this store just wrote.
    pub(crate) fn forget(&self, coll: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(coll);
        }
    }
}

impl ChromaStore {
    /// `VectorRepo::scan`: up to `limit` items of the collection with an id greater than
    /// `after` (byte order), ordered by id, with their embeddings, documents and metadatas. A
    /// missing collection gives an empty list; a short page means the walk is done.
    pub(crate) async fn scan_page(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        validate_scan(collection, limit)?;
        let Some(coll) = self.resolve(collection).await? else {
            return Ok(Vec::new());
        };
        let cached = match after {
            Some(_) => self.snapshots.get(&coll.id, self.config.scan_snapshot_ttl),
            None => None,
        };
        let ids = match cached {
            Some(ids) => ids,
            None => {
                let ids = Arc::new(self.all_ids(&coll.id).await?);
                self.snapshots.put(&coll.id, ids.clone());
                ids
            }
        };
        let limit = limit as usize;
        let mut start = after.map_or(0, |a| ids.partition_point(|id| id.as_str() <= a));
        let mut out = Vec::with_capacity(limit);
        // Ids deleted since the snapshot come back missing: read on until the page is full, so
        // a short page always means the end.
        while out.len() < limit && start < ids.len() {
            let end = (start + (limit - out.len())).min(ids.len());
            out.extend(self.fetch_retrying(&coll.id, &ids[start..end]).await?);
            start = end;
        }
        Ok(out)
    }

    /// [`fetch`](Self::fetch), asked again (a read changes nothing) while Chroma answers with a
    /// retryable error, up to five times.
    async fn fetch_retrying(&self, coll: &str, ids: &[String]) -> Result<Vec<VectorItem>> {
        let mut attempt = 0u64;
        loop {
            match self.fetch(coll, ids).await {
                Err(e) if e.is_retryable() && attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                other => return other,
            }
        }
    }
}
