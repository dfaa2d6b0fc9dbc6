//! Messages: Open WebUI's `chat_message` rows, keyed `"{chat_id}-{message_id}"`, mirrored
//! into the chat blob's `history` in the same transaction (the chat row is locked for the
//! read-modify-write: `FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite).
//!
//! Chats written before Open WebUI had `chat_message` (or imported without rows) keep their
//! messages only in the blob, as `history.messages` or a legacy flat `messages` list. Reads of
//! such a chat fall back to the blob, like Open WebUI's; the first message write to it stores
//! the blob's messages as rows first (Open WebUI's backfill), so rows and blob agree afterwards.

use std::collections::HashSet;

use async_trait::async_trait;
use chatstore_core::changes::{ChangeEvent, ChangeKind};
use chatstore_core::messages::message_key;
use chatstore_core::{Chat, Error, Message, MessageRepo, NewMessage, Result, blob, validate};
use serde_json::Value;

use crate::chats::{self, chat_from_row};
use crate::pool::{Arg, Dialect, Dyn, List, Mode, Row, Sql, Tx, args, cursor, storable};
use crate::{SqlStore, json};

macro_rules! message_columns {
    () => {
        "id, chat_id, user_id, role, parent_id, content, output, model_id, files, sources, \
         embeds, done, status_history, error, usage, created_at, updated_at, context_summary, meta"
    };
}

/// Inserts or replaces a row; a row with the same key that belongs to another chat is left
/// alone (no row changes, which the caller reports as a conflict).
const UPSERT: Sql = Sql::both(
    "INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, output, model_id, \
     files, sources, embeds, done, status_history, error, usage, created_at, updated_at, \
     context_summary, meta) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, role = excluded.role, \
     parent_id = excluded.parent_id, content = excluded.content, output = excluded.output, \
     model_id = excluded.model_id, files = excluded.files, sources = excluded.sources, \
     embeds = excluded.embeds, done = excluded.done, status_history = excluded.status_history, \
     error = excluded.error, usage = excluded.usage, created_at = excluded.created_at, \
     updated_at = excluded.updated_at, context_summary = excluded.context_summary, \
     meta = excluded.meta WHERE chat_message.chat_id = excluded.chat_id",
);

/// [`UPSERT`] for many rows: the head before the rows' values...
const UPSERT_MANY_HEAD: &str = "INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, \
     content, output, model_id, files, sources, embeds, done, status_history, error, usage, \
     created_at, updated_at, context_summary, meta) VALUES ";

/// ...and the tail after them, returning the keys it wrote (a key taken by another chat's
/// message is neither inserted nor updated).
const UPSERT_MANY_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, \
     role = excluded.role, parent_id = excluded.parent_id, content = excluded.content, \
     output = excluded.output, model_id = excluded.model_id, files = excluded.files, \
     sources = excluded.sources, embeds = excluded.embeds, done = excluded.done, \
     status_history = excluded.status_history, error = excluded.error, usage = excluded.usage, \
     created_at = excluded.created_at, updated_at = excluded.updated_at, \
     context_summary = excluded.context_summary, meta = excluded.meta \
     WHERE chat_message.chat_id = excluded.chat_id RETURNING id";

/// PostgreSQL: [`UPSERT`] for many rows, one array a column unnested in the select list (see
/// `chats::INSERT_UNNEST`; JSON as text, cast by the server), returning the keys it wrote
/// like [`UPSERT_MANY_TAIL`]. Its text does not depend on the row count: prepared once per
/// connection, and no row's values are parsed or planned.
const UPSERT_UNNEST: Sql = Sql::both(
    "INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, content, output, model_id, \
     files, sources, embeds, done, status_history, error, usage, created_at, updated_at, \
     context_summary, meta) \
     SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]), \
     unnest($5::text[]), unnest($6::text[])::json, unnest($7::text[])::json, \
     unnest($8::text[]), unnest($9::text[])::json, unnest($10::text[])::json, \
     unnest($11::text[])::json, unnest($12::boolean[]), unnest($13::text[])::json, \
     unnest($14::text[])::json, unnest($15::text[])::json, unnest($16::bigint[]), \
     unnest($17::bigint[]), unnest($18::text[]), unnest($19::text[])::json \
     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, role = excluded.role, \
     parent_id = excluded.parent_id, content = excluded.content, output = excluded.output, \
     model_id = excluded.model_id, files = excluded.files, sources = excluded.sources, \
     embeds = excluded.embeds, done = excluded.done, status_history = excluded.status_history, \
     error = excluded.error, usage = excluded.usage, created_at = excluded.created_at, \
     updated_at = excluded.updated_at, context_summary = excluded.context_summary, \
     meta = excluded.meta WHERE chat_message.chat_id = excluded.chat_id RETURNING id",
);

