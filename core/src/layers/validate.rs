//! The validation layer: the input checks every backend shares, run once in front of any
//! backend, so each rule is written once and a refused call never reaches a backend.
//!
//! [`Store::new`](crate::Store::new) puts this layer on every store, the memory reference
//! model included. The rules themselves are the plain functions of [`validate`](crate::validate),
//! [`query`](crate::query), [`tags`](crate::tags), [`chats`](crate::chats),
//! [`messages`](crate::messages) and [`vectors`](crate::vectors); this layer decides which of
//! them guard which call. What it checks, per call:
//!
//! | call | checks |
//! |---|---|
//! | `users.list` | the page |
//! | `users.set_last_active` | the time |
//! | `*.scan`, `*.scan_ids` | the limit (and the collection name for vectors) |
//! | `chats.list`, `chats.list_items` | the whole query: user id, page, folder, title, tag filter names |
//! | `chats.set_tags`, `add_tag` | every tag name (not empty, not `none`, no control characters) |
//! | `chats.remove_tag` | a name or id is given |
//! | `chats.delete_for_user`, `files.delete_for_user` | the user id |
//! | `messages.upsert` | the message without its chat (ids, role, parent, content) |
//! | `messages.upsert_many` | the chat id, every message belongs to it, every message |
//! | `tags.*` | the user id; `ensure` the name; `create_many` every tag whole |
//! | `files.list` | the page and the user id |
//! | `vectors.upsert_many` | every entry as `upsert`, each collection in one entry, no id twice in the call |
//! | `vectors.optimize_many` | every collection name |
//! | `vectors.has_collection`, `get`, `scan` | a collection name to read (not empty, no control characters: a store lists names other programs chose) |
//! | `vectors.*` | the collection name; items (ids, text, metadata, finite non-zero vectors of one dimension, no id twice), searches (1..=16 query vectors, limit), filters, deletes |
//!
//! What needs the stored data (a collection's dimension, a chat that must exist) and what a
//! constructor checks while building the stored value (`NewUser::into_user`,
//! `NewChat::prepare`, `ChatPatch::apply`, `NewFile::prepare`) stays where the data is.
//! A group the store lacks ([`Capabilities`]) is left unwrapped, so it answers `Unsupported`
//! whatever the input.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::chats::tag_pairs;
use crate::query::{ChatQuery, FileQuery, Page, PageRequest, validate_scan_limit};
use crate::tags::{TagKey, tag_id_checked, validate_tag};
use crate::vectors::{
    CollectionItems, MAX_DIMENSION, SearchHit, VectorFilter, VectorItem, validate_collection,
    validate_collection_to_read, validate_delete, validate_items, validate_many, validate_query,
    validate_scan, validate_search,
};
use crate::{
    ByteRange, ByteStream, Capabilities, Chat, ChatPatch, ChatRepo, ChatSummary, Error, FileMeta,
    FileRepo, FileStream, Message, MessageRepo, NewChat, NewFile, NewMessage, NewUser, Result,
    SignedUrl, StoreParts, Tag, TagRepo, TagUsage, User, UserPatch, UserRepo, VectorRepo, validate,
};

/// Wraps every repository whose group `capabilities` has in the validation layer.
pub fn validated(parts: &StoreParts, capabilities: Capabilities) -> StoreParts {
    StoreParts {
        users: if capabilities.users {
            Arc::new(Validated(parts.users.clone()))
        } else {
            parts.users.clone()
        },
        chats: if capabilities.chats {
            Arc::new(Validated(parts.chats.clone()))
        } else {
            parts.chats.clone()
        },
        messages: if capabilities.chats {
            Arc::new(Validated(parts.messages.clone()))
        } else {
            parts.messages.clone()
        },
        tags: if capabilities.chats {
            Arc::new(Validated(parts.tags.clone()))
        } else {
            parts.tags.clone()
        },
        files: if capabilities.files {
            Arc::new(Validated(parts.files.clone()))
        } else {
            parts.files.clone()
        },
        vectors: if capabilities.vectors {
            Arc::new(Validated(parts.vectors.clone()))
        } else {
            parts.vectors.clone()
        },
    }
}

