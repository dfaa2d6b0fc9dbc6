//! The migration engine: copies the groups in order (users; chats with tag rows, chats and
//! their messages, then a pass that sets aside message rows whose chat does not exist; files
//! with their bytes; Open WebUI's remaining tables table by table through the stores' rows;
//! vectors collection by collection, reading ahead while writing: see `vectors.rs`), in
//! keyset batches by id, checkpointing after committed batches.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use chatstore_core::blob::{rebuild_history, with_blob_only};
use chatstore_core::rows::{ALL_TABLES, Cond, Row, RowOp, RowQuery, RowStore, Table, tables};
use chatstore_core::{
    Chat, Error, ErrorKind, FileMeta, Message, ModelGroup, NewChat, NewFile, NewMessage, NewUser,
    Result, Store, Tag, TagKey, User,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::claims::{self, Claims};
use crate::deadletter::{DeadLetter, DeadLetters};
use crate::progress::{BatchPoint, Progress};
use crate::read::{Read, page, read_key, retrying};
use crate::rows::{
    MESSAGE_KEYS, key_value, message_row_key, min_text, page_after, parents_first, tag_key,
    tag_keys,
};
use crate::sink::{self, Pending, Record, Sink};
use crate::state::{Counts, GroupState, State, StateFile};
use chat_pages::{ChatPages, ChatRead};

mod chat_pages;
mod vectors;

pub use vectors::COLLECTIONS_AHEAD;

/// The default number of records per batch.
pub const DEFAULT_BATCH_SIZE: u32 = 500;

/// The default budget of file bytes held in memory for one batch of files.
pub const DEFAULT_FILE_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// The default budget of chat content (blobs and messages) for one page of chats.
pub const DEFAULT_CHAT_PAGE_BYTES: usize = 64 * 1024 * 1024;

/// Files at least this large are streamed from source to target one by one (the bytes never
/// held whole, whatever the size); smaller ones are batched with their bytes in memory.
pub const STREAM_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What to copy and where to keep the run's files.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The source's identity (its URL; `--from-vectors` appended when given). The state file is
    /// bound to it.
    pub source: String,
    /// The target's identity.
    pub target: String,
    /// The groups to copy, copied in [`ModelGroup::ALL`] order.
    pub groups: Vec<ModelGroup>,
    /// Records per batch (1..=10 000). May change between a run and its resumption.
    pub batch_size: u32,
    /// Bytes of file content one batch may hold; a file larger than this is a batch alone.
    pub file_batch_bytes: usize,
    /// About how many bytes of chat content (blobs and messages) one page of chats may hold;
    /// pages of large chats hold fewer than `batch_size`, a chat larger than this is a page
    /// alone. Three pages are in memory at once (read, waiting, written).
    pub chat_page_bytes: usize,
    /// The checkpoint file.
    pub state: PathBuf,
    /// The dead-letter JSONL file.
    pub dead_letters: PathBuf,
    /// A row-for-row copy of the source's `chat` table follows the run (SQL to SQL, as
    /// `chatstore migrate` does), bringing each chat's blob as the source holds it: the blob
    /// entries that do not read as messages arrive with it and are not set aside.
    pub chat_rows_follow: bool,
}

impl MigrateOptions {
    /// Every group, default batch sizes, the state and dead letters in these files.
    pub fn new(
        source: impl Into<String>,
        target: impl Into<String>,
        state: impl Into<PathBuf>,
        dead_letters: impl Into<PathBuf>,
    ) -> Self {
        MigrateOptions {
            source: source.into(),
            target: target.into(),
            groups: ModelGroup::ALL.to_vec(),
            batch_size: DEFAULT_BATCH_SIZE,
            file_batch_bytes: DEFAULT_FILE_BATCH_BYTES,
            chat_page_bytes: DEFAULT_CHAT_PAGE_BYTES,
            state: state.into(),
            dead_letters: dead_letters.into(),
            chat_rows_follow: false,
        }
    }
}

/// What a run did to one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// The group.
    pub group: ModelGroup,
    /// Counts over the whole migration (earlier, interrupted runs included).
    pub counts: Counts,
    /// Seconds this run spent on the group.
    pub seconds: f64,
    /// Records written per second in this run.
    pub records_per_second: f64,
    /// Why the group was not copied, when it was not.
    pub skipped: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Per group, in order.
    pub groups: Vec<GroupSummary>,
    /// Records in the dead-letter file (all runs).
    pub dead_letters: u64,
    /// Seconds of this run.
    pub seconds: f64,
}

/// One migration from `source` into `target`.
pub struct Migration<'a> {
    source: &'a Store,
    target: &'a Store,
    options: MigrateOptions,
    progress: &'a dyn Progress,
}

struct Run {
    state: State,
    file: StateFile,
    dead: DeadLetters,
    batches: u64,
    /// A checkpoint being saved beside the next batch (see [`Run::checkpoint_behind`]).
    saving: Option<Saving>,
    /// The collection each vector id went to, while the vectors group is copied.
    claims: Option<Claims>,
}

/// A checkpoint on its way to the state file, and what to report once it is there.
struct Saving {
    task: tokio::task::JoinHandle<Result<()>>,
    group: ModelGroup,
    batch: u64,
    counts: Counts,
}