const GET: Sql = Sql::both(concat!(
    "SELECT ",
    message_columns!(),
    " FROM chat_message WHERE id = $1 AND chat_id = $2"
));

const LIST: Sql = Sql::both(concat!(
    "SELECT ",
    message_columns!(),
    " FROM chat_message WHERE chat_id = $1"
));

/// 1 when the chat bound as `$chat` has a message row, else 0: one index entry read, however
/// long the chat.
macro_rules! has_rows_of {
    ($chat:literal) => {
        concat!(
            "(SELECT count(*) FROM (SELECT 1 FROM chat_message WHERE chat_id = ",
            $chat,
            " LIMIT 1) AS r)"
        )
    };
}

/// [`has_rows_of!`] chat `$1`, as `n`.
const HAS_ROWS: Sql = Sql::both(concat!("SELECT ", has_rows_of!("$1"), " AS n"));

/// Before a message is written: the row under its key `$1`, whichever chat it belongs to
/// (all columns NULL when there is none), and [`has_rows_of!`] its chat `$2`, in one round
/// trip.
const PROBE: Sql = Sql::both(concat!(
    "SELECT ",
    has_rows_of!("$2"),
    " AS has_rows, ",
    message_columns!(),
    " FROM (SELECT 1 AS one) AS o LEFT JOIN chat_message ON chat_message.id = $1"
));

const DELETE: Sql = Sql::both("DELETE FROM chat_message WHERE id = $1 AND chat_id = $2");

const CHAT_EXISTS: Sql = Sql::both("SELECT id FROM chat WHERE id = $1");

const CHAT: Sql = Sql::both(
    "SELECT id, user_id, COALESCE(title, 'New Chat') AS title, chat, meta, archived, pinned, \
     folder_id, share_id, created_at, updated_at FROM chat WHERE id = $1",
);

/// The rows whose chat does not exist (Open WebUI has no foreign key there), by message key
/// (`"{chat_id}-{id}"`, as the cursor is given), not by row id: a row whose id does not start
/// with its chat's id (another program wrote it) is read with its whole id, so its key and
/// its row id sort apart and a walk by row id would repeat or skip it. Sorting the orphans
/// only costs little: the anti-join reads the whole table either way.
const SCAN_ORPHANS: Sql = Sql::each(
    concat!(
        "SELECT ",
        message_columns!(),
        " FROM (SELECT ",
        message_columns!(),
        ", CASE WHEN substr(id, 1, length(chat_id) + 1) = chat_id || '-' THEN id \
         ELSE chat_id || '-' || id END AS scan_key FROM chat_message WHERE NOT EXISTS \
         (SELECT 1 FROM chat WHERE chat.id = chat_message.chat_id)) AS orphan \
         WHERE scan_key > $1 ORDER BY scan_key LIMIT $2"
    ),
    concat!(
        "SELECT ",
        message_columns!(),
        " FROM (SELECT ",
        message_columns!(),
        ", CASE WHEN substr(id, 1, length(chat_id) + 1) = chat_id || '-' THEN id \
         ELSE chat_id || '-' || id END AS scan_key FROM chat_message WHERE NOT EXISTS \
         (SELECT 1 FROM chat WHERE chat.id = chat_message.chat_id)) AS orphan \
         WHERE scan_key COLLATE \"C\" > $1 ORDER BY scan_key COLLATE \"C\" LIMIT $2"
    ),
);

