//! Routed rows: Open WebUI's remaining tables (the `workspace` group), through each store's
//! [`RowStore`].
//!
//! Rows arrive whole (ids and timestamps set by the caller), so both stores store the same row
//! without the router fixing anything. Where both stores are written, the old store is written
//! first and the new store only after the old one accepted the batch: a batch is all or
//! nothing, and one the old store refuses (a taken unique value, a bad row) must not reach the
//! new store. The rows a batch touches are known before it runs (the key of an inserted or
//! upserted row; the rows an update or delete filter matches on the old store), and each is
//! logged for repair by table and primary key when the new store fails, times out or changes
//! a different number of rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::rows::{Cond, Row, RowOp, RowQuery, RowStore, Table, check_op};
use chatstore_core::{Error, ModelGroup, Result, Store};
use serde_json::Value;

use crate::phase::Phase;
use crate::repair::RepairKey;
use crate::router::{Shared, bounded, canon};

const G: ModelGroup = ModelGroup::Workspace;

pub(crate) struct Rows(pub(crate) Arc<Shared>);

/// The repair key of one row: its table and primary key values.
pub(crate) fn row_key(table: &Table, row: &Row) -> RepairKey {
    let key: BTreeMap<String, String> = table
        .primary_key
        .iter()
        .map(|k| {
            let v = match row.get(*k) {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            ((*k).to_owned(), v)
        })
        .collect();
    RepairKey::Row {
        table: table.name.to_owned(),
        key,
    }
}

/// The conditions selecting exactly the row of a repair key (`InvalidInput` for a key that
/// names an unknown table or column).
pub(crate) fn key_filter(
    table: &str,
    key: &BTreeMap<String, String>,
) -> Result<(&'static Table, Vec<Cond>)> {
    let table = chatstore_core::rows::table(table)
        .ok_or_else(|| Error::invalid(format!("repair log: unknown table {table:?}")))?;
    let mut filter = Vec::with_capacity(key.len());
    for k in table.primary_key {
        let v = key.get(*k).ok_or_else(|| {
            Error::invalid(format!(
                "repair log: the key of a {} row lacks {k}",
                table.name
            ))
        })?;
        filter.push(Cond::Eq(k, Value::String(v.clone())));
    }
    Ok((table, filter))
}

fn rows_of(store: &Store) -> Result<Arc<dyn RowStore>> {
    store.rows()
}

impl Rows {
    /// The rows the ops will touch, as the old store holds them now (plus inserted keys).
    async fn touched(&self, old: &dyn RowStore, ops: &[RowOp]) -> Result<Vec<RepairKey>> {
        let mut keys = Vec::new();
        for op in ops {
            match op {
                RowOp::Insert { table, row } | RowOp::Upsert { table, row } => {
                    keys.push(row_key(table, row));
                }
                RowOp::Update { table, filter, .. } | RowOp::Delete { table, filter } => {
                    let matching = old.select(table, &RowQuery::filter(filter.clone())).await?;
                    keys.extend(matching.iter().map(|r| row_key(table, r)));
                }
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// A write to both stores: old first, then new; see the module header.
    async fn write_both(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        let shared = &self.0;
        let old = rows_of(&shared.old)?;
        let new = rows_of(shared.new_of(G)?)?;
        ops.iter().try_for_each(check_op)?;
        let _tables = shared.table_guards(&ops).await;
        let keys = self.touched(&*old, &ops).await?;
        let _locks = shared.lock_keys(&keys).await;
        // A caller that goes away part way leaves the rows logged: the old store's write may
        // land without the new store's.
        let mut unfinished = shared.unfinished("rows.write", keys);
        let counts = unfinished.old_answer(old.write(ops.clone()).await)?;
        let written = bounded(shared.secondary_timeout, new.write(ops)).await;
        let reason = match written {
            None => Some(format!(
                "the new store did not answer within {:?}",
                shared.secondary_timeout
            )),
            Some(Err(e)) => Some(format!("the new store failed: {e}")),
            Some(Ok(theirs)) if theirs != counts => Some(format!(
                "the stores changed different numbers of rows: old {counts:?}, new {theirs:?}"
            )),
            Some(Ok(_)) => None,
        };
        unfinished.settle(reason);
        Ok(counts)
    }
}

#[async_trait]
impl RowStore for Rows {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        let query = query.clone();
        let ids = vec![format!("{} {query:?}", table.name)];
        self.0
            .read(G, "rows.select", ids, canon, move |s: &Store| {
                let rows = rows_of(s);
                let query = query.clone();
                async move { rows?.select(table, &query).await }
            })
            .await
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        let filter = filter.to_vec();
        let ids = vec![format!("{} {filter:?}", table.name)];
        self.0
            .read(G, "rows.count", ids, canon, move |s: &Store| {
                let rows = rows_of(s);
                let filter = filter.clone();
                async move { rows?.count(table, &filter).await }
            })
            .await
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        let _foreground = self.0.foreground();
        let (phase, _gate) = self.0.write_phase(G).await;
        match phase {
            Phase::Old => rows_of(&self.0.old)?.write(ops).await,
            Phase::NewOnly => rows_of(self.0.new_of(G)?)?.write(ops).await,
            Phase::Dual | Phase::Shadow | Phase::New => self.write_both(ops).await,
        }
    }
}

/// Makes the row of `key` on `to` what it is on `from`: upserted when `from` holds it,
/// deleted when it does not (again while it changes on `from`, see [`crate::copy::settle`]).
pub(crate) async fn copy_row(
    table: &str,
    key: &BTreeMap<String, String>,
    from: &Store,
    to: &Store,
) -> Result<()> {
    let (table, filter) = key_filter(table, key)?;
    let (from_rows, to_rows) = (from.rows()?, to.rows()?);
    let query = RowQuery::filter(filter.clone()).page(0, Some(1));
    crate::copy::settle(
        &format!("{} row {key:?}", table.name),
        || async { Ok(from_rows.select(table, &query).await?.into_iter().next()) },
        |found| {
            let op = match found {
                Some(row) => RowOp::Upsert { table, row },
                None => RowOp::Delete {
                    table,
                    filter: filter.clone(),
                },
            };
            let to_rows = to_rows.clone();
            async move { to_rows.write(vec![op]).await.map(|_| ()) }
        },
    )
    .await
}
