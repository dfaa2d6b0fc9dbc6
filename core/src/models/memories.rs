//! Memories (`memory`): facts a user's assistant remembers. Their vectors live in the vector
//! collection `user-memory-{user_id}` ([`memory_collection`]); these are the rows. A memory's
//! `type` is `user` or `context` (anything else is stored as `context`, as Open WebUI
//! normalises it).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::record::{self, Record, Records, stamps};
use crate::rows::tables::MEMORY;
use crate::rows::{Cond, Dir, RowStore, Table};
use crate::{Error, Page, PageRequest, Result};

/// The vector collection of a user's memories.
pub fn memory_collection(user_id: &str) -> String {
    format!("user-memory-{user_id}")
}

/// A memory (`memory` row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// Id (uuid4).
    pub id: String,
    /// Owner.
    pub user_id: Option<String>,
    /// The remembered text.
    pub content: Option<String>,
    /// Updated (epoch seconds).
    pub updated_at: Option<i64>,
    /// Created (epoch seconds).
    pub created_at: Option<i64>,
    /// `user` or `context`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Where it sits in the user's memory tree, if anywhere.
    pub path: Option<String>,
    /// Metadata, merged on update.
    pub meta: Option<Value>,
}

impl Record for Memory {
    const TABLE: &'static Table = &MEMORY;
    const ENTITY: &'static str = "memory";
    fn id(&self) -> &str {
        &self.id
    }
}

/// A memory to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewMemory {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// The text (trimmed; not empty).
    pub content: String,
    /// `user` or `context` (the default; anything else becomes `context`).
    pub kind: Option<String>,
    /// Path.
    pub path: Option<String>,
    /// Metadata object.
    pub meta: Option<Value>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewMemory {
    /// A memory of `user_id` holding `content`.
    pub fn new(user_id: impl Into<String>, content: impl Into<String>) -> Self {
        NewMemory {
            user_id: user_id.into(),
            content: content.into(),
            ..NewMemory::default()
        }
    }
}

/// Changes to a memory; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryPatch {
    /// New text.
    pub content: Option<String>,
    /// New type (normalised).
    pub kind: Option<String>,
    /// New path (`Some(None)` clears it).
    pub path: Option<Option<String>>,
    /// Keys merged into `meta`.
    pub meta: Option<Map<String, Value>>,
}

/// Open WebUI's normalisation of a memory type.
pub fn memory_kind(kind: Option<&str>) -> &'static str {
    if kind == Some("user") {
        "user"
    } else {
        "context"
    }
}

/// Memories. See the [module docs](self).
#[derive(Clone)]
pub struct Memories {
    memories: Records<Memory>,
}

impl Memories {
    pub(crate) fn new(rows: Arc<dyn RowStore>) -> Self {
        Memories {
            memories: Records::new(rows),
        }
    }

    /// The memory records (generic reads: scan for export, custom filters).
    pub fn records(&self) -> &Records<Memory> {
        &self.memories
    }

    /// Adds a memory.
    pub async fn create(&self, new: NewMemory) -> Result<Memory> {
        crate::validate::id("memory user id", &new.user_id)?;
        let content = new.content.trim().to_owned();
        record::name("memory content", &content)?;
        record::object("memory meta", &new.meta)?;
        let id = record::new_id("memory id", new.id)?;
        let (created, updated) = stamps(&MEMORY, new.created_at, new.updated_at)?;
        self.memories
            .insert(Memory {
                id,
                user_id: Some(new.user_id),
                content: Some(content),
                updated_at: Some(updated),
                created_at: Some(created),
                kind: memory_kind(new.kind.as_deref()).to_owned(),
                path: new.path,
                meta: new.meta,
            })
            .await
    }

    /// The memory with this id.
    pub async fn get(&self, id: &str) -> Result<Memory> {
        self.memories.get(id).await
    }

    /// The user's memories, oldest first, one page (with the total).
    pub async fn list(&self, user_id: &str, page: PageRequest) -> Result<Page<Memory>> {
        self.memories
            .page(
                vec![Cond::Eq("user_id", user_id.into())],
                &[("created_at", Dir::Asc)],
                page,
            )
            .await
    }

    /// Changes one of the user's memories (`NotFound` when it is someone else's).
    pub async fn update(&self, user_id: &str, id: &str, patch: MemoryPatch) -> Result<Memory> {
        let mut memory = self.owned(user_id, id).await?;
        if let Some(content) = patch.content {
            let content = content.trim().to_owned();
            record::name("memory content", &content)?;
            memory.content = Some(content);
        }
        if let Some(kind) = patch.kind {
            memory.kind = memory_kind(Some(&kind)).to_owned();
        }
        if let Some(path) = patch.path {
            memory.path = path;
        }
        if let Some(meta) = patch.meta {
            crate::validate::json_map("memory meta", &meta)?;
            memory.meta = Some(record::merge(memory.meta.take(), meta));
        }
        memory.updated_at = Some(MEMORY.time_unit.now());
        self.memories.replace(memory).await
    }

    /// Deletes one of the user's memories (`NotFound` when it is someone else's).
    pub async fn delete(&self, user_id: &str, id: &str) -> Result<()> {
        self.owned(user_id, id).await?;
        self.memories.delete(id).await
    }

    /// Deletes every memory of the user; how many there were.
    pub async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let counts = self
            .memories
            .write(vec![Records::<Memory>::delete_op(vec![Cond::Eq(
                "user_id",
                user_id.into(),
            )])])
            .await?;
        Ok(counts.first().copied().unwrap_or(0))
    }

    async fn owned(&self, user_id: &str, id: &str) -> Result<Memory> {
        let memory = self.memories.get(id).await?;
        if memory.user_id.as_deref() != Some(user_id) {
            return Err(Error::not_found("memory", id));
        }
        Ok(memory)
    }
}
