//! Chats: Open WebUI's `chat` table. The conversation blob is `chat.chat`, the tag set is the
//! id list `chat.meta.tags` (there is no join table), internal chats (`meta.internal = true`)
//! are left out of every list and count (unless the query's `include_internal` asks for them).
//!
//! Tag filters run on each dialect's JSON functions (`json_each` on SQLite, after a cheap text
//! prefilter; one jsonb containment `@>` for all the tags of a list on PostgreSQL,
//! `json_array_elements` elsewhere); only string elements of an array count as tags, the same
//! rule the domain value is read with. Lists use chatstore's `chatstore_chat_list` index
//! (see `indexes`): their `WHERE` carries its internal test and their order is its order. The title filter is Unicode case-insensitive: SQLite's
//! `lower()` and `LIKE` fold ASCII only, so it is applied in Rust to the rows the SQL filters
//! select (on both dialects, so both fold exactly like the memory backend).
//!
//! Writes lock the chat row (`FOR UPDATE` on PostgreSQL; SQLite write transactions begin
//! `IMMEDIATE`). On PostgreSQL a change to a user's tag set also takes that user's advisory
//! transaction lock first, since tag rows are shared by the user's chats.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chatstore_core::changes::{ChangeEvent, ChangeKind, field, patch_fields};
use chatstore_core::chats::{PreparedChat, unique_tags};
use chatstore_core::{
    Chat, ChatCursor, ChatOrder, ChatPatch, ChatQuery, ChatRepo, ChatSummary, Error, FolderFilter,
    NewChat, Page, Result, TagFilter, tag_id, validate,
};
use serde_json::{Map, Value};

use crate::pool::{
    Arg, Dialect, Dyn, List, Mode, Row, Sql, Tx, When, args, cursor, page_args, storable,
};
use crate::tag_links::sqlite_tag_links_kept;
use crate::{SqlStore, json, messages};

macro_rules! chat_columns {
    () => {
        "id, user_id, COALESCE(title, 'New Chat') AS title, chat, meta, archived, pinned, \
         folder_id, share_id, created_at, updated_at"
    };
}

macro_rules! summary_columns {
    () => {
        "id, user_id, COALESCE(title, 'New Chat') AS title, meta, archived, pinned, folder_id, \
         created_at, updated_at"
    };
}

/// SQLite: "the chat's `meta.tags` is an array holding the string parameter `$param`".
macro_rules! sqlite_has_tag {
    ($param:literal) => {
        concat!(
            "(json_type(chat.meta, '$.tags') = 'array' AND EXISTS (SELECT 1 FROM \
             json_each(chat.meta, '$.tags') AS t WHERE t.type = 'text' AND t.value = ",
            $param,
            "))"
        )
    };
}

/// PostgreSQL: the same test on the `json` column.
macro_rules! pg_has_tag {
    ($param:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM json_array_elements(CASE WHEN json_typeof(chat.meta -> 'tags') \
             = 'array' THEN chat.meta -> 'tags' ELSE '[]'::json END) AS t(v) \
             WHERE json_typeof(t.v) = 'string' AND (t.v #>> '{}') = ",
            $param,
            ")"
        )
    };
}

/// SQLite: the chat is not internal (`meta.internal` is not JSON `true`).
macro_rules! sqlite_not_internal {
    () => {
        "COALESCE(json_type(chat.meta, '$.internal'), '') <> 'true'"
    };
}

/// PostgreSQL: the same test.
macro_rules! pg_not_internal {
    () => {
        "COALESCE(json_typeof(chat.meta -> 'internal') = 'boolean' \
         AND (chat.meta ->> 'internal') = 'true', FALSE) = FALSE"
    };
}
/// SQLite: the chat is internal (the exact complement of [`sqlite_not_internal`]).
macro_rules! sqlite_internal {
    () => {
        "COALESCE(json_type(chat.meta, '$.internal'), '') = 'true'"
    };
}

/// PostgreSQL: the chat is internal (the exact complement of [`pg_not_internal`]).
macro_rules! pg_internal {
    () => {
        "COALESCE(json_typeof(chat.meta -> 'internal') = 'boolean' \
         AND (chat.meta ->> 'internal') = 'true', FALSE)"
    };
}
pub(crate) use {
    pg_has_tag, pg_internal, pg_not_internal, sqlite_has_tag, sqlite_internal, sqlite_not_internal,
};

/// The chat row's insert, its twelve parameters numbered `$1`-`$12`.
macro_rules! insert_chat {
    () => {
        "INSERT INTO chat (id, user_id, title, chat, meta, archived, pinned, folder_id, \
         share_id, created_at, updated_at, last_read_at, current_message_id, tasks) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, 'null')"
    };
}

const INSERT: Sql = Sql::both(insert_chat!());

/// PostgreSQL: [`INSERT`] with the transaction's changes recorded and notified.
const INSERT_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    insert_chat!(); "$13" "$14" "$15" "$16" "$17" "$18"
));

const GET: Sql = Sql::both(concat!(
    "SELECT ",
    chat_columns!(),
    " FROM chat WHERE id = $1"
));

const GET_FOR_UPDATE: Sql = Sql::each(
    concat!("SELECT ", chat_columns!(), " FROM chat WHERE id = $1"),
    concat!(
        "SELECT ",
        chat_columns!(),
        " FROM chat WHERE id = $1 FOR UPDATE"
    ),
);

/// PostgreSQL: serialises the tag changes of one user (tag rows are shared by the user's chats:
/// without it, removing an orphan tag could race with another chat taking the tag on).
/// SQLite write transactions are serialised already.
const LOCK_USER_TAGS: Sql = Sql::both("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

/// [`LOCK_USER_TAGS`] for several users in one round trip, in the order of the array (a
/// function scan of `unnest` yields its elements in order, and each row takes its lock as it
/// is produced).
const LOCK_USERS_TAGS: Sql = Sql::both(
    "SELECT pg_advisory_xact_lock(hashtextextended(owner, 0)) FROM unnest($1::text[]) AS owner",
);

const OWNER: Sql = Sql::both("SELECT user_id FROM chat WHERE id = $1");

/// A chat's whole update, its ten parameters numbered `$1`-`$10`.
macro_rules! update_chat {
    () => {
        "UPDATE chat SET title = $2, chat = $3, meta = $4, archived = $5, pinned = $6, \
         folder_id = $7, share_id = $8, updated_at = $9, current_message_id = $10 WHERE id = $1"
    };
}

const UPDATE: Sql = Sql::both(update_chat!());

/// PostgreSQL: [`UPDATE`] with the transaction's changes recorded and notified.
const UPDATE_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    update_chat!(); "$11" "$12" "$13" "$14" "$15" "$16"
));

