//! One connection pool of either dialect, and the few ways the repositories talk to it: static
//! statements ([`Sql`]) with bound [`Arg`]s, dynamic statements ([`Dyn`], run through
//! `sqlx::QueryBuilder`), rows read by column name ([`Row`]), transactions ([`Tx`]), and keys and
//! pages as they are bound ([`storable`], [`cursor`], [`page_args`]).
//!
//! Every repository writes its SQL once with `$N` placeholders (SQLite accepts them too); where
//! the dialects differ (JSON functions, `COLLATE "C"`, `FOR UPDATE`) a [`Sql`] carries both texts.

use futures::TryStreamExt;
use futures::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Database, Decode, Postgres, QueryBuilder, Row as _, SqlSafeStr, Sqlite, Type};
use sqlx_core::transaction::TransactionManager;

use std::sync::Arc;

use crate::changes::PruneClock;
use chatstore_core::changes::{ChangeEvent, ChangeHub};
use chatstore_core::{PageRequest, Result};

use crate::error::db_error;
use crate::json::JsonText;

/// Whether `s` can be a stored key at all: PostgreSQL text cannot hold NUL, so a lookup by
/// such a key finds nothing rather than failing.
pub(crate) fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// A keyset cursor PostgreSQL can bind: no stored key holds NUL, so cutting `after` at its
/// first NUL selects exactly the same keys.
pub(crate) fn cursor(after: Option<&str>) -> String {
    let after = after.unwrap_or_default();
    after.split('\0').next().unwrap_or_default().to_owned()
}

/// `LIMIT`/`OFFSET` values of a page (validated to fit `i64`).
pub(crate) fn page_args(page: &PageRequest) -> (i64, i64) {
    let limit = page
        .limit
        .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let offset = i64::try_from(page.offset).unwrap_or(i64::MAX);
    (limit, offset)
}

/// The SQL dialect of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (file or in-memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A statement in both dialects. Most statements are the same text in both.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    sqlite: &'static str,
    postgres: &'static str,
    /// PostgreSQL: planned at every call with its values (an unnamed statement), never kept
    /// as a named one; see [`Sql::planned_per_call`].
    per_call: bool,
}

impl Sql {
    /// The same text in both dialects.
    pub(crate) const fn both(sql: &'static str) -> Sql {
        Sql::each(sql, sql)
    }

    /// One text per dialect.
    pub(crate) const fn each(sqlite: &'static str, postgres: &'static str) -> Sql {
        Sql {
            sqlite,
            postgres,
            per_call: false,
        }
    }

    /// On PostgreSQL, plans the statement at every call with the values bound. For a
    /// statement that binds a list of values (`= ANY($1)`): after five calls PostgreSQL may
    /// keep a generic plan made without the values, which compares every row it reads with
    /// every value in turn (only a list known when planning is hashed), and which, made while
    /// the table looked empty, reads the whole table. One planning per call is a small price
    /// for a statement that already handles hundreds of values.
    pub(crate) const fn planned_per_call(self) -> Sql {
        Sql {
            per_call: true,
            ..self
        }
    }

    /// The text for `dialect`.
    pub(crate) fn text(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }
}

/// A bound parameter. `None` binds SQL NULL of the variant's type.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    /// JSON text for a `JSON` column (`json` on PostgreSQL, TEXT on SQLite).
    Json(Option<String>),
    Blob(Option<Vec<u8>>),
    /// A list of values for a membership test: a PostgreSQL array (`= ANY($1)`), a JSON
    /// array on SQLite (`IN (SELECT value FROM json_each($1))`).
    List(List),
}

/// The values of an [`Arg::List`], all of one kind (nulls left out: they never match), or a
/// column of rows written with `unnest` (where [`List::OptText`] carries the nulls).
#[derive(Debug, Clone)]
pub(crate) enum List {
    Text(Vec<String>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
    /// Text or SQL `NULL` for each row (a nullable column of an `unnest` insert).
    OptText(Vec<Option<String>>),
}

impl Type<Postgres> for List {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for List {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        match self {
            List::Text(v) => <Vec<String> as sqlx::Encode<'_, Postgres>>::encode_by_ref(v, buf),
            List::Int(v) => <Vec<i64> as sqlx::Encode<'_, Postgres>>::encode_by_ref(v, buf),
            List::Bool(v) => <Vec<bool> as sqlx::Encode<'_, Postgres>>::encode_by_ref(v, buf),
            List::OptText(v) => {
                <Vec<Option<String>> as sqlx::Encode<'_, Postgres>>::encode_by_ref(v, buf)
            }
        }
    }

    fn produces(&self) -> Option<sqlx::postgres::PgTypeInfo> {
        Some(match self {
            List::Text(_) => <Vec<String> as Type<Postgres>>::type_info(),
            List::Int(_) => <Vec<i64> as Type<Postgres>>::type_info(),
            List::Bool(_) => <Vec<bool> as Type<Postgres>>::type_info(),
            List::OptText(_) => <Vec<Option<String>> as Type<Postgres>>::type_info(),
        })
    }
}

impl List {
    /// The list as JSON array text (SQLite's `json_each` reads it).
    fn json(&self) -> String {
        match self {
            List::Text(v) => serde_json::Value::from(v.clone()).to_string(),
            List::Int(v) => serde_json::Value::from(v.clone()).to_string(),
            List::Bool(v) => serde_json::Value::from(v.clone()).to_string(),
            List::OptText(v) => serde_json::Value::from(v.clone()).to_string(),
        }
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}
impl From<&Option<String>> for Arg {
    fn from(v: &Option<String>) -> Self {
        Arg::Text(v.clone())
    }
}
impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(Some(v))
    }
}
impl From<Vec<u8>> for Arg {
    fn from(v: Vec<u8>) -> Self {
        Arg::Blob(Some(v))
    }
}

/// Builds a `Vec<Arg>` from values convertible into [`Arg`].
macro_rules! args {
    () => { Vec::<$crate::pool::Arg>::new() };
    ($($v:expr),+ $(,)?) => { vec![$($crate::pool::Arg::from($v)),+] };
}
pub(crate) use args;

/// A statement put together at run time from static SQL pieces and bound values (never from
/// user text), turned into a `sqlx::QueryBuilder` of the pool's dialect when run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dyn {
    parts: Vec<Part>,
    /// Run once and not kept as a prepared statement (e.g. a multi-row insert whose shape
    /// depends on the batch size).
    one_off: bool,
}

