//! The machinery every model shares, written once: a [`Record`] is a typed row of one
//! [`Table`], converted with serde ([`Record::to_row`] / [`Record::from_row`]); [`Records`]
//! reads and writes one record type through the [`RowStore`] (get, find, pages with totals,
//! keyset scans for export, and the [`RowOp`]s of atomic writes).

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::query::validate_scan_limit;
use crate::rows::{Cell, Cond, Dir, Row, RowOp, RowQuery, RowStore, Table, cells};
use crate::{Error, Page, PageRequest, Result};

/// A typed row of one of Open WebUI's tables: a serde struct whose fields are the table's
/// columns, named as Open WebUI names them.
pub trait Record: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The table the record lives in.
    const TABLE: &'static Table;
    /// What the record is called in errors (`"folder"`, `"prompt"`, ...).
    const ENTITY: &'static str;

    /// The record's id (the `id` column, unique in every table).
    fn id(&self) -> &str;

    /// The record as a row of its table.
    fn to_row(&self) -> Result<Row> {
        match serde_json::to_value(self) {
            Ok(Value::Object(row)) => Ok(row),
            Ok(other) => Err(Error::backend_msg(format!(
                "{} did not serialize to a row but to {other}",
                Self::ENTITY
            ))),
            Err(e) => Err(Error::backend(
                format!("{} did not serialize to a row", Self::ENTITY),
                e,
            )),
        }
    }

    /// The record a row of its table holds. A row the type cannot read (a column of another
    /// kind, a missing required column) is a `Backend` error naming the table.
    fn from_row(row: Row) -> Result<Self> {
        serde_json::from_value(Value::Object(row)).map_err(|e| {
            Error::backend(
                format!("a {} row does not fit its record type", Self::TABLE.name),
                e,
            )
        })
    }

    /// The record a row's [`Cell`]s (in its table's column order) hold, read straight from
    /// them ([`cells::read`]); the same record [`Record::from_row`] reads from the row's map.
    fn from_cells(cells: Vec<Cell>) -> Result<Self> {
        cells::read(Self::TABLE, cells).map_err(|e| {
            Error::backend(
                format!(
                    "a {} row does not fit its record type: {e}",
                    Self::TABLE.name
                ),
                e,
            )
        })
    }
}

/// One record type's reads and writes through a row store. Cheap to clone.
pub struct Records<T> {
    rows: Arc<dyn RowStore>,
    _record: PhantomData<fn() -> T>,
}

impl<T> Clone for Records<T> {
    fn clone(&self) -> Self {
        Records {
            rows: self.rows.clone(),
            _record: PhantomData,
        }
    }
}

impl<T: Record> Records<T> {
    /// The records of `T` in `rows`.
    pub fn new(rows: Arc<dyn RowStore>) -> Self {
        Records {
            rows,
            _record: PhantomData,
        }
    }

    /// The row store underneath.
    pub fn rows(&self) -> &Arc<dyn RowStore> {
        &self.rows
    }

    /// The record with this id; `NotFound` when there is none.
    pub async fn get(&self, id: &str) -> Result<T> {
        self.find(vec![Cond::Eq("id", id.into())])
            .await?
            .ok_or_else(|| Error::not_found(T::ENTITY, id))
    }

    /// The first record matching `filter` (in primary key order), if any.
    pub async fn find(&self, filter: Vec<Cond>) -> Result<Option<T>> {
        let mut rows = self
            .rows
            .select_cells(T::TABLE, &RowQuery::filter(filter).page(0, Some(1)))
            .await?;
        rows.pop().map(T::from_cells).transpose()
    }

    /// Every record matching the query, in its order.
    pub async fn select(&self, query: &RowQuery) -> Result<Vec<T>> {
        self.rows
            .select_cells(T::TABLE, query)
            .await?
            .into_iter()
            .map(T::from_cells)
            .collect()
    }

