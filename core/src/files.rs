//! Files: bytes plus Open WebUI's `file` metadata, with the sha256 of the bytes recorded.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::query::{FileQuery, Page};
use crate::signing::SignedUrl;
use crate::transfer::{
    ByteRange, ByteStream, FileStream, Received, collect, stream_bytes, validate_sha256,
};
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
        if self.bytes.len() > MAX_FILE_BYTES {
            return Err(Error::invalid(format!(
                "file is {} bytes; at most {MAX_FILE_BYTES} are allowed in one buffer \
                 (stream larger files with put_stream)",
                self.bytes.len()
            )));
        }
        let pending = self.prepare_upload(now)?;
        Ok(pending.finish(&Received {
            size: self.bytes.len() as u64,
            sha256: sha256_hex(&self.bytes),
        }))
    }

    /// Validates everything but the bytes, for a streamed upload: its metadata is complete once
    /// the stream has ended ([`FileMeta::finish`]). `InvalidInput` when `bytes` is not empty
    /// (a streamed file takes its bytes from the stream only).
    pub fn prepare_upload(&self, now: i64) -> Result<FileMeta> {
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
        if let Some(hash) = &self.hash {
            validate::text("file hash", hash)?;
        }
        if let Some(key) = RESERVED_META_KEYS
            .iter()
            .find(|k| self.meta.contains_key(**k))
        {
            return Err(Error::invalid(format!(
                "file meta key {key:?} is reserved; set the field of the same meaning instead"
            )));
        }
        validate::json_map("file data", &self.data)?;
        validate::json_map("file meta", &self.meta)?;
        let created_at = self.created_at.unwrap_or(now);
        validate::timestamp("created_at", created_at)?;
        let updated_at = self.updated_at.unwrap_or(created_at);
        validate::timestamp("updated_at", updated_at)?;
        Ok(FileMeta {
            id,
            user_id: self.user_id.clone(),
            filename: self.filename.clone(),
            content_type: self.content_type.clone(),
            size: 0,
            sha256: String::new(),
            hash: self.hash.clone(),
            data: self.data.clone(),
            meta: self.meta.clone(),
            created_at,
            updated_at,
        })
    }

    /// Checks a streamed upload's arguments before any byte moves and gives its pending
    /// metadata: the file is valid, carries no buffered bytes, and the expected sha256 (if
    /// any) is 64 hex digits.
    pub fn prepare_stream(&self, now: i64, expected_sha256: Option<&str>) -> Result<FileMeta> {
        if !self.bytes.is_empty() {
            return Err(Error::invalid(
                "a streamed file takes its bytes from the stream; leave NewFile::bytes empty",
            ));
        }
        validate_sha256(expected_sha256)?;
        self.prepare_upload(now)
    }
}

impl FileMeta {
    /// The metadata of a pending upload completed with what its stream delivered.
    pub fn finish(mut self, received: &Received) -> FileMeta {
        self.size = received.size;
        self.sha256 = received.sha256.clone();
        self
    }
}

/// Lower-case hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
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
///
/// Bytes move either as whole buffers (`put`, `read`: conveniences for small files, capped at
/// [`MAX_FILE_BYTES`]) or as streams (`put_stream`, `read_stream`) whose memory per transfer is
/// bounded by a chunk size whatever the file size. The streaming methods have buffering
/// defaults so that wrappers keep compiling; every backend overrides them, and a wrapper
/// should forward them.
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

    /// Stores a file whose bytes arrive as `body` (`file.bytes` stays empty), hashing them as
    /// they pass. When `expected_sha256` is given and the bytes hash to something else, the
    /// upload is refused with `InvalidInput`. A refused, failed or interrupted upload (the
    /// stream yields an error or the call is dropped) stores nothing: no record, no bytes.
    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        file.prepare_stream(validate::now(), expected_sha256)?;
        let bytes = collect(body, MAX_FILE_BYTES as u64).await?;
        Received {
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
        }
        .check(expected_sha256)?;
        self.put(NewFile { bytes, ..file }).await
    }

    /// A file's bytes as a stream: the whole file (checked against its sha256 as it passes)
    /// or `range` of it. `NotFound` for a missing file, `InvalidInput` for a range outside it.
    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        let meta = self.get(id).await?;
        let bytes = self.read(id).await?;
        let (start, end) = match range {
            Some(r) => r.resolve(meta.size)?,
            None => (0, meta.size),
        };
        let slice = bytes
            .get(start as usize..end as usize)
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        Ok(FileStream::checked(meta, start, end, stream_bytes(slice)))
    }

    /// A URL a browser can fetch the file from without other credentials, valid for `ttl`
    /// (1 s to 7 days). `Unsupported` when the backend cannot sign links, `NotFound` for a
    /// missing file.
    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        let _ = (id, ttl);
        Err(Error::unsupported("this file store", "files.download_url"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text of a file is checked: a NUL in its hash is refused (PostgreSQL refuses it in
    /// text, so the memory model and SQLite had kept what PostgreSQL could not).
    #[test]
    fn a_hash_holding_a_nul_is_refused() {
        let mut file = NewFile::new("u1", "a.txt", b"hi".to_vec());
        file.hash = Some("a\0b".into());
        let err = file.prepare(1_700_000_000).expect_err("refused");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("file hash"), "{err}");
        file.hash = Some("ab12".into());
        file.prepare(1_700_000_000).expect("accepted");
    }
}
