//! The change feed: what chatstore announces when it writes, for realtime consumers (the bridge
//! that tells Open WebUI's browsers about renamed, tagged or deleted chats).
//!
//! A backend that has a feed gives it through [`Store::changes`](crate::Store::changes) (and
//! sets [`Capabilities::change_feed`](crate::Capabilities::change_feed)). Every feed works the same way:
//!
//! - a background source (in-process broadcast of the store's own writes on memory and SQLite,
//!   `LISTEN` on PostgreSQL, the realtime SSE stream on PocketBase) publishes [`ChangeEvent`]s
//!   into the feed's [`ChangeHub`];
//! - after any reconnect of that source, the feed reads back from the store what changed since
//!   the last event it delivered ([`ChangeFeed::changes_since`], from `updated_at` and a small
//!   tombstone record of deletions) and publishes that too, because neither PostgreSQL NOTIFY
//!   nor PocketBase's realtime API replays what a disconnected listener missed;
//! - [`subscribe`] gives a consumer a [`ChangeStream`] for one user or for everyone; a
//!   consumer too slow for the hub's buffer catches up the same way.
//!
//! Delivery is **at least once**: an event may arrive twice (a live event and its catch-up
//! twin), never zero times. [`ChangeEvent::key`] does not pair such twins: a live event's key
//! is random, and a read-back event's key is derived from the record and its `updated_at`
//! ([`ChangeEvent::read_back`]), so only two read-backs of the same record state share one.
//! Consumers that must not act twice act idempotently (re-read the record, as the bridge
//! does) or compare the record ([`ChangeEvent::record_id`]) and the time, not the key.
//!
//! Known limit: catch-up finds updates by the record's `updated_at`, so a write that sets an
//! `updated_at` older than the catch-up window (a migration keeping historic timestamps) is
//! delivered live but not re-read after a reconnect.
//!
//! ```
//! use chatstore_core::changes::{ChangeFilter, ChangeKind, subscribe};
//! use chatstore_core::{memory, ModelGroup, NewChat, NewUser};
//! use futures::StreamExt;
//!
//! # tokio_test_block(async {
//! let store = memory::store();
//! let feed = store.changes().expect("the memory backend has a change feed");
//! let user = store.users.create(NewUser::new("ada@example.com", "Ada")).await?;
//! let mut events = subscribe(feed, ChangeFilter::user(&user.id));
//! let chat = store.chats.create(NewChat::new(&user.id, "Engines")).await?;
//! let event = events.next().await.expect("an event");
//! assert_eq!((event.group, event.kind), (ModelGroup::Chats, ChangeKind::Created));
//! assert_eq!(event.chat_id.as_deref(), Some(chat.id.as_str()));
//! # Ok::<(), chatstore_core::Error>(())
//! # });
//! # fn tokio_test_block<F: std::future::Future<Output = Result<(), chatstore_core::Error>>>(f: F) {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(f).expect("example");
//! # }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{Chat, FileMeta, Message, ModelGroup, Result, User};

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The record was created.
    Created,
    /// The record changed.
    Updated,
    /// The record was deleted.
    Deleted,
}

impl ChangeKind {
    /// `created`, `updated` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// A chat field an update changed, when the writer knows it ([`ChangeEvent::fields`]).
pub mod field {
    /// The title.
    pub const TITLE: &str = "title";
    /// The tag set.
    pub const TAGS: &str = "tags";
    /// Archived or not.
    pub const ARCHIVED: &str = "archived";
    /// Pinned or not.
    pub const PINNED: &str = "pinned";
    /// The folder.
    pub const FOLDER: &str = "folder_id";
    /// The share id.
    pub const SHARE: &str = "share_id";
    /// The conversation blob.
    pub const CHAT: &str = "chat";
    /// The meta object.
    pub const META: &str = "meta";
}

/// One change of one record, carrying ids only (payloads stay small: PostgreSQL NOTIFY allows
/// 8000 bytes). Consumers read the record itself when they need its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// The model group of the record (`users`, `chats` for chats and messages, `files`).
    pub group: ModelGroup,
    /// Created, updated or deleted.
    pub kind: ChangeKind,
    /// The user the record belongs to (for the users group, the user itself). Every event
    /// has one: it decides who may hear about it.
    pub user_id: String,
    /// The chat, for chat and message events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_id: Option<String>,
    /// The message, for message events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// The file, for file events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<String>,
    /// For a chat update, the fields it changed (see [`field`]); empty when unknown, which a
    /// consumer reads as "anything may have changed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// When the change happened, epoch milliseconds (for events read back after a reconnect,
    /// the record's `updated_at`, or the deletion time).
    pub at: i64,
    /// Tells changes apart: random for a live event; for an event read back, derived from the
    /// record and its time, the same for every read-back of that state. A live event and its
    /// read-back twin have different keys (see the module doc).
    pub key: String,
}

