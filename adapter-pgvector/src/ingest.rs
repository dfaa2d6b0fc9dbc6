//! Inserts and upserts, each call one transaction, vectors always binary-encoded (the server
//! never parses vector text):
//! - inserts and upserts of [`COPY_MIN_ROWS`] rows or more: binary COPY straight into the
//!   table (an upsert first deletes the rows it replaces, in the same transaction), so every
//!   row is written once;
//! - a large upsert racing another writer of the same ids, and halfvec columns: binary COPY
//!   into a staging table, then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`;
//! - small writes: `INSERT ... SELECT FROM unnest($1::text[], $2::vector[], ...)`, one round
//!   trip per batch.
//!
//! A COPY ends with a small `CopyDone` after its data; sqlx sets `TCP_NODELAY` since 0.9.1
//! (the workspace requires it), so Nagle's algorithm no longer holds that message for the
//! server's delayed ACK (about 40 ms a COPY on Linux before).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chatstore_core::vectors::{
    CollectionItems, VectorItem, ids_of_many, validate_items, validate_many,
};
use chatstore_core::{Error, Result};
use serde_json::Value;
use sqlx::PgConnection;
use sqlx::postgres::PgCopyIn;

use crate::error::{during, retrying_conflicts};
use crate::session::Prepare;
use crate::vectors::forget_if_empty;
use crate::{ColumnType, PgVectorStore};

/// Claims the collection's side-table row (creating it with this dimension, or locking the
/// existing one) and returns the dimension it holds, and the one it held before (the subquery
/// reads the statement's snapshot: `NULL` when this write records the collection's dimension
/// first, which its other rows, written by another program, must then not contradict).
/// Counts the rows written since the collection's last `optimize` (for automatic builds).
const CLAIM: &str = "INSERT INTO chatstore_collection (name, dimension, written) VALUES ($1, $2, $3) \
     ON CONFLICT (name) DO UPDATE \
     SET dimension = COALESCE(chatstore_collection.dimension, EXCLUDED.dimension), \
         written = chatstore_collection.written + EXCLUDED.written \
     RETURNING dimension, written, indexed_rows, \
         (SELECT b.dimension FROM chatstore_collection b WHERE b.name = $1)";
/// [`CLAIM`] for the collections of an `upsert_many` at once (names distinct, in name order).
const CLAIM_MANY: &str = "INSERT INTO chatstore_collection (name, dimension, written) \
     SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) \
     ON CONFLICT (name) DO UPDATE \
     SET dimension = COALESCE(chatstore_collection.dimension, EXCLUDED.dimension), \
         written = chatstore_collection.written + EXCLUDED.written \
     RETURNING name, dimension, written, indexed_rows, \
         (SELECT b.dimension FROM chatstore_collection b \
          WHERE b.name = chatstore_collection.name)";
/// The dimension a collection's side row held before this write claimed it (see [`CLAIM`]).
type Before = Option<i32>;
/// What [`CLAIM`] returns: the dimension the side row holds, the rows written since the last
/// `optimize`, the rows that `optimize` found, and [`Before`].
type Claimed = (Option<i32>, i64, Option<i64>, Before);
/// What [`CLAIM_MANY`] returns: a collection's name and its [`Claimed`].
type ClaimedMany = (String, Option<i32>, i64, Option<i64>, Before);
/// How many of each collection's rows other than the given ids [`PgVectorStore::other_rows_widths`]
/// looks at.
const WIDTH_SAMPLE: i64 = 16;
/// The largest magnitude half precision holds.
const HALF_MAX: f32 = 65_504.0;
/// Half precision's smallest positive value (2^-24); below half of it a component rounds to 0.
const HALF_SMALLEST: f32 = 5.960_464_5e-8 / 2.0;
const SET_DIMENSION: &str = "UPDATE chatstore_collection SET dimension = $2 WHERE name = $1";
/// The collections the ids of an upsert belong to now.
const HOLDERS: &str = "SELECT DISTINCT collection_name FROM document_chunk WHERE id = ANY($1)";
/// Deletes the rows a large upsert replaces in the collections it writes. (An id held by
/// another collection is left to the COPY's primary key to find: see `replace_by_copy`.)
const DELETE_REPLACED: &str =
    "DELETE FROM document_chunk WHERE id = ANY($1) AND collection_name = ANY($2)";

/// Binary COPY straight into the table (inserts into a `vector` column).
const COPY_INSERT: &str = "COPY document_chunk (id, vector, collection_name, text, vmetadata) \
     FROM STDIN (FORMAT binary)";
