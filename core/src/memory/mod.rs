//! The in-memory backend: the reference model every other backend is compared with.
//!
//! All six repositories share one state behind a mutex, so operations that touch several
//! aggregates (deleting a chat removes its messages and orphan tags) are atomic.

mod chats;
mod files;
mod messages;
mod tags;
mod users;
mod vectors;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::chats::Chat;
use crate::files::FileMeta;
use crate::messages::Message;
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
    files: BTreeMap<String, (FileMeta, Vec<u8>)>,
    /// Keyed by item id: `(collection, item)`.
    vectors: BTreeMap<String, (String, VectorItem)>,
}

/// The in-memory backend; cheap to clone (clones share the data).
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        MemoryBackend::default()
    }

    /// A [`Store`] whose six repositories are this backend.
    pub fn store(&self) -> Store {
        let repo = Arc::new(self.clone());
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
        f(&mut guard)
    }

    /// Runs a bulk write on a copy of the state and keeps the copy only when `f` succeeds, so
    /// that a batch failing part way changes nothing.
    fn transaction<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> Result<T> {
        let mut guard = self.lock()?;
        let mut copy = guard.clone();
        let out = f(&mut copy)?;
        *guard = copy;
        Ok(out)
    }
}

/// A fresh, empty memory store.
pub fn store() -> Store {
    MemoryBackend::new().store()
}
