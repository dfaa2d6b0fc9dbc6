//! The change feed of a SQL store (see [`chatstore_core::changes`]).
//!
//! Every write transaction announces its changes ([`Tx::announce`]); on commit, inside the
//! transaction:
//! - the changes that `updated_at` cannot show later (deletions, tag changes) are recorded in
//!   chatstore's own table `chatstore_change` (pruned after [`TOMBSTONE_RETENTION_SECS`], by
//!   a recording transaction at most once a minute per store: [`prune_if_due`]); Open WebUI's
//!   tables are not touched;
//! - on PostgreSQL, `pg_notify('chatstore_change', ...)` carries the events (ids only, JSON
//!   arrays kept under 8000 bytes), delivered to every listener when the transaction commits,
//!   so every process writing through chatstore is heard by every process listening.
//!
//! SQLite publishes the committed events to its in-process hub. PostgreSQL's feed `LISTEN`s on
//! a dedicated connection (by default to the store's database; [`SqlOptions::listen_url`] points
//! it past a transaction-pooling PgBouncer, which cannot `LISTEN`), started by the first
//! subscriber. Whenever that connection is (re)established it reads back what changed since
//! the last event it delivered, so a dropped connection loses nothing.
//!
//! [`SqlOptions::listen_url`]: crate::SqlOptions::listen_url

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chatstore_core::changes::{
    ChangeEvent, ChangeFeed, ChangeHub, ChangeKind, TOMBSTONE_RETENTION_SECS, advance,
    catch_up_from, kept_for_catch_up, now_ms,
};
use chatstore_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::SqlStore;
use crate::pool::{Arg, Dialect, List, Mode, Sql, Tx, args};

/// The PostgreSQL notification channel chatstore announces on.
pub const CHANNEL: &str = "chatstore_change";

/// The `application_name` of the listening connection (to find it in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "chatstore-listener";

/// Largest NOTIFY payload chatstore sends (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7500;

/// chatstore's own table of changes catch-up cannot find by `updated_at`.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatstore_change (\
     key TEXT NOT NULL PRIMARY KEY, \
     user_id TEXT NOT NULL, \
     at BIGINT NOT NULL, \
     event TEXT NOT NULL); \
     CREATE INDEX IF NOT EXISTS chatstore_change_at_idx ON chatstore_change (at);";

const RECORD: Sql = Sql::both(
    "INSERT INTO chatstore_change (key, user_id, at, event) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO NOTHING",
);

const PRUNE: Sql = Sql::both("DELETE FROM chatstore_change WHERE at < $1");

/// PostgreSQL: [`RECORD`] for every kept event and every payload notified, in one statement:
/// the part after `WITH`, its six parameters (channel, payloads, keys, user ids, times,
/// events) numbered as given, so that a write can run ahead of it in the same statement
/// (`chats::UPDATE_BLOB_RECORDED`). A data-modifying `WITH` clause always runs to completion,
/// whether or not the query reads its rows. The payloads go out in the order of the array (a
/// function scan of `unnest` yields its elements in order; PostgreSQL delivers a
/// transaction's notifications in the order they were sent).
///
/// The prune is not part of it ([`prune_if_due`]): with a `DELETE … WHERE at < $n` beside the
/// write, the generic plan of the prepared statement was costed as a scan of a third of
/// `chatstore_change`, so PostgreSQL planned the statement anew on every execution (0.17 ms
/// of a message upsert's 2 ms); without it the generic plan is taken after five runs.
macro_rules! record_and_notify {
    ($channel:literal, $payloads:literal, $keys:literal, $users:literal, $ats:literal,
     $events:literal) => {
        concat!(
            "recorded AS (INSERT INTO chatstore_change (key, user_id, at, event) \
             SELECT r.key, r.user_id, r.at, r.event FROM unnest(",
            $keys,
            "::text[], ",
            $users,
            "::text[], ",
            $ats,
            "::bigint[], ",
            $events,
            "::text[]) AS r(key, user_id, at, event) ON CONFLICT (key) DO NOTHING) \
             SELECT pg_notify(",
            $channel,
            ", payload) FROM unnest(",
            $payloads,
            "::text[]) AS payload"
        )
    };
}
pub(crate) use record_and_notify;

