//! Vectors on SQLite: the embedded default vector store, no server.
//!
//! Items live in chatstore's own table `chatstore_vector (id, collection_name, text, vector,
//! vmetadata)`, created on first write, vectors as little-endian `f32` BLOBs. Search is exact:
//! the collection's rows (narrowed in SQL by the metadata filter) are scanned and ranked in Rust
//! with the reference cosine distance, so results equal the memory backend's, ties included,
//! however small a share of the table the filter selects.
//!
//! On PostgreSQL every call answers `Unsupported` (the pgvector adapter stores vectors there).

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use chatstore_core::vectors::{
    CollectionItems, Condition, as_text, exact_search, ids_of_many, validate_item_dimension,
    validate_query_dimension,
};
use chatstore_core::{Error, Result, SearchHit, VectorFilter, VectorItem, VectorRepo};
use serde_json::Value;

use crate::pool::{Arg, Dialect, Dyn, Mode, Row, Sql, Tx, args, cursor};
use crate::{SqlStore, json};

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatstore_vector (\
     id TEXT NOT NULL PRIMARY KEY, \
     collection_name TEXT NOT NULL, \
     text TEXT, \
     vector BLOB NOT NULL, \
     vmetadata JSON); \
     CREATE INDEX IF NOT EXISTS chatstore_vector_collection_idx \
     ON chatstore_vector (collection_name, id);";

const TABLE_EXISTS: Sql =
    Sql::both("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'chatstore_vector'");

/// The dimension of the collection's vectors, ignoring the items whose ids are in the JSON
/// array `$2` (they are being replaced).
const DIMENSION: Sql = Sql::both(
    "SELECT length(vector) / 4 AS dim FROM chatstore_vector WHERE collection_name = $1 \
     AND id NOT IN (SELECT value FROM json_each($2)) ORDER BY id LIMIT 1",
);

/// The head of a multi-row insert; a row per item follows (see [`vector_write_sizes`]).
const INSERT_HEAD: &str =
    "INSERT INTO chatstore_vector (id, collection_name, text, vector, vmetadata) VALUES ";

/// The tail that makes [`INSERT_HEAD`] an upsert.
const UPSERT_TAIL: &str = " ON CONFLICT (id) DO UPDATE SET \
     collection_name = excluded.collection_name, text = excluded.text, \
     vector = excluded.vector, vmetadata = excluded.vmetadata";

/// Rows written by one statement, at most. Every statement is a round trip to the SQLite
/// connection's worker thread (sqlx runs each connection on a thread of its own), and on a
/// virtual machine whose idle CPUs halt, waking that thread can cost more than the insert
/// itself. A file's 32 chunks in one statement take about two thirds of the time of a
/// statement per chunk on one CPU, and half where idle CPUs halt. Five values a row keep the
/// statement far below SQLite's limit on bound values.
const WRITE_ROWS: usize = 64;

/// The sizes of the statements that write `n` rows: [`WRITE_ROWS`] while that many are left,
/// then the powers of two of the rest, largest first (45 rows: 32, 8, 4, 1). So there are
/// seven statement shapes in all, each prepared once per connection and kept. Public so that
/// a raw baseline can send exactly these statements.
pub fn vector_write_sizes(n: usize) -> impl Iterator<Item = usize> {
    let mut left = n;
    std::iter::from_fn(move || {
        let size = match left {
            0 => return None,
            l if l >= WRITE_ROWS => WRITE_ROWS,
            l => 1 << l.ilog2(),
        };
        left -= size;
        Some(size)
    })
}

/// The first of the JSON array `$1`'s ids that is stored (the item a refused insert hit).
const FIRST_TAKEN: Sql = Sql::both(
    "SELECT id FROM chatstore_vector WHERE id IN (SELECT value FROM json_each($1)) \
     ORDER BY id LIMIT 1",
);

const HAS_COLLECTION: Sql =
    Sql::both("SELECT id FROM chatstore_vector WHERE collection_name = $1 LIMIT 1");

const DELETE_COLLECTION: Sql = Sql::both("DELETE FROM chatstore_vector WHERE collection_name = $1");

/// Deletes the items whose ids are in the JSON array `$1`.
const DELETE_IDS: Sql =
    Sql::both("DELETE FROM chatstore_vector WHERE id IN (SELECT value FROM json_each($1))");

const RESET: Sql = Sql::both("DELETE FROM chatstore_vector");