#[derive(Debug, Clone)]
enum Part {
    Sql(&'static str),
    /// A table or column name from chatstore's static table specs, double-quoted.
    Ident(&'static str),
    Bind(Arg),
}

impl Dyn {
    /// Appends SQL text.
    pub(crate) fn sql(&mut self, sql: &'static str) -> &mut Self {
        self.parts.push(Part::Sql(sql));
        self
    }

    /// Appends a bound value.
    pub(crate) fn bind(&mut self, arg: impl Into<Arg>) -> &mut Self {
        self.parts.push(Part::Bind(arg.into()));
        self
    }

    /// Appends a table or column name (from code, never from input), double-quoted: both
    /// dialects then read reserved words such as `group` as names.
    pub(crate) fn ident(&mut self, name: &'static str) -> &mut Self {
        self.parts.push(Part::Ident(name));
        self
    }

    /// Marks the statement as run once: it is not kept as a prepared statement.
    pub(crate) fn one_off(&mut self) -> &mut Self {
        self.one_off = true;
        self
    }

    /// Appends the static statement `sql` (its `$N` placeholders numbered from 1) with its
    /// `args`: every placeholder becomes a bound value in the order it is written, so that
    /// several statements can follow one another in one `Dyn`. A placeholder without its
    /// argument is refused rather than bound as NULL.
    pub(crate) fn statement(&mut self, sql: &'static str, args: &[Arg]) -> Result<&mut Self> {
        let bytes = sql.as_bytes();
        let (mut quote, mut start, mut i) = (None, 0, 0);
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None if b == b'\'' || b == b'"' => quote = Some(b),
                // Only `$N` is renumbered: a `?` would bind out of order.
                None if b == b'?' => {
                    return Err(chatstore_core::Error::backend_msg(
                        "a statement gathered with others writes its placeholders as $N, not ?",
                    ));
                }
                None if b == b'$' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    let end = (i + 1..bytes.len())
                        .find(|&k| !bytes[k].is_ascii_digit())
                        .unwrap_or(bytes.len());
                    let arg = sql[i + 1..end]
                        .parse::<usize>()
                        .ok()
                        .and_then(|n| args.get(n.checked_sub(1)?))
                        .ok_or_else(|| {
                            chatstore_core::Error::backend_msg(format!(
                                "placeholder {} of a statement has no argument",
                                &sql[i..end]
                            ))
                        })?;
                    self.sql(&sql[start..i]).bind(arg.clone());
                    start = end;
                    i = end;
                    continue;
                }
                None => {}
            }
            i += 1;
        }
        self.sql(&sql[start..]);
        Ok(self)
    }

    /// The number of values bound.
    fn binds(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| matches!(p, Part::Bind(_)))
            .count()
    }

    /// Appends `other` as the next statement (after a `;`).
    fn then(&mut self, other: Dyn) {
        if !self.parts.is_empty() {
            self.sql("; ");
        }
        self.parts.extend(other.parts);
        self.one_off |= other.one_off;
    }

    fn builder<DB: Binder>(self) -> QueryBuilder<DB> {
        let mut qb = QueryBuilder::<DB>::new("");
        for part in self.parts {
            match part {
                Part::Sql(s) => {
                    qb.push(s);
                }
                Part::Ident(name) if !name.contains('"') => {
                    qb.push('"').push(name).push('"');
                }
                Part::Ident(name) => {
                    qb.push('"').push(name.replace('"', "\"\"")).push('"');
                }
                Part::Bind(arg) => DB::push_arg(&mut qb, arg),
            }
        }
        qb
    }
}

/// A bound value of a statement, as [`crate::rows::select_text`] shows it: what the row store
/// binds, for raw baselines that must send exactly its statements.
#[derive(Debug, Clone, PartialEq)]
pub enum Bound {
    /// Text (or SQL `NULL`).
    Text(Option<String>),
    /// An integer.
    Int(Option<i64>),
    /// A boolean.
    Bool(Option<bool>),
    /// JSON text for a `JSON` column (`json` on PostgreSQL, TEXT on SQLite).
    Json(Option<String>),
    /// Bytes.
    Blob(Option<Vec<u8>>),
    /// A membership list: a PostgreSQL array of text; on SQLite it is bound as the JSON array
    /// text in [`Bound::Json`]'s place (`json_each` reads it).
    TextList(Vec<String>),
    /// A PostgreSQL array of integers (SQLite: JSON array text).
    IntList(Vec<i64>),
    /// A PostgreSQL array of booleans (SQLite: JSON array text).
    BoolList(Vec<bool>),
    /// A PostgreSQL array of text with nulls (SQLite: JSON array text).
    OptTextList(Vec<Option<String>>),
}

impl Dyn {
    /// The statement's text with the dialect's placeholders (`?` on SQLite, `$n` on
    /// PostgreSQL) and its bound values, in order. A list is bound as JSON text on SQLite.
    pub(crate) fn render(self, dialect: Dialect) -> (String, Vec<Bound>) {
        let mut sql = String::new();
        let mut binds = Vec::new();
        for part in self.parts {
            match part {
                Part::Sql(s) => sql.push_str(s),
                Part::Ident(name) => {
                    sql.push('"');
                    sql.push_str(&name.replace('"', "\"\""));
                    sql.push('"');
                }
                Part::Bind(arg) => {
                    binds.push(match (arg, dialect) {
                        (Arg::Text(v), _) => Bound::Text(v),
                        (Arg::Int(v), _) => Bound::Int(v),
                        (Arg::Bool(v), _) => Bound::Bool(v),
                        (Arg::Json(v), _) => Bound::Json(v),
                        (Arg::Blob(v), _) => Bound::Blob(v),
                        (Arg::List(list), Dialect::Sqlite) => Bound::Text(Some(list.json())),
                        (Arg::List(List::Text(v)), Dialect::Postgres) => Bound::TextList(v),
                        (Arg::List(List::Int(v)), Dialect::Postgres) => Bound::IntList(v),
                        (Arg::List(List::Bool(v)), Dialect::Postgres) => Bound::BoolList(v),
                        (Arg::List(List::OptText(v)), Dialect::Postgres) => Bound::OptTextList(v),
                    });
                    match dialect {
                        Dialect::Sqlite => sql.push('?'),
                        Dialect::Postgres => {
                            sql.push('$');
                            sql.push_str(&binds.len().to_string());
                        }
                    }
                }
            }
        }
        (sql, binds)
    }
}

