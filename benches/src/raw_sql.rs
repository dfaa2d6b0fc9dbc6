//! [`RawSqlx`]: the SQL adapter's operations written directly against sqlx, with the adapter's
//! own SQL (copied from `adapter-sql`'s `chats.rs`, `files.rs` and `vectors.rs`), one text per
//! dialect where the adapter has one, so that the report's ratio is the abstraction's overhead.
//!
//! Each method does the same logical work as the `Store` call it is compared with: the same
//! statements in the same transactions (a read-only snapshot for lists, as the adapter takes),
//! every column decoded and JSON columns parsed, file bytes read and their sha256 checked,
//! vector rows decoded and ranked by cosine similarity. What it leaves out is the abstraction:
//! the `Store`'s dynamic dispatch, the adapter's `Arg`/`Row` layer, its `Dyn` statement builder,
//! validation and mapping into domain types.
//!
//! Put file is not written here (the adapter's upload-folder layout is private to it); its row
//! in the report has no baseline ratio. For the streaming section, the raw client of local
//! storage is the file system: [`RawBaseline::upload`] writes the same upload stream into a
//! new file in the adapter's upload folder in its write size and syncs the file and the folder
//! (a durable copy), [`RawBaseline::download`] reads it back in the adapter's read size; neither
//! hashes nor touches a row, which is the store's own work.

use std::path::PathBuf;

use async_trait::async_trait;
use chatstore_core::chats::PreparedChat;
use chatstore_core::files::sha256_hex;
use chatstore_core::messages::message_key;
use chatstore_core::rows::ColumnKind;
use chatstore_core::vectors::exact_search;
use chatstore_core::{Chat, Error, Result, VectorItem, blob, tag_id, validate};
use chatstore_sql::{Bound, Dialect, READ_BYTES, SqlOptions, WRITE_BYTES, vector_write_sizes};
use futures::StreamExt;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{FromRow as _, Row as _};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::baseline::RawBaseline;
use crate::models::RowPlan;
use crate::streaming::{Source, check_digest, hex_digest};

/// A JSON column argument bound the way chatstore-sql binds it: compact JSON text as a
/// PostgreSQL `json` parameter (sqlx's `Json` would bind `jsonb`, which PostgreSQL parses and
/// re-renders, so the two would not run the same statements) and as TEXT on SQLite; `None`
/// is the JSON literal `null`, as Open WebUI stores Python's `None`.
struct JsonText(String);

impl JsonText {
    fn of(value: &Value) -> Self {
        JsonText(value.to_string())
    }

    fn of_map(map: &Map<String, Value>) -> Self {
        JsonText(serde_json::to_string(map).unwrap_or_else(|_| "{}".to_owned()))
    }

    fn or_null(value: Option<&Value>) -> Self {
        value.map_or_else(|| JsonText("null".to_owned()), JsonText::of)
    }
}

impl sqlx::Type<sqlx::Postgres> for JsonText {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        // PostgreSQL's `json` (oid 114).
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(114))
    }
}

impl sqlx::Encode<'_, sqlx::Postgres> for JsonText {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        // The binary form of `json` is its text.
        buf.extend_from_slice(self.0.as_bytes());
        Ok(sqlx::encode::IsNull::No)
    }
}

impl sqlx::Type<sqlx::Sqlite> for JsonText {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as sqlx::Type<sqlx::Sqlite>>::type_info()
    }
}

impl sqlx::Encode<'_, sqlx::Sqlite> for JsonText {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::sqlite::SqliteArgumentsBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <String as sqlx::Encode<'_, sqlx::Sqlite>>::encode_by_ref(&self.0, buf)
    }
}
use crate::ops::{BENCH_TAG, Fixture, INSERT_COLLECTION, SEARCH_K};
use crate::workload::{KNOWLEDGE_COLLECTION, PAGE_SIZE, SEARCH_TERM, Workload};

const GET_CHAT: &str = "SELECT id, user_id, COALESCE(title, 'New Chat') AS title, chat, meta, \
     archived, pinned, folder_id, share_id, created_at, updated_at FROM chat WHERE id = $1";

macro_rules! summary_select {
    () => {
        "SELECT id, user_id, COALESCE(title, 'New Chat') AS title, meta, archived, pinned, \
         folder_id, created_at, updated_at"
    };
}

macro_rules! sqlite_user_chats {
    () => {
        " FROM chat WHERE chat.user_id = $1 AND \
         COALESCE(json_type(chat.meta, '$.internal'), '') <> 'true' \
         AND COALESCE(chat.archived, FALSE) = $2"
    };
}

macro_rules! pg_user_chats {
    () => {
        " FROM chat WHERE chat.user_id = $1 AND \
         COALESCE(json_typeof(chat.meta -> 'internal') = 'boolean' \
         AND (chat.meta ->> 'internal') = 'true', FALSE) = FALSE \
         AND COALESCE(chat.archived, FALSE) = $2"
    };
}

macro_rules! sqlite_tag {
    ($p:literal) => {
        concat!(
            " AND json_type(chat.meta, '$.tags') = 'array' AND EXISTS (SELECT 1 FROM \
             json_each(chat.meta, '$.tags') AS t WHERE t.type = 'text' AND t.value = ",
            $p,
            ")"
        )
    };
}

/// One chat list in both dialects, as chatstore-sql builds it: the count (run only when the
/// list with its total comes back empty), the page (`LIMIT`/`OFFSET` bound after the filter's
/// parameters) and, for the lists the report times with their total, the page with the
/// count of every match on each row (`total`, last).
struct ListSql {
    count: &'static str,
    page: &'static str,
    page_with_total: Option<&'static str>,
}

const SQLITE_LIST: ListSql = ListSql {
    count: concat!("SELECT count(*) AS n", sqlite_user_chats!()),
    page: concat!(
        summary_select!(),
        sqlite_user_chats!(),
        " ORDER BY chat.updated_at DESC, chat.id LIMIT $3 OFFSET $4"
    ),
    page_with_total: Some(concat!(
        summary_select!(),
        ", (SELECT count(*)",
        sqlite_user_chats!(),
        ") AS total",
        sqlite_user_chats!(),
        " ORDER BY chat.updated_at DESC, chat.id LIMIT $3 OFFSET $4"
    )),
};

