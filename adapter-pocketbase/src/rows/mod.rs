//! [`RowStore`] on PocketBase: Open WebUI's remaining tables (folders, knowledge, notes,
//! prompts, models, groups, channels, feedback, ...), one collection per [`Table`] (see
//! [`collections`] for the schema, [`codec`] for how values are stored).
//!
//! Reads: the conditions become one PocketBase filter built through [`crate::filter`] only
//! ([`query`]); the order becomes `sort` with nulls first ascending and last descending and the
//! id as the last key; `offset`/`limit` are read from the pages that cover them
//! (`skipTotal`). A filter above PocketBase's size limits (about 3500 characters or 200
//! expressions, e.g. an `In` of hundreds of ids) is split on its largest `In` into filters
//! that fit, or else relaxed to the conditions that fit; the rows fetched are then filtered,
//! sorted and paged in process with core's [`rows::matches`] and [`rows::sort_rows`].
//!
//! Writes: all ops of one [`RowStore::write`] go to PocketBase in one transaction: the batch
//! API (`POST /api/batch`, up to [`BATCH_MAX_REQUESTS`] records and [`BATCH_MAX_BYTES`]),
//! or, for more records, the `tx` route of `pb_hooks/chatstore.pb.js` (up to [`TX_MAX_BYTES`]);
//! a bigger write is refused as `InvalidInput` before anything is written, never split. An
//! `Update` or `Delete` reads the ids its filter matches first (taking the earlier ops of the
//! same write into account) and then writes those records by id. Race: a row another
//! writer adds between that read and the transaction is not touched, and one it changes so
//! that it no longer matches is still written; a row it deletes makes the transaction fail
//! with `NotFound`, and the whole write is then planned and sent again (at most
//! [`WRITE_ATTEMPTS`] times).

pub mod codec;
pub mod collections;
pub mod query;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chatstore_core::rows::{self, Cell, Cond, Row, RowOp, RowQuery, RowStore, Table, cells};
use chatstore_core::{Error, Result};
use serde_json::{Value, json};

pub use self::collections::collections_json;
use self::query::Expr;
use crate::PocketBase;
use crate::client::{ListQuery, MAX_PER_PAGE, keyset_pages, path_segment};
use crate::error::Subject;
use crate::schema::BATCH_MAX_REQUESTS;
use crate::tx::TxOp;

pub use crate::client::{BATCH_MAX_BYTES, TX_MAX_BYTES};

/// The fields read when only a record's id is needed.
const ID_FIELDS: &str = "id,owui_id";
/// How often a write whose rows changed under it is planned and sent again.
pub const WRITE_ATTEMPTS: usize = 3;

/// How a select's rows are read.
enum Read {
    /// Nothing matches.
    Nothing,
    /// One page (the caller pages by offset), filtered and sorted by PocketBase.
    Page { filter: String, sort: String },
    /// Every match, read by id with these filters, then (unless `exact`) checked, and sorted
    /// and paged here.
    Every { filters: Vec<String>, exact: bool },
}

/// How `query` on `table` is read ([`plan`] for its filter).
fn read_plan(table: &Table, query: &RowQuery) -> Result<Read> {
    if query.limit == Some(0) {
        return Ok(Read::Nothing);
    }
    let sort = query::sort(table, &query.order)?;
    Ok(match plan(table, &query.filter)? {
        Plan::Nothing => Read::Nothing,
        Plan::Exact(filter) if query.limit.is_some() => Read::Page { filter, sort },
        Plan::Exact(f) => Read::Every {
            filters: vec![f],
            exact: true,
        },
        Plan::Split(filters) => Read::Every {
            filters,
            exact: true,
        },
        Plan::Wider(f) => Read::Every {
            filters: vec![f],
            exact: false,
        },
    })
}

/// How a select is read from PocketBase.
enum Plan {
    /// Nothing matches.
    Nothing,
    /// One filter PocketBase runs exactly.
    Exact(String),
    /// Several filters (parts of one `In`) whose rows, together, are the answer.
    Split(Vec<String>),
    /// A filter matching at least the answer; the rows are checked in process.
    Wider(String),
}

