//! The repair log: a durable record of every write that reached the authoritative store but
//! may not have reached the other one, replayed by [`Router::reconcile`](crate::Router::reconcile).
//!
//! The log is a JSONL file. Each line is either an entry (`{"id", "time", "group", "key",
//! "operation", "source", "reason"}`) or a done marker (`{"done": id}`) appended once the
//! entry's key was re-copied. Lines are only ever appended (under an exclusive file lock, then
//! `fsync`), so a crash never loses an acknowledged entry; when nothing is pending any more the
//! file is truncated. Several processes may append to one log (the lock is the file's own).

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chatstore_core::{Error, ModelGroup, Result};
use serde::{Deserialize, Serialize};

use crate::intent::{self, Intents};

/// Which store of a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The store being left.
    Old,
    /// The store being moved to.
    New,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Old => Side::New,
            Side::New => Side::Old,
        }
    }

    /// `old` or `new`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Old => "old",
            Side::New => "new",
        }
    }
}

/// What a repair re-copies: the current state of these records on the source side (their
/// absence included) is made the state of the other side.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum RepairKey {
    /// One user row.
    User(String),
    /// One chat with its messages, and its owner's tag rows.
    Chat(String),
    /// Every listed chat of a user (and the user's tag rows).
    ChatsOf(String),
    /// A user's tag rows.
    Tags(String),
    /// One file (metadata and bytes).
    File(String),
    /// Every file of a user.
    FilesOf(String),
    /// One row of Open WebUI's remaining tables, by table and primary key values.
    Row {
        /// The table (`note`, `folder`, ...).
        table: String,
        /// Primary key column -> value.
        key: BTreeMap<String, String>,
    },
    /// One vector collection.
    Collection(String),
    /// Every vector collection.
    AllVectors,
    /// Every record of a group: logged when the group is moved back to `old`, after which
    /// the new store is no longer written and falls behind (a repair walks both stores' ids).
    Group(ModelGroup),
}

impl RepairKey {
    /// The model group the key belongs to.
    pub fn group(&self) -> ModelGroup {
        match self {
            RepairKey::User(_) => ModelGroup::Users,
            RepairKey::Chat(_) | RepairKey::ChatsOf(_) | RepairKey::Tags(_) => ModelGroup::Chats,
            RepairKey::File(_) | RepairKey::FilesOf(_) => ModelGroup::Files,
            RepairKey::Row { .. } => ModelGroup::Workspace,
            RepairKey::Collection(_) | RepairKey::AllVectors => ModelGroup::Vectors,
            RepairKey::Group(group) => *group,
        }
    }

    /// A short text form (`chat:c1`), for logs and reports.
    pub fn describe(&self) -> String {
        match self {
            RepairKey::User(id) => format!("user:{id}"),
            RepairKey::Chat(id) => format!("chat:{id}"),
            RepairKey::ChatsOf(id) => format!("chats-of:{id}"),
            RepairKey::Tags(id) => format!("tags:{id}"),
            RepairKey::File(id) => format!("file:{id}"),
            RepairKey::FilesOf(id) => format!("files-of:{id}"),
            RepairKey::Row { table, key } => format!(
                "row:{table}/{}",
                key.values().cloned().collect::<Vec<_>>().join("/")
            ),
            RepairKey::Collection(name) => format!("collection:{name}"),
            RepairKey::AllVectors => "all-vectors".to_owned(),
            RepairKey::Group(group) => format!("group:{group}"),
        }
    }
}

/// One write the other side may have missed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepairEntry {
    /// Unique id of the entry (uuid4).
    pub id: String,
    /// When it was logged, Unix milliseconds.
    pub time: i64,
    /// The model group.
    pub group: ModelGroup,
    /// What to re-copy.
    pub key: RepairKey,
    /// The operation that was routed (`chats.update`).
    pub operation: String,
    /// The side whose state is right (the authoritative side when the write ran).
    pub source: Side,
    /// Why the entry was logged (the other side's error, a timeout, different results).
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Done { done: String },
    Entry(RepairEntry),
}

