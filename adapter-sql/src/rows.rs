//! [`RowStore`] on Open WebUI's own tables (`folder`, `knowledge`, `note`, `channel`, ... : the
//! [`chatstore_core::rows::tables`] specs), SQLite and PostgreSQL alike, so the typed models of
//! core read rows Open WebUI wrote and Open WebUI reads rows chatstore wrote.
//!
//! Statements are put together from the static table specs (names double-quoted: `group` is a
//! reserved word) and bound values only, through `sqlx::QueryBuilder`.
//!
//! Values, per [`ColumnKind`]:
//! - `Text` <-> string, `Int` <-> `i64`, `Bool` <-> SQLite `0`/`1`, PostgreSQL `boolean`;
//! - `Json`: SQLite TEXT, PostgreSQL `json` (bound as `json`, never `jsonb`, so the text is kept
//!   as written); `JsonText` (`model.params`, `model.meta`): TEXT on both;
//! - `null` in a JSON column is written as the JSON literal `null`, as Open WebUI (SQLAlchemy)
//!   writes Python's `None`; SQL `NULL` and JSON `null` both read as `null`, and
//!   [`Cond::IsNull`] / [`Cond::NotNull`] treat them alike.
//!
//! Reading is lenient where Open WebUI's data varies: JSON text with or without spaces; JSON
//! numbers SQLite stored as numbers (a column declared `JSON` has numeric affinity, so the
//! text `5` is kept as the integer 5); booleans as `0`/`1`, `'1'`, `'true'`; integers stored as
//! text or as whole reals; PostgreSQL `integer` columns where 0.12.4 has `bigint`. Timestamps are
//! read as stored: seconds or nanoseconds per table, never converted.
//!
//! Typed reads (core's records, through [`RowStore::select_cells`]) take the same cells in
//! column order instead of a [`Row`] map, JSON columns as their text: the record is
//! deserialized from them directly and each JSON cell is parsed once, into its field. A list
//! of 60 records so costs what a hand-written sqlx query decoding every column costs (the
//! benches' raw baseline), where the map and `serde_json::from_value` cost up to a third more.
//!
//! Conditions, orders and pages follow core's reference semantics ([`chatstore_core::rows::matches`],
//! [`chatstore_core::rows::sort_rows`]): text compares and sorts by bytes (`COLLATE "C"` on
//! PostgreSQL), nulls first ascending and last descending, the primary key last.
//! [`Cond::ContainsCi`] folds ASCII letters only, the same on both engines (SQLite `lower()`,
//! PostgreSQL `translate()` of `A-Z`), and looks the text up with `instr`/`strpos`, so `%` and
//! `_` are plain characters. [`Cond::In`] binds one list whatever its length (a PostgreSQL
//! array, a JSON array on SQLite).
//!
//! A write is one transaction for the whole batch. Consecutive inserts or upserts of one table
//! become multi-row statements of at most [`MAX_BINDS`] values; an upsert is
//! `INSERT ... ON CONFLICT (primary key) DO UPDATE SET` every other column. A taken primary key
//! or unique value is `Conflict`. A foreign key, check or not-null rule the database refuses is
//! `InvalidInput` naming the table and column (e.g. `knowledge_file.file_id: no file has id
//! "f1"`): the row refers to something that does not exist, and the caller has to create it
//! first; nothing of the batch is kept.

use std::collections::HashSet;

use async_trait::async_trait;
use chatstore_core::rows::{
    Cell, Column, ColumnKind, Cond, Dir, Row, RowOp, RowQuery, RowStore, Table,
};
use chatstore_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::PgValueFormat;
use sqlx::{Row as _, TypeInfo as _, ValueRef as _};

use crate::SqlStore;
use crate::error::{Integrity, db_error, integrity};
use crate::pool::{Arg, Bound, Dialect, Dyn, List, Mode, Row as DbRow, Tx};

/// Values bound in one statement at most (SQLite allows 32 766, PostgreSQL 65 535).
pub const MAX_BINDS: usize = 30_000;

/// Rows in one multi-row insert at most.
const MAX_ROWS: usize = 1_000;

/// A foreign key of Open WebUI 0.12.4 from one of the [row tables](chatstore_core::rows::tables)
/// (identical in its SQLite and PostgreSQL DDL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignKey {
    /// The table holding the reference.
    pub table: &'static str,
    /// Its column.
    pub column: &'static str,
    /// The table referred to.
    pub parent: &'static str,
    /// Its column (always `id`).
    pub parent_column: &'static str,
}

const fn fk(
    table: &'static str,
    column: &'static str,
    parent: &'static str,
    parent_column: &'static str,
) -> ForeignKey {
    ForeignKey {
        table,
        column,
        parent,
        parent_column,
    }
}

