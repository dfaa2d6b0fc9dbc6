//! The in-memory backend: the reference model every other backend is compared with.
//!
//! All six repositories share one state behind a mutex, so operations that touch several
//! aggregates (deleting a chat removes its messages and orphan tags) are atomic. Deleting a
//! chat or a file also deletes the rows that go with it (its shares and file links: see
//! [`crate::rows::cascades`]) under both locks, as SQL's `ON DELETE CASCADE` does.

mod changes;
mod chats;
mod files;
mod messages;
mod rows;

pub use rows::MemoryRows;
mod tags;
mod users;
mod vectors;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::changes::{
    ChangeEvent, ChangeFeed, ChangeHub, TOMBSTONE_RETENTION_SECS, kept_for_catch_up, now_ms,
};
use crate::chats::Chat;
use crate::files::FileMeta;
use crate::messages::Message;
use crate::rows::cascades::Cascade;
use crate::tags::{Tag, TagKey};
use crate::users::User;
use crate::vectors::VectorItem;
use crate::{Capabilities, Error, Result, Store, StoreParts};

/// The name the memory backend reports.
pub const BACKEND: &str = "memory";

#[derive(Debug, Clone, Default)]
struct State {
    users: BTreeMap<String, User>,
    chats: BTreeMap<String, Chat>,
    /// Keyed by `(chat_id, message id)`.
    messages: BTreeMap<(String, String), Message>,
    tags: BTreeMap<TagKey, Tag>,
    files: BTreeMap<String, (FileMeta, bytes::Bytes)>,
    /// Keyed by item id: `(collection, item)`.
    vectors: BTreeMap<String, (String, VectorItem)>,
    /// Changes of the write in progress, published once it succeeds.
    pending: Vec<ChangeEvent>,
    /// Deletions and tag changes, oldest first, kept for catch-up for [`TOMBSTONE_RETENTION_SECS`].
    tombstones: VecDeque<ChangeEvent>,
}

impl State {
    /// Records a change of the write in progress.
    fn announce(&mut self, event: ChangeEvent) {
        self.pending.push(event);
    }
}

/// The in-memory backend; cheap to clone (clones share the data).
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    rows: rows::MemoryRows,
    hub: Arc<ChangeHub>,
    /// Where `download_url` points; the environment's when `None`.
    urls: Option<crate::signing::LocalUrls>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// Signs download links for the proxy at `urls` (instead of `CHATSTORE_PUBLIC_URL` and
    /// `CHATSTORE_SIGNING_KEY` from the environment).
    pub fn with_urls(mut self, urls: crate::signing::LocalUrls) -> Self {
        self.urls = Some(urls);
        self
    }

    /// A [`Store`] whose six repositories and rows are this backend, with its change feed (an
    /// in-process broadcast of its own writes).
    pub fn store(&self) -> Store {
        let repo = Arc::new(self.clone());
        let feed: Arc<dyn ChangeFeed> = repo.clone();
        Store::new(
            BACKEND,
            Capabilities::ALL,
            StoreParts {
                users: repo.clone(),
                chats: repo.clone(),
                messages: repo.clone(),
                tags: repo.clone(),
                files: repo.clone(),
                vectors: repo,
            },
        )
        .with_changes(feed)
        .with_rows(Arc::new(self.rows.clone()))
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| Error::backend_msg("memory backend state is poisoned by an earlier panic"))
    }

    /// Runs a single-record write. Such writes check everything that can fail before they
    /// change anything, so they work on the state in place.
    fn write<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock()?;
        let out = f(&mut guard);
        let events = std::mem::take(&mut guard.pending);
        if out.is_ok() {
            self.publish(&mut guard, events);
        }
        out
    }

    /// Runs a write that deletes chats or files (`f` answers its result and the deleted ids)
    /// and deletes the rows `cascades` ties to them in the same step. Both locks are taken
    /// first (rows, then state: the only order either is ever taken in together), so no reader
    /// sees one without the other, and nothing can fail once the state has changed.
    fn write_deleting<T>(
        &self,
        cascades: &[Cascade],
        f: impl FnOnce(&mut State) -> Result<(T, Vec<String>)>,
    ) -> Result<T> {
        let mut rows = self.rows.lock()?;
        self.write(|s| {
            let (out, ids) = f(s)?;
            rows::delete_cascaded(&mut rows, cascades, &ids)?;
            Ok(out)
        })
    }

    /// Publishes the changes of a successful write, remembering deletions.
    fn publish(&self, state: &mut State, events: Vec<ChangeEvent>) {
        let horizon = now_ms() - TOMBSTONE_RETENTION_SECS * 1000;
        while state.tombstones.front().is_some_and(|t| t.at < horizon) {
            state.tombstones.pop_front();
        }
        for event in events {
            if kept_for_catch_up(&event) {
                state.tombstones.push_back(event.clone());
            }
            self.hub.publish(event);
        }
    }

    /// Runs a bulk write on a copy of the state and keeps the copy only when `f` succeeds, so
    /// that a batch failing part way changes nothing.
    fn transaction<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock()?;
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        let events = std::mem::take(&mut copy.pending);
        *guard = copy;
        self.publish(&mut guard, events);
        Ok(out)
    }
}

/// A fresh, empty memory store.
pub fn store() -> Store {
    MemoryBackend::new().store()
}