impl ChangeEvent {
    fn new(group: ModelGroup, kind: ChangeKind, user_id: &str, at: i64) -> Self {
        ChangeEvent {
            group,
            kind,
            user_id: user_id.to_owned(),
            chat_id: None,
            message_id: None,
            file_id: None,
            fields: Vec::new(),
            at,
            key: new_key(),
        }
    }

    /// A user created, updated or deleted, now.
    pub fn user(kind: ChangeKind, user: &User) -> Self {
        ChangeEvent::new(ModelGroup::Users, kind, &user.id, now_ms())
    }

    /// A user deleted, by id, now.
    pub fn user_deleted(user_id: &str) -> Self {
        ChangeEvent::user_ids(ChangeKind::Deleted, user_id)
    }

    /// A user change from the user's id, now.
    pub fn user_ids(kind: ChangeKind, user_id: &str) -> Self {
        ChangeEvent::new(ModelGroup::Users, kind, user_id, now_ms())
    }

    /// A chat created, updated (with the `fields` that changed, if known) or deleted, now.
    pub fn chat(kind: ChangeKind, chat: &Chat, fields: &[&str]) -> Self {
        ChangeEvent::chat_ids(kind, &chat.user_id, &chat.id, fields)
    }

    /// A chat change from its ids, now.
    pub fn chat_ids(kind: ChangeKind, user_id: &str, chat_id: &str, fields: &[&str]) -> Self {
        let mut event = ChangeEvent::new(ModelGroup::Chats, kind, user_id, now_ms());
        event.chat_id = Some(chat_id.to_owned());
        event.fields = fields.iter().map(|f| (*f).to_owned()).collect();
        event
    }

    /// Every chat of a user deleted at once (no single chat id), now.
    pub fn chats_of_user_deleted(user_id: &str) -> Self {
        ChangeEvent::new(ModelGroup::Chats, ChangeKind::Deleted, user_id, now_ms())
    }

    /// A message created, updated or deleted in a chat of `owner`, now.
    pub fn message(kind: ChangeKind, owner: &str, message: &Message) -> Self {
        ChangeEvent::message_ids(kind, owner, &message.chat_id, &message.id)
    }

    /// A message change from its ids, now.
    pub fn message_ids(kind: ChangeKind, owner: &str, chat_id: &str, message_id: &str) -> Self {
        let mut event = ChangeEvent::new(ModelGroup::Chats, kind, owner, now_ms());
        event.chat_id = Some(chat_id.to_owned());
        event.message_id = Some(message_id.to_owned());
        event
    }

    /// A file created, updated or deleted, now.
    pub fn file(kind: ChangeKind, file: &FileMeta) -> Self {
        ChangeEvent::file_ids(kind, &file.user_id, &file.id)
    }

    /// A file change from its ids, now.
    pub fn file_ids(kind: ChangeKind, user_id: &str, file_id: &str) -> Self {
        let mut event = ChangeEvent::new(ModelGroup::Files, kind, user_id, now_ms());
        event.file_id = Some(file_id.to_owned());
        event
    }

    /// An event read back from the store after a gap: the record's state at `updated_at`
    /// (epoch seconds). Its key is derived from the record and time, so reading the same
    /// record twice gives the same key.
    pub fn read_back(mut self, updated_at_secs: i64) -> Self {
        self.at = updated_at_secs.saturating_mul(1000);
        self.key = format!(
            "{}:{}:{}:{}:{}",
            self.group.as_str(),
            self.kind.as_str(),
            self.message_id
                .as_deref()
                .or(self.file_id.as_deref())
                .or(self.chat_id.as_deref())
                .unwrap_or(&self.user_id),
            self.chat_id.as_deref().unwrap_or(""),
            self.at
        );
        self
    }