/// Every foreign key of the row tables. Deleting a parent cascades to its children, except
/// `group.parent_group_id` and `knowledge_file.directory_id`, which are set to null.
pub static FOREIGN_KEYS: &[ForeignKey] = &[
    fk("group", "parent_group_id", "group", "id"),
    fk("group_member", "user_id", "user", "id"),
    fk("group_member", "group_id", "group", "id"),
    fk(
        "knowledge_directory",
        "parent_id",
        "knowledge_directory",
        "id",
    ),
    fk("knowledge_directory", "knowledge_id", "knowledge", "id"),
    fk("knowledge_file", "knowledge_id", "knowledge", "id"),
    fk("knowledge_file", "file_id", "file", "id"),
    fk(
        "knowledge_file",
        "directory_id",
        "knowledge_directory",
        "id",
    ),
    fk("pinned_note", "note_id", "note", "id"),
    fk("channel_file", "channel_id", "channel", "id"),
    fk("channel_file", "file_id", "file", "id"),
    fk("channel_file", "message_id", "message", "id"),
    fk("shared_chat", "chat_id", "chat", "id"),
    fk("chat_file", "file_id", "file", "id"),
    fk("chat_file", "chat_id", "chat", "id"),
];

/// The row store of a [`SqlStore`]: Open WebUI's remaining tables on its database. Cheap to
/// clone. [`SqlStore::store`] puts it, checked, behind [`chatstore_core::Store::rows`].
#[derive(Debug, Clone)]
pub struct SqlRows {
    store: SqlStore,
}

impl SqlStore {
    /// This database's row store (unchecked: [`chatstore_core::Store::with_rows`] puts core's
    /// one check in front of it, as [`SqlStore::store`] does).
    pub fn rows(&self) -> SqlRows {
        SqlRows {
            store: self.clone(),
        }
    }
}

#[async_trait]
impl RowStore for SqlRows {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        let statement = select_statement(table, query, self.store.dialect())?;
        self.store
            .pool()
            .fetch_dyn(table.name, statement)
            .await?
            .iter()
            .map(|r| read_row(table, r))
            .collect()
    }

    async fn select_cells(
        &self,
        table: &'static Table,
        query: &RowQuery,
    ) -> Result<Vec<Vec<Cell>>> {
        let statement = select_statement(table, query, self.store.dialect())?;
        self.store
            .pool()
            .fetch_dyn(table.name, statement)
            .await?
            .iter()
            .map(|r| read_cells(table, r))
            .collect()
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        let d = count_statement(table, filter, self.store.dialect())?;
        let rows = self.store.pool().fetch_dyn(table.name, d).await?;
        let n = match rows.first() {
            Some(DbRow::Sqlite(r)) => r.try_get::<i64, _>(0),
            Some(DbRow::Postgres(r)) => r.try_get::<i64, _>(0),
            None => Ok(0),
        }
        .map_err(|e| db_error(table.name, e))?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        let dialect = self.store.dialect();
        let mut tx = self.store.pool().begin("row", Mode::Write).await?;
        let mut counts = Vec::with_capacity(ops.len());
        let mut i = 0;
        while i < ops.len() {
            match &ops[i] {
                RowOp::Insert { table, .. } | RowOp::Upsert { table, .. } => {
                    let upsert = matches!(ops[i], RowOp::Upsert { .. });
                    // The run of inserts (or upserts) into this table starting here.
                    let run: Vec<&Row> = ops[i..]
                        .iter()
                        .map_while(|op| match op {
                            RowOp::Insert { table: t, row } if !upsert && t.name == table.name => {
                                Some(row)
                            }
                            RowOp::Upsert { table: t, row } if upsert && t.name == table.name => {
                                Some(row)
                            }
                            _ => None,
                        })
                        .collect();
                    insert_rows(&mut tx, table, &run, upsert).await?;
                    counts.extend(std::iter::repeat_n(1, run.len()));
                    i += run.len();
                }
                RowOp::Update { table, filter, set } => {
                    if filter.is_empty() || set.is_empty() {
                        return Err(Error::invalid(format!(
                            "an update of {} needs a filter and a column to set",
                            table.name
                        )));
                    }
                    let mut d = Dyn::default();
                    d.sql("UPDATE ").ident(table.name).sql(" SET ");
                    let mut first = true;
                    for (name, value) in set {
                        let column = column(table, name)?;
                        if !first {
                            d.sql(", ");
                        }
                        first = false;
                        d.ident(column.name)
                            .sql(" = ")
                            .bind(write_arg(table, column, value)?);
                    }
                    push_where(&mut d, table, filter, dialect)?;
                    let n = run(&mut tx, table, d, &[set]).await?;
                    counts.push(n);
                    i += 1;
                }
                RowOp::Delete { table, filter } => {
                    if filter.is_empty() {
                        return Err(Error::invalid(format!(
                            "a delete of every row of {} is refused: give a filter",
                            table.name
                        )));
                    }
                    let mut d = Dyn::default();
                    d.sql("DELETE FROM ").ident(table.name);
                    push_where(&mut d, table, filter, dialect)?;
                    counts.push(run(&mut tx, table, d, &[]).await?);
                    i += 1;
                }
            }
        }
        tx.commit().await?;
        Ok(counts)
    }
}