/// What the two drivers share for binding an [`Arg`].
pub(crate) trait Binder: Database {
    /// Whether a connection can be lost between two statements (a server at the other end),
    /// so that a read on the warm connection is worth trying again (see [`Handle`]).
    const REMOTE: bool;
    fn push_arg(qb: &mut QueryBuilder<Self>, arg: Arg);
    fn bind_arg<'q>(
        q: Query<'q, Self, <Self as Database>::Arguments>,
        arg: Arg,
    ) -> Query<'q, Self, <Self as Database>::Arguments>;
}

macro_rules! impl_binder {
    ($db:ty, remote: $remote:expr, |$list:ident| $to_bound:expr) => {
        impl Binder for $db {
            const REMOTE: bool = $remote;

            fn push_arg(qb: &mut QueryBuilder<Self>, arg: Arg) {
                match arg {
                    Arg::Text(v) => qb.push_bind(v),
                    Arg::Int(v) => qb.push_bind(v),
                    Arg::Bool(v) => qb.push_bind(v),
                    Arg::Json(v) => qb.push_bind(v.map(JsonText)),
                    Arg::Blob(v) => qb.push_bind(v),
                    Arg::List($list) => qb.push_bind($to_bound),
                };
            }

            fn bind_arg<'q>(
                q: Query<'q, Self, <Self as Database>::Arguments>,
                arg: Arg,
            ) -> Query<'q, Self, <Self as Database>::Arguments> {
                match arg {
                    Arg::Text(v) => q.bind(v),
                    Arg::Int(v) => q.bind(v),
                    Arg::Bool(v) => q.bind(v),
                    Arg::Json(v) => q.bind(v.map(JsonText)),
                    Arg::Blob(v) => q.bind(v),
                    Arg::List($list) => q.bind($to_bound),
                }
            }
        }
    };
}
impl_binder!(Sqlite, remote: false, |list| list.json());
impl_binder!(Postgres, remote: true, |list| list);

fn sqlite_query(sql: &'static str, args: Vec<Arg>) -> Query<'static, Sqlite, SqliteArguments> {
    args.into_iter()
        .fold(sqlx::query(sql), <Sqlite as Binder>::bind_arg)
}

fn pg_query(
    sql: Sql,
    args: Vec<Arg>,
    statements: Statements,
) -> Query<'static, Postgres, PgArguments> {
    args.into_iter()
        .fold(
            sqlx::query(sql.text(Dialect::Postgres)),
            <Postgres as Binder>::bind_arg,
        )
        .persistent(statements == Statements::Cached && !sql.per_call)
}

/// How PostgreSQL statements are prepared on a pool's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Statements {
    /// Named and cached per connection (a direct connection to the server).
    Cached,
    /// Unnamed, and only inside transactions: PgBouncer in transaction mode hands each
    /// transaction to any server connection, where a named statement prepared by another
    /// transaction does not exist (or, left behind by another client, collides).
    Unnamed,
}

/// A value that both drivers decode.
pub(crate) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A result row of either dialect.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    /// The value of column `name`.
    pub(crate) fn get<T: Column>(&self, name: &str) -> Result<T> {
        let out = match self {
            Row::Sqlite(r) => r.try_get::<T, _>(name),
            Row::Postgres(r) => r.try_get::<T, _>(name),
        };
        out.map_err(|e| db_error("row", e))
    }

    /// A text column; SQL NULL reads as `""`.
    pub(crate) fn text(&self, name: &str) -> Result<String> {
        Ok(self.get::<Option<String>>(name)?.unwrap_or_default())
    }

    /// A nullable text column.
    pub(crate) fn opt_text(&self, name: &str) -> Result<Option<String>> {
        self.get(name)
    }

    /// An integer column; SQL NULL reads as 0.
    pub(crate) fn int(&self, name: &str) -> Result<i64> {
        Ok(self.opt_int(name)?.unwrap_or(0))
    }

    /// A nullable integer column. SQLite keeps what it was given in an INTEGER column when
    /// it is not an integer (Open WebUI stores a message's `timestamp` as sent, so a client's
    /// `1700000000.5` stays REAL): such a value reads as PostgreSQL's `bigint` column would
    /// have stored it, a REAL rounded and a TEXT of digits parsed; anything else is an error
    /// naming the column.
    pub(crate) fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        let Row::Sqlite(r) = self else {
            return self.get(name);
        };
        let exact = match r.try_get::<Option<i64>, _>(name) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if let Ok(Some(real)) = r.try_get::<Option<f64>, _>(name) {
            return whole(real)
                .map(Some)
                .ok_or_else(|| not_an_integer(name, &real));
        }
        if let Ok(Some(text)) = r.try_get::<Option<String>, _>(name) {
            let trimmed = text.trim();
            return trimmed
                .parse::<i64>()
                .ok()
                .or_else(|| trimmed.parse::<f64>().ok().and_then(whole))
                .map(Some)
                .ok_or_else(|| not_an_integer(name, &text));
        }
        Err(db_error("row", exact))
    }

    /// A boolean column; SQL NULL reads as `default`.
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool> {
        Ok(self.get::<Option<bool>>(name)?.unwrap_or(default))
    }

    /// A JSON column as text (SQL NULL is `None`; JSON `null` is `Some("null")`).
    pub(crate) fn json_text(&self, name: &str) -> Result<Option<String>> {
        Ok(self.get::<Option<JsonText>>(name)?.map(|j| j.0))
    }
}

/// `value` rounded to the nearest integer (halves away from zero), when it is finite and
/// within `i64`.
fn whole(value: f64) -> Option<i64> {
    let rounded = value.round();
    // 2^63 is exact in f64; every f64 below it and at least -2^63 fits.
    (rounded.is_finite() && rounded >= -(2f64.powi(63)) && rounded < 2f64.powi(63))
        .then_some(rounded as i64)
}

fn not_an_integer(column: &str, value: &dyn std::fmt::Debug) -> chatstore_core::Error {
    chatstore_core::Error::backend_msg(format!(
        "column {column} holds {value:?}, which is not an integer"
    ))
}

