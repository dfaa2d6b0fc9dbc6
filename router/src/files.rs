//! Routed files.

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::files::{FileMeta, FileRepo, NewFile, sha256_hex};
use chatstore_core::validate::{new_id, now};
use chatstore_core::{FileQuery, ModelGroup, Page, Result};
use serde_json::Value;

use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

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

#[async_trait]
impl FileRepo for Files {
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
        self.0
            .read(
                G,
                "files.read",
                vec![id.clone()],
                bytes_hash,
                on!(files, [id], |r| r.read(&id).await),
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
