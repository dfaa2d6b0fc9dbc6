//! [`VectorRepo`] for [`PgVectorStore`]: reads, deletes and the side table that remembers each
//! collection's dimension. Inserts live in `ingest.rs`, searches in `search.rs`.

use async_trait::async_trait;
use chatstore_core::Result;
use chatstore_core::vectors::{CollectionItems, SearchHit, VectorFilter, VectorItem, VectorRepo};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::PgVectorStore;
use crate::error::{during, retrying_conflicts};
use crate::filter;
use crate::session::Prepare;

const HAS_COLLECTION: &str =
    "SELECT EXISTS (SELECT 1 FROM document_chunk WHERE collection_name = $1)";
const COLLECTIONS: &str = "SELECT collection_name FROM document_chunk \
     GROUP BY collection_name ORDER BY collection_name COLLATE \"C\"";
const DELETE_COLLECTION: &str = "DELETE FROM document_chunk WHERE collection_name = $1";
const RESET: &str = "DELETE FROM document_chunk";
const FORGET_ALL: &str = "DELETE FROM chatstore_collection RETURNING index_name";
const INFO: &str = "SELECT dimension, hnsw_ef, indexed_rows, exact_filter_rows, value_counts, \
     index_dimension, index_normalised FROM chatstore_collection WHERE name = $1";
const LOCK_INFO: &str = "SELECT dimension FROM chatstore_collection WHERE name = $1 FOR UPDATE";
const FORGET: &str = "DELETE FROM chatstore_collection WHERE name = $1 \
     AND NOT EXISTS (SELECT 1 FROM document_chunk WHERE collection_name = $1) \
     RETURNING index_name";

/// What the side table knows about a collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectionInfo {
    /// The true dimension of its vectors (unknown for rows another program wrote).
    pub dimension: Option<usize>,
    /// `ef_search` of its calibrated partial HNSW index; `None`: search exactly.
    pub hnsw_ef: Option<u32>,
    /// Its rows when the index was calibrated.
    pub indexed_rows: Option<i64>,
    /// Filters matching at most this many rows are searched exactly (through their index).
    pub exact_filter_rows: Option<i64>,
    /// The most frequent values of the filter keys and their rows (see `search.rs`).
    pub value_counts: Option<Value>,
    /// The components its partial index covers, when fewer than the column's (see
    /// `indexes.rs`, "Narrow indexes").
    pub index_dimension: Option<u32>,
    /// Its whole-column index orders by the vectors scaled to unit length (see
    /// `search::IndexKey`).
    pub index_normalised: bool,
}

pub(crate) async fn collection_info(
    conn: &mut PgConnection,
    name: &str,
    prepare: Prepare,
) -> Result<Option<CollectionInfo>> {
    let row = prepare
        .query(INFO)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("reading the collection's dimension"))?;
    row.map(|row| {
        let dimension: Option<i32> = row.try_get(0).map_err(during("reading dimension"))?;
        let ef: Option<i32> = row.try_get(1).map_err(during("reading hnsw_ef"))?;
        Ok(CollectionInfo {
            dimension: dimension.and_then(|d| usize::try_from(d).ok()),
            hnsw_ef: ef.and_then(|e| u32::try_from(e).ok()),
            indexed_rows: row.try_get(2).map_err(during("reading indexed_rows"))?,
            exact_filter_rows: row
                .try_get(3)
                .map_err(during("reading exact_filter_rows"))?,
            value_counts: row.try_get(4).map_err(during("reading value_counts"))?,
            index_dimension: row
                .try_get::<Option<i32>, _>(5)
                .map_err(during("reading index_dimension"))?
                .and_then(|d| u32::try_from(d).ok()),
            index_normalised: row.try_get(6).map_err(during("reading index_normalised"))?,
        })
    })
    .transpose()
}

/// Locks the collection's side-table row (if any) until the transaction ends, so deletes and
/// inserts of one collection serialise on it.
pub(crate) async fn lock_collection(
    conn: &mut PgConnection,
    name: &str,
    prepare: Prepare,
) -> Result<()> {
    prepare
        .query(LOCK_INFO)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("locking the collection"))?;
    Ok(())
}