/// A pool with one warm connection kept aside: the connection that ran the last read outside
/// a transaction, or committed the last transaction, serves the next one too, when no other
/// call holds it.
///
/// sqlx hands idle connections out in turn (first in, first out) and checks each one on the
/// way out and on the way back (a ping: on PostgreSQL a round trip to the server each time).
/// Without a warm connection a store serving one call at a time therefore goes round every
/// pooled connection: on SQLite each has a worker thread of its own that has slept longest and
/// a page cache of its own (with ten pooled connections a 24-row list cost 17% more CPU than on
/// one connection); on PostgreSQL every call paid a second round trip before its first
/// statement. A pool of one connection keeps none aside (a second caller needs it).
///
/// A warm connection is not checked before use: a server restarted, or a connection ended by
/// the server, since the last call shows as a lost connection on the next one. A read that
/// finds its warm connection lost ([`Handle::run`]) runs once more on a connection from the
/// pool, which checks it as it always does; so does a transaction that finds it lost at
/// `BEGIN` ([`Handle::begin`]). A PostgreSQL write outside a transaction never takes it.
pub(crate) struct Handle<DB: Database> {
    pub(crate) pool: sqlx::Pool<DB>,
    warm: Option<Arc<std::sync::Mutex<Warm<DB>>>>,
    /// When the store's transactions prune its recorded changes next.
    prune: Arc<PruneClock>,
    /// Every transaction begins read-only (PostgreSQL): a read-only store reached through a
    /// pooler that refuses the `default_transaction_read_only` startup option.
    read_only: bool,
}

impl<DB: Database> Clone for Handle<DB> {
    fn clone(&self) -> Self {
        Handle {
            pool: self.pool.clone(),
            warm: self.warm.clone(),
            prune: self.prune.clone(),
            read_only: self.read_only,
        }
    }
}

/// The connection kept aside, and whether the pool is closing (then none is kept).
struct Warm<DB: Database> {
    conn: Option<PoolConnection<DB>>,
    closing: bool,
}

impl<DB: Database> Default for Warm<DB> {
    fn default() -> Self {
        Warm {
            conn: None,
            closing: false,
        }
    }
}

impl<DB: Database> Drop for Warm<DB> {
    fn drop(&mut self) {
        // A connection goes back to its pool on a task sqlx spawns, which needs a Tokio
        // runtime; the last handle may go away outside one (a store dropped after its runtime
        // ended): the kept connection is then closed here instead.
        if let Some(conn) = self.conn.take()
            && tokio::runtime::Handle::try_current().is_err()
        {
            drop(conn.detach());
        }
    }
}

impl<DB: Database> std::fmt::Debug for Handle<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("pool", &self.pool)
            .field("warm", &self.warm.is_some())
            .finish()
    }
}

/// A connection lent for one statement; [`Lease::done`] keeps it warm for the next.
struct Lease<'a, DB: Database> {
    conn: PoolConnection<DB>,
    warm: Option<&'a std::sync::Mutex<Warm<DB>>>,
    /// The connection was the warm one (not checked by the pool before this statement).
    was_warm: bool,
}

impl<DB: Database> Lease<'_, DB> {
    /// The statement ran to its end: the connection becomes the warm one unless another call
    /// already put one aside or the pool is closing; otherwise it goes back to the pool.
    fn done(self) {
        keep_warm(self.warm, self.conn);
    }
}

/// Makes `conn` the warm connection unless another call already put one aside or the pool is
/// closing; otherwise it goes back to the pool.
fn keep_warm<DB: Database>(warm: Option<&std::sync::Mutex<Warm<DB>>>, conn: PoolConnection<DB>) {
    let Some(warm) = warm else { return };
    if let Ok(mut warm) = warm.lock()
        && !warm.closing
        && warm.conn.is_none()
    {
        warm.conn = Some(conn);
    }
}

/// A transaction on a connection of a [`Handle`]. Dropped before [`Held::commit`] it rolls
/// back: the rollback is queued on the connection and sent as the connection goes back to the
/// pool, as sqlx's own transactions do. Committed, its connection becomes the warm one.
struct Held<DB: Database> {
    /// `None` only once committed.
    conn: Option<PoolConnection<DB>>,
    warm: Option<Arc<std::sync::Mutex<Warm<DB>>>>,
}

impl<DB: Database> Held<DB> {
    /// The connection, for the transaction's statements.
    fn conn(&mut self) -> std::result::Result<&mut <DB as Database>::Connection, sqlx::Error> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| sqlx::Error::Protocol("the transaction has already ended".into()))
    }

    /// Commits; the connection becomes the warm one (see [`keep_warm`]). A failed commit drops
    /// the transaction, which rolls back what is left of it.
    async fn commit(mut self) -> std::result::Result<(), sqlx::Error> {
        DB::TransactionManager::commit(self.conn()?).await?;
        if let Some(conn) = self.conn.take() {
            keep_warm(self.warm.as_deref(), conn);
        }
        Ok(())
    }
}

impl<DB: Database> Drop for Held<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_deref_mut() {
            DB::TransactionManager::start_rollback(conn);
        }
    }
}

impl<DB: Binder> Handle<DB> {
    pub(crate) fn new(pool: sqlx::Pool<DB>) -> Self {
        let warm = (pool.options().get_max_connections() > 1).then(Default::default);
        Handle {
            pool,
            warm,
            prune: Arc::default(),
            read_only: false,
        }
    }

    /// This handle with every transaction begun read-only, so that the server refuses any
    /// write (on PostgreSQL; with [`Statements::Unnamed`] every statement runs in one).
    pub(crate) fn read_only_transactions(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// The warm connection if no other call holds it, else one from the pool. A statement that
    /// fails or is dropped half way never calls [`Lease::done`]: its connection goes back to
    /// the pool, which checks it as it always does.
    async fn lease(&self) -> std::result::Result<Lease<'_, DB>, sqlx::Error> {
        let warm = self.warm.as_deref();
        let kept = warm
            .and_then(|w| w.lock().ok())
            .and_then(|mut w| w.conn.take());
        let was_warm = kept.is_some();
        let conn = match kept {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Lease {
            conn,
            warm,
            was_warm,
        })
    }

