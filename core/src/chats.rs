//! Chats: Open WebUI's `chat` table, with the conversation blob and the tag set.

use std::collections::BTreeSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::query::{ChatQuery, Page};
use crate::{Error, Result, blob, tags, validate};

/// The title of a chat created without one.
pub const DEFAULT_TITLE: &str = "New Chat";

/// A chat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// Id (Open WebUI: uuid4).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Title, mirrored into `chat.title`.
    pub title: String,
    /// The conversation blob: `title`, `models`, `params`, `history {messages, currentId}`, ...
    pub chat: Value,
    /// Metadata object without `tags` (`internal`, `type`, `parent_chat_id`, ...).
    pub meta: Map<String, Value>,
    /// The chat's tag ids, a set.
    pub tags: BTreeSet<String>,
    /// Archived.
    pub archived: bool,
    /// Pinned.
    pub pinned: bool,
    /// Folder.
    pub folder_id: Option<String>,
    /// Share token, unique.
    pub share_id: Option<String>,
    /// Created, epoch seconds.
    pub created_at: i64,
    /// Updated, epoch seconds.
    pub updated_at: i64,
}

impl Chat {
    /// Whether the chat is internal (`meta.internal = true`): never listed or counted.
    pub fn is_internal(&self) -> bool {
        is_internal(&self.meta)
    }

    /// The list view of this chat.
    pub fn summary(&self) -> ChatSummary {
        ChatSummary {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            title: self.title.clone(),
            tags: self.tags.clone(),
            archived: self.archived,
            pinned: self.pinned,
            folder_id: self.folder_id.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Whether a meta object marks its chat internal.
pub fn is_internal(meta: &Map<String, Value>) -> bool {
    meta.get("internal") == Some(&Value::Bool(true))
}

/// A chat as lists show it: everything but the blob and meta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatSummary {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Title.
    pub title: String,
    /// Tag ids.
    pub tags: BTreeSet<String>,
    /// Archived.
    pub archived: bool,
    /// Pinned.
    pub pinned: bool,
    /// Folder.
    pub folder_id: Option<String>,
    /// Created.
    pub created_at: i64,
    /// Updated.
    pub updated_at: i64,
}

/// A chat to create. Messages in the blob's `history.messages` are stored as messages too.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewChat {
    /// Id to keep; a uuid4 when `None`.
    pub id: Option<String>,
    /// Owner.
    pub user_id: String,
    /// Title; the blob's `title`, else "New Chat", when `None`.
    pub title: Option<String>,
    /// The blob; `{}` when `None`. Must be an object.
    pub chat: Option<Value>,
    /// Metadata object; a `tags` key in it is merged into `tags`.
    pub meta: Option<Map<String, Value>>,
    /// Tag names (normalised to ids; tag rows are created).
    pub tags: Vec<String>,
    /// Archived.
    pub archived: bool,
    /// Pinned.
    pub pinned: bool,
    /// Folder.
    pub folder_id: Option<String>,
    /// Share token.
    pub share_id: Option<String>,
    /// Created; now when `None`.
    pub created_at: Option<i64>,
    /// Updated; `created_at` when `None`.
    pub updated_at: Option<i64>,
}

impl NewChat {
    /// An empty chat of `user_id` titled `title`.
    pub fn new(user_id: impl Into<String>, title: impl Into<String>) -> Self {
        NewChat {
            user_id: user_id.into(),
            title: Some(title.into()),
            ..NewChat::default()
        }
    }

    /// `chat` as it is stored, to be written again elsewhere: its id, owner, title, blob,
    /// meta, tags (by id), flags, folder, share and both times.
    pub fn again(chat: &Chat) -> Self {
        NewChat {
            id: Some(chat.id.clone()),
            user_id: chat.user_id.clone(),
            title: Some(chat.title.clone()),
            chat: Some(chat.chat.clone()),
            meta: Some(chat.meta.clone()),
            tags: chat.tags.iter().cloned().collect(),
            archived: chat.archived,
            pinned: chat.pinned,
            folder_id: chat.folder_id.clone(),
            share_id: chat.share_id.clone(),
            created_at: Some(chat.created_at),
            updated_at: Some(chat.updated_at),
        }
    }

