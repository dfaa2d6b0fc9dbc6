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

/// A JSONL repair log (see the module header).
#[derive(Debug)]
pub struct RepairLog {
    path: PathBuf,
    file: Mutex<File>,
    depth: AtomicU64,
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
    /// Opens (creating it and its folder if needed) the log at `path`.
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
        let log = RepairLog {
            path,
            file: Mutex::new(file),
            depth: AtomicU64::new(0),
        };
        log.repair_torn_tail()?;
        let pending = log.pending()?.len() as u64;
        log.depth.store(pending, Ordering::Relaxed);
        Ok(log)
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