pub(crate) const SCAN: Sql = Sql::each(
    concat!(
        "SELECT ",
        message_columns!(),
        " FROM chat_message WHERE id > $1 ORDER BY id LIMIT $2"
    ),
    concat!(
        "SELECT ",
        message_columns!(),
        " FROM chat_message WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2"
    ),
);

/// The message id of a `chat_message` row key (`"{chat_id}-{message_id}"`); a key of another
/// shape (a row another program wrote) is the id as it is.
pub(crate) fn id_of_key(key: &str, chat_id: &str) -> String {
    key.strip_prefix(chat_id)
        .and_then(|rest| rest.strip_prefix('-'))
        .unwrap_or(key)
        .to_owned()
}

fn message_from_row(row: &Row) -> Result<Message> {
    let key = row.text("id")?;
    let chat_id = row.text("chat_id")?;
    let id = id_of_key(&key, &chat_id);
    let opt = |column: &'static str| -> Result<Option<Value>> {
        json::parse(column, row.json_text(column)?)
    };
    let updated_at = row.opt_int("updated_at")?;
    // Open WebUI's `created_at` is the message timestamp, milliseconds in legacy rows.
    let created_at = row
        .opt_int("created_at")?
        .map(blob::normalize_timestamp)
        .or(updated_at)
        .unwrap_or(0);
    Ok(Message {
        id,
        chat_id,
        user_id: row.opt_text("user_id")?,
        role: row.text("role")?,
        parent_id: row.opt_text("parent_id")?,
        content: opt("content")?.unwrap_or_else(|| Value::String(String::new())),
        model_id: row.opt_text("model_id")?,
        done: row.flag("done", true)?,
        output: opt("output")?,
        files: opt("files")?,
        sources: opt("sources")?,
        embeds: opt("embeds")?,
        status_history: opt("status_history")?,
        error: opt("error")?,
        usage: opt("usage")?,
        meta: opt("meta")?,
        context_summary: row.opt_text("context_summary")?,
        created_at,
        updated_at: updated_at.unwrap_or(created_at),
    })
}

/// Writes a message row. `Conflict` when its key `"{chat_id}-{id}"` is taken by a message of
/// another chat (Open WebUI's key can collide when ids contain `-`).
pub(crate) async fn upsert_row(tx: &mut Tx, m: &Message) -> Result<()> {
    let key = m.key();
    let changed = tx.execute(UPSERT, row_args(m)).await?;
    if changed == 0 {
        return Err(taken(&key, m));
    }
    Ok(())
}

/// The arguments of [`UPSERT`] for `m`.
fn row_args(m: &Message) -> Vec<Arg> {
    args![
        m.key(),
        m.chat_id.as_str(),
        &m.user_id,
        m.role.as_str(),
        &m.parent_id,
        Arg::Json(Some(json::to_text(&m.content))),
        json::arg(m.output.as_ref()),
        &m.model_id,
        json::arg(m.files.as_ref()),
        json::arg(m.sources.as_ref()),
        json::arg(m.embeds.as_ref()),
        m.done,
        json::arg(m.status_history.as_ref()),
        json::arg(m.error.as_ref()),
        json::arg(m.usage.as_ref()),
        m.created_at,
        m.updated_at,
        &m.context_summary,
        json::arg(m.meta.as_ref()),
    ]
}

/// Rows per statement of [`upsert_rows`]: on SQLite a message row binds 19 parameters of the
/// 32,766 a statement takes; on PostgreSQL ([`UPSERT_UNNEST`], one array a column) no
/// parameter limit applies, this only bounds the size of one message to the server. A batch
/// of 500 new chats holds about 2,500 messages: one statement either way.
fn rows_per_statement(dialect: Dialect) -> usize {
    match dialect {
        Dialect::Postgres => 5_000,
        Dialect::Sqlite => 1_000,
    }
}