/// A per-session staging table, emptied at every commit.
const STAGE: &str = "CREATE TEMP TABLE IF NOT EXISTS chatstore_staging \
     (id TEXT, vector vector, text TEXT, vmetadata JSONB) ON COMMIT DELETE ROWS";
/// [`STAGE`] through a transaction pooler: the staging table lives only as long as its
/// transaction, leaving nothing behind on a server connection other clients get next.
const STAGE_POOLED: &str = "CREATE TEMP TABLE IF NOT EXISTS chatstore_staging \
     (id TEXT, vector vector, text TEXT, vmetadata JSONB) ON COMMIT DROP";
const COPY_STAGE: &str =
    "COPY chatstore_staging (id, vector, text, vmetadata) FROM STDIN (FORMAT binary)";
/// Empties the staging table inside a transaction (commit does it otherwise).
const CLEAR_STAGE: &str = "TRUNCATE chatstore_staging";
/// From this many rows on, writes to a `vector` column go by binary COPY straight into the
/// table; fewer go through one `unnest` statement (a COPY costs two round trips more, which
/// the rows repay from about 32 of them: `examples/small_writes.rs`).
const COPY_MIN_ROWS: usize = 64;
/// From this many rows on, the writes that cannot COPY straight into the table (`halfvec`
/// columns, an upsert merging) COPY into the staging table; fewer go through `unnest`.
/// Batches this large are also the ones worth freeing off the caller's path ([`Spent`]).
const STAGING_MIN_ROWS: usize = 256;
const COPY_SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
/// COPY data is sent in chunks of about this many bytes.
const COPY_CHUNK: usize = 1 << 20;
/// The first chunk of COPY data: small, so that the server starts on the rows while the next
/// chunks are encoded (each chunk after it twice as large, up to [`COPY_CHUNK`]).
const COPY_FIRST_CHUNK: usize = 64 << 10;

/// What [`PgVectorStore::write_many`] writes, sorted and measured once for both attempts.
#[derive(Clone, Copy)]
struct ManyParts<'a> {
    entries: &'a [&'a CollectionItems],
    ids: &'a [String],
    names: &'a [&'a str],
    dims: &'a [i32],
    counts: &'a [i64],
}

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
        if items.is_empty() {
            return Ok(());
        }
        let checks = Checks::new(self, Input::Items(&items));
        let (batch, checks_ref) = (&items, &checks);
        let written = merging_on_refusal(|merge| {
            retrying_conflicts("writing vectors", move || {
                self.write_once(collection, batch, mode, merge, checks_ref)
            })
        });
        checks.explain(written.await)?;
        self.spent.set_aside(items);
        Ok(())
    }

    /// Whether a write of `rows` rows goes by COPY straight into the table (an upsert merging
    /// after a refused COPY excepted): from [`COPY_MIN_ROWS`] rows, on a `vector` column.
    fn copies(&self, rows: usize) -> bool {
        self.schema.column_type == ColumnType::Vector && rows >= COPY_MIN_ROWS
    }

    /// One transaction of [`write`](Self::write): `false`, with nothing written, when a large
    /// upsert's COPY met one of its ids in another collection or added by a concurrent writer
    /// (unless `merge`, which upserts by `INSERT ... ON CONFLICT` instead of COPY and never
    /// meets one).
    async fn write_once(
        &self,
        collection: &str,
        items: &[VectorItem],
        mode: Mode,
        merge: bool,
        checks: &Checks<'_>,
    ) -> Result<bool> {
        let Some(first) = items.first() else {
            return Ok(true);
        };
        let dim = first.vector.len();
        let dim_i32 = i32::try_from(dim).unwrap_or(i32::MAX);
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();

        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        let (held, written, indexed_rows, before): Claimed = self
            .prepare
            .rows(CLAIM)
            .bind(collection)
            .bind(dim_i32)
            .bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
            .fetch_one(&mut *tx)
            .await
            .map_err(during("claiming the collection"))?;
        // An insert keeps every existing row; an upsert replaces its own ids, so only the
        // other rows pin the dimension (as in the memory model).
        let except: &[String] = if mode == Mode::Upsert { &ids } else { &[] };
        if let Some(held) = held.and_then(|d| usize::try_from(d).ok())
            && held != dim
        {
            checks.run()?;
            self.redimension(&mut tx, collection, except, items, Some(held), dim_i32)
                .await?;
        } else if before.is_none() {
            checks.run()?;
            let names = [collection.to_owned()];
            let width = self.other_rows_widths(&mut tx, &names, except).await?;
            first_dimension(collection, width.get(collection).copied(), dim)?;
        }

        // The collections the upserted ids lived in (this one included), for forgetting the
        // ones an upsert empties.
        let mut holders: Vec<String> = Vec::new();
        let by_copy = self.copies(items.len());

        if by_copy && mode == Mode::Insert {
            // A duplicate id fails the whole COPY: the insert's all-or-nothing for free.
            self.copy_rows(
                &mut tx,
                COPY_INSERT,
                &[(collection, items)],
                true,
                Some(checks),
            )
            .await?;
        } else if by_copy && !merge {
            // An upsert writes each row once, straight into the table (see `replace_by_copy`),
            // not COPYed into a staging table and then merged by `INSERT ... ON CONFLICT`,
            // which writes every row twice.
            if !self
                .replace_by_copy(&mut tx, &[(collection, items)], &ids, checks)
                .await?
            {
                tx.rollback()
                    .await
                    .map_err(during("rolling back an upsert to merge"))?;
                return Ok(false);
            }
        } else if items.len() < STAGING_MIN_ROWS {
            checks.run()?;
            holders = self.unnest_rows(&mut tx, items, collection, mode).await?;
        } else {
            checks.run()?;
            if mode == Mode::Upsert {
                holders = self.merge_entries(&mut tx, &[(collection, items)]).await?;
            } else {
                self.staged_rows(&mut tx, items, collection, mode).await?;
            }
        }
        let mut forgotten = Vec::new();
        for source in holders.iter().filter(|c| *c != collection) {
            forgotten.extend(forget_if_empty(&mut tx, source, self.prepare).await?);
        }
        // Every path above has run them by now; nothing commits without.
        checks.run()?;
        tx.commit().await.map_err(during("committing vectors"))?;
        self.drop_forgotten(forgotten).await;
        self.after_write(collection, self.index_due(written, indexed_rows));
        Ok(true)
    }
}