/// A JSONL repair log (see the module header), with this router's intent file beside it: the
/// writes to both stores under way, logged for repair by the next router to open the log
/// should this one stop before they settle (the crate README's "Intents").
pub struct RepairLog {
    path: PathBuf,
    file: Mutex<File>,
    depth: AtomicU64,
    intents: Intents,
}

impl std::fmt::Debug for RepairLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepairLog")
            .field("path", &self.path)
            .field("depth", &self.depth())
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::backend(format!("repair log {}: cannot {what}", path.display()), e)
}

/// Releases a file lock when dropped.
struct Locked<'a>(&'a File);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl RepairLog {
    /// Opens (creating it and its folder if needed) the log at `path`, and logs for repair the
    /// writes that routers gone since (a crash, a kill) left under way (see
    /// [`RepairLog::adopt_orphans`]).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io_error(&path, "create its folder", e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open it", e))?;
        let intents = Intents::open(&path)?;
        let log = RepairLog {
            path,
            file: Mutex::new(file),
            depth: AtomicU64::new(0),
            intents,
        };
        log.repair_torn_tail()?;
        let pending = log.pending()?.len() as u64;
        log.depth.store(pending, Ordering::Relaxed);
        log.adopt_orphans()?;
        Ok(log)
    }

    /// Logs for repair every write a router that is gone (its process crashed or was killed)
    /// left between its start and its settling, from that router's intent file, then removes
    /// the file. Returns the number of entries logged. Intent files of live routers, in this
    /// process or another, are left alone.
    pub fn adopt_orphans(&self) -> Result<usize> {
        let mut logged = 0;
        intent::adopt(&self.path, |orphans| {
            let entries: Vec<RepairEntry> = orphans
                .into_iter()
                .flat_map(|orphan| {
                    let reason = format!(
                        "the process writing both stores stopped before both answered (its \
                         intent was written at {} ms)",
                        orphan.time
                    );
                    let operation = orphan.operation;
                    orphan.keys.into_iter().map(move |key| RepairEntry {
                        time: orphan.time,
                        ..entry(key, &operation, Side::Old, &reason)
                    })
                })
                .collect();
            tracing::warn!(
                path = %self.path.display(),
                count = entries.len(),
                "repair log: logging the writes a stopped router left under way"
            );
            self.append(&entries)?;
            logged += entries.len();
            Ok(())
        })?;
        Ok(logged)
    }

    /// Records that a write of `keys` to both stores begins; `None` when there is nothing to
    /// record or the record cannot be written (reported; the write goes on, and `verify` finds
    /// the record should this process then stop before the write settles).
    pub(crate) fn intend(&self, operation: &str, keys: &[RepairKey]) -> Option<u64> {
        if keys.is_empty() {
            return None;
        }
        match self.intents.begin(operation, keys) {
            Ok(number) => Some(number),
            Err(e) => {
                metrics::counter!("chatstore_router_intent_failures_total").increment(1);
                tracing::error!(error = %e, operation, "cannot record a write under way");
                None
            }
        }
    }

    /// Records that the write begun as `number` is settled: both stores agree, or its keys
    /// are in the log.
    pub(crate) fn settled(&self, number: u64) {
        if let Err(e) = self.intents.end(number) {
            metrics::counter!("chatstore_router_intent_failures_total").increment(1);
            tracing::error!(error = %e, "cannot record a write as settled");
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pending entries as last counted by this process (appends, replays, opening).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    fn file(&self) -> Result<std::sync::MutexGuard<'_, File>> {
        self.file
            .lock()
            .map_err(|_| Error::backend_msg("repair log: a writer panicked while holding it"))
    }

    /// A crash in the middle of an append leaves a line without its newline: end it, so the
    /// next entry starts on a line of its own (the torn line is skipped when read).
    fn repair_torn_tail(&self) -> Result<()> {
        let guard = self.file()?;
        let _lock = lock(&guard, &self.path)?;
        let mut file: &File = &guard;
        if !self.ends_a_line(file)? {
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&self.path, "end a torn line", e))?;
        }
        Ok(())
    }

    /// Whether the file is empty or ends with a newline (read under the file lock).
    fn ends_a_line(&self, mut file: &File) -> Result<bool> {
        let len = file
            .metadata()
            .map_err(|e| io_error(&self.path, "read its size", e))?
            .len();
        if len == 0 {
            return Ok(true);
        }
        let mut last = [0u8; 1];
        file.seek(SeekFrom::Start(len - 1))
            .and_then(|_| file.read_exact(&mut last))
            .map_err(|e| io_error(&self.path, "read it", e))?;
        Ok(last[0] == b'\n')
    }

    /// Appends entries durably (one write, then `fsync`) before returning.
    pub fn append(&self, entries: &[RepairEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for entry in entries {
            let line = serde_json::to_string(entry)
                .map_err(|e| Error::backend("repair log: cannot encode an entry", e))?;
            text.push_str(&line);
            text.push('\n');
        }
        self.write_durably(text.as_bytes())?;
        let depth = self
            .depth
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        metrics::gauge!("chatstore_router_repair_log_depth")
            .set((depth + entries.len() as u64) as f64);
        Ok(())
    }

    /// Appends `bytes` (whole lines) and syncs them. A line an earlier append left unfinished
    /// (a write that failed part way, here or in another process sharing the log, or a crash)
    /// is ended first: joined to it, this append's first line would not read back.
    fn write_durably(&self, bytes: &[u8]) -> Result<()> {
        let guard = self.file()?;
        let _lock = lock(&guard, &self.path)?;
        let mut file: &File = &guard;
        let written = if self.ends_a_line(file)? {
            file.write_all(bytes)
        } else {
            let mut ended = Vec::with_capacity(bytes.len() + 1);
            ended.push(b'\n');
            ended.extend_from_slice(bytes);
            file.write_all(&ended)
        };
        written
            .and_then(|()| file.sync_data())
            .map_err(|e| io_error(&self.path, "append to it", e))
    }

    /// The entries not yet marked done, in the order they were logged. Lines that are not
    /// valid JSON (a torn write from a crash: never acknowledged) are skipped with a warning.
    pub fn pending(&self) -> Result<Vec<RepairEntry>> {
        let file = self.file()?;
        let _lock = lock(&file, &self.path)?;
        self.read_pending(&file)
    }

    fn read_pending(&self, file: &File) -> Result<Vec<RepairEntry>> {
        // Bytes, not text: a line torn inside a character is not UTF-8, and is skipped like
        // any other torn line instead of making the whole log unreadable.
        let mut bytes = Vec::new();
        let mut reader = file;
        reader
            .seek(SeekFrom::Start(0))
            .and_then(|_| reader.read_to_end(&mut bytes))
            .map_err(|e| io_error(&self.path, "read it", e))?;
        let mut entries = Vec::new();
        let mut done = HashSet::new();
        for (n, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Line>(raw) {
                Ok(Line::Entry(entry)) => entries.push(entry),
                Ok(Line::Done { done: id }) => {
                    done.insert(id);
                }
                Err(e) => tracing::warn!(
                    path = %self.path.display(),
                    line = n + 1,
                    error = %e,
                    "repair log: skipping a line that is not an entry (torn by a crash?)"
                ),
            }
        }
        entries.retain(|e| !done.contains(&e.id));
        Ok(entries)
    }

    /// Marks entries done (one durable append).
    pub fn mark_done(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for id in ids {
            let line = serde_json::to_string(&Line::Done { done: id.clone() })
                .map_err(|e| Error::backend("repair log: cannot encode a done marker", e))?;
            text.push_str(&line);
            text.push('\n');
        }
        self.write_durably(text.as_bytes())?;
        let _ = self
            .depth
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                Some(d.saturating_sub(ids.len() as u64))
            });
        Ok(())
    }

    /// Counts what is still pending and truncates the file when nothing is. Returns the
    /// number of pending entries.
    pub fn compact(&self) -> Result<usize> {
        let file = self.file()?;
        let _lock = lock(&file, &self.path)?;
        let pending = self.read_pending(&file)?.len();
        if pending == 0 {
            file.set_len(0)
                .and_then(|()| file.sync_data())
                .map_err(|e| io_error(&self.path, "truncate it", e))?;
        }
        self.depth.store(pending as u64, Ordering::Relaxed);
        metrics::gauge!("chatstore_router_repair_log_depth").set(pending as f64);
        Ok(pending)
    }
}

