//! The vectors group: every collection of the source, in name order, page by page by id, into
//! the target by upsert. The collections are listed by `VectorRepo::collection_names`, which
//! may list empty ones (one empty page each) but spares Chroma a count request per collection:
//! a listing of a thousand collections took 0.7-0.9 s of a 4 s copy counting them.
//!
//! Reading and writing overlap: a reader task walks the collections and sends pages into a
//! channel while the engine writes earlier ones, across collection boundaries too (Open WebUI
//! keeps one small `file-{id}` collection per upload, so a copy that waited at each
//! collection's end would run at the sum of both ends' pace instead of the slower one). The
//! first pages of the next [`COLLECTIONS_AHEAD`] collections are read at once, each on a task
//! of its own (a small collection is one page, and reading it costs a few round trips to the
//! source whatever its size, so one at a time the reader waited on them in turn); a
//! collection's later pages are read in order after its first. A page shorter than the limit
//! is a collection's last (the `VectorRepo::scan` contract), so no empty page is asked for.
//!
//! The writer gathers the pages that follow one another, up to a batch of records (whole
//! pages, so at most twice the batch size), and writes them in one call: one `upsert` for a
//! single collection, one `VectorRepo::upsert_many` for several (pgvector: one transaction and
//! one COPY for a hundred four-row collections, instead of a transaction each). Writing every
//! page as soon as it was ready made a small transaction per one or two collections, about
//! 15 ms each on a loaded machine: the writer then held the copy back, not the reader.
//! [`WRITES_IN_FLIGHT`] writes run at once, so the target has the next batch's rows while a
//! write spends its own round trips (transaction, claim, delete, commit); their results are
//! taken in the order the batches were read, so counts, dead letters, checkpoints and the
//! collections handed on for preparation follow the source's order whichever write ends
//! first. The reader runs at most [`PAGES_AHEAD`] batches of records ahead of what the
//! writes in flight hold (a semaphore of records, given back as they are written). Copied
//! collections are prepared for searching (`VectorRepo::optimize_many`: pgvector decides all
//! its small ones in one statement) beside the copy of the next ones, those whose copy ended
//! meanwhile together, and every preparation ends before the target's `finish_load`.
//!
//! A combined write the target refuses for good (not a retryable failure) is written again
//! collection by collection, and a collection's refused page item by item, so only the items
//! the target refuses become dead letters.
//!
//! An id is written into the first collection of the walk that holds it: a later collection's
//! item with that id (a source whose ids are unique per collection only) is set aside, since
//! the target's upsert would move the id out of the first (see `claims.rs`). The ids of a
//! batch are claimed when it is handed to a write, in read order, so a write running beside
//! an earlier one cannot claim first.
//!
//! A collection the source lists and cannot read (a read refused for good, or one still
//! failing after its retries while the source answers a listing) is set aside: a dead letter
//! of entity `collection`, its name as id, the id its walk reached and the reason; its pages
//! read before the failure are written and the walk goes on with the next collection. A
//! source that stops answering stops the run at its checkpoint, as in every group.
//!
//! Checkpoints stay exact: the state names the collection and the last id of a page only once
//! the target committed that page and every page before it (a later write that committed
//! beside a failed earlier one is written again by the resumed run). They are written once at
//! least a batch of records or [`CHECKPOINT_EVERY`] has passed since the last one (not after
//! every small collection: each checkpoint syncs the state file and its folder), before a read
//! error stops the run, and at the end. While the records are written, a checkpoint is saved
//! by a blocking task beside the next write, as the chats' pages are (syncing on the writer's
//! path held every write back by the disk's sync time: 1-6 ms a batch on the test machine,
//! more on a slow disk); the previous save is awaited before the next one and before the
//! group ends, so the file only moves forward. A resumed run starts after the checkpoint and
//! upserts again what came after it, so nothing is lost and nothing doubled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatstore_core::vectors::CollectionItems;
use chatstore_core::{Error, ErrorKind, ModelGroup, Result, VectorItem, VectorRepo};
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};

use super::{GroupState, Migration, Run, cursor_str};
use crate::claims::{self, Claims};
use crate::read::retrying;

/// Batches of records read ahead of those being written.
const PAGES_AHEAD: usize = 2;