/// Writes message rows of several chats with one statement per [`rows_per_statement`] rows:
/// the same rows and the same `Conflict` as [`upsert_row`] for each, in far fewer round
/// trips. Keys that repeat within `messages` (Open WebUI's key `"{chat_id}-{id}"` can collide
/// when ids contain `-`) are written row by row, so that the collision is refused as it would
/// be alone.
pub(crate) async fn upsert_rows(tx: &mut Tx, messages: &[&Message]) -> Result<()> {
    let keys: Vec<String> = messages.iter().map(|m| m.key()).collect();
    let distinct: HashSet<&str> = keys.iter().map(String::as_str).collect();
    if distinct.len() < keys.len() {
        for m in messages {
            upsert_row(tx, m).await?;
        }
        return Ok(());
    }
    let rows = rows_per_statement(tx.dialect());
    for (chunk, chunk_keys) in messages.chunks(rows).zip(keys.chunks(rows)) {
        let written = match tx.dialect() {
            Dialect::Postgres => {
                tx.fetch_all(UPSERT_UNNEST, message_columns(chunk, chunk_keys))
                    .await?
            }
            Dialect::Sqlite => tx.fetch_dyn(message_values(chunk, chunk_keys)).await?,
        };
        if written.len() < chunk.len() {
            let written: HashSet<String> = written
                .iter()
                .map(|r| r.text("id"))
                .collect::<Result<_>>()?;
            if let Some((m, key)) = chunk
                .iter()
                .zip(chunk_keys)
                .find(|(_, key)| !written.contains(key.as_str()))
            {
                return Err(taken(key, m));
            }
        }
    }
    Ok(())
}

/// The arguments of [`UPSERT_UNNEST`] for these rows (`keys` their row keys): one array a
/// column.
fn message_columns(chunk: &[&Message], keys: &[String]) -> Vec<Arg> {
    let text =
        |f: fn(&Message) -> String| Arg::List(List::Text(chunk.iter().map(|m| f(m)).collect()));
    let opt_text = |f: fn(&Message) -> Option<String>| {
        Arg::List(List::OptText(chunk.iter().map(|m| f(m)).collect()))
    };
    let json_text = |f: fn(&Message) -> Option<&Value>| {
        Arg::List(List::Text(
            chunk.iter().map(|m| json::opt_to_text(f(m))).collect(),
        ))
    };
    let int = |f: fn(&Message) -> i64| Arg::List(List::Int(chunk.iter().map(|m| f(m)).collect()));
    vec![
        Arg::List(List::Text(keys.to_vec())),
        text(|m| m.chat_id.clone()),
        opt_text(|m| m.user_id.clone()),
        text(|m| m.role.clone()),
        opt_text(|m| m.parent_id.clone()),
        json_text(|m| Some(&m.content)),
        json_text(|m| m.output.as_ref()),
        opt_text(|m| m.model_id.clone()),
        json_text(|m| m.files.as_ref()),
        json_text(|m| m.sources.as_ref()),
        json_text(|m| m.embeds.as_ref()),
        Arg::List(List::Bool(chunk.iter().map(|m| m.done).collect())),
        json_text(|m| m.status_history.as_ref()),
        json_text(|m| m.error.as_ref()),
        json_text(|m| m.usage.as_ref()),
        int(|m| m.created_at),
        int(|m| m.updated_at),
        opt_text(|m| m.context_summary.clone()),
        json_text(|m| m.meta.as_ref()),
    ]
}

/// A multi-row [`UPSERT`] of these rows returning the keys it wrote (SQLite).
fn message_values(chunk: &[&Message], keys: &[String]) -> Dyn {
    let mut d = Dyn::default();
    d.sql(UPSERT_MANY_HEAD);
    for (k, (m, key)) in chunk.iter().zip(keys).enumerate() {
        d.sql(if k == 0 { "(" } else { ", (" });
        d.bind(key.as_str())
            .sql(", ")
            .bind(m.chat_id.as_str())
            .sql(", ")
            .bind(&m.user_id)
            .sql(", ")
            .bind(m.role.as_str())
            .sql(", ")
            .bind(&m.parent_id)
            .sql(", ")
            .bind(Arg::Json(Some(json::to_text(&m.content))))
            .sql(", ")
            .bind(json::arg(m.output.as_ref()))
            .sql(", ")
            .bind(&m.model_id)
            .sql(", ")
            .bind(json::arg(m.files.as_ref()))
            .sql(", ")
            .bind(json::arg(m.sources.as_ref()))
            .sql(", ")
            .bind(json::arg(m.embeds.as_ref()))
            .sql(", ")
            .bind(m.done)
            .sql(", ")
            .bind(json::arg(m.status_history.as_ref()))
            .sql(", ")
            .bind(json::arg(m.error.as_ref()))
            .sql(", ")
            .bind(json::arg(m.usage.as_ref()))
            .sql(", ")
            .bind(m.created_at)
            .sql(", ")
            .bind(m.updated_at)
            .sql(", ")
            .bind(&m.context_summary)
            .sql(", ")
            .bind(json::arg(m.meta.as_ref()))
            .sql(")");
    }
    d.sql(UPSERT_MANY_TAIL).one_off();
    d
}

