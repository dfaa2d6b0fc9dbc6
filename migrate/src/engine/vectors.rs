//! The vectors group: every collection of the source, in name order, page by page by id, into
//! the target by upsert.
//!
//! Reading and writing overlap: a reader task walks the collections and sends pages into a
//! channel of [`PAGES_AHEAD`] while the engine writes the previous one, across collection
//! boundaries too (Open WebUI keeps one small `file-{id}` collection per upload, so a copy
//! that waited at each collection's end would run at the sum of both ends' pace instead of the
//! slower one). The first pages of the next [`COLLECTIONS_AHEAD`] collections are read at once,
//! each on a task of its own (a small collection is one page, and reading it costs a few round
//! trips to the source whatever its size, so one at a time the reader waited on them in turn);
//! a collection's later pages are read in order after its first. A page shorter than the limit
//! is a collection's last (the `VectorRepo::scan` contract), so no empty page is asked for. At
//! most `PAGES_AHEAD + COLLECTIONS_AHEAD + 2` pages are held at once: the one being written,
//! those waiting in the channel, the first pages read ahead, and the one being read. A copied
//! collection is prepared for
//! searching (`VectorRepo::optimize`) beside the copy of the next ones, one at a time, and
//! every preparation ends before the target's `finish_load`.
//!
//! Checkpoints stay exact: the state names the collection and the last id of a page only once
//! the target committed that page and every page before it. They are written once at least a
//! batch of records or [`CHECKPOINT_EVERY`] has passed since the last one (not after every
//! small collection: each checkpoint syncs the state file and its folder), before a read
//! error stops the run, and at the end. A resumed run starts after the checkpoint and upserts
//! again what came after it, so nothing is lost and nothing doubled.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatstore_core::{Error, ErrorKind, ModelGroup, Result, VectorItem, VectorRepo};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{GroupState, Migration, Run, cursor_str};
use crate::read::retrying;

/// Pages read ahead of the one being written.
const PAGES_AHEAD: usize = 2;

/// Collections whose first page is read at once, ahead of the writer.
pub const COLLECTIONS_AHEAD: usize = 4;

/// Longest time between checkpoints while records are written.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// What the reader sends.
enum Ahead {
    /// The next page of a collection (never empty).
    Page(String, Vec<VectorItem>),
    /// Every page of the collection was sent.
    Done(String),
}

impl Migration<'_> {
    pub(super) async fn vectors(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let group = ModelGroup::Vectors;
        let limit = self.options.batch_size;
        let src = self.source.vectors.clone();
        let mut collections = retrying("listing collections", || src.collections()).await?;
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

        let (sender, mut pages) = mpsc::channel(PAGES_AHEAD);
        let reader = tokio::spawn(read_ahead(src, collections, resume, limit, sender));
        // Copied collections are prepared for searching beside the copy, not in its way
        // (pgvector: a few statements per collection, each its own commit).
        let (copied, mut to_optimize) = mpsc::unbounded_channel::<String>();
        let optimizer = async {
            while let Some(collection) = to_optimize.recv().await {
                self.optimize(&collection).await;
            }
        };
        let writer = async {
            let mut unsaved = 0u64;
            let mut saved_at = Instant::now();
            let outcome = loop {
                let Some(next) = pages.recv().await else {
                    break Ok(());
                };
                match next {
                    Ok(Ahead::Page(collection, items)) => {
                        let n = items.len() as u64;
                        let last = items.last().map(|i| i.id.clone());
                        gs.counts.read += n;
                        if let Err(e) = self.vector_batch(run, gs, &collection, items).await {
                            break Err(e);
                        }
                        self.batch_done(run, group);
                        gs.stage = Some(collection);
                        gs.cursor = last.map(Value::String);
                        unsaved += n;
                        if unsaved >= u64::from(limit) || saved_at.elapsed() >= CHECKPOINT_EVERY {
                            if let Err(e) = run.checkpoint(group, gs, self.progress) {
                                break Err(e);
                            }
                            (unsaved, saved_at) = (0, Instant::now());
                        }
                    }
                    Ok(Ahead::Done(collection)) => {
                        let _ = copied.send(collection);
                    }
                    // A read that failed for good: what was written is saved first.
                    Err(e) => break Err(e),
                }
            };
            drop(copied);
            drop(pages);
            if outcome.is_err() {
                reader.abort();
            }
            let saved = if unsaved > 0 {
                run.checkpoint(group, gs, self.progress)
            } else {
                Ok(())
            };
            outcome.and(saved)
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

    /// Prepares a copied collection for searching (pgvector: its search plan); a failure is
    /// noted, not fatal.
    async fn optimize(&self, collection: &str) {
        match self.target.vectors.optimize(collection).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Unsupported => {}
            Err(e) => self.progress.note(&format!(
                "vectors: optimizing collection {collection:?} failed ({e}); searches stay exact"
            )),
        }
    }

    /// Upserts a batch of one collection (idempotent: a resumed batch writes the same rows);
    /// items the target refuses are set aside one by one.
    async fn vector_batch(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        collection: &str,
        items: Vec<VectorItem>,
    ) -> Result<()> {
        let target = &self.target.vectors;
        let n = items.len() as u64;
        match retrying("writing vectors", || {
            target.upsert(collection, items.clone())
        })
        .await
        {
            Ok(()) => {
                gs.counts.written += n;
                return Ok(());
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(_) => {}
        }
        for item in items {
            match retrying("writing a vector", || {
                target.upsert(collection, vec![item.clone()])
            })
            .await
            {
                Ok(()) => gs.counts.written += 1,
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    let record = serde_json::json!({"collection": collection, "item": item});
                    run.letter(
                        gs,
                        ModelGroup::Vectors,
                        "vector",
                        item.id.clone(),
                        record,
                        &e,
                    );
                }
            }
        }
        Ok(())
    }
}

/// Walks `collections` in order (the first from after `resume`), sending every page and each
/// collection's end; stops at the first read that fails for good (sending the error) or when
/// the writer hangs up. The first pages of the next [`COLLECTIONS_AHEAD`] collections are read
/// on tasks of their own while earlier ones are sent; pages still go out in order.
async fn read_ahead(
    src: Arc<dyn VectorRepo>,
    collections: Vec<String>,
    mut resume: Option<String>,
    limit: u32,
    pages: mpsc::Sender<Result<Ahead>>,
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
            let head = first_page(collection.clone(), resume.take());
            window.push_back((collection, head));
        }
        let Some((collection, head)) = window.pop_front() else {
            return;
        };
        let mut page = match head.await {
            Ok(page) => page,
            Err(e) => Err(Error::backend("a vector read stopped unexpectedly", e)),
        };
        loop {
            let items = match page {
                Ok(items) => items,
                Err(e) => {
                    let _ = pages.send(Err(e)).await;
                    return;
                }
            };
            if items.is_empty() {
                break;
            }
            let last_page = items.len() < limit as usize;
            let after = items.last().map(|i| i.id.clone());
            if pages
                .send(Ok(Ahead::Page(collection.clone(), items)))
                .await
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
        if pages.send(Ok(Ahead::Done(collection))).await.is_err() {
            return;
        }
    }
}