/// Inserts (or upserts) `rows` into `table` in multi-row statements.
async fn insert_rows(
    tx: &mut Tx,
    table: &'static Table,
    rows: &[&Row],
    upsert: bool,
) -> Result<()> {
    let per = (MAX_BINDS / table.columns.len().max(1)).clamp(1, MAX_ROWS);
    // PostgreSQL refuses an upsert that meets one key twice in one statement: a key seen
    // again starts the next statement, so the later row wins, in order.
    let mut start = 0;
    while start < rows.len() {
        let mut keys = HashSet::new();
        let mut end = start;
        while end < rows.len() && end - start < per {
            if upsert && !keys.insert(table.key_of(rows[end])) {
                break;
            }
            end += 1;
        }
        let chunk = &rows[start..end];
        run(tx, table, insert_statement(table, chunk, upsert)?, chunk).await?;
        start = end;
    }
    Ok(())
}

fn insert_statement(table: &'static Table, rows: &[&Row], upsert: bool) -> Result<Dyn> {
    let mut d = Dyn::default();
    d.sql("INSERT INTO ").ident(table.name).sql(" (");
    push_columns(&mut d, table);
    d.sql(") VALUES ");
    for (n, row) in rows.iter().enumerate() {
        d.sql(if n == 0 { "(" } else { ", (" });
        for (k, column) in table.columns.iter().enumerate() {
            if k > 0 {
                d.sql(", ");
            }
            let value = row.get(column.name).unwrap_or(&Value::Null);
            d.bind(write_arg(table, column, value)?);
        }
        d.sql(")");
    }
    if upsert {
        d.sql(" ON CONFLICT (");
        for (k, key) in table.primary_key.iter().enumerate() {
            if k > 0 {
                d.sql(", ");
            }
            d.ident(key);
        }
        let others = table
            .columns
            .iter()
            .filter(|c| !table.primary_key.contains(&c.name));
        d.sql(") DO UPDATE SET ");
        for (k, column) in others.enumerate() {
            if k > 0 {
                d.sql(", ");
            }
            d.ident(column.name).sql(" = excluded.").ident(column.name);
        }
    }
    if rows.len() > 1 {
        // Its shape depends on the batch: not worth a prepared statement per size.
        d.one_off();
    }
    Ok(d)
}

/// Runs one write statement of `table`; a refusal is classified (see the module docs).
/// `rows` are the rows it writes (or the columns it sets), for naming a missing parent.
async fn run(tx: &mut Tx, table: &'static Table, statement: Dyn, rows: &[&Row]) -> Result<u64> {
    match tx.try_execute_dyn(statement).await {
        Ok(n) => Ok(n),
        Err(e) => Err(refused(tx, table, rows, e).await),
    }
}

/// The error for a write the database refused.
async fn refused(tx: &mut Tx, table: &'static Table, rows: &[&Row], err: sqlx::Error) -> Error {
    match integrity(&err) {
        Some(Integrity::ForeignKey {
            detail: Some(detail),
        }) => {
            // PostgreSQL: `Key (file_id)=(f1) is not present in table "file".`
            match parse_pg_detail(&detail) {
                Some((column, value, parent)) => Error::invalid(format!(
                    "{}.{column}: no {parent} has id {value:?}; write that row first \
                     (foreign key {}.{column} -> {parent})",
                    table.name, table.name
                )),
                None => Error::invalid(format!(
                    "{}: a foreign key refused the write: {detail}",
                    table.name
                )),
            }
        }
        Some(Integrity::ForeignKey { detail: None }) => {
            // SQLite names no column: find the reference that has no parent.
            match missing_parent(tx, table, rows).await {
                Ok(Some((key, value))) => Error::invalid(format!(
                    "{}.{}: no {} has id {value:?}; write that row first (foreign key {}.{} -> {})",
                    table.name, key.column, key.parent, table.name, key.column, key.parent
                )),
                _ => Error::invalid(format!(
                    "{}: a foreign key refused the write (a row refers to a missing row, or a \
                     deleted row is still referred to): {err}",
                    table.name
                )),
            }
        }
        Some(Integrity::Rule) => Error::invalid(format!(
            "{}: the database refused the row: {}",
            table.name,
            match &err {
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            }
        )),
        None => db_error(table.name, err),
    }
}

/// `(column, value, parent table)` of PostgreSQL's foreign key detail.
fn parse_pg_detail(detail: &str) -> Option<(&str, &str, &str)> {
    let rest = detail.strip_prefix("Key (")?;
    let (column, rest) = rest.split_once(")=(")?;
    let (value, rest) = rest.split_once(") is not present in table \"")?;
    let parent = rest.strip_suffix("\".")?;
    Some((column, value, parent))
}

