//! The metrics layer: every repository call counted and timed on the
//! [`metrics`](https://docs.rs/metrics) facade, labelled by backend, model group and
//! operation. No exporter here: a binary installs a recorder (Prometheus, ...) and the numbers
//! appear; without one, recording costs next to nothing.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `chatstore_calls_total` | counter | `backend`, `group`, `operation` |
//! | `chatstore_errors_total` | counter | `backend`, `group`, `operation`, `kind` |
//! | `chatstore_call_duration_seconds` | histogram | `backend`, `group`, `operation` |
//!
//! `group` is a [`ModelGroup`] (`users`, `chats` for chats, messages and tags, `files`,
//! `vectors`); `operation` is `repository.method` (`chats.list`, `messages.upsert_many`,
//! `vectors.search`); `kind` is an [`ErrorKind`](crate::ErrorKind) (`NotFound`, `Conflict`,
//! `InvalidInput`, `Unsupported`, `Unavailable`, `Backend`). Every call counts once in
//! `chatstore_calls_total` whatever its outcome; the failed ones count again in
//! `chatstore_errors_total`.
//!
//! The layer sits under the validation layer (as every [`Layer`] does: [`Store::new`] puts
//! validation in front), so a call refused for bad input is answered before it is counted:
//! what is measured is what reached the backend.
//!
//! ```
//! use chatstore_core::layers::metrics::Metrics;
//! use chatstore_core::memory;
//!
//! let store = memory::store().with_layer(&Metrics::new());
//! assert_eq!(store.backend_name(), "memory");
//! ```

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::query::{ChatQuery, FileQuery, Page, PageRequest};
use crate::tags::TagKey;
use crate::vectors::{CollectionItems, SearchHit, VectorFilter, VectorItem};
use crate::{
    ByteRange, ByteStream, Chat, ChatPatch, ChatRepo, ChatSummary, FileMeta, FileRepo, FileStream,
    Layer, Message, MessageRepo, ModelGroup, NewChat, NewFile, NewMessage, NewUser, Result,
    SignedUrl, Store, StoreParts, Tag, TagRepo, TagUsage, User, UserPatch, UserRepo, VectorRepo,
};

/// Counter of calls.
pub const CALLS: &str = "chatstore_calls_total";
/// Counter of failed calls, by error kind.
pub const ERRORS: &str = "chatstore_errors_total";
/// Histogram of call latency in seconds.
pub const DURATION: &str = "chatstore_call_duration_seconds";

/// The metrics layer (see the [module](self) for the metric names).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    backend: Option<String>,
}

impl Metrics {
    /// Labels calls with the wrapped store's [`backend_name`](Store::backend_name).
    pub fn new() -> Self {
        Metrics::default()
    }

    /// Labels calls with `backend` instead (e.g. `"old"` and `"new"` of a router).
    pub fn with_backend(backend: impl Into<String>) -> Self {
        Metrics {
            backend: Some(backend.into()),
        }
    }
}

impl Layer for Metrics {
    fn layer(&self, store: Store) -> Store {
        let backend: Arc<str> = self
            .backend
            .as_deref()
            .unwrap_or(store.backend_name())
            .into();
        let wrap = |group| Label {
            backend: backend.clone(),
            group,
        };
        let parts = store.parts();
        let metered = StoreParts {
            users: Arc::new(Metered(parts.users, wrap(ModelGroup::Users))),
            chats: Arc::new(Metered(parts.chats, wrap(ModelGroup::Chats))),
            messages: Arc::new(Metered(parts.messages, wrap(ModelGroup::Chats))),
            tags: Arc::new(Metered(parts.tags, wrap(ModelGroup::Chats))),
            files: Arc::new(Metered(parts.files, wrap(ModelGroup::Files))),
            vectors: Arc::new(Metered(parts.vectors, wrap(ModelGroup::Vectors))),
        };
        store.rebuild(
            store.backend_name().to_owned(),
            store.capabilities(),
            metered,
        )
    }
}

/// The labels every call of one repository shares.
#[derive(Debug, Clone)]
struct Label {
    backend: Arc<str>,
    group: ModelGroup,
}

/// A repository whose calls are counted and timed.
struct Metered<R: ?Sized>(Arc<R>, Label);