    /// The id of the record the event is about.
    pub fn record_id(&self) -> &str {
        self.message_id
            .as_deref()
            .or(self.file_id.as_deref())
            .or(self.chat_id.as_deref())
            .unwrap_or(&self.user_id)
    }
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn new_key() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Seconds subtracted from a cursor before reading back, for clocks of several writers that
/// disagree a little and for `updated_at` kept in whole seconds.
pub const CATCH_UP_SKEW_SECS: i64 = 2;

/// How long deletions are remembered for catch-up (tombstones older than this are pruned).
pub const TOMBSTONE_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// Whether a store must remember `event` for catch-up because its tables cannot show it by
/// `updated_at`: deletions, and tag changes (Open WebUI keeps a chat's `updated_at` when its
/// tags change).
pub fn kept_for_catch_up(event: &ChangeEvent) -> bool {
    event.kind == ChangeKind::Deleted || event.fields.iter().any(|f| f == field::TAGS)
}

/// The first `updated_at` (epoch seconds, inclusive) to read back for a cursor of epoch
/// milliseconds.
pub fn catch_up_from(cursor_ms: i64) -> i64 {
    cursor_ms.div_euclid(1000) - CATCH_UP_SKEW_SECS
}

/// A feed's cursor after `event`: the newest change seen, but never past this machine's clock.
/// A record stored with an `updated_at` in the future (a writer's clock years ahead, a
/// migrated row in milliseconds where seconds belong) is read back with that time; a cursor
/// moved there would make every later read-back start in the future and find nothing written
/// meanwhile.
pub fn advance(cursor: i64, event: &ChangeEvent) -> i64 {
    cursor.max(event.at.min(now_ms()))
}

/// Whose changes a subscription wants, and from when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeFilter {
    /// Only this user's changes; `None` for everyone's.
    pub user_id: Option<String>,
    /// Also deliver what changed since this time (epoch milliseconds, e.g. the `at` of the
    /// last event a consumer handled before it restarted), read back from the store first.
    pub since: Option<i64>,
}

impl ChangeFilter {
    /// Everyone's changes, from now on.
    pub fn all() -> Self {
        ChangeFilter::default()
    }

    /// One user's changes, from now on.
    pub fn user(user_id: impl Into<String>) -> Self {
        ChangeFilter {
            user_id: Some(user_id.into()),
            since: None,
        }
    }

    /// Also what changed since `cursor` (epoch milliseconds).
    pub fn since(mut self, cursor: i64) -> Self {
        self.since = Some(cursor);
        self
    }

    /// Whether `event` is for this subscription.
    pub fn wants(&self, event: &ChangeEvent) -> bool {
        self.user_id.as_ref().is_none_or(|u| *u == event.user_id)
    }
}

/// A backend's change feed. Implementations publish into a [`ChangeHub`] from a background
/// source and can read back what changed since a time; [`subscribe`] does the rest.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The hub the feed's source publishes to.
    fn hub(&self) -> &ChangeHub;

    /// Whether the feed hears writes made by other processes (PostgreSQL's `LISTEN`,
    /// PocketBase's realtime stream). `false` for a feed that hears only the writes of the
    /// process it runs in (memory, SQLite): a server that follows the store for writers
    /// elsewhere, such as the realtime bridge run on its own, would never hear a thing.
    fn hears_other_processes(&self) -> bool {
        true
    }

    /// What changed since `since_secs` (epoch seconds, inclusive), read back from the store:
    /// one `Created`/`Updated` event per record whose `updated_at` is at or after it (reported
    /// as `Updated`: the store cannot tell which), and one `Deleted` event per remembered
    /// deletion. Limited to one user when `user_id` is given. Oldest first.
    async fn changes_since(
        &self,
        since_secs: i64,
        user_id: Option<&str>,
    ) -> Result<Vec<ChangeEvent>>;
}

/// The fan-out point of a feed, with its counters; cheap to share.
#[derive(Debug)]
pub struct ChangeHub {
    sender: broadcast::Sender<ChangeEvent>,
    published: AtomicU64,
    reconnects: AtomicU64,
    failed_catch_ups: AtomicU64,
    last_at: AtomicI64,
    lag_ms: AtomicI64,
    connected: AtomicBool,
    /// Whether the source has been connected once: only a connection after that one is a
    /// reconnect.
    was_connected: AtomicBool,
}