impl PgVectorStore {
    /// `upsert_many`: every entry in one transaction. The side-table rows of all the
    /// collections are claimed by one statement (in name order, the order every writer locks
    /// them in); with a `vector` column and at least [`COPY_MIN_ROWS`] rows, the replaced
    /// ids are deleted by one statement and every row is written by one COPY, else each entry
    /// goes the way a small `upsert` does, in the same transaction.
    pub(crate) async fn write_many(&self, mut entries: Vec<CollectionItems>) -> Result<()> {
        let live = |(_, items): &&CollectionItems| !items.is_empty();
        if entries.iter().filter(live).count() <= 1 {
            // One collection gets rows: the call checked as a whole, then written as an upsert.
            validate_many(&entries, self.schema.max_dimension())?;
            return match entries.into_iter().find(|(_, items)| !items.is_empty()) {
                Some((collection, items)) => self.write(&collection, items, Mode::Upsert).await,
                None => Ok(()),
            };
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let checks = Checks::new(self, Input::Many(&entries));
        // Entries without items claim nothing (the checks still look at their names).
        let written: Vec<&CollectionItems> = entries.iter().filter(live).collect();
        let ids: Vec<String> = ids_of_many(&entries)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let names: Vec<&str> = written.iter().map(|(c, _)| c.as_str()).collect();
        let dims: Vec<i32> = written
            .iter()
            .map(|(_, items)| {
                let dim = items.first().map_or(0, |i| i.vector.len());
                i32::try_from(dim).unwrap_or(i32::MAX)
            })
            .collect();
        let counts: Vec<i64> = written
            .iter()
            .map(|(_, items)| i64::try_from(items.len()).unwrap_or(i64::MAX))
            .collect();
        let parts = ManyParts {
            entries: &written,
            ids: &ids,
            names: &names,
            dims: &dims,
            counts: &counts,
        };
        let (parts, checks_ref) = (&parts, &checks);
        let written = merging_on_refusal(|merge| {
            retrying_conflicts("writing vectors", move || {
                self.write_many_once(parts, merge, checks_ref)
            })
        });
        checks.explain(written.await)?;
        self.spent.set_aside(entries);
        Ok(())
    }

    /// One transaction of [`write_many`](Self::write_many); `false` as for
    /// [`write_once`](Self::write_once).
    async fn write_many_once(
        &self,
        parts: &ManyParts<'_>,
        merge: bool,
        checks: &Checks<'_>,
    ) -> Result<bool> {
        let ManyParts {
            entries,
            ids,
            names,
            dims,
            counts,
        } = *parts;
        let mut tx = self
            .begin_write()
            .await
            .map_err(during("opening a transaction"))?;
        let claimed: Vec<ClaimedMany> = self
            .prepare
            .rows(CLAIM_MANY)
            .bind(names)
            .bind(dims)
            .bind(counts)
            .fetch_all(&mut *tx)
            .await
            .map_err(during("claiming the collections"))?;
        let claimed: HashMap<String, Claimed> = claimed
            .into_iter()
            .map(|(name, held, written, indexed, before)| (name, (held, written, indexed, before)))
            .collect();
        // The collections whose dimension this write records first, checked in one statement.
        let first: Vec<String> = names
            .iter()
            .filter(|n| claimed.get(**n).is_none_or(|c| c.3.is_none()))
            .map(|n| (*n).to_owned())
            .collect();
        if !first.is_empty() {
            checks.run()?;
        }
        let widths = self.other_rows_widths(&mut tx, &first, ids).await?;
        let mut due = Vec::with_capacity(entries.len());
        for ((collection, items), dim) in entries.iter().zip(dims) {
            let (held, written, indexed_rows, before) = claimed
                .get(collection)
                .copied()
                .unwrap_or((None, 0, None, None));
            // Every id of the call ends in its entry's collection: only the other rows pin a
            // collection's dimension.
            if let Some(held) = held
                && held != *dim
            {
                checks.run()?;
                let held = usize::try_from(held).ok();
                self.redimension(&mut tx, collection, ids, items, held, *dim)
                    .await?;
            } else if before.is_none() {
                let dim = usize::try_from(*dim).unwrap_or(usize::MAX);
                first_dimension(collection, widths.get(collection).copied(), dim)?;
            }
            due.push(self.index_due(written, indexed_rows));
        }

        let rows: usize = entries.iter().map(|(_, items)| items.len()).sum();
        let borrowed: Vec<(&str, &[VectorItem])> = entries
            .iter()
            .map(|(c, items)| (c.as_str(), items.as_slice()))
            .collect();
        let holders = if !merge && self.copies(rows) {
            // As a large upsert: the replaced rows deleted, then everything COPYed straight in.
            if !self
                .replace_by_copy(&mut tx, &borrowed, ids, checks)
                .await?
            {
                tx.rollback()
                    .await
                    .map_err(during("rolling back an upsert to merge"))?;
                return Ok(false);
            }
            // No other collection held any of the ids (see `replace_by_copy`).
            Vec::new()
        } else {
            checks.run()?;
            self.merge_entries(&mut tx, &borrowed).await?
        };
        let mut forgotten = Vec::new();
        for source in holders.iter().filter(|c| !names.contains(&c.as_str())) {
            forgotten.extend(forget_if_empty(&mut tx, source, self.prepare).await?);
        }
        checks.run()?;
        tx.commit().await.map_err(during("committing vectors"))?;
        self.drop_forgotten(forgotten).await;
        for (collection, due) in names.iter().zip(due) {
            self.after_write(collection, due);
        }
        Ok(true)
    }

    /// A collection that held vectors of `held` components gets `dim`: refused when rows other
    /// than `except` (the ids being replaced) keep the old dimension, else recorded. Rows wider
    /// than `held` (another program refilled the collection at another dimension after the side
    /// row was written) count at their own width: a write of that width is taken, and the
    /// dimension recorded again.
    async fn redimension(
        &self,
        conn: &mut PgConnection,
        collection: &str,
        except: &[String],
        items: &[VectorItem],
        held: Option<usize>,
        dim: i32,
    ) -> Result<()> {
        let names = [collection.to_owned()];
        let widths = self.other_rows_widths(conn, &names, except).await?;
        if let Some(&width) = widths.get(collection) {
            let pinned = match held {
                Some(held) if width <= held => held,
                _ => width,
            };
            if usize::try_from(dim).ok() != Some(pinned) {
                validate_items(items, Some(pinned), self.schema.max_dimension())?;
            }
        }
        self.prepare
            .query(SET_DIMENSION)
            .bind(collection)
            .bind(dim)
            .execute(&mut *conn)
            .await
            .map_err(during("recording the collection's dimension"))?;
        Ok(())
    }

    /// In a `halfvec` column, every component must fit half precision (at most 65,504 in
    /// magnitude: the server refused a larger one with an error that named no item), and a
    /// vector must keep a component that does not round to zero (one whose every component is
    /// below 2^-25 was stored as zeros, a vector without a direction).
    fn check_half(&self, items: &[VectorItem]) -> Result<()> {
        if self.schema.column_type != ColumnType::HalfVec {
            return Ok(());
        }
        for item in items {
            let largest = item.vector.iter().fold(0.0_f32, |m, x| m.max(x.abs()));
            if largest > HALF_MAX {
                return Err(Error::invalid(format!(
                    "vector of item {:?} has a component of {largest}; a halfvec column keeps \
                     at most {HALF_MAX} in magnitude",
                    item.id
                )));
            }
            if largest <= HALF_SMALLEST {
                return Err(Error::invalid(format!(
                    "vector of item {:?} would be stored as zeros in a halfvec column: its \
                     largest component, {largest}, is below {HALF_SMALLEST}",
                    item.id
                )));
            }
        }
        Ok(())
    }

    /// For each of `collections` that has rows other than `except`, the widest of a few of
    /// them up to its last non-zero component (padding left out).
    async fn other_rows_widths(
        &self,
        conn: &mut PgConnection,
        collections: &[String],
        except: &[String],
    ) -> Result<HashMap<String, usize>> {
        let mut widths = HashMap::new();
        if collections.is_empty() {
            return Ok(widths);
        }
        let sql = format!(
            "SELECT c.name, s.v FROM unnest($1::text[]) AS c(name) CROSS JOIN LATERAL \
             (SELECT {} AS v FROM document_chunk d WHERE d.collection_name = c.name \
              AND NOT (d.id = ANY($2)) LIMIT $3) s",
            self.statements.vector_expr
        );
        let rows = self
            .prepare
            .query(sqlx::AssertSqlSafe(sql))
            .bind(collections)
            .bind(except)
            .bind(WIDTH_SAMPLE)
            .fetch_all(&mut *conn)
            .await
            .map_err(during("checking the collections' rows"))?;
        for row in &rows {
            let name: String =
                sqlx::Row::try_get(row, 0).map_err(during("reading a collection name"))?;
            let vector = self
                .read_vector(row, 1)
                .map_err(during("reading a vector"))?
                .unwrap_or_default();
            let width = crate::unpadded_width(&vector);
            let widest = widths.entry(name).or_insert(0);
            *widest = width.max(*widest);
        }
        Ok(widths)
    }

    /// Upserts `entries` by deleting the `ids` they replace in the entries' own collections
    /// and COPYing every row straight in; `false` when the COPY met one of the ids elsewhere:
    /// in another collection (an upsert moving it) or added meanwhile by a concurrent writer.
    /// The transaction is then aborted, and the caller rolls it back and merges instead, which
    /// also learns the collections the moved ids leave. So a COPY that succeeds proves that
    /// no other collection held any of the ids (the primary key is the whole table's), and
    /// the common upsert, replacing a collection's own rows, is one `DELETE` with nothing
    /// returned. (Returning where each deleted row lived cost 1.4 ms per 5,000 rows, a
    /// fifth of the `DELETE`. No savepoint around the two either: it cost two round trips
    /// on every write for cases that are rare.)
    async fn replace_by_copy(
        &self,
        conn: &mut PgConnection,
        entries: &[(&str, &[VectorItem])],
        ids: &[String],
        checks: &Checks<'_>,
    ) -> Result<bool> {
        let collections: Vec<&str> = entries.iter().map(|(c, _)| *c).collect();
        Prepare::PER_CALL
            .query(DELETE_REPLACED)
            .bind(ids)
            .bind(collections)
            .execute(&mut *conn)
            .await
            .map_err(during("replacing vectors"))?;
        match self
            .copy_rows(conn, COPY_INSERT, entries, true, Some(checks))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == chatstore_core::ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Upserts each entry by `INSERT ... ON CONFLICT` (`unnest`, or the staging table for
    /// large entries and `halfvec` columns) inside `conn`'s transaction; returns the
    /// collections the ids lived in before.
    async fn merge_entries(
        &self,
        conn: &mut PgConnection,
        entries: &[(&str, &[VectorItem])],
    ) -> Result<Vec<String>> {
        // The large entries go through the staging table: one query for where all their ids
        // come from (the small ones learn it in their own statements).
        let staged_ids: Vec<&str> = entries
            .iter()
            .filter(|(_, items)| items.len() >= STAGING_MIN_ROWS)
            .flat_map(|(_, items)| items.iter().map(|i| i.id.as_str()))
            .collect();
        let mut holders: Vec<String> = Vec::new();
        if !staged_ids.is_empty() {
            holders = Prepare::PER_CALL
                .scalar(HOLDERS)
                .bind(staged_ids)
                .fetch_all(&mut *conn)
                .await
                .map_err(during("finding the collections upserted ids come from"))?;
        }
        let mut staged = false;
        for &(collection, items) in entries {
            if items.len() < STAGING_MIN_ROWS {
                let before = self
                    .unnest_rows(conn, items, collection, Mode::Upsert)
                    .await?;
                holders.extend(before);
            } else {
                // The staging table still holds the entry staged before this one: its
                // `INSERT ... SELECT` would take those rows too, into this collection.
                if staged {
                    sqlx::raw_sql(CLEAR_STAGE)
                        .execute(&mut *conn)
                        .await
                        .map_err(during("emptying the staging table"))?;
                }
                self.staged_rows(conn, items, collection, Mode::Upsert)
                    .await?;
                staged = true;
            }
        }
        holders.sort_unstable();
        holders.dedup();
        Ok(holders)
    }
}

/// How long a batch set aside ([`Spent::set_aside`]) waits for a COPY's tail before it is
/// freed anyway.
const SPENT_GRACE: Duration = Duration::from_secs(1);

/// Written batches of at least [`STAGING_MIN_ROWS`] rows, waiting to be freed while this
/// process has nothing else to do. Each item owns its strings and its metadata map, so
/// freeing a batch costs about 2 µs a row (10 ms for 5,000). Freed at once, on the caller's
/// path or another thread, that work competed for the CPU with the server's next write (with
/// the server on the same 2-core machine, the upsert of existing ids at 384 dimensions went
/// from 0.75 to 0.80 of the COPY ceiling when batches were not freed at all). So a batch is
/// set aside, and the next COPY frees it once its last rows are sent, while this process
/// waits for the server to work through them; a batch no COPY takes within [`SPENT_GRACE`]
/// is freed then, on tokio's blocking pool.
#[derive(Default, Clone)]
pub(crate) struct Spent(Arc<Mutex<SpentBatches>>);

/// The batches [`Spent`] holds, each with the number it was set aside under.
#[derive(Default)]
struct SpentBatches {
    batches: Vec<(u64, Box<dyn Send>)>,
    next: u64,
}

impl Spent {
    /// Sets `batch` aside (frees it here when it is small or there is no tokio runtime).
    fn set_aside<T: Send + 'static>(&self, batch: Vec<T>) {
        if batch.len() < STAGING_MIN_ROWS {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let number = {
            let mut spent = self.lock();
            let number = spent.next;
            spent.next += 1;
            spent.batches.push((number, Box::new(batch)));
            number
        };
        // Only this batch, if it is still here: one set aside since waits its own turn (freed
        // now, it would compete with the write that set it aside's successor).
        let spent = self.clone();
        drop(runtime.spawn(async move {
            tokio::time::sleep(SPENT_GRACE).await;
            let late: Vec<_> = {
                let mut held = spent.lock();
                let at = held.batches.iter().position(|(n, _)| *n == number);
                at.map(|at| held.batches.swap_remove(at))
                    .into_iter()
                    .collect()
            };
            if !late.is_empty() {
                drop(tokio::task::spawn_blocking(move || drop(late)));
            }
        }));
    }

    /// Every batch set aside, for the caller to free.
    fn take(&self) -> Vec<(u64, Box<dyn Send>)> {
        std::mem::take(&mut self.lock().batches)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SpentBatches> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Spent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let waiting = self.lock().batches.len();
        write!(f, "Spent({waiting} batches)")
    }
}

/// What a write checks of its input ([`validate_items`] or [`validate_many`], and
/// [`PgVectorStore::check_half`]), run once before its transaction commits. Most writes run
/// them before their first statement. A large write by COPY runs them once its last rows are
/// sent, while the server works through the rows ahead of them (the checks of 5,000 rows of
/// 384 dimensions took 2.7 ms, the server's share of the COPY after the last chunk was sent
/// 30-45 ms), so they cost the caller no time. Bad input still changes nothing: its
/// transaction rolls back.
struct Checks<'a> {
    store: &'a PgVectorStore,
    input: Input<'a>,
    passed: AtomicBool,
}

/// The input [`Checks`] look at.
enum Input<'a> {
    Items(&'a [VectorItem]),
    Many(&'a [CollectionItems]),
}

impl<'a> Checks<'a> {
    fn new(store: &'a PgVectorStore, input: Input<'a>) -> Self {
        Checks {
            store,
            input,
            passed: AtomicBool::new(false),
        }
    }

    /// Runs the checks unless they passed already.
    fn run(&self) -> Result<()> {
        if self.passed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let max_dim = self.store.schema.max_dimension();
        match self.input {
            Input::Items(items) => {
                validate_items(items, None, max_dim)?;
                self.store.check_half(items)?;
            }
            Input::Many(entries) => {
                validate_many(entries, max_dim)?;
                for (_, items) in entries {
                    self.store.check_half(items)?;
                }
            }
        }
        self.passed.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// `outcome`, unless it is an error and the input fails the checks: bad input is reported
    /// as such, not as whatever the server made of it.
    fn explain(&self, outcome: Result<()>) -> Result<()> {
        if outcome.is_err() {
            self.run()?;
        }
        outcome
    }
}

/// Runs a write's transaction (`once(false)`), and again by merging (`once(true)`) when it
/// was rolled back because its COPY met one of the ids in another collection, or added
/// meanwhile by another writer.
async fn merging_on_refusal<F, Fut>(once: F) -> Result<()>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    if !once(false).await? {
        once(true).await?;
    }
    Ok(())
}

fn what(mode: Mode) -> &'static str {
    match mode {
        Mode::Insert => "inserting vectors",
        Mode::Upsert => "upserting vectors",
    }
}

impl PgVectorStore {
    /// Large upserts (and inserts into `halfvec`): binary COPY into the session's staging
    /// table, then one `INSERT ... SELECT` (with `ON CONFLICT DO UPDATE` for upserts).
    async fn staged_rows(
        &self,
        conn: &mut PgConnection,
        items: &[VectorItem],
        collection: &str,
        mode: Mode,
    ) -> Result<()> {
        let stage = match self.prepare {
            Prepare::Named => STAGE,
            Prepare::Unnamed => STAGE_POOLED,
        };
        sqlx::raw_sql(stage)
            .execute(&mut *conn)
            .await
            .map_err(during("creating the staging table"))?;
        self.copy_rows(conn, COPY_STAGE, &[(collection, items)], false, None)
            .await?;
        let sql = match mode {
            Mode::Insert => &self.statements.insert_staged,
            Mode::Upsert => &self.statements.upsert_staged,
        };
        self.prepare
            .query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(collection)
            .execute(&mut *conn)
            .await
            .map_err(during(what(mode)))?;
        Ok(())
    }

    /// Small writes: `INSERT ... SELECT FROM unnest(...)` in batches, one round trip each. An
    /// upsert's statements also return the collections its ids lived in before (for
    /// forgetting the ones it empties), each once.
    async fn unnest_rows(
        &self,
        conn: &mut PgConnection,
        items: &[VectorItem],
        collection: &str,
        mode: Mode,
    ) -> Result<Vec<String>> {
        // The insert returns no rows.
        let sql = match mode {
            Mode::Insert => &self.statements.insert,
            Mode::Upsert => &self.statements.upsert_holders,
        };
        let mut holders: Vec<String> = Vec::new();
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
            let before: Vec<String> = self
                .prepare
                .scalar(sqlx::AssertSqlSafe(sql.as_str()))
                .bind(ids)
                .bind(vectors)
                .bind(texts)
                .bind(metadata)
                .bind(collection)
                .fetch_all(&mut *conn)
                .await
                .map_err(during(what(mode)))?;
            holders.extend(before);
        }
        holders.sort_unstable();
        holders.dedup();
        Ok(holders)
    }

    /// Streams the items of each `(collection, items)` entry as binary COPY rows: `(id, vector,
    /// [collection,] text, vmetadata)`, with the collection column only when
    /// `collection_column`. Encoding overlaps the server's work: a chunk goes out whenever
    /// one is ready ([`COPY_FIRST_CHUNK`] first, then larger ones). `checks` not yet run are
    /// run once the last chunk is out, while the server still works through the rows sent.
    /// The COPY is always finished, whatever failed (the server has the rows sent by then
    /// either way): that reads the server's every answer, leaving the connection in step for
    /// its next statement; an error then rolls the transaction back.
    async fn copy_rows(
        &self,
        conn: &mut PgConnection,
        statement: &str,
        entries: &[(&str, &[VectorItem])],
        collection_column: bool,
        checks: Option<&Checks<'_>>,
    ) -> Result<()> {
        let mut copy = conn
            .copy_in_raw(statement)
            .await
            .map_err(during("starting COPY"))?;
        let sent = self.send_rows(&mut copy, entries, collection_column).await;
        let checked = match checks {
            Some(checks) if sent.is_ok() => checks.run(),
            _ => Ok(()),
        };
        // The server has rows queued to work through: the batches set aside are freed
        // meanwhile, by a COPY long enough to hide it (a batch of 5,000 takes about 10 ms to
        // free, the server a millisecond or two over a small COPY's rows).
        let rows: usize = entries.iter().map(|(_, items)| items.len()).sum();
        if rows >= STAGING_MIN_ROWS {
            let spent = self.spent.take();
            if !spent.is_empty() {
                drop(tokio::task::spawn_blocking(move || drop(spent)));
            }
        }
        let finished = copy.finish().await.map_err(during("writing vectors"));
        sent?;
        checked?;
        finished?;
        Ok(())
    }

    /// The rows of [`copy_rows`](Self::copy_rows), encoded and sent.
    async fn send_rows(
        &self,
        copy: &mut PgCopyIn<&mut PgConnection>,
        entries: &[(&str, &[VectorItem])],
        collection_column: bool,
    ) -> Result<()> {
        let mut chunk = COPY_FIRST_CHUNK;
        let mut buf: Vec<u8> = Vec::with_capacity(chunk + 64 * 1024);
        buf.extend_from_slice(COPY_SIGNATURE);
        buf.extend_from_slice(&0i32.to_be_bytes());
        buf.extend_from_slice(&0i32.to_be_bytes());
        let fields: i16 = if collection_column { 5 } else { 4 };
        for &(collection, items) in entries {
            for item in items {
                buf.extend_from_slice(&fields.to_be_bytes());
                put_field(&mut buf, item.id.as_bytes());
                let dim = self
                    .schema
                    .dimension
                    .unwrap_or(item.vector.len())
                    .max(item.vector.len());
                let dim16 = u16::try_from(dim)
                    .map_err(|_| Error::invalid(format!("{dim} dimensions do not fit pgvector")))?;
                put_len(&mut buf, 4 + 4 * dim);
                buf.extend_from_slice(&dim16.to_be_bytes());
                buf.extend_from_slice(&0u16.to_be_bytes());
                // Zero-filled to the column in one go (the padding is zeros), then the
                // components written in place, not pushed one at a time.
                let start = buf.len();
                buf.resize(start + 4 * dim, 0);
                for (slot, x) in buf[start..].chunks_exact_mut(4).zip(&item.vector) {
                    slot.copy_from_slice(&x.to_be_bytes());
                }
                if collection_column {
                    put_field(&mut buf, collection.as_bytes());
                }
                put_field(&mut buf, item.text.as_bytes());
                // jsonb's binary form: version 1, then the JSON text.
                let start = buf.len();
                put_len(&mut buf, 0);
                buf.push(1);
                serde_json::to_writer(&mut buf, &item.metadata)
                    .map_err(|e| Error::invalid(format!("metadata of {:?}: {e}", item.id)))?;
                let len = buf.len() - start - 4;
                let len = i32::try_from(len).map_err(|_| {
                    Error::invalid(format!("metadata of {:?} is too large", item.id))
                })?;
                buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
                if buf.len() >= chunk {
                    copy.send(std::mem::take(&mut buf))
                        .await
                        .map_err(during("sending COPY data"))?;
                    chunk = (chunk * 2).min(COPY_CHUNK);
                    buf.reserve(chunk + 64 * 1024);
                }
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes());
        copy.send(buf).await.map_err(during("sending COPY data"))?;
        Ok(())
    }
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    // Lengths are bounded by validation (ids 255 bytes, vectors 16,000 dimensions) or checked.
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
}

fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    put_len(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

/// A write records `collection`'s dimension first (no side row, or one without a dimension, as
/// a collection written by another program has): refused when its other rows (`width`, the
/// widest seen) are wider than `dim`, which would read them back cut to `dim`. Narrower rows
/// are taken: their zeros past their own width cannot be told from padding.
fn first_dimension(collection: &str, width: Option<usize>, dim: usize) -> Result<()> {
    match width {
        Some(width) if width > dim => Err(Error::invalid(format!(
            "collection {collection:?} holds vectors of {width} dimensions (written by \
             another program); these have {dim}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn batch(rows: usize, dropped: &Arc<AtomicUsize>) -> Vec<Counted> {
        (0..rows).map(|_| Counted(dropped.clone())).collect()
    }

    /// A small batch is freed at once; a large one waits to be taken, or for the grace period
    /// to pass, and is freed then: none is kept.
    #[tokio::test]
    async fn batches_set_aside_are_freed_taken_or_not() {
        let spent = Spent::default();
        let dropped = Arc::new(AtomicUsize::new(0));
        spent.set_aside(batch(STAGING_MIN_ROWS - 1, &dropped));
        assert_eq!(dropped.load(Ordering::SeqCst), STAGING_MIN_ROWS - 1);

        spent.set_aside(batch(300, &dropped));
        assert_eq!(format!("{spent:?}"), "Spent(1 batches)");
        drop(spent.take());
        assert_eq!(dropped.load(Ordering::SeqCst), STAGING_MIN_ROWS - 1 + 300);

        spent.set_aside(batch(400, &dropped));
        tokio::time::sleep(SPENT_GRACE + Duration::from_millis(500)).await;
        assert_eq!(dropped.load(Ordering::SeqCst), STAGING_MIN_ROWS - 1 + 700);
        assert!(spent.take().is_empty());
    }
}