/// The first foreign key of `table` whose value in one of `rows` names no parent row (asked in
/// the failed transaction: SQLite keeps it usable after a failed statement, and parents
/// written earlier in the batch count).
async fn missing_parent(
    tx: &mut Tx,
    table: &'static Table,
    rows: &[&Row],
) -> Result<Option<(&'static ForeignKey, String)>> {
    for row in rows {
        for key in FOREIGN_KEYS.iter().filter(|k| k.table == table.name) {
            let Some(Value::String(value)) = row.get(key.column) else {
                continue;
            };
            let mut d = Dyn::default();
            d.sql("SELECT 1 FROM ")
                .ident(key.parent)
                .sql(" WHERE ")
                .ident(key.parent_column)
                .sql(" = ")
                .bind(value.as_str())
                .sql(" LIMIT 1");
            if tx.fetch_dyn(d).await?.is_empty() {
                return Ok(Some((key, value.clone())));
            }
        }
    }
    Ok(None)
}

fn push_columns(d: &mut Dyn, table: &'static Table) {
    for (k, column) in table.columns.iter().enumerate() {
        if k > 0 {
            d.sql(", ");
        }
        d.ident(column.name);
    }
}

/// The text and bound values of the statement [`SqlRows::select`] sends for `query` on
/// `table` in `dialect`: for raw baselines (chatstore-benches) that must send exactly the row
/// store's statements.
pub fn select_text(
    table: &'static Table,
    query: &RowQuery,
    dialect: Dialect,
) -> Result<(String, Vec<Bound>)> {
    Ok(select_statement(table, query, dialect)?.render(dialect))
}

/// The text and bound values of the statement [`SqlRows::count`] sends (see [`select_text`]).
pub fn count_text(
    table: &'static Table,
    filter: &[Cond],
    dialect: Dialect,
) -> Result<(String, Vec<Bound>)> {
    Ok(count_statement(table, filter, dialect)?.render(dialect))
}

/// `SELECT count(*)` of the rows of `table` matching `filter`.
fn count_statement(table: &'static Table, filter: &[Cond], dialect: Dialect) -> Result<Dyn> {
    let mut d = Dyn::default();
    d.sql("SELECT count(*) FROM ").ident(table.name);
    push_where(&mut d, table, filter, dialect)?;
    Ok(d)
}

/// `SELECT` every column of `table` for `query`.
fn select_statement(table: &'static Table, query: &RowQuery, dialect: Dialect) -> Result<Dyn> {
    let mut d = Dyn::default();
    d.sql("SELECT ");
    push_columns(&mut d, table);
    d.sql(" FROM ").ident(table.name);
    push_where(&mut d, table, &query.filter, dialect)?;
    d.sql(" ORDER BY ");
    let mut first = true;
    for (name, dir) in &query.order {
        let column = column(table, name)?;
        if matches!(column.kind, ColumnKind::Json | ColumnKind::JsonText) {
            return Err(Error::invalid(format!(
                "{}.{name} is a JSON column and cannot be sorted by",
                table.name
            )));
        }
        if !first {
            d.sql(", ");
        }
        first = false;
        push_sort_key(&mut d, column, dialect);
        // A primary key column is never null on PostgreSQL, so where nulls go changes
        // nothing, and saying nothing lets the key's own order serve: an index's ascending
        // order keeps nulls last, and a keyset page asking for `ASC NULLS FIRST` would sort
        // every row after its cursor instead of reading the key's index (`indexes`).
        let never_null = dialect == Dialect::Postgres && table.primary_key.contains(name);
        d.sql(match (dir, never_null) {
            (Dir::Asc, false) => " ASC NULLS FIRST",
            (Dir::Desc, false) => " DESC NULLS LAST",
            (Dir::Asc, true) => " ASC",
            (Dir::Desc, true) => " DESC",
        });
    }
    // The primary key last: every order is total, pages never skip or repeat a row.
    for key in table.primary_key {
        if query.order.iter().any(|(name, _)| name == key) {
            continue;
        }
        let column = column(table, key)?;
        if !first {
            d.sql(", ");
        }
        first = false;
        push_sort_key(&mut d, column, dialect);
    }
    if query.limit.is_some() || query.offset > 0 {
        let limit = query
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        d.sql(" LIMIT ").bind(limit);
    }
    if query.offset > 0 {
        d.sql(" OFFSET ")
            .bind(i64::try_from(query.offset).unwrap_or(i64::MAX));
    }
    Ok(d)
}

/// A column as a sort or range key: text by bytes on PostgreSQL too.
fn push_sort_key(d: &mut Dyn, column: &'static Column, dialect: Dialect) {
    d.ident(column.name);
    if dialect == Dialect::Postgres && column.kind == ColumnKind::Text {
        d.sql(" COLLATE \"C\"");
    }
}