/// When the collection has no rows left, forgets its dimension and returns the partial index
/// it had, for the caller to drop after its commit ([`PgVectorStore::drop_forgotten`]): a
/// collection exists only while it has rows.
///
/// The side-table row is locked first, in a statement of its own: a writer adding rows to the
/// collection holds that lock until it commits, and the emptiness check then runs on a
/// snapshot taken after that commit. Checked in the `DELETE` alone, the check would run on the
/// snapshot taken before the `DELETE` waited for the writer, miss the writer's rows and forget
/// the dimension of a collection that has rows.
pub(crate) async fn forget_if_empty(
    conn: &mut PgConnection,
    name: &str,
    prepare: Prepare,
) -> Result<Option<String>> {
    lock_collection(conn, name, prepare).await?;
    let index: Option<Option<String>> = prepare
        .scalar(FORGET)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(during("forgetting an empty collection"))?;
    Ok(index.flatten())
}

impl PgVectorStore {
    /// What the side table knows about `collection`; nothing when a read-only opening found
    /// no side table.
    pub(crate) async fn collection_info(
        &self,
        conn: &mut PgConnection,
        collection: &str,
    ) -> Result<Option<CollectionInfo>> {
        if !self.schema.side_table {
            return Ok(None);
        }
        collection_info(conn, collection, self.prepare).await
    }

    /// Decodes `(id, text, vmetadata, vector)` at columns 0..4, cutting padding to `dim`.
    fn item_from_row(&self, row: &PgRow, dim: Option<usize>) -> Result<VectorItem> {
        let id: String = row.try_get(0).map_err(during("reading id"))?;
        let text: Option<String> = row.try_get(1).map_err(during("reading text"))?;
        let metadata: Option<Value> = row.try_get(2).map_err(during("reading vmetadata"))?;
        let vector = self.read_vector(row, 3).map_err(during("reading vector"))?;
        let mut vector = vector.unwrap_or_default();
        if let Some(d) = dim {
            // Padding only: a row wider than the recorded dimension (written by another
            // program) keeps its components.
            vector.truncate(d.max(crate::unpadded_width(&vector)));
        }
        Ok(VectorItem {
            id,
            text: text.unwrap_or_default(),
            vector,
            metadata: metadata_object(metadata),
        })
    }

    async fn select_items(
        &self,
        collection: &str,
        filter: Option<&VectorFilter>,
        after: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        let mut session = self.session().await?;
        let dim = self
            .collection_info(&mut session, collection)
            .await?
            .and_then(|i| i.dimension);
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT d.id, d.text, d.vmetadata, d.{} FROM document_chunk d WHERE d.collection_name = ",
            self.statements.vector_expr
        ));
        qb.push_bind(collection.to_owned());
        filter::push(&mut qb, "d", filter);
        if let Some(after) = after {
            qb.push(" AND d.id COLLATE \"C\" > ");
            qb.push_bind(after.to_owned());
        }
        qb.push(" ORDER BY d.id COLLATE \"C\"");
        if let Some(limit) = limit {
            qb.push(" LIMIT ");
            qb.push_bind(i64::from(limit));
        }
        let rows = self
            .prepare
            .built(qb.build())
            .fetch_all(&mut *session)
            .await
            .map_err(during("reading vectors"))?;
        session.finish().await?;
        rows.iter().map(|r| self.item_from_row(r, dim)).collect()
    }
}

