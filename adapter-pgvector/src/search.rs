//! Search that keeps its neighbours, and the per-collection plans that make it fast.
//!
//! Open WebUI keeps every collection in one table under one ANN index and filters by
//! `collection_name` after the index walk, so a collection that holds a small share of the
//! table gets only a few of the k neighbours it asked for. chatstore picks the plan per
//! collection instead:
//! - **exact** (the default): the distances are computed behind an `OFFSET 0` fence, so no ANN
//!   index can serve the `ORDER BY`; PostgreSQL reads the collection's rows through the
//!   `collection_name` index, applies the metadata filter, and sorts. Always the true top-k.
//! - **HNSW** (unfiltered searches of a collection `optimize` has indexed): the collection's own
//!   partial HNSW index (`WHERE collection_name = '<name>'`), with the `ef_search` that reached
//!   the target recall against exact search on a sample of the collection's own vectors.
//!   `optimize` keeps no index whose recall it could not measure above the target.
//!
//! Every search statement is unnamed (`persistent(false)`): PostgreSQL plans it with the actual
//! collection name, never with a cached generic plan that cannot see the partial index.

use std::collections::HashSet;
use std::time::Instant;

use chatstore_core::vectors::{
    SearchHit, VectorFilter, score, validate_collection, validate_search,
};
use chatstore_core::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::PgVectorStore;
use crate::error::during;
use crate::filter;
use crate::vectors::{collection_info, drop_index, metadata_object};

/// Prefix of chatstore's partial HNSW indexes.
const INDEX_PREFIX: &str = "chatstore_hnsw_";
/// `ef_search` values `optimize` tries, in order; pgvector caps it at 1000.
const EF_STEPS: &[u32] = &[40, 64, 100, 160, 250, 400, 640, 1000];
/// Query vectors `optimize` samples from the collection to measure recall.
const CALIBRATION_QUERIES: i64 = 100;
/// Neighbours measured per calibration query.
const CALIBRATION_K: usize = 10;

const COUNT: &str = "SELECT count(*) FROM document_chunk WHERE collection_name = $1";
const COUNTS: &str = "SELECT collection_name, count(*) FROM document_chunk \
     GROUP BY collection_name ORDER BY collection_name COLLATE \"C\"";
const INDEXED: &str = "SELECT name FROM chatstore_collection WHERE index_name IS NOT NULL";
const LOCK: &str = "SELECT pg_advisory_xact_lock($1)";
/// The DDL of a partial index; PostgreSQL's `format` quotes the name and the collection.
const INDEX_DDL: &str = "SELECT format('CREATE INDEX IF NOT EXISTS %I ON document_chunk \
     USING hnsw (vector %s) WITH (m = %s, ef_construction = %s) WHERE collection_name = %L', \
     $1::text, $2::text, $4::int, $5::int, $3::text)";
const MARK_INDEXED: &str = "INSERT INTO chatstore_collection (name, index_name) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET index_name = EXCLUDED.index_name, hnsw_ef = NULL";
const SET_EF: &str = "UPDATE chatstore_collection SET hnsw_ef = $2 WHERE name = $1";
const MARK_EXACT: &str = "UPDATE chatstore_collection SET hnsw_ef = NULL, index_name = NULL \
     WHERE name = $1 RETURNING index_name";
/// The storage options (`m=…`, `ef_construction=…`) of an existing index.
const INDEX_OPTIONS: &str = "SELECT coalesce(reloptions, '{}')::text[] FROM pg_class \
     WHERE oid = to_regclass($1) AND relkind = 'i'";
const CURRENT_INDEX: &str = "SELECT index_name FROM chatstore_collection WHERE name = $1";
const ANALYZE: &str = "ANALYZE document_chunk";
const SAMPLE: &str = "SELECT id, vector::vector FROM document_chunk WHERE collection_name = $1 \
     ORDER BY random() LIMIT $2";
/// The HNSW plan's settings, local to its transaction: the calibrated `ef_search`, and no sort,
/// seq scan or bitmap scan, so the planner takes the partial index. (PostgreSQL: its cost model
/// does not see the detoasting of wide out-of-line vectors and would pick the exact btree+sort
/// plan at 1536 dimensions, 20x slower.)
const SET_HNSW: &str = "SELECT set_config('hnsw.ef_search', $1, true), \
     set_config('enable_sort', 'off', true), set_config('enable_seqscan', 'off', true), \
     set_config('enable_bitmapscan', 'off', true)";

/// How a collection is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPlan {
    /// An exact scan of the collection's rows (inside the filter).
    Exact,
    /// The collection's partial HNSW index with this `ef_search`.
    Hnsw {
        /// The calibrated `hnsw.ef_search`.
        ef_search: u32,
    },
}