/// PostgreSQL's page: its ids from the list index (the offset skips index entries), then the
/// rows by id.
const PG_LIST: ListSql = ListSql {
    count: concat!("SELECT count(*) AS n", pg_user_chats!()),
    page: concat!(
        summary_select!(),
        " FROM chat WHERE chat.id IN (SELECT chat.id",
        pg_user_chats!(),
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\" LIMIT $3 OFFSET $4)",
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\""
    ),
    page_with_total: Some(concat!(
        summary_select!(),
        ", (SELECT count(*)",
        pg_user_chats!(),
        ") AS total FROM chat WHERE chat.id IN (SELECT chat.id",
        pg_user_chats!(),
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\" LIMIT $3 OFFSET $4)",
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\""
    )),
};

/// SQLite's two-tag filter: the text test of each tag (`"id"` in `meta`, $3 and $4), then the
/// JSON test of each ($5 and $6).
macro_rules! sqlite_two_tags {
    () => {
        concat!(
            " AND instr(chat.meta, $3) > 0 AND instr(chat.meta, $4) > 0",
            sqlite_tag!("$5"),
            sqlite_tag!("$6")
        )
    };
}

const SQLITE_TWO_TAGS: ListSql = ListSql {
    count: concat!(
        "SELECT count(*) AS n",
        sqlite_user_chats!(),
        sqlite_two_tags!()
    ),
    page: concat!(
        summary_select!(),
        sqlite_user_chats!(),
        sqlite_two_tags!(),
        " ORDER BY chat.updated_at DESC, chat.id LIMIT $7 OFFSET $8"
    ),
    page_with_total: None,
};

/// PostgreSQL's two-tag filter: jsonb containment of the tag ids' array ($3, JSON text).
macro_rules! pg_two_tags {
    () => {
        " AND (chat.meta -> 'tags')::jsonb @> $3::jsonb"
    };
}

const PG_TWO_TAGS: ListSql = ListSql {
    count: concat!("SELECT count(*) AS n", pg_user_chats!(), pg_two_tags!()),
    page: concat!(
        summary_select!(),
        " FROM chat WHERE chat.id IN (SELECT chat.id",
        pg_user_chats!(),
        pg_two_tags!(),
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\" LIMIT $4 OFFSET $5)",
        " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\""
    ),
    page_with_total: None,
};

/// The title search's candidates on SQLite, for a page without its total: the summary's
/// columns through the adapter's prefilter (ASCII titles matched in SQL, the others passed
/// on), a slice of them ($4, $5).
const SQLITE_TITLE_CANDIDATES: &str = concat!(
    summary_select!(),
    sqlite_user_chats!(),
    " AND (length(COALESCE(chat.title, 'New Chat')) \
     <> length(CAST(COALESCE(chat.title, 'New Chat') AS BLOB)) \
     OR instr(lower(COALESCE(chat.title, 'New Chat')), $3) > 0)",
    " ORDER BY chat.updated_at DESC, chat.id LIMIT $4 OFFSET $5"
);

/// The title search's candidates on PostgreSQL.
const PG_TITLE_CANDIDATES: &str = concat!(
    summary_select!(),
    pg_user_chats!(),
    " AND (COALESCE(chat.title, 'New Chat') ~ '[^ -~]' \
     OR strpos(lower(COALESCE(chat.title, 'New Chat') COLLATE \"C\"), $3) > 0)",
    " ORDER BY chat.updated_at DESC NULLS LAST, chat.id COLLATE \"C\" LIMIT $4 OFFSET $5"
);

const PG_READ_TX: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

const GET_FILE: &str = "SELECT id, user_id, hash, filename, path, data, meta, created_at, \
     updated_at FROM \"file\" WHERE id = $1";

const VECTOR_DIMENSION: &str = "SELECT length(vector) / 4 AS dim FROM chatstore_vector WHERE \
     collection_name = $1 AND id NOT IN (SELECT value FROM json_each($2)) ORDER BY id LIMIT 1";

const VECTOR_CANDIDATES: &str = "SELECT id, text, vector, vmetadata FROM chatstore_vector \
     WHERE collection_name = $1 ORDER BY id";

/// The adapter's multi-row vector insert: this head, then a row per item, in statements of
/// the adapter's sizes ([`vector_write_sizes`]).
const VECTOR_INSERT_HEAD: &str =
    "INSERT INTO chatstore_vector (id, collection_name, text, vector, vmetadata) ";

const INSERT_CHAT: &str = "INSERT INTO chat (id, user_id, title, chat, meta, archived, pinned, \
     folder_id, share_id, created_at, updated_at, last_read_at, current_message_id, tasks) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, 'null')";

const UPSERT_MESSAGE: &str = "INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, \
     content, output, model_id, files, sources, embeds, done, status_history, error, usage, \
     created_at, updated_at, context_summary, meta) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
     ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, role = excluded.role, \
     parent_id = excluded.parent_id, content = excluded.content, output = excluded.output, \
     model_id = excluded.model_id, files = excluded.files, sources = excluded.sources, \
     embeds = excluded.embeds, done = excluded.done, status_history = excluded.status_history, \
     error = excluded.error, usage = excluded.usage, created_at = excluded.created_at, \
     updated_at = excluded.updated_at, context_summary = excluded.context_summary, \
     meta = excluded.meta WHERE chat_message.chat_id = excluded.chat_id";

const UPDATE_BLOB: &str =
    "UPDATE chat SET chat = $2, updated_at = $3, current_message_id = $4 WHERE id = $1";

const OWNER: &str = "SELECT user_id FROM chat WHERE id = $1";
const LOCK_USER_TAGS: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
const SQLITE_LOCK_CHAT: &str = GET_CHAT;
const PG_LOCK_CHAT: &str = "SELECT id, user_id, COALESCE(title, 'New Chat') AS title, chat, \
     meta, archived, pinned, folder_id, share_id, created_at, updated_at FROM chat WHERE id = $1 \
     FOR UPDATE";
const ENSURE_TAG: &str = "INSERT INTO tag (id, name, user_id, meta) VALUES ($1, $2, $3, NULL) \
     ON CONFLICT (id, user_id) DO NOTHING";
const UPDATE_META: &str = "UPDATE chat SET meta = $2 WHERE id = $1";

