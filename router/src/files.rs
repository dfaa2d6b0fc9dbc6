//! Routed files.

//!
//! Streaming calls follow the group's phase like the others: `read_stream` and `download_url`
//! go to the store reads come from (byte streams are not shadow-compared; `read` is). In the
//! phases that write both stores, `put_stream` streams the upload into the old store, then
//! streams the stored bytes from there into the new store, checked against the sha256 the old
//! store computed; memory stays a few chunks whatever the size. When the copy fails, the
//! caller still gets the old store's answer and the file is logged for repair.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatstore_core::files::{FileMeta, FileRepo, NewFile, sha256_hex};
use chatstore_core::signing::SignedUrl;
use chatstore_core::transfer::{ByteRange, ByteStream, FileStream};
use chatstore_core::validate::{new_id, now};
use chatstore_core::{FileQuery, ModelGroup, Page, Result, Store};
use serde_json::Value;

use crate::phase::Phase;
use crate::repair::RepairKey;
use crate::router::{Compared, Shared, bounded, canon, on};

const G: ModelGroup = ModelGroup::Files;

pub(crate) struct Files(pub(crate) Arc<Shared>);

/// Fixes the id and timestamps, so both stores store the same file.
fn fixed(mut file: NewFile) -> NewFile {
    file.id.get_or_insert_with(new_id);
    file.created_at.get_or_insert_with(now);
    file
}

fn key(file: &NewFile) -> RepairKey {
    RepairKey::File(file.id.clone().unwrap_or_default())
}

/// Bytes compare by their sha256 (a diff record holds the two hashes, not the bytes).
#[allow(clippy::ptr_arg)] // the shape of `canon` for a `Vec<u8>` answer
fn bytes_hash(bytes: &Vec<u8>) -> Result<Value> {
    Ok(Value::String(sha256_hex(bytes)))
}

impl Files {
    /// The store reads come from in the group's phase.
    fn reader(&self) -> Result<&Store> {
        if self.0.phase(G).reads_new() {
            self.0.new_of(G)
        } else {
            Ok(&self.0.old)
        }
    }

    /// Copies a file the old store holds into the new one, streaming, checked against the
    /// old store's sha256.
    async fn copy_to_new(&self, new: &Store, file: NewFile, stored: &FileMeta) -> Result<FileMeta> {
        let source = self.0.old.files.read_stream(&stored.id, None).await?;
        new.files
            .put_stream(file, source.body, Some(&stored.sha256))
            .await
    }
}

#[async_trait]
impl FileRepo for Files {
    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        let file = fixed(file);
        let _foreground = self.0.foreground();
        let (phase, _gate) = self.0.write_phase(G).await;
        match phase {
            Phase::Old => {
                self.0
                    .old
                    .files
                    .put_stream(file, body, expected_sha256)
                    .await
            }
            Phase::NewOnly => {
                let new = self.0.new_of(G)?;
                new.files.put_stream(file, body, expected_sha256).await
            }
            Phase::Dual | Phase::Shadow | Phase::New => {
                let new = self.0.new_of(G)?;
                let keys = vec![key(&file)];
                let _locks = self.0.lock_keys(&keys).await;
                // A caller that goes away part way leaves the file logged: the old store's put
                // may land without the copy.
                let mut unfinished = self.0.unfinished("files.put_stream", keys);
                let stored = unfinished.old_answer(
                    self.0
                        .old
                        .files
                        .put_stream(file.clone(), body, expected_sha256)
                        .await,
                )?;
                let copy = bounded(
                    self.0.secondary_timeout(),
                    self.copy_to_new(new, file, &stored),
                )
                .await;
                let reason = match copy {
                    None => Some(format!(
                        "the new store did not take the file within {:?}",
                        self.0.secondary_timeout()
                    )),
                    Some(Err(e)) => Some(format!("the new store failed: {e}")),
                    Some(Ok(copied)) => (copied.sha256 != stored.sha256
                        || copied.size != stored.size)
                        .then(|| "the stores hold different bytes".to_owned()),
                };
                unfinished.settle(reason);
                Ok(stored)
            }
        }
    }

    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        self.reader()?.files.read_stream(id, range).await
    }

    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        self.reader()?.files.download_url(id, ttl).await
    }

    async fn put(&self, file: NewFile) -> Result<FileMeta> {
        let file = fixed(file);
        let keys = vec![key(&file)];
        self.0
            .write(
                G,
                "files.put",
                keys,
                on!(files, [file], |r| r.put(file).await),
            )
            .await
    }

    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        let files: Vec<NewFile> = files.into_iter().map(fixed).collect();
        let keys = files.iter().map(key).collect();
        self.0
            .write(
                G,
                "files.put_many",
                keys,
                on!(files, [files], |r| r.put_many(files).await),
            )
            .await
    }

    async fn get(&self, id: &str) -> Result<FileMeta> {
        let id = id.to_owned();
        self.0
            .read(
                G,
                "files.get",
                vec![id.clone()],
                canon,
                on!(files, [id], |r| r.get(&id).await),
            )
            .await
    }

    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_owned();
        // The bytes are compared with a copy of the caller's: a memory copy costs less than
        // reading the file again.
        self.0
            .read_compared(
                G,
                "files.read",
                vec![id.clone()],
                bytes_hash,
                on!(files, [id], |r| r.read(&id).await),
                Compared::Answer,
            )
            .await
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        let query = query.clone();
        let ids = vec![serde_json::to_string(&query).unwrap_or_default()];
        self.0
            .read(
                G,
                "files.list",
                ids,
                canon,
                on!(files, [query], |r| r.list(&query).await),
            )
            .await
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.0
            .write(
                G,
                "files.delete",
                vec![RepairKey::File(id.clone())],
                on!(files, [id], |r| r.delete(&id).await),
            )
            .await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let user = user_id.to_owned();
        self.0
            .write(
                G,
                "files.delete_for_user",
                vec![RepairKey::FilesOf(user.clone())],
                on!(files, [user], |r| r.delete_for_user(&user).await),
            )
            .await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "files.scan",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(files, [after, limit], |r| r
                    .scan(after.as_deref(), limit)
                    .await),
            )
            .await
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "files.scan_ids",
                vec![format!("after={after:?} limit={limit}")],
                canon,
                on!(files, [after, limit], |r| r
                    .scan_ids(after.as_deref(), limit)
                    .await),
            )
            .await
    }
}