fn lock<'a>(file: &'a File, path: &Path) -> Result<Locked<'a>> {
    file.lock().map_err(|e| io_error(path, "lock it", e))?;
    Ok(Locked(file))
}

/// A new entry for `key`, logged now.
pub(crate) fn entry(key: RepairKey, operation: &str, source: Side, reason: &str) -> RepairEntry {
    RepairEntry {
        id: uuid::Uuid::new_v4().to_string(),
        time: crate::shadow::now_millis(),
        group: key.group(),
        key,
        operation: operation.to_owned(),
        source,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join("chatstore-router-unit")
            .join(format!("{}-{name}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn entries_survive_reopening_until_marked_done() {
        let path = temp_path("repair.jsonl");
        let log = RepairLog::open(&path).expect("open");
        let a = entry(
            RepairKey::Chat("c1".into()),
            "chats.update",
            Side::Old,
            "timeout",
        );
        let b = entry(
            RepairKey::User("u1".into()),
            "users.create",
            Side::Old,
            "refused",
        );
        log.append(&[a.clone(), b.clone()]).expect("append");
        drop(log);
        let log = RepairLog::open(&path).expect("reopen");
        assert_eq!(log.depth(), 2);
        assert_eq!(log.pending().expect("read"), vec![a.clone(), b.clone()]);
        log.mark_done(std::slice::from_ref(&a.id)).expect("done");
        assert_eq!(log.compact().expect("compact"), 1);
        assert_eq!(log.pending().expect("read"), vec![b.clone()]);
        log.mark_done(&[b.id]).expect("done");
        assert_eq!(log.compact().expect("compact"), 0);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), 0);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_entry_is_kept() {
        let path = temp_path("torn.jsonl");
        let log = RepairLog::open(&path).expect("open");
        let a = entry(RepairKey::File("f1".into()), "files.put", Side::Old, "down");
        log.append(std::slice::from_ref(&a)).expect("append");
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open raw");
        file.write_all(b"{\"id\":\"half").expect("torn write");
        drop(file);
        let log = RepairLog::open(&path).expect("reopen");
        let b = entry(RepairKey::AllVectors, "vectors.reset", Side::Old, "down");
        log.append(std::slice::from_ref(&b))
            .expect("append after the torn line");
        assert_eq!(log.pending().expect("read"), vec![a, b]);
    }

    fn intent_files(log: &Path) -> usize {
        std::fs::read_dir(intent::folder(log))
            .expect("the intents folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .count()
    }

    /// A router gone with a write under way (here: dropped with its intent open, as a killed
    /// process leaves it) has that write logged by the next router to open the log.
    #[test]
    fn a_write_left_under_way_is_logged_when_the_log_opens_again() {
        let path = temp_path("intents.jsonl");
        let log = RepairLog::open(&path).expect("open");
        let keys = [RepairKey::Chat("c1".into()), RepairKey::Tags("u1".into())];
        log.intend("chats.update", &keys).expect("an intent");
        let settled = log.intend("users.create", &[RepairKey::User("u1".into())]);
        log.settled(settled.expect("an intent"));
        drop(log);
        let log = RepairLog::open(&path).expect("reopen");
        let pending = log.pending().expect("read");
        assert_eq!(
            pending.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
            keys
        );
        assert!(pending.iter().all(|e| e.operation == "chats.update"
            && e.source == Side::Old
            && e.reason.contains("stopped before both answered")));
        assert_eq!(log.depth(), 2);
        // Adopted once: the gone router's file is removed.
        assert_eq!(intent_files(&path), 1);
        drop(log);
        assert_eq!(
            RepairLog::open(&path)
                .expect("again")
                .pending()
                .expect("read")
                .len(),
            2
        );
    }

    /// Another live router's writes under way are its own: they are not logged until it is
    /// gone.
    #[test]
    fn a_live_routers_writes_under_way_are_left_alone() {
        let path = temp_path("live.jsonl");
        let live = RepairLog::open(&path).expect("open");
        live.intend("files.put", &[RepairKey::File("f1".into())])
            .expect("an intent");
        let other = RepairLog::open(&path).expect("open beside it");
        assert!(other.pending().expect("read").is_empty());
        assert_eq!(other.adopt_orphans().expect("adopt"), 0);
        assert_eq!(intent_files(&path), 2);
        drop(live);
        assert_eq!(other.adopt_orphans().expect("adopt"), 1);
        assert_eq!(
            other.pending().expect("read")[0].key,
            RepairKey::File("f1".into())
        );
    }

    /// Settled writes cost nothing later: a router closed with all its writes settled leaves
    /// no file, and a long-running one's file is rewritten with only its open intents.
    #[test]
    fn settled_writes_leave_nothing_behind() {
        let path = temp_path("settled.jsonl");
        let log = RepairLog::open(&path).expect("open");
        log.intend(
            "rows.write",
            &[RepairKey::Row {
                table: "note".into(),
                key: [("id".to_owned(), "n1".to_owned())].into(),
            }],
        )
        .expect("an intent");
        let keys = [RepairKey::Chat("c".repeat(200))];
        for _ in 0..(intent::COMPACT_AT / 200 + 10) {
            let n = log.intend("chats.update", &keys).expect("an intent");
            log.settled(n);
        }
        let file = std::fs::read_dir(intent::folder(&path))
            .expect("folder")
            .filter_map(|e| e.ok())
            .find(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .expect("the router's file");
        let len = file.metadata().expect("stat").len();
        assert!(len < intent::COMPACT_AT, "{len} bytes");
        drop(log);
        let log = RepairLog::open(&path).expect("reopen");
        let pending = log.pending().expect("read");
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].operation, "rows.write");
        log.mark_done(&[pending[0].id.clone()]).expect("done");
        drop(log);
        assert_eq!(intent_files(&path), 0);
        assert!(
            RepairLog::open(&path)
                .expect("again")
                .pending()
                .expect("read")
                .is_empty()
        );
    }

    /// An append that failed part way (here written by another handle) leaves a line without
    /// its newline while the log stays open: the next append still reads back.
    #[test]
    fn an_unfinished_line_left_while_the_log_is_open_does_not_swallow_the_next_entry() {
        let path = temp_path("unfinished.jsonl");
        let log = RepairLog::open(&path).expect("open");
        let a = entry(RepairKey::File("f1".into()), "files.put", Side::Old, "down");
        log.append(std::slice::from_ref(&a)).expect("append");
        let mut other = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open raw");
        other
            .write_all(b"{\"id\":\"half")
            .expect("a write cut short");
        let b = entry(
            RepairKey::User("u1".into()),
            "users.update",
            Side::Old,
            "down",
        );
        log.append(std::slice::from_ref(&b)).expect("append");
        assert_eq!(log.pending().expect("read"), vec![a.clone(), b.clone()]);
        drop(log);
        assert_eq!(
            RepairLog::open(&path)
                .expect("reopen")
                .pending()
                .expect("read"),
            vec![a, b]
        );
    }

    /// A line cut inside a multi-byte character is skipped like any torn line; the log still
    /// opens and reads.
    #[test]
    fn a_line_torn_inside_a_character_is_skipped() {
        let path = temp_path("torn-utf8.jsonl");
        let log = RepairLog::open(&path).expect("open");
        let a = entry(
            RepairKey::Chat("c-é".into()),
            "chats.update",
            Side::Old,
            "down €",
        );
        log.append(std::slice::from_ref(&a)).expect("append");
        drop(log);
        let mut file = OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open raw");
        file.write_all(b"{\"id\":\"x\",\"reason\":\"\xE2\x82")
            .expect("torn inside a character");
        drop(file);
        let log = RepairLog::open(&path).expect("reopen");
        assert_eq!(log.pending().expect("read"), vec![a]);
    }
}
