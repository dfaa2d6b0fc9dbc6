//! Messages: Open WebUI's `chat_message` rows, mirrored into the chat blob's `history`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chats::Chat;
use crate::{Error, Result, validate};

/// The roles a message can have.
pub const MESSAGE_ROLES: [&str; 3] = ["user", "assistant", "system"];

/// A message of a chat. Its id is unique within the chat (Open WebUI stores the row as
/// `"{chat_id}-{id}"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Message id within the chat.
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// Author; the chat owner when not given.
    pub user_id: Option<String>,
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Parent message id (bare), `None` for a root.
    pub parent_id: Option<String>,
    /// Content: a JSON string or a list of blocks.
    pub content: Value,
    /// Model id (JSON key `model`).
    pub model_id: Option<String>,
    /// Whether generation finished.
    pub done: bool,
    /// Output items.
    pub output: Option<Value>,
    /// Attached files.
    pub files: Option<Value>,
    /// Retrieval sources.
    pub sources: Option<Value>,
    /// Embeds.
    pub embeds: Option<Value>,
    /// Status history (JSON key `statusHistory`).
    pub status_history: Option<Value>,
    /// Error, a dict or a string.
    pub error: Option<Value>,
    /// Token usage.
    pub usage: Option<Value>,
    /// Free-form metadata.
    pub meta: Option<Value>,
    /// Context summary (JSON key `contextSummary`).
    pub context_summary: Option<String>,
    /// Created, epoch seconds (the message's `timestamp`).
    pub created_at: i64,
    /// Updated, epoch seconds.
    pub updated_at: i64,
}

impl Message {
    /// The row id Open WebUI gives this message: `"{chat_id}-{id}"`; keyset scans use it.
    pub fn key(&self) -> String {
        message_key(&self.chat_id, &self.id)
    }
}

/// The row id of message `id` in chat `chat_id`.
pub fn message_key(chat_id: &str, id: &str) -> String {
    format!("{chat_id}-{id}")
}

/// A message to insert or replace.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewMessage {
    /// Message id within the chat (required).
    pub id: String,
    /// The chat.
    pub chat_id: String,
    /// Author.
    pub user_id: Option<String>,
    /// Role.
    pub role: String,
    /// Parent message id.
    pub parent_id: Option<String>,
    /// Content; `""` when `Null`.
    pub content: Value,
    /// Model id.
    pub model_id: Option<String>,
    /// Done; `true` when `None`.
    pub done: Option<bool>,
    /// Output items.
    pub output: Option<Value>,
    /// Files.
    pub files: Option<Value>,
    /// Sources.
    pub sources: Option<Value>,
    /// Embeds.
    pub embeds: Option<Value>,
    /// Status history.
    pub status_history: Option<Value>,
    /// Error.
    pub error: Option<Value>,
    /// Usage.
    pub usage: Option<Value>,
    /// Metadata.
    pub meta: Option<Value>,
    /// Context summary.
    pub context_summary: Option<String>,
    /// Created; kept from the stored message on replace, else now, when `None`. Above 10^10
    /// it is taken as milliseconds and stored in seconds, as Open WebUI reads it.
    pub created_at: Option<i64>,
    /// Updated; now when `None`.
    pub updated_at: Option<i64>,
}

/// The input that writes this message again elsewhere with every field kept (timestamps
/// included): how a migration or a repair copies a message into another store.
impl From<&Message> for NewMessage {
    fn from(m: &Message) -> Self {
        NewMessage {
            id: m.id.clone(),
            chat_id: m.chat_id.clone(),
            user_id: m.user_id.clone(),
            role: m.role.clone(),
            parent_id: m.parent_id.clone(),
            content: m.content.clone(),
            model_id: m.model_id.clone(),
            done: Some(m.done),
            output: m.output.clone(),
            files: m.files.clone(),
            sources: m.sources.clone(),
            embeds: m.embeds.clone(),
            status_history: m.status_history.clone(),
            error: m.error.clone(),
            usage: m.usage.clone(),
            meta: m.meta.clone(),
            context_summary: m.context_summary.clone(),
            created_at: Some(m.created_at),
            updated_at: Some(m.updated_at),
        }
    }
}

impl NewMessage {
    /// A message with text content.
    pub fn text(
        chat_id: impl Into<String>,
        id: impl Into<String>,
        role: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        NewMessage {
            id: id.into(),
            chat_id: chat_id.into(),
            role: role.into(),
            content: Value::String(content.into()),
            ..NewMessage::default()
        }
    }

    /// With this parent.
    pub fn with_parent(mut self, parent_id: impl Into<String>) -> Self {
        self.parent_id = Some(parent_id.into());
        self
    }

    /// With these timestamps.
    pub fn at(mut self, created_at: i64) -> Self {
        self.created_at = Some(created_at);
        self.updated_at = Some(created_at);
        self
    }