/// The statement deleting a tag no chat of its user carries any more: chatstore-sql's own
/// (on SQLite one entry of its link table; otherwise non-internal and internal chats asked
/// apart through their partial indexes), so the baseline does the adapter's work and follows
/// it when it changes.
fn delete_orphan_tag(dialect: Dialect) -> &'static str {
    chatstore_sql::delete_orphan_tag_sql(dialect)
}

type SqliteQuery = sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;
type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds one of the row store's values as chatstore-sql binds it on SQLite (lists arrive as
/// JSON array text already).
fn bind_sqlite(q: SqliteQuery, bound: &Bound) -> SqliteQuery {
    match bound {
        Bound::Text(v) | Bound::Json(v) => q.bind(v.clone()),
        Bound::Int(v) => q.bind(*v),
        Bound::Bool(v) => q.bind(*v),
        Bound::Blob(v) => q.bind(v.clone()),
        Bound::TextList(v) => q.bind(Value::from(v.clone()).to_string()),
        Bound::IntList(v) => q.bind(Value::from(v.clone()).to_string()),
        Bound::BoolList(v) => q.bind(Value::from(v.clone()).to_string()),
        Bound::OptTextList(v) => q.bind(Value::from(v.clone()).to_string()),
    }
}

/// Binds one of the row store's values as chatstore-sql binds it on PostgreSQL: JSON as
/// `json`, lists as arrays.
fn bind_pg(q: PgQuery, bound: &Bound) -> PgQuery {
    match bound {
        Bound::Text(v) => q.bind(v.clone()),
        Bound::Json(v) => q.bind(v.as_ref().map(|t| JsonText(t.clone()))),
        Bound::Int(v) => q.bind(*v),
        Bound::Bool(v) => q.bind(*v),
        Bound::Blob(v) => q.bind(v.clone()),
        Bound::TextList(v) => q.bind(v.clone()),
        Bound::IntList(v) => q.bind(v.clone()),
        Bound::BoolList(v) => q.bind(v.clone()),
        Bound::OptTextList(v) => q.bind(v.clone()),
    }
}

/// Every column of a row read by its kind, as a hand-written repository decodes it: text,
/// integers (PostgreSQL `integer` or `bigint`), booleans, JSON parsed.
macro_rules! decode_row {
    ($row:expr, $table:expr) => {{
        let row = $row;
        let mut cells: Vec<Value> = Vec::with_capacity($table.columns.len());
        for (k, column) in $table.columns.iter().enumerate() {
            let cell = match column.kind {
                ColumnKind::Text => row
                    .try_get::<Option<String>, _>(k)
                    .map(|v| v.map_or(Value::Null, Value::from)),
                ColumnKind::Int => row
                    .try_get::<Option<i64>, _>(k)
                    .or_else(|_| row.try_get::<Option<i32>, _>(k).map(|v| v.map(i64::from)))
                    .map(|v| v.map_or(Value::Null, Value::from)),
                ColumnKind::Bool => row
                    .try_get::<Option<bool>, _>(k)
                    .map(|v| v.map_or(Value::Null, Value::from)),
                ColumnKind::Json => row
                    .try_get::<Option<Json<Value>>, _>(k)
                    .map(|v| v.map_or(Value::Null, |j| j.0)),
                ColumnKind::JsonText => row.try_get::<Option<String>, _>(k).map(|v| {
                    v.and_then(|t| serde_json::from_str(&t).ok())
                        .unwrap_or(Value::Null)
                }),
            }
            .map_err(db("decode row"))?;
            cells.push(cell);
        }
        cells
    }};
}

/// A count's number, or every row decoded.
macro_rules! read_rows {
    ($rows:expr, $call:expr) => {
        if $call.count {
            let n: i64 = $rows
                .first()
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(db("count"))?
                .unwrap_or(0);
            std::hint::black_box(n);
        } else {
            for row in &$rows {
                std::hint::black_box(decode_row!(row, $call.table));
            }
        }
    };
}

/// A pool of either dialect.
#[derive(Debug, Clone)]
enum RawPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The SQL adapter's operations written directly against sqlx (see the module docs).
#[derive(Debug, Clone)]
pub struct RawSqlx {
    pool: RawPool,
    /// The adapter's upload folder: where the raw file copies of the streaming benchmark go.
    upload_dir: Option<PathBuf>,
}

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::backend(format!("raw sqlx: {what}"), e)
}

/// Runs the same code on whichever pool `$raw` holds, with `$p` bound to it and `$d` to
/// `true` on SQLite.
macro_rules! on_pool {
    ($raw:expr, $p:ident, $sqlite:ident => $body:expr) => {
        match &$raw.pool {
            RawPool::Sqlite($p) => {
                let $sqlite = true;
                $body
            }
            RawPool::Postgres($p) => {
                let $sqlite = false;
                $body
            }
        }
    };
}

/// Writes one message row inside transaction `$tx` (the adapter's `upsert_row`).
macro_rules! upsert_message_row {
    ($tx:expr, $m:expr) => {{
        let m = $m;
        let changed = sqlx::query(UPSERT_MESSAGE)
            .bind(m.key())
            .bind(m.chat_id.as_str())
            .bind(m.user_id.as_deref())
            .bind(m.role.as_str())
            .bind(m.parent_id.as_deref())
            .bind(JsonText::of(&m.content))
            .bind(JsonText::or_null(m.output.as_ref()))
            .bind(m.model_id.as_deref())
            .bind(JsonText::or_null(m.files.as_ref()))
            .bind(JsonText::or_null(m.sources.as_ref()))
            .bind(JsonText::or_null(m.embeds.as_ref()))
            .bind(m.done)
            .bind(JsonText::or_null(m.status_history.as_ref()))
            .bind(JsonText::or_null(m.error.as_ref()))
            .bind(JsonText::or_null(m.usage.as_ref()))
            .bind(m.created_at)
            .bind(m.updated_at)
            .bind(m.context_summary.as_deref())
            .bind(JsonText::or_null(m.meta.as_ref()))
            .execute(&mut *$tx)
            .await
            .map_err(db("upsert message"))?
            .rows_affected();
        if changed == 0 {
            return Err(Error::backend_msg("raw sqlx: message key taken"));
        }
    }};
}

