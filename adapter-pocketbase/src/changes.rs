//! The change feed of a PocketBase store (see [`chatstore_core::changes`]).
//!
//! - Live events come from PocketBase's realtime API: the feed opens `GET /api/realtime` (a
//!   Server-Sent Events stream), subscribes as the superuser to the users, chats, messages and
//!   files collections, and turns every record event into a [`ChangeEvent`]. It is started by
//!   the first subscriber and runs while the store lives.
//! - PocketBase replays nothing: a stream ends after 5 idle minutes and after 30 minutes at
//!   most, and a restarted server forgets its subscribers. After every (re)connection the feed
//!   subscribes again and reads back what changed since the last event it delivered
//!   ([`ChangeFeed::changes_since`]): records by `updated_at` (messages by `created_at`; an
//!   edited message also bumps its chat's `updated_at`), and deletions and tag changes from the
//!   `owui_changes` collection, which `pb_hooks/chatstore.pb.js` writes inside the deleting or
//!   updating transaction.
//! - A message event names its chat's owner, read from the chat (and remembered); a message
//!   deleted together with its chat is not reported on its own: the chat's deletion is.
//!
//! Delivery is at least once, like every feed: a live event and its catch-up twin may both
//! arrive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chatstore_core::Result;
use chatstore_core::changes::{
    ChangeEvent, ChangeFeed, ChangeHub, ChangeKind, advance, catch_up_from, now_ms,
};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

use crate::client::ListQuery;
use crate::error::Subject;
use crate::rows::query::{MAX_FILTER_ATOMS, MAX_FILTER_CHARS};
use crate::{Inner, PocketBase, filter};

/// The realtime stream's read timeout: PocketBase ends an idle stream after 300 s, so a
/// connection silent for longer is gone.
const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(330);

/// Chats whose owner is remembered for message events, at most.
const OWNER_CACHE: usize = 10_000;

/// The change feed of a [`PocketBase`] store.
#[derive(Clone)]
pub struct PocketBaseFeed {
    pb: PocketBase,
}

impl std::fmt::Debug for PocketBaseFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PocketBaseFeed").finish_non_exhaustive()
    }
}

impl PocketBaseFeed {
    pub(crate) fn new(pb: PocketBase) -> Self {
        PocketBaseFeed { pb }
    }
}

#[async_trait]
impl ChangeFeed for PocketBaseFeed {
    fn hub(&self) -> &ChangeHub {
        self.pb.start_listener();
        &self.pb.inner.hub
    }

    async fn changes_since(
        &self,
        since_secs: i64,
        user_id: Option<&str>,
    ) -> Result<Vec<ChangeEvent>> {
        changes_since(&self.pb, since_secs, user_id).await
    }
}

impl PocketBase {
    /// Starts the realtime listener once (needs a Tokio runtime; without one the feed stays
    /// silent until a later call has one).
    pub(crate) fn start_listener(&self) {
        if self.inner.listener.get().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.listener.set(()).is_ok() {
            runtime.spawn(listen(Arc::downgrade(&self.inner)));
        }
    }
}

fn kind_of(action: &str) -> Option<ChangeKind> {
    match action {
        "create" => Some(ChangeKind::Created),
        "update" => Some(ChangeKind::Updated),
        "delete" => Some(ChangeKind::Deleted),
        _ => None,
    }
}

/// A text field of a record, borrowed; `""` when absent (realtime and list records always
/// carry the fields asked for).
fn text<'a>(record: &'a Value, field: &str) -> &'a str {
    record
        .get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A number field of a record, 0 when absent.
fn int(record: &Value, field: &str) -> i64 {
    crate::record::int(record, field).unwrap_or_default()
}

/// Waits `backoff`, then doubles it (5 s at most).
async fn pause(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

/// Remembered chat owners, for message events.
#[derive(Default)]
struct Owners(Mutex<HashMap<String, String>>);

impl Owners {
    fn remember(&self, chat_id: &str, user_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= OWNER_CACHE {
                map.clear();
            }
            map.insert(chat_id.to_owned(), user_id.to_owned());
        }
    }

    fn get(&self, chat_id: &str) -> Option<String> {
        self.0.lock().ok().and_then(|m| m.get(chat_id).cloned())
    }

    fn forget(&self, chat_id: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(chat_id);
        }
    }
}

/// The owner of a chat: remembered, else read from PocketBase. `None` when the chat is gone.
async fn owner(pb: &PocketBase, owners: &Owners, chat_id: &str) -> Option<String> {
    if let Some(user) = owners.get(chat_id) {
        return Some(user);
    }
    let record = pb
        .inner
        .client
        .get_record(
            &pb.inner.cols.chats,
            chat_id,
            None,
            Subject::new("chat", chat_id),
        )
        .await
        .ok()?;
    let user = text(&record, "user_id").to_owned();
    owners.remember(chat_id, &user);
    Some(user)
}