    /// Keep this id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// With these tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Validates the input and fills in the defaults. Returns the chat to store (its blob holds
    /// the messages in canonical form), the messages to store, and the tags to ensure as
    /// `(id, name)` pairs.
    pub fn prepare(self, now: i64) -> Result<PreparedChat> {
        let id = self.id.unwrap_or_else(validate::new_id);
        validate::id("chat id", &id)?;
        validate::id("chat user_id", &self.user_id)?;
        let mut chat = self.chat.unwrap_or_else(|| Value::Object(Map::new()));
        validate::object("chat blob", &chat)?;
        let title = match self.title {
            Some(t) => t,
            None => chat
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_TITLE)
                .to_owned(),
        };
        validate::text("chat title", &title)?;
        let mut meta = self.meta.unwrap_or_default();
        validate::json_map("chat meta", &meta)?;
        let mut names = self.tags;
        if let Some(meta_tags) = meta.remove("tags") {
            match meta_tags {
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => names.push(s),
                            other => {
                                return Err(Error::invalid(format!(
                                    "chat meta.tags must hold strings, found {}",
                                    validate::json_type(&other)
                                )));
                            }
                        }
                    }
                }
                Value::Null => {}
                other => {
                    return Err(Error::invalid(format!(
                        "chat meta.tags must be an array, got {}",
                        validate::json_type(&other)
                    )));
                }
            }
        }
        let tags = tag_pairs(&names)?;
        if let Some(folder) = &self.folder_id {
            validate::id("folder_id", folder)?;
        }
        if let Some(share) = &self.share_id {
            validate::id("share_id", share)?;
        }
        let created_at = self.created_at.unwrap_or(now);
        validate::timestamp("created_at", created_at)?;
        let updated_at = self.updated_at.unwrap_or(created_at);
        validate::timestamp("updated_at", updated_at)?;
        let messages = blob::messages_in_blob(&chat, &self.user_id, created_at)?;
        blob::set_title(&mut chat, &title);
        let chat = Chat {
            id,
            user_id: self.user_id,
            title,
            chat,
            meta,
            tags: tags.iter().map(|(id, _)| id.clone()).collect(),
            archived: self.archived,
            pinned: self.pinned,
            folder_id: self.folder_id,
            share_id: self.share_id,
            created_at,
            updated_at,
        };
        let mut chat = chat;
        let mut stored = Vec::with_capacity(messages.len());
        for mut message in messages {
            message.chat_id = chat.id.clone();
            let message = message.into_message(&chat, now)?;
            stored.push(message);
        }
        blob::rebuild_history(&mut chat.chat, &stored);
        Ok(PreparedChat {
            chat,
            messages: stored,
            tags,
        })
    }
}

/// A validated chat ready to store, from [`NewChat::prepare`].
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedChat {
    /// The chat row.
    pub chat: Chat,
    /// Its messages (also mirrored in `chat.chat.history`).
    pub messages: Vec<crate::Message>,
    /// Tags to ensure for the owner, as `(id, name)`.
    pub tags: Vec<(String, String)>,
}

/// Normalises tag names to `(id, name)` pairs, first spelling kept, duplicates dropped.
pub fn tag_pairs(names: &[String]) -> Result<Vec<(String, String)>> {
    for name in names {
        tags::tag_id_checked(name)?;
    }
    Ok(unique_tags(names))
}

/// `(tag id, name)` of each name, the first name of each id only, in order; for backends,
/// behind the validation layer that checked the names with [`tag_pairs`].
pub fn unique_tags(names: &[String]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::with_capacity(names.len());
    for name in names {
        let id = tags::tag_id(name);
        if !pairs.iter().any(|(seen, _)| *seen == id) {
            pairs.push((id, name.clone()));
        }
    }
    pairs
}

/// Changes to a chat; `None` leaves a field as it is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatPatch {
    /// New title (mirrored into the blob).
    pub title: Option<String>,
    /// New blob. Its `history` is ignored: messages change through `MessageRepo`.
    pub chat: Option<Value>,
    /// New meta object (replaces it; a `tags` key is refused: use the tag operations).
    pub meta: Option<Map<String, Value>>,
    /// Archived.
    pub archived: Option<bool>,
    /// Pinned.
    pub pinned: Option<bool>,
    /// Folder (`Some(None)` takes the chat out of its folder).
    pub folder_id: Option<Option<String>>,
    /// Share token (`Some(None)` unshares).
    pub share_id: Option<Option<String>>,
    /// The update time; now when `None`.
    pub updated_at: Option<i64>,
}

impl ChatPatch {
    /// Applies the patch to `chat` after checking it; on error `chat` is unchanged.
    pub fn apply(&self, chat: &mut Chat, now: i64) -> Result<()> {
        if let Some(title) = &self.title {
            validate::text("chat title", title)?;
        }
        if let Some(blob) = &self.chat {
            validate::object("chat blob", blob)?;
        }
        if let Some(meta) = &self.meta {
            if meta.contains_key("tags") {
                return Err(Error::invalid(
                    "chat meta may not carry tags in an update; use set_tags/add_tag/remove_tag",
                ));
            }
            validate::json_map("chat meta", meta)?;
        }
        if let Some(Some(folder)) = &self.folder_id {
            validate::id("folder_id", folder)?;
        }
        if let Some(Some(share)) = &self.share_id {
            validate::id("share_id", share)?;
        }
        let updated_at = self.updated_at.unwrap_or(now);
        validate::timestamp("updated_at", updated_at)?;

        if let Some(blob) = &self.chat {
            let history = chat.chat.get("history").cloned();
            let mut blob = blob.clone();
            if let Value::Object(map) = &mut blob {
                map.remove("history");
                if let Some(history) = history {
                    map.insert("history".to_owned(), history);
                }
            }
            chat.chat = blob;
            if self.title.is_none()
                && let Some(title) = chat.chat.get("title").and_then(Value::as_str)
            {
                chat.title = title.to_owned();
            }
        }
        if let Some(title) = &self.title {
            chat.title = title.clone();
        }
        let title = chat.title.clone();
        blob::set_title(&mut chat.chat, &title);
        if let Some(meta) = &self.meta {
            chat.meta = meta.clone();
        }
        if let Some(archived) = self.archived {
            chat.archived = archived;
        }
        if let Some(pinned) = self.pinned {
            chat.pinned = pinned;
        }
        if let Some(folder) = &self.folder_id {
            chat.folder_id = folder.clone();
        }
        if let Some(share) = &self.share_id {
            chat.share_id = share.clone();
        }
        chat.updated_at = updated_at;
        Ok(())
    }
}