/// A chat row decoded as a driver user would: every column, JSON parsed.
type ChatRow = (
    String,
    String,
    String,
    Option<Json<Value>>,
    Option<Json<Value>>,
    Option<bool>,
    Option<bool>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

/// A summary row: every selected column, `meta` parsed.
type SummaryRow = (
    String,
    String,
    String,
    Option<Json<Value>>,
    Option<bool>,
    Option<bool>,
    Option<String>,
    i64,
    i64,
);

/// The domain chat of a row, as the message upsert needs it (its blob is rewritten).
fn chat_of(row: ChatRow) -> Chat {
    let (id, user_id, title, blob, meta, archived, pinned, folder_id, share_id, created, updated) =
        row;
    let mut meta = match meta {
        Some(Json(Value::Object(m))) => m,
        _ => Map::new(),
    };
    let tags = match meta.remove("tags") {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Default::default(),
    };
    Chat {
        id,
        user_id,
        title,
        chat: blob.map_or_else(|| Value::Object(Map::new()), |b| b.0),
        meta,
        tags,
        archived: archived.unwrap_or(false),
        pinned: pinned.unwrap_or(false),
        folder_id,
        share_id,
        created_at: created,
        updated_at: updated,
    }
}

/// The stored `chat.meta`: the chat's meta plus its sorted tag ids.
fn meta_json(chat: &Chat) -> Value {
    let mut meta = chat.meta.clone();
    if !chat.tags.is_empty() {
        meta.insert(
            "tags".to_owned(),
            Value::Array(chat.tags.iter().cloned().map(Value::String).collect()),
        );
    }
    Value::Object(meta)
}

/// `chat.current_message_id`: the blob's `history.currentId`.
fn current_message_id(blob: &Value) -> Option<String> {
    blob.get("history")
        .and_then(|h| h.get("currentId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl RawSqlx {
    /// Raw sqlx on the SQLite file of `url` (`sqlite://PATH`), with the connection settings the
    /// adapter uses (WAL, `synchronous = NORMAL`, busy timeout, foreign keys, pool size).
    pub async fn sqlite(url: &str, options: &SqlOptions) -> Result<Self> {
        let connect: SqliteConnectOptions = url
            .parse::<SqliteConnectOptions>()
            .map_err(|e| Error::invalid(format!("bad SQLite URL {url:?}: {e}")))?
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(db("connect"))?;
        Ok(RawSqlx {
            pool: RawPool::Sqlite(pool),
            upload_dir: options.upload_dir.clone(),
        })
    }

    /// Raw sqlx on the PostgreSQL database of `url`, with the adapter's pool size.
    pub async fn postgres(url: &str, options: &SqlOptions) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect(url)
            .await
            .map_err(db("connect"))?;
        Ok(RawSqlx {
            pool: RawPool::Postgres(pool),
            upload_dir: options.upload_dir.clone(),
        })
    }

    /// Where the raw copy of streamed file `id` goes: the adapter's upload folder.
    fn raw_upload_path(&self, id: &str) -> Result<PathBuf> {
        let dir = self.upload_dir.as_ref().ok_or_else(|| {
            Error::unsupported("raw sqlx", "file copies without a known upload folder")
        })?;
        Ok(dir.join(format!("raw-{id}.bin")))
    }

    /// A list as the adapter runs it: the page's one statement outside a transaction, with
    /// `with_total` the count on each of its rows; an empty page with its total runs the count
    /// then the page in one read-only snapshot. `tags` are the two tag ids of a tag filter.
    async fn list_page(
        &self,
        sql_sqlite: &ListSql,
        sql_pg: &ListSql,
        user: &str,
        tags: Option<[String; 2]>,
        offset: u64,
        with_total: bool,
    ) -> Result<()> {
        let limit = PAGE_SIZE as i64;
        let offset = offset as i64;
        on_pool!(self, p, sqlite => {
            let sql = if sqlite { sql_sqlite } else { sql_pg };
            // The tag filter's arguments: SQLite's text tests then JSON tests, PostgreSQL's
            // one array (sorted, as the adapter sorts the ids).
            let mut tag_args: Vec<String> = Vec::new();
            if let Some(mut ids) = tags {
                if sqlite {
                    tag_args.extend(ids.iter().map(|id| format!("\"{id}\"")));
                    tag_args.extend(ids);
                } else {
                    ids.sort();
                    tag_args.push(Value::from(ids.to_vec()).to_string());
                }
            }
            if with_total {
                // The page carrying its total: one statement, unless the page is empty.
                let with_total = sql.page_with_total.ok_or_else(|| {
                    Error::unsupported("raw sqlx", "this list with its total")
                })?;
                let mut page = sqlx::query(with_total).bind(user).bind(false);
                for arg in &tag_args {
                    page = page.bind(arg.as_str());
                }
                let rows = page.bind(limit).bind(offset).fetch_all(p).await.map_err(db("list"))?;
                // Each row: the summary's columns (decoded by position) and the total.
                let rows = rows
                    .iter()
                    .map(|row| {
                        Ok((SummaryRow::from_row(row)?, row.try_get::<i64, _>("total")?))
                    })
                    .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
                    .map_err(db("list"))?;
                if !rows.is_empty() {
                    std::hint::black_box(rows);
                    return Ok(());
                }
            }
            let mut page = sqlx::query_as::<_, SummaryRow>(sql.page).bind(user).bind(false);
            for arg in &tag_args {
                page = page.bind(arg.as_str());
            }
            let page = page.bind(limit).bind(offset);
            if !with_total {
                let rows = page.fetch_all(p).await.map_err(db("list"))?;
                std::hint::black_box(rows);
                return Ok(());
            }
            let mut tx = if sqlite {
                p.begin().await
            } else {
                p.begin_with(PG_READ_TX).await
            }
            .map_err(db("begin"))?;
            let mut count = sqlx::query(sql.count).bind(user).bind(false);
            for arg in &tag_args {
                count = count.bind(arg.as_str());
            }
            let total: i64 = count
                .fetch_one(&mut *tx)
                .await
                .and_then(|row| row.try_get("n"))
                .map_err(db("count"))?;
            let rows = page.fetch_all(&mut *tx).await.map_err(db("list"))?;
            tx.commit().await.map_err(db("commit"))?;
            std::hint::black_box((total, rows));
            Ok(())
        })
    }

    /// Reads a file row and returns the bytes' path and their recorded sha256 (Open WebUI's
    /// `file.meta.file_hash`, the value the adapter checks the bytes against).
    async fn file_row(&self, id: &str) -> Result<(Option<String>, Option<String>)> {
        type FileRow = (
            String,
            String,
            Option<String>,
            String,
            Option<String>,
            Option<Json<Value>>,
            Option<Json<Value>>,
            i64,
            i64,
        );
        let row: FileRow = on_pool!(self, p, _sqlite => sqlx::query_as(GET_FILE)
            .bind(id)
            .fetch_one(p)
            .await
            .map_err(db("get file"))?);
        let (_, _, _, _, path, _, meta, ..) = row;
        let sha256 = meta.and_then(|Json(m)| m.get("file_hash")?.as_str().map(str::to_owned));
        Ok((path, sha256))
    }

    /// One side of add + remove tag: the chat locked, its `meta.tags` rewritten, the dropped
    /// tag's row removed when no chat of the user carries it any more (the adapter's
    /// `set_locked_tags`).
    async fn set_bench_tag(&self, chat: &str, add: bool) -> Result<()> {
        let tag = tag_id(BENCH_TAG);
        on_pool!(self, p, sqlite => {
            let mut tx = if sqlite {
                p.begin_with("BEGIN IMMEDIATE").await
            } else {
                p.begin().await
            }
            .map_err(db("begin"))?;
            if !sqlite {
                let owner: Option<(String,)> = sqlx::query_as(OWNER)
                    .bind(chat)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db("owner"))?;
                if let Some((owner,)) = owner {
                    sqlx::query(LOCK_USER_TAGS)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .map_err(db("tag lock"))?;
                }
            }
            let row: ChatRow = sqlx::query_as(if sqlite { SQLITE_LOCK_CHAT } else { PG_LOCK_CHAT })
                .bind(chat)
                .fetch_one(&mut *tx)
                .await
                .map_err(db("lock chat"))?;
            let user = row.1.clone();
            let mut meta = match row.4 {
                Some(Json(Value::Object(m))) => m,
                _ => Map::new(),
            };
            let mut tags: std::collections::BTreeSet<String> = match meta.remove("tags") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => Default::default(),
            };
            if add {
                sqlx::query(ENSURE_TAG)
                    .bind(tag.as_str())
                    .bind(BENCH_TAG)
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("ensure tag"))?;
                tags.insert(tag.clone());
            } else {
                tags.remove(&tag);
            }
            if !tags.is_empty() {
                meta.insert(
                    "tags".to_owned(),
                    Value::Array(tags.into_iter().map(Value::String).collect()),
                );
            }
            sqlx::query(UPDATE_META)
                .bind(chat)
                .bind(JsonText::of(&Value::Object(meta)))
                .execute(&mut *tx)
                .await
                .map_err(db("update meta"))?;
            if !add {
                let dialect = if sqlite {
                    Dialect::Sqlite
                } else {
                    Dialect::Postgres
                };
                sqlx::query(delete_orphan_tag(dialect))
                    .bind(tag.as_str())
                    .bind(user.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("orphan tag"))?;
            }
            tx.commit().await.map_err(db("commit"))
        })
    }

    fn sqlite_pool(&self, op: &'static str) -> Result<&SqlitePool> {
        match &self.pool {
            RawPool::Sqlite(p) => Ok(p),
            // The SQL adapter keeps vectors on SQLite only (pgvector has its own adapter).
            RawPool::Postgres(_) => Err(Error::unsupported("raw sqlx on postgres", op)),
        }
    }
}