    /// Checks the message without its chat (ids, role, JSON).
    pub fn validate(&self) -> Result<()> {
        validate::id("message id", &self.id)?;
        validate::id("message chat_id", &self.chat_id)?;
        if let Some(user) = &self.user_id {
            validate::id("message user_id", user)?;
        }
        if !MESSAGE_ROLES.contains(&self.role.as_str()) {
            return Err(Error::invalid(format!(
                "message role {:?} is not one of {MESSAGE_ROLES:?}",
                self.role
            )));
        }
        if let Some(parent) = &self.parent_id {
            validate::id("message parent_id", parent)?;
            if *parent == self.id {
                return Err(Error::invalid(format!(
                    "message {:?} cannot be its own parent",
                    self.id
                )));
            }
        }
        match &self.content {
            Value::String(_) | Value::Array(_) | Value::Null => {}
            other => {
                return Err(Error::invalid(format!(
                    "message content must be a string or a list of blocks, got {}",
                    validate::json_type(other)
                )));
            }
        }
        validate::json_text("message content", &self.content)?;
        if let Some(model) = &self.model_id {
            validate::text("model_id", model)?;
        }
        for (what, v) in [
            ("output", &self.output),
            ("files", &self.files),
            ("sources", &self.sources),
            ("embeds", &self.embeds),
            ("status_history", &self.status_history),
            ("error", &self.error),
            ("usage", &self.usage),
            ("meta", &self.meta),
        ] {
            if let Some(v) = v {
                if v.is_null() {
                    return Err(Error::invalid(format!(
                        "message {what} is Some(null); use None for no value"
                    )));
                }
                validate::json_text(what, v)?;
            }
        }
        if let Some(summary) = &self.context_summary {
            validate::text("context_summary", summary)?;
        }
        for (what, ts) in [
            ("created_at", self.created_at),
            ("updated_at", self.updated_at),
        ] {
            if let Some(ts) = ts {
                validate::timestamp(what, ts)?;
            }
        }
        Ok(())
    }

    /// Validates the message for `chat` and gives the message to store. `existing` is the
    /// stored message with the same id, whose `created_at` is kept when none is given. A new
    /// message without `created_at` was created when it was last updated: its `updated_at` when
    /// given, else `now`. (So two stores given the same message store the same timestamps,
    /// whatever second each one's clock reads.)
    pub fn into_stored(self, chat: &Chat, existing: Option<&Message>, now: i64) -> Result<Message> {
        self.validate()?;
        if self.chat_id != chat.id {
            return Err(Error::invalid(format!(
                "message chat_id {:?} does not match chat {:?}",
                self.chat_id, chat.id
            )));
        }
        // As Open WebUI reads `chat_message.created_at` (and as SQL reads it back): above
        // 10^10 it is milliseconds.
        let created_at = crate::blob::normalize_timestamp(
            self.created_at
                .or(existing.map(|m| m.created_at))
                .or(self.updated_at)
                .unwrap_or(now),
        );
        let updated_at = self.updated_at.unwrap_or(now);
        Ok(Message {
            id: self.id,
            chat_id: self.chat_id,
            user_id: Some(self.user_id.unwrap_or_else(|| chat.user_id.clone())),
            role: self.role,
            parent_id: self.parent_id,
            content: if self.content.is_null() {
                Value::String(String::new())
            } else {
                self.content
            },
            model_id: self.model_id,
            done: self.done.unwrap_or(true),
            output: self.output,
            files: self.files,
            sources: self.sources,
            embeds: self.embeds,
            status_history: self.status_history,
            error: self.error,
            usage: self.usage,
            meta: self.meta,
            context_summary: self.context_summary,
            created_at,
            updated_at,
        })
    }

    /// Like [`NewMessage::into_stored`] for a message of a chat being created.
    pub fn into_message(self, chat: &Chat, now: i64) -> Result<Message> {
        self.into_stored(chat, None, now)
    }
}

/// Storage of messages. Every write also updates the chat blob's `history` (the message under
/// `history.messages[id]`, the parent's `childrenIds`, `history.currentId`), atomically, and
/// raises the chat's `updated_at` to the message's when it is newer.
#[async_trait]
pub trait MessageRepo: Send + Sync {
    /// Inserts or replaces a message; `NotFound` when the chat is missing.
    async fn upsert(&self, message: NewMessage) -> Result<Message>;
    /// Inserts or replaces many messages of one chat, all or nothing.
    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>>;
    /// One message; `NotFound` when the chat or the message is missing.
    async fn get(&self, chat_id: &str, id: &str) -> Result<Message>;
    /// The chat's messages ordered by `created_at, id`; `NotFound` when the chat is missing.
    async fn list(&self, chat_id: &str) -> Result<Vec<Message>>;
    /// [`MessageRepo::list`] of several chats at once (at most
    /// [`MAX_SCAN_LIMIT`](crate::query::MAX_SCAN_LIMIT)): one list per id, in the order given;
    /// `NotFound` when any of them is missing. A migration reads a page of chats' messages so,
    /// in one read where the store allows it; by default, one `list` after the other.
    async fn list_many(&self, chat_ids: &[String]) -> Result<Vec<Vec<Message>>> {
        let mut out = Vec::with_capacity(chat_ids.len());
        for id in chat_ids {
            out.push(self.list(id).await?);
        }
        Ok(out)
    }
    /// Deletes a message from the rows and the blob; `NotFound` when missing.
    async fn delete(&self, chat_id: &str, id: &str) -> Result<()>;
    /// Up to `limit` messages whose key (`"{chat_id}-{id}"`) is greater than `after`, by key.
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>>;
    /// Like [`MessageRepo::scan`], but only the messages whose chat the store does not hold
    /// (Open WebUI's `chat_message` has no foreign key to `chat`, so a broken import can leave
    /// such rows). A migration sets them aside with one walk the store answers by itself
    /// instead of reading every message. `Unsupported` by default: the caller then walks
    /// [`MessageRepo::scan`] and looks the chats up.
    async fn scan_orphans(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        let _ = (after, limit);
        Err(crate::Error::unsupported("messages", "scan_orphans"))
    }
}