/// A chat's blob, `updated_at` and `current_message_id` (after message changes).
macro_rules! update_blob {
    () => {
        "UPDATE chat SET chat = $2, updated_at = $3, current_message_id = $4 WHERE id = $1"
    };
}

const UPDATE_BLOB: Sql = Sql::both(update_blob!());

/// PostgreSQL: [`UPDATE_BLOB`] with the transaction's changes recorded and notified.
const UPDATE_BLOB_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    update_blob!(); "$5" "$6" "$7" "$8" "$9" "$10"
));

const UPDATE_META: Sql = Sql::both("UPDATE chat SET meta = $2 WHERE id = $1");

/// PostgreSQL: [`UPDATE_META`] with the transaction's changes recorded and notified.
const UPDATE_META_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    "UPDATE chat SET meta = $2 WHERE id = $1"; "$3" "$4" "$5" "$6" "$7" "$8"
));

const ENSURE_TAG: Sql = Sql::both(
    "INSERT INTO tag (id, name, user_id, meta) VALUES ($1, $2, $3, NULL) \
     ON CONFLICT (id, user_id) DO NOTHING",
);

/// Deletes tag `$1` of user `$2` unless a chat of the user, internal or not, carries it.
///
/// SQLite: one entry of `chatstore_chat_tag_owner` answers it (`tag_links`), while the
/// triggers that keep that table are on `chat`. Without them (a tool rebuilt `chat` since the
/// last open) the two kinds of chats are asked apart, each through an index of chatstore's:
/// the list index's entries of the user, where the text of `meta` is tested first where the
/// tag id is written verbatim there, then `chatstore_chat_internal`. PostgreSQL: the tag's
/// entries in `chatstore_chat_tags`, whose expression only this statement writes, then
/// `chatstore_chat_internal`.
const DELETE_ORPHAN_TAG: Sql = Sql::each(
    concat!(
        "DELETE FROM tag WHERE id = $1 AND user_id = $2 AND CASE WHEN ",
        sqlite_tag_links_kept!(),
        " THEN NOT EXISTS (SELECT 1 FROM chatstore_chat_tag WHERE user_id = $2 AND tag_id = $1) \
         ELSE NOT EXISTS (SELECT 1 FROM chat WHERE chat.user_id = $2 AND ",
        sqlite_not_internal!(),
        " AND ($1 GLOB '*[^A-Za-z0-9_.-]*' OR instr(chat.meta, '\"' || $1 || '\"') > 0) AND ",
        sqlite_has_tag!("$1"),
        ") AND NOT EXISTS (SELECT 1 FROM chat WHERE chat.user_id = $2 AND ",
        sqlite_internal!(),
        " AND ",
        sqlite_has_tag!("$1"),
        ") END"
    ),
    concat!(
        "DELETE FROM tag WHERE id = $1 AND user_id = $2 AND NOT EXISTS (SELECT 1 FROM chat \
         WHERE chat.user_id = $2 AND ",
        pg_not_internal!(),
        " AND (chat.meta::jsonb -> 'tags') @> jsonb_build_array($1::text)) \
         AND NOT EXISTS (SELECT 1 FROM chat WHERE chat.user_id = $2 AND ",
        pg_internal!(),
        " AND ",
        pg_has_tag!("$1"),
        ")"
    ),
);

/// The text of the statement that deletes tag `$1` of user `$2` when no chat of the user
/// carries it any more, in `dialect`. Public so that a raw baseline can send exactly this
/// statement.
pub fn delete_orphan_tag_sql(dialect: crate::Dialect) -> &'static str {
    DELETE_ORPHAN_TAG.text(dialect)
}

const DELETE_MESSAGES: Sql = Sql::both("DELETE FROM chat_message WHERE chat_id = $1");

const DELETE: Sql = Sql::both("DELETE FROM chat WHERE id = $1");

const DELETE_USER_MESSAGES: Sql =
    Sql::both("DELETE FROM chat_message WHERE chat_id IN (SELECT id FROM chat WHERE user_id = $1)");

const DELETE_USER_CHATS: Sql = Sql::both("DELETE FROM chat WHERE user_id = $1");

const DELETE_USER_TAGS: Sql = Sql::both("DELETE FROM tag WHERE user_id = $1");

/// The ids of a scan page, read without decoding the rows.
pub(crate) const SCAN_IDS: Sql = Sql::each(
    "SELECT id FROM chat WHERE id > $1 ORDER BY id LIMIT $2",
    "SELECT id FROM chat WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
);

pub(crate) const SCAN: Sql = Sql::each(
    concat!(
        "SELECT ",
        chat_columns!(),
        " FROM chat WHERE id > $1 ORDER BY id LIMIT $2"
    ),
    concat!(
        "SELECT ",
        chat_columns!(),
        " FROM chat WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2"
    ),
);

/// Splits a stored `chat.meta` into the domain meta (without `tags`) and the tag set (the
/// string elements of `meta.tags` when it is an array).
pub(crate) fn split_meta(text: Option<String>) -> Result<(Map<String, Value>, BTreeSet<String>)> {
    let mut meta = json::parse_object("chat.meta", text)?;
    let tags = match meta.remove("tags") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => BTreeSet::new(),
    };
    Ok((meta, tags))
}

/// The stored `chat.meta` of a chat: its meta plus `tags` (sorted ids) when it has any.
fn meta_text(chat: &Chat) -> String {
    let mut meta = chat.meta.clone();
    if !chat.tags.is_empty() {
        meta.insert(
            "tags".to_owned(),
            Value::Array(chat.tags.iter().cloned().map(Value::String).collect()),
        );
    }
    json::to_text(&Value::Object(meta))
}