fn push_where(d: &mut Dyn, table: &'static Table, filter: &[Cond], dialect: Dialect) -> Result<()> {
    if filter.is_empty() {
        return Ok(());
    }
    d.sql(" WHERE ");
    push_all(d, table, filter, dialect)
}

/// The conditions joined by `AND` (`1 = 1` for none).
fn push_all(d: &mut Dyn, table: &'static Table, filter: &[Cond], dialect: Dialect) -> Result<()> {
    if filter.is_empty() {
        d.sql("1 = 1");
        return Ok(());
    }
    for (k, cond) in filter.iter().enumerate() {
        if k > 0 {
            d.sql(" AND ");
        }
        push_cond(d, table, cond, dialect)?;
    }
    Ok(())
}

/// ASCII letters, for PostgreSQL's `translate()` (its `lower()` follows the database's locale).
const ASCII_UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const ASCII_LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";

fn push_cond(d: &mut Dyn, table: &'static Table, cond: &Cond, dialect: Dialect) -> Result<()> {
    let pg = dialect == Dialect::Postgres;
    match cond {
        Cond::Eq(name, Value::Null) | Cond::IsNull(name) => push_null(d, column(table, name)?, pg),
        Cond::Ne(name, Value::Null) | Cond::NotNull(name) => {
            d.sql("NOT ");
            push_null(d, column(table, name)?, pg);
        }
        Cond::Eq(name, value) => {
            let column = scalar(table, name)?;
            d.ident(column.name)
                .sql(" = ")
                .bind(compare_arg(table, column, value)?);
        }
        Cond::Ne(name, value) => {
            let column = scalar(table, name)?;
            d.sql("(")
                .ident(column.name)
                .sql(" <> ")
                .bind(compare_arg(table, column, value)?)
                .sql(" OR ")
                .ident(column.name)
                .sql(" IS NULL)");
        }
        Cond::In(name, values) => {
            let column = scalar(table, name)?;
            let list = list_arg(table, column, values)?;
            if list_is_empty(&list) {
                d.sql("1 = 0");
            } else if pg {
                d.ident(column.name)
                    .sql(" = ANY(")
                    .bind(Arg::List(list))
                    .sql(")");
            } else {
                d.ident(column.name)
                    .sql(" IN (SELECT value FROM json_each(")
                    .bind(Arg::List(list))
                    .sql("))");
            }
        }
        Cond::Gt(name, value)
        | Cond::Ge(name, value)
        | Cond::Lt(name, value)
        | Cond::Le(name, value) => {
            let column = scalar(table, name)?;
            if value.is_null() {
                return Err(Error::invalid(format!(
                    "{}.{name}: a comparison needs a value, not null",
                    table.name
                )));
            }
            push_sort_key(d, column, dialect);
            d.sql(match cond {
                Cond::Gt(..) => " > ",
                Cond::Ge(..) => " >= ",
                Cond::Lt(..) => " < ",
                _ => " <= ",
            })
            .bind(compare_arg(table, column, value)?);
        }
        Cond::ContainsCi(name, needle) => {
            let column = column(table, name)?;
            if column.kind != ColumnKind::Text {
                return Err(Error::invalid(format!(
                    "{}.{name} is not a text column",
                    table.name
                )));
            }
            let needle = needle.to_ascii_lowercase();
            if pg {
                d.sql("strpos(translate(")
                    .ident(column.name)
                    .sql(", ")
                    .sql(ASCII_UPPER)
                    .sql(", ")
                    .sql(ASCII_LOWER)
                    .sql("), ")
                    .bind(needle)
                    .sql(") > 0");
            } else {
                // SQLite's built-in lower() folds ASCII letters only.
                d.sql("instr(lower(")
                    .ident(column.name)
                    .sql("), ")
                    .bind(needle)
                    .sql(") > 0");
            }
        }
        Cond::Any(alternatives) => {
            if alternatives.is_empty() {
                d.sql("1 = 0");
                return Ok(());
            }
            d.sql("(");
            for (k, alternative) in alternatives.iter().enumerate() {
                if k > 0 {
                    d.sql(" OR ");
                }
                d.sql("(");
                push_all(d, table, alternative, dialect)?;
                d.sql(")");
            }
            d.sql(")");
        }
    }
    Ok(())
}

/// `column` is null; for JSON columns, SQL `NULL` or the JSON literal `null`.
fn push_null(d: &mut Dyn, column: &'static Column, pg: bool) {
    match (column.kind, pg) {
        (ColumnKind::Json, true) => {
            d.sql("(")
                .ident(column.name)
                .sql(" IS NULL OR btrim(")
                .ident(column.name)
                .sql("::text) = 'null')");
        }
        (ColumnKind::Json | ColumnKind::JsonText, _) => {
            d.sql("(")
                .ident(column.name)
                .sql(" IS NULL OR trim(")
                .ident(column.name)
                .sql(") = 'null')");
        }
        _ => {
            d.sql("(").ident(column.name).sql(" IS NULL)");
        }
    }
}

