//! Files: bytes plus Open WebUI's `file` metadata, with the sha256 of the bytes recorded.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::query::{FileQuery, Page};
use crate::{Error, Result, validate};

/// The largest file chatstore stores (Open WebUI's uploads are bounded by the operator; this is
/// a safety cap so a single call cannot exhaust memory).
pub const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;

/// A stored file's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Id (Open WebUI: uuid4).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Original file name.
    pub filename: String,
    /// MIME type as uploaded.
    pub content_type: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Lower-case hex sha256 of the bytes (Open WebUI's `meta.file_hash`).
    pub sha256: String,
    /// Open WebUI's `file.hash`: the sha256 of the extracted text, set by processing.
    pub hash: Option<String>,
    /// Processing state (`status`, `content`, ...), an object.
    pub data: Map<String, Value>,
    /// Further metadata (`data`, `collection_name`, ...), an object without the keys above.
    pub meta: Map<String, Value>,
    /// Created, epoch seconds.
    pub created_at: i64,
    /// Updated, epoch seconds.
    pub updated_at: i64,
}

/// A file to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewFile {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: Option<String>,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Text hash.
    pub hash: Option<String>,
    /// Processing state.
    pub data: Map<String, Value>,
    /// Further metadata.
    pub meta: Map<String, Value>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

/// The keys of Open WebUI's `file.meta` that [`FileMeta`] holds in fields of its own.
pub const RESERVED_META_KEYS: [&str; 4] = ["name", "content_type", "size", "file_hash"];

impl NewFile {
    /// A file of `user_id` named `filename` holding `bytes`.
    pub fn new(user_id: impl Into<String>, filename: impl Into<String>, bytes: Vec<u8>) -> Self {
        NewFile {
            user_id: user_id.into(),
            filename: filename.into(),
            bytes,
            ..NewFile::default()
        }
    }

    /// Keep this id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Validates the input and gives the metadata to store (with the sha256 of the bytes).
    pub fn prepare(&self, now: i64) -> Result<FileMeta> {
        let id = self.id.clone().unwrap_or_else(validate::new_id);
        validate::id("file id", &id)?;
        validate::id("file user_id", &self.user_id)?;
        if self.filename.is_empty() {
            return Err(Error::invalid("file name must not be empty"));
        }
        validate::text("file name", &self.filename)?;
        if let Some(ct) = &self.content_type {
            validate::text("content_type", ct)?;
        }
        if self.bytes.len() > MAX_FILE_BYTES {
            return Err(Error::invalid(format!(
                "file is {} bytes; at most {MAX_FILE_BYTES} are allowed",
                self.bytes.len()
            )));
        }
        if let Some(key) = RESERVED_META_KEYS
            .iter()
            .find(|k| self.meta.contains_key(**k))
        {
            return Err(Error::invalid(format!(
                "file meta key {key:?} is reserved; set the field of the same meaning instead"
            )));
        }
        validate::json_text("file data", &Value::Object(self.data.clone()))?;
        validate::json_text("file meta", &Value::Object(self.meta.clone()))?;
        let created_at = self.created_at.unwrap_or(now);
        validate::timestamp("created_at", created_at)?;
        let updated_at = self.updated_at.unwrap_or(created_at);
        validate::timestamp("updated_at", updated_at)?;
        Ok(FileMeta {
            id,
            user_id: self.user_id.clone(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: self.bytes.len() as u64,
            sha256: sha256_hex(&self.bytes),
            hash: self.hash.clone(),
            data: self.data.clone(),
            meta: self.meta.clone(),
            created_at,
            updated_at,
        })
    }
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks bytes read back against their recorded hash.
pub fn verify(meta: &FileMeta, bytes: &[u8]) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual != meta.sha256 {
        return Err(Error::backend_msg(format!(
            "file {:?} is corrupt: stored sha256 {} but the bytes hash to {actual}",
            meta.id, meta.sha256
        )));
    }
    Ok(())
}

/// Storage of files.
#[async_trait]
pub trait FileRepo: Send + Sync {
    /// Stores bytes and metadata; `Conflict` when the id is taken.
    async fn put(&self, file: NewFile) -> Result<FileMeta>;
    /// Stores many files, all or nothing.
    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>>;
    /// A file's metadata; `NotFound` otherwise.
    async fn get(&self, id: &str) -> Result<FileMeta>;
    /// A file's bytes, checked against the recorded sha256 (`Backend` error when they differ).
    async fn read(&self, id: &str) -> Result<Vec<u8>>;
    /// Files ordered by `updated_at DESC, id`.
    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>>;
    /// Deletes the file and its bytes; `NotFound` when missing.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Deletes every file of the user; returns how many.
    async fn delete_for_user(&self, user_id: &str) -> Result<u64>;
    /// Up to `limit` files with an id greater than `after`, by id.
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>>;
    /// The ids [`scan`](Self::scan) would return, without decoding the records: an export
    /// finds the id of a record it cannot read this way and sets that record aside.
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(self
            .scan(after, limit)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect())
    }
}
