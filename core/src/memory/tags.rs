use crate::changes::{ChangeEvent, ChangeKind, field};
use async_trait::async_trait;

use super::MemoryBackend;
use crate::tags::{Tag, TagKey, TagRepo, TagUsage, tag_id};
use crate::{Error, Result};

#[async_trait]
impl TagRepo for MemoryBackend {
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>> {
        let s = self.lock()?;
        Ok(s.tags
            .values()
            .filter(|t| t.user_id == user_id)
            .cloned()
            .collect())
    }

    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>> {
        let s = self.lock()?;
        Ok(s.tags
            .values()
            .filter(|t| t.user_id == user_id)
            .map(|t| TagUsage {
                tag: t.clone(),
                chats: s
                    .chats
                    .values()
                    .filter(|c| c.user_id == user_id && !c.is_internal() && c.tags.contains(&t.id))
                    .count() as u64,
            })
            .collect())
    }

    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag> {
        let key = TagKey {
            user_id: user_id.to_owned(),
            id: tag_id(name_or_id),
        };
        let s = self.lock()?;
        s.tags
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::not_found("tag", name_or_id))
    }

    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag> {
        let id = tag_id(name);
        let mut s = self.lock()?;
        Ok(s.ensure_tag(user_id, &id, name))
    }

    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        self.transaction(|s| {
            for tag in tags {
                let key = TagKey {
                    user_id: tag.user_id.clone(),
                    id: tag.id.clone(),
                };
                if s.tags.contains_key(&key) {
                    return Err(Error::conflict(
                        "tag",
                        format!("user {:?} has tag {:?}", key.user_id, key.id),
                    ));
                }
                s.tags.insert(key, tag);
            }
            Ok(())
        })
    }

    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()> {
        let id = tag_id(name_or_id);
        self.write(|s| {
            let key = TagKey {
                user_id: user_id.to_owned(),
                id: id.clone(),
            };
            if s.tags.remove(&key).is_none() {
                return Err(Error::not_found("tag", name_or_id));
            }
            let mut touched = Vec::new();
            for chat in s.chats.values_mut().filter(|c| c.user_id == user_id) {
                if chat.tags.remove(&id) {
                    touched.push(ChangeEvent::chat(ChangeKind::Updated, chat, &[field::TAGS]));
                }
            }
            for event in touched {
                s.announce(event);
            }
            Ok(())
        })
    }

    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        let s = self.lock()?;
        Ok(s.tags
            .iter()
            .filter(|(k, _)| after.is_none_or(|a| *k > a))
            .take(limit as usize)
            .map(|(_, t)| t.clone())
            .collect())
    }
}