fn plan(table: &Table, filter: &[Cond]) -> Result<Plan> {
    let expr = query::all(table, filter)?;
    match &expr {
        Expr::False => return Ok(Plan::Nothing),
        e if e.fits() => return Ok(Plan::Exact(e.text().unwrap_or_default().to_owned())),
        _ => {}
    }
    if let Some(split) = split_largest_in(table, filter)? {
        return Ok(split);
    }
    // Keep the conditions that fit, in order; the rest are checked in process.
    let mut kept: Vec<Expr> = Vec::new();
    for cond in filter {
        let e = query::cond(table, cond)?;
        let mut candidate = kept.clone();
        candidate.push(e);
        if Expr::all(candidate.clone()).fits() {
            kept = candidate;
        }
    }
    Ok(match Expr::all(kept) {
        Expr::False => Plan::Nothing,
        e => Plan::Wider(e.text().unwrap_or_default().to_owned()),
    })
}

/// The filter with its largest top-level `In` cut into parts small enough for each filter to
/// fit; `None` when there is no `In` or even single values do not fit.
fn split_largest_in(table: &Table, filter: &[Cond]) -> Result<Option<Plan>> {
    let Some((at, column, values)) = filter
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            Cond::In(column, values) => Some((i, *column, values)),
            _ => None,
        })
        .max_by_key(|(_, _, values)| values.len())
    else {
        return Ok(None);
    };
    let mut seen = HashSet::new();
    let values: Vec<Value> = values
        .iter()
        .filter(|v| !v.is_null() && seen.insert(v.to_string()))
        .cloned()
        .collect();
    let mut size = values.len().div_ceil(2).max(1);
    loop {
        let mut parts = Vec::new();
        let mut all_fit = true;
        for chunk in values.chunks(size) {
            let mut conds = filter.to_vec();
            conds[at] = Cond::In(column, chunk.to_vec());
            let expr = query::all(table, &conds)?;
            if !expr.fits() {
                all_fit = false;
                break;
            }
            if let Some(text) = expr.text() {
                parts.push(text.to_owned());
            }
        }
        if all_fit {
            return Ok(Some(if parts.is_empty() {
                Plan::Nothing
            } else {
                Plan::Split(parts)
            }));
        }
        if size == 1 {
            return Ok(None);
        }
        size = size.div_ceil(2);
    }
}

/// The filter and sort of the one records-API list a select of `query` sends, when it is one
/// exact list (`None` when nothing can match, or the filter is split or checked in process):
/// for raw baselines that replay the row store's requests. The pages are
/// `client::page_size` wide.
pub fn exact_list(table: &Table, query: &RowQuery) -> Result<Option<(String, String)>> {
    match plan(table, &query.filter)? {
        Plan::Exact(filter) => Ok(Some((filter, query::sort(table, &query.order)?))),
        _ => Ok(None),
    }
}

fn page(rows: Vec<Row>, offset: u64, limit: Option<u64>) -> Vec<Row> {
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = limit.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
    rows.into_iter().skip(skip).take(take).collect()
}

/// One record write of a planned [`RowStore::write`].
enum Write {
    Create {
        collection: String,
        id: String,
        fields: Value,
    },
    Upsert {
        collection: String,
        id: String,
        fields: Value,
    },
    Patch {
        collection: String,
        id: String,
        fields: Value,
    },
    Delete {
        collection: String,
        id: String,
    },
}

impl Write {
    fn batch_request(&self) -> Value {
        match self {
            Write::Create {
                collection, fields, ..
            } => json!({"method": "POST",
                "url": format!("/api/collections/{collection}/records?fields=id"), "body": fields}),
            Write::Upsert {
                collection, fields, ..
            } => json!({"method": "PUT",
                "url": format!("/api/collections/{collection}/records?fields=id"), "body": fields}),
            Write::Patch {
                collection,
                id,
                fields,
            } => json!({"method": "PATCH",
                "url": format!("/api/collections/{collection}/records/{}?fields=id", path_segment(id)),
                "body": fields}),
            Write::Delete { collection, id } => json!({"method": "DELETE",
                "url": format!("/api/collections/{collection}/records/{}", path_segment(id))}),
        }
    }

    fn tx_op(self) -> TxOp {
        let without_id = |mut fields: Value| {
            if let Some(map) = fields.as_object_mut() {
                map.remove("id");
            }
            fields
        };
        match self {
            Write::Create {
                collection,
                id,
                fields,
            } => TxOp::Create {
                collection,
                entity: "row",
                id,
                fields: without_id(fields),
            },
            Write::Upsert {
                collection,
                id,
                fields,
            } => TxOp::Upsert {
                collection,
                entity: "row",
                id,
                fields: without_id(fields),
            },
            Write::Patch {
                collection,
                id,
                fields,
            } => TxOp::Update {
                collection,
                entity: "row",
                id,
                fields,
                return_record: false,
            },
            Write::Delete { collection, id } => TxOp::Delete {
                collection,
                entity: "row",
                id,
                must_exist: true,
            },
        }
    }
}

