//! Inserts and upserts: batches of `INSERT ... SELECT FROM unnest($1::text[], $2::vector[], ...)`
//! with binary-encoded arrays (one round trip per batch, no per-row statements, no vector text
//! parsing on the server), every batch of one call in one transaction.

use chatstore_core::Result;
use chatstore_core::vectors::{VectorItem, validate_collection, validate_items};
use serde_json::Value;

use crate::PgVectorStore;
use crate::error::during;
use crate::vectors::forget_if_empty;

/// Claims the collection's side-table row (creating it with this dimension, or locking the
/// existing one) and returns the dimension it holds.
const CLAIM: &str = "INSERT INTO chatstore_collection (name, dimension) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE \
     SET dimension = COALESCE(chatstore_collection.dimension, EXCLUDED.dimension) \
     RETURNING dimension";
/// Whether the collection keeps rows other than the given ids.
const HAS_OTHER_ROWS: &str = "SELECT EXISTS (SELECT 1 FROM document_chunk \
     WHERE collection_name = $1 AND NOT (id = ANY($2)))";
const SET_DIMENSION: &str = "UPDATE chatstore_collection SET dimension = $2 WHERE name = $1";
/// The other collections the ids of an upsert now belong to.
const SOURCES: &str = "SELECT DISTINCT collection_name FROM document_chunk \
     WHERE id = ANY($1) AND collection_name <> $2";

/// Insert (a duplicate id is a conflict) or upsert (a duplicate id is replaced and moved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Insert,
    Upsert,
}

impl PgVectorStore {
    pub(crate) async fn write(
        &self,
        collection: &str,
        items: Vec<VectorItem>,
        mode: Mode,
    ) -> Result<()> {
        validate_collection(collection)?;
        let max_dim = self.schema.max_dimension();
        validate_items(&items, None, max_dim)?;
        let Some(first) = items.first() else {
            return Ok(());
        };
        let dim = first.vector.len();
        let dim_i32 = i32::try_from(dim).unwrap_or(i32::MAX);
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();

        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(during("opening a transaction"))?;
        let held: Option<i32> = sqlx::query_scalar(CLAIM)
            .bind(collection)
            .bind(dim_i32)
            .fetch_one(&mut *tx)
            .await
            .map_err(during("claiming the collection"))?;
        if let Some(held) = held.and_then(|d| usize::try_from(d).ok())
            && held != dim
        {
            // An insert keeps every existing row; an upsert replaces its own ids, so only the
            // other rows pin the dimension (as in the memory model).
            let except: &[String] = if mode == Mode::Upsert { &ids } else { &[] };
            let pinned: bool = sqlx::query_scalar(HAS_OTHER_ROWS)
                .bind(collection)
                .bind(except)
                .fetch_one(&mut *tx)
                .await
                .map_err(during("checking the collection's rows"))?;
            if pinned {
                validate_items(&items, Some(held), max_dim)?;
            }
            sqlx::query(SET_DIMENSION)
                .bind(collection)
                .bind(dim_i32)
                .execute(&mut *tx)
                .await
                .map_err(during("recording the collection's dimension"))?;
        }

        let sources: Vec<String> = if mode == Mode::Upsert {
            sqlx::query_scalar(SOURCES)
                .bind(&ids)
                .bind(collection)
                .fetch_all(&mut *tx)
                .await
                .map_err(during("finding the collections upserted ids come from"))?
        } else {
            Vec::new()
        };

        let sql = match mode {
            Mode::Insert => &self.statements.insert,
            Mode::Upsert => &self.statements.upsert,
        };
        let what = match mode {
            Mode::Insert => "inserting vectors",
            Mode::Upsert => "upserting vectors",
        };
        for batch in items.chunks(self.config.batch_rows.max(1)) {
            let mut ids = Vec::with_capacity(batch.len());
            let mut vectors = Vec::with_capacity(batch.len());
            let mut texts = Vec::with_capacity(batch.len());
            let mut metadata = Vec::with_capacity(batch.len());
            for item in batch {
                ids.push(item.id.as_str());
                vectors.push(self.to_column(&item.vector));
                texts.push(item.text.as_str());
                metadata.push(Value::Object(item.metadata.clone()));
            }
            sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(ids)
                .bind(vectors)
                .bind(texts)
                .bind(metadata)
                .bind(collection)
                .execute(&mut *tx)
                .await
                .map_err(during(what))?;
        }
        for source in &sources {
            forget_if_empty(&mut tx, source).await?;
        }
        tx.commit().await.map_err(during("committing vectors"))
    }
}