/// A repository behind the validation layer: checks the input, then calls the inner one.
pub struct Validated<R: ?Sized>(pub Arc<R>);

/// Checks a user id argument.
fn user_id(id: &str) -> Result<()> {
    validate::id("user_id", id)
}

#[async_trait]
impl UserRepo for Validated<dyn UserRepo> {
    async fn create(&self, user: NewUser) -> Result<User> {
        self.0.create(user).await
    }
    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        self.0.create_many(users).await
    }
    async fn get(&self, id: &str) -> Result<User> {
        self.0.get(id).await
    }
    async fn get_by_email(&self, email: &str) -> Result<User> {
        self.0.get_by_email(email).await
    }
    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        self.0.update(id, patch).await
    }
    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        validate::timestamp("last_active_at", at)?;
        self.0.set_last_active(id, at).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.0.delete(id).await
    }
    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        page.validate()?;
        self.0.list(page).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        validate_scan_limit(limit)?;
        self.0.scan(after, limit).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        validate_scan_limit(limit)?;
        self.0.scan_ids(after, limit).await
    }
    async fn session_stamp(&self, id: &str) -> Result<Option<String>> {
        user_id(id)?;
        self.0.session_stamp(id).await
    }
}

#[async_trait]
impl ChatRepo for Validated<dyn ChatRepo> {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        self.0.create(chat).await
    }
    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        self.0.create_many(chats).await
    }
    async fn get(&self, id: &str) -> Result<Chat> {
        self.0.get(id).await
    }
    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat> {
        self.0.update(id, patch).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.0.delete(id).await
    }
    async fn delete_for_user(&self, user: &str) -> Result<u64> {
        user_id(user)?;
        self.0.delete_for_user(user).await
    }
    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        query.validate()?;
        self.0.list(query).await
    }
    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        query.validate()?;
        self.0.list_items(query).await
    }
    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        tag_pairs(names)?;
        self.0.set_tags(id, names).await
    }
    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        tag_id_checked(name)?;
        self.0.add_tag(id, name).await
    }
    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        if name_or_id.is_empty() {
            return Err(Error::invalid("tag name must not be empty"));
        }
        self.0.remove_tag(id, name_or_id).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        validate_scan_limit(limit)?;
        self.0.scan(after, limit).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        validate_scan_limit(limit)?;
        self.0.scan_ids(after, limit).await
    }
}

#[async_trait]
impl MessageRepo for Validated<dyn MessageRepo> {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        message.validate()?;
        self.0.upsert(message).await
    }
    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        validate::id("chat id", chat_id)?;
        if let Some(m) = messages.iter().find(|m| m.chat_id != chat_id) {
            return Err(Error::invalid(format!(
                "message {:?} belongs to chat {:?}, not {chat_id:?}",
                m.id, m.chat_id
            )));
        }
        messages.iter().try_for_each(NewMessage::validate)?;
        self.0.upsert_many(chat_id, messages).await
    }
    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        self.0.get(chat_id, id).await
    }
    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        self.0.list(chat_id).await
    }
    async fn list_many(&self, chat_ids: &[String]) -> Result<Vec<Vec<Message>>> {
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        validate_scan_limit(u32::try_from(chat_ids.len()).unwrap_or(u32::MAX))?;
        self.0.list_many(chat_ids).await
    }
    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        self.0.delete(chat_id, id).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        validate_scan_limit(limit)?;
        self.0.scan(after, limit).await
    }
    async fn scan_orphans(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        validate_scan_limit(limit)?;
        self.0.scan_orphans(after, limit).await
    }
}