    /// Runs one read with `input` on a leased connection (see [`Handle::lease`]), keeping the
    /// connection warm when the read succeeded. A read whose warm connection turns out lost
    /// runs once more, with a copy of `input`, on a connection the pool has checked.
    async fn run<I: Clone, T>(
        &self,
        input: I,
        read: impl for<'c> Fn(
            &'c mut <DB as Database>::Connection,
            I,
        ) -> BoxFuture<'c, std::result::Result<T, sqlx::Error>>,
    ) -> std::result::Result<T, sqlx::Error> {
        let mut lease = self.lease().await?;
        let again = (DB::REMOTE && lease.was_warm).then(|| input.clone());
        let out = read(&mut lease.conn, input).await;
        match (out, again) {
            (Ok(out), _) => {
                lease.done();
                Ok(out)
            }
            (Err(e), Some(input)) if crate::error::connection_lost(&e) => {
                tracing::info!("the warm connection was lost ({e}); reading on another");
                drop(lease);
                let mut conn = self.pool.acquire().await?;
                read(&mut conn, input).await
            }
            (Err(e), _) => Err(e),
        }
    }

    /// Begins a transaction with `statement` (`None`: the dialect's plain `BEGIN`) on a leased
    /// connection (see [`Handle::lease`]). A warm connection found lost at `BEGIN` has done
    /// nothing yet: the transaction begins on a connection the pool has checked instead.
    async fn begin(
        &self,
        statement: Option<&'static str>,
    ) -> std::result::Result<Held<DB>, sqlx::Error> {
        let lease = self.lease().await?;
        let was_warm = lease.was_warm;
        let mut conn = lease.conn;
        let begun =
            DB::TransactionManager::begin(&mut conn, statement.map(SqlSafeStr::into_sql_str)).await;
        let conn = match begun {
            Ok(()) => conn,
            Err(e) if DB::REMOTE && was_warm && crate::error::connection_lost(&e) => {
                tracing::info!("the warm connection was lost ({e}); beginning on another");
                drop(conn);
                let mut conn = self.pool.acquire().await?;
                DB::TransactionManager::begin(&mut conn, statement.map(SqlSafeStr::into_sql_str))
                    .await?;
                conn
            }
            Err(e) => return Err(e),
        };
        Ok(Held {
            conn: Some(conn),
            warm: self.warm.clone(),
        })
    }

    async fn close(&self) {
        if let Some(warm) = &self.warm {
            let kept = warm.lock().ok().and_then(|mut w| {
                w.closing = true;
                w.conn.take()
            });
            drop(kept);
        }
        self.pool.close().await;
    }
}

/// One pool of either dialect.
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(Handle<Sqlite>),
    Postgres(Handle<Postgres>, Statements),
}

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Will write: SQLite takes the write lock at once (`BEGIN IMMEDIATE`), so a
    /// read-modify-write never fails half way on a lock upgrade.
    Write,
    /// Only reads, from one snapshot.
    Read,
}

impl Pool {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Pool::Sqlite(_) => Dialect::Sqlite,
            Pool::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Begins a transaction; `entity` names what it works on, for error messages.
    pub(crate) async fn begin(&self, entity: &'static str, mode: Mode) -> Result<Tx> {
        let prune = match self {
            Pool::Sqlite(h) => h.prune.clone(),
            Pool::Postgres(h, _) => h.prune.clone(),
        };
        let inner = match (self, mode) {
            (Pool::Sqlite(p), Mode::Write) => {
                p.begin(Some("BEGIN IMMEDIATE")).await.map(TxInner::Sqlite)
            }
            (Pool::Sqlite(p), Mode::Read) => p.begin(None).await.map(TxInner::Sqlite),
            (Pool::Postgres(p, s), Mode::Write) => p
                .begin(p.read_only.then_some("BEGIN READ ONLY"))
                .await
                .map(|t| TxInner::Postgres(t, *s)),
            (Pool::Postgres(p, s), Mode::Read) => p
                .begin(Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))
                .await
                .map(|t| TxInner::Postgres(t, *s)),
        }
        .map_err(|e| db_error(entity, e))?;
        Ok(Tx {
            inner,
            entity,
            changes: Vec::new(),
            local: None,
            prune,
            later: Dyn::default(),
        })
    }

    /// Runs a statement outside a transaction; returns the number of rows affected.
    pub(crate) async fn execute(
        &self,
        entity: &'static str,
        sql: Sql,
        args: Vec<Arg>,
    ) -> Result<u64> {
        if let Pool::Postgres(_, Statements::Unnamed) = self {
            let mut tx = self.begin(entity, Mode::Write).await?;
            let n = tx.execute(sql, args).await?;
            tx.commit().await?;
            return Ok(n);
        }
        let out = match self {
            Pool::Sqlite(p) => p
                .run(args, |c, args| {
                    Box::pin(sqlite_query(sql.text(Dialect::Sqlite), args).execute(c))
                })
                .await
                .map(|r| r.rows_affected()),
            // A write is never tried twice: it runs on a connection the pool has checked.
            Pool::Postgres(p, s) => pg_query(sql, args, *s)
                .execute(&p.pool)
                .await
                .map(|r| r.rows_affected()),
        };
        out.map_err(|e| db_error(entity, e))
    }

    /// All rows of a statement.
    pub(crate) async fn fetch_all(
        &self,
        entity: &'static str,
        sql: Sql,
        args: Vec<Arg>,
    ) -> Result<Vec<Row>> {
        if let Pool::Postgres(_, Statements::Unnamed) = self {
            let mut tx = self.begin(entity, Mode::Read).await?;
            let rows = tx.fetch_all(sql, args).await?;
            tx.commit().await?;
            return Ok(rows);
        }
        let out = match self {
            Pool::Sqlite(p) => p
                .run(args, |c, args| {
                    Box::pin(sqlite_query(sql.text(Dialect::Sqlite), args).fetch_all(c))
                })
                .await
                .map(|rows| rows.into_iter().map(Row::Sqlite).collect()),
            Pool::Postgres(p, s) => p
                .run(args, |c, args| {
                    Box::pin(pg_query(sql, args, *s).fetch_all(c))
                })
                .await
                .map(|rows| rows.into_iter().map(Row::Postgres).collect()),
        };
        out.map_err(|e| db_error(entity, e))
    }

    /// The first row of a statement, if any.
    pub(crate) async fn fetch_optional(
        &self,
        entity: &'static str,
        sql: Sql,
        args: Vec<Arg>,
    ) -> Result<Option<Row>> {
        if let Pool::Postgres(_, Statements::Unnamed) = self {
            let mut tx = self.begin(entity, Mode::Read).await?;
            let row = tx.fetch_optional(sql, args).await?;
            tx.commit().await?;
            return Ok(row);
        }
        let out = match self {
            Pool::Sqlite(p) => p
                .run(args, |c, args| {
                    Box::pin(sqlite_query(sql.text(Dialect::Sqlite), args).fetch_optional(c))
                })
                .await
                .map(|r| r.map(Row::Sqlite)),
            Pool::Postgres(p, s) => p
                .run(args, |c, args| {
                    Box::pin(pg_query(sql, args, *s).fetch_optional(c))
                })
                .await
                .map(|r| r.map(Row::Postgres)),
        };
        out.map_err(|e| db_error(entity, e))
    }

    /// All rows of a dynamic statement, outside a transaction (one round trip).
    pub(crate) async fn fetch_dyn(&self, entity: &'static str, statement: Dyn) -> Result<Vec<Row>> {
        let persistent = !statement.one_off;
        let out = match self {
            Pool::Postgres(_, Statements::Unnamed) => {
                let mut tx = self.begin(entity, Mode::Read).await?;
                let rows = tx.fetch_dyn(statement).await?;
                tx.commit().await?;
                return Ok(rows);
            }
            Pool::Sqlite(p) => p
                .run(statement, |c, statement| {
                    Box::pin(async move {
                        let mut qb = statement.builder::<Sqlite>();
                        qb.build().persistent(persistent).fetch_all(c).await
                    })
                })
                .await
                .map(|rows| rows.into_iter().map(Row::Sqlite).collect()),
            Pool::Postgres(p, Statements::Cached) => p
                .run(statement, |c, statement| {
                    Box::pin(async move {
                        let mut qb = statement.builder::<Postgres>();
                        qb.build().persistent(persistent).fetch_all(c).await
                    })
                })
                .await
                .map(|rows| rows.into_iter().map(Row::Postgres).collect()),
        };
        out.map_err(|e| db_error(entity, e))
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p, _) => p.close().await,
        }
    }
}