/// The rows earlier ops of one write have set (`None`: deleted), by table and record id.
type Overlay = HashMap<(&'static str, String), Option<Row>>;

impl PocketBase {
    /// Every row matching `filter` (unordered); with `ids_only`, rows may hold just their id
    /// (whole rows where the key has more columns than the id).
    async fn matching(
        &self,
        table: &'static Table,
        filter: &[Cond],
        ids_only: bool,
    ) -> Result<Vec<Row>> {
        let q = RowQuery::filter(filter.to_vec());
        let ids_only = ids_only && !codec::composite_key(table);
        self.read(table, &q, ids_only.then_some(ID_FIELDS)).await
    }

    /// The rows of a select, read the way [`plan`] says; `fields` narrows the records read
    /// where PocketBase filters exactly (a wider filter needs whole rows to check).
    async fn read(
        &self,
        table: &'static Table,
        query: &RowQuery,
        fields: Option<&'static str>,
    ) -> Result<Vec<Row>> {
        match read_plan(table, query)? {
            Read::Nothing => Ok(Vec::new()),
            Read::Page { filter, sort } => self
                .fetch(table, &filter, &sort, query.offset, query.limit, fields)
                .await?
                .into_iter()
                .map(|r| codec::row_of(table, r))
                .collect(),
            Read::Every { filters, exact } => {
                self.read_every(table, query, filters, exact, fields).await
            }
        }
    }

    /// Every match of `filters` (the parts of `query`'s filter, or a wider filter to check
    /// when not `exact`), then sorted and paged as `query` says.
    async fn read_every(
        &self,
        table: &'static Table,
        query: &RowQuery,
        filters: Vec<String>,
        exact: bool,
        fields: Option<&'static str>,
    ) -> Result<Vec<Row>> {
        let fields = if exact { fields } else { None };
        let mut rows = Vec::new();
        let mut seen = HashSet::new();
        for f in filters {
            for row in self.fetch_all(table, &f, fields).await? {
                if seen.insert(codec::record_id(table, &row))
                    && (exact || rows::matches(&row, &query.filter))
                {
                    rows.push(row);
                }
            }
        }
        rows::sort_rows(table, &mut rows, &query.order);
        Ok(page(rows, query.offset, query.limit))
    }

    async fn fetch(
        &self,
        table: &'static Table,
        filter: &str,
        sort: &str,
        offset: u64,
        limit: Option<u64>,
        fields: Option<&'static str>,
    ) -> Result<Vec<Value>> {
        let q = ListQuery {
            filter: filter.to_owned(),
            sort: sort.to_owned(),
            expand: None,
            fields,
            skip_total: true,
        };
        let (records, _) = self
            .client()
            .list(
                &self.cols().rows(table),
                &q,
                offset,
                limit,
                Subject::new(table.name, ""),
            )
            .await?;
        Ok(records)
    }

    /// Every record matching `filter`, read in pages after the last record id read. Pages by
    /// number (`page=2`) skipped a record whenever one before it was deleted between two
    /// pages (a delete of more than 1,000 rows beside another writer left rows behind).
    async fn fetch_all(
        &self,
        table: &'static Table,
        filter: &str,
        fields: Option<&'static str>,
    ) -> Result<Vec<Row>> {
        let collection = self.cols().rows(table);
        let records = keyset_pages(None, u64::MAX, MAX_PER_PAGE, |after, n| {
            let filter = match (after, filter.is_empty()) {
                (None, _) => filter.to_owned(),
                (Some(id), true) => format!("id > {}", crate::filter::literal(&id)),
                (Some(id), false) => {
                    format!("({filter}) && id > {}", crate::filter::literal(&id))
                }
            };
            let q = ListQuery {
                filter,
                sort: "id".to_owned(),
                expand: None,
                fields,
                skip_total: true,
            };
            let collection = &collection;
            async move {
                self.client()
                    .first(collection, &q, n, Subject::new(table.name, ""))
                    .await
            }
        })
        .await?;
        records
            .into_iter()
            .map(|r| codec::row_of(table, r))
            .collect()
    }

    /// The rows an `Update` or `Delete` with `filter` changes, given the earlier ops' rows.
    /// With `ids_only`, rows read from PocketBase may hold just their id (when no later op of
    /// the write needs to match them).
    async fn targets(
        &self,
        table: &'static Table,
        filter: &[Cond],
        overlay: &Overlay,
        ids_only: bool,
    ) -> Result<Vec<Row>> {
        let mut rows: Vec<Row> = self
            .matching(table, filter, ids_only)
            .await?
            .into_iter()
            .filter(|row| !overlay.contains_key(&(table.name, codec::record_id(table, row))))
            .collect();
        rows.extend(
            overlay
                .iter()
                .filter(|((t, _), _)| *t == table.name)
                .filter_map(|(_, row)| row.as_ref())
                .filter(|row| rows::matches(row, filter))
                .cloned(),
        );
        Ok(rows)
    }

    /// The record writes of `ops` and how many rows each op changes.
    async fn plan_write(&self, ops: &[RowOp]) -> Result<(Vec<Write>, Vec<u64>)> {
        let mut overlay = Overlay::new();
        let mut writes = Vec::new();
        let mut counts = Vec::with_capacity(ops.len());
        for (at, op) in ops.iter().enumerate() {
            let table = op.table();
            // The rows an Update or Delete reads are matched again only by a later Update or
            // Delete of the same table; otherwise their ids are enough.
            let ids_only = !ops[at + 1..].iter().any(|later| {
                later.table().name == table.name
                    && matches!(later, RowOp::Update { .. } | RowOp::Delete { .. })
            });
            let collection = self.cols().rows(table);
            match op {
                RowOp::Insert { row, .. } | RowOp::Upsert { row, .. } => {
                    let fields = codec::record_of(table, row)?;
                    let stored = codec::record_id(table, row);
                    writes.push(if matches!(op, RowOp::Insert { .. }) {
                        Write::Create {
                            collection,
                            id: stored,
                            fields,
                        }
                    } else {
                        Write::Upsert {
                            collection,
                            id: stored,
                            fields,
                        }
                    });
                    let mut full = row.clone();
                    for column in table.columns {
                        full.entry(column.name).or_insert(Value::Null);
                    }
                    overlay.insert((table.name, codec::record_id(table, row)), Some(full));
                    counts.push(1);
                }
                RowOp::Update { filter, set, .. } => {
                    let targets = self.targets(table, filter, &overlay, ids_only).await?;
                    let fields = codec::patch_of(table, set)?;
                    counts.push(targets.len() as u64);
                    for mut row in targets {
                        let id = codec::record_id(table, &row);
                        writes.push(Write::Patch {
                            collection: collection.clone(),
                            id: id.clone(),
                            fields: fields.clone(),
                        });
                        for (k, v) in set {
                            row.insert(k.clone(), v.clone());
                        }
                        overlay.insert((table.name, id), Some(row));
                    }
                }
                RowOp::Delete { filter, .. } => {
                    let targets = self.targets(table, filter, &overlay, ids_only).await?;
                    counts.push(targets.len() as u64);
                    for row in targets {
                        let id = codec::record_id(table, &row);
                        writes.push(Write::Delete {
                            collection: collection.clone(),
                            id: id.clone(),
                        });
                        overlay.insert((table.name, id), None);
                    }
                }
            }
        }
        Ok((writes, counts))
    }

    /// Sends the writes in one PocketBase transaction.
    async fn send_writes(&self, writes: Vec<Write>) -> Result<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let subject = Subject::new("row", "");
        let requests: Vec<Value> = writes.iter().map(Write::batch_request).collect();
        let bytes = serde_json::to_vec(&requests)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        let batch_max = self.client().batch_max_bytes();
        if requests.len() as u64 <= BATCH_MAX_REQUESTS && bytes <= batch_max {
            return self.client().batch(requests, subject).await.map(|_| ());
        }
        if bytes <= TX_MAX_BYTES {
            let ops = writes.into_iter().map(Write::tx_op).collect();
            return self.client().tx(ops, subject).await.map(|_| ());
        }
        Err(Error::invalid(format!(
            "a row write of {} records and {} MiB is more than PocketBase takes in one \
             transaction ({BATCH_MAX_REQUESTS} records and {} MiB, or {} MiB): split it into \
             smaller writes",
            requests.len(),
            bytes >> 20,
            batch_max >> 20,
            TX_MAX_BYTES >> 20
        )))
    }
}