fn list_is_empty(list: &List) -> bool {
    match list {
        List::Text(v) => v.is_empty(),
        List::Int(v) => v.is_empty(),
        List::Bool(v) => v.is_empty(),
        List::OptText(v) => v.is_empty(),
    }
}

fn column(table: &'static Table, name: &str) -> Result<&'static Column> {
    table
        .column(name)
        .ok_or_else(|| Error::invalid(format!("{} has no column {name:?}", table.name)))
}

/// A column conditions may compare (not JSON).
fn scalar(table: &'static Table, name: &str) -> Result<&'static Column> {
    let column = column(table, name)?;
    if matches!(column.kind, ColumnKind::Json | ColumnKind::JsonText) {
        return Err(Error::invalid(format!(
            "{}.{name} is a JSON column: only null checks apply to it",
            table.name
        )));
    }
    Ok(column)
}

fn wrong_kind(table: &Table, column: &Column, value: &Value) -> Error {
    Error::invalid(format!(
        "{}.{} wants {}, got {value}",
        table.name,
        column.name,
        match column.kind {
            ColumnKind::Text => "text",
            ColumnKind::Int => "an integer",
            ColumnKind::Bool => "true or false",
            ColumnKind::Json | ColumnKind::JsonText => "JSON",
        }
    ))
}

/// A non-null value compared with a scalar column.
fn compare_arg(table: &Table, column: &Column, value: &Value) -> Result<Arg> {
    match (column.kind, value) {
        (ColumnKind::Text, Value::String(s)) => Ok(Arg::Text(Some(s.clone()))),
        (ColumnKind::Int, Value::Number(n)) if n.is_i64() => Ok(Arg::Int(n.as_i64())),
        (ColumnKind::Bool, Value::Bool(b)) => Ok(Arg::Bool(Some(*b))),
        _ => Err(wrong_kind(table, column, value)),
    }
}

/// The non-null values of an `In`, as one list of the column's kind.
fn list_arg(table: &Table, column: &Column, values: &[Value]) -> Result<List> {
    let present = values.iter().filter(|v| !v.is_null());
    Ok(match column.kind {
        ColumnKind::Text => List::Text(
            present
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| wrong_kind(table, column, v))
                })
                .collect::<Result<_>>()?,
        ),
        ColumnKind::Int => List::Int(
            present
                .map(|v| v.as_i64().ok_or_else(|| wrong_kind(table, column, v)))
                .collect::<Result<_>>()?,
        ),
        ColumnKind::Bool => List::Bool(
            present
                .map(|v| v.as_bool().ok_or_else(|| wrong_kind(table, column, v)))
                .collect::<Result<_>>()?,
        ),
        ColumnKind::Json | ColumnKind::JsonText => {
            return Err(Error::invalid(format!(
                "{}.{} is a JSON column: only null checks apply to it",
                table.name, column.name
            )));
        }
    })
}

/// A value as written into `column` (see the module docs for JSON `null`).
fn write_arg(table: &Table, column: &Column, value: &Value) -> Result<Arg> {
    Ok(match (column.kind, value) {
        (ColumnKind::Text, Value::Null) => Arg::Text(None),
        (ColumnKind::Int, Value::Null) => Arg::Int(None),
        (ColumnKind::Bool, Value::Null) => Arg::Bool(None),
        (ColumnKind::Json, value) => Arg::Json(Some(value.to_string())),
        (ColumnKind::JsonText, value) => Arg::Text(Some(value.to_string())),
        _ => compare_arg(table, column, value)?,
    })
}

/// One result row as a [`Row`] (every column of `table`, in its order).
fn read_row(table: &'static Table, row: &DbRow) -> Result<Row> {
    let mut out = Row::new();
    for (i, column) in table.columns.iter().enumerate() {
        let value = match cell(row, i, column, false) {
            Ok(Cell::Value(value)) => Ok(value),
            Ok(Cell::JsonText(text)) => parse_json(&text),
            Err(e) => Err(e),
        }
        .map_err(|e| unreadable(table, column, out.get("id"), e))?;
        out.insert(column.name.to_owned(), value);
    }
    Ok(out)
}

/// One result row as its [`Cell`]s in `table`'s column order, JSON columns as their text:
/// what typed records are read from, without a map in between and with each JSON cell parsed
/// once, into its record field.
fn read_cells(table: &'static Table, row: &DbRow) -> Result<Vec<Cell>> {
    let mut out = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        match cell(row, i, column, true) {
            Ok(c) => out.push(c),
            Err(e) => {
                let id = match table.columns.iter().position(|c| c.name == "id") {
                    Some(k) => match out.get(k) {
                        Some(Cell::Value(id)) => Some(id),
                        _ => None,
                    },
                    None => None,
                };
                return Err(unreadable(table, column, id, e));
            }
        }
    }
    Ok(out)
}