/// What [`PgVectorStore::optimize`] decided for a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionPlan {
    /// The collection.
    pub collection: String,
    /// Its rows when it was optimised.
    pub rows: i64,
    /// The plan unfiltered searches use from now on (filtered ones are always exact).
    pub plan: SearchPlan,
    /// Mean recall@10 the HNSW plan reached on the calibration sample, when one was tried.
    pub measured_recall: Option<f64>,
}

/// The partial index name of a collection: a hash, as names may be longer than an identifier.
pub(crate) fn index_name(collection: &str) -> String {
    let digest = Sha256::digest(collection.as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{INDEX_PREFIX}{hex}")
}

/// Whether `name` is one of chatstore's partial index names (safe to put into DDL).
pub(crate) fn is_own_index_name(name: &str) -> bool {
    name.strip_prefix(INDEX_PREFIX).is_some_and(|hex| {
        hex.len() == 24
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn lock_key(collection: &str) -> i64 {
    let digest = Sha256::digest(collection.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl PgVectorStore {
    pub(crate) async fn search_impl(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        validate_collection(collection)?;
        if let Some(f) = filter {
            f.validate()?;
        }
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(during("acquiring a connection"))?;
        let info = collection_info(&mut conn, collection).await?;
        validate_search(
            vectors,
            info.as_ref().and_then(|i| i.dimension),
            limit,
            self.schema.max_dimension(),
        )?;
        let plan = match (filter, info.and_then(|i| i.hnsw_ef)) {
            (None, Some(ef)) if limit <= 1_000 => SearchPlan::Hnsw {
                ef_search: ef.max(limit),
            },
            _ => SearchPlan::Exact,
        };
        self.run(&mut conn, collection, vectors, filter, limit, plan)
            .await
    }

    /// Runs one search statement for all query vectors with the given plan.
    async fn run(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
        plan: SearchPlan,
    ) -> Result<Vec<Vec<SearchHit>>> {
        let ty = self.schema.column_type.sql_name();
        let queries: Vec<pgvector::Vector> = vectors.iter().map(|v| self.to_column(v)).collect();
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT q.qid, r.id, r.text, r.vmetadata, r.distance FROM unnest(");
        qb.push_bind(queries);
        qb.push(format_args!(
            "::{ty}[]) WITH ORDINALITY AS q(v, qid) CROSS JOIN LATERAL ("
        ));
        match plan {
            SearchPlan::Exact => {
                qb.push(
                    "SELECT s.id, s.text, s.vmetadata, s.distance FROM (\
                     SELECT d.id, d.text, d.vmetadata, d.vector <=> q.v AS distance \
                     FROM document_chunk d WHERE d.collection_name = ",
                );
                qb.push_bind(collection.to_owned());
                filter::push(&mut qb, "d", filter);
                // The fence: no ANN index can serve an ORDER BY outside this subquery.
                qb.push(" OFFSET 0) s ORDER BY s.distance, s.id COLLATE \"C\" LIMIT ");
            }
            SearchPlan::Hnsw { .. } => {
                qb.push(
                    "SELECT d.id, d.text, d.vmetadata, d.vector <=> q.v AS distance \
                     FROM document_chunk d WHERE d.collection_name = ",
                );
                qb.push_bind(collection.to_owned());
                filter::push(&mut qb, "d", filter);
                qb.push(" ORDER BY d.vector <=> q.v LIMIT ");
            }
        }
        qb.push_bind(i64::from(limit));
        qb.push(") r ORDER BY q.qid, r.distance, r.id COLLATE \"C\"");
        let query = qb.build().persistent(false);

        let rows = match plan {
            SearchPlan::Exact => query
                .fetch_all(&mut *conn)
                .await
                .map_err(during("searching vectors"))?,
            SearchPlan::Hnsw { ef_search } => {
                let mut tx = sqlx::Connection::begin(&mut *conn)
                    .await
                    .map_err(during("opening a transaction"))?;
                sqlx::query(SET_HNSW)
                    .bind(ef_search.min(1_000).to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(during("setting up the HNSW plan"))?;
                let rows = query
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(during("searching vectors"))?;
                tx.commit().await.map_err(during("ending a search"))?;
                rows
            }
        };

        let mut out: Vec<Vec<SearchHit>> = vec![Vec::new(); vectors.len()];
        for row in rows {
            let qid: i64 = row.try_get(0).map_err(during("reading a hit"))?;
            let id: String = row.try_get(1).map_err(during("reading a hit"))?;
            let text: Option<String> = row.try_get(2).map_err(during("reading a hit"))?;
            let metadata: Option<Value> = row.try_get(3).map_err(during("reading a hit"))?;
            let distance: Option<f64> = row.try_get(4).map_err(during("reading a hit"))?;
            let Some(distance) = distance else { continue };
            let slot = usize::try_from(qid - 1)
                .ok()
                .and_then(|i| out.get_mut(i))
                .ok_or_else(|| Error::backend_msg(format!("search returned query id {qid}")))?;
            slot.push(SearchHit {
                id,
                text: text.unwrap_or_default(),
                metadata: metadata_object(metadata),
                distance,
                score: score(distance),
            });
        }
        Ok(out)
    }

    /// The plan unfiltered searches of `collection` use now.
    pub async fn plan(&self, collection: &str) -> Result<SearchPlan> {
        validate_collection(collection)?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(during("acquiring a connection"))?;
        Ok(match collection_info(&mut conn, collection).await? {
            Some(info) => match info.hnsw_ef {
                Some(ef_search) => SearchPlan::Hnsw { ef_search },
                None => SearchPlan::Exact,
            },
            None => SearchPlan::Exact,
        })
    }

    /// Chooses `collection`'s search plan by its size: at most `exact_max_rows` rows stay
    /// exact (and lose a partial index they had); a larger one gets its own partial HNSW index
    /// (built now; run this after bulk loads, as building is far faster than inserting into an
    /// index), then the smallest `ef_search` whose recall@10 against exact search, measured on
    /// a sample of the collection's own vectors, reaches `target_recall` while still beating
    /// the exact scan on the same sample, plus one step of margin (when that still beats it). When none does (data without structure, such as
    /// uniform random vectors), the index is dropped and the collection stays exact.
    pub async fn optimize(&self, collection: &str) -> Result<CollectionPlan> {
        validate_collection(collection)?;
        let rows: i64 = sqlx::query_scalar(COUNT)
            .bind(collection)
            .fetch_one(&self.pool)
            .await
            .map_err(during("counting a collection"))?;
        if rows <= self.config.exact_max_rows || !self.schema.supports_hnsw() {
            self.mark_exact(collection).await?;
            return Ok(CollectionPlan {
                collection: collection.to_owned(),
                rows,
                plan: SearchPlan::Exact,
                measured_recall: None,
            });
        }
        self.build_index(collection).await?;
        let (plan, recall) = self.calibrate(collection).await?;
        if plan == SearchPlan::Exact {
            self.mark_exact(collection).await?;
        }
        Ok(CollectionPlan {
            collection: collection.to_owned(),
            rows,
            plan,
            measured_recall: recall,
        })
    }

    /// [`optimize`](Self::optimize) for every collection that is large or has an index.
    pub async fn optimize_all(&self) -> Result<Vec<CollectionPlan>> {
        let counts: Vec<(String, i64)> = sqlx::query_as(COUNTS)
            .fetch_all(&self.pool)
            .await
            .map_err(during("counting collections"))?;
        let indexed: HashSet<String> = sqlx::query_scalar(INDEXED)
            .fetch_all(&self.pool)
            .await
            .map_err(during("listing indexed collections"))?
            .into_iter()
            .collect();
        let mut plans = Vec::new();
        for (collection, rows) in counts {
            if rows > self.config.exact_max_rows || indexed.contains(&collection) {
                plans.push(self.optimize(&collection).await?);
            }
        }
        Ok(plans)
    }

    async fn build_index(&self, collection: &str) -> Result<()> {
        let index = index_name(collection);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(during("opening a transaction"))?;
        sqlx::query(LOCK)
            .bind(lock_key(collection))
            .execute(&mut *tx)
            .await
            .map_err(during("locking the collection for indexing"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "SET LOCAL maintenance_work_mem = '{}MB'",
            self.config.index_build_memory_mb.max(1)
        )))
        .execute(&mut *tx)
        .await
        .map_err(during("raising maintenance_work_mem"))?;
        // An index built with other parameters (e.g. before they changed) is rebuilt.
        let options: Option<Vec<String>> = sqlx::query_scalar(INDEX_OPTIONS)
            .bind(&index)
            .fetch_optional(&mut *tx)
            .await
            .map_err(during("reading a collection's index options"))?;
        if let Some(options) = options {
            let wanted = [
                format!("m={}", self.config.hnsw_m),
                format!("ef_construction={}", self.config.hnsw_ef_construction),
            ];
            if !wanted.iter().all(|w| options.contains(w)) {
                drop_index(&mut tx, &index).await?;
            }
        }
        let ddl: String = sqlx::query_scalar(INDEX_DDL)
            .bind(&index)
            .bind(self.schema.column_type.cosine_ops())
            .bind(collection)
            .bind(i32::try_from(self.config.hnsw_m).unwrap_or(i32::MAX))
            .bind(i32::try_from(self.config.hnsw_ef_construction).unwrap_or(i32::MAX))
            .fetch_one(&mut *tx)
            .await
            .map_err(during("quoting the index DDL"))?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(during("building a collection's HNSW index"))?;
        sqlx::query(MARK_INDEXED)
            .bind(collection)
            .bind(&index)
            .execute(&mut *tx)
            .await
            .map_err(during("recording a collection's index"))?;
        tx.commit().await.map_err(during("committing an index"))?;
        sqlx::raw_sql(ANALYZE)
            .execute(&self.pool)
            .await
            .map_err(during("analysing document_chunk"))?;
        Ok(())
    }

    /// Measures recall@10 of the HNSW plan against exact search at increasing `ef_search`.
    async fn calibrate(&self, collection: &str) -> Result<(SearchPlan, Option<f64>)> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(during("acquiring a connection"))?;
        let sample = sqlx::query(SAMPLE)
            .bind(collection)
            .bind(CALIBRATION_QUERIES)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("sampling a collection"))?;
        let mut ids = Vec::with_capacity(sample.len());
        let mut queries = Vec::with_capacity(sample.len());
        for row in &sample {
            let id: String = row.try_get(0).map_err(during("reading a sample"))?;
            let v: pgvector::Vector = row.try_get(1).map_err(during("reading a sample"))?;
            ids.push(id);
            queries.push(v.to_vec());
        }
        if queries.is_empty() {
            return Ok((SearchPlan::Exact, None));
        }
        let k = u32::try_from(CALIBRATION_K + 1).unwrap_or(11);
        let started = Instant::now();
        let truth = self
            .run(&mut conn, collection, &queries, None, k, SearchPlan::Exact)
            .await?;
        let exact_time = started.elapsed();
        let mut best = None;
        let mut reached: Option<(u32, f64)> = None;
        for &ef in EF_STEPS {
            let plan = SearchPlan::Hnsw { ef_search: ef };
            let started = Instant::now();
            let found = self
                .run(&mut conn, collection, &queries, None, k, plan)
                .await?;
            let hnsw_time = started.elapsed();
            let recall = mean_recall(&ids, &truth, &found);
            tracing::debug!(
                collection,
                ef,
                recall,
                ?hnsw_time,
                ?exact_time,
                "calibrating HNSW"
            );
            if hnsw_time >= exact_time {
                // Higher ef only gets slower: the index cannot beat the exact scan here.
                break;
            }
            if let Some((_, r)) = reached {
                // One step of margin past the target: the sample is only 100 queries.
                reached = Some((ef, recall.max(r)));
                break;
            }
            best = Some(recall);
            if recall >= self.config.target_recall {
                reached = Some((ef, recall));
            }
        }
        if let Some((ef, recall)) = reached {
            sqlx::query(SET_EF)
                .bind(collection)
                .bind(i32::try_from(ef).unwrap_or(1_000))
                .execute(&mut *conn)
                .await
                .map_err(during("recording ef_search"))?;
            return Ok((SearchPlan::Hnsw { ef_search: ef }, Some(recall)));
        }
        Ok((SearchPlan::Exact, best))
    }

    async fn mark_exact(&self, collection: &str) -> Result<()> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(during("opening a transaction"))?;
        let index: Option<Option<String>> = sqlx::query_scalar(CURRENT_INDEX)
            .bind(collection)
            .fetch_optional(&mut *tx)
            .await
            .map_err(during("reading a collection's index"))?;
        sqlx::query(MARK_EXACT)
            .bind(collection)
            .execute(&mut *tx)
            .await
            .map_err(during("marking a collection exact"))?;
        if let Some(Some(index)) = index {
            drop_index(&mut tx, &index).await?;
        }
        tx.commit().await.map_err(during("committing a plan"))
    }
}

/// Mean over queries of |found ∩ truth| / |truth|, each list without the query's own id and cut
/// to [`CALIBRATION_K`].
fn mean_recall(ids: &[String], truth: &[Vec<SearchHit>], found: &[Vec<SearchHit>]) -> f64 {
    let mut total = 0.0;
    for ((own, t), f) in ids.iter().zip(truth).zip(found) {
        let t: Vec<&str> = t
            .iter()
            .map(|h| h.id.as_str())
            .filter(|id| id != own)
            .take(CALIBRATION_K)
            .collect();
        let f: HashSet<&str> = f
            .iter()
            .map(|h| h.id.as_str())
            .filter(|id| id != own)
            .take(CALIBRATION_K)
            .collect();
        total += if t.is_empty() {
            1.0
        } else {
            t.iter().filter(|id| f.contains(*id)).count() as f64 / t.len() as f64
        };
    }
    total / ids.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_own_and_safe() {
        let name = index_name("kb'; DROP TABLE x; --");
        assert!(is_own_index_name(&name));
        assert!(name.len() < 63);
        assert!(!is_own_index_name("idx_document_chunk_vector"));
        assert!(!is_own_index_name("chatstore_hnsw_zz; DROP"));
    }
}