impl Run {
    /// [`Run::checkpoint`] with the state file written and synced by a blocking task while the
    /// engine goes on with the next batch, so the batches do not wait for the disk. Dead
    /// letters are synced first, as always; the previous checkpoint is awaited first, so the
    /// file only ever moves forward, and it still names only pages the target committed (at
    /// worst one page behind the target after a crash, which the resumed run writes again).
    /// Progress hears of the checkpoint once it is on disk.
    async fn checkpoint_behind(
        &mut self,
        group: ModelGroup,
        gs: &GroupState,
        progress: &dyn Progress,
    ) -> Result<()> {
        self.saved(progress).await?;
        self.dead.flush()?;
        self.state.set_group(group, gs.clone());
        let (file, state) = (self.file.clone(), self.state.clone());
        // The claims the checkpoint passes reach their file first.
        let claimed = self.claims.as_mut().and_then(Claims::take_pending);
        self.saving = Some(Saving {
            task: tokio::task::spawn_blocking(move || {
                if let Some((path, bytes)) = claimed {
                    claims::append(&path, &bytes)?;
                }
                file.save(&state)
            }),
            group,
            batch: self.batches,
            counts: gs.counts,
        });
        Ok(())
    }

    /// Waits for the checkpoint [`Run::checkpoint_behind`] is saving, if any.
    async fn saved(&mut self, progress: &dyn Progress) -> Result<()> {
        let Some(saving) = self.saving.take() else {
            return Ok(());
        };
        saving
            .task
            .await
            .map_err(|e| Error::backend("saving the migration state stopped unexpectedly", e))??;
        progress.batch(saving.group, saving.batch, BatchPoint::Checkpointed);
        progress.advanced(saving.group, &saving.counts);
        Ok(())
    }

    fn checkpoint(
        &mut self,
        group: ModelGroup,
        gs: &GroupState,
        progress: &dyn Progress,
    ) -> Result<()> {
        self.dead.flush()?;
        if let Some(claims) = self.claims.as_mut() {
            claims.flush()?;
        }
        self.state.set_group(group, gs.clone());
        self.file.save(&self.state)?;
        progress.batch(group, self.batches, BatchPoint::Checkpointed);
        progress.advanced(group, &gs.counts);
        Ok(())
    }