/// [`meta_text`] as a JSON argument.
fn meta_arg(chat: &Chat) -> Arg {
    Arg::Json(Some(meta_text(chat)))
}

/// `chat.current_message_id`: the blob's `history.currentId`.
fn current_message_id(blob: &Value) -> Option<String> {
    blob.get("history")
        .and_then(|h| h.get("currentId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

pub(crate) fn chat_from_row(row: &Row) -> Result<Chat> {
    let (meta, tags) = split_meta(row.json_text("meta")?)?;
    Ok(Chat {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        title: row.text("title")?,
        chat: json::parse("chat.chat", row.json_text("chat")?)?
            .unwrap_or_else(|| Value::Object(Map::new())),
        meta,
        tags,
        archived: row.flag("archived", false)?,
        pinned: row.flag("pinned", false)?,
        folder_id: row.opt_text("folder_id")?,
        share_id: row.opt_text("share_id")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

fn summary_from_row(row: &Row) -> Result<ChatSummary> {
    let (_, tags) = split_meta(row.json_text("meta")?)?;
    Ok(ChatSummary {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        title: row.text("title")?,
        tags,
        archived: row.flag("archived", false)?,
        pinned: row.flag("pinned", false)?,
        folder_id: row.opt_text("folder_id")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// The chat with this id, locked for the rest of the transaction (`FOR UPDATE` on
/// PostgreSQL; SQLite write transactions hold the database lock already).
pub(crate) async fn lock(tx: &mut Tx, id: &str) -> Result<Chat> {
    if !storable(id) {
        return Err(Error::not_found("chat", id));
    }
    match tx.fetch_optional(GET_FOR_UPDATE, args![id]).await? {
        Some(row) => chat_from_row(&row),
        None => Err(Error::not_found("chat", id)),
    }
}

/// Takes the tag lock of `user_id` for the rest of the transaction (PostgreSQL; a no-op on
/// SQLite). Taken before any row lock, so that lock order is always the same.
pub(crate) async fn lock_user_tags(tx: &mut Tx, user_id: &str) -> Result<()> {
    if tx.dialect() == Dialect::Postgres {
        tx.execute(LOCK_USER_TAGS, args![user_id]).await?;
    }
    Ok(())
}

/// [`lock`] for a change of the chat's tags: the owner's tag lock first, then the row.
async fn lock_for_tags(tx: &mut Tx, id: &str) -> Result<Chat> {
    if tx.dialect() == Dialect::Postgres
        && storable(id)
        && let Some(row) = tx.fetch_optional(OWNER, args![id]).await?
    {
        lock_user_tags(tx, &row.text("user_id")?).await?;
    }
    lock(tx, id).await
}

/// Takes the tag locks of the owners of chats about to be created, in one order (sorted, so
/// two batches of the same owners cannot deadlock) and one round trip.
async fn lock_owners(tx: &mut Tx, chats: &[NewChat]) -> Result<()> {
    if tx.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let owners: BTreeSet<&str> = chats
        .iter()
        .filter(|c| storable(&c.user_id))
        .map(|c| c.user_id.as_str())
        .collect();
    if !owners.is_empty() {
        let owners = owners.into_iter().map(str::to_owned).collect();
        tx.execute(LOCK_USERS_TAGS, vec![Arg::List(List::Text(owners))])
            .await?;
    }
    Ok(())
}

/// Writes the blob, `updated_at` and `current_message_id` of a chat (after message changes).
pub(crate) async fn write_blob(tx: &mut Tx, chat: &Chat) -> Result<()> {
    tx.execute_recording(
        When::Later,
        UPDATE_BLOB,
        UPDATE_BLOB_RECORDED,
        args![
            chat.id.as_str(),
            Arg::Json(Some(json::to_text(&chat.chat))),
            chat.updated_at,
            current_message_id(&chat.chat),
        ],
    )
    .await
}

/// Creates the tag row `(id, user_id)` named `name` unless it exists.
pub(crate) async fn ensure_tag(tx: &mut Tx, user_id: &str, id: &str, name: &str) -> Result<()> {
    tx.execute_later(ENSURE_TAG, args![id, name, user_id]).await
}

/// [`ensure_tag`] for each `(id, name)` pair, in one statement. A tag change re-ensures every
/// tag the chat keeps (a chat Open WebUI wrote may carry a tag without its row): one
/// statement a tag cost SQLite a round trip to its worker each, half of an add + remove.
async fn ensure_tags(tx: &mut Tx, user_id: &str, pairs: &[(String, String)]) -> Result<()> {
    match pairs {
        [] => Ok(()),
        [(id, name)] => ensure_tag(tx, user_id, id, name).await,
        _ => {
            let rows: Vec<(&str, &str, &str)> = pairs
                .iter()
                .map(|(id, name)| (id.as_str(), name.as_str(), user_id))
                .collect();
            ensure_tag_rows(tx, &rows).await
        }
    }
}

/// [`ENSURE_TAG`] for `(id, name, user_id)` rows of any users: one array a column on
/// PostgreSQL, multi-row `VALUES` on SQLite, one statement per [`ROWS_PER_UNNEST`] or
/// [`TAGS_PER_STATEMENT`] rows. A short statement (a chat's tags) is prepared once and kept;
/// a batch's is not.
async fn ensure_tag_rows(tx: &mut Tx, rows: &[(&str, &str, &str)]) -> Result<()> {
    match tx.dialect() {
        Dialect::Postgres => {
            for chunk in rows.chunks(ROWS_PER_UNNEST) {
                tx.execute(ENSURE_TAGS_UNNEST, tag_columns(chunk.iter().copied()))
                    .await?;
            }
        }
        Dialect::Sqlite => {
            for chunk in rows.chunks(TAGS_PER_STATEMENT) {
                let mut d = Dyn::default();
                d.sql(ENSURE_TAGS_HEAD);
                for (k, (id, name, user_id)) in chunk.iter().enumerate() {
                    d.sql(if k == 0 { "(" } else { ", (" });
                    d.bind(*id)
                        .sql(", ")
                        .bind(*name)
                        .sql(", ")
                        .bind(*user_id)
                        .sql(", NULL)");
                }
                d.sql(ENSURE_TAGS_TAIL);
                if chunk.len() > KEPT_STATEMENT_ROWS {
                    d.one_off();
                }
                tx.execute_dyn_later(d).await?;
            }
        }
    }
    Ok(())
}

/// Deletes those of `ids` that no chat of the user carries any more.
async fn remove_orphan_tags<'a>(
    tx: &mut Tx,
    user_id: &str,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<()> {
    for id in ids {
        tx.execute_later(DELETE_ORPHAN_TAG, args![id.as_str(), user_id])
            .await?;
    }
    Ok(())
}

async fn insert(tx: &mut Tx, chat: NewChat) -> Result<Chat> {
    let PreparedChat {
        chat,
        messages,
        tags,
    } = chat.prepare(validate::now())?;
    // Announced first, so that the feed's statement rides on the chat's insert (one round trip
    // fewer at commit); nothing is notified unless the transaction commits.
    tx.announce(ChangeEvent::chat(ChangeKind::Created, &chat, &[]));
    tx.execute_recording(
        When::Now,
        INSERT,
        INSERT_RECORDED,
        args![
            chat.id.as_str(),
            chat.user_id.as_str(),
            chat.title.as_str(),
            Arg::Json(Some(json::to_text(&chat.chat))),
            meta_arg(&chat),
            chat.archived,
            chat.pinned,
            &chat.folder_id,
            &chat.share_id,
            chat.created_at,
            chat.updated_at,
            current_message_id(&chat.chat),
        ],
    )
    .await?;
    for message in &messages {
        messages::upsert_row(tx, message).await?;
    }
    for (id, name) in &tags {
        ensure_tag(tx, &chat.user_id, id, name).await?;
    }
    Ok(chat)
}

/// Chat rows per multi-row statement of [`insert_many`] on SQLite (12 parameters a row).
const CHATS_PER_STATEMENT: usize = 2_000;

/// Tag rows per multi-row statement of [`insert_many`] on SQLite (3 parameters a row).
const TAGS_PER_STATEMENT: usize = 5_000;

/// Multi-row statements of at most this many rows are prepared once and kept (a chat's tags
/// come back in the same few shapes); longer ones, a batch's, are prepared for one use.
const KEPT_STATEMENT_ROWS: usize = 16;

/// Rows per `unnest` statement of [`insert_many`] on PostgreSQL: no parameter limit applies
/// (one array a column), this only bounds the size of one message to the server.
const ROWS_PER_UNNEST: usize = 5_000;

/// [`INSERT`] for many rows: the head before the rows' values.
const INSERT_MANY_HEAD: &str = "INSERT INTO chat (id, user_id, title, chat, meta, archived, \
     pinned, folder_id, share_id, created_at, updated_at, last_read_at, current_message_id, \
     tasks) VALUES ";

/// PostgreSQL: [`INSERT`] for many rows, one array a column, unnested side by side in the
/// select list (the arrays have one length, so the rows come out in their order; in the select
/// list `unnest` hands over one row at a time, where in `FROM` it would first copy every
/// array into a tuple store). Its text does not depend on the row count, so it is prepared
/// once per connection and the server neither parses nor plans a row's values; JSON travels
/// as text and the cast validates it as binding a `json` parameter does.
const INSERT_UNNEST: Sql = Sql::both(
    "INSERT INTO chat (id, user_id, title, chat, meta, archived, pinned, folder_id, share_id, \
     created_at, updated_at, last_read_at, current_message_id, tasks) \
     SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), \
     unnest($4::text[])::json, unnest($5::text[])::json, unnest($6::boolean[]), \
     unnest($7::boolean[]), unnest($8::text[]), unnest($9::text[]), unnest($10::bigint[]), \
     unnest($11::bigint[]), unnest($11::bigint[]), unnest($12::text[]), 'null'::json",
);

/// [`ENSURE_TAG`] for many rows: the head before the rows' values, and the tail.
const ENSURE_TAGS_HEAD: &str = "INSERT INTO tag (id, name, user_id, meta) VALUES ";
const ENSURE_TAGS_TAIL: &str = " ON CONFLICT (id, user_id) DO NOTHING";

/// PostgreSQL: [`ENSURE_TAG`] for many rows of any users, one array a column (as in
/// [`INSERT_UNNEST`]): a batch's tag rows, and a tag change's tags of one chat.
const ENSURE_TAGS_UNNEST: Sql = Sql::both(
    "INSERT INTO tag (id, name, user_id, meta) \
     SELECT unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), NULL \
     ON CONFLICT (id, user_id) DO NOTHING",
);

/// Creates several chats with one statement per table (the chat rows, then every message
/// row, then every tag row the chats name; more only past [`ROWS_PER_UNNEST`] rows on
/// PostgreSQL or the parameter limit on SQLite): the rows [`insert`] writes for each, in a
/// few round trips instead of several per chat.
async fn insert_many(tx: &mut Tx, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
    let now = validate::now();
    let prepared = chats
        .into_iter()
        .map(|c| c.prepare(now))
        .collect::<Result<Vec<PreparedChat>>>()?;
    match tx.dialect() {
        Dialect::Postgres => {
            for chunk in prepared.chunks(ROWS_PER_UNNEST) {
                tx.execute(INSERT_UNNEST, chat_columns(chunk)).await?;
            }
        }
        Dialect::Sqlite => {
            for chunk in prepared.chunks(CHATS_PER_STATEMENT) {
                tx.execute_dyn(chat_values(chunk)).await?;
            }
        }
    }
    let messages: Vec<&chatstore_core::Message> =
        prepared.iter().flat_map(|p| &p.messages).collect();
    messages::upsert_rows(tx, &messages).await?;
    // Each tag once, named as the first chat naming it names it (what `ensure_tag` per chat
    // leaves).
    let mut seen = BTreeSet::new();
    let tags: Vec<(&str, &str, &str)> = prepared
        .iter()
        .flat_map(|p| {
            p.tags
                .iter()
                .map(|(id, name)| (id.as_str(), name.as_str(), p.chat.user_id.as_str()))
        })
        .filter(|(id, _, user)| seen.insert((*id, *user)))
        .collect();
    ensure_tag_rows(tx, &tags).await?;
    Ok(prepared
        .into_iter()
        .map(|p| {
            tx.announce(ChangeEvent::chat(ChangeKind::Created, &p.chat, &[]));
            p.chat
        })
        .collect())
}

/// The arguments of [`ENSURE_TAGS_UNNEST`] for `(id, name, user_id)` rows: one array a column.
fn tag_columns<'a>(rows: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> Vec<Arg> {
    let (mut ids, mut names, mut users) = (vec![], vec![], vec![]);
    for (id, name, user_id) in rows {
        ids.push(id.to_owned());
        names.push(name.to_owned());
        users.push(user_id.to_owned());
    }
    [ids, names, users].map(|v| Arg::List(List::Text(v))).into()
}

/// The arguments of [`INSERT_UNNEST`] for these chats: one array a column.
fn chat_columns(chunk: &[PreparedChat]) -> Vec<Arg> {
    let chats = || chunk.iter().map(|p| &p.chat);
    let text = |f: fn(&Chat) -> String| Arg::List(List::Text(chats().map(f).collect()));
    let opt_text =
        |f: fn(&Chat) -> Option<String>| Arg::List(List::OptText(chats().map(f).collect()));
    let flag = |f: fn(&Chat) -> bool| Arg::List(List::Bool(chats().map(f).collect()));
    let int = |f: fn(&Chat) -> i64| Arg::List(List::Int(chats().map(f).collect()));
    vec![
        text(|c| c.id.clone()),
        text(|c| c.user_id.clone()),
        text(|c| c.title.clone()),
        text(|c| json::to_text(&c.chat)),
        text(meta_text),
        flag(|c| c.archived),
        flag(|c| c.pinned),
        opt_text(|c| c.folder_id.clone()),
        opt_text(|c| c.share_id.clone()),
        int(|c| c.created_at),
        int(|c| c.updated_at),
        opt_text(|c| current_message_id(&c.chat)),
    ]
}

/// A multi-row [`INSERT`] of these chats (SQLite).
fn chat_values(chunk: &[PreparedChat]) -> Dyn {
    let mut d = Dyn::default();
    d.sql(INSERT_MANY_HEAD);
    for (k, p) in chunk.iter().enumerate() {
        let chat = &p.chat;
        d.sql(if k == 0 { "(" } else { ", (" });
        d.bind(chat.id.as_str())
            .sql(", ")
            .bind(chat.user_id.as_str())
            .sql(", ")
            .bind(chat.title.as_str())
            .sql(", ")
            .bind(Arg::Json(Some(json::to_text(&chat.chat))))
            .sql(", ")
            .bind(meta_arg(chat))
            .sql(", ")
            .bind(chat.archived)
            .sql(", ")
            .bind(chat.pinned)
            .sql(", ")
            .bind(&chat.folder_id)
            .sql(", ")
            .bind(&chat.share_id)
            .sql(", ")
            .bind(chat.created_at)
            .sql(", ")
            .bind(chat.updated_at)
            .sql(", ")
            .bind(chat.updated_at)
            .sql(", ")
            .bind(current_message_id(&chat.chat))
            .sql(", 'null')");
    }
    d.one_off();
    d
}

async fn delete_locked(tx: &mut Tx, chat: &Chat) -> Result<()> {
    tx.execute(DELETE_MESSAGES, args![chat.id.as_str()]).await?;
    tx.execute(DELETE, args![chat.id.as_str()]).await?;
    tx.announce(ChangeEvent::chat(ChangeKind::Deleted, chat, &[]));
    remove_orphan_tags(tx, &chat.user_id, &chat.tags).await
}

/// Replaces the tags of a locked chat: ensures the new tag rows, writes `meta.tags`, removes
/// the tags it dropped that no other chat of the user carries. `updated_at` is kept.
async fn set_locked_tags(
    tx: &mut Tx,
    mut chat: Chat,
    pairs: Vec<(String, String)>,
) -> Result<Chat> {
    let old = std::mem::take(&mut chat.tags);
    ensure_tags(tx, &chat.user_id, &pairs).await?;
    chat.tags = pairs.into_iter().map(|(id, _)| id).collect();
    // Announced first, so that the meta write carries it (one round trip fewer on PostgreSQL).
    tx.announce(ChangeEvent::chat(
        ChangeKind::Updated,
        &chat,
        &[field::TAGS],
    ));
    tx.execute_recording(
        When::Later,
        UPDATE_META,
        UPDATE_META_RECORDED,
        args![chat.id.as_str(), meta_arg(&chat)],
    )
    .await?;
    let removed: Vec<String> = old.difference(&chat.tags).cloned().collect();
    remove_orphan_tags(tx, &chat.user_id, &removed).await?;
    Ok(chat)
}

/// The `WHERE` clause of a chat list (everything but the title filter).
fn push_filters(d: &mut Dyn, dialect: Dialect, query: &ChatQuery, tag_ids: &[String]) {
    let sqlite = dialect == Dialect::Sqlite;
    d.sql(" FROM chat WHERE chat.user_id = ")
        .bind(query.user_id.as_str());
    if !query.include_internal {
        d.sql(" AND ").sql(if sqlite {
            sqlite_not_internal!()
        } else {
            pg_not_internal!()
        });
    }
    if let Some(archived) = query.archived {
        d.sql(" AND COALESCE(chat.archived, FALSE) = ")
            .bind(archived);
    }
    if let Some(pinned) = query.pinned {
        d.sql(" AND COALESCE(chat.pinned, FALSE) = ").bind(pinned);
    }
    match &query.folder {
        FolderFilter::Any => {}
        FolderFilter::NoFolder => {
            d.sql(" AND chat.folder_id IS NULL");
        }
        FolderFilter::In(folder) => {
            d.sql(" AND chat.folder_id = ").bind(folder.as_str());
        }
    }
    match &query.tags {
        TagFilter::Any => {}
        TagFilter::AllOf(_) if sqlite => {
            // The cheap text test first (the JSON test parses `meta` once per tag and row).
            for id in tag_ids.iter().filter(|id| written_verbatim(id)) {
                d.sql(" AND instr(chat.meta, ")
                    .bind(format!("\"{id}\""))
                    .sql(") > 0");
            }
            for id in tag_ids {
                d.sql(
                    " AND json_type(chat.meta, '$.tags') = 'array' AND EXISTS (SELECT 1 FROM \
                     json_each(chat.meta, '$.tags') AS t WHERE t.type = 'text' AND t.value = ",
                );
                d.bind(id.as_str()).sql(")");
            }
        }
        TagFilter::AllOf(_) => {
            // jsonb containment of an array of strings: `tags` is an array holding each of
            // them as a string element (a nested array or an object does not match), one
            // parse per row for all the tags.
            if !tag_ids.is_empty() {
                d.sql(" AND (chat.meta -> 'tags')::jsonb @> ")
                    .bind(Value::from(tag_ids.to_vec()).to_string())
                    .sql("::jsonb");
            }
        }
        TagFilter::Untagged => {
            d.sql(if sqlite {
                " AND NOT (COALESCE(json_type(chat.meta, '$.tags'), '') = 'array' AND EXISTS \
                 (SELECT 1 FROM json_each(chat.meta, '$.tags') AS t WHERE t.type = 'text'))"
            } else {
                " AND NOT EXISTS (SELECT 1 FROM json_array_elements(CASE WHEN \
                 json_typeof(chat.meta -> 'tags') = 'array' THEN chat.meta -> 'tags' \
                 ELSE '[]'::json END) AS t(v) WHERE json_typeof(t.v) = 'string')"
            });
        }
    }
    if let Some(cursor) = &query.after {
        push_cursor(d, dialect, cursor);
    }
}

/// Keyset paging: the chats after `cursor` in the list's order ([`order_by`]), written as a
/// bound on the order's key and then the tie on it, so the list index starts its range at
/// the cursor.
fn push_cursor(d: &mut Dyn, dialect: Dialect, cursor: &ChatCursor) {
    let pg = dialect == Dialect::Postgres;
    let (key, after, value): (&'static str, &'static str, Arg) = match cursor {
        ChatCursor::Updated { updated_at, .. } => ("chat.updated_at", " <", (*updated_at).into()),
        ChatCursor::Created { created_at, .. } => ("chat.created_at", " <", (*created_at).into()),
        ChatCursor::Title { title, .. } if pg => (
            "COALESCE(chat.title, 'New Chat') COLLATE \"C\"",
            " >",
            title.as_str().into(),
        ),
        ChatCursor::Title { title, .. } => (
            "COALESCE(chat.title, 'New Chat')",
            " >",
            title.as_str().into(),
        ),
    };
    d.sql(" AND ")
        .sql(key)
        .sql(after)
        .sql("= ")
        .bind(value.clone());
    d.sql(" AND (").sql(key).sql(after).sql(" ").bind(value);
    d.sql(if pg {
        " OR chat.id COLLATE \"C\" > "
    } else {
        " OR chat.id > "
    })
    .bind(cursor.id())
    .sql(")");
}

/// Whether every JSON writer puts the tag id `id` into `meta`'s text as `"id"`, so the text
/// test can only pass over a chat that has it: letters, digits, `_`, `-` and `.` are never
/// escaped, while `/`, `<`, `>`, `&` and anything non-ASCII may be.
fn written_verbatim(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The title search's SQL prefilter, a superset of Rust's match
/// (`title.to_lowercase().contains(wanted)`, `wanted` already lower case): a title of
/// ASCII only is matched exactly in SQL (ASCII lower case is Unicode lower case there); any
/// other title passes, and Rust decides. The match then reads only the matching
/// rows (and the non-ASCII titles) instead of every chat of the user.
fn push_title_prefilter(d: &mut Dyn, dialect: Dialect, wanted: &str) {
    if dialect == Dialect::Sqlite {
        // SQLite's lower() folds ASCII only. A title whose character count is its byte count
        // is ASCII (a NUL ends the character count early: such a title goes to Rust too).
        d.sql(
            " AND (length(COALESCE(chat.title, 'New Chat')) \
             <> length(CAST(COALESCE(chat.title, 'New Chat') AS BLOB)) \
             OR instr(lower(COALESCE(chat.title, 'New Chat')), ",
        );
    } else {
        // lower() in the "C" collation folds ASCII only, whatever the database's locale (in a
        // Turkish one `I` would become a dotless i); translate() did the same at ten times the
        // cost.
        d.sql(
            " AND (COALESCE(chat.title, 'New Chat') ~ '[^ -~]' \
             OR strpos(lower(COALESCE(chat.title, 'New Chat') COLLATE \"C\"), ",
        );
    }
    d.bind(wanted.to_owned()).sql(") > 0)");
}

/// `ORDER BY` of a chat list; text compares bytewise on both dialects (as Rust does).
fn order_by(dialect: Dialect, order: ChatOrder) -> &'static str {
    match (dialect, order) {
        (Dialect::Sqlite, ChatOrder::UpdatedDesc) => " ORDER BY chat.updated_at DESC, chat.id",
        (Dialect::Sqlite, ChatOrder::CreatedDesc) => " ORDER BY chat.created_at DESC, chat.id",
        (Dialect::Sqlite, ChatOrder::TitleAsc) => {
            " ORDER BY COALESCE(chat.title, 'New Chat'), chat.id"
        }
        (Dialect::Postgres, ChatOrder::UpdatedDesc) => {
            " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\""
        }
        (Dialect::Postgres, ChatOrder::CreatedDesc) => {
            " ORDER BY chat.created_at DESC NULLS LAST, chat.id COLLATE \"C\""
        }
        (Dialect::Postgres, ChatOrder::TitleAsc) => {
            " ORDER BY COALESCE(chat.title, 'New Chat') COLLATE \"C\", chat.id COLLATE \"C\""
        }
    }
}

impl SqlStore {
    /// One page of a chat list, and its total when `with_total`. Without it nothing counts:
    /// the plain list reads the index entries up to the page's end, the title search reads
    /// candidates only until the page is full.
    async fn list_page(
        &self,
        query: &ChatQuery,
        with_total: bool,
    ) -> Result<(Vec<ChatSummary>, Option<u64>)> {
        let tag_ids = query.tag_ids();
        let dialect = self.dialect();
        let wanted = query.title.as_ref().map(|t| t.to_lowercase());
        if wanted.is_none() {
            // One statement sees one snapshot by itself: no transaction, two round trips
            // fewer (`BEGIN`, `COMMIT`). The total rides on every row of the page; an empty
            // page has no row to carry it, and falls through to the count in a transaction.
            let rows = self
                .pool()
                .fetch_dyn("chat", plain_page(dialect, query, &tag_ids, with_total))
                .await?;
            let total = match rows.first() {
                Some(row) if with_total => Some(count_of(row.int("total")?)),
                _ => None,
            };
            if !with_total || total.is_some() {
                let items = rows.iter().map(summary_from_row).collect::<Result<_>>()?;
                return Ok((items, total));
            }
        }
        let mut tx = self.begin("chat", Mode::Read).await?;
        let page = if let (Some(wanted), false, Some(limit)) =
            (&wanted, with_total, query.page.limit)
        {
            let items = title_page(&mut tx, query, &tag_ids, wanted, limit).await?;
            (items, None)
        } else if let Some(wanted) = &wanted {
            let (ids, total) = title_matches(&mut tx, query, &tag_ids, wanted, with_total).await?;
            let items = if ids.is_empty() {
                Vec::new()
            } else {
                let mut rows = Dyn::default();
                rows.sql(concat!(
                    "SELECT ",
                    summary_columns!(),
                    " FROM chat WHERE chat.id IN "
                ));
                if dialect == Dialect::Sqlite {
                    rows.sql("(SELECT value FROM json_each(")
                        .bind(Value::Array(ids).to_string())
                        .sql("))");
                } else {
                    rows.sql("(SELECT json_array_elements_text(")
                        .bind(Value::Array(ids).to_string())
                        .sql("::json))");
                }
                rows.sql(order_by(dialect, query.order));
                tx.fetch_dyn(rows)
                    .await?
                    .iter()
                    .map(summary_from_row)
                    .collect::<Result<_>>()?
            };
            (items, total)
        } else {
            // A plain list here is one whose page came back empty above: the count and the
            // page again, in one snapshot (the page may have filled meanwhile).
            let mut count = Dyn::default();
            count.sql("SELECT count(*) AS n");
            push_filters(&mut count, dialect, query, &tag_ids);
            let n = match tx.fetch_dyn(count).await?.first() {
                Some(row) => row.int("n")?,
                None => 0,
            };
            let total = Some(count_of(n));
            let items = tx
                .fetch_dyn(plain_page(dialect, query, &tag_ids, false))
                .await?
                .iter()
                .map(summary_from_row)
                .collect::<Result<_>>()?;
            (items, total)
        };
        tx.commit().await?;
        Ok(page)
    }
}

/// A count read from the database as a total.
fn count_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or_default()
}

/// The statement of a plain list's page (no title search); `with_total` adds the count of
/// every match to each row as `total`, an uncorrelated subquery both dialects run once.
fn plain_page(dialect: Dialect, query: &ChatQuery, tag_ids: &[String], with_total: bool) -> Dyn {
    let (limit, offset) = page_args(&query.page);
    let mut select = Dyn::default();
    select.sql(concat!("SELECT ", summary_columns!()));
    if with_total {
        select.sql(", (SELECT count(*)");
        push_filters(&mut select, dialect, query, tag_ids);
        select.sql(") AS total");
    }
    if dialect == Dialect::Postgres {
        // The page's ids from the list index alone (an offset skips index entries, not
        // table rows), then its rows by id.
        let mut ids = select;
        ids.sql(" FROM chat WHERE chat.id IN (SELECT chat.id");
        push_filters(&mut ids, dialect, query, tag_ids);
        ids.sql(order_by(dialect, query.order))
            .sql(" LIMIT ")
            .bind(limit)
            .sql(" OFFSET ")
            .bind(offset)
            .sql(")")
            .sql(order_by(dialect, query.order));
        ids
    } else {
        push_filters(&mut select, dialect, query, tag_ids);
        select
            .sql(order_by(dialect, query.order))
            .sql(" LIMIT ")
            .bind(limit)
            .sql(" OFFSET ")
            .bind(offset);
        select
    }
}

/// The ids of a title search's matches, in order, sliced to its page, and their number when
/// `with_total`: the ids and titles the SQL filters and the title prefilter select, the exact
/// Unicode title match in Rust, so a match costs a short row, not a whole summary.
async fn title_matches(
    tx: &mut Tx,
    query: &ChatQuery,
    tag_ids: &[String],
    wanted: &str,
    with_total: bool,
) -> Result<(Vec<Value>, Option<u64>)> {
    let dialect = tx.dialect();
    let mut d = Dyn::default();
    d.sql("SELECT chat.id AS id, COALESCE(chat.title, 'New Chat') AS title");
    push_filters(&mut d, dialect, query, tag_ids);
    push_title_prefilter(&mut d, dialect, wanted);
    d.sql(order_by(dialect, query.order));
    let mut matched = Vec::new();
    for row in tx.fetch_dyn(d).await? {
        if row.text("title")?.to_lowercase().contains(wanted) {
            matched.push(Value::String(row.text("id")?));
        }
    }
    let total = matched.len() as u64;
    Ok((query.page.slice(matched), with_total.then_some(total)))
}

/// A title search's page without its total: the summaries' columns of the candidates (the SQL
/// filters and the title prefilter, which is exact for ASCII titles) in slices of the list's
/// order, the first as long as the page's end, each next one twice the last, until the page
/// is full or the candidates run out. Only the page's matches are decoded, and on SQLite the
/// list index answers it alone, so a search costs the candidates up to its page's end, not
/// every match of the user.
async fn title_page(
    tx: &mut Tx,
    query: &ChatQuery,
    tag_ids: &[String],
    wanted: &str,
    limit: u64,
) -> Result<Vec<ChatSummary>> {
    let dialect = tx.dialect();
    let offset = query.page.offset;
    let needed = offset.saturating_add(limit);
    let mut items = Vec::new();
    let mut matched: u64 = 0;
    let mut read: i64 = 0;
    let mut slice = i64::try_from(needed).unwrap_or(i64::MAX);
    loop {
        let mut d = Dyn::default();
        d.sql(concat!("SELECT ", summary_columns!()));
        push_filters(&mut d, dialect, query, tag_ids);
        push_title_prefilter(&mut d, dialect, wanted);
        d.sql(order_by(dialect, query.order))
            .sql(" LIMIT ")
            .bind(slice)
            .sql(" OFFSET ")
            .bind(read);
        let rows = tx.fetch_dyn(d).await?;
        let got = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        for row in &rows {
            if !row.text("title")?.to_lowercase().contains(wanted) {
                continue;
            }
            matched += 1;
            if matched > offset {
                items.push(summary_from_row(row)?);
                if matched >= needed {
                    return Ok(items);
                }
            }
        }
        if got < slice {
            return Ok(items);
        }
        read = read.saturating_add(got);
        slice = slice.saturating_mul(2);
    }
}

#[async_trait]
impl ChatRepo for SqlStore {
    async fn create(&self, chat: NewChat) -> Result<Chat> {
        let mut tx = self.begin("chat", Mode::Write).await?;
        lock_owners(&mut tx, std::slice::from_ref(&chat)).await?;
        let chat = insert(&mut tx, chat).await?;
        tx.commit().await?;
        Ok(chat)
    }

    async fn create_many(&self, chats: Vec<NewChat>) -> Result<Vec<Chat>> {
        let mut tx = self.begin("chat", Mode::Write).await?;
        lock_owners(&mut tx, &chats).await?;
        let out = insert_many(&mut tx, chats).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn get(&self, id: &str) -> Result<Chat> {
        if !storable(id) {
            return Err(Error::not_found("chat", id));
        }
        match self.pool().fetch_optional("chat", GET, args![id]).await? {
            Some(row) => chat_from_row(&row),
            None => Err(Error::not_found("chat", id)),
        }
    }

    async fn update(&self, id: &str, patch: ChatPatch) -> Result<Chat> {
        let mut tx = self.begin("chat", Mode::Write).await?;
        let mut chat = lock(&mut tx, id).await?;
        patch.apply(&mut chat, validate::now())?;
        // Announced first, so that the feed's statement rides on the update (PostgreSQL).
        tx.announce(ChangeEvent::chat(
            ChangeKind::Updated,
            &chat,
            &patch_fields(&patch),
        ));
        tx.execute_recording(
            When::Now,
            UPDATE,
            UPDATE_RECORDED,
            args![
                chat.id.as_str(),
                chat.title.as_str(),
                Arg::Json(Some(json::to_text(&chat.chat))),
                meta_arg(&chat),
                chat.archived,
                chat.pinned,
                &chat.folder_id,
                &chat.share_id,
                chat.updated_at,
                current_message_id(&chat.chat),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(chat)
    }

    async fn delete(&self, id: &str) -> Result<()> {
        let mut tx = self.begin("chat", Mode::Write).await?;
        let chat = lock_for_tags(&mut tx, id).await?;
        delete_locked(&mut tx, &chat).await?;
        tx.commit().await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        if !storable(user_id) {
            return Ok(0);
        }
        let mut tx = self.begin("chat", Mode::Write).await?;
        lock_user_tags(&mut tx, user_id).await?;
        tx.execute(DELETE_USER_MESSAGES, args![user_id]).await?;
        let deleted = tx.execute(DELETE_USER_CHATS, args![user_id]).await?;
        tx.execute(DELETE_USER_TAGS, args![user_id]).await?;
        if deleted > 0 {
            tx.announce(ChangeEvent::chats_of_user_deleted(user_id));
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn list(&self, query: &ChatQuery) -> Result<Page<ChatSummary>> {
        let (items, total) = self.list_page(query, true).await?;
        Ok(Page {
            items,
            total: total.unwrap_or_default(),
        })
    }

    async fn list_items(&self, query: &ChatQuery) -> Result<Vec<ChatSummary>> {
        Ok(self.list_page(query, false).await?.0)
    }

    async fn set_tags(&self, id: &str, names: &[String]) -> Result<Chat> {
        let pairs = unique_tags(names);
        let mut tx = self.begin("chat", Mode::Write).await?;
        let chat = lock_for_tags(&mut tx, id).await?;
        let chat = set_locked_tags(&mut tx, chat, pairs).await?;
        tx.commit().await?;
        Ok(chat)
    }

    async fn add_tag(&self, id: &str, name: &str) -> Result<Chat> {
        let pairs = unique_tags(&[name.to_owned()]);
        let mut tx = self.begin("chat", Mode::Write).await?;
        let chat = lock_for_tags(&mut tx, id).await?;
        let mut all: Vec<(String, String)> =
            chat.tags.iter().map(|t| (t.clone(), t.clone())).collect();
        all.extend(pairs);
        let chat = set_locked_tags(&mut tx, chat, dedup_pairs(all)).await?;
        tx.commit().await?;
        Ok(chat)
    }

    async fn remove_tag(&self, id: &str, name_or_id: &str) -> Result<Chat> {
        let target = tag_id(name_or_id);
        let mut tx = self.begin("chat", Mode::Write).await?;
        let chat = lock_for_tags(&mut tx, id).await?;
        let kept: Vec<(String, String)> = chat
            .tags
            .iter()
            .filter(|t| **t != target)
            .map(|t| (t.clone(), t.clone()))
            .collect();
        let chat = set_locked_tags(&mut tx, chat, kept).await?;
        tx.commit().await?;
        Ok(chat)
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<Chat>> {
        self.pool()
            .fetch_all("chat", SCAN, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(chat_from_row)
            .collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.pool()
            .fetch_all("chat", SCAN_IDS, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect()
    }
}

/// Keeps the first pair of each tag id.
fn dedup_pairs(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (id, name) in pairs {
        if !out.iter().any(|(seen, _)| *seen == id) {
            out.push((id, name));
        }
    }
    out
}
