use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{MemoryBackend, State};
use crate::changes::{ChangeEvent, ChangeKind, field, patch_fields};
use crate::chats::{
    Chat, ChatPatch, ChatRepo, ChatSummary, NewChat, matches_query, sort_summaries, unique_tags,
};
use crate::query::{ChatQuery, Page};
use crate::rows::cascades::CHAT_CASCADES;
use crate::tags::{Tag, TagKey, tag_id};
use crate::{Error, Result, validate};

impl State {
    pub(super) fn chat(&self, id: &str) -> Result<&Chat> {
        self.chats
            .get(id)
            .ok_or_else(|| Error::not_found("chat", id))
    }

    pub(super) fn ensure_tag(&mut self, user_id: &str, id: &str, name: &str) -> Tag {
        let key = TagKey {
            user_id: user_id.to_owned(),
            id: id.to_owned(),
        };
        self.tags
            .entry(key)
            .or_insert_with(|| Tag {
                id: id.to_owned(),
                name: name.to_owned(),
                user_id: user_id.to_owned(),
                meta: None,
            })
            .clone()
    }

    /// Deletes those of `candidates` that no chat of the user carries any more.
    pub(super) fn remove_orphan_tags<'a>(
        &mut self,
        user_id: &str,
        candidates: impl IntoIterator<Item = &'a String>,
    ) {
        for id in candidates {
            let used = self
                .chats
                .values()
                .any(|c| c.user_id == user_id && c.tags.contains(id));
            if !used {
                self.tags.remove(&TagKey {
                    user_id: user_id.to_owned(),
                    id: id.clone(),
                });
            }
        }
    }

    fn insert_chat(&mut self, chat: NewChat) -> Result<Chat> {
        let prepared = chat.prepare(validate::now())?;
        let chat = prepared.chat;
        if self.chats.contains_key(&chat.id) {
            return Err(Error::conflict("chat", format!("id {:?} exists", chat.id)));
        }
        if let Some(share) = &chat.share_id
            && self
                .chats
                .values()
                .any(|c| c.share_id.as_ref() == Some(share))
        {
            return Err(Error::conflict(
                "chat",
                format!("share id {share:?} is taken"),
            ));
        }
        for message in &prepared.messages {
            self.check_key_free(&chat.id, &message.id)?;
        }
        for (id, name) in &prepared.tags {
            self.ensure_tag(&chat.user_id, id, name);
        }
        for message in prepared.messages {
            self.messages
                .insert((chat.id.clone(), message.id.clone()), message);
        }
        self.chats.insert(chat.id.clone(), chat.clone());
        self.announce(ChangeEvent::chat(ChangeKind::Created, &chat, &[]));
        Ok(chat)
    }

    pub(super) fn delete_chat(&mut self, id: &str) -> Result<()> {
        let chat = self
            .chats
            .remove(id)
            .ok_or_else(|| Error::not_found("chat", id))?;
        let keys: Vec<_> = self
            .messages
            .range((id.to_owned(), String::new())..)
            .take_while(|((c, _), _)| c == id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.messages.remove(&key);
        }
        self.remove_orphan_tags(&chat.user_id, &chat.tags);
        self.announce(ChangeEvent::chat(ChangeKind::Deleted, &chat, &[]));
        Ok(())
    }

    fn set_chat_tags(&mut self, id: &str, pairs: Vec<(String, String)>) -> Result<Chat> {
        let mut chat = self.chat(id)?.clone();
        let old = std::mem::take(&mut chat.tags);
        for (tag, name) in &pairs {
            self.ensure_tag(&chat.user_id, tag, name);
        }
        chat.tags = pairs.into_iter().map(|(t, _)| t).collect();
        let removed: BTreeSet<String> = old.difference(&chat.tags).cloned().collect();
        self.chats.insert(id.to_owned(), chat.clone());
        self.remove_orphan_tags(&chat.user_id, &removed);
        self.announce(ChangeEvent::chat(
            ChangeKind::Updated,
            &chat,
            &[field::TAGS],
        ));
        Ok(chat)
    }
}

impl MemoryBackend {
    /// Every chat `query` selects, as summaries in its order (before paging).
    fn matching(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        let tag_ids = query.tag_ids();
        let s = self.lock()?;
        let mut items: Vec<ChatSummary> = s
            .chats
            .values()
            .filter(|c| matches_query(c, query, &tag_ids))
            .map(Chat::summary)
            .collect();
        sort_summaries(&mut items, query.order);
        Ok(items)
    }
}

#[async_trait]
impl ChatRepo for MemoryBackend {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        self.write(|s| s.insert_chat(chat))
    }

    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        self.transaction(|s| chats.into_iter().map(|c| s.insert_chat(c)).collect())
    }

    async fn get(&self, id: &str) -> Result<Chat> {
        self.lock()?.chat(id).cloned()
    }

    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat> {
        self.write(|s| {
            let mut chat = s.chat(id)?.clone();
            patch.apply(&mut chat, validate::now())?;
            if let Some(Some(share)) = &patch.share_id
                && s.chats
                    .values()
                    .any(|c| c.id != id && c.share_id.as_ref() == Some(share))
            {
                return Err(Error::conflict(
                    "chat",
                    format!("share id {share:?} is taken"),
                ));
            }
            s.chats.insert(id.to_owned(), chat.clone());
            s.announce(ChangeEvent::chat(
                ChangeKind::Updated,
                &chat,
                &patch_fields(&patch),
            ));
            Ok(chat)
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.write_deleting(CHAT_CASCADES, |s| {
            s.delete_chat(id)?;
            Ok(((), vec![id.to_owned()]))
        })
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        self.write_deleting(CHAT_CASCADES, |s| {
            let ids: Vec<String> = s
                .chats
                .values()
                .filter(|c| c.user_id == user_id)
                .map(|c| c.id.clone())
                .collect();
            for id in &ids {
                s.delete_chat(id)?;
            }
            s.tags.retain(|k, _| k.user_id != user_id);
            Ok((ids.len() as u64, ids))
        })
    }

    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        let items = self.matching(query)?;
        let total = items.len() as u64;
        Ok(Page {
            items: query.page.slice(items),
            total,
        })
    }

    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        Ok(query.page.slice(self.matching(query)?))
    }

    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        let pairs = unique_tags(names);
        self.write(|s| s.set_chat_tags(id, pairs))
    }

    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        let pairs = unique_tags(&[name.to_owned()]);
        self.write(|s| {
            let chat = s.chat(id)?.clone();
            let mut all: Vec<(String, String)> =
                chat.tags.iter().map(|t| (t.clone(), t.clone())).collect();
            all.extend(pairs);
            s.set_chat_tags(id, all)
        })
    }

    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        let target = tag_id(name_or_id);
        self.write(|s| {
            let chat = s.chat(id)?.clone();
            let kept: Vec<(String, String)> = chat
                .tags
                .iter()
                .filter(|t| **t != target)
                .map(|t| (t.clone(), t.clone()))
                .collect();
            s.set_chat_tags(id, kept)
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        let s = self.lock()?;
        Ok(s.chats
            .values()
            .filter(|c| after.is_none_or(|a| c.id.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}