#[async_trait]
impl TagRepo for Validated<dyn TagRepo> {
    async fn list(&self, user: &str) -> Result<Vec<Tag>> {
        user_id(user)?;
        self.0.list(user).await
    }
    async fn usage(&self, user: &str) -> Result<Vec<TagUsage>> {
        user_id(user)?;
        self.0.usage(user).await
    }
    async fn get(&self, user: &str, name_or_id: &str) -> Result<Tag> {
        user_id(user)?;
        self.0.get(user, name_or_id).await
    }
    async fn ensure(&self, user: &str, name: &str) -> Result<Tag> {
        user_id(user)?;
        tag_id_checked(name)?;
        self.0.ensure(user, name).await
    }
    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        tags.iter().try_for_each(validate_tag)?;
        self.0.create_many(tags).await
    }
    async fn delete(&self, user: &str, name_or_id: &str) -> Result<()> {
        user_id(user)?;
        self.0.delete(user, name_or_id).await
    }
    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        validate_scan_limit(limit)?;
        self.0.scan(after, limit).await
    }
}

#[async_trait]
impl FileRepo for Validated<dyn FileRepo> {
    async fn put(&self, file: NewFile) -> Result<FileMeta> {
        self.0.put(file).await
    }
    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        self.0.put_many(files).await
    }
    async fn get(&self, id: &str) -> Result<FileMeta> {
        self.0.get(id).await
    }
    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        self.0.read(id).await
    }
    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        query.page.validate()?;
        if let Some(user) = &query.user_id {
            user_id(user)?;
        }
        self.0.list(query).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.0.delete(id).await
    }
    async fn delete_for_user(&self, user: &str) -> Result<u64> {
        user_id(user)?;
        self.0.delete_for_user(user).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        validate_scan_limit(limit)?;
        self.0.scan(after, limit).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        validate_scan_limit(limit)?;
        self.0.scan_ids(after, limit).await
    }
    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        self.0.put_stream(file, body, expected_sha256).await
    }
    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        self.0.read_stream(id, range).await
    }
    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        self.0.download_url(id, ttl).await
    }
}

#[async_trait]
impl VectorRepo for Validated<dyn VectorRepo> {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        validate_collection_to_read(name)?;
        self.0.has_collection(name).await
    }
    async fn delete_collection(&self, name: &str) -> Result<()> {
        validate_collection(name)?;
        self.0.delete_collection(name).await
    }
    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        validate_collection(collection)?;
        validate_items(&items, None, MAX_DIMENSION)?;
        self.0.insert(collection, items).await
    }
    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        validate_collection(collection)?;
        validate_items(&items, None, MAX_DIMENSION)?;
        self.0.upsert(collection, items).await
    }
    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        validate_many(&entries, MAX_DIMENSION)?;
        self.0.upsert_many(entries).await
    }
    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        validate_collection(collection)?;
        if let Some(f) = filter {
            f.validate()?;
        }
        validate_search(vectors, None, limit, MAX_DIMENSION)?;
        self.0.search(collection, vectors, filter, limit).await
    }
    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        validate_query(collection, filter, limit)?;
        self.0.query(collection, filter, limit).await
    }
    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        validate_collection_to_read(collection)?;
        self.0.get(collection).await
    }
    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        validate_delete(collection, ids, filter)?;
        self.0.delete(collection, ids, filter).await
    }
    async fn reset(&self) -> Result<()> {
        self.0.reset().await
    }
    async fn collections(&self) -> Result<Vec<String>> {
        self.0.collections().await
    }
    async fn collection_names(&self) -> Result<Vec<String>> {
        self.0.collection_names().await
    }
    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        validate_scan(collection, limit)?;
        self.0.scan(collection, after, limit).await
    }
    async fn optimize(&self, collection: &str) -> Result<()> {
        validate_collection(collection)?;
        self.0.optimize(collection).await
    }
    async fn optimize_many(&self, collections: &[String]) -> Result<()> {
        for collection in collections {
            validate_collection(collection)?;
        }
        self.0.optimize_many(collections).await
    }
    async fn finish_load(&self) -> Result<()> {
        self.0.finish_load().await
    }
    async fn settle(&self) -> Result<()> {
        self.0.settle().await
    }
}