/// One page of a collection by id, after the cursor `$2` (`''` for the start).
const SCAN: Sql = Sql::both(
    "SELECT id, text, vector, vmetadata FROM chatstore_vector WHERE collection_name = $1 \
     AND id > $2 ORDER BY id LIMIT $3",
);

const COLLECTIONS: Sql =
    Sql::both("SELECT DISTINCT collection_name FROM chatstore_vector ORDER BY collection_name");

/// At most this many values are bound for the SQL pre-filter (SQLite limits bound values);
/// conditions beyond it are left to the exact filter in Rust, which always applies.
const MAX_PREFILTER_VALUES: usize = 500;

fn to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(id: &str, bytes: &[u8]) -> Result<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::backend_msg(format!(
            "vector of item {id:?} is {} bytes, not a whole number of f32 values",
            bytes.len()
        )));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

fn item_from_row(row: &Row) -> Result<VectorItem> {
    let id = row.text("id")?;
    let vector = from_blob(&id, &row.get::<Vec<u8>>("vector")?)?;
    Ok(VectorItem {
        text: row.text("text")?,
        metadata: json::parse_object("chatstore_vector.vmetadata", row.json_text("vmetadata")?)?,
        vector,
        id,
    })
}

fn ids_json(ids: impl IntoIterator<Item = String>) -> Arg {
    Arg::Text(Some(json::to_text(&Value::Array(
        ids.into_iter().map(Value::String).collect(),
    ))))
}

/// The collection's items (only `ids` when given), narrowed by the filter in SQL to a superset
/// of its matches: a text value must be one of the filter's values as text; other values pass
/// to the exact filter in Rust.
fn candidates(collection: &str, ids: Option<&[String]>, filter: Option<&VectorFilter>) -> Dyn {
    let mut d = Dyn::default();
    d.sql("SELECT id, text, vector, vmetadata FROM chatstore_vector WHERE collection_name = ")
        .bind(collection);
    if let Some(ids) = ids {
        d.sql(" AND id IN (SELECT value FROM json_each(")
            .bind(ids_json(ids.iter().cloned()))
            .sql("))");
    }
    let mut budget = MAX_PREFILTER_VALUES;
    for (key, condition) in filter.map(|f| f.conditions.as_slice()).unwrap_or_default() {
        let values: &[Value] = match condition {
            Condition::Eq(v) => std::slice::from_ref(v),
            Condition::In(values) => values,
        };
        if values.len() + 1 > budget {
            continue;
        }
        budget -= values.len() + 1;
        d.sql(
            " AND EXISTS (SELECT 1 FROM json_each(chatstore_vector.vmetadata) AS m WHERE m.key = ",
        )
        .bind(key.as_str())
        .sql(" AND (m.type NOT IN ('text', 'null') OR m.value IN (");
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                d.sql(", ");
            }
            d.bind(as_text(v));
        }
        d.sql(")))");
    }
    d.sql(" ORDER BY id");
    d
}

async fn dimension(tx: &mut Tx, collection: &str, except: &[&str]) -> Result<Option<usize>> {
    let except = ids_json(except.iter().map(|s| (*s).to_owned()));
    match tx
        .fetch_optional(DIMENSION, vec![Arg::from(collection), except])
        .await?
    {
        Some(row) => Ok(Some(usize::try_from(row.int("dim")?).unwrap_or(0))),
        None => Ok(None),
    }
}

async fn matching_items(
    tx: &mut Tx,
    collection: &str,
    ids: Option<&[String]>,
    filter: Option<&VectorFilter>,
) -> Result<Vec<VectorItem>> {
    let mut items = Vec::new();
    tx.fetch_dyn_each(candidates(collection, ids, filter), |row| {
        let item = item_from_row(&row)?;
        if filter.is_none_or(|f| f.matches(&item.metadata)) {
            items.push(item);
        }
        Ok(())
    })
    .await?;
    Ok(items)
}

impl SqlStore {
    fn sqlite_only(&self, operation: &'static str) -> Result<()> {
        match self.dialect() {
            Dialect::Sqlite => Ok(()),
            Dialect::Postgres => Err(Error::unsupported("postgres", operation)),
        }
    }