/// The counters of a [`ChangeHub`], for `/metrics` and `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    /// Events published so far (live and read back).
    pub published: u64,
    /// Times the source reconnected (each followed by a catch-up).
    pub reconnects: u64,
    /// Read-backs after a (re)connection that failed; each is retried after a growing pause,
    /// and the feed counts as disconnected until one succeeds.
    pub failed_catch_ups: u64,
    /// `at` of the newest event published (epoch ms), 0 before the first.
    pub last_at: i64,
    /// Milliseconds between the change and its publication, for the newest live event.
    pub lag_ms: i64,
    /// Whether the source is connected now.
    pub connected: bool,
}

/// Events a subscriber may fall behind by before it catches up from the store.
pub const HUB_CAPACITY: usize = 8192;

impl Default for ChangeHub {
    fn default() -> Self {
        ChangeHub::new(HUB_CAPACITY)
    }
}

/// The most events a [`ChangeHub`]'s subscribers may fall behind.
pub const MAX_HUB_CAPACITY: usize = 1 << 20;

impl ChangeHub {
    /// A hub whose subscribers may fall `capacity` events behind (1 to
    /// [`MAX_HUB_CAPACITY`]).
    pub fn new(capacity: usize) -> Self {
        // Tokio refuses (panics on) more than `usize::MAX / 2`; a million events is plenty.
        let (sender, _) = broadcast::channel(capacity.clamp(1, MAX_HUB_CAPACITY));
        ChangeHub {
            sender,
            published: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            failed_catch_ups: AtomicU64::new(0),
            last_at: AtomicI64::new(0),
            lag_ms: AtomicI64::new(0),
            connected: AtomicBool::new(true),
            was_connected: AtomicBool::new(true),
        }
    }

    /// A hub for a source that connects after it is made (a `LISTEN`, a realtime stream): not
    /// connected until the source first says so with [`ChangeHub::connected`], so a health
    /// check does not call a feed connected that has not caught up yet; that first
    /// connection is not counted as a reconnect.
    pub fn awaiting_source() -> Self {
        let hub = ChangeHub::default();
        hub.connected.store(false, Ordering::Relaxed);
        hub.was_connected.store(false, Ordering::Relaxed);
        hub
    }

    /// Publishes one event to every subscriber (none listening is fine).
    pub fn publish(&self, event: ChangeEvent) {
        self.published.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        self.last_at.fetch_max(event.at.min(now), Ordering::Relaxed);
        self.lag_ms
            .store(now.saturating_sub(event.at).max(0), Ordering::Relaxed);
        let _ = self.sender.send(event);
    }

    /// Records that the source lost its connection.
    pub fn disconnected(&self) {
        self.connected.store(false, Ordering::Relaxed);
    }