enum TxInner {
    Sqlite(Held<Sqlite>),
    Postgres(Held<Postgres>, Statements),
}

/// A transaction; dropped without [`Tx::commit`] it rolls back. Changes announced in it
/// ([`Tx::announce`]) are recorded and notified on commit (see [`crate::changes`]).
pub(crate) struct Tx {
    inner: TxInner,
    entity: &'static str,
    changes: Vec<ChangeEvent>,
    /// Where SQLite publishes the changes once committed (PostgreSQL notifies instead).
    local: Option<Arc<ChangeHub>>,
    /// The store's [`PruneClock`].
    prune: Arc<PruneClock>,
    /// SQLite: writes whose outcome nothing reads before the commit ([`Tx::execute_later`]),
    /// sent to SQLite's worker together before the next statement or at the commit. Each
    /// statement is a round trip to that worker, which cost more than the statements
    /// themselves in a tag change.
    later: Dyn,
}

/// When a write must have run: before the call goes on, or (SQLite) by the commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Its error, such as a taken key, must come before anything else happens.
    Now,
    /// Nothing reads its outcome; its error may fail the call later (see [`Tx::execute_later`]).
    Later,
}

/// Most values [`Tx::execute_later`] gathers before it sends them (SQLite takes 32,766 in one
/// statement; several statements share the count here).
const MAX_LATER_BINDS: usize = 4_096;