/// The event of one realtime message (`topic` is the subscription it answers).
async fn event_of(
    pb: &PocketBase,
    owners: &Owners,
    topic: &str,
    data: &str,
) -> Option<ChangeEvent> {
    let value: Value = serde_json::from_str(data).ok()?;
    let kind = kind_of(value.get("action")?.as_str()?)?;
    let record = value.get("record")?;
    let collection = topic.strip_suffix("/*")?;
    let cols = &pb.inner.cols;
    let id = text(record, "id");
    if collection == cols.users {
        Some(ChangeEvent::user_ids(kind, id))
    } else if collection == cols.chats {
        let user = text(record, "user_id");
        if kind == ChangeKind::Deleted {
            owners.forget(id);
        } else {
            owners.remember(id, user);
        }
        Some(ChangeEvent::chat_ids(kind, user, id, &[]))
    } else if collection == cols.messages {
        let chat = text(record, "chat_id");
        let user = owner(pb, owners, chat).await?;
        Some(ChangeEvent::message_ids(
            kind,
            &user,
            chat,
            text(record, "msg_id"),
        ))
    } else if collection == cols.files {
        Some(ChangeEvent::file_ids(kind, text(record, "user_id"), id))
    } else {
        None
    }
}

/// Subscribes client `client_id` to the feed's collections, as the superuser (PocketBase
/// filters realtime events by the auth of this request).
async fn subscribe(pb: &PocketBase, client_id: &str) -> Result<()> {
    let cols = &pb.inner.cols;
    let topics: Vec<String> = [&cols.users, &cols.chats, &cols.messages, &cols.files]
        .iter()
        .map(|c| format!("{c}/*"))
        .collect();
    pb.inner
        .client
        .send(
            Method::POST,
            "/api/realtime",
            &[],
            Some(&json!({"clientId": client_id, "subscriptions": topics})),
            Subject::new("realtime subscription", client_id),
            true,
        )
        .await
        .map(|_| ())
}

/// Listens for as long as the store lives: publishes every realtime event, and after every
/// (re)connection what changed since the last event it published.
async fn listen(store: Weak<Inner>) {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(STREAM_IDLE_TIMEOUT)
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "change feed: cannot build the HTTP client");
            return;
        }
    };
    let owners = Owners::default();
    let mut cursor = now_ms();
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(inner) = store.upgrade() else { return };
        let pb = PocketBase { inner };
        let hub = pb.inner.hub.clone();
        let url = format!("{}/api/realtime", pb.inner.client.base());
        drop(pb);
        let mut events = match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => resp.bytes_stream().eventsource(),
            Ok(resp) => {
                hub.disconnected();
                tracing::warn!(status = %resp.status(), "change feed: realtime refused; retrying");
                pause(&mut backoff).await;
                continue;
            }
            Err(e) => {
                hub.disconnected();
                tracing::warn!(error = %e, "change feed: cannot reach the realtime API; retrying");
                pause(&mut backoff).await;
                continue;
            }
        };
        // The first message names the client id to subscribe with.
        let client_id = match events.next().await {
            Some(Ok(ev)) if ev.event == "PB_CONNECT" => serde_json::from_str::<Value>(&ev.data)
                .ok()
                .and_then(|v| v.get("clientId")?.as_str().map(str::to_owned)),
            _ => None,
        };
        let Some(client_id) = client_id else {
            hub.disconnected();
            pause(&mut backoff).await;
            continue;
        };
        let Some(inner) = store.upgrade() else { return };
        let pb = PocketBase { inner };
        if let Err(e) = subscribe(&pb, &client_id).await {
            hub.disconnected();
            tracing::warn!(error = %e, "change feed: cannot subscribe; reconnecting");
            drop(pb);
            pause(&mut backoff).await;
            continue;
        }
        // Subscribed: whatever changes from now on is heard; read back what came before. The
        // feed counts as connected once that read-back answered; one that keeps failing is
        // retried after the same growing pause as a failed connection, not at once in a loop.
        match changes_since(&pb, catch_up_from(cursor), None).await {
            Ok(caught) => {
                backoff = Duration::from_millis(100);
                hub.connected();
                for event in caught {
                    cursor = advance(cursor, &event);
                    hub.publish(event);
                }
            }
            Err(e) => {
                drop(pb);
                hub.catch_up_failed();
                tracing::warn!(error = %e, "change feed: catch-up failed; reconnecting");
                pause(&mut backoff).await;
                continue;
            }
        }
        drop(pb);
        while let Some(message) = events.next().await {
            let Ok(message) = message else { break };
            let Some(inner) = store.upgrade() else { return };
            let pb = PocketBase { inner };
            if let Some(event) = event_of(&pb, &owners, &message.event, &message.data).await {
                cursor = advance(cursor, &event);
                hub.publish(event);
            }
        }
        hub.disconnected();
        tracing::info!("change feed: realtime stream ended; reconnecting");
    }
}