    /// Records that the source is connected (again); a reconnect counts when it was down.
    pub fn connected(&self) {
        let was_down = !self.connected.swap(true, Ordering::Relaxed);
        let before = self.was_connected.swap(true, Ordering::Relaxed);
        if was_down && before {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a read-back after a (re)connection that failed: the source counts as
    /// disconnected until one succeeds.
    pub fn catch_up_failed(&self) {
        self.connected.store(false, Ordering::Relaxed);
        self.failed_catch_ups.fetch_add(1, Ordering::Relaxed);
    }

    /// For a feed that passes on other feeds' events (a router's): takes its sources'
    /// connection state, and their reconnects and failed read-backs counted together.
    pub fn mirror(&self, sources: &[FeedStatus]) {
        let connected = sources.iter().all(|s| s.connected);
        self.connected.store(connected, Ordering::Relaxed);
        let reconnects = sources.iter().map(|s| s.reconnects).sum();
        self.reconnects.fetch_max(reconnects, Ordering::Relaxed);
        let failed = sources.iter().map(|s| s.failed_catch_ups).sum();
        self.failed_catch_ups.fetch_max(failed, Ordering::Relaxed);
    }

    /// The counters.
    pub fn status(&self) -> FeedStatus {
        FeedStatus {
            published: self.published.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            failed_catch_ups: self.failed_catch_ups.load(Ordering::Relaxed),
            last_at: self.last_at.load(Ordering::Relaxed),
            lag_ms: self.lag_ms.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }

    fn receiver(&self) -> broadcast::Receiver<ChangeEvent> {
        self.sender.subscribe()
    }
}

/// A stream of change events.
pub type ChangeStream = Pin<Box<dyn Stream<Item = ChangeEvent> + Send>>;

struct Subscription {
    feed: Arc<dyn ChangeFeed>,
    receiver: broadcast::Receiver<ChangeEvent>,
    filter: ChangeFilter,
    pending: VecDeque<ChangeEvent>,
    /// `at` of the newest event delivered (or the filter's `since`).
    cursor: i64,
    /// A read-back is due before the next live event.
    catch_up: bool,
}

/// Subscribes to `feed`: events for `filter` from now on, after the read-back of
/// `filter.since` when given. A subscriber that falls behind the hub's buffer catches up from
/// the store (so it may see some events twice). The stream ends only when the feed is dropped.
pub fn subscribe(feed: Arc<dyn ChangeFeed>, filter: ChangeFilter) -> ChangeStream {
    let receiver = feed.hub().receiver();
    let state = Subscription {
        feed,
        receiver,
        catch_up: filter.since.is_some(),
        cursor: filter.since.unwrap_or_else(now_ms),
        filter,
        pending: VecDeque::new(),
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                s.cursor = advance(s.cursor, &event);
                return Some((event, s));
            }
            if s.catch_up {
                let since = catch_up_from(s.cursor);
                match s
                    .feed
                    .changes_since(since, s.filter.user_id.as_deref())
                    .await
                {
                    Ok(events) => {
                        s.catch_up = false;
                        s.pending
                            .extend(events.into_iter().filter(|e| s.filter.wants(e)));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "change feed catch-up failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    }
                }
                continue;
            }
            match s.receiver.recv().await {
                Ok(event) => {
                    if s.filter.wants(&event) {
                        s.cursor = advance(s.cursor, &event);
                        return Some((event, s));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => s.catch_up = true,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }))
}

/// The chat fields a patch changes (see [`field`]); a new blob may carry a new title.
pub fn patch_fields(patch: &crate::ChatPatch) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if patch.title.is_some() || patch.chat.is_some() {
        fields.push(field::TITLE);
    }
    if patch.chat.is_some() {
        fields.push(field::CHAT);
    }
    if patch.meta.is_some() {
        fields.push(field::META);
    }
    if patch.archived.is_some() {
        fields.push(field::ARCHIVED);
    }
    if patch.pinned.is_some() {
        fields.push(field::PINNED);
    }
    if patch.folder_id.is_some() {
        fields.push(field::FOLDER);
    }
    if patch.share_id.is_some() {
        fields.push(field::SHARE);
    }
    fields
}

#[cfg(test)]
mod hub_tests {
    use super::{ChangeEvent, ChangeHub, ChangeKind};

    /// An event dated at the far end of time (a stray notification, a corrupt record) is
    /// published without overflowing the lag arithmetic.
    #[test]
    fn an_event_dated_at_the_edge_of_time_is_published() {
        let hub = ChangeHub::default();
        for at in [i64::MIN, i64::MAX] {
            let mut event = ChangeEvent::user_ids(ChangeKind::Updated, "u1");
            event.at = at;
            hub.publish(event);
        }
        assert_eq!(hub.status().published, 2);
        assert!(hub.status().lag_ms >= 0);
    }

    #[test]
    fn a_hub_awaiting_its_source_is_connected_only_once_it_says_so() {
        let hub = ChangeHub::awaiting_source();
        assert!(!hub.status().connected);
        hub.catch_up_failed();
        assert!(!hub.status().connected);
        hub.connected();
        assert!(hub.status().connected);
        assert_eq!(
            hub.status().reconnects,
            0,
            "the first connection is no reconnect"
        );
        hub.disconnected();
        hub.connected();
        assert_eq!(hub.status().reconnects, 1);
        let always = ChangeHub::default();
        assert!(always.status().connected);
        always.disconnected();
        always.connected();
        assert_eq!(always.status().reconnects, 1);
    }
}