#[async_trait]
impl RawBaseline for RawSqlx {
    fn name(&self) -> &'static str {
        "raw sqlx"
    }

    async fn import_chats(
        &self,
        workload: &Workload,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        match &self.pool {
            RawPool::Postgres(pool) => Self::pg_import_chats(pool, workload, progress).await,
            RawPool::Sqlite(_) => Err(Error::unsupported(
                "raw sqlx on SQLite",
                "import of users and chats",
            )),
        }
    }

    async fn create_chat(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The chat is prepared by core (`NewChat::prepare`: id, timestamps, the messages of its
        // blob, its tag ids), as the adapter does; then the adapter's statements: the owner's
        // tag lock (PostgreSQL), the chat row, a row per message, a row per tag.
        let PreparedChat {
            chat,
            messages,
            tags,
        } = fx.new_chat(i).prepare(validate::now())?;
        on_pool!(self, p, sqlite => {
            let mut tx = if sqlite {
                p.begin_with("BEGIN IMMEDIATE").await
            } else {
                p.begin().await
            }
            .map_err(db("begin"))?;
            if !sqlite {
                sqlx::query(LOCK_USER_TAGS)
                    .bind(chat.user_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("tag lock"))?;
            }
            sqlx::query(INSERT_CHAT)
                .bind(chat.id.as_str())
                .bind(chat.user_id.as_str())
                .bind(chat.title.as_str())
                .bind(JsonText::of(&chat.chat))
                .bind(JsonText::of(&meta_json(&chat)))
                .bind(chat.archived)
                .bind(chat.pinned)
                .bind(chat.folder_id.as_deref())
                .bind(chat.share_id.as_deref())
                .bind(chat.created_at)
                .bind(chat.updated_at)
                .bind(current_message_id(&chat.chat))
                .execute(&mut *tx)
                .await
                .map_err(db("insert chat"))?;
            for m in &messages {
                upsert_message_row!(tx, m);
            }
            for (id, name) in &tags {
                sqlx::query(ENSURE_TAG)
                    .bind(id.as_str())
                    .bind(name.as_str())
                    .bind(chat.user_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("ensure tag"))?;
            }
            tx.commit().await.map_err(db("commit"))
        })
    }

    async fn upsert_message(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The adapter keeps Open WebUI's two copies in step: the `chat_message` row and the
        // chat blob's `history`. So does the baseline, with the same statements: the chat
        // locked and read, the adapter's probe (whether the chat has message rows, its
        // backfill check, and the row under the message's key), the row upserted, the blob
        // rewritten, one statement each. The message and blob edits are core's
        // (`NewMessage::into_stored`, `blob::upsert_message`), as in the adapter.
        let message = fx.new_message(i);
        let key = message_key(&message.chat_id, &message.id);
        on_pool!(self, p, sqlite => {
            let mut tx = if sqlite {
                p.begin_with("BEGIN IMMEDIATE").await
            } else {
                p.begin().await
            }
            .map_err(db("begin"))?;
            let row: ChatRow = sqlx::query_as(if sqlite { SQLITE_LOCK_CHAT } else { PG_LOCK_CHAT })
                .bind(message.chat_id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db("lock chat"))?;
            let mut chat = chat_of(row);
            let probe = sqlx::query(chatstore_sql::message_probe_sql())
                .bind(key.as_str())
                .bind(chat.id.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db("probe message"))?;
            let has_rows: i64 = probe.try_get("has_rows").map_err(db("probe message"))?;
            if has_rows == 0 {
                return Err(Error::backend_msg(
                    "raw sqlx: a chat without message rows (the backfill is not written here)",
                ));
            }
            let holder: Option<String> = probe.try_get("chat_id").map_err(db("probe message"))?;
            if holder.is_some() {
                return Err(Error::backend_msg("raw sqlx: the fresh message's key is taken"));
            }
            let stored = message.into_stored(&chat, None, validate::now())?;
            upsert_message_row!(tx, &stored);
            blob::upsert_message(&mut chat.chat, &stored);
            chat.updated_at = chat.updated_at.max(stored.updated_at);
            sqlx::query(UPDATE_BLOB)
                .bind(chat.id.as_str())
                .bind(JsonText::of(&chat.chat))
                .bind(chat.updated_at)
                .bind(current_message_id(&chat.chat))
                .execute(&mut *tx)
                .await
                .map_err(db("write blob"))?;
            tx.commit().await.map_err(db("commit"))
        })
    }

    async fn get_chat(&self, fx: &Fixture, i: u64) -> Result<()> {
        let id = fx.chat_id(i);
        let row: ChatRow = on_pool!(self, p, _sqlite => sqlx::query_as(GET_CHAT)
            .bind(id)
            .fetch_one(p)
            .await
            .map_err(db("get chat"))?);
        std::hint::black_box(row);
        Ok(())
    }

    async fn list_chats_first_page(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list_page(&SQLITE_LIST, &PG_LIST, &fx.heavy_user_id, None, 0, false)
            .await
    }

    async fn list_chats_with_total(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list_page(&SQLITE_LIST, &PG_LIST, &fx.heavy_user_id, None, 0, true)
            .await
    }

    async fn list_chats_deep_page(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list_page(
            &SQLITE_LIST,
            &PG_LIST,
            &fx.heavy_user_id,
            None,
            fx.deep_offset,
            false,
        )
        .await
    }

    async fn list_by_two_tags(&self, fx: &Fixture, _i: u64) -> Result<()> {
        let tags = [tag_id(&fx.two_tags[0]), tag_id(&fx.two_tags[1])];
        self.list_page(
            &SQLITE_TWO_TAGS,
            &PG_TWO_TAGS,
            &fx.heavy_user_id,
            Some(tags),
            0,
            false,
        )
        .await
    }

    async fn search_title(&self, fx: &Fixture, _i: u64) -> Result<()> {
        // The adapter's statements for a first page without a total: slices of the candidates
        // (the summary's columns through the title prefilter), the first as long as the page,
        // the exact Unicode match in Rust until the page is full.
        let wanted = SEARCH_TERM.to_lowercase();
        let user = fx.heavy_user_id.as_str();
        let needed = PAGE_SIZE as usize;
        let page: Vec<SummaryRow> = on_pool!(self, p, sqlite => {
            let mut tx = if sqlite {
                p.begin().await
            } else {
                p.begin_with(PG_READ_TX).await
            }
            .map_err(db("begin"))?;
            let candidates = if sqlite { SQLITE_TITLE_CANDIDATES } else { PG_TITLE_CANDIDATES };
            let mut page: Vec<SummaryRow> = Vec::new();
            let (mut read, mut slice) = (0_i64, needed as i64);
            loop {
                let got: Vec<SummaryRow> = sqlx::query_as(candidates)
                    .bind(user)
                    .bind(false)
                    .bind(wanted.as_str())
                    .bind(slice)
                    .bind(read)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db("search title"))?;
                let n = got.len() as i64;
                page.extend(
                    got.into_iter()
                        .filter(|r| r.2.to_lowercase().contains(&wanted)),
                );
                if n < slice || page.len() >= needed {
                    break;
                }
                read += n;
                slice *= 2;
            }
            page.truncate(needed);
            tx.commit().await.map_err(db("commit"))?;
            page
        });
        std::hint::black_box(page);
        Ok(())
    }

    async fn add_remove_tag(&self, fx: &Fixture, i: u64) -> Result<()> {
        let chat = fx.chat_id(i);
        self.set_bench_tag(chat, true).await?;
        self.set_bench_tag(chat, false).await
    }

    async fn get_file(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The operation is `files.get` then `files.read`, two calls that each read the row:
        // the baseline reads it twice too.
        let id = fx.file_id(i);
        self.file_row(id).await?;
        let (path, sha256) = self.file_row(id).await?;
        let path = path.ok_or_else(|| Error::backend_msg("raw sqlx: file without a path"))?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| Error::backend(format!("raw sqlx: reading {path}"), e))?;
        if sha256_hex(&bytes) != sha256.unwrap_or_default() {
            return Err(Error::backend_msg("raw sqlx: file bytes do not match"));
        }
        std::hint::black_box(bytes);
        Ok(())
    }

    async fn rows(&self, plan: &RowPlan) -> Result<()> {
        // Each read the typed call made, as chatstore-sql's own statement text with its binds
        // (no transaction, as the row store reads), every column decoded by its kind.
        for call in plan {
            let missing = || Error::backend_msg("raw sqlx: a row read without SQL");
            match &self.pool {
                RawPool::Sqlite(p) => {
                    let (sql, binds) = call.sqlite.as_ref().ok_or_else(missing)?;
                    let q = binds
                        .iter()
                        .fold(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), bind_sqlite);
                    let rows = q.fetch_all(p).await.map_err(db("row read"))?;
                    read_rows!(rows, call);
                }
                RawPool::Postgres(p) => {
                    let (sql, binds) = call.postgres.as_ref().ok_or_else(missing)?;
                    let q = binds
                        .iter()
                        .fold(sqlx::query(sqlx::AssertSqlSafe(sql.clone())), bind_pg);
                    let rows = q.fetch_all(p).await.map_err(db("row read"))?;
                    read_rows!(rows, call);
                }
            }
        }
        Ok(())
    }

    async fn upload(&self, id: &str, source: &Source, _user_id: &str) -> Result<()> {
        // Local storage's raw client is the file system. An application that stores uploads
        // without chatstore writes the upload stream into a new file in the upload folder and
        // makes it durable (the file synced, then the folder, so the new name survives a
        // crash), in the adapter's write size, and hashes the bytes on the way (Open WebUI
        // records a file's sha256). The row is the store's own work.
        let path = self.raw_upload_path(id)?;
        let fail = |what: &str, e| Error::backend(format!("raw {what} {}", path.display()), e);
        let file = tokio::fs::File::create_new(&path)
            .await
            .map_err(|e| fail("create", e))?;
        let mut out = tokio::io::BufWriter::with_capacity(WRITE_BYTES, file);
        let mut body = source.stream().await?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail("read the source for", e))?;
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(|e| fail("write", e))?;
        }
        out.flush().await.map_err(|e| fail("write", e))?;
        check_digest("upload", &hex_digest(hasher), source)?;
        out.into_inner()
            .sync_all()
            .await
            .map_err(|e| fail("sync", e))?;
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        tokio::fs::File::open(dir)
            .await
            .map_err(|e| fail("open the folder of", e))?
            .sync_all()
            .await
            .map_err(|e| fail("sync the folder of", e))
    }

    async fn download(&self, id: &str) -> Result<u64> {
        // The stored file read in the adapter's read size and hashed on the way: a read an
        // application can trust is checked against the recorded sha256, as the store's is.
        let path = self.raw_upload_path(id)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| Error::backend(format!("raw open {}", path.display()), e))?;
        let mut buf = vec![0u8; READ_BYTES];
        let mut n = 0u64;
        let mut hasher = Sha256::new();
        loop {
            let k = file
                .read(&mut buf)
                .await
                .map_err(|e| Error::backend(format!("raw read {}", path.display()), e))?;
            if k == 0 {
                std::hint::black_box(hex_digest(hasher));
                return Ok(n);
            }
            n += k as u64;
            hasher.update(&buf[..k]);
        }
    }

    async fn remove_upload(&self, id: &str) -> Result<()> {
        let path = self.raw_upload_path(id)?;
        tokio::fs::remove_file(&path)
            .await
            .map_err(|e| Error::backend(format!("raw remove {}", path.display()), e))
    }

    async fn vector_insert_batch(&self, fx: &Fixture, _i: u64) -> Result<()> {
        let p = self.sqlite_pool("vector_insert_batch")?;
        let items = fx.new_batch();
        let mut tx = p.begin_with("BEGIN IMMEDIATE").await.map_err(db("begin"))?;
        let dim: Option<(i64,)> = sqlx::query_as(VECTOR_DIMENSION)
            .bind(INSERT_COLLECTION)
            .bind("[]")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("dimension"))?;
        std::hint::black_box(dim);
        let mut rest = items.as_slice();
        for size in vector_write_sizes(items.len()) {
            let (chunk, after) = rest.split_at(size);
            rest = after;
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(VECTOR_INSERT_HEAD);
            qb.push_values(chunk, |mut row, item| {
                let blob: Vec<u8> = item.vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                row.push_bind(item.id.as_str())
                    .push_bind(INSERT_COLLECTION)
                    .push_bind(item.text.as_str())
                    .push_bind(blob)
                    .push_bind(JsonText::of_map(&item.metadata));
            });
            qb.build()
                .execute(&mut *tx)
                .await
                .map_err(db("insert vectors"))?;
        }
        tx.commit().await.map_err(db("commit"))
    }

    async fn vector_search(&self, fx: &Fixture, i: u64) -> Result<()> {
        let p = self.sqlite_pool("vector_search")?;
        let query = fx.query_vector(i);
        let mut tx = p.begin().await.map_err(db("begin"))?;
        let dim: Option<(i64,)> = sqlx::query_as(VECTOR_DIMENSION)
            .bind(KNOWLEDGE_COLLECTION)
            .bind("[]")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("dimension"))?;
        let rows: Vec<(
            String,
            Option<String>,
            Vec<u8>,
            Option<Json<Map<String, Value>>>,
        )> = sqlx::query_as(VECTOR_CANDIDATES)
            .bind(KNOWLEDGE_COLLECTION)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("candidates"))?;
        tx.commit().await.map_err(db("commit"))?;
        std::hint::black_box(dim);
        let items: Vec<VectorItem> = rows
            .into_iter()
            .map(|(id, text, blob, meta)| VectorItem {
                id,
                text: text.unwrap_or_default(),
                vector: blob
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                metadata: meta.map(|m| m.0).unwrap_or_default(),
            })
            .collect();
        // The ranking is core's exact cosine search, the function the adapter ranks with.
        let refs: Vec<&VectorItem> = items.iter().collect();
        std::hint::black_box(exact_search(&refs, query, None, SEARCH_K));
        Ok(())
    }
}

