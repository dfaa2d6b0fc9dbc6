use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{MemoryBackend, State};
use crate::changes::{ChangeEvent, ChangeKind};
use crate::files::{FileMeta, FileRepo, NewFile, verify};
use crate::query::{FileQuery, Page};
use crate::rows::cascades::FILE_CASCADES;
use crate::signing::{SignedUrl, local_download_url};
use crate::transfer::{
    ByteRange, ByteStream, FileStream, Hashing, MAX_STREAMED_FILE_BYTES, stream_bytes,
};
use crate::{Error, Result, validate};

impl State {
    fn put_file(&mut self, file: NewFile) -> Result<FileMeta> {
        let meta = file.prepare(validate::now())?;
        self.insert_file(meta, file.bytes.into())
    }

    fn insert_file(&mut self, meta: FileMeta, bytes: Bytes) -> Result<FileMeta> {
        if self.files.contains_key(&meta.id) {
            return Err(Error::conflict("file", format!("id {:?} exists", meta.id)));
        }
        self.files.insert(meta.id.clone(), (meta.clone(), bytes));
        self.announce(ChangeEvent::file(ChangeKind::Created, &meta));
        Ok(meta)
    }
}

#[async_trait]
impl FileRepo for MemoryBackend {
    async fn put(&self, file: NewFile) -> Result<FileMeta> {
        self.write(|s| s.put_file(file))
    }

    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        self.transaction(|s| files.into_iter().map(|f| s.put_file(f)).collect())
    }

    async fn get(&self, id: &str) -> Result<FileMeta> {
        let s = self.lock()?;
        s.files
            .get(id)
            .map(|(m, _)| m.clone())
            .ok_or_else(|| Error::not_found("file", id))
    }

    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        let s = self.lock()?;
        let (meta, bytes) = s
            .files
            .get(id)
            .ok_or_else(|| Error::not_found("file", id))?;
        verify(meta, bytes)?;
        Ok(bytes.to_vec())
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        let s = self.lock()?;
        let mut items: Vec<FileMeta> = s
            .files
            .values()
            .filter(|(m, _)| query.user_id.as_ref().is_none_or(|u| *u == m.user_id))
            .map(|(m, _)| m.clone())
            .collect();
        items.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        let total = items.len() as u64;
        Ok(Page {
            items: query.page.slice(items),
            total,
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.write_deleting(FILE_CASCADES, |s| {
            let (meta, _) = s
                .files
                .remove(id)
                .ok_or_else(|| Error::not_found("file", id))?;
            s.announce(ChangeEvent::file(ChangeKind::Deleted, &meta));
            Ok(((), vec![meta.id]))
        })
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        self.write_deleting(FILE_CASCADES, |s| {
            let gone: Vec<FileMeta> = s
                .files
                .values()
                .filter(|(m, _)| m.user_id == user_id)
                .map(|(m, _)| m.clone())
                .collect();
            for meta in &gone {
                s.files.remove(&meta.id);
                s.announce(ChangeEvent::file(ChangeKind::Deleted, meta));
            }
            let ids = gone.into_iter().map(|m| m.id).collect::<Vec<_>>();
            Ok((ids.len() as u64, ids))
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        let s = self.lock()?;
        Ok(s.files
            .values()
            .filter(|(m, _)| after.is_none_or(|a| m.id.as_str() > a))
            .take(limit as usize)
            .map(|(m, _)| m.clone())
            .collect())
    }

    /// Memory: the file is held in memory anyway; the upload is received chunk by chunk and
    /// becomes visible only once complete and checked.
    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        let pending = file.prepare_stream(validate::now(), expected_sha256)?;
        let mut hashing = Hashing::new(body, MAX_STREAMED_FILE_BYTES);
        let mut bytes = Vec::new();
        while let Some(chunk) = hashing.next_chunk().await? {
            bytes.extend_from_slice(&chunk);
        }
        let received = hashing
            .received()
            .ok_or_else(|| Error::backend_msg("the upload stream did not end"))?;
        received.check(expected_sha256)?;
        let meta = pending.finish(&received);
        self.write(|s| s.insert_file(meta, bytes.into()))
    }

    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        let (meta, bytes) = {
            let s = self.lock()?;
            s.files
                .get(id)
                .cloned()
                .ok_or_else(|| Error::not_found("file", id))?
        };
        let (start, end) = match range {
            Some(r) => r.resolve(meta.size)?,
            None => (0, meta.size),
        };
        let slice = bytes
            .get(start as usize..end as usize)
            .map(|s| bytes.slice_ref(s))
            .ok_or_else(|| {
                Error::backend_msg(format!(
                    "file {id:?} holds {} bytes, not the {} recorded",
                    bytes.len(),
                    meta.size
                ))
            })?;
        Ok(FileStream::checked(meta, start, end, stream_bytes(slice)))
    }

    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        self.get(id).await?;
        local_download_url("memory", self.urls.as_ref(), id, ttl)
    }
}
