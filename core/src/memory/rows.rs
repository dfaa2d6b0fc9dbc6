//! The memory backend's [`RowStore`]: the reference semantics of rows (see [`crate::rows`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::Value;

use crate::rows::cascades::{Cascade, delete_ops};
use crate::rows::{Cond, Row, RowOp, RowQuery, RowStore, Table, matches, sort_rows};
use crate::{Error, Result};

pub(super) type Tables = HashMap<&'static str, BTreeMap<String, Row>>;

/// Rows in memory; clones share the data.
#[derive(Debug, Clone, Default)]
pub struct MemoryRows {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryRows {
    /// An empty row store.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Tables>> {
        self.tables
            .lock()
            .map_err(|_| Error::backend_msg("memory rows: a writer panicked"))
    }
}

/// The row with every column of the table (missing ones null), as every backend reads it back.
fn whole(table: &Table, row: &Row) -> Row {
    table
        .columns
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                row.get(c.name).cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Which unique constraint of `table` another row than `key` already holds for `row`.
fn unique_clash(
    table: &Table,
    rows: &BTreeMap<String, Row>,
    key: &str,
    row: &Row,
) -> Option<String> {
    for columns in table.unique {
        // SQL: a NULL in a unique column never clashes.
        if columns
            .iter()
            .any(|c| row.get(*c).is_none_or(Value::is_null))
        {
            continue;
        }
        let taken = rows.iter().any(|(other, existing)| {
            other != key && columns.iter().all(|c| existing.get(*c) == row.get(*c))
        });
        if taken {
            return Some(columns.join(", "));
        }
    }
    None
}

/// Deletes the rows `cascades` ties to the deleted chats or files `ids` (see
/// [`crate::rows::cascades`]).
pub(super) fn delete_cascaded(
    tables: &mut Tables,
    cascades: &[Cascade],
    ids: &[String],
) -> Result<()> {
    for op in delete_ops(cascades, ids) {
        apply(tables, op)?;
    }
    Ok(())
}

fn apply(tables: &mut Tables, op: RowOp) -> Result<u64> {
    let table = op.table();
    let rows = tables.entry(table.name).or_default();
    match op {
        RowOp::Insert { row, .. } => {
            let row = whole(table, &row);
            let key = table.key_of(&row);
            if rows.contains_key(&key) {
                return Err(Error::conflict(
                    "row",
                    format!("{} {key} already exists", table.name),
                ));
            }
            if let Some(columns) = unique_clash(table, rows, &key, &row) {
                return Err(Error::conflict(
                    "row",
                    format!("{}: ({columns}) already taken", table.name),
                ));
            }
            rows.insert(key, row);
            Ok(1)
        }
        RowOp::Upsert { row, .. } => {
            let row = whole(table, &row);
            let key = table.key_of(&row);
            if let Some(columns) = unique_clash(table, rows, &key, &row) {
                return Err(Error::conflict(
                    "row",
                    format!("{}: ({columns}) already taken", table.name),
                ));
            }
            rows.insert(key, row);
            Ok(1)
        }
        RowOp::Update { filter, set, .. } => {
            let keys: Vec<String> = rows
                .iter()
                .filter(|(_, r)| matches(r, &filter))
                .map(|(k, _)| k.clone())
                .collect();
            for key in &keys {
                let mut updated = rows.get(key).cloned().unwrap_or_default();
                for (column, value) in &set {
                    updated.insert(column.clone(), value.clone());
                }
                if let Some(columns) = unique_clash(table, rows, key, &updated) {
                    return Err(Error::conflict(
                        "row",
                        format!("{}: ({columns}) already taken", table.name),
                    ));
                }
                rows.insert(key.clone(), updated);
            }
            Ok(keys.len() as u64)
        }
        RowOp::Delete { filter, .. } => {
            let before = rows.len();
            rows.retain(|_, r| !matches(r, &filter));
            Ok((before - rows.len()) as u64)
        }
    }
}

#[async_trait]
impl RowStore for MemoryRows {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        let tables = self.lock()?;
        let mut rows: Vec<Row> = tables
            .get(table.name)
            .map(|rows| {
                rows.values()
                    .filter(|r| matches(r, &query.filter))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        drop(tables);
        sort_rows(table, &mut rows, &query.order);
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = query
            .limit
            .map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        Ok(rows.into_iter().skip(offset).take(limit).collect())
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        let tables = self.lock()?;
        Ok(tables.get(table.name).map_or(0, |rows| {
            rows.values().filter(|r| matches(r, filter)).count() as u64
        }))
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        let mut tables = self.lock()?;
        // All or nothing: work on a copy of the touched tables, keep it only if every op worked.
        let mut work: Tables = HashMap::new();
        for op in &ops {
            let name = op.table().name;
            if !work.contains_key(name) {
                work.insert(name, tables.get(name).cloned().unwrap_or_default());
            }
        }
        let mut counts = Vec::with_capacity(ops.len());
        for op in ops {
            counts.push(apply(&mut work, op)?);
        }
        tables.extend(work);
        Ok(counts)
    }
}