/// Records per transaction of the raw bulk import (the migration's default batch size).
const IMPORT_BATCH: usize = 500;

/// Rows per multi-row statement: PostgreSQL takes at most 65,535 bound parameters, and a
/// message row has 19.
const ROWS_PER_STATEMENT: usize = 2_000;

const INSERT_USERS: &str = "INSERT INTO \"user\" (id, name, email, role, profile_image_url, \
     last_active_at, updated_at, created_at, oauth, info, settings, scim) ";

const INSERT_AUTHS: &str = "INSERT INTO auth (id, email, password, active, session_stamp) ";

const INSERT_CHATS: &str = "INSERT INTO chat (id, user_id, title, chat, meta, archived, pinned, \
     folder_id, share_id, created_at, updated_at, last_read_at, current_message_id, tasks) ";

const INSERT_MESSAGES: &str = "INSERT INTO chat_message (id, chat_id, user_id, role, parent_id, \
     content, output, model_id, files, sources, embeds, done, status_history, error, usage, \
     created_at, updated_at, context_summary, meta) ";

const INSERT_TAGS: &str = "INSERT INTO tag (id, name, user_id, meta) ";

/// Runs `rows` as multi-row `INSERT`s of at most [`ROWS_PER_STATEMENT`] rows: `head` is the
/// statement up to `VALUES`, `push` binds one row, `tail` follows the values.
async fn insert_rows<T>(
    tx: &mut sqlx::PgConnection,
    head: &'static str,
    tail: &'static str,
    rows: &[T],
    push: impl Fn(sqlx::query_builder::Separated<'_, sqlx::Postgres, &'static str>, &T) + Copy,
) -> Result<()> {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(head);
        qb.push_values(chunk, push);
        qb.push(tail);
        qb.build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(db("multi-row insert"))?;
    }
    Ok(())
}