fn taken(key: &str, m: &Message) -> Error {
    taken_by_another(key, &m.id, &m.chat_id)
}

fn taken_by_another(key: &str, id: &str, chat_id: &str) -> Error {
    Error::conflict(
        "message",
        format!(
            "row id {key:?} of message {id:?} in chat {chat_id:?} is taken by a message of \
             another chat"
        ),
    )
}

/// The text of [`PROBE`] (the same in both dialects): public so that a raw baseline can send
/// exactly this statement.
pub fn message_probe_sql() -> &'static str {
    PROBE.text(crate::Dialect::Sqlite)
}

/// Whether the chat has a message row (see [`has_rows_of!`]).
async fn has_rows(tx: &mut Tx, chat_id: &str) -> Result<bool> {
    Ok(tx.fetch_one(HAS_ROWS, args![chat_id]).await?.int("n")? > 0)
}

/// Stores the blob's messages as rows when the chat has none (a chat from before
/// `chat_message`); a legacy flat list is rewritten into `history` at the same time.
async fn backfill(tx: &mut Tx, chat: &mut Chat) -> Result<()> {
    if has_rows(tx, &chat.id).await? {
        return Ok(());
    }
    backfill_rows(tx, chat).await.map(drop)
}

/// [`backfill`] of a chat known to have no message rows; whether it wrote any.
async fn backfill_rows(tx: &mut Tx, chat: &mut Chat) -> Result<bool> {
    let messages = blob::readable_messages(chat);
    if messages.is_empty() {
        return Ok(false);
    }
    for message in &messages {
        upsert_row(tx, message).await?;
    }
    let has_history = chat
        .chat
        .get("history")
        .and_then(|h| h.get("messages"))
        .is_some_and(Value::is_object);
    if !has_history {
        blob::rebuild_history(&mut chat.chat, &messages);
    }
    Ok(true)
}

/// What a message's key holds before the message is written: nothing, or this chat's row of
/// the message (a row of another chat under the key is a conflict, found by [`probe`]).
type Slot = Option<Message>;

/// Reads [`PROBE`] for `message` in the locked `chat`: its [`Slot`] and whether the chat has
/// message rows.
async fn probe(tx: &mut Tx, chat: &Chat, message: &NewMessage) -> Result<(Slot, bool)> {
    let key = message_key(&chat.id, &message.id);
    let row = tx
        .fetch_one(PROBE, args![key.as_str(), chat.id.as_str()])
        .await?;
    let has_rows = row.int("has_rows")? > 0;
    let slot = match row.opt_text("chat_id")? {
        None => None,
        Some(owner) if owner == chat.id => Some(message_from_row(&row)?),
        Some(_) => return Err(taken_by_another(&key, &message.id, &chat.id)),
    };
    Ok((slot, has_rows))
}

/// The [`Slot`] of `message` in the locked `chat`, its rows backfilled first when it has none.
async fn prepare_slot(tx: &mut Tx, chat: &mut Chat, message: &NewMessage) -> Result<Slot> {
    let (slot, has_rows) = probe(tx, chat, message).await?;
    if !has_rows && backfill_rows(tx, chat).await? {
        // The blob's messages are rows now; the message may be one of them.
        return Ok(probe(tx, chat, message).await?.0);
    }
    Ok(slot)
}

