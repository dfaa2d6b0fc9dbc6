use async_trait::async_trait;

use super::{MemoryBackend, State};
use crate::changes::{ChangeEvent, ChangeKind};
use crate::messages::{Message, MessageRepo, NewMessage, message_key};
use crate::{Error, Result, blob, validate};

impl State {
    fn upsert_message(&mut self, message: NewMessage) -> Result<Message> {
        let mut chat = self.chat(&message.chat_id)?.clone();
        let key = (message.chat_id.clone(), message.id.clone());
        let existing = self.messages.get(&key);
        let kind = if existing.is_some() {
            ChangeKind::Updated
        } else {
            self.check_key_free(&message.chat_id, &message.id)?;
            ChangeKind::Created
        };
        let message = message.into_stored(&chat, existing, validate::now())?;
        let event = ChangeEvent::message(kind, &chat.user_id, &message);
        blob::upsert_message(&mut chat.chat, &message);
        chat.updated_at = chat.updated_at.max(message.updated_at);
        self.chats.insert(chat.id.clone(), chat);
        self.messages.insert(key, message.clone());
        self.announce(event);
        Ok(message)
    }
}

impl State {
    /// `Conflict` when the key `"{chat_id}-{id}"` is held by a message of another chat (Open
    /// WebUI's row id: chat `a` message `b-c` and chat `a-b` message `c` share `a-b-c`), as
    /// SQL's primary key refuses it. Only a chat id ending just before one of the key's `-`
    /// can share it: one lookup for each.
    pub(super) fn check_key_free(&self, chat_id: &str, id: &str) -> Result<()> {
        let key = message_key(chat_id, id);
        for (at, _) in key.match_indices('-') {
            let (other_chat, other_id) = (&key[..at], &key[at + 1..]);
            if other_chat != chat_id
                && self
                    .messages
                    .contains_key(&(other_chat.to_owned(), other_id.to_owned()))
            {
                return Err(Error::conflict(
                    "message",
                    format!(
                        "row id {key:?} of message {id:?} in chat {chat_id:?} is taken by \
                         message {other_id:?} of chat {other_chat:?}"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl MessageRepo for MemoryBackend {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        self.write(|s| s.upsert_message(message))
    }

    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        self.transaction(|s| {
            s.chat(chat_id)?;
            messages.into_iter().map(|m| s.upsert_message(m)).collect()
        })
    }

    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        let s = self.lock()?;
        s.chat(chat_id)?;
        s.messages
            .get(&(chat_id.to_owned(), id.to_owned()))
            .cloned()
            .ok_or_else(|| Error::not_found("message", message_key(chat_id, id)))
    }

    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        let s = self.lock()?;
        s.chat(chat_id)?;
        let mut out: Vec<Message> = s
            .messages
            .range((chat_id.to_owned(), String::new())..)
            .take_while(|((c, _), _)| c == chat_id)
            .map(|(_, m)| m.clone())
            .collect();
        blob::sort_messages(&mut out);
        Ok(out)
    }

    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        self.write(|s| {
            let mut chat = s.chat(chat_id)?.clone();
            s.messages
                .remove(&(chat_id.to_owned(), id.to_owned()))
                .ok_or_else(|| Error::not_found("message", message_key(chat_id, id)))?;
            blob::remove_message(&mut chat.chat, id);
            s.announce(ChangeEvent::message_ids(
                ChangeKind::Deleted,
                &chat.user_id,
                chat_id,
                id,
            ));
            s.chats.insert(chat.id.clone(), chat);
            Ok(())
        })
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let s = self.lock()?;
        scan_where(&s, after, limit, |_| true)
    }

    async fn scan_orphans(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let s = self.lock()?;
        scan_where(&s, after, limit, |m| !s.chats.contains_key(&m.chat_id))
    }
}

/// Up to `limit` messages that `keep` accepts, by key, after `after`.
fn scan_where(
    s: &State,
    after: Option<&str>,
    limit: u32,
    keep: impl Fn(&Message) -> bool,
) -> Result<Vec<Message>> {
    let mut all: Vec<(String, &Message)> = s
        .messages
        .values()
        .filter(|m| keep(m))
        .map(|m| (m.key(), m))
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(all
        .into_iter()
        .take(limit as usize)
        .map(|(_, m)| m.clone())
        .collect())
}
