//! Keyset scan of a collection by id.
//!
//! Chroma's `get` pages only by offset in its own insertion order, so a reader paging that way
//! skips a record whenever an earlier one is deleted meanwhile. chatstore pages by id instead: the sorted id list of the collection (ids only, a
//! few bytes per record) is taken once and reused for `scan_snapshot_ttl`; each page is the next
//! `limit` ids after the caller's last id, fetched with their embeddings, documents and
//! metadatas. A record present for the whole walk is returned exactly once whatever is written
//! meanwhile: the position in the walk is an id, not an offset. Records added during the walk
//! appear when a later snapshot holds them and their id is still ahead.
//!
//! Requests are what a walk of many collections costs on Chroma (a `get` of a few records took
//! 1.5.9 2.4-4.1 ms of server CPU, whatever it carried), so a walk asks as few as it can:
//! - a first page asks for the whole collection at once when it is small (at most
//!   [`SMALL_COLLECTION`] records, and no more than the page): one request with embeddings,
//!   documents and metadatas, sorted here. Only when more come back than that does the walk
//!   take the id list and fetch the page by ids (the probe's records are then read twice);
//! - the Chroma id of a collection is remembered from the last listing of the database
//!   (`collections`, `collection_names`) and from earlier pages, instead of being looked up by
//!   name for every page. A remembered id of a collection deleted (or deleted and made again)
//!   since is answered "not found" by Chroma: the walk then looks the name up and asks again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chatstore_core::vectors::{VectorItem, validate_scan};
use chatstore_core::{ErrorKind, Result};

use crate::ChromaStore;
use crate::client::{Collection, Include};
use crate::names::to_chroma;
use crate::vectors::items_of;

/// Snapshots kept at once (one per collection being walked).
const MAX_SNAPSHOTS: usize = 32;

/// A first page asks for the whole collection when it holds at most this many records.
pub(crate) const SMALL_COLLECTION: usize = 128;

/// Collection ids remembered at most (about 100 bytes each); past it the memory starts again.
const MAX_KNOWN: usize = 100_000;

/// The sorted ids of a collection at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    ids: Arc<Vec<String>>,
    taken: Instant,
}

/// Sorted id lists of the collections being scanned, by Chroma collection id, and the Chroma
/// ids of collections by their Chroma name.
#[derive(Debug, Default)]
pub(crate) struct Snapshots {
    inner: Mutex<HashMap<String, Snapshot>>,
    known: Mutex<HashMap<String, String>>,
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

    /// Remembers the ids of a listing of the database (every collection it had), in place of
    /// what was remembered before.
    pub(crate) fn listed(&self, collections: &[Collection]) {
        if let Ok(mut known) = self.known.lock() {
            known.clear();
            known.extend(
                collections
                    .iter()
                    .take(MAX_KNOWN)
                    .map(|c| (c.name.clone(), c.id.clone())),
            );
        }
    }

    fn known(&self, chroma_name: &str) -> Option<String> {
        self.known.lock().ok()?.get(chroma_name).cloned()
    }

    fn remember(&self, chroma_name: &str, id: &str) {
        if let Ok(mut known) = self.known.lock() {
            if known.len() >= MAX_KNOWN {
                known.clear();
            }
            known.insert(chroma_name.to_owned(), id.to_owned());
        }
    }

    fn unknown(&self, chroma_name: &str) {
        if let Ok(mut known) = self.known.lock() {
            known.remove(chroma_name);
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
        let chroma_name = to_chroma(collection);
        if let Some(id) = self.snapshots.known(&chroma_name) {
            match self.scan_in(&id, after, limit).await {
                // Deleted (or deleted and made again) since its id was remembered.
                Err(e) if e.kind() == ErrorKind::NotFound => self.snapshots.unknown(&chroma_name),
                answer => return answer,
            }
        }
        let Some(coll) = self.client.collection(&chroma_name).await? else {
            return Ok(Vec::new());
        };
        self.snapshots.remember(&chroma_name, &coll.id);
        match self.scan_in(&coll.id, after, limit).await {
            // Deleted meanwhile: nothing left to walk.
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            answer => answer,
        }
    }

    /// [`scan_page`](Self::scan_page) of the collection whose Chroma id is `coll`.
    async fn scan_in(
        &self,
        coll: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        let limit = limit as usize;
        let ids = match after {
            Some(_) => self.snapshots.get(coll, self.config.scan_snapshot_ttl),
            None => {
                // A small collection comes whole in one request: asked for one more record
                // than it may hold, fewer means that is all of it.
                let small = limit.min(SMALL_COLLECTION);
                let answer = retrying(|| {
                    self.client
                        .get(coll, None, None, Include::ITEMS, Some(small + 1), None)
                })
                .await?;
                if answer.ids.len() <= small {
                    let mut items = items_of(answer);
                    items.sort_unstable_by(|a, b| a.id.cmp(&b.id));
                    if items.len() == limit {
                        // A full page: the caller asks for the next one.
                        let ids = items.iter().map(|i| i.id.clone()).collect();
                        self.snapshots.put(coll, Arc::new(ids));
                    }
                    return Ok(items);
                }
                None
            }
        };
        let ids = match ids {
            Some(ids) => ids,
            None => {
                let ids = Arc::new(self.all_ids(coll).await?);
                self.snapshots.put(coll, ids.clone());
                ids
            }
        };
        let mut start = after.map_or(0, |a| ids.partition_point(|id| id.as_str() <= a));
        let mut out = Vec::with_capacity(limit);
        // Ids deleted since the snapshot come back missing: read on until the page is full, so
        // a short page always means the end.
        while out.len() < limit && start < ids.len() {
            let end = (start + (limit - out.len())).min(ids.len());
            out.extend(retrying(|| self.fetch(coll, &ids[start..end])).await?);
            start = end;
        }
        Ok(out)
    }
}

/// `read` asked again (a read changes nothing) while Chroma answers with a retryable error, up
/// to five times.
async fn retrying<T, F, Fut>(read: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0u64;
    loop {
        match read().await {
            Err(e) if e.is_retryable() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            other => return other,
        }
    }
}