/// Records re-keyed per batch (a delete and a create each).
const REKEY_BATCH: u64 = BATCH_MAX_REQUESTS / 2;

impl PocketBase {
    /// Gives the records of tables keyed by more than their id (`folder`: `(id, user_id)`)
    /// their whole-key record id ([`codec::record_id`]) where an earlier version of chatstore
    /// wrote them under the id alone: each such record is deleted and written again under its
    /// new id, in one batch per [`REKEY_BATCH`] records. Idempotent; two processes doing it at
    /// once are fine (the loser's batch fails and the records are read again).
    /// `pb_migrations/1764720000_chatstore_composite_keys.js` does the same for deployments
    /// that apply the migrations.
    pub(crate) async fn rekey_rows(&self) -> Result<()> {
        let old = format!("id !~ {}", crate::filter::contains(codec::KEY_SEPARATOR));
        for table in rows::ALL_TABLES.iter().filter(|t| codec::composite_key(t)) {
            let collection = self.cols().rows(table);
            let subject = Subject::new(table.name, "");
            let mut attempts = 0;
            loop {
                let q = ListQuery {
                    filter: old.clone(),
                    sort: String::new(),
                    expand: None,
                    fields: None,
                    skip_total: true,
                };
                let (records, _) = self
                    .client()
                    .list(&collection, &q, 0, Some(REKEY_BATCH), subject)
                    .await?;
                if records.is_empty() {
                    break;
                }
                let mut requests = Vec::with_capacity(records.len() * 2);
                for record in records {
                    let stored = record
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let row = codec::row_of(table, record)?;
                    requests.push(Write::Delete {
                        collection: collection.clone(),
                        id: stored,
                    });
                    requests.push(Write::Create {
                        collection: collection.clone(),
                        id: codec::record_id(table, &row),
                        fields: codec::record_of(table, &row)?,
                    });
                }
                let requests = requests.iter().map(Write::batch_request).collect();
                match self.client().batch(requests, subject).await {
                    Ok(_) => {}
                    Err(Error::NotFound { .. } | Error::Conflict { .. }) if attempts < 5 => {
                        attempts += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RowStore for PocketBase {
    async fn select(&self, table: &'static Table, query: &RowQuery) -> Result<Vec<Row>> {
        self.read(table, query, None).await
    }

    /// A page PocketBase filters and sorts is decoded straight into cells (no row maps);
    /// other selects are read as rows.
    async fn select_cells(
        &self,
        table: &'static Table,
        query: &RowQuery,
    ) -> Result<Vec<Vec<Cell>>> {
        let rows = match read_plan(table, query)? {
            Read::Nothing => Vec::new(),
            Read::Page { filter, sort } => {
                return self
                    .fetch(table, &filter, &sort, query.offset, query.limit, None)
                    .await?
                    .into_iter()
                    .map(|r| {
                        Ok(codec::values_of(table, r)?
                            .into_iter()
                            .map(Cell::Value)
                            .collect())
                    })
                    .collect();
            }
            Read::Every { filters, exact } => {
                self.read_every(table, query, filters, exact, None).await?
            }
        };
        Ok(rows
            .into_iter()
            .map(|row| cells::from_row(table, row))
            .collect())
    }

    async fn count(&self, table: &'static Table, filter: &[Cond]) -> Result<u64> {
        let collection = self.cols().rows(table);
        let subject = Subject::new(table.name, "");
        match plan(table, filter)? {
            Plan::Nothing => Ok(0),
            Plan::Exact(f) => self.client().count(&collection, &f, subject).await,
            Plan::Split(fs) => {
                // The parts are disjoint: each holds other values of the same `In`.
                let mut total = 0;
                for f in fs {
                    total = u64::saturating_add(
                        total,
                        self.client().count(&collection, &f, subject).await?,
                    );
                }
                Ok(total)
            }
            Plan::Wider(_) => Ok(self.matching(table, filter, false).await?.len() as u64),
        }
    }

    async fn write(&self, ops: Vec<RowOp>) -> Result<Vec<u64>> {
        let reads = ops
            .iter()
            .any(|op| matches!(op, RowOp::Update { .. } | RowOp::Delete { .. }));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (writes, counts) = self.plan_write(&ops).await?;
            match self.send_writes(writes).await {
                Ok(()) => return Ok(counts),
                // A row read for an Update or Delete was deleted meanwhile: plan again.
                Err(Error::NotFound { .. }) if reads && attempt < WRITE_ATTEMPTS => continue,
                Err(e) => return Err(e),
            }
        }
    }
}
