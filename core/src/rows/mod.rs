//! Rows: the storage primitive under Open WebUI's remaining models (folders, knowledge, notes,
//! memories, prompts, models, groups, channels, feedback, access grants, shared chats).
//!
//! Those models are many and small, and they share their machinery (per-user lists, access
//! grants, history tables). Instead of one repository per model per backend, each backend
//! implements one [`RowStore`] over Open WebUI's own tables ([`tables`]): select with a
//! [`RowQuery`], count, and an atomic batch of [`RowOp`]s. The typed, documented repositories
//! of each model are written once, in core, on top of it (see [`crate::models`]), so a rule such
//! as "deleting a folder deletes its sub-folders" is written once and holds on every backend.
//! The rows a deleted chat or file takes with it (Open WebUI's `ON DELETE CASCADE` foreign keys)
//! are listed once too, in [`cascades`].
//!
//! A [`Row`] is one table row as JSON, keyed by Open WebUI's column names: text columns as
//! strings, `BIGINT` columns as integers, booleans as booleans, JSON columns as their parsed
//! value, SQL `NULL` as `null`. Timestamps are kept exactly as the table stores them (seconds
//! for most tables, nanoseconds for channels and channel messages: see each [`Table`]).
//!
//! Column names in conditions and orders are `&'static str`s naming a column of the table:
//! they come from code, never from user input, and [`check_op`] / [`check_query`] refuse any
//! other. Values are always bound (SQL) or escaped by the one escaping function (PocketBase).

pub mod cascades;
pub mod cells;
pub mod tables;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::{Error, Result};

pub use cells::Cell;
pub use tables::{ALL_TABLES, table};

/// One row: column name -> value. See the [module docs](self) for the value of each kind.
pub type Row = Map<String, Value>;

/// The kind of a column, as Open WebUI declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `TEXT` / `VARCHAR`: a JSON string.
    Text,
    /// `BIGINT`: a JSON integer (`i64`).
    Int,
    /// `BOOLEAN`: a JSON boolean (SQLite stores 0/1).
    Bool,
    /// `JSON`: any JSON value, stored as JSON text. Open WebUI writes Python `None` as the JSON
    /// literal `null`; a reader sees SQL `NULL` and JSON `null` alike as `null`.
    Json,
    /// `TEXT` holding JSON (the `model` table's `params` and `meta`): any JSON value, stored as
    /// its JSON text.
    JsonText,
}

/// One column of a [`Table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Open WebUI's column name.
    pub name: &'static str,
    /// Its kind.
    pub kind: ColumnKind,
    /// Whether `null` is allowed.
    pub nullable: bool,
}

/// One of Open WebUI's tables, as chatstore stores it on every backend.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    /// Open WebUI's table name (`folder`, `knowledge_file`, ...).
    pub name: &'static str,
    /// Every column chatstore reads and writes, in Open WebUI's order.
    pub columns: &'static [Column],
    /// The primary key columns (`["id"]` everywhere except `folder`: `["id", "user_id"]`).
    /// Backends key rows by all of them: two users' folders may share an id.
    pub primary_key: &'static [&'static str],
    /// Unique constraints besides the primary key.
    pub unique: &'static [&'static [&'static str]],
    /// Columns lists are filtered or sorted by: backends index them.
    pub indexes: &'static [&'static [&'static str]],
    /// The column naming the user who owns a row, if any: deleting a user deletes these rows.
    pub owner: Option<&'static str>,
    /// The unit of the table's `*_at` timestamps.
    pub time_unit: TimeUnit,
}

/// The unit of a table's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Epoch seconds (`int(time.time())`).
    Seconds,
    /// Epoch nanoseconds (`time.time_ns()`).
    Nanos,
}