/// PostgreSQL: the write `$write` (SQL text) and, in the same statement after it,
/// [`record_and_notify!`] with its six parameters numbered as given (after a `;`, without
/// commas): the statement `Tx::execute_recording` runs when the transaction has changes to
/// announce.
macro_rules! recorded {
    ($write:expr; $channel:literal $payloads:literal $keys:literal $users:literal
     $ats:literal $events:literal) => {
        concat!(
            "WITH written AS (",
            $write,
            "), ",
            $crate::changes::record_and_notify!($channel, $payloads, $keys, $users, $ats, $events)
        )
    };
}
pub(crate) use recorded;

/// [`record_and_notify!`] alone, for a commit whose changes no write carried.
const RECORD_AND_NOTIFY: Sql = Sql::both(concat!(
    "WITH ",
    record_and_notify!("$1", "$2", "$3", "$4", "$5", "$6")
));

const RECORDED_SINCE: Sql = Sql::both(
    "SELECT event FROM chatstore_change WHERE at >= $1 AND ($2 IS NULL OR user_id = $2) \
     ORDER BY at, key",
);

const USERS_SINCE: Sql = Sql::each(
    "SELECT id, updated_at FROM user WHERE updated_at >= $1 AND ($2 IS NULL OR id = $2)",
    "SELECT id, updated_at FROM \"user\" WHERE updated_at >= $1 AND ($2::text IS NULL OR id = $2)",
);

const CHATS_SINCE: Sql = Sql::each(
    "SELECT id, user_id, updated_at FROM chat WHERE updated_at >= $1 \
     AND ($2 IS NULL OR user_id = $2)",
    "SELECT id, user_id, updated_at FROM chat WHERE updated_at >= $1 \
     AND ($2::text IS NULL OR user_id = $2)",
);

/// On PostgreSQL from 16, read through `chatstore_chat_message_changes` (`indexes`).
pub(crate) const MESSAGES_SINCE: Sql = Sql::each(
    "SELECT m.id, m.chat_id, c.user_id, m.updated_at FROM chat_message m \
     JOIN chat c ON c.id = m.chat_id WHERE m.updated_at >= $1 \
     AND ($2 IS NULL OR c.user_id = $2)",
    "SELECT m.id, m.chat_id, c.user_id, m.updated_at FROM chat_message m \
     JOIN chat c ON c.id = m.chat_id WHERE m.updated_at >= $1 \
     AND ($2::text IS NULL OR c.user_id = $2)",
);

/// On PostgreSQL from 16, read through `chatstore_file_changes` (`indexes`).
pub(crate) const FILES_SINCE: Sql = Sql::each(
    "SELECT id, user_id, updated_at FROM file WHERE updated_at >= $1 \
     AND ($2 IS NULL OR user_id = $2)",
    "SELECT id, user_id, updated_at FROM file WHERE updated_at >= $1 \
     AND ($2::text IS NULL OR user_id = $2)",
);

/// Records and notifies the changes of a transaction about to commit (see the module doc).
pub(crate) async fn record(tx: &mut Tx, changes: &[ChangeEvent]) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        if let Some(args) = postgres_args(changes)? {
            tx.execute(RECORD_AND_NOTIFY, args).await?;
        }
        return prune_if_due(tx, changes).await;
    }
    for event in changes.iter().filter(|e| kept_for_catch_up(e)) {
        tx.execute_later(
            RECORD,
            args![
                event.key.as_str(),
                event.user_id.as_str(),
                event.at,
                encode(event)?
            ],
        )
        .await?;
    }
    prune_if_due(tx, changes).await
}

/// The longest a store goes between two prunes of `chatstore_change` while it records changes.
const PRUNE_EVERY_MS: i64 = 60_000;