/// Upserts one message into a locked chat whose key holds `existing` (row now, or on SQLite
/// with the commit; blob in memory, the caller writes it).
async fn upsert_locked(
    tx: &mut Tx,
    chat: &mut Chat,
    message: NewMessage,
    existing: Slot,
) -> Result<Message> {
    let kind = if existing.is_some() {
        ChangeKind::Updated
    } else {
        ChangeKind::Created
    };
    let message = message.into_stored(chat, existing.as_ref(), validate::now())?;
    match tx.dialect() {
        // SQLite's write lock is held from `BEGIN IMMEDIATE`: the key the probe found free
        // or this chat's stays so, and the row can go with the blob's write.
        Dialect::Sqlite => tx.execute_later(UPSERT, row_args(&message)).await?,
        // PostgreSQL: another transaction may take the key meanwhile; the upsert says so.
        Dialect::Postgres => upsert_row(tx, &message).await?,
    }
    tx.announce(ChangeEvent::message(kind, &chat.user_id, &message));
    blob::upsert_message(&mut chat.chat, &message);
    chat.updated_at = chat.updated_at.max(message.updated_at);
    Ok(message)
}

impl SqlStore {
    /// A chat's messages from its rows, or from its blob when it has no rows.
    async fn chat_messages(&self, chat_id: &str) -> Result<Vec<Message>> {
        if !storable(chat_id) {
            return Err(Error::not_found("chat", chat_id));
        }
        let mut tx = self.begin("message", Mode::Read).await?;
        if tx
            .fetch_optional(CHAT_EXISTS, args![chat_id])
            .await?
            .is_none()
        {
            return Err(Error::not_found("chat", chat_id));
        }
        let rows = tx.fetch_all(LIST, args![chat_id]).await?;
        let mut messages = if rows.is_empty() {
            match tx.fetch_optional(CHAT, args![chat_id]).await? {
                Some(row) => blob::readable_messages(&chat_from_row(&row)?),
                None => Vec::new(),
            }
        } else {
            rows.iter().map(message_from_row).collect::<Result<_>>()?
        };
        tx.commit().await?;
        blob::sort_messages(&mut messages);
        Ok(messages)
    }

    /// [`SqlStore::chat_messages`] of several chats in one read transaction: which exist, their
    /// rows, and the blobs of those without rows, three statements in all.
    async fn chats_messages(&self, chat_ids: &[String]) -> Result<Vec<Vec<Message>>> {
        if chat_ids.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(id) = chat_ids.iter().find(|id| !storable(id)) {
            return Err(Error::not_found("chat", id.as_str()));
        }
        let any_of = |head: &'static str| {
            let mut d = Dyn::default();
            d.sql(head);
            for (k, id) in chat_ids.iter().enumerate() {
                d.sql(if k == 0 { "" } else { ", " }).bind(id.as_str());
            }
            d.sql(")").one_off();
            d
        };
        let mut tx = self.begin("message", Mode::Read).await?;
        let held: HashSet<String> = tx
            .fetch_dyn(any_of("SELECT id FROM chat WHERE id IN ("))
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect::<Result<_>>()?;
        if let Some(id) = chat_ids.iter().find(|id| !held.contains(id.as_str())) {
            return Err(Error::not_found("chat", id.as_str()));
        }
        let mut by_chat: std::collections::HashMap<String, Vec<Message>> =
            std::collections::HashMap::new();
        let rows = tx
            .fetch_dyn(any_of(concat!(
                "SELECT ",
                message_columns!(),
                " FROM chat_message WHERE chat_id IN ("
            )))
            .await?;
        for row in &rows {
            let m = message_from_row(row)?;
            by_chat.entry(m.chat_id.clone()).or_default().push(m);
        }
        let blob_only: Vec<&String> = chat_ids
            .iter()
            .filter(|id| !by_chat.contains_key(id.as_str()))
            .collect();
        if !blob_only.is_empty() {
            let mut d = Dyn::default();
            d.sql(
                "SELECT id, user_id, COALESCE(title, 'New Chat') AS title, chat, meta, archived, \
                 pinned, folder_id, share_id, created_at, updated_at FROM chat WHERE id IN (",
            );
            for (k, id) in blob_only.iter().enumerate() {
                d.sql(if k == 0 { "" } else { ", " }).bind(id.as_str());
            }
            d.sql(")").one_off();
            for row in tx.fetch_dyn(d).await? {
                let chat = chat_from_row(&row)?;
                by_chat.insert(chat.id.clone(), blob::readable_messages(&chat));
            }
        }
        tx.commit().await?;
        Ok(chat_ids
            .iter()
            .map(|id| {
                // An id given twice gets its list twice.
                let mut messages = by_chat.get(id.as_str()).cloned().unwrap_or_default();
                blob::sort_messages(&mut messages);
                messages
            })
            .collect())
    }
}