/// One filter over `field >= since` and, when given, the owner.
fn since_filter(field: &str, since: i64, owner: Option<(&str, &str)>) -> String {
    match owner {
        Some((column, user)) => format!("{field} >= {since} && {}", filter::eq(column, user)),
        None => format!("{field} >= {since}"),
    }
}

/// Filters `(chat_id = a || chat_id = b ...) && condition` over `chats`, as many chats to a
/// filter as keep it within [`MAX_FILTER_CHARS`] and [`MAX_FILTER_ATOMS`] (PocketBase refuses
/// a longer one).
fn chat_filters(chats: &[&String], condition: &str) -> Vec<String> {
    let mut filters = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    let mut length = condition.len() + 8;
    for chat in chats {
        let term = filter::eq("chat_id", chat);
        if !terms.is_empty()
            && (length + term.len() + 4 > MAX_FILTER_CHARS || terms.len() + 2 > MAX_FILTER_ATOMS)
        {
            filters.push(format!("({}) && {condition}", terms.join(" || ")));
            terms.clear();
            length = condition.len() + 8;
        }
        length += term.len() + 4;
        terms.push(term);
    }
    if !terms.is_empty() {
        filters.push(format!("({}) && {condition}", terms.join(" || ")));
    }
    filters
}

async fn all(
    pb: &PocketBase,
    collection: &str,
    filter: String,
    fields: &'static str,
) -> Result<Vec<Value>> {
    let q = ListQuery {
        filter,
        sort: String::new(),
        expand: None,
        skip_total: true,
        fields: Some(fields),
    };
    pb.inner
        .client
        .list_all(collection, &q, Subject::new("change", ""))
        .await
}

/// What changed since `since_secs` (see [`ChangeFeed::changes_since`]).
pub(crate) async fn changes_since(
    pb: &PocketBase,
    since_secs: i64,
    user_id: Option<&str>,
) -> Result<Vec<ChangeEvent>> {
    let cols = &pb.inner.cols;
    let mut out = Vec::new();
    for r in all(
        pb,
        &cols.users,
        since_filter("updated_at", since_secs, user_id.map(|u| ("id", u))),
        "id,updated_at",
    )
    .await?
    {
        out.push(
            ChangeEvent::user_ids(ChangeKind::Updated, text(&r, "id"))
                .read_back(int(&r, "updated_at")),
        );
    }
    // A message written since then bumped its chat's `updated_at`, so these chats name the
    // owner of every such message.
    let mut owners = HashMap::new();
    for r in all(
        pb,
        &cols.chats,
        since_filter("updated_at", since_secs, user_id.map(|u| ("user_id", u))),
        "id,user_id,updated_at",
    )
    .await?
    {
        owners.insert(text(&r, "id").to_owned(), text(&r, "user_id").to_owned());
        out.push(
            ChangeEvent::chat_ids(
                ChangeKind::Updated,
                text(&r, "user_id"),
                text(&r, "id"),
                &[],
            )
            .read_back(int(&r, "updated_at")),
        );
    }
    // A message written or edited since then bumped its chat's `updated_at`, so the messages
    // to read back are among these chats', those whose own `updated_at` (kept in the
    // message's document) is since then: reading by `created_at` missed every edit.
    let mut chats: Vec<&String> = owners.keys().collect();
    chats.sort_unstable();
    for filter in chat_filters(&chats, &format!("doc.updated_at >= {since_secs}")) {
        for r in all(pb, &cols.messages, filter, "chat_id,msg_id,doc.updated_at").await? {
            if let Some(user) = owners.get(text(&r, "chat_id")) {
                let at = r
                    .get("doc")
                    .and_then(|d| d.get("updated_at"))
                    .and_then(Value::as_i64)
                    .unwrap_or(since_secs);
                out.push(
                    ChangeEvent::message_ids(
                        ChangeKind::Updated,
                        user,
                        text(&r, "chat_id"),
                        text(&r, "msg_id"),
                    )
                    .read_back(at),
                );
            }
        }
    }
    for r in all(
        pb,
        &cols.files,
        since_filter("updated_at", since_secs, user_id.map(|u| ("user_id", u))),
        "id,user_id,updated_at",
    )
    .await?
    {
        out.push(
            ChangeEvent::file_ids(ChangeKind::Updated, text(&r, "user_id"), text(&r, "id"))
                .read_back(int(&r, "updated_at")),
        );
    }
    for r in all(
        pb,
        &cols.changes,
        since_filter(
            "at",
            since_secs.saturating_mul(1000),
            user_id.map(|u| ("user_id", u)),
        ),
        "event",
    )
    .await?
    {
        match r
            .get("event")
            .cloned()
            .map(serde_json::from_value::<ChangeEvent>)
        {
            Some(Ok(event)) => out.push(event),
            _ => tracing::warn!("skipping an unreadable change record"),
        }
    }
    out.sort_by_key(|e| e.at);
    Ok(out)
}
