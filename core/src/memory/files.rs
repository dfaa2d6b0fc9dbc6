use async_trait::async_trait;

use super::{MemoryBackend, State};
use crate::changes::{ChangeEvent, ChangeKind};
use crate::files::{FileMeta, FileRepo, NewFile, verify};
use crate::query::{FileQuery, Page, validate_scan_limit};
use crate::{Error, Result, validate};

impl State {
    fn put_file(&mut self, file: NewFile) -> Result<FileMeta> {
        let meta = file.prepare(validate::now())?;
        if self.files.contains_key(&meta.id) {
            return Err(Error::conflict("file", format!("id {:?} exists", meta.id)));
        }
        self.files
            .insert(meta.id.clone(), (meta.clone(), file.bytes));
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
        Ok(bytes.clone())
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        query.page.validate()?;
        if let Some(user) = &query.user_id {
            validate::id("user_id", user)?;
        }
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
        self.write(|s| {
            let (meta, _) = s
                .files
                .remove(id)
                .ok_or_else(|| Error::not_found("file", id))?;
            s.announce(ChangeEvent::file(ChangeKind::Deleted, &meta));
            Ok(())
        })
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        validate::id("user_id", user_id)?;
        self.write(|s| {
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
            Ok(gone.len() as u64)
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        validate_scan_limit(limit)?;
        let s = self.lock()?;
        Ok(s.files
            .values()
            .filter(|(m, _)| after.is_none_or(|a| m.id.as_str() > a))
            .take(limit as usize)
            .map(|(m, _)| m.clone())
            .collect())
    }
}