/// Cell `i` of `row`; with `json_text`, a JSON column's text is kept unparsed.
fn cell(
    row: &DbRow,
    i: usize,
    column: &Column,
    json_text: bool,
) -> std::result::Result<Cell, CellError> {
    match row {
        DbRow::Sqlite(r) => sqlite_value(r, i, column, json_text),
        DbRow::Postgres(r) => pg_value(r, i, column, json_text),
    }
}

/// A cell chatstore cannot read as its column's kind.
fn unreadable(table: &Table, column: &Column, id: Option<&Value>, err: CellError) -> Error {
    let id = id.and_then(Value::as_str).unwrap_or("?");
    let what = format!("{}.{} of row {id:?}", table.name, column.name);
    match err {
        CellError::Driver(e) => Error::backend(format!("{what} cannot be read"), e),
        CellError::Decode(e) => Error::backend(format!("{what} cannot be read"), e),
        CellError::Json(e) => Error::backend(format!("{what} does not hold valid JSON"), e),
        CellError::Kind(found) => Error::backend_msg(format!(
            "{what} holds {found}, which is not {}",
            match column.kind {
                ColumnKind::Text => "text",
                ColumnKind::Int => "an integer",
                ColumnKind::Bool => "a boolean",
                ColumnKind::Json | ColumnKind::JsonText => "JSON",
            }
        )),
    }
}

enum CellError {
    Driver(sqlx::Error),
    Decode(sqlx::error::BoxDynError),
    Json(serde_json::Error),
    Kind(String),
}

impl From<sqlx::Error> for CellError {
    fn from(e: sqlx::Error) -> Self {
        CellError::Driver(e)
    }
}

fn parse_json(text: &str) -> std::result::Result<Value, CellError> {
    serde_json::from_str(text).map_err(CellError::Json)
}

/// Text that means a boolean (`1`, `true`, `t`, and their opposites).
fn text_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" => Some(true),
        "0" | "false" | "f" => Some(false),
        _ => None,
    }
}

/// SQLite's storage classes (SQLite keeps a type per value, not per column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Integer,
    Real,
    Text,
    Blob,
}

/// SQLite: the cell as stored, decoded straight from the value (one lookup per cell).
fn sqlite_value(
    r: &sqlx::sqlite::SqliteRow,
    i: usize,
    column: &Column,
    json_text: bool,
) -> std::result::Result<Cell, CellError> {
    use sqlx::{Decode, Sqlite};
    let raw = r.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Cell::Value(Value::Null));
    }
    let stored = match raw.type_info().name() {
        "INTEGER" | "BOOLEAN" => Stored::Integer,
        "REAL" => Stored::Real,
        "TEXT" => Stored::Text,
        _ => Stored::Blob,
    };
    let int = |raw| <i64 as Decode<Sqlite>>::decode(raw).map_err(CellError::Decode);
    let real = |raw| <f64 as Decode<Sqlite>>::decode(raw).map_err(CellError::Decode);
    let text = |raw| <&str as Decode<Sqlite>>::decode(raw).map_err(CellError::Decode);
    Ok(Cell::Value(match (column.kind, stored) {
        (ColumnKind::Int, Stored::Integer) => Value::from(int(raw)?),
        (ColumnKind::Int, Stored::Real) => {
            let f = real(raw)?;
            if f.is_finite() && f.fract() == 0.0 {
                Value::from(f as i64)
            } else {
                return Err(CellError::Kind(format!("the real number {f}")));
            }
        }
        (ColumnKind::Int, Stored::Text) => {
            let s = text(raw)?;
            Value::from(
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| CellError::Kind(format!("the text {s:?}")))?,
            )
        }
        (ColumnKind::Bool, Stored::Integer) => Value::Bool(int(raw)? != 0),
        (ColumnKind::Bool, Stored::Real) => Value::Bool(real(raw)? != 0.0),
        (ColumnKind::Bool, Stored::Text) => {
            let s = text(raw)?;
            Value::Bool(text_bool(s).ok_or_else(|| CellError::Kind(format!("the text {s:?}")))?)
        }
        (ColumnKind::Text, Stored::Text) => Value::String(text(raw)?.to_owned()),
        (ColumnKind::Text, Stored::Integer) => Value::String(int(raw)?.to_string()),
        (ColumnKind::Text, Stored::Real) => Value::String(real(raw)?.to_string()),
        (ColumnKind::Json | ColumnKind::JsonText, Stored::Text) if json_text => {
            return Ok(Cell::JsonText(text(raw)?.to_owned()));
        }
        (ColumnKind::Json | ColumnKind::JsonText, Stored::Text) => parse_json(text(raw)?)?,
        // A column declared JSON has numeric affinity: SQLite keeps JSON numbers as numbers.
        (ColumnKind::Json | ColumnKind::JsonText, Stored::Integer) => Value::from(int(raw)?),
        (ColumnKind::Json | ColumnKind::JsonText, Stored::Real) => Value::from(real(raw)?),
        (_, Stored::Blob) => return Err(CellError::Kind("a blob".to_owned())),
    }))
}