    fn letter(
        &mut self,
        gs: &mut GroupState,
        group: ModelGroup,
        entity: &str,
        id: String,
        record: Value,
        error: &Error,
    ) {
        self.dead.push(DeadLetter {
            group: group.as_str().to_owned(),
            entity: entity.to_owned(),
            id,
            record,
            error: error.to_string(),
            kind: error.kind().to_string(),
        });
        // From the file, not counted up: a run killed after its letters were synced and before
        // its state was saved writes the batch again, and its letters are in the file already.
        gs.counts.dead_lettered = self.dead.in_group(group.as_str());
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn cursor_str(gs: &GroupState) -> Option<String> {
    gs.cursor
        .as_ref()
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The chat's `history.currentId` as creating it from `messages` leaves it: kept when it names
/// one of them, else the last in list order.
pub fn current_id(chat: &Chat, messages: &[Message]) -> Option<String> {
    let mut blob = chat.chat.clone();
    rebuild_history(&mut blob, messages);
    blob.get("history")
        .and_then(|h| h.get("currentId"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The chat to create for a source chat and its messages (as the source lists them): the blob's
/// history rebuilt from those messages and the blob's entries without a row (Open WebUI merges
/// those back when it reads the chat: [`with_blob_only`]), tags by id (their names come from
/// the tag rows copied first), and the messages whose `updated_at` the blob cannot carry.
pub fn chat_item_for(chat: &Chat, listed: &[Message]) -> (NewChat, Vec<NewMessage>) {
    chat_item_from(chat, &with_blob_only(chat, listed))
}

/// [`chat_item_for`] from the chat's `messages` as Open WebUI reads them ([`with_blob_only`]).
pub(crate) fn chat_item_from(chat: &Chat, messages: &[Message]) -> (NewChat, Vec<NewMessage>) {
    let mut new = NewChat::again(chat);
    if let Some(blob) = new.chat.as_mut() {
        rebuild_history(blob, messages);
    }
    let mut fixups: Vec<NewMessage> = messages
        .iter()
        .filter(|m| m.updated_at != m.created_at)
        .map(NewMessage::from)
        .collect();
    if !fixups.is_empty()
        && let Some(current) = current_id(chat, messages)
    {
        fixups.retain(|m| m.id != current);
        if let Some(m) = messages.iter().find(|m| m.id == current) {
            fixups.push(NewMessage::from(m));
        }
    }
    (new, fixups)
}

/// The file to write for a source file and its bytes.
pub fn new_file(meta: &FileMeta, bytes: Vec<u8>) -> NewFile {
    NewFile {
        id: Some(meta.id.clone()),
        user_id: meta.user_id.clone(),
        filename: meta.filename.clone(),
        content_type: meta.content_type.clone(),
        bytes,
        hash: meta.hash.clone(),
        data: meta.data.clone(),
        meta: meta.meta.clone(),
        created_at: Some(meta.created_at),
        updated_at: Some(meta.updated_at),
    }
}

/// Whether reading a listed file's bytes failed because the source deleted the file meanwhile:
/// the read said `NotFound` and the file's record is not found either.
async fn file_gone(
    src: &std::sync::Arc<dyn chatstore_core::FileRepo>,
    id: &str,
    e: &Error,
) -> Result<bool> {
    if e.kind() != ErrorKind::NotFound {
        return Ok(false);
    }
    match retrying("checking a file the source no longer reads", || src.get(id)).await {
        Ok(_) => Ok(false),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
        Err(e) if e.is_retryable() => Err(e),
        Err(_) => Ok(false),
    }
}

/// Why a message row whose chat the source does not hold is set aside.
fn orphan_error(m: &Message) -> Error {
    let e = Error::not_found("chat", m.chat_id.clone());
    Error::invalid(format!(
        "message {:?} belongs to a chat the source does not hold ({e})",
        m.key()
    ))
}

fn tag_key_id(t: &TagKey) -> String {
    format!("{}/{}", t.user_id, t.id)
}

/// Whether the store holds a chat with this id, asked by id only (an unreadable chat exists:
/// it was set aside with its messages).
async fn chat_exists(store: &Store, id: &str) -> Result<bool> {
    const PAGE: u32 = 8;
    // Every id below `id` that could sort after this cursor starts with it.
    let mut after = id.to_owned();
    after.pop();
    loop {
        let ids = store.chats.scan_ids(Some(&after), PAGE).await?;
        if ids.iter().any(|i| i == id) {
            return Ok(true);
        }
        match ids.last() {
            Some(last) if ids.len() == PAGE as usize && last.as_str() < id => {
                after = last.clone();
            }
            _ => return Ok(false),
        }
    }
}

/// Which of `ids` (sorted, distinct) the store holds as chats, asked by id only: one keyset
/// walk of the chat ids from the smallest to the largest of them, or lookups one by one for
/// the rest when that range holds many more chats than were asked about.
async fn chats_among(store: &Store, ids: &[String]) -> Result<HashSet<String>> {
    const PAGE: u32 = 500;
    let mut held = HashSet::new();
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return Ok(held);
    };
    // Every id from `first` on sorts after `first` without its last character.
    let mut after = first.clone();
    after.pop();
    let mut walked = 0usize;
    loop {
        let page = store.chats.scan_ids(Some(&after), PAGE).await?;
        walked += page.len();
        for id in &page {
            if ids.binary_search(id).is_ok() {
                held.insert(id.clone());
            }
        }
        match page.last() {
            Some(end) if page.len() == PAGE as usize && end.as_str() < last.as_str() => {
                if walked > 4 * ids.len() + PAGE as usize {
                    for id in ids.iter().filter(|id| id.as_str() > end.as_str()) {
                        if chat_exists(store, id).await? {
                            held.insert(id.clone());
                        }
                    }
                    return Ok(held);
                }
                after = end.clone();
            }
            _ => return Ok(held),
        }
    }
}

/// The smallest message key after `after` among the store's message rows whose chat it does
/// not hold, read from the rows' `id` and `chat_id` only ([`MESSAGE_KEYS`], no other cell
/// decoded): the key of a row `scan_orphans` cannot decode. One walk of the table's keys, and
/// a lookup of their chats, per such row. `Unsupported` for a store without rows.
async fn orphan_key_after(store: &Store, after: Option<&str>) -> Result<Option<String>> {
    const PAGE: u32 = 1_000;
    let rows = store.rows()?;
    let mut cursor: Option<Value> = None;
    let mut best: Option<String> = None;
    loop {
        let query = page_after(&MESSAGE_KEYS, cursor.as_ref(), PAGE)?;
        let page = retrying("reading message row keys", || {
            rows.select(&MESSAGE_KEYS, &query)
        })
        .await?;
        let Some(last) = page.last() else {
            return Ok(best);
        };
        cursor = Some(key_value(&MESSAGE_KEYS, last));
        let below = |key: &str, best: &Option<String>| {
            after.is_none_or(|a| key > a) && best.as_deref().is_none_or(|b| key < b)
        };
        let candidates: Vec<(String, String)> = page
            .iter()
            .filter_map(message_row_key)
            .filter(|(key, _)| below(key, &best))
            .collect();
        let mut chats: Vec<String> = candidates.iter().map(|(_, c)| c.clone()).collect();
        chats.sort_unstable();
        chats.dedup();
        let held = retrying("looking up the messages' chats", || {
            chats_among(store, &chats)
        })
        .await?;
        for (key, chat) in candidates {
            if !held.contains(&chat) && below(&key, &best) {
                best = Some(key);
            }
        }
        if page.len() < PAGE as usize {
            return Ok(best);
        }
    }
}

/// Whether a store holds this group at all (`Unsupported` otherwise).
pub(crate) async fn supports(store: &Store, group: ModelGroup) -> Result<bool> {
    let probe = match group {
        ModelGroup::Users => store.users.scan_ids(None, 1).await.map(|_| ()),
        ModelGroup::Chats => store.chats.scan_ids(None, 1).await.map(|_| ()),
        ModelGroup::Files => store.files.scan_ids(None, 1).await.map(|_| ()),
        ModelGroup::Workspace => match store.rows() {
            Ok(rows) => {
                let first = ALL_TABLES.first().copied().unwrap_or(&tables::FOLDER);
                rows.select(first, &RowQuery::default().page(0, Some(1)))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        },
        // One lookup, not a listing: Chroma answers `collections` with a request per
        // collection (0.7-0.9 s for a thousand), all before anything is copied.
        ModelGroup::Vectors => store
            .vectors
            .has_collection("chatstore-probe")
            .await
            .map(|_| ()),
    };
    match probe {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::Unsupported => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a group has any record in a store that supports it.
pub(crate) async fn has_records(store: &Store, group: ModelGroup) -> Result<bool> {
    Ok(match group {
        ModelGroup::Users => !store.users.scan_ids(None, 1).await?.is_empty(),
        ModelGroup::Chats => {
            !store.chats.scan_ids(None, 1).await?.is_empty()
                || !store.tags.scan(None, 1).await?.is_empty()
        }
        ModelGroup::Files => !store.files.scan_ids(None, 1).await?.is_empty(),
        ModelGroup::Workspace => {
            let rows = store.rows()?;
            let one = RowQuery::default().page(0, Some(1));
            for table in ALL_TABLES {
                if !rows.select(table, &one).await?.is_empty() {
                    return Ok(true);
                }
            }
            false
        }
        ModelGroup::Vectors => !store.vectors.collections().await?.is_empty(),
    })
}

/// Counts a group's source records by walking their ids (vectors: items of every collection,
/// read page by page with their embeddings, since `VectorRepo` has no count; a run's progress
/// asks no total for them; workspace: the rows of every table, as the store counts them).
pub async fn count(store: &Store, group: ModelGroup) -> Result<u64> {
    const PAGE: u32 = chatstore_core::query::MAX_SCAN_LIMIT;
    let mut n = 0u64;
    let mut after: Option<String> = None;
    match group {
        ModelGroup::Users | ModelGroup::Chats | ModelGroup::Files => loop {
            let ids = match group {
                ModelGroup::Users => store.users.scan_ids(after.as_deref(), PAGE).await?,
                ModelGroup::Chats => store.chats.scan_ids(after.as_deref(), PAGE).await?,
                _ => store.files.scan_ids(after.as_deref(), PAGE).await?,
            };
            n += ids.len() as u64;
            match ids.last() {
                Some(last) if ids.len() == PAGE as usize => after = Some(last.clone()),
                _ => break,
            }
        },
        ModelGroup::Workspace => {
            let rows = store.rows()?;
            for table in ALL_TABLES {
                n = n.saturating_add(rows.count(table, &[]).await?);
            }
        }
        ModelGroup::Vectors => {
            // Empty collections listed too count nothing (Chroma counts each one for
            // `collections`).
            for c in store.vectors.collection_names().await? {
                after = None;
                loop {
                    let items = store.vectors.scan(&c, after.as_deref(), PAGE).await?;
                    n += items.len() as u64;
                    match items.last() {
                        Some(last) if items.len() == PAGE as usize => after = Some(last.id.clone()),
                        _ => break,
                    }
                }
            }
        }
    }
    Ok(n)
}

impl<'a> Migration<'a> {
    /// A migration of `source` into `target`, reporting to `progress`.
    pub fn new(
        source: &'a Store,
        target: &'a Store,
        options: MigrateOptions,
        progress: &'a dyn Progress,
    ) -> Self {
        Migration {
            source,
            target,
            options,
            progress,
        }
    }

    /// Copies every group, resuming from the state file when it holds this run's progress.
    /// Returns the summary; records set aside are in the dead-letter file (count in the
    /// summary). Stops with an error, checkpoint intact, when an end stays unavailable.
    pub async fn run(&self) -> Result<Summary> {
        let o = &self.options;
        if o.batch_size == 0 || o.batch_size > chatstore_core::query::MAX_SCAN_LIMIT {
            return Err(Error::invalid(format!(
                "batch size must be between 1 and {}, got {}",
                chatstore_core::query::MAX_SCAN_LIMIT,
                o.batch_size
            )));
        }
        let mut groups = o.groups.clone();
        groups.sort();
        groups.dedup();
        let file = StateFile::new(&o.state);
        let starts_over = matches!(std::fs::metadata(&o.state),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        let state = file.load_or_new(&o.source, &o.target, &groups)?;
        // A run that starts over counts and reports only what it sets aside itself: letters
        // an earlier run left would make every later run fail, and one set aside again would
        // not be written (the file held it already).
        if starts_over {
            DeadLetters::keep_earlier(&o.dead_letters)?;
        }
        let dead = DeadLetters::open(&o.dead_letters)?;
        let mut run = Run {
            state,
            file,
            dead,
            batches: 0,
            saving: None,
            claims: None,
        };
        let started = Instant::now();
        let mut summaries = Vec::new();
        // Every group's ends are checked before anything is written.
        let mut skips = HashMap::new();
        for group in &groups {
            if !run.state.group(*group).done {
                skips.insert(*group, self.check_ends(*group).await?);
            }
        }
        // The chats are read from the start: their first page while the users and the tag
        // rows are copied.
        let mut chat_pages = match skips.get(&ModelGroup::Chats) {
            Some(None) => self.chat_pages(&run.state.group(ModelGroup::Chats)),
            _ => None,
        };
        for group in groups {
            let t0 = Instant::now();
            let mut gs = run.state.group(group);
            let before = gs.counts;
            let mut skipped = None;
            if !gs.done {
                skipped = skips.remove(&group).flatten();
                if skipped.is_none() {
                    // Vectors are not counted: `VectorRepo` counts a collection only by reading
                    // it whole, embeddings included, which read the source twice for a bar.
                    let total = if self.progress.wants_totals() && group != ModelGroup::Vectors {
                        Some(count(self.source, group).await?)
                    } else {
                        None
                    };
                    self.progress.group_started(group, total, &gs.counts);
                    tracing::info!(group = %group, "copying");
                    run.batches = 0;
                    match group {
                        ModelGroup::Users => self.users(&mut run, &mut gs).await?,
                        ModelGroup::Chats => {
                            self.chats(&mut run, &mut gs, chat_pages.take()).await?
                        }
                        ModelGroup::Files => self.files(&mut run, &mut gs).await?,
                        ModelGroup::Workspace => self.workspace(&mut run, &mut gs).await?,
                        ModelGroup::Vectors => self.vectors(&mut run, &mut gs).await?,
                    }
                }
                gs.done = true;
                run.checkpoint(group, &gs, self.progress)?;
                self.progress.group_finished(group, &gs.counts);
            }
            let seconds = t0.elapsed().as_secs_f64();
            let written = (gs.counts.written - before.written) as f64;
            summaries.push(GroupSummary {
                group,
                counts: gs.counts,
                seconds,
                records_per_second: if seconds > 0.0 {
                    written / seconds
                } else {
                    0.0
                },
                skipped,
            });
        }
        Ok(Summary {
            groups: summaries,
            dead_letters: run.dead.len() as u64,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// `Some(reason)` when the group is left out because the source does not hold it; an
    /// error when the source holds records of it that the target cannot take.
    async fn check_ends(&self, group: ModelGroup) -> Result<Option<String>> {
        if !supports(self.source, group).await? {
            let reason = format!(
                "the source ({}) does not store {group}",
                self.source.backend_name()
            );
            self.progress.note(&format!("{group}: skipped, {reason}"));
            return Ok(Some(reason));
        }
        if !supports(self.target, group).await? && has_records(self.source, group).await? {
            return Err(Error::invalid(format!(
                "the target ({}) cannot store {group}, which the source holds; \
                 give a target that does (e.g. --to-vectors) or leave the group out with --groups",
                self.target.backend_name()
            )));
        }
        if !supports(self.target, group).await? {
            let reason = format!(
                "the target ({}) does not store {group} and the source has none",
                self.target.backend_name()
            );
            return Ok(Some(reason));
        }
        Ok(None)
    }

    async fn commit<S: Sink>(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        group: ModelGroup,
        entity: &str,
        sink: &S,
        batch: Vec<Pending<S::Item>>,
    ) -> Result<Vec<Pending<S::Item>>> {
        let what = format!("writing {entity}s to the target");
        let outcome = sink::write(sink, &what, batch).await?;
        gs.counts.written += outcome.written.len() as u64;
        gs.counts.skipped += outcome.skipped;
        for (p, e) in outcome.rejected {
            run.letter(gs, group, entity, p.id, p.record.into_value(), &e);
        }
        Ok(outcome.written)
    }

    /// A record of a page the source listed and could not read: counted as gone when it was
    /// deleted meanwhile (`NotFound`, see [`Read`]), else set aside.
    fn not_read(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        group: ModelGroup,
        entity: &str,
        id: String,
        e: &Error,
    ) {
        if e.kind() == ErrorKind::NotFound {
            tracing::debug!(%group, %entity, %id, "deleted from the source during the run");
            gs.counts.gone += 1;
        } else {
            self.unreadable(run, gs, group, entity, id, e);
        }
    }

    /// A record the source could not read, set aside.
    fn unreadable(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        group: ModelGroup,
        entity: &str,
        id: String,
        e: &Error,
    ) {
        let e = Error::backend_msg(format!("the source could not read it: {e}"));
        run.letter(gs, group, entity, id, Value::Null, &e);
    }

    fn batch_done(&self, run: &mut Run, group: ModelGroup) {
        run.batches += 1;
        self.progress.batch(group, run.batches, BatchPoint::Written);
    }

    async fn users(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, limit, group) = (
            &self.source.users,
            self.options.batch_size,
            ModelGroup::Users,
        );
        loop {
            let after = cursor_str(gs);
            let page: Vec<Read<User>> = page(
                "reading users",
                || src.scan(after.as_deref(), limit),
                || src.scan_ids(after.as_deref(), limit),
                |id| async move { src.get(&id).await },
            )
            .await?;
            let Some(last) = page.last().map(read_key) else {
                return Ok(());
            };
            gs.counts.read += page.len() as u64;
            let mut batch = Vec::with_capacity(page.len());
            for r in page {
                match r {
                    Ok(u) => batch.push(Pending {
                        id: u.id.clone(),
                        record: Record::value(json(&u)),
                        item: NewUser::from(&u),
                    }),
                    Err((id, e)) => self.not_read(run, gs, group, "user", id, &e),
                }
            }
            self.commit(
                run,
                gs,
                group,
                "user",
                &sink::Users(self.source, self.target),
                batch,
            )
            .await?;
            self.batch_done(run, group);
            gs.cursor = Some(Value::String(last));
            run.checkpoint(group, gs, self.progress)?;
        }
    }

    /// The chats' pages from where their stage starts or resumes (`None` past it).
    fn chat_pages(&self, gs: &GroupState) -> Option<ChatPages> {
        let (limit, bytes) = (self.options.batch_size, self.options.chat_page_bytes);
        match gs.stage.as_deref() {
            None | Some("tags") => Some(ChatPages::start(self.source, limit, bytes, None)),
            Some("chats") => Some(ChatPages::start(self.source, limit, bytes, cursor_str(gs))),
            _ => None,
        }
    }

    /// The chats group; `pages` are its chats read ahead when the run started them.
    async fn chats(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        pages: Option<ChatPages>,
    ) -> Result<()> {
        let group = ModelGroup::Chats;
        let mut pages = pages.or_else(|| self.chat_pages(gs));
        if gs.stage.is_none() {
            gs.stage = Some("tags".into());
        }
        if gs.stage.as_deref() == Some("tags") {
            self.tag_rows(run, gs).await?;
            gs.stage = Some("chats".into());
            gs.cursor = None;
            run.checkpoint(group, gs, self.progress)?;
        }
        if gs.stage.as_deref() == Some("chats") {
            let pages = match pages.take() {
                Some(p) => p,
                None => ChatPages::start(
                    self.source,
                    self.options.batch_size,
                    self.options.chat_page_bytes,
                    cursor_str(gs),
                ),
            };
            self.chat_rows(run, gs, pages).await?;
            gs.stage = Some("orphans".into());
            gs.cursor = None;
            run.checkpoint(group, gs, self.progress)?;
        }
        if gs.stage.as_deref() == Some("orphans") {
            self.orphan_messages(run, gs).await?;
        }
        Ok(())
    }

    async fn tag_rows(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, limit, group) = (
            &self.source.tags,
            self.options.batch_size,
            ModelGroup::Chats,
        );
        loop {
            let after: Option<TagKey> = gs
                .cursor
                .clone()
                .and_then(|v| serde_json::from_value(v).ok());
            let tags: Vec<Read<Tag>> = page(
                "reading tags",
                || src.scan(after.as_ref(), limit),
                || tag_keys(self.source, after.as_ref(), limit),
                |key| async move {
                    let key = tag_key(&key);
                    src.get(&key.user_id, &key.id).await
                },
            )
            .await?;
            let Some(last) = tags.last().map(|r| tag_key(&read_key(r))) else {
                return Ok(());
            };
            gs.counts.read += tags.len() as u64;
            let mut batch = Vec::with_capacity(tags.len());
            for r in tags {
                match r {
                    Ok(t) => batch.push(Pending {
                        id: tag_key_id(&TagKey {
                            user_id: t.user_id.clone(),
                            id: t.id.clone(),
                        }),
                        record: Record::value(json(&t)),
                        item: t,
                    }),
                    Err((key, e)) => {
                        let id = tag_key_id(&tag_key(&key));
                        self.not_read(run, gs, group, "tag", id, &e);
                    }
                }
            }
            self.commit(
                run,
                gs,
                group,
                "tag",
                &sink::Tags(self.source, self.target),
                batch,
            )
            .await?;
            self.batch_done(run, group);
            gs.cursor = Some(json(&last));
            run.checkpoint(group, gs, self.progress)?;
        }
    }

    /// The chats, page by page; each page's checkpoint is saved while the next is written,
    /// and the last one is on disk when this returns, whatever the outcome.
    async fn chat_rows(&self, run: &mut Run, gs: &mut GroupState, pages: ChatPages) -> Result<()> {
        let copied = self.chat_pages_copy(run, gs, pages).await;
        let saved = run.saved(self.progress).await;
        copied.and(saved)
    }

    async fn chat_pages_copy(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        mut pages: ChatPages,
    ) -> Result<()> {
        let group = ModelGroup::Chats;
        let sink = sink::Chats(self.source, self.target);
        // The next page is read while this one is written; the checkpoint still follows the
        // write, and a failed read stops the run only after it.
        while let Some((last, reads)) = pages.next().await? {
            gs.counts.read += reads.len() as u64;
            let mut batch = Vec::with_capacity(reads.len());
            for read in reads {
                match read {
                    ChatRead::Chat(pending, unreadable) => {
                        let unreadable = if self.options.chat_rows_follow {
                            Vec::new()
                        } else {
                            unreadable
                        };
                        for (key, entry, e) in unreadable {
                            let e = Error::invalid(format!(
                                "an entry of chat {:?}'s blob that does not read as a message, \
                                 left out of the chat's copy: {e}",
                                pending.id
                            ));
                            let id = chatstore_core::messages::message_key(&pending.id, &key);
                            run.letter(gs, group, "message", id, entry, &e);
                        }
                        batch.push(pending);
                    }
                    ChatRead::Unreadable(id, e) => self.not_read(run, gs, group, "chat", id, &e),
                    ChatRead::NoMessages(chat, e) => {
                        let e = Error::backend_msg(format!(
                            "the source could not read the chat's messages: {e}"
                        ));
                        run.letter(gs, group, "chat", chat.id.clone(), json(&chat), &e);
                    }
                }
            }
            self.commit(run, gs, group, "chat", &sink, batch).await?;
            self.batch_done(run, group);
            gs.cursor = Some(Value::String(last));
            run.checkpoint_behind(group, gs, self.progress).await?;
        }
        Ok(())
    }

    /// Message rows whose chat the source does not hold: set aside (the others arrived with
    /// their chats). Asked of the source when it can find them by itself
    /// ([`MessageRepo::scan_orphans`](chatstore_core::MessageRepo::scan_orphans)), else found
    /// by reading every message and looking its chat up.
    async fn orphan_messages(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, limit, group) = (
            &self.source.messages,
            self.options.batch_size,
            ModelGroup::Chats,
        );
        loop {
            let after = cursor_str(gs);
            let orphans = match retrying("reading messages without a chat", || {
                src.scan_orphans(after.as_deref(), limit)
            })
            .await
            {
                Ok(orphans) => orphans,
                Err(e) if e.kind() == ErrorKind::Unsupported => {
                    return self.orphan_walk(run, gs).await;
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => match self.unreadable_orphan(run, gs, e).await? {
                    Some(one) => one,
                    None => continue,
                },
            };
            let Some(last) = orphans.last().map(Message::key) else {
                return Ok(());
            };
            for m in orphans {
                let e = orphan_error(&m);
                run.letter(gs, group, "message", m.key(), json(&m), &e);
            }
            self.batch_done(run, group);
            gs.cursor = Some(Value::String(last));
            run.checkpoint(group, gs, self.progress)?;
        }
    }

    /// After a page of message rows without a chat failed to read for a reason other than
    /// availability: the next one alone, when it reads (`Some`); else its key, found by
    /// [`orphan_key_after`], set aside with the error and passed (`None`). The cursor is
    /// checkpointed past it.
    async fn unreadable_orphan(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        page_error: Error,
    ) -> Result<Option<Vec<Message>>> {
        let group = ModelGroup::Chats;
        tracing::warn!(error = %page_error,
            "a page of messages without a chat could not be read whole; reading them one by one");
        let after = cursor_str(gs);
        let src = &self.source.messages;
        let error = match retrying("reading a message without a chat", || {
            src.scan_orphans(after.as_deref(), 1)
        })
        .await
        {
            Ok(one) => return Ok(Some(one)),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        let Some(key) = orphan_key_after(self.source, after.as_deref()).await? else {
            return Err(Error::backend_msg(format!(
                "a message row without a chat after {after:?} cannot be read ({error}) \
                 and its key cannot be found"
            )));
        };
        self.unreadable(run, gs, group, "message", key.clone(), &error);
        self.batch_done(run, group);
        gs.cursor = Some(Value::String(key));
        run.checkpoint(group, gs, self.progress)?;
        Ok(None)
    }

    /// [`Migration::orphan_messages`] by reading every message row of the source and looking
    /// their chats up, page by page.
    async fn orphan_walk(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, limit, group) = (
            &self.source.messages,
            self.options.batch_size,
            ModelGroup::Chats,
        );
        let mut known: HashMap<String, bool> = HashMap::new();
        loop {
            let after = cursor_str(gs);
            let messages: Vec<Message> =
                retrying("reading messages", || src.scan(after.as_deref(), limit)).await?;
            let Some(last) = messages.last().map(Message::key) else {
                return Ok(());
            };
            // The page's chats are looked up together, by one walk of the chat ids.
            if known.len() > 10_000 {
                known.clear();
            }
            let mut unknown: Vec<String> = messages
                .iter()
                .filter(|m| !known.contains_key(&m.chat_id))
                .map(|m| m.chat_id.clone())
                .collect();
            unknown.sort_unstable();
            unknown.dedup();
            if !unknown.is_empty() {
                let held = retrying("looking up the messages' chats", || {
                    chats_among(self.source, &unknown)
                })
                .await?;
                for id in unknown {
                    let exists = held.contains(&id);
                    known.insert(id, exists);
                }
            }
            for m in messages {
                let exists = known.get(&m.chat_id).copied().unwrap_or(false);
                if !exists {
                    let e = orphan_error(&m);
                    run.letter(gs, group, "message", m.key(), json(&m), &e);
                }
            }
            self.batch_done(run, group);
            gs.cursor = Some(Value::String(last));
            run.checkpoint(group, gs, self.progress)?;
        }
    }

    async fn files(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, limit, group) = (
            &self.source.files,
            self.options.batch_size,
            ModelGroup::Files,
        );
        loop {
            let after = cursor_str(gs);
            let page: Vec<Read<FileMeta>> = page(
                "reading files",
                || src.scan(after.as_deref(), limit),
                || src.scan_ids(after.as_deref(), limit),
                |id| async move { src.get(&id).await },
            )
            .await?;
            let Some(page_last) = page.last().map(read_key) else {
                return Ok(());
            };
            gs.counts.read += page.len() as u64;
            let mut batch: Vec<Pending<NewFile>> = Vec::new();
            let mut metas: HashMap<String, FileMeta> = HashMap::new();
            let mut bytes_held = 0usize;
            for r in page {
                let meta = match r {
                    Ok(m) => m,
                    Err((id, e)) => {
                        self.not_read(run, gs, group, "file", id, &e);
                        continue;
                    }
                };
                if meta.size >= STREAM_FILE_BYTES {
                    // Batched files go first, so the cursor stays in id order.
                    self.file_batch(run, gs, std::mem::take(&mut batch), &metas)
                        .await?;
                    bytes_held = 0;
                    self.stream_file(run, gs, meta).await?;
                    continue;
                }
                let bytes = match retrying("reading a file's bytes", || src.read(&meta.id)).await {
                    Ok(b) => b,
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) if file_gone(src, &meta.id, &e).await? => {
                        gs.counts.gone += 1;
                        continue;
                    }
                    Err(e) => {
                        let e = Error::backend_msg(format!(
                            "the source's bytes of this file are missing or do not match its sha256: {e}"
                        ));
                        run.letter(gs, group, "file", meta.id.clone(), json(&meta), &e);
                        continue;
                    }
                };
                bytes_held += bytes.len();
                batch.push(Pending {
                    id: meta.id.clone(),
                    record: Record::value(json(&meta)),
                    item: new_file(&meta, bytes),
                });
                metas.insert(meta.id.clone(), meta);
                if bytes_held >= self.options.file_batch_bytes {
                    self.file_batch(run, gs, std::mem::take(&mut batch), &metas)
                        .await?;
                    bytes_held = 0;
                }
            }
            self.file_batch(run, gs, batch, &metas).await?;
            gs.cursor = Some(Value::String(page_last));
            run.checkpoint(group, gs, self.progress)?;
        }
    }

    /// Streams one large file from the source to the target, the source's sha256 expected
    /// (a mismatch stores nothing), then checkpoints. A file the target already holds with the
    /// same sha256 (a resumed run) is skipped.
    async fn stream_file(&self, run: &mut Run, gs: &mut GroupState, meta: FileMeta) -> Result<()> {
        let group = ModelGroup::Files;
        let (src, dst) = (&self.source.files, &self.target.files);
        let copied = retrying("streaming a file to the target", || async {
            let stream = src.read_stream(&meta.id, None).await?;
            dst.put_stream(new_file(&meta, Vec::new()), stream.body, Some(&meta.sha256))
                .await
        })
        .await;
        match copied {
            Ok(_) => gs.counts.written += 1,
            Err(e) if e.kind() == chatstore_core::ErrorKind::Conflict => {
                let stored = retrying("checking an uploaded file", || dst.get(&meta.id)).await?;
                if stored.sha256 == meta.sha256 && stored.size == meta.size {
                    gs.counts.skipped += 1;
                } else {
                    let e = Error::backend_msg(format!(
                        "the target holds another file under this id (sha256 {}, {} bytes)",
                        stored.sha256, stored.size
                    ));
                    run.letter(gs, group, "file", meta.id.clone(), json(&meta), &e);
                }
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if file_gone(src, &meta.id, &e).await? => gs.counts.gone += 1,
            Err(e) => {
                let e = Error::backend_msg(format!(
                    "the file could not be streamed (source bytes missing or not matching its sha256, or refused by the target): {e}"
                ));
                run.letter(gs, group, "file", meta.id.clone(), json(&meta), &e);
            }
        }
        self.batch_done(run, group);
        gs.cursor = Some(Value::String(meta.id));
        run.checkpoint(group, gs, self.progress)
    }

    /// Writes files, checks the target's sha256 of each against the source's, checkpoints.
    async fn file_batch(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        batch: Vec<Pending<NewFile>>,
        metas: &HashMap<String, FileMeta>,
    ) -> Result<()> {
        let group = ModelGroup::Files;
        let Some(last) = batch.last().map(|p| p.id.clone()) else {
            return Ok(());
        };
        let written = self
            .commit(run, gs, group, "file", &sink::Files(self.target), batch)
            .await?;
        for p in written {
            let Some(source) = metas.get(&p.id) else {
                continue;
            };
            let stored =
                retrying("checking an uploaded file", || self.target.files.get(&p.id)).await?;
            if stored.sha256 != source.sha256 || stored.size != source.size {
                let e = Error::backend_msg(format!(
                    "after upload the target records sha256 {} ({} bytes), the source {} ({} bytes)",
                    stored.sha256, stored.size, source.sha256, source.size
                ));
                gs.counts.written -= 1;
                run.letter(gs, group, "file", p.id, p.record.into_value(), &e);
            }
        }
        self.batch_done(run, group);
        gs.cursor = Some(Value::String(last));
        run.checkpoint(group, gs, self.progress)
    }

    /// Open WebUI's remaining tables, in [`ALL_TABLES`] order (parents first), each in keyset
    /// batches by primary key, upserted (a resumed batch writes the same rows again).
    async fn workspace(&self, run: &mut Run, gs: &mut GroupState) -> Result<()> {
        let (src, dst) = (self.source.rows()?, self.target.rows()?);
        let limit = self.options.batch_size;
        let start = gs
            .stage
            .as_deref()
            .and_then(|s| ALL_TABLES.iter().position(|t| t.name == s))
            .unwrap_or(0);
        for table in ALL_TABLES.iter().copied().skip(start) {
            if gs.stage.as_deref() != Some(table.name) {
                gs.stage = Some(table.name.to_owned());
                gs.cursor = None;
            }
            loop {
                let query = page_after(table, gs.cursor.as_ref(), limit)?;
                let what = format!("reading {}", table.name);
                let rows = match retrying(&what, || src.select(table, &query)).await {
                    Ok(rows) => rows,
                    Err(e) if e.is_retryable() => return Err(e),
                    Err(e) => match self.unreadable_row(run, gs, &*src, table, e).await? {
                        Some(rows) => rows,
                        None => continue,
                    },
                };
                let Some(last) = rows.last().map(|r| key_value(table, r)) else {
                    break;
                };
                gs.counts.read += rows.len() as u64;
                self.row_batch(run, gs, &*src, &*dst, table, rows).await?;
                self.batch_done(run, ModelGroup::Workspace);
                gs.cursor = Some(last);
                run.checkpoint(ModelGroup::Workspace, gs, self.progress)?;
            }
        }
        Ok(())
    }

    /// After a page of `table` failed to read for a reason other than availability: the next
    /// row alone, when it reads (`Some`, copied as a page of one); else its key, learnt with
    /// counts ([`min_text`]), set aside with the error and passed (`None`). The cursor is
    /// checkpointed past it.
    async fn unreadable_row(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        src: &dyn RowStore,
        table: &'static Table,
        page_error: Error,
    ) -> Result<Option<Vec<Row>>> {
        let group = ModelGroup::Workspace;
        tracing::warn!(table = table.name, error = %page_error,
            "a page could not be read whole; reading its rows one by one");
        let one = page_after(table, gs.cursor.as_ref(), 1)?;
        let error = match retrying("reading a row", || src.select(table, &one)).await {
            Ok(rows) => return Ok(Some(rows)),
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => e,
        };
        // The key of the row after the cursor, column by column.
        let mut filter = one.filter.clone();
        let mut key = serde_json::Map::new();
        for column in table.primary_key {
            let Some(value) = min_text(src, table, &filter, column).await? else {
                return Err(Error::backend_msg(format!(
                    "{}: a row after {:?} cannot be read ({error}) and its key cannot be found",
                    table.name, gs.cursor
                )));
            };
            filter.push(Cond::Eq(column, Value::String(value.clone())));
            key.insert((*column).to_owned(), Value::String(value));
        }
        let id = table.key_of(&key);
        gs.counts.read += 1;
        let e = Error::backend_msg(format!("the source could not read it: {error}"));
        run.letter(gs, group, table.name, id, Value::Null, &e);
        self.batch_done(run, group);
        gs.cursor = Some(Value::Object(key));
        run.checkpoint(group, gs, self.progress)?;
        Ok(None)
    }

    /// Upserts one batch of a table in one atomic write; when the target refuses it, row by
    /// row, setting aside the rows it still refuses with the reason.
    async fn row_batch(
        &self,
        run: &mut Run,
        gs: &mut GroupState,
        src: &dyn RowStore,
        dst: &dyn RowStore,
        table: &'static Table,
        rows: Vec<Row>,
    ) -> Result<()> {
        let group = ModelGroup::Workspace;
        let n = rows.len() as u64;
        let rows = parents_first(src, table, rows).await?;
        let upsert = |row: &Row| RowOp::Upsert {
            table,
            row: row.clone(),
        };
        let what = format!("writing {} rows", table.name);
        let ops: Vec<RowOp> = rows.iter().map(|(r, _)| upsert(r)).collect();
        match retrying(&what, || dst.write(ops.clone())).await {
            Ok(_) => {
                gs.counts.written += n;
                return Ok(());
            }
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) => tracing::debug!(table = table.name, error = %e,
                "batch refused; writing row by row"),
        }
        for (row, early) in &rows {
            match retrying(&what, || dst.write(vec![upsert(row)])).await {
                Ok(_) if !early => gs.counts.written += 1,
                Ok(_) => {}
                Err(e) if e.is_retryable() => return Err(e),
                // A parent read ahead is set aside in its own batch, with its own reason.
                Err(_) if *early => {}
                Err(e) => {
                    let id = table.key_of(row);
                    run.letter(gs, group, table.name, id, Value::Object(row.clone()), &e);
                }
            }
        }
        Ok(())
    }
}
