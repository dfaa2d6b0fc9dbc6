//! The `Store`: one repository per aggregate, possibly from different backends, and the
//! operations that span aggregates.

use std::sync::Arc;

use crate::changes::ChangeFeed;
use crate::rows::RowStore;
use crate::{Capabilities, ChatRepo, FileRepo, MessageRepo, Result, TagRepo, UserRepo, VectorRepo};

/// A bundle of one repository per aggregate. Chats, messages and tags must come from one
/// backend (they move together); users, files and vectors may each come from another.
///
/// Every store checks its input in one place: [`Store::new`] puts the
/// [validation layer](crate::layers::validate) in front of the repositories, so the public
/// fields refuse bad input before any backend is touched.
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
    /// Open WebUI's remaining tables (see [`crate::rows`]), behind the row check.
    rows: Option<Arc<dyn RowStore>>,
    /// The repositories under the validation layer.
    inner: Arc<StoreParts>,
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
#[derive(Clone)]
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
    /// A store from its parts, named `backend` (e.g. `"sqlite"`, `"postgres+pgvector"`),
    /// behind the [validation layer](crate::layers::validate) for every group `capabilities`
    /// has.
    pub fn new(backend: impl Into<String>, capabilities: Capabilities, parts: StoreParts) -> Self {
        let checked = crate::layers::validate::validated(&parts, capabilities);
        Store {
            users: checked.users,
            chats: checked.chats,
            messages: checked.messages,
            tags: checked.tags,
            files: checked.files,
            vectors: checked.vectors,
            backend: backend.into(),
            capabilities,
            changes: None,
            rows: None,
            inner: Arc::new(parts),
        }
    }

    /// Clones of the repositories as given to [`Store::new`], under the validation layer: a
    /// [`Layer`](crate::Layer) wraps these and builds its store with [`Store::new`], which puts
    /// validation back in front, so the input is checked once, before any layer sees it.
    pub fn parts(&self) -> StoreParts {
        (*self.inner).clone()
    }

    /// A store of `parts`, named `backend`, with `capabilities`, keeping this store's change
    /// feed: what a [`Layer`](crate::Layer) builds.
    pub fn rebuild(
        &self,
        backend: impl Into<String>,
        capabilities: Capabilities,
        parts: StoreParts,
    ) -> Store {
        let mut store = Store::new(backend, capabilities, parts);
        store.changes = self.changes.clone();
        store.rows = self.rows.clone();
        store
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

    /// The store's rows: Open WebUI's remaining tables (folders, knowledge, notes, ...; see
    /// [`crate::rows`]), checked before the backend sees them. `Unsupported` when the backend
    /// has none.
    pub fn rows(&self) -> Result<Arc<dyn RowStore>> {
        self.rows
            .clone()
            .ok_or_else(|| crate::Error::unsupported("store", "rows (Open WebUI's other tables)"))
    }

    /// Whether the store has rows (see [`Store::rows`]).
    pub fn has_rows(&self) -> bool {
        self.rows.is_some()
    }

    /// This store with `rows` as its row store, behind the row check
    /// ([`crate::rows::Checked`]): every query and write is checked once, here, for every
    /// backend.
    pub fn with_rows(mut self, rows: Arc<dyn RowStore>) -> Store {
        self.rows = Some(Arc::new(crate::rows::Checked(rows)));
        self
    }

    /// This store with `rows` exactly as given (a layer that wraps an already checked row
    /// store, such as the router, uses this so the check runs once).
    pub fn with_checked_rows(mut self, rows: Arc<dyn RowStore>) -> Store {
        self.rows = Some(rows);
        self
    }

    /// The typed models of Open WebUI's remaining tables (folders, knowledge, notes, memories,
    /// prompts, models, groups, channels, feedback, shared chats) over this store's rows and
    /// chats: see [`crate::models`]. `Unsupported` when the backend has no rows.
    pub fn workspace(&self) -> Result<crate::models::Workspace> {
        Ok(crate::models::Workspace::new(
            self.rows()?,
            self.chats.clone(),
        ))
    }

    /// Deletes a user and everything the user owns: chats (with their messages and tags),
    /// files (both with the rows referring to them: [`crate::rows::cascades`]), the rows the user owns in every other table (see
    /// [`Workspace::delete_user`](crate::models::Workspace::delete_user)) and the vectors of
    /// the user's memories. `NotFound` when the user does not exist. The user row goes last,
    /// so a failure part way leaves a user whose deletion can be retried.
    pub async fn delete_user(&self, id: &str) -> Result<()> {
        self.users.get(id).await?;
        if let Ok(workspace) = self.workspace() {
            workspace.delete_user(id).await?;
        }
        self.chats.delete_for_user(id).await?;
        self.files.delete_for_user(id).await?;
        if self.capabilities.vectors {
            let collection = crate::models::memory_collection(id);
            match self.vectors.has_collection(&collection).await {
                Ok(true) => self.vectors.delete_collection(&collection).await?,
                Ok(false) => {}
                Err(e) if e.kind() == crate::ErrorKind::Unsupported => {}
                Err(e) => return Err(e),
            }
        }
        self.users.delete(id).await
    }
}