/// Metadata as an object; Open WebUI always writes one, anything else reads as empty.
pub(crate) fn metadata_object(value: Option<Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[async_trait]
impl VectorRepo for PgVectorStore {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        let mut session = self.session().await?;
        let found = self
            .prepare
            .scalar(HAS_COLLECTION)
            .bind(name)
            .fetch_one(&mut *session)
            .await
            .map_err(during("looking for a collection"))?;
        session.finish().await?;
        Ok(found)
    }

    async fn delete_collection(&self, name: &str) -> Result<()> {
        retrying_conflicts("deleting a collection", || {
            self.delete_collection_once(name)
        })
        .await
    }

    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.write(collection, items, crate::ingest::Mode::Insert)
            .await
    }

    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.write(collection, items, crate::ingest::Mode::Upsert)
            .await
    }

    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        self.write_many(entries).await
    }

    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        self.search_impl(collection, vectors, filter, limit).await
    }

    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        self.select_items(collection, Some(filter), None, limit)
            .await
    }

    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        self.select_items(collection, None, None, None).await
    }

    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        self.select_items(
            collection,
            None,
            Some(after.unwrap_or_default()),
            Some(limit),
        )
        .await
    }

    async fn optimize(&self, collection: &str) -> Result<()> {
        match PgVectorStore::optimize(self, collection).await {
            Ok(_) => Ok(()),
            // Behind a pooler without a direct URL no index can be built: the collection
            // stays exact, which searches correctly without any preparation.
            Err(e) if e.kind() == chatstore_core::ErrorKind::Unsupported => {
                tracing::warn!(collection, "not indexed: {e}");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn optimize_many(&self, collections: &[String]) -> Result<()> {
        for collection in self.mark_small_exact(collections).await? {
            VectorRepo::optimize(self, &collection).await?;
        }
        Ok(())
    }

    async fn finish_load(&self) -> Result<()> {
        let settings = crate::OpenWebUiIndex::from_env();
        self.build_open_webui_index(&settings).await.map(|_| ())
    }

    async fn settle(&self) -> Result<()> {
        self.wait_for_index_builds().await;
        Ok(())
    }

    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        // Also checked by the store's validation layer; a caller of this repository itself
        // must not delete a whole collection by leaving both out either.
        chatstore_core::vectors::validate_delete(collection, ids, filter)?;
        retrying_conflicts("deleting vectors", || {
            self.delete_once(collection, ids, filter)
        })
        .await
    }

    async fn reset(&self) -> Result<()> {
        retrying_conflicts("deleting every vector", || self.reset_once()).await
    }

    async fn collections(&self) -> Result<Vec<String>> {
        let mut session = self.session().await?;
        let names = self
            .prepare
            .scalar(COLLECTIONS)
            .fetch_all(&mut *session)
            .await
            .map_err(during("listing collections"))?;
        session.finish().await?;
        Ok(names)
    }
}

/// The deletes' transactions, run again by the repository's methods when PostgreSQL aborts
/// one to break a deadlock (see [`retrying_conflicts`]).
impl PgVectorStore {
    /// One transaction of `delete_collection`.
    async fn delete_collection_once(&self, name: &str) -> Result<()> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        lock_collection(&mut tx, name, self.prepare).await?;
        self.prepare
            .query(DELETE_COLLECTION)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(during("deleting a collection"))?;
        let index = forget_if_empty(&mut tx, name, self.prepare).await?;
        tx.commit().await.map_err(during("committing a delete"))?;
        self.drop_forgotten(index.into_iter().collect()).await;
        Ok(())
    }

    /// One transaction of `delete`.
    async fn delete_once(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        lock_collection(&mut tx, collection, self.prepare).await?;
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("DELETE FROM document_chunk d WHERE d.collection_name = ");
        qb.push_bind(collection.to_owned());
        if let Some(ids) = ids {
            qb.push(" AND d.id = ANY(");
            qb.push_bind(ids.to_vec());
            qb.push(")");
        }
        filter::push(&mut qb, "d", filter);
        let deleted = self
            .prepare
            .built(qb.build())
            .execute(&mut *tx)
            .await
            .map_err(during("deleting vectors"))?
            .rows_affected();
        let index = forget_if_empty(&mut tx, collection, self.prepare).await?;
        tx.commit().await.map_err(during("committing a delete"))?;
        self.drop_forgotten(index.into_iter().collect()).await;
        Ok(deleted)
    }

    /// One transaction of `reset`.
    async fn reset_once(&self) -> Result<()> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        let indexes: Vec<Option<String>> = self
            .prepare
            .scalar(FORGET_ALL)
            .fetch_all(&mut *tx)
            .await
            .map_err(during("forgetting collections"))?;
        self.prepare
            .query(RESET)
            .execute(&mut *tx)
            .await
            .map_err(during("deleting every vector"))?;
        tx.commit().await.map_err(during("committing a reset"))?;
        self.drop_forgotten(indexes.into_iter().flatten().collect())
            .await;
        Ok(())
    }
}