impl Tx {
    /// When this transaction's store prunes its recorded changes next.
    pub(crate) fn prune_clock(&self) -> &PruneClock {
        &self.prune
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(..) => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns the number of rows affected.
    pub(crate) async fn execute(&mut self, sql: Sql, args: Vec<Arg>) -> Result<u64> {
        self.flush().await?;
        let out = async {
            match &mut self.inner {
                TxInner::Sqlite(t) => sqlite_query(sql.text(Dialect::Sqlite), args)
                    .execute(t.conn()?)
                    .await
                    .map(|r| r.rows_affected()),
                TxInner::Postgres(t, s) => pg_query(sql, args, *s)
                    .execute(t.conn()?)
                    .await
                    .map(|r| r.rows_affected()),
            }
        }
        .await;
        out.map_err(|e| db_error(self.entity, e))
    }

    /// All rows of a statement.
    pub(crate) async fn fetch_all(&mut self, sql: Sql, args: Vec<Arg>) -> Result<Vec<Row>> {
        self.flush().await?;
        let out = async {
            match &mut self.inner {
                TxInner::Sqlite(t) => sqlite_query(sql.text(Dialect::Sqlite), args)
                    .fetch_all(t.conn()?)
                    .await
                    .map(|rows| rows.into_iter().map(Row::Sqlite).collect()),
                TxInner::Postgres(t, s) => pg_query(sql, args, *s)
                    .fetch_all(t.conn()?)
                    .await
                    .map(|rows| rows.into_iter().map(Row::Postgres).collect()),
            }
        }
        .await;
        out.map_err(|e| db_error(self.entity, e))
    }

    /// The first row of a statement, if any.
    pub(crate) async fn fetch_optional(&mut self, sql: Sql, args: Vec<Arg>) -> Result<Option<Row>> {
        self.flush().await?;
        let out = async {
            match &mut self.inner {
                TxInner::Sqlite(t) => sqlite_query(sql.text(Dialect::Sqlite), args)
                    .fetch_optional(t.conn()?)
                    .await
                    .map(|r| r.map(Row::Sqlite)),
                TxInner::Postgres(t, s) => pg_query(sql, args, *s)
                    .fetch_optional(t.conn()?)
                    .await
                    .map(|r| r.map(Row::Postgres)),
            }
        }
        .await;
        out.map_err(|e| db_error(self.entity, e))
    }

    /// The single row of a statement that always returns one (e.g. `count(*)`).
    pub(crate) async fn fetch_one(&mut self, sql: Sql, args: Vec<Arg>) -> Result<Row> {
        self.fetch_optional(sql, args).await?.ok_or_else(|| {
            chatstore_core::Error::backend_msg(format!(
                "a statement on {} returned no row",
                self.entity
            ))
        })
    }

    /// All rows of a dynamic statement.
    pub(crate) async fn fetch_dyn(&mut self, statement: Dyn) -> Result<Vec<Row>> {
        let entity = self.entity;
        self.try_fetch_dyn(statement)
            .await
            .map_err(|e| db_error(entity, e))
    }

    /// Each row of a dynamic statement, handed to `each` as it arrives: on SQLite, decoding
    /// a row overlaps the connection's thread reading the next one (a collected result is
    /// decoded only after the last row, on one core, after the thread was woken per row).
    pub(crate) async fn fetch_dyn_each(
        &mut self,
        statement: Dyn,
        mut each: impl FnMut(Row) -> Result<()> + Send,
    ) -> Result<()> {
        let entity = self.entity;
        self.try_flush().await.map_err(|e| db_error(entity, e))?;
        let persistent = !statement.one_off;
        match &mut self.inner {
            TxInner::Sqlite(t) => {
                let mut qb = statement.builder::<Sqlite>();
                let conn = t.conn().map_err(|e| db_error(entity, e))?;
                let mut rows = qb.build().persistent(persistent).fetch(conn);
                while let Some(row) = rows.try_next().await.map_err(|e| db_error(entity, e))? {
                    each(Row::Sqlite(row))?;
                }
                Ok(())
            }
            TxInner::Postgres(..) => {
                for row in self.fetch_dyn(statement).await? {
                    each(row)?;
                }
                Ok(())
            }
        }
    }

    /// All rows of a dynamic statement; the driver's error as it is, for callers that
    /// classify it further.
    pub(crate) async fn try_fetch_dyn(
        &mut self,
        statement: Dyn,
    ) -> std::result::Result<Vec<Row>, sqlx::Error> {
        self.try_flush().await?;
        let persistent = !statement.one_off;
        match &mut self.inner {
            TxInner::Sqlite(t) => {
                let mut qb = statement.builder::<Sqlite>();
                qb.build()
                    .persistent(persistent)
                    .fetch_all(t.conn()?)
                    .await
                    .map(|rows| rows.into_iter().map(Row::Sqlite).collect())
            }
            TxInner::Postgres(t, s) => {
                let mut qb = statement.builder::<Postgres>();
                qb.build()
                    .persistent(persistent && *s == Statements::Cached)
                    .fetch_all(t.conn()?)
                    .await
                    .map(|rows| rows.into_iter().map(Row::Postgres).collect())
            }
        }
    }

    /// Runs a dynamic statement; returns the number of rows affected, or the driver's error as
    /// it is, for callers that classify it further.
    pub(crate) async fn try_execute_dyn(
        &mut self,
        statement: Dyn,
    ) -> std::result::Result<u64, sqlx::Error> {
        self.try_flush().await?;
        self.run_dyn(statement).await
    }

    /// Runs a dynamic statement now (nothing gathered for later goes ahead of it).
    async fn run_dyn(&mut self, statement: Dyn) -> std::result::Result<u64, sqlx::Error> {
        let persistent = !statement.one_off;
        match &mut self.inner {
            TxInner::Sqlite(t) => {
                let mut qb = statement.builder::<Sqlite>();
                qb.build()
                    .persistent(persistent)
                    .execute(t.conn()?)
                    .await
                    .map(|r| r.rows_affected())
            }
            TxInner::Postgres(t, s) => {
                let mut qb = statement.builder::<Postgres>();
                qb.build()
                    .persistent(persistent && *s == Statements::Cached)
                    .execute(t.conn()?)
                    .await
                    .map(|r| r.rows_affected())
            }
        }
    }

    /// Runs a dynamic statement; returns the number of rows affected.
    pub(crate) async fn execute_dyn(&mut self, statement: Dyn) -> Result<u64> {
        let entity = self.entity;
        self.try_execute_dyn(statement)
            .await
            .map_err(|e| db_error(entity, e))
    }

    /// Runs a script of several statements (DDL).
    pub(crate) async fn execute_script(&mut self, script: &'static str) -> Result<()> {
        self.flush().await?;
        let out = async {
            match &mut self.inner {
                TxInner::Sqlite(t) => sqlx::raw_sql(script).execute(t.conn()?).await.map(|_| ()),
                TxInner::Postgres(t, _) => {
                    sqlx::raw_sql(script).execute(t.conn()?).await.map(|_| ())
                }
            }
        }
        .await;
        out.map_err(|e| db_error(self.entity, e))
    }

    /// Publishes committed changes of SQLite to `hub` (in-process feed).
    pub(crate) fn publish_to(&mut self, hub: Arc<ChangeHub>) {
        self.local = Some(hub);
    }

    /// Records a change this transaction makes; it is announced only if the transaction
    /// commits.
    pub(crate) fn announce(&mut self, event: ChangeEvent) {
        self.changes.push(event);
    }

    /// Runs the write `sql`, or on PostgreSQL, when the transaction has announced changes,
    /// `recorded`: the same write followed in the same statement by those changes recorded and
    /// notified (`changes::record_and_notify!`, its values after `args`), which saves the
    /// commit a round trip. The changes count as recorded once it has run. On SQLite a write
    /// whose failure may wait for the commit ([`When::Later`]) goes with
    /// [`Tx::execute_later`].
    pub(crate) async fn execute_recording(
        &mut self,
        when: When,
        sql: Sql,
        recorded: Sql,
        args: Vec<Arg>,
    ) -> Result<()> {
        match (self.dialect(), when) {
            (Dialect::Sqlite, When::Now) => self.execute(sql, args).await.map(drop),
            (Dialect::Sqlite, When::Later) => self.execute_later(sql, args).await,
            (Dialect::Postgres, _) => self.execute_recorded(sql, recorded, args).await,
        }
    }

    /// PostgreSQL's [`Tx::execute_recording`].
    async fn execute_recorded(&mut self, sql: Sql, recorded: Sql, args: Vec<Arg>) -> Result<()> {
        if let Some(values) = crate::changes::postgres_args(&self.changes)? {
            let mut args = args;
            args.extend(values);
            self.execute(recorded, args).await?;
            let changes = std::mem::take(&mut self.changes);
            return crate::changes::prune_if_due(self, &changes).await;
        }
        self.execute(sql, args).await.map(drop)
    }

    /// Runs a write whose outcome (rows affected) nobody reads. On SQLite it is gathered and
    /// sent with the writes around it in one round trip to the worker: before the next
    /// statement, or at the commit (with the changes recorded there), so that it runs in
    /// the order written; an error it meets is then the later call's, within the same
    /// transaction. PostgreSQL runs it now.
    pub(crate) async fn execute_later(&mut self, sql: Sql, args: Vec<Arg>) -> Result<()> {
        if self.dialect() == Dialect::Postgres {
            return self.execute(sql, args).await.map(drop);
        }
        let mut statement = Dyn::default();
        statement.statement(sql.text(Dialect::Sqlite), &args)?;
        self.execute_dyn_later(statement).await
    }

    /// [`Tx::execute_later`] for a dynamic statement. One too large to gather (a batch's,
    /// marked [`Dyn::one_off`]) first sends what is gathered, then runs by itself.
    pub(crate) async fn execute_dyn_later(&mut self, statement: Dyn) -> Result<()> {
        if self.dialect() == Dialect::Postgres || statement.one_off {
            return self.execute_dyn(statement).await.map(drop);
        }
        if self.later.binds() + statement.binds() > MAX_LATER_BINDS {
            self.flush().await?;
        }
        self.later.then(statement);
        Ok(())
    }

    /// Sends the writes gathered by [`Tx::execute_later`], if any.
    async fn flush(&mut self) -> Result<()> {
        let entity = self.entity;
        self.try_flush().await.map_err(|e| db_error(entity, e))
    }

    async fn try_flush(&mut self) -> std::result::Result<(), sqlx::Error> {
        if self.later.parts.is_empty() {
            return Ok(());
        }
        let later = std::mem::take(&mut self.later);
        self.run_dyn(later).await.map(drop)
    }

    /// Commits: first, inside the transaction, records the changes catch-up cannot find by
    /// `updated_at` and (PostgreSQL) notifies the listeners; then publishes to the in-process
    /// feed (SQLite).
    ///
    /// A caller that goes away while the commit runs (a cancelled request) does not keep its
    /// changes from the feed's live subscribers: SQLite's worker commits a commit it was sent
    /// whether or not anyone still waits, so the events are then published when the call is
    /// dropped ([`Publishing`]).
    pub(crate) async fn commit(mut self) -> Result<()> {
        let changes = std::mem::take(&mut self.changes);
        if !changes.is_empty() {
            crate::changes::record(&mut self, &changes).await?;
        }
        self.flush().await?;
        let publishing = Publishing {
            hub: self.local.take().filter(|_| !changes.is_empty()),
            changes,
        };
        match commit_inner(self.inner, self.entity).await {
            Ok(()) => {
                drop(publishing);
                Ok(())
            }
            Err(e) => {
                publishing.forget();
                Err(e)
            }
        }
    }
}

/// The events of a committing SQLite transaction, published to the in-process feed when
/// dropped: once the commit returned, or when its caller went away while it ran.
struct Publishing {
    hub: Option<Arc<ChangeHub>>,
    changes: Vec<ChangeEvent>,
}

impl Publishing {
    /// The commit failed: nothing to publish.
    fn forget(mut self) {
        self.hub = None;
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.take() {
            for event in std::mem::take(&mut self.changes) {
                hub.publish(event);
            }
        }
    }
}

async fn commit_inner(inner: TxInner, entity: &'static str) -> Result<()> {
    let out = match inner {
        TxInner::Sqlite(t) => t.commit().await,
        TxInner::Postgres(t, _) => t.commit().await,
    };
    out.map_err(|e| db_error(entity, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(sql: &'static str, args: &[Arg]) -> (String, Vec<Bound>) {
        let mut d = Dyn::default();
        d.statement(sql, args)
            .expect("every placeholder has its argument");
        d.render(Dialect::Sqlite)
    }

    #[test]
    fn a_static_statement_binds_its_placeholders_in_the_order_written() {
        let (sql, binds) = rendered(
            "DELETE FROM tag WHERE id = $1 AND user_id = $2 AND instr(meta, '\"' || $1 || '\"') > 0",
            &args!["t", "u"][..],
        );
        assert_eq!(
            sql,
            "DELETE FROM tag WHERE id = ? AND user_id = ? AND instr(meta, '\"' || ? || '\"') > 0"
        );
        let t = || Bound::Text(Some("t".into()));
        assert_eq!(binds, vec![t(), Bound::Text(Some("u".into())), t()]);
    }

    #[test]
    fn dollar_signs_in_quotes_are_text_not_placeholders() {
        let (sql, binds) = rendered(
            "SELECT json_extract(meta, '$.tags[0]') AS \"$2\" FROM chat WHERE id = $10 AND x = 'it''s $1'",
            &(1..=10).map(|n| Arg::Int(Some(n))).collect::<Vec<_>>(),
        );
        assert_eq!(
            sql,
            "SELECT json_extract(meta, '$.tags[0]') AS \"$2\" FROM chat WHERE id = ? AND x = 'it''s $1'"
        );
        assert_eq!(binds, vec![Bound::Int(Some(10))]);
    }

    #[test]
    fn a_placeholder_without_its_argument_is_refused() {
        let mut d = Dyn::default();
        let err = d
            .statement("UPDATE chat SET meta = $2 WHERE id = $1", &args!["c"][..])
            .map(drop)
            .expect_err("$2 has no argument");
        assert!(err.to_string().contains("$2"), "{err}");
        let err = Dyn::default()
            .statement("SELECT $0", &args!["c"][..])
            .map(drop)
            .expect_err("placeholders count from 1");
        assert!(err.to_string().contains("$0"), "{err}");
        Dyn::default()
            .statement("SELECT ?", &args!["c"][..])
            .map(drop)
            .expect_err("a ? placeholder is not renumbered");
        rendered("SELECT '?' AS \"?\"", &[]);
    }

    #[test]
    fn statements_gathered_for_later_follow_one_another() {
        let mut later = Dyn::default();
        let mut first = Dyn::default();
        first
            .statement(
                "UPDATE chat SET meta = $2 WHERE id = $1",
                &args!["c", "{}"][..],
            )
            .expect("every placeholder has its argument");
        let mut second = Dyn::default();
        second
            .statement("DELETE FROM tag WHERE id = $1", &args!["t"][..])
            .expect("every placeholder has its argument");
        second.one_off();
        later.then(first);
        later.then(second);
        assert_eq!(later.binds(), 3);
        assert!(
            later.one_off,
            "one statement run once makes the whole run once"
        );
        assert_eq!(
            later.render(Dialect::Sqlite).0,
            "UPDATE chat SET meta = ? WHERE id = ?; DELETE FROM tag WHERE id = ?"
        );
    }

    /// On PostgreSQL a statement planned per call is never kept prepared on its connection,
    /// so no generic plan is ever made for it; the others are kept.
    #[tokio::test]
    async fn statements_planned_per_call_are_never_kept_prepared() {
        use sqlx::Connection as _;
        const KEPT: Sql = Sql::both("SELECT $1::text AS kept_statement");
        const PER_CALL: Sql = Sql::both("SELECT $1::text AS per_call_statement").planned_per_call();
        let Some(url) = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL") else {
            return;
        };
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        // More calls than PostgreSQL plans with the values before it may keep a generic plan.
        for call in 0..8 {
            for sql in [KEPT, PER_CALL] {
                let value = format!("v{call}");
                let row = pg_query(sql, args![value.as_str()], Statements::Cached)
                    .fetch_one(&mut conn)
                    .await
                    .expect("run");
                assert_eq!(row.try_get::<String, _>(0).expect("value"), value);
            }
        }
        let kept: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
            .persistent(false)
            .fetch_all(&mut conn)
            .await
            .expect("prepared statements");
        assert!(
            kept.iter().any(|s| s.contains("kept_statement")),
            "{kept:#?}"
        );
        assert!(
            !kept.iter().any(|s| s.contains("per_call_statement")),
            "{kept:#?}"
        );
        let _ = conn.close().await;
    }
}