    /// Whether `chatstore_vector` exists (remembered once seen).
    async fn vector_table(&self) -> Result<bool> {
        if self.inner.vectors_ready.load(Ordering::Acquire) {
            return Ok(true);
        }
        let exists = self
            .pool()
            .fetch_optional("vector", TABLE_EXISTS, args![])
            .await?
            .is_some();
        if exists {
            self.inner.vectors_ready.store(true, Ordering::Release);
        }
        Ok(exists)
    }

    async fn create_vector_table(&self) -> Result<()> {
        let mut tx = self.begin("vector", Mode::Write).await?;
        tx.execute_script(CREATE_TABLE).await?;
        tx.commit().await?;
        self.inner.vectors_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes items: `replace` upserts, otherwise a taken id is a `Conflict`.
    async fn write_items(
        &self,
        collection: &str,
        items: Vec<VectorItem>,
        replace: bool,
    ) -> Result<()> {
        if !self.vector_table().await? {
            if items.is_empty() {
                return Ok(());
            }
            self.create_vector_table().await?;
        }
        let mut tx = self.begin("vector", Mode::Write).await?;
        let replaced: Vec<&str> = if replace {
            items.iter().map(|i| i.id.as_str()).collect()
        } else {
            Vec::new()
        };
        write_rows(&mut tx, collection, &items, replace, &replaced).await?;
        tx.commit().await
    }

    /// Upserts the entries of an `upsert_many` in one transaction, each checked against its
    /// collection's rows that the call does not replace.
    async fn write_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        if entries.iter().all(|(_, items)| items.is_empty()) {
            return Ok(());
        }
        if !self.vector_table().await? {
            self.create_vector_table().await?;
        }
        let mut tx = self.begin("vector", Mode::Write).await?;
        // A refused entry drops the transaction: nothing of the call stays.
        let replaced = ids_of_many(&entries);
        for (collection, items) in &entries {
            write_rows(&mut tx, collection, items, true, &replaced).await?;
        }
        tx.commit().await
    }
}