impl RawSqlx {
    /// PostgreSQL: the workload's users and chats as multi-row `INSERT`s, [`IMPORT_BATCH`]
    /// records per transaction: a user's row and its `auth` row; a chat's row, its message rows
    /// and its tag rows, prepared by core (`NewChat::prepare`) as the adapter prepares them, with
    /// the adapter's column values (JSON as `json` text, `null` for Python's `None`).
    async fn pg_import_chats(
        pool: &PgPool,
        workload: &Workload,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let now = validate::now();
        let users: Vec<u64> = (0..workload.users()).collect();
        for chunk in users.chunks(IMPORT_BATCH) {
            let users = chunk
                .iter()
                .map(|i| workload.user(*i).into_user(now))
                .collect::<Result<Vec<_>>>()?;
            let mut tx = pool.begin().await.map_err(db("begin"))?;
            insert_rows(&mut tx, INSERT_USERS, "", &users, |mut b, u| {
                b.push_bind(u.id.as_str())
                    .push_bind(u.name.as_str())
                    .push_bind(u.email.as_str())
                    .push_bind(u.role.as_str())
                    .push_bind(u.profile_image_url.as_str())
                    .push_bind(u.last_active_at)
                    .push_bind(u.updated_at)
                    .push_bind(u.created_at)
                    .push("'null'")
                    .push_bind(JsonText::or_null(u.info.as_ref()))
                    .push_bind(JsonText::or_null(u.settings.as_ref()))
                    .push("'null'");
            })
            .await?;
            insert_rows(
                &mut tx,
                INSERT_AUTHS,
                " ON CONFLICT (id) DO NOTHING",
                &users,
                |mut b, u| {
                    b.push_bind(u.id.as_str())
                        .push_bind(u.email.as_str())
                        .push("''")
                        .push("TRUE")
                        .push_bind(validate::new_id());
                },
            )
            .await?;
            tx.commit().await.map_err(db("commit"))?;
            progress(users.len() as u64);
        }
        let chats: Vec<u64> = (0..workload.chats()).collect();
        for chunk in chats.chunks(IMPORT_BATCH) {
            let prepared = chunk
                .iter()
                .map(|i| workload.chat(*i).prepare(now))
                .collect::<Result<Vec<PreparedChat>>>()?;
            let mut tags: Vec<(&str, &str, &str)> = prepared
                .iter()
                .flat_map(|p| {
                    p.tags
                        .iter()
                        .map(|(id, name)| (id.as_str(), name.as_str(), p.chat.user_id.as_str()))
                })
                .collect();
            tags.sort_unstable();
            tags.dedup_by(|a, b| a.0 == b.0 && a.2 == b.2);
            let messages: Vec<&chatstore_core::Message> =
                prepared.iter().flat_map(|p| &p.messages).collect();
            let mut tx = pool.begin().await.map_err(db("begin"))?;
            insert_rows(&mut tx, INSERT_CHATS, "", &prepared, |mut b, p| {
                let chat = &p.chat;
                b.push_bind(chat.id.as_str())
                    .push_bind(chat.user_id.as_str())
                    .push_bind(chat.title.as_str())
                    .push_bind(JsonText::of(&chat.chat))
                    .push_bind(JsonText::of(&meta_json(chat)))
                    .push_bind(chat.archived)
                    .push_bind(chat.pinned)
                    .push_bind(chat.folder_id.as_deref())
                    .push_bind(chat.share_id.as_deref())
                    .push_bind(chat.created_at)
                    .push_bind(chat.updated_at)
                    .push_bind(chat.updated_at)
                    .push_bind(current_message_id(&chat.chat))
                    .push("'null'");
            })
            .await?;
            insert_rows(&mut tx, INSERT_MESSAGES, "", &messages, |mut b, m| {
                b.push_bind(m.key())
                    .push_bind(m.chat_id.as_str())
                    .push_bind(m.user_id.as_deref())
                    .push_bind(m.role.as_str())
                    .push_bind(m.parent_id.as_deref())
                    .push_bind(JsonText::of(&m.content))
                    .push_bind(JsonText::or_null(m.output.as_ref()))
                    .push_bind(m.model_id.as_deref())
                    .push_bind(JsonText::or_null(m.files.as_ref()))
                    .push_bind(JsonText::or_null(m.sources.as_ref()))
                    .push_bind(JsonText::or_null(m.embeds.as_ref()))
                    .push_bind(m.done)
                    .push_bind(JsonText::or_null(m.status_history.as_ref()))
                    .push_bind(JsonText::or_null(m.error.as_ref()))
                    .push_bind(JsonText::or_null(m.usage.as_ref()))
                    .push_bind(m.created_at)
                    .push_bind(m.updated_at)
                    .push_bind(m.context_summary.as_deref())
                    .push_bind(JsonText::or_null(m.meta.as_ref()));
            })
            .await?;
            insert_rows(
                &mut tx,
                INSERT_TAGS,
                " ON CONFLICT (id, user_id) DO NOTHING",
                &tags,
                |mut b, (id, name, user_id)| {
                    b.push_bind(*id)
                        .push_bind(*name)
                        .push_bind(*user_id)
                        .push("NULL");
                },
            )
            .await?;
            tx.commit().await.map_err(db("commit"))?;
            progress(prepared.len() as u64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw "add + remove tag" baseline deletes an orphan tag with the adapter's exact
    /// statement on each dialect (non-internal and internal chats asked apart; on SQLite
    /// after the link table, which it falls back to them without).
    #[test]
    fn the_orphan_tag_delete_is_the_adapters_statement() {
        for (dialect, checks) in [(Dialect::Sqlite, 3), (Dialect::Postgres, 2)] {
            let adapter = chatstore_sql::delete_orphan_tag_sql(dialect);
            assert_eq!(delete_orphan_tag(dialect), adapter, "{dialect:?}");
            assert_eq!(adapter.matches("NOT EXISTS").count(), checks, "{adapter}");
        }
    }
}