/// PostgreSQL: the cell by its column's kind, accepting the older types Open WebUI used.
fn pg_value(
    r: &sqlx::postgres::PgRow,
    i: usize,
    column: &Column,
    json_text: bool,
) -> std::result::Result<Cell, CellError> {
    Ok(Cell::Value(match column.kind {
        ColumnKind::Text => r
            .try_get::<Option<String>, _>(i)?
            .map_or(Value::Null, Value::String),
        ColumnKind::Int => match r.try_get::<Option<i64>, _>(i) {
            Ok(v) => v.map_or(Value::Null, Value::from),
            Err(sqlx::Error::ColumnDecode { .. }) => r
                .try_get::<Option<i32>, _>(i)?
                .map_or(Value::Null, Value::from),
            Err(e) => return Err(e.into()),
        },
        ColumnKind::Bool => r
            .try_get::<Option<bool>, _>(i)?
            .map_or(Value::Null, Value::Bool),
        ColumnKind::Json | ColumnKind::JsonText => {
            // Parsed straight from the value's bytes: `json` and `text` send their text,
            // `jsonb` in binary form a version byte first.
            let raw = r.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Cell::Value(Value::Null));
            }
            let skip = usize::from(
                raw.format() == PgValueFormat::Binary && raw.type_info().name() == "JSONB",
            );
            let bytes = raw.as_bytes().map_err(CellError::Decode)?;
            let bytes = bytes.get(skip..).unwrap_or_default();
            match std::str::from_utf8(bytes) {
                Ok(text) if json_text => return Ok(Cell::JsonText(text.to_owned())),
                _ => serde_json::from_slice(bytes).map_err(CellError::Json)?,
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::{Bound, Dialect, FOREIGN_KEYS, parse_pg_detail, select_text};
    use chatstore_core::rows::cascades::{CHAT_CASCADES, Cascade, FILE_CASCADES};
    use chatstore_core::rows::{Cond, Dir, RowQuery, tables};

    /// What the memory model and PocketBase delete with a chat or a file (core's cascades) is
    /// exactly what Open WebUI's foreign keys to `chat` and `file` cascade to on SQL.
    #[test]
    fn cores_cascades_are_the_foreign_keys_to_chat_and_file() {
        for (parent, cascades) in [("chat", CHAT_CASCADES), ("file", FILE_CASCADES)] {
            let mut keys: Vec<(&str, &str)> = FOREIGN_KEYS
                .iter()
                .filter(|k| k.parent == parent)
                .map(|k| (k.table, k.column))
                .collect();
            let mut core: Vec<(&str, &str)> = cascades
                .iter()
                .map(|c: &Cascade| (c.table.name, c.column))
                .collect();
            keys.sort_unstable();
            core.sort_unstable();
            assert_eq!(core, keys, "rows deleted with a {parent}");
        }
    }

    /// The statement text shown to raw baselines is the one the row store sends: quoted names,
    /// the dialect's placeholders, binds in order, text keys by bytes on PostgreSQL.
    #[test]
    fn select_text_renders_the_row_stores_statement() {
        let query = RowQuery::filter(vec![Cond::Eq("user_id", "u1".into())])
            .order_by("updated_at", Dir::Desc)
            .page(0, Some(60));
        let columns =
            "\"id\", \"user_id\", \"title\", \"data\", \"meta\", \"created_at\", \"updated_at\"";
        let (sqlite, binds) =
            select_text(&tables::NOTE, &query, Dialect::Sqlite).expect("sqlite text");
        assert_eq!(
            sqlite,
            format!(
                "SELECT {columns} FROM \"note\" WHERE \"user_id\" = ? \
                 ORDER BY \"updated_at\" DESC NULLS LAST, \"id\" LIMIT ?"
            )
        );
        assert_eq!(
            binds,
            vec![Bound::Text(Some("u1".into())), Bound::Int(Some(60))]
        );
        let (pg, _) = select_text(&tables::NOTE, &query, Dialect::Postgres).expect("pg text");
        assert!(
            pg.ends_with("WHERE \"user_id\" = $1 ORDER BY \"updated_at\" DESC NULLS LAST, \"id\" COLLATE \"C\" LIMIT $2"),
            "{pg}"
        );
    }

    #[test]
    fn postgres_foreign_key_details_name_column_value_and_parent() {
        assert_eq!(
            parse_pg_detail(r#"Key (file_id)=(f-1) is not present in table "file"."#),
            Some(("file_id", "f-1", "file"))
        );
        assert_eq!(
            parse_pg_detail(r#"Key (id)=(k1) is still referenced from table "x"."#),
            None
        );
    }
}