impl TimeUnit {
    /// Now, in this unit.
    pub fn now(self) -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        match self {
            TimeUnit::Seconds => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
            TimeUnit::Nanos => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX),
        }
    }
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The row's primary key values joined by `/` (for messages and maps).
    pub fn key_of(&self, row: &Row) -> String {
        self.primary_key
            .iter()
            .map(|k| match row.get(*k) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// A condition on one column. Conditions in a list all hold (AND); [`Cond::Any`] is an OR.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The column equals the value (`null` means the column is null).
    Eq(&'static str, Value),
    /// The column differs from the value, or is null.
    Ne(&'static str, Value),
    /// The column is one of the values (an empty list matches nothing).
    In(&'static str, Vec<Value>),
    /// The column is null.
    IsNull(&'static str),
    /// The column is not null.
    NotNull(&'static str),
    /// The column is greater than the value.
    Gt(&'static str, Value),
    /// The column is greater than or equal to the value.
    Ge(&'static str, Value),
    /// The column is less than the value.
    Lt(&'static str, Value),
    /// The column is less than or equal to the value.
    Le(&'static str, Value),
    /// The text column contains the text, ignoring the case of ASCII letters (other characters
    /// must match exactly: SQLite's `lower()` folds ASCII only, so every backend does the same).
    ContainsCi(&'static str, String),
    /// At least one of the condition lists holds (each list is an AND).
    Any(Vec<Vec<Cond>>),
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

/// A select: conditions, order, and a page. Backends add the primary key as the last sort key,
/// so every order is total and pages never skip or repeat a row. Nulls sort first ascending,
/// last descending, on every backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowQuery {
    /// Conditions that all hold.
    pub filter: Vec<Cond>,
    /// Sort keys, most significant first.
    pub order: Vec<(&'static str, Dir)>,
    /// Rows to skip.
    pub offset: u64,
    /// At most this many rows; all when `None`.
    pub limit: Option<u64>,
}

impl RowQuery {
    /// Rows matching `filter`, in primary key order.
    pub fn filter(filter: Vec<Cond>) -> Self {
        RowQuery {
            filter,
            ..RowQuery::default()
        }
    }

    /// The same query sorted by `column` in `dir` (appended after earlier sort keys).
    pub fn order_by(mut self, column: &'static str, dir: Dir) -> Self {
        self.order.push((column, dir));
        self
    }

    /// The same query, one page.
    pub fn page(mut self, offset: u64, limit: Option<u64>) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }
}

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOp {
    /// Adds a row; `Conflict` when its primary key or a unique constraint is taken.
    Insert {
        /// The table.
        table: &'static Table,
        /// The whole row (missing nullable columns are null).
        row: Row,
    },
    /// Adds a row or replaces the row with the same primary key (every column); `Conflict`
    /// when another row holds one of its unique values.
    Upsert {
        /// The table.
        table: &'static Table,
        /// The whole row.
        row: Row,
    },
    /// Sets the given columns on every row matching the filter.
    Update {
        /// The table.
        table: &'static Table,
        /// Which rows.
        filter: Vec<Cond>,
        /// Column -> new value.
        set: Row,
    },
    /// Deletes every row matching the filter.
    Delete {
        /// The table.
        table: &'static Table,
        /// Which rows (an empty filter is refused: it would empty the table).
        filter: Vec<Cond>,
    },
}

impl RowOp {
    /// The table the op writes.
    pub fn table(&self) -> &'static Table {
        match self {
            RowOp::Insert { table, .. }
            | RowOp::Upsert { table, .. }
            | RowOp::Update { table, .. }
            | RowOp::Delete { table, .. } => table,
        }
    }
}

/// The storage primitive of Open WebUI's remaining tables. See the [module docs](self).
///
/// Implementations: the memory backend (the reference), SQL on Open WebUI's own tables
/// (SQLite, PostgreSQL), PocketBase (one collection per table). Every method sees input that
/// passed [`check_query`] / [`check_op`] (the store puts that check in front, see
/// [`crate::Store::with_rows`]).
#[async_trait]
pub trait RowStore: Send + Sync {
    /// Rows of `table` matching the query, in its order.
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>>;

    /// The same rows as [`RowStore::select`], each as its [`Cell`]s in the table's column
    /// order: what typed records are read from ([`cells::read`]). The default converts
    /// `select`'s maps; a backend that decodes cells itself (SQL) hands them over without
    /// building a map, JSON columns as their text.
    async fn select_cells(
        &self,
        table: &'static Table,
        query: &RowQuery,
    ) -> Result<Vec<Vec<Cell>>> {
        Ok(self
            .select(table, query)
            .await?
            .into_iter()
            .map(|row| cells::from_row(table, row))
            .collect())
    }

    /// How many rows of `table` match `filter`.
    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64>;

    /// Applies the ops in order, all or nothing; returns how many rows each op changed.
    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>>;
}

/// Checks a query against its table: known columns, conditions that fit each column's kind.
pub fn check_query(table: &Table, query: &RowQuery) -> Result<()> {
    check_filter(table, &query.filter)?;
    for (name, _) in &query.order {
        let column = known(table, name)?;
        if matches!(column.kind, ColumnKind::Json | ColumnKind::JsonText) {
            return Err(Error::invalid(format!(
                "{}.{name} is a JSON column and cannot be sorted by",
                table.name
            )));
        }
    }
    Ok(())
}

/// Checks a filter against its table.
pub fn check_filter(table: &Table, filter: &[Cond]) -> Result<()> {
    for cond in filter {
        check_cond(table, cond)?;
    }
    Ok(())
}

fn check_cond(table: &Table, cond: &Cond) -> Result<()> {
    let scalar = |name: &str, values: &[&Value]| -> Result<()> {
        let column = known(table, name)?;
        if matches!(column.kind, ColumnKind::Json | ColumnKind::JsonText) {
            return Err(Error::invalid(format!(
                "{}.{name} is a JSON column: only null checks apply to it",
                table.name
            )));
        }
        for value in values {
            if !value.is_null() {
                check_value(table, column, value)?;
            }
        }
        Ok(())
    };
    match cond {
        Cond::Eq(c, v) | Cond::Ne(c, v) => scalar(c, &[v]),
        Cond::Gt(c, v) | Cond::Ge(c, v) | Cond::Lt(c, v) | Cond::Le(c, v) => {
            if v.is_null() {
                return Err(Error::invalid(format!(
                    "{}.{c}: a comparison needs a value, not null",
                    table.name
                )));
            }
            scalar(c, &[v])
        }
        Cond::In(c, vs) => scalar(c, &vs.iter().collect::<Vec<_>>()),
        Cond::ContainsCi(c, _) => {
            let column = known(table, c)?;
            if column.kind != ColumnKind::Text {
                return Err(Error::invalid(format!(
                    "{}.{c} is not a text column",
                    table.name
                )));
            }
            Ok(())
        }
        Cond::IsNull(c) | Cond::NotNull(c) => known(table, c).map(|_| ()),
        Cond::Any(alternatives) => {
            if alternatives.is_empty() {
                return Err(Error::invalid(format!(
                    "{}: an OR of no alternatives",
                    table.name
                )));
            }
            alternatives.iter().try_for_each(|a| check_filter(table, a))
        }
    }
}

/// Checks one write: whole rows for inserts and upserts (every non-null column present, no
/// unknown column, values of the column's kind), known columns for updates, a non-empty filter
/// for deletes and updates.
pub fn check_op(op: &RowOp) -> Result<()> {
    match op {
        RowOp::Insert { table, row } | RowOp::Upsert { table, row } => check_row(table, row, true),
        RowOp::Update { table, filter, set } => {
            if filter.is_empty() {
                return Err(Error::invalid(format!(
                    "an update of every row of {} is refused: give a filter",
                    table.name
                )));
            }
            if set.is_empty() {
                return Err(Error::invalid(format!(
                    "an update of {} sets no column",
                    table.name
                )));
            }
            for key in table.primary_key {
                if set.contains_key(*key) {
                    return Err(Error::invalid(format!(
                        "{}.{key} is part of the primary key and cannot be updated",
                        table.name
                    )));
                }
            }
            check_filter(table, filter)?;
            check_row(table, set, false)
        }
        RowOp::Delete { table, filter } => {
            if filter.is_empty() {
                return Err(Error::invalid(format!(
                    "a delete of every row of {} is refused: give a filter",
                    table.name
                )));
            }
            check_filter(table, filter)
        }
    }
}

/// Checks a row's columns and values; with `whole`, every non-nullable column must be there.
pub fn check_row(table: &Table, row: &Row, whole: bool) -> Result<()> {
    for (name, value) in row {
        let column = known(table, name)?;
        if value.is_null() {
            if !column.nullable {
                return Err(Error::invalid(format!(
                    "{}.{name} cannot be null",
                    table.name
                )));
            }
            continue;
        }
        check_value(table, column, value)?;
    }
    if whole {
        for column in table.columns.iter().filter(|c| !c.nullable) {
            if row.get(column.name).is_none_or(Value::is_null) {
                return Err(Error::invalid(format!(
                    "{}.{} is required",
                    table.name, column.name
                )));
            }
        }
    }
    Ok(())
}

fn check_value(table: &Table, column: &Column, value: &Value) -> Result<()> {
    let fits = match column.kind {
        ColumnKind::Text => value.is_string(),
        ColumnKind::Int => value.is_i64(),
        ColumnKind::Bool => value.is_boolean(),
        ColumnKind::Json | ColumnKind::JsonText => true,
    };
    if fits {
        if let Value::String(s) = value
            && s.contains('\0')
        {
            return Err(Error::invalid(format!(
                "{}.{}: text cannot contain NUL characters",
                table.name, column.name
            )));
        }
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{}.{} wants {}, got {value}",
            table.name,
            column.name,
            match column.kind {
                ColumnKind::Text => "text",
                ColumnKind::Int => "an integer",
                ColumnKind::Bool => "true or false",
                ColumnKind::Json | ColumnKind::JsonText => "JSON",
            }
        )))
    }
}

fn known(table: &Table, name: &str) -> Result<&'static Column> {
    table
        .column(name)
        .ok_or_else(|| Error::invalid(format!("{} has no column {name:?}", table.name)))
}

/// A row store that checks every query and op before the backend sees it: what
/// [`crate::Store::with_rows`] puts in front of every backend's row store.
pub struct Checked(pub Arc<dyn RowStore>);

#[async_trait]
impl RowStore for Checked {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        check_query(table, query)?;
        self.0.select(table, query).await
    }

    async fn select_cells(
        &self,
        table: &'static Table,
        query: &RowQuery,
    ) -> Result<Vec<Vec<Cell>>> {
        check_query(table, query)?;
        self.0.select_cells(table, query).await
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        check_filter(table, filter)?;
        self.0.count(table, filter).await
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        ops.iter().try_for_each(check_op)?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.0.write(ops).await
    }
}

/// A row store for backends without one: every call answers `Unsupported`.
#[derive(Debug, Clone, Copy)]
pub struct NoRows(pub &'static str);

#[async_trait]
impl RowStore for NoRows {
    async fn select(&self, _: &'static Table, _: &RowQuery) -> Result<Vec<Row>> {
        Err(Error::unsupported(self.0, "rows"))
    }

    async fn count(&self, _: &'static Table, _: &[Cond]) -> Result<u64> {
        Err(Error::unsupported(self.0, "rows"))
    }

    async fn write(&self, _: Vec<RowOp>) -> Result<Vec<u64>> {
        Err(Error::unsupported(self.0, "rows"))
    }
}

/// Evaluates conditions on a row: the reference semantics every backend matches (used by the
/// memory backend, and by backends that filter a page in process).
pub fn matches(row: &Row, filter: &[Cond]) -> bool {
    filter.iter().all(|cond| holds(row, cond))
}

fn holds(row: &Row, cond: &Cond) -> bool {
    use std::cmp::Ordering;
    let get = |c: &str| row.get(c).unwrap_or(&Value::Null);
    match cond {
        Cond::Eq(c, v) => {
            let x = get(c);
            if v.is_null() {
                x.is_null()
            } else {
                compare(x, v) == Some(Ordering::Equal)
            }
        }
        Cond::Ne(c, v) => {
            let x = get(c);
            if v.is_null() {
                !x.is_null()
            } else {
                compare(x, v) != Some(Ordering::Equal)
            }
        }
        Cond::In(c, vs) => {
            let x = get(c);
            vs.iter().any(|v| compare(x, v) == Some(Ordering::Equal))
        }
        Cond::IsNull(c) => get(c).is_null(),
        Cond::NotNull(c) => !get(c).is_null(),
        Cond::Gt(c, v) => compare(get(c), v) == Some(Ordering::Greater),
        Cond::Ge(c, v) => matches!(
            compare(get(c), v),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Cond::Lt(c, v) => compare(get(c), v) == Some(Ordering::Less),
        Cond::Le(c, v) => matches!(compare(get(c), v), Some(Ordering::Less | Ordering::Equal)),
        Cond::ContainsCi(c, needle) => match get(c) {
            Value::String(s) => s
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            _ => false,
        },
        Cond::Any(alternatives) => alternatives.iter().any(|a| matches(row, a)),
    }
}

/// Orders two scalar values of one column: numbers numerically, text by bytes, false before
/// true; `None` when either is null or they are of different kinds (SQL's "unknown").
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Sorts rows the way every backend sorts a [`RowQuery`]: by its keys, nulls first ascending
/// and last descending, then by primary key ascending.
pub fn sort_rows(table: &Table, rows: &mut [Row], order: &[(&'static str, Dir)]) {
    use std::cmp::Ordering;
    let key_cmp = |a: &Row, b: &Row, column: &str| -> Ordering {
        let x = a.get(column).unwrap_or(&Value::Null);
        let y = b.get(column).unwrap_or(&Value::Null);
        match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => compare(x, y).unwrap_or(Ordering::Equal),
        }
    };
    rows.sort_by(|a, b| {
        for (column, dir) in order {
            let o = key_cmp(a, b, column);
            let o = if *dir == Dir::Desc { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        for column in table.primary_key {
            let o = key_cmp(a, b, column);
            if o != Ordering::Equal {
                return o;
            }
        }
        Ordering::Equal
    });
}

/// A row from `(column, value)` pairs.
pub fn row<I, K>(pairs: I) -> Row
where
    I: IntoIterator<Item = (K, Value)>,
    K: Into<String>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v)).collect()
}