    /// Records matching `filter`, sorted by `order` (then by primary key).
    pub async fn list(&self, filter: Vec<Cond>, order: &[(&'static str, Dir)]) -> Result<Vec<T>> {
        let mut query = RowQuery::filter(filter);
        query.order = order.to_vec();
        self.select(&query).await
    }

    /// One page of the records matching `filter` in `order`, with the total of every match.
    pub async fn page(
        &self,
        filter: Vec<Cond>,
        order: &[(&'static str, Dir)],
        page: PageRequest,
    ) -> Result<Page<T>> {
        page.validate()?;
        let total = self.rows.count(T::TABLE, &filter).await?;
        let mut query = RowQuery::filter(filter).page(page.offset, page.limit);
        query.order = order.to_vec();
        let items = self.select(&query).await?;
        Ok(Page { items, total })
    }

    /// How many records match `filter`.
    pub async fn count(&self, filter: Vec<Cond>) -> Result<u64> {
        self.rows.count(T::TABLE, &filter).await
    }

    /// Up to `limit` records with an id after `after`, by id: the keyset scan an export walks
    /// the whole table with.
    pub async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<T>> {
        validate_scan_limit(limit)?;
        let filter = after
            .map(|a| vec![Cond::Gt("id", a.into())])
            .unwrap_or_default();
        self.select(
            &RowQuery::filter(filter)
                .order_by("id", Dir::Asc)
                .page(0, Some(u64::from(limit))),
        )
        .await
    }

    /// Applies `ops` atomically.
    pub async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        self.rows.write(ops).await
    }

    /// The op inserting `record`.
    pub fn insert_op(record: &T) -> Result<RowOp> {
        Ok(RowOp::Insert {
            table: T::TABLE,
            row: record.to_row()?,
        })
    }

    /// The op replacing the row of `record` (same primary key) with it.
    pub fn upsert_op(record: &T) -> Result<RowOp> {
        Ok(RowOp::Upsert {
            table: T::TABLE,
            row: record.to_row()?,
        })
    }

    /// The op deleting the rows matching `filter`.
    pub fn delete_op(filter: Vec<Cond>) -> RowOp {
        RowOp::Delete {
            table: T::TABLE,
            filter,
        }
    }

    /// The op setting `set` on the rows matching `filter`.
    pub fn update_op(filter: Vec<Cond>, set: Row) -> RowOp {
        RowOp::Update {
            table: T::TABLE,
            filter,
            set,
        }
    }

    /// Inserts `record`; `Conflict` when its id (or a unique value) is taken.
    pub async fn insert(&self, record: T) -> Result<T> {
        self.write(vec![Self::insert_op(&record)?]).await?;
        Ok(record)
    }

    /// Replaces the stored record with the same key by `record` (whole row).
    pub async fn replace(&self, record: T) -> Result<T> {
        self.write(vec![Self::upsert_op(&record)?]).await?;
        Ok(record)
    }

    /// Deletes the record with this id; `NotFound` when there is none.
    pub async fn delete(&self, id: &str) -> Result<()> {
        let counts = self
            .write(vec![Self::delete_op(vec![Cond::Eq("id", id.into())])])
            .await?;
        if counts.first().copied().unwrap_or(0) == 0 {
            return Err(Error::not_found(T::ENTITY, id));
        }
        Ok(())
    }
}

/// The creation and update times of a new record in `table`'s unit: the given ones, or now.
/// `updated_at` defaults to `created_at`.
pub fn stamps(
    table: &Table,
    created_at: Option<i64>,
    updated_at: Option<i64>,
) -> Result<(i64, i64)> {
    let created = created_at.unwrap_or_else(|| table.time_unit.now());
    let updated = updated_at.unwrap_or(created);
    for (what, value) in [("created_at", created), ("updated_at", updated)] {
        if value < 0 {
            return Err(Error::invalid(format!(
                "{}.{what} must be a time >= 0, got {value}",
                table.name
            )));
        }
    }
    Ok((created, updated))
}

/// The id of a new record: the given one after checking it, or a fresh uuid4.
pub fn new_id(what: &str, id: Option<String>) -> Result<String> {
    match id {
        Some(id) => {
            crate::validate::id(what, &id)?;
            Ok(id)
        }
        None => Ok(crate::validate::new_id()),
    }
}

/// Checks a key that is not a uuid (a model id such as `llama3.1:8b`, a prompt command): not
/// empty, at most [`crate::validate::MAX_ID_LEN`] bytes, no control characters.
pub fn key(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    if value.len() > crate::validate::MAX_ID_LEN {
        return Err(Error::invalid(format!(
            "{what} is {} bytes long; at most {} are allowed",
            value.len(),
            crate::validate::MAX_ID_LEN
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{what} {value:?} contains control characters"
        )));
    }
    Ok(())
}

/// Checks a required name: not empty (after trimming), no NUL.
pub fn name(what: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::invalid(format!("{what} must not be empty")));
    }
    crate::validate::text(what, value)
}

/// Checks an optional JSON value given for a JSON column: objects only, no NUL in text.
pub fn object(what: &str, value: &Option<Value>) -> Result<()> {
    match value {
        None | Some(Value::Null) => Ok(()),
        Some(v) => crate::validate::object(what, v),
    }
}

/// `base` with the top-level keys of `patch` set (Open WebUI's `{**old, **new}` merge of
/// `meta` and `data` dicts). A `base` that is not an object is replaced.
pub fn merge(base: Option<Value>, patch: Map<String, Value>) -> Value {
    let mut merged = match base {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    merged.extend(patch);
    Value::Object(merged)
}

/// A row of `(column, value)` pairs, for [`RowOp::Update`] sets.
pub fn set<const N: usize>(pairs: [(&str, Value); N]) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