#[async_trait]
impl MessageRepo for SqlStore {
    async fn upsert(&self, message: NewMessage) -> Result<Message> {
        let mut tx = self.begin("message", Mode::Write).await?;
        let mut chat = chats::lock(&mut tx, &message.chat_id).await?;
        let slot = prepare_slot(&mut tx, &mut chat, &message).await?;
        let message = upsert_locked(&mut tx, &mut chat, message, slot).await?;
        chats::write_blob(&mut tx, &chat).await?;
        tx.commit().await?;
        Ok(message)
    }

    async fn upsert_many(&self, chat_id: &str, messages: Vec<NewMessage>) -> Result<Vec<Message>> {
        let mut tx = self.begin("message", Mode::Write).await?;
        let mut chat = chats::lock(&mut tx, chat_id).await?;
        backfill(&mut tx, &mut chat).await?;
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let (slot, _) = probe(&mut tx, &chat, &message).await?;
            out.push(upsert_locked(&mut tx, &mut chat, message, slot).await?);
        }
        chats::write_blob(&mut tx, &chat).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn get(&self, chat_id: &str, id: &str) -> Result<Message> {
        if !storable(chat_id) {
            return Err(Error::not_found("chat", chat_id));
        }
        let not_found = || Error::not_found("message", message_key(chat_id, id));
        let mut tx = self.begin("message", Mode::Read).await?;
        if tx
            .fetch_optional(CHAT_EXISTS, args![chat_id])
            .await?
            .is_none()
        {
            return Err(Error::not_found("chat", chat_id));
        }
        if !storable(id) {
            return Err(not_found());
        }
        let found = match tx
            .fetch_optional(GET, args![message_key(chat_id, id), chat_id])
            .await?
        {
            Some(row) => Some(message_from_row(&row)?),
            None if !has_rows(&mut tx, chat_id).await? => {
                match tx.fetch_optional(CHAT, args![chat_id]).await? {
                    Some(row) => blob::readable_messages(&chat_from_row(&row)?)
                        .into_iter()
                        .find(|m| m.id == id),
                    None => None,
                }
            }
            None => None,
        };
        tx.commit().await?;
        found.ok_or_else(not_found)
    }

    async fn list(&self, chat_id: &str) -> Result<Vec<Message>> {
        self.chat_messages(chat_id).await
    }

    async fn list_many(&self, chat_ids: &[String]) -> Result<Vec<Vec<Message>>> {
        self.chats_messages(chat_ids).await
    }

    async fn delete(&self, chat_id: &str, id: &str) -> Result<()> {
        let mut tx = self.begin("message", Mode::Write).await?;
        let mut chat = chats::lock(&mut tx, chat_id).await?;
        if !storable(id) {
            return Err(Error::not_found("message", message_key(chat_id, id)));
        }
        backfill(&mut tx, &mut chat).await?;
        if tx
            .execute(DELETE, args![message_key(chat_id, id), chat_id])
            .await?
            == 0
        {
            return Err(Error::not_found("message", message_key(chat_id, id)));
        }
        blob::remove_message(&mut chat.chat, id);
        tx.announce(ChangeEvent::message_ids(
            ChangeKind::Deleted,
            &chat.user_id,
            chat_id,
            id,
        ));
        chats::write_blob(&mut tx, &chat).await?;
        tx.commit().await
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        self.pool()
            .fetch_all("message", SCAN, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn scan_orphans(&self, after: Option<&str>, limit: u32) -> Result<Vec<Message>> {
        self.pool()
            .fetch_all(
                "message",
                SCAN_ORPHANS,
                args![cursor(after), i64::from(limit)],
            )
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }
}