/// Writes running at once. Two keep the target busy while a write's own round trips (its
/// transaction, the claim of its collections, the delete of the ids it replaces) and the
/// engine's work run: one at a time, those left the target idle for a fifth of the copy.
/// Writes of one collection still run one after another (the target's per-collection claim).
const WRITES_IN_FLIGHT: usize = 2;

/// Collections whose first page is read at once, ahead of the writer.
pub const COLLECTIONS_AHEAD: usize = 4;

/// Longest time between checkpoints while records are written.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// What the reader sends.
#[derive(Debug)]
enum Ahead {
    /// The next page of a collection (never empty).
    Page(String, Vec<VectorItem>),
    /// Every page of the collection was sent.
    Done(String),
    /// The source cannot read the collection past `after` (the last id sent, or where the
    /// walk resumed): it is set aside and the walk goes on with the next collection.
    Unreadable {
        collection: String,
        after: Option<String>,
        error: Error,
    },
}

impl Migration<'_> {
    pub(super) async fn vectors(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let group = ModelGroup::Vectors;
        let limit = self.options.batch_size;
        let src = self.source.vectors.clone();
        let mut collections = retrying("listing collections", || src.collection_names()).await?;
        // A group that starts over forgets the claims of an earlier start; a resumed one
        // keeps those of the collections its checkpoint passed.
        run.claims = Some(Claims::open(
            claims::path_beside(&self.options.state),
            gs.stage.is_none(),
        )?);
        // The resume rule below needs name order, whatever order a backend lists them in.
        collections.sort_unstable();
        collections.dedup();
        if let Some(stage) = &gs.stage {
            collections.retain(|c| c.as_str() >= stage.as_str());
        }
        let resume = match (&gs.stage, collections.first()) {
            (Some(stage), Some(first)) if stage == first => cursor_str(gs),
            _ => None,
        };

        // Unbounded in messages, bounded in records: the reader takes a permit per record it
        // sends and the writer gives them back once they are written.
        let (sender, mut pages) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(
            (PAGES_AHEAD + WRITES_IN_FLIGHT - 1) * limit as usize,
        ));
        let reader = tokio::spawn(read_ahead(
            src,
            collections,
            resume,
            limit,
            sender,
            budget.clone(),
        ));
        // Copied collections are prepared for searching beside the copy, not in its way
        // (pgvector: a few statements per collection, each its own commit).
        // Collections whose copy ended while the previous preparation ran are prepared
        // together.
        let (copied, mut to_optimize) = mpsc::unbounded_channel::<String>();
        let optimizer = async {
            while let Some(first) = to_optimize.recv().await {
                let mut ready = vec![first];
                while let Ok(next) = to_optimize.try_recv() {
                    ready.push(next);
                }
                self.optimize(ready).await;
            }
        };
        let writer = async {
            let mut unsaved = 0u64;
            let mut saved_at = Instant::now();
            // Pages received for the next write, the collections they complete, and a read
            // error that stops the run once what came before it is written.
            let mut next = Gathered::default();
            let mut ended = false;
            let mut in_flight = FuturesOrdered::new();
            let outcome = loop {
                if next.ready(limit, ended) && in_flight.len() < WRITES_IN_FLIGHT {
                    let mut batch = next.take();
                    // Claimed in read order, before any later batch is written.
                    if let Some(claims) = run.claims.as_mut() {
                        batch.set_aside_claimed(claims);
                    }
                    in_flight.push_back(self.write_gathered(batch));
                    continue;
                }
                if ended && in_flight.is_empty() {
                    break match next.failed.take() {
                        Some(e) => Err(e),
                        None => Ok(()),
                    };
                }
                let receiving = !ended && next.failed.is_none() && next.records < limit as usize;
                tokio::select! {
                    page = pages.recv(), if receiving => match page {
                        Some(page) => next.add(page),
                        None => ended = true,
                    },
                    Some((wrote, last, done)) = in_flight.next() => {
                        let wrote = match wrote {
                            Ok(wrote) => wrote,
                            Err(e) => break Err(e),
                        };
                        gs.counts.read += wrote.read;
                        gs.counts.written += wrote.written;
                        let letters = wrote.letters.len() as u64;
                        for letter in wrote.letters {
                            let Letter { entity, id, record, error } = letter;
                            run.letter(gs, group, entity, id, record, &error);
                        }
                        budget.add_permits(usize::try_from(wrote.read).unwrap_or(usize::MAX));
                        if wrote.read > 0 {
                            self.batch_done(run, group);
                        }
                        if let Some((collection, last)) = last {
                            gs.stage = Some(collection);
                            gs.cursor = last.map(Value::String);
                        }
                        unsaved += wrote.read + letters;
                        if unsaved >= u64::from(limit) || saved_at.elapsed() >= CHECKPOINT_EVERY {
                            if let Err(e) = run.checkpoint_behind(group, gs, self.progress).await {
                                break Err(e);
                            }
                            (unsaved, saved_at) = (0, Instant::now());
                        }
                        for collection in done {
                            let _ = copied.send(collection);
                        }
                    },
                    // Nothing left to wait for: the checks above end the loop first, this
                    // only keeps it from spinning.
                    else => ended = true,
                }
                // A read error ends the reading: what came before it is written first.
                if next.failed.is_some() {
                    ended = true;
                }
            };
            // Writes after a failed one are dropped unfinished (rolled back, or committed and
            // written again by the resumed run: the checkpoint never names them).
            drop(in_flight);
            drop(copied);
            drop(pages);
            if outcome.is_err() {
                reader.abort();
            }
            // The checkpoint being saved lands first, so the file only moves forward.
            let behind = run.saved(self.progress).await;
            let saved = if unsaved > 0 {
                run.checkpoint(group, gs, self.progress)
            } else {
                Ok(())
            };
            outcome.and(behind).and(saved)
        };
        let (outcome, ()) = tokio::join!(writer, optimizer);
        outcome?;
        match reader.await {
            Ok(()) => {}
            Err(e) if e.is_panic() => {
                return Err(Error::backend("the vector reader stopped unexpectedly", e));
            }
            Err(_) => {}
        }
        // pgvector: Open WebUI's own index, which its start-up cannot build on default
        // settings once the table is large; a failure here stops the run (Open WebUI would not
        // start on this target), and the next run builds it again.
        retrying("preparing the target for its readers", || {
            self.target.vectors.finish_load()
        })
        .await
    }

    /// Prepares copied collections for searching (pgvector: their search plans, the small
    /// ones in one statement); a failure is noted, not fatal. A failed call is tried again
    /// collection by collection, so one collection's failure does not leave the others
    /// unprepared.
    async fn optimize(&self, collections: Vec<String>) {
        let target = &self.target.vectors;
        match target.optimize_many(&collections).await {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::Unsupported => return,
            Err(_) if collections.len() > 1 => {}
            Err(e) => {
                return self.progress.note(&format!(
                    "vectors: optimizing collection {:?} failed ({e}); searches stay exact",
                    collections[0]
                ));
            }
        }
        for collection in collections {
            match target.optimize(&collection).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Unsupported => {}
                Err(e) => self.progress.note(&format!(
                    "vectors: optimizing collection {collection:?} failed ({e}); searches stay exact"
                )),
            }
        }
    }

    /// Writes a gathered batch; returns what it wrote and set aside, with the position it
    /// reached (the last collection and id) and the collections it completed, for the writer
    /// to record in order.
    async fn write_gathered(&self, batch: Batch) -> (Result<Wrote>, Position, Vec<String>) {
        let read = batch.records as u64;
        let wrote = if batch.entries.is_empty() {
            Ok(Wrote::default())
        } else {
            self.vector_entries(batch.entries).await
        };
        let wrote = wrote.map(|mut wrote| {
            wrote.read = read;
            wrote.letters.splice(0..0, batch.letters);
            wrote
        });
        (wrote, batch.position, batch.done)
    }

    /// Writes the pages taken together: one `upsert` for one collection, one `upsert_many`
    /// for several; a combined write refused for good is written again collection by
    /// collection (so only the items the target refuses are set aside).
    async fn vector_entries(&self, mut entries: Vec<CollectionItems>) -> Result<Wrote> {
        if entries.len() == 1
            && let Some((collection, items)) = entries.pop()
        {
            return self.vector_batch(&collection, items).await;
        }
        let target = &self.target.vectors;
        match retrying("writing vectors", || target.upsert_many(entries.clone())).await {
            Ok(()) => {
                let written = entries.iter().map(|(_, items)| items.len() as u64).sum();
                return Ok(Wrote {
                    written,
                    ..Wrote::default()
                });
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        let mut wrote = Wrote::default();
        for (collection, items) in entries {
            let one = self.vector_batch(&collection, items).await?;
            wrote.written += one.written;
            wrote.letters.extend(one.letters);
        }
        Ok(wrote)
    }

    /// Upserts a batch of one collection (idempotent: a resumed batch writes the same rows);
    /// items the target refuses are set aside one by one.
    async fn vector_batch(&self, collection: &str, items: Vec<VectorItem>) -> Result<Wrote> {
        let target = &self.target.vectors;
        let n = items.len() as u64;
        match retrying("writing vectors", || {
            target.upsert(collection, items.clone())
        })
        .await
        {
            Ok(()) => {
                return Ok(Wrote {
                    written: n,
                    ..Wrote::default()
                });
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        let mut wrote = Wrote::default();
        for item in items {
            match retrying("writing a vector", || {
                target.upsert(collection, vec![item.clone()])
            })
            .await
            {
                Ok(()) => wrote.written += 1,
                Err(e) if e.is_retryable() => return Err(e),
                // Keyed by collection too: an id may live in two collections of a source
                // that keeps ids unique per collection only (Chroma's own rule).
                Err(error) => wrote.letters.push(Letter {
                    entity: "vector",
                    id: format!("{collection}/{}", item.id),
                    record: serde_json::json!({"collection": collection, "item": item}),
                    error,
                }),
            }
        }
        Ok(wrote)
    }
}

/// The last collection a write reached, and its last id.
type Position = Option<(String, Option<String>)>;

/// What the writer received for its next write.
#[derive(Default)]
struct Gathered {
    /// Pages, those of one collection merged.
    entries: Vec<CollectionItems>,
    /// Collections whose every page was received.
    done: Vec<String>,
    /// Records in `entries`.
    records: usize,
    /// Collections the source cannot read, set aside.
    letters: Vec<Letter>,
    /// The last collection received and its last id (where an unreadable one stopped).
    position: Position,
    /// A read that failed for good: what came before is written, then the run stops.
    failed: Option<Error>,
}

/// One write's pages, the collections it completes and those it sets aside.
struct Batch {
    entries: Vec<CollectionItems>,
    done: Vec<String>,
    /// Records in `entries`.
    records: usize,
    letters: Vec<Letter>,
    position: Position,
}

impl Gathered {
    fn add(&mut self, received: Result<Ahead>) {
        match received {
            Ok(Ahead::Page(collection, items)) => {
                self.records += items.len();
                self.position = Some((collection.clone(), items.last().map(|i| i.id.clone())));
                match self.entries.last_mut() {
                    Some((last, pending)) if *last == collection => pending.extend(items),
                    _ => self.entries.push((collection, items)),
                }
            }
            Ok(Ahead::Done(collection)) => self.done.push(collection),
            Ok(Ahead::Unreadable {
                collection,
                after,
                error,
            }) => {
                let error = Error::backend_msg(format!(
                    "the source could not read the collection past {}; its other records were \
                     not copied: {error}",
                    after
                        .as_deref()
                        .map_or("its start".to_owned(), |a| format!("id {a:?}"))
                ));
                self.letters.push(Letter {
                    entity: "collection",
                    id: collection.clone(),
                    record: serde_json::json!({"collection": collection, "after": after}),
                    error,
                });
                self.position = Some((collection, after));
            }
            Err(e) => self.failed = Some(e),
        }
    }

    /// Whether a write is due: a batch of records, or whatever is left once nothing more comes.
    fn ready(&self, limit: u32, ended: bool) -> bool {
        let something =
            !self.entries.is_empty() || !self.done.is_empty() || !self.letters.is_empty();
        something && (ended || self.failed.is_some() || self.records >= limit as usize)
    }

    /// The next write's pages, leaving a read error behind.
    fn take(&mut self) -> Batch {
        Batch {
            entries: std::mem::take(&mut self.entries),
            done: std::mem::take(&mut self.done),
            records: std::mem::take(&mut self.records),
            letters: std::mem::take(&mut self.letters),
            position: self.position.take(),
        }
    }
}

impl Batch {
    /// Sets aside the items whose id an earlier collection of the walk (in name order)
    /// claimed: writing them would move the id out of that collection. The others' ids are
    /// claimed for their collection.
    fn set_aside_claimed(&mut self, claims: &mut Claims) {
        for (collection, items) in &mut self.entries {
            items.retain(|item| {
                let Some(first) = claims.claim(collection, &item.id) else {
                    return true;
                };
                let error = Error::conflict(
                    "vector",
                    format!(
                        "id also in collection {first:?}, which comes first and keeps it \
                         (a write here would move it out of there)"
                    ),
                );
                self.letters.push(Letter {
                    entity: "vector",
                    id: format!("{collection}/{}", item.id),
                    record: serde_json::json!({"collection": collection, "item": item}),
                    error,
                });
                false
            });
        }
        self.entries.retain(|(_, items)| !items.is_empty());
    }
}

/// What one write did.
#[derive(Default)]
struct Wrote {
    /// Records it was given.
    read: u64,
    /// Records the target holds.
    written: u64,
    /// Records the target refused, to be set aside.
    letters: Vec<Letter>,
}

/// A record set aside (a vector the target refused, a collection the source cannot read), and
/// why.
struct Letter {
    entity: &'static str,
    id: String,
    record: Value,
    error: Error,
}

/// Walks `collections` in order (the first from after `resume`), sending every page and each
/// collection's end, or that the source cannot read a collection ([`Ahead::Unreadable`]: a
/// read refused for good, or one still failing after its retries while the source answers a
/// listing); stops when the source stops answering (sending the error) or when the writer
/// hangs up. The first pages of the next [`COLLECTIONS_AHEAD`] collections are read
/// on tasks of their own while earlier ones are sent; pages still go out in order. A page is
/// sent once `budget` has a permit for each of its records (the writer gives them back).
async fn read_ahead(
    src: Arc<dyn VectorRepo>,
    collections: Vec<String>,
    mut resume: Option<String>,
    limit: u32,
    pages: mpsc::UnboundedSender<Result<Ahead>>,
    budget: Arc<Semaphore>,
) {
    let first_page = |collection: String, after: Option<String>| {
        let src = src.clone();
        tokio::spawn(async move {
            retrying("reading vectors", || {
                src.scan(&collection, after.as_deref(), limit)
            })
            .await
        })
    };
    let mut upcoming = collections.into_iter();
    let mut window = std::collections::VecDeque::with_capacity(COLLECTIONS_AHEAD);
    loop {
        while window.len() < COLLECTIONS_AHEAD {
            let Some(collection) = upcoming.next() else {
                break;
            };
            let start = resume.take();
            let head = first_page(collection.clone(), start.clone());
            window.push_back((collection, start, head));
        }
        let Some((collection, mut after, head)) = window.pop_front() else {
            return;
        };
        let mut page = match head.await {
            Ok(page) => page,
            Err(e) => {
                let _ = pages.send(Err(Error::backend("a vector read stopped unexpectedly", e)));
                return;
            }
        };
        let mut sent = false;
        loop {
            let items = match page {
                Ok(items) => items,
                Err(e) if e.is_retryable() && !answers(&*src).await => {
                    let _ = pages.send(Err(e));
                    return;
                }
                Err(error) => {
                    let unreadable = Ahead::Unreadable {
                        collection: collection.clone(),
                        after,
                        error,
                    };
                    if pages.send(Ok(unreadable)).is_err() {
                        return;
                    }
                    break;
                }
            };
            if items.is_empty() {
                break;
            }
            sent = true;
            let last_page = items.len() < limit as usize;
            after = items.last().map(|i| i.id.clone());
            // A page is never longer than the limit, so the budget always has room for it.
            let records = u32::try_from(items.len()).unwrap_or(u32::MAX);
            match budget.acquire_many(records).await {
                Ok(permits) => permits.forget(),
                Err(_) => return,
            }
            if pages
                .send(Ok(Ahead::Page(collection.clone(), items)))
                .is_err()
            {
                return;
            }
            if last_page {
                break;
            }
            page = retrying("reading vectors", || {
                src.scan(&collection, after.as_deref(), limit)
            })
            .await;
        }
        // A collection listed but empty (`collection_names` may list some) has nothing copied
        // and nothing to prepare.
        if sent && pages.send(Ok(Ahead::Done(collection))).is_err() {
            return;
        }
    }
}

/// Whether the source still answers (a listing of its collections): a read still failing after
/// its retries is then the collection's own failure, not the source's.
async fn answers(src: &dyn VectorRepo) -> bool {
    src.collection_names().await.is_ok()
}