impl<R: ?Sized> Metered<R> {
    /// Runs `call`, recording it as `operation`.
    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let start = Instant::now();
        let result = call.await;
        let elapsed = start.elapsed().as_secs_f64();
        let backend = self.1.backend.to_string();
        let group = self.1.group.as_str();
        metrics::counter!(CALLS, "backend" => backend.clone(), "group" => group, "operation" => operation)
            .increment(1);
        metrics::histogram!(DURATION, "backend" => backend.clone(), "group" => group, "operation" => operation)
            .record(elapsed);
        if let Err(e) = &result {
            metrics::counter!(
                ERRORS,
                "backend" => backend,
                "group" => group,
                "operation" => operation,
                "kind" => kind_label(e.kind()),
            )
            .increment(1);
        }
        result
    }
}

/// The `kind` label of an error kind.
fn kind_label(kind: crate::ErrorKind) -> &'static str {
    use crate::ErrorKind::*;
    match kind {
        NotFound => "NotFound",
        Conflict => "Conflict",
        InvalidInput => "InvalidInput",
        Unsupported => "Unsupported",
        Unavailable => "Unavailable",
        Backend => "Backend",
    }
}

#[async_trait]
impl UserRepo for Metered<dyn UserRepo> {
    async fn create(&self, user: NewUser) -> Result<User> {
        self.observe("users.create", self.0.create(user)).await
    }
    async fn create_many(&self, users: Vec<NewUser>) -> Result<Vec<User>> {
        self.observe("users.create_many", self.0.create_many(users))
            .await
    }
    async fn get(&self, id: &str) -> Result<User> {
        self.observe("users.get", self.0.get(id)).await
    }
    async fn get_by_email(&self, email: &str) -> Result<User> {
        self.observe("users.get_by_email", self.0.get_by_email(email))
            .await
    }
    async fn update(&self, id: &str, patch: UserPatch) -> Result<User> {
        self.observe("users.update", self.0.update(id, patch)).await
    }
    async fn set_last_active(&self, id: &str, at: i64) -> Result<()> {
        self.observe("users.set_last_active", self.0.set_last_active(id, at))
            .await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.observe("users.delete", self.0.delete(id)).await
    }
    async fn list(&self, page: PageRequest) -> Result<Page<User>> {
        self.observe("users.list", self.0.list(page)).await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<User>> {
        self.observe("users.scan", self.0.scan(after, limit)).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.observe("users.scan_ids", self.0.scan_ids(after, limit))
            .await
    }
    async fn session_stamp(&self, id: &str) -> Result<Option<String>> {
        self.observe("users.session_stamp", self.0.session_stamp(id))
            .await
    }
}

#[async_trait]
impl ChatRepo for Metered<dyn ChatRepo> {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        self.observe("chats.create", self.0.create(chat)).await
    }
    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        self.observe("chats.create_many", self.0.create_many(chats))
            .await
    }
    async fn get(&self, id: &str) -> Result<Chat> {
        self.observe("chats.get", self.0.get(id)).await
    }
    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat> {
        self.observe("chats.update", self.0.update(id, patch)).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.observe("chats.delete", self.0.delete(id)).await
    }
    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        self.observe("chats.delete_for_user", self.0.delete_for_user(user_id))
            .await
    }
    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        self.observe("chats.list", self.0.list(query)).await
    }
    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        self.observe("chats.list_items", self.0.list_items(query))
            .await
    }
    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        self.observe("chats.set_tags", self.0.set_tags(id, names))
            .await
    }
    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        self.observe("chats.add_tag", self.0.add_tag(id, name))
            .await
    }
    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        self.observe("chats.remove_tag", self.0.remove_tag(id, name_or_id))
            .await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        self.observe("chats.scan", self.0.scan(after, limit)).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.observe("chats.scan_ids", self.0.scan_ids(after, limit))
            .await
    }
}

#[async_trait]
impl MessageRepo for Metered<dyn MessageRepo> {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        self.observe("messages.upsert", self.0.upsert(message))
            .await
    }
    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        self.observe(
            "messages.upsert_many",
            self.0.upsert_many(chat_id, messages),
        )
        .await
    }
    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        self.observe("messages.get", self.0.get(chat_id, id)).await
    }
    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        self.observe("messages.list", self.0.list(chat_id)).await
    }
    async fn list_many(&self, chat_ids: &[String]) -> Result<Vec<Vec<Message>>> {
        self.observe("messages.list_many", self.0.list_many(chat_ids))
            .await
    }
    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        self.observe("messages.delete", self.0.delete(chat_id, id))
            .await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        self.observe("messages.scan", self.0.scan(after, limit))
            .await
    }
    async fn scan_orphans(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        self.observe("messages.scan_orphans", self.0.scan_orphans(after, limit))
            .await
    }
}

