//! The `Store`: one repository per aggregate, possibly from different backends, and the
//! operations that span aggregates.

use std::sync::Arc;

use crate::changes::ChangeFeed;
use crate::{Capabilities, ChatRepo, FileRepo, MessageRepo, Result, TagRepo, UserRepo, VectorRepo};

/// A bundle of one repository per aggregate. Chats, messages and tags must come from one
/// backend (they move together); users, files and vectors may each come from another.
#[derive(Clone)]
pub struct Store {
    /// Users.
    pub users: Arc<dyn UserRepo>,
    /// Chats.
    pub chats: Arc<dyn ChatRepo>,
    /// Messages (same backend as chats).
    pub messages: Arc<dyn MessageRepo>,
    /// Tags (same backend as chats).
    pub tags: Arc<dyn TagRepo>,
    /// Files.
    pub files: Arc<dyn FileRepo>,
    /// Vectors.
    pub vectors: Arc<dyn VectorRepo>,
    backend: String,
    capabilities: Capabilities,
    changes: Option<Arc<dyn ChangeFeed>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// The parts of a [`Store`].
pub struct StoreParts {
    /// Users.
    pub users: Arc<dyn UserRepo>,
    /// Chats.
    pub chats: Arc<dyn ChatRepo>,
    /// Messages.
    pub messages: Arc<dyn MessageRepo>,
    /// Tags.
    pub tags: Arc<dyn TagRepo>,
    /// Files.
    pub files: Arc<dyn FileRepo>,
    /// Vectors.
    pub vectors: Arc<dyn VectorRepo>,
}

impl Store {
    /// A store from its parts, named `backend` (e.g. `"sqlite"`, `"postgres+pgvector"`).
    pub fn new(backend: impl Into<String>, capabilities: Capabilities, parts: StoreParts) -> Self {
        Store {
            users: parts.users,
            chats: parts.chats,
            messages: parts.messages,
            tags: parts.tags,
            files: parts.files,
            vectors: parts.vectors,
            backend: backend.into(),
            capabilities,
            changes: None,
        }
    }

    /// Clones of the repositories, to wrap them (see [`Layer`](crate::Layer)) or rebuild a store.
    pub fn parts(&self) -> StoreParts {
        StoreParts {
            users: self.users.clone(),
            chats: self.chats.clone(),
            messages: self.messages.clone(),
            tags: self.tags.clone(),
            files: self.files.clone(),
            vectors: self.vectors.clone(),
        }
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &str {
        &self.backend
    }

    /// What the backend can do. `change_feed` is set exactly when [`Store::changes`] has a feed.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            change_feed: self.changes.is_some(),
            ..self.capabilities
        }
    }

    /// The store's change feed (see [`changes`](crate::changes)), if its backend has one.
    pub fn changes(&self) -> Option<Arc<dyn ChangeFeed>> {
        self.changes.clone()
    }

    /// This store with `feed` as its change feed.
    pub fn with_changes(mut self, feed: Arc<dyn ChangeFeed>) -> Store {
        self.changes = Some(feed);
        self
    }

    /// Deletes a user and everything the user owns: chats (with their messages and tags) and
    /// files. `NotFound` when the user does not exist. The user row goes last, so a failure
    /// part way leaves a user whose deletion can be retried.
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        self.users.get(id).await?;
        self.chats.delete_for_user(id).await?;
        self.files.delete_for_user(id).await?;
        self.users.delete(id).await
    }
}