/// Writes items into a collection inside `tx`, after checking them against the dimension of
/// the collection's rows other than `replaced`: `replace` upserts, otherwise a taken id is a
/// `Conflict`.
async fn write_rows(
    tx: &mut Tx,
    collection: &str,
    items: &[VectorItem],
    replace: bool,
    replaced: &[&str],
) -> Result<()> {
    let dim = dimension(tx, collection, replaced).await?;
    validate_item_dimension(items, dim)?;
    let mut rest = items;
    for size in vector_write_sizes(items.len()) {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        match tx
            .execute_dyn(write_statement(collection, chunk, replace))
            .await
        {
            Ok(_) => {}
            // The statement wrote none of its rows; name the item that is taken.
            Err(Error::Conflict { .. }) if !replace => {
                let ids = ids_json(chunk.iter().map(|i| i.id.clone()));
                let message = match tx.fetch_optional(FIRST_TAKEN, vec![ids]).await? {
                    Some(row) => format!("item id {:?} exists", row.text("id")?),
                    None => "an item id of this call exists".to_owned(),
                };
                return Err(Error::conflict("vector", message));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One statement writing `items` (a size of [`vector_write_sizes`]) into `collection`: `replace`
/// upserts, otherwise a taken id fails the whole statement.
fn write_statement(collection: &str, items: &[VectorItem], replace: bool) -> Dyn {
    let mut d = Dyn::default();
    d.sql(INSERT_HEAD);
    for (n, item) in items.iter().enumerate() {
        d.sql(if n == 0 { "(" } else { ", (" })
            .bind(item.id.as_str())
            .sql(", ")
            .bind(collection)
            .sql(", ")
            .bind(item.text.as_str())
            .sql(", ")
            .bind(to_blob(&item.vector))
            .sql(", ")
            .bind(Arg::Json(Some(json::to_text(&Value::Object(
                item.metadata.clone(),
            )))))
            .sql(")");
    }
    if replace {
        d.sql(UPSERT_TAIL);
    }
    d
}

#[async_trait]
impl VectorRepo for SqlStore {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        self.sqlite_only("vectors.has_collection")?;
        if !self.vector_table().await? {
            return Ok(false);
        }
        Ok(self
            .pool()
            .fetch_optional("vector", HAS_COLLECTION, args![name])
            .await?
            .is_some())
    }

    async fn delete_collection(&self, name: &str) -> Result<()> {
        self.sqlite_only("vectors.delete_collection")?;
        if self.vector_table().await? {
            self.pool()
                .execute("vector", DELETE_COLLECTION, args![name])
                .await?;
        }
        Ok(())
    }

    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.sqlite_only("vectors.insert")?;
        self.write_items(collection, items, false).await
    }

    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.sqlite_only("vectors.upsert")?;
        self.write_items(collection, items, true).await
    }

    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        self.sqlite_only("vectors.upsert_many")?;
        self.write_many(entries).await
    }

    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        self.sqlite_only("vectors.search")?;
        if !self.vector_table().await? {
            return Ok(vec![Vec::new(); vectors.len()]);
        }
        let mut tx = self.begin("vector", Mode::Read).await?;
        let dim = dimension(&mut tx, collection, &[]).await?;
        validate_query_dimension(vectors, dim)?;
        let items = matching_items(&mut tx, collection, None, filter).await?;
        tx.commit().await?;
        let refs: Vec<&VectorItem> = items.iter().collect();
        Ok(vectors
            .iter()
            .map(|q| exact_search(&refs, q, None, limit))
            .collect())
    }

    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        self.sqlite_only("vectors.query")?;
        if !self.vector_table().await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin("vector", Mode::Read).await?;
        let mut items = matching_items(&mut tx, collection, None, Some(filter)).await?;
        tx.commit().await?;
        if let Some(limit) = limit {
            items.truncate(limit as usize);
        }
        Ok(items)
    }

    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        self.sqlite_only("vectors.get")?;
        if !self.vector_table().await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin("vector", Mode::Read).await?;
        let items = matching_items(&mut tx, collection, None, None).await?;
        tx.commit().await?;
        Ok(items)
    }

    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        self.sqlite_only("vectors.delete")?;
        // Also checked by the store's validation layer: neither ids nor a filter is not "all".
        chatstore_core::vectors::validate_delete(collection, ids, filter)?;
        if !self.vector_table().await? {
            return Ok(0);
        }
        let mut tx = self.begin("vector", Mode::Write).await?;
        let doomed: Vec<String> = matching_items(&mut tx, collection, ids, filter)
            .await?
            .into_iter()
            .map(|item| item.id)
            .collect();
        let deleted = if doomed.is_empty() {
            0
        } else {
            tx.execute(DELETE_IDS, vec![ids_json(doomed)]).await?
        };
        tx.commit().await?;
        Ok(deleted)
    }

    async fn reset(&self) -> Result<()> {
        self.sqlite_only("vectors.reset")?;
        if self.vector_table().await? {
            self.pool().execute("vector", RESET, args![]).await?;
        }
        Ok(())
    }

    async fn collections(&self) -> Result<Vec<String>> {
        self.sqlite_only("vectors.collections")?;
        if !self.vector_table().await? {
            return Ok(Vec::new());
        }
        self.pool()
            .fetch_all("vector", COLLECTIONS, args![])
            .await?
            .iter()
            .map(|r| r.text("collection_name"))
            .collect()
    }

    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        self.sqlite_only("vectors.scan")?;
        if !self.vector_table().await? {
            return Ok(Vec::new());
        }
        self.pool()
            .fetch_all(
                "vector",
                SCAN,
                args![collection, cursor(after), i64::from(limit)],
            )
            .await?
            .iter()
            .map(item_from_row)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::{WRITE_ROWS, from_blob, to_blob, vector_write_sizes};

    #[test]
    fn vectors_round_trip_through_blobs() {
        let v = vec![1.5f32, -0.25, 3.0e-7, f32::MAX];
        assert_eq!(from_blob("x", &to_blob(&v)).expect("whole floats"), v);
        assert!(from_blob("x", &[1, 2, 3]).is_err());
    }

    #[test]
    fn write_sizes_cover_every_row_once_in_seven_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=300 {
            let sizes: Vec<usize> = vector_write_sizes(n).collect();
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n} rows: {sizes:?}");
            assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{n}: {sizes:?}");
            assert!(
                sizes
                    .iter()
                    .all(|s| s.is_power_of_two() && *s <= WRITE_ROWS)
            );
            shapes.extend(sizes);
        }
        assert_eq!(shapes.len(), 7);
        assert_eq!(vector_write_sizes(45).collect::<Vec<_>>(), [32, 8, 4, 1]);
        assert_eq!(vector_write_sizes(130).collect::<Vec<_>>(), [64, 64, 2]);
    }
}