#[async_trait]
impl TagRepo for Metered<dyn TagRepo> {
    async fn list(&self, user_id: &str) -> Result<Vec<Tag>> {
        self.observe("tags.list", self.0.list(user_id)).await
    }
    async fn usage(&self, user_id: &str) -> Result<Vec<TagUsage>> {
        self.observe("tags.usage", self.0.usage(user_id)).await
    }
    async fn get(&self, user_id: &str, name_or_id: &str) -> Result<Tag> {
        self.observe("tags.get", self.0.get(user_id, name_or_id))
            .await
    }
    async fn ensure(&self, user_id: &str, name: &str) -> Result<Tag> {
        self.observe("tags.ensure", self.0.ensure(user_id, name))
            .await
    }
    async fn create_many(&self, tags: Vec<Tag>) -> Result<()> {
        self.observe("tags.create_many", self.0.create_many(tags))
            .await
    }
    async fn delete(&self, user_id: &str, name_or_id: &str) -> Result<()> {
        self.observe("tags.delete", self.0.delete(user_id, name_or_id))
            .await
    }
    async fn scan(&self, after: Option<&TagKey>, limit: u32) -> Result<Vec<Tag>> {
        self.observe("tags.scan", self.0.scan(after, limit)).await
    }
}

#[async_trait]
impl FileRepo for Metered<dyn FileRepo> {
    async fn put(&self, file: NewFile) -> Result<FileMeta> {
        self.observe("files.put", self.0.put(file)).await
    }
    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        self.observe("files.put_many", self.0.put_many(files)).await
    }
    async fn get(&self, id: &str) -> Result<FileMeta> {
        self.observe("files.get", self.0.get(id)).await
    }
    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        self.observe("files.read", self.0.read(id)).await
    }
    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        self.observe("files.list", self.0.list(query)).await
    }
    async fn delete(&self, id: &str) -> Result<()> {
        self.observe("files.delete", self.0.delete(id)).await
    }
    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        self.observe("files.delete_for_user", self.0.delete_for_user(user_id))
            .await
    }
    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        self.observe("files.scan", self.0.scan(after, limit)).await
    }
    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.observe("files.scan_ids", self.0.scan_ids(after, limit))
            .await
    }
    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        self.observe(
            "files.put_stream",
            self.0.put_stream(file, body, expected_sha256),
        )
        .await
    }
    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        self.observe("files.read_stream", self.0.read_stream(id, range))
            .await
    }
    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        self.observe("files.download_url", self.0.download_url(id, ttl))
            .await
    }
}

#[async_trait]
impl VectorRepo for Metered<dyn VectorRepo> {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        self.observe("vectors.has_collection", self.0.has_collection(name))
            .await
    }
    async fn delete_collection(&self, name: &str) -> Result<()> {
        self.observe("vectors.delete_collection", self.0.delete_collection(name))
            .await
    }
    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.observe("vectors.insert", self.0.insert(collection, items))
            .await
    }
    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.observe("vectors.upsert", self.0.upsert(collection, items))
            .await
    }
    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        self.observe("vectors.upsert_many", self.0.upsert_many(entries))
            .await
    }
    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        self.observe(
            "vectors.search",
            self.0.search(collection, vectors, filter, limit),
        )
        .await
    }
    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        self.observe("vectors.query", self.0.query(collection, filter, limit))
            .await
    }
    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        self.observe("vectors.get", self.0.get(collection)).await
    }
    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        self.observe("vectors.delete", self.0.delete(collection, ids, filter))
            .await
    }
    async fn reset(&self) -> Result<()> {
        self.observe("vectors.reset", self.0.reset()).await
    }
    async fn collections(&self) -> Result<Vec<String>> {
        self.observe("vectors.collections", self.0.collections())
            .await
    }
    async fn collection_names(&self) -> Result<Vec<String>> {
        self.observe("vectors.collection_names", self.0.collection_names())
            .await
    }
    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        self.observe("vectors.scan", self.0.scan(collection, after, limit))
            .await
    }
    async fn optimize(&self, collection: &str) -> Result<()> {
        self.observe("vectors.optimize", self.0.optimize(collection))
            .await
    }
    async fn optimize_many(&self, collections: &[String]) -> Result<()> {
        self.observe("vectors.optimize_many", self.0.optimize_many(collections))
            .await
    }
    async fn finish_load(&self) -> Result<()> {
        self.observe("vectors.finish_load", self.0.finish_load())
            .await
    }
    async fn settle(&self) -> Result<()> {
        self.observe("vectors.settle", self.0.settle()).await
    }
}