/// Storage of chats and their tag sets. Tag operations do not change `updated_at`.
#[async_trait]
pub trait ChatRepo: Send + Sync {
    /// Creates a chat, its messages and its tags. `Conflict` when the id or share id is taken.
    async fn create(&self, chat: NewChat) -> Result<Chat>;
    /// Creates many chats, all or nothing.
    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>>;
    /// The chat with this id (internal chats included); `NotFound` otherwise.
    async fn get(&self, id: &str) -> Result<Chat>;
    /// Applies a patch; `NotFound` when missing.
    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat>;
    /// Deletes the chat, its messages and its tag links; removes tags no other chat of the
    /// user carries; a backend with rows also deletes the rows referring to the chat (its
    /// shares and file links: [`crate::rows::cascades`]) in the same write. `NotFound` when
    /// missing.
    async fn delete(&self, id: &str) -> Result<()>;
    /// Deletes every chat of the user (with messages, tags and the rows referring to them, as
    /// [`delete`](Self::delete)); returns how many.
    async fn delete_for_user(&self, user_id: &str) -> Result<u64>;
    /// One page of a user's chats; internal chats never appear, not even in `total`, unless
    /// the query's `include_internal` asks for them.
    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>>;
    /// The items [`list`](Self::list) returns for the same query, without the total: Open
    /// WebUI's chat lists (the sidebar, the search) page with skip and limit and take a page
    /// shorter than its limit as the last, so they never need every match counted. A backend
    /// that can skip the count overrides this (the count sees every match of the user, the
    /// page only the entries up to its end); the default answers from `list`.
    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        Ok(self.list(query).await?.items)
    }
    /// Replaces the chat's tags with these names; returns the chat.
    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat>;
    /// Adds a tag (created for the owner if new); adding a present tag changes nothing.
    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat>;
    /// Removes a tag by name or id; removing an absent tag changes nothing. The tag row is
    /// deleted when no chat of the user carries it any more.
    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat>;
    /// Up to `limit` chats (internal ones included) with an id greater than `after`, by id.
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>>;
    /// The ids [`scan`](Self::scan) would return, without decoding the records: an export
    /// finds the id of a record it cannot read this way and sets that record aside.
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(self
            .scan(after, limit)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }
}

/// The orders and filters of [`ChatQuery`] applied to chats in memory: the reference
/// semantics that SQL and PocketBase queries reproduce.
pub fn matches_query(chat: &Chat, query: &ChatQuery, tag_ids: &[String]) -> bool {
    use crate::query::{FolderFilter, TagFilter};
    if chat.user_id != query.user_id || (chat.is_internal() && !query.include_internal) {
        return false;
    }
    if query.archived.is_some_and(|a| a != chat.archived) {
        return false;
    }
    if query.pinned.is_some_and(|p| p != chat.pinned) {
        return false;
    }
    match &query.folder {
        FolderFilter::Any => {}
        FolderFilter::NoFolder => {
            if chat.folder_id.is_some() {
                return false;
            }
        }
        FolderFilter::In(f) => {
            if chat.folder_id.as_deref() != Some(f.as_str()) {
                return false;
            }
        }
    }
    match &query.tags {
        TagFilter::Any => {}
        TagFilter::Untagged => {
            if !chat.tags.is_empty() {
                return false;
            }
        }
        TagFilter::AllOf(_) => {
            if !tag_ids.iter().all(|t| chat.tags.contains(t)) {
                return false;
            }
        }
    }
    if let Some(text) = &query.title
        && !chat.title.to_lowercase().contains(&text.to_lowercase())
    {
        return false;
    }
    if let Some(cursor) = &query.after
        && !cursor.admits(&chat.id, chat.updated_at, chat.created_at, &chat.title)
    {
        return false;
    }
    true
}

/// Sorts chat summaries by a [`ChatOrder`](crate::query::ChatOrder), ties broken by id.
pub fn sort_summaries(items: &mut [ChatSummary], order: crate::query::ChatOrder) {
    use crate::query::ChatOrder;
    match order {
        ChatOrder::UpdatedDesc => items.sort_by(|a, b| {
            b.updated_at
                .cmp(&a.updated_at)
                .then_with(|| a.id.cmp(&b.id))
        }),
        ChatOrder::CreatedDesc => items.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        }),
        ChatOrder::TitleAsc => {
            items.sort_by(|a, b| a.title.cmp(&b.title).then_with(|| a.id.cmp(&b.id)))
        }
    }
}
