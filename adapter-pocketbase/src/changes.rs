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

use crate::client::{ListQuery, keyset_pages};
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
        let store = Arc::downgrade(&self.inner);
        self.inner
            .listener
            .get_or_init(|| Listener(runtime.spawn(listen(store)).abort_handle()));
    }
}

/// The running realtime listener. It holds the store weakly, so the store's last clone drops
/// this, which stops the task at once instead of at the stream's next message or idle timeout
/// (and never leaves it polling a request while its runtime shuts down).
#[derive(Debug)]
pub(crate) struct Listener(tokio::task::AbortHandle);

impl Listener {
    /// Ends the listening task (at its next await).
    pub(crate) fn stop(&self) {
        self.0.abort();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
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

/// Lets go of the listener's hold on the store; `false` when it was the last one. The store's
/// drop has then run in the listener's own task, stopping it, while the store's owner may
/// already be shutting the runtime down (a test's runtime at its end): the task must return
/// before it polls a timer again (the stream's or a pause), which would panic in a runtime
/// being shut down.
fn release(pb: PocketBase, store: &Weak<Inner>) -> bool {
    drop(pb);
    store.strong_count() > 0
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

/// The owner of a chat: remembered, else read from PocketBase. `None` when the chat is gone;
/// `Err` when PocketBase did not answer the read.
async fn owner(pb: &PocketBase, owners: &Owners, chat_id: &str) -> Result<Option<String>> {
    if let Some(user) = owners.get(chat_id) {
        return Ok(Some(user));
    }
    let record = match pb
        .inner
        .client
        .get_record(
            &pb.inner.cols.chats,
            chat_id,
            None,
            Subject::new("chat", chat_id),
        )
        .await
    {
        Ok(record) => record,
        Err(e) if e.kind() == chatstore_core::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let user = text(&record, "user_id").to_owned();
    owners.remember(chat_id, &user);
    Ok(Some(user))
}

/// The event of one realtime message (`topic` is the subscription it answers); `Err` when the
/// owner of a message's chat could not be read (the event is then read back after a
/// reconnect, not dropped).
async fn event_of(
    pb: &PocketBase,
    owners: &Owners,
    topic: &str,
    data: &str,
) -> Result<Option<ChangeEvent>> {
    let Some(chat) = message_chat(pb, topic, data) else {
        return Ok(decode_event(pb, owners, topic, data, None));
    };
    let Some(user) = owner(pb, owners, &chat).await? else {
        return Ok(None);
    };
    Ok(decode_event(pb, owners, topic, data, Some(&user)))
}

/// The chat of a realtime message event of the messages collection.
fn message_chat(pb: &PocketBase, topic: &str, data: &str) -> Option<String> {
    if topic.strip_suffix("/*")? != pb.inner.cols.messages {
        return None;
    }
    let value: Value = serde_json::from_str(data).ok()?;
    Some(text(value.get("record")?, "chat_id").to_owned())
}

/// The event of one realtime message, a message's owner given.
fn decode_event(
    pb: &PocketBase,
    owners: &Owners,
    topic: &str,
    data: &str,
    message_owner: Option<&str>,
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
        Some(ChangeEvent::message_ids(
            kind,
            message_owner?,
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
        if !release(pb, &store) {
            return;
        }
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
            if !release(pb, &store) {
                return;
            }
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
                if !release(pb, &store) {
                    return;
                }
                hub.catch_up_failed();
                tracing::warn!(error = %e, "change feed: catch-up failed; reconnecting");
                pause(&mut backoff).await;
                continue;
            }
        }
        if !release(pb, &store) {
            return;
        }
        while let Some(message) = events.next().await {
            let Ok(message) = message else { break };
            let Some(inner) = store.upgrade() else { return };
            let pb = PocketBase { inner };
            let event = event_of(&pb, &owners, &message.event, &message.data).await;
            if !release(pb, &store) {
                return;
            }
            match event {
                Ok(Some(event)) => {
                    cursor = after_live(cursor, &event, record_changed_ms(&message.data));
                    hub.publish(event);
                }
                Ok(None) => {}
                // Reconnecting reads it back (from before the cursor, which it did not move):
                // dropped here, no later catch-up would reach back to it.
                Err(e) => {
                    tracing::warn!(error = %e, "change feed: cannot read a message's chat; reconnecting to read it back");
                    break;
                }
            }
        }
        hub.disconnected();
        tracing::info!("change feed: realtime stream ended; reconnecting");
    }
}

/// When the record of a realtime message says it changed (epoch ms), from the field the
/// catch-up reads by: `updated_at`, else the document's `updated_at` (messages), else
/// `created_at`. `None` when it has none of them.
fn record_changed_ms(data: &str) -> Option<i64> {
    let value: Value = serde_json::from_str(data).ok()?;
    let record = value.get("record")?;
    let secs = [
        record.get("updated_at"),
        record.get("doc").and_then(|d| d.get("updated_at")),
        record.get("created_at"),
    ]
    .into_iter()
    .flatten()
    .find_map(Value::as_i64)?;
    (secs > 0).then(|| secs.saturating_mul(1000))
}

/// The cursor after a live event whose record changed at `record_ms`: no further than that.
/// A live event is stamped when it arrives; behind a lagging stream that is well after the
/// change, and a cursor moved there passed records whose event the feed then failed to
/// produce (a message whose chat's owner could not be read), so the catch-up after the
/// reconnect, which reads from the cursor by the records' own times, never read them back.
fn after_live(cursor: i64, event: &ChangeEvent, record_ms: Option<i64>) -> i64 {
    match record_ms {
        Some(at) if at < event.at => cursor.max(at.min(now_ms())),
        _ => advance(cursor, event),
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

/// Every record of `collection` matching `filter`, its `fields` (which must name `id`), in
/// pages by id (see [`keyset_pages`]).
async fn all(
    pb: &PocketBase,
    collection: &str,
    filter: String,
    fields: &'static str,
) -> Result<Vec<Value>> {
    const PAGE: u64 = 1000;
    keyset_pages(None, u64::MAX, PAGE, |after, _| {
        let q = ListQuery {
            filter: after_id(&filter, after.as_deref()),
            sort: "id".to_owned(),
            expand: None,
            skip_total: true,
            fields: Some(fields),
        };
        async move {
            let (page, _) = pb
                .inner
                .client
                .list(collection, &q, 0, Some(PAGE), Subject::new("change", ""))
                .await?;
            Ok(page)
        }
    })
    .await
}

/// `filter` narrowed to the records after id `after`.
fn after_id(filter: &str, after: Option<&str>) -> String {
    match after {
        None => filter.to_owned(),
        Some(id) => format!("({filter}) && id > {}", filter::literal(id)),
    }
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
        for r in all(
            pb,
            &cols.messages,
            filter,
            "id,chat_id,msg_id,doc.updated_at",
        )
        .await?
        {
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
        "id,event",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PocketBaseConfig;
    use chatstore_core::{NewChat, NewUser};

    /// A store on fresh collections of the test server (`None`, outside CI, without one).
    async fn fresh() -> Option<PocketBase> {
        let url = chatstore_testkit::require_env("CHATSTORE_TEST_POCKETBASE_URL")?;
        let var = |name: &str| std::env::var(name).expect("admin credentials are set with the URL");
        let prefix = format!("k{}_", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let config = PocketBaseConfig::new(
            url,
            var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL"),
            var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD"),
        )
        .with_prefix(prefix)
        .dropping_collections_on_drop();
        Some(PocketBase::connect(config).await.expect("connect"))
    }

    /// Behind a lagging stream, a live event arrives (and is stamped) long after its record
    /// changed: the cursor moves only as far as the record's own time, so a catch-up from it
    /// still reads records changed just after that one. Before, the cursor took the arrival
    /// time and the catch-up started past them.
    #[test]
    fn a_late_live_event_moves_the_cursor_only_to_its_record_time() {
        let changed_secs = now_ms() / 1000 - 120;
        let data = json!({
            "action": "update",
            "record": {"id": "c1", "user_id": "u1", "updated_at": changed_secs},
        })
        .to_string();
        let arrived = ChangeEvent::chat_ids(ChangeKind::Updated, "u1", "c1", &[]);
        let start = (changed_secs - 600) * 1000;
        let cursor = after_live(start, &arrived, record_changed_ms(&data));
        assert_eq!(cursor, changed_secs * 1000);
        assert!(
            catch_up_from(cursor) <= changed_secs,
            "a catch-up from the cursor reads the record's second again"
        );
        // A message carries its time in its document; without any time the arrival counts.
        let message = json!({
            "action": "create",
            "record": {"id": "r1", "chat_id": "c1", "msg_id": "m1", "created_at": 5,
                       "doc": {"updated_at": changed_secs}},
        })
        .to_string();
        assert_eq!(record_changed_ms(&message), Some(changed_secs * 1000));
        assert_eq!(
            record_changed_ms(r#"{"action":"delete","record":{"id":"x"}}"#),
            None
        );
        assert_eq!(after_live(start, &arrived, None), advance(start, &arrived));
        // Never backwards.
        assert_eq!(after_live(cursor, &arrived, Some(1000)), cursor);
    }

    /// Records deleted between two page requests of a catch-up (the first of them on the
    /// first page) no longer hide the ones after them: every record never deleted is read.
    #[tokio::test]
    async fn pages_by_id_keep_every_record_when_earlier_ones_are_deleted_meanwhile() {
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let Some(pb) = fresh().await else {
            return;
        };
        let store = pb.store();
        store
            .users
            .create(NewUser::new("ada@example.com", "Ada").with_id("u1"))
            .await
            .expect("u1");
        for i in 0..25 {
            store
                .chats
                .create(NewChat::new("u1", format!("Chat {i}")).with_id(format!("c{i:02}")))
                .await
                .expect("chat");
        }
        let chats = pb.inner.cols.chats.clone();
        let list = |filter: String| {
            let q = ListQuery {
                filter,
                sort: "id".to_owned(),
                expand: None,
                skip_total: true,
                fields: Some("id,user_id"),
            };
            let (pb, chats) = (pb.clone(), chats.clone());
            async move {
                let (page, _) = pb
                    .inner
                    .client
                    .list(&chats, &q, 0, Some(10), Subject::new("change", ""))
                    .await?;
                Ok::<_, chatstore_core::Error>(page)
            }
        };
        let all_ids: Vec<String> = list("user_id != ''".to_owned())
            .await
            .expect("first page")
            .iter()
            .map(|r| text(r, "id").to_owned())
            .collect();
        // Before the second request, the first two records of the first page go.
        let requests = AtomicUsize::new(0);
        let deleted: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let got = keyset_pages(None, u64::MAX, 10, |after, _| {
            let filter = after_id("user_id != ''", after.as_deref());
            let n = requests.fetch_add(1, Ordering::SeqCst);
            let doomed: Vec<String> = if n == 1 {
                all_ids[..2].to_vec()
            } else {
                Vec::new()
            };
            deleted.lock().expect("lock").extend(doomed.iter().cloned());
            let (pb, chats, page) = (pb.clone(), chats.clone(), list(filter));
            async move {
                for id in &doomed {
                    pb.inner
                        .client
                        .delete_record(&chats, id, Subject::new("chat", id))
                        .await?;
                }
                page.await
            }
        })
        .await
        .expect("catch-up pages");
        let deleted = deleted.lock().expect("lock").clone();
        assert_eq!(deleted.len(), 2);
        let read: std::collections::HashSet<String> =
            got.iter().map(|r| text(r, "id").to_owned()).collect();
        let everything = pb
            .inner
            .client
            .scan_by_id(&chats, None, 10_000, None, Subject::new("chat", ""))
            .await
            .expect("every chat");
        assert_eq!(everything.len(), 23);
        for r in &everything {
            assert!(
                read.contains(text(r, "id")),
                "{} was not read",
                text(r, "id")
            );
        }
    }
}