/// When a store prunes `chatstore_change` next (milliseconds since the epoch), shared by all
/// its transactions.
#[derive(Debug, Default)]
pub(crate) struct PruneClock(AtomicI64);

impl PruneClock {
    /// Whether the caller prunes now: once the time has come, the first caller to ask, and it
    /// sets the next time. (A transaction that then rolls back leaves the prune to the next
    /// interval: the rows are days past their retention either way.)
    fn due(&self) -> bool {
        let now = now_ms();
        let next = self.0.load(Ordering::Relaxed);
        now >= next
            && self
                .0
                .compare_exchange(
                    next,
                    now + PRUNE_EVERY_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

/// Deletes the recorded changes past [`TOMBSTONE_RETENTION_SECS`], inside the transaction that
/// recorded `changes`, when it recorded one and the store's [`PruneClock`] says it is time.
pub(crate) async fn prune_if_due(tx: &mut Tx, changes: &[ChangeEvent]) -> Result<()> {
    if changes.iter().any(kept_for_catch_up) && tx.prune_clock().due() {
        let before = now_ms() - TOMBSTONE_RETENTION_SECS * 1000;
        tx.execute(PRUNE, args![before]).await?;
    }
    Ok(())
}

/// The six values [`record_and_notify!`] binds for `changes` (PostgreSQL), in its order;
/// `None` when there is nothing to notify.
pub(crate) fn postgres_args(changes: &[ChangeEvent]) -> Result<Option<Vec<Arg>>> {
    let payloads = payloads(changes)?;
    if payloads.is_empty() {
        return Ok(None);
    }
    let (mut keys, mut users, mut ats, mut events) = (vec![], vec![], vec![], vec![]);
    for event in changes.iter().filter(|e| kept_for_catch_up(e)) {
        keys.push(event.key.clone());
        users.push(event.user_id.clone());
        ats.push(event.at);
        events.push(encode(event)?);
    }
    Ok(Some(vec![
        Arg::from(CHANNEL),
        Arg::List(List::Text(payloads)),
        Arg::List(List::Text(keys)),
        Arg::List(List::Text(users)),
        Arg::List(List::Int(ats)),
        Arg::List(List::Text(events)),
    ]))
}

/// The notification payload of one event (a JSON array, as [`payloads`] makes them).
pub(crate) fn payload(event: &ChangeEvent) -> Result<String> {
    Ok(format!("[{}]", encode(event)?))
}

/// An event as the JSON text recorded and notified.
fn encode(event: &ChangeEvent) -> Result<String> {
    serde_json::to_string(event).map_err(|e| Error::backend("encode change event", e))
}

/// The events as JSON arrays of at most [`MAX_PAYLOAD`] bytes each (an event alone always
/// fits: ids are short).
fn payloads(changes: &[ChangeEvent]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut current = String::from("[");
    for event in changes {
        let text = encode(event)?;
        if current.len() > 1 && current.len() + text.len() + 2 > MAX_PAYLOAD {
            current.push(']');
            out.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&text);
    }
    if current.len() > 1 {
        current.push(']');
        out.push(current);
    }
    Ok(out)
}

/// Everything that changed since `since_secs`, read back from the tables (see
/// [`ChangeFeed::changes_since`]).
pub(crate) async fn changes_since(
    store: &SqlStore,
    since_secs: i64,
    user_id: Option<&str>,
) -> Result<Vec<ChangeEvent>> {
    let user = Arg::Text(user_id.map(str::to_owned));
    let mut tx = store.pool().begin("change", Mode::Read).await?;
    let mut out = Vec::new();
    for row in tx
        .fetch_all(USERS_SINCE, vec![Arg::from(since_secs), user.clone()])
        .await?
    {
        out.push(
            ChangeEvent::user_ids(ChangeKind::Updated, &row.text("id")?)
                .read_back(row.int("updated_at")?),
        );
    }
    for row in tx
        .fetch_all(CHATS_SINCE, vec![Arg::from(since_secs), user.clone()])
        .await?
    {
        out.push(
            ChangeEvent::chat_ids(
                ChangeKind::Updated,
                &row.text("user_id")?,
                &row.text("id")?,
                &[],
            )
            .read_back(row.int("updated_at")?),
        );
    }
    for row in tx
        .fetch_all(MESSAGES_SINCE, vec![Arg::from(since_secs), user.clone()])
        .await?
    {
        // The row's key is `{chat_id}-{message_id}`; events carry the message's own id.
        let chat_id = row.text("chat_id")?;
        let message_id = crate::messages::id_of_key(&row.text("id")?, &chat_id);
        out.push(
            ChangeEvent::message_ids(
                ChangeKind::Updated,
                &row.text("user_id")?,
                &chat_id,
                &message_id,
            )
            .read_back(row.int("updated_at")?),
        );
    }
    for row in tx
        .fetch_all(FILES_SINCE, vec![Arg::from(since_secs), user.clone()])
        .await?
    {
        out.push(
            ChangeEvent::file_ids(ChangeKind::Updated, &row.text("user_id")?, &row.text("id")?)
                .read_back(row.int("updated_at")?),
        );
    }
    for row in tx
        .fetch_all(
            RECORDED_SINCE,
            vec![Arg::from(since_secs.saturating_mul(1000)), user],
        )
        .await?
    {
        let text = row.text("event")?;
        match serde_json::from_str::<ChangeEvent>(&text) {
            Ok(event) => out.push(event),
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable chatstore_change row"),
        }
    }
    tx.commit().await?;
    out.sort_by_key(|e| e.at);
    Ok(out)
}

/// The change feed of a [`SqlStore`].
#[derive(Debug, Clone)]
pub struct SqlFeed {
    store: SqlStore,
}

impl SqlFeed {
    pub(crate) fn new(store: SqlStore) -> Self {
        SqlFeed { store }
    }
}

#[async_trait]
impl ChangeFeed for SqlFeed {
    fn hub(&self) -> &ChangeHub {
        if self.store.dialect() == Dialect::Postgres {
            self.store.start_listener();
        }
        self.store.hub()
    }

    /// SQLite publishes its own commits to an in-process hub only; PostgreSQL `LISTEN`s.
    fn hears_other_processes(&self) -> bool {
        self.store.dialect() == Dialect::Postgres
    }

    async fn changes_since(
        &self,
        since_secs: i64,
        user_id: Option<&str>,
    ) -> Result<Vec<ChangeEvent>> {
        changes_since(&self.store, since_secs, user_id).await
    }
}

/// Listens on PostgreSQL for as long as the store lives: publishes every notification, and
/// after every (re)connection the changes made since the last event it published.
pub(crate) async fn listen(
    store: std::sync::Weak<crate::Inner>,
    options: PgConnectOptions,
    heartbeat: Duration,
    hub: Arc<ChangeHub>,
) {
    let options = options.application_name(LISTENER_APPLICATION_NAME);
    let mut cursor = now_ms();
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(inner) = store.upgrade() else { return };
        let sql = SqlStore { inner, urls: None };
        let mut listener = match connect(&options).await {
            Ok(l) => l,
            Err(e) => {
                drop(sql);
                hub.disconnected();
                tracing::warn!(error = %e, "change feed: cannot LISTEN; retrying");
                pause(&mut backoff).await;
                continue;
            }
        };
        // LISTEN is active: whatever commits from now on is heard; read back what came before.
        // The feed counts as connected once that read-back answered; one that keeps failing is
        // retried after the same growing pause as a failed LISTEN, not at once in a loop.
        match changes_since(&sql, catch_up_from(cursor), None).await {
            Ok(events) => {
                backoff = Duration::from_millis(100);
                hub.connected();
                publish(&hub, &mut cursor, events);
            }
            Err(e) => {
                drop(sql);
                hub.catch_up_failed();
                tracing::warn!(error = %e, "change feed: catch-up failed; reconnecting");
                pause(&mut backoff).await;
                continue;
            }
        }
        drop(sql);
        loop {
            // Waiting for a notification is cancel-safe (sqlx keeps a message read in part).
            let received = match tokio::time::timeout(heartbeat, listener.try_recv()).await {
                Ok(received) => received,
                Err(_) if answers(&mut listener, heartbeat).await => continue,
                Err(_) => {
                    hub.disconnected();
                    tracing::warn!(
                        "change feed: the listening connection did not answer within {heartbeat:?}; \
                         reconnecting"
                    );
                    break;
                }
            };
            match received {
                Ok(Some(note)) => {
                    let before = cursor;
                    let (events, unreadable) = read_payload(note.payload());
                    publish(&hub, &mut cursor, events);
                    if unreadable > 0 {
                        // A change the feed cannot name (a newer writer's kind, a stray NOTIFY)
                        // is a gap like a lost connection: read back what changed, still
                        // listening; if that fails, reconnect, which reads back again.
                        tracing::warn!(
                            unreadable,
                            "change feed: unreadable events in a notification; reading back"
                        );
                        let Some(inner) = store.upgrade() else { return };
                        let sql = SqlStore { inner, urls: None };
                        match changes_since(&sql, catch_up_from(before), None).await {
                            Ok(events) => publish(&hub, &mut cursor, events),
                            Err(e) => {
                                cursor = before;
                                hub.catch_up_failed();
                                tracing::warn!(error = %e, "change feed: read-back failed; reconnecting");
                                break;
                            }
                        }
                    }
                }
                Ok(None) | Err(_) => {
                    hub.disconnected();
                    tracing::info!("change feed: listening connection lost; reconnecting");
                    break;
                }
            }
            if store.strong_count() == 0 {
                return;
            }
        }
    }
}

/// Publishes `events` in order, moving `cursor` past each.
fn publish(hub: &ChangeHub, cursor: &mut i64, events: Vec<ChangeEvent>) {
    for event in events {
        *cursor = advance(*cursor, &event);
        hub.publish(event);
    }
}

/// The events of a notification's payload (a JSON array), read one by one, and how many of
/// its elements could not be read (the whole payload counts as one when it is no array).
fn read_payload(payload: &str) -> (Vec<ChangeEvent>, usize) {
    let Ok(elements) = serde_json::from_str::<Vec<serde_json::Value>>(payload) else {
        return (Vec::new(), 1);
    };
    let mut events = Vec::with_capacity(elements.len());
    let mut unreadable = 0;
    for element in elements {
        match serde_json::from_value::<ChangeEvent>(element) {
            Ok(event) => events.push(event),
            Err(_) => unreadable += 1,
        }
    }
    (events, unreadable)
}

/// Waits `backoff`, then doubles it (5 s at most).
async fn pause(backoff: &mut Duration) {
    tokio::time::sleep(*backoff).await;
    *backoff = (*backoff * 2).min(Duration::from_secs(5));
}

/// Whether the listening connection answers a query within `within` (notifications that
/// arrive meanwhile are kept for the next receive).
async fn answers(listener: &mut PgListener, within: Duration) -> bool {
    let ping = sqlx::query("SELECT 1").persistent(false).execute(listener);
    matches!(tokio::time::timeout(within, ping).await, Ok(Ok(_)))
}

/// A listening connection, on a pool of its own: a dropped `PgListener` sends `UNLISTEN *` on
/// its connection from a task sqlx spawns, which holds that pool's only slot until the old
/// connection answers or fails; on a connection that stopped answering (the reason it was
/// dropped) that can take as long as TCP does to give up, or for ever when the peer still
/// acknowledges bytes. A pool shared between attempts kept every new `LISTEN` waiting for it.
async fn connect(options: &PgConnectOptions) -> std::result::Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    // Reconnection is ours: a fresh connection is followed by a catch-up.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}
