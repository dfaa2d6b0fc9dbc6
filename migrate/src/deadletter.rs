//! The dead-letter file: one JSON object per line for every record set aside (the record, its
//! group, the error), appended and synced before the batch that produced it is checkpointed.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};

use chatstore_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One record set aside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The group being copied (`users`, `chats`, `files`, `vectors`; `tables` for rows of the
    /// SQL table copy).
    pub group: String,
    /// What kind of record (`user`, `chat`, `message`, `tag`, `file`, `vector`; `collection`
    /// for a collection the source cannot read).
    pub entity: String,
    /// Its id (a message's key, a tag's `user_id/id`, a vector's `collection/id`, a
    /// collection's name).
    pub id: String,
    /// The record as read from the source (`null` when it could not be read).
    pub record: Value,
    /// Why it was set aside.
    pub error: String,
    /// The error's kind.
    pub kind: String,
}

/// The dead-letter file of a run; a resumed run appends, never writing one record twice.
#[derive(Debug)]
pub struct DeadLetters {
    path: PathBuf,
    seen: HashSet<(String, String)>,
    /// Records per group (`seen` counted by its group).
    per_group: HashMap<String, u64>,
    pending: Vec<DeadLetter>,
}

impl DeadLetters {
    /// Opens (without creating) the file at `path`, remembering what it already holds. A last
    /// line cut short (a run killed during a flush) is skipped and ended, so the next letter
    /// starts on a line of its own.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut seen = HashSet::new();
        let mut per_group: HashMap<String, u64> = HashMap::new();
        match std::fs::File::open(&path) {
            Ok(f) => {
                let io = |e: std::io::Error| {
                    Error::backend(format!("cannot read {}", path.display()), e)
                };
                let mut reader = std::io::BufReader::new(f);
                let mut line = Vec::new();
                let mut ended = true;
                while reader.read_until(b'\n', &mut line).map_err(io)? > 0 {
                    ended = line.ends_with(b"\n");
                    if let Ok(d) = serde_json::from_slice::<DeadLetter>(&line)
                        && seen.insert((format!("{}/{}", d.group, d.entity), d.id))
                    {
                        *per_group.entry(d.group).or_default() += 1;
                    }
                    line.clear();
                }
                if !ended {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .map_err(io)?;
                    f.write_all(b"\n").map_err(io)?;
                    f.sync_all().map_err(io)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::invalid(format!(
                    "cannot read the dead-letter file {}: {e}",
                    path.display()
                )));
            }
        }
        Ok(DeadLetters {
            path,
            seen,
            per_group,
            pending: Vec::new(),
        })
    }

    /// For a run that starts over (no state file): moves the records an earlier run set aside
    /// at `path` to `{path}.{unix seconds}.earlier`, kept for the operator, so this run's
    /// file, its count and its exit code hold only its own; the new name, when there was one.
    pub fn keep_earlier(path: &Path) -> Result<Option<PathBuf>> {
        match std::fs::metadata(path) {
            Ok(m) if m.len() > 0 => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::invalid(format!(
                    "cannot read the dead-letter file {}: {e}",
                    path.display()
                )));
            }
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{secs}.earlier"));
        let kept = PathBuf::from(name);
        std::fs::rename(path, &kept).map_err(|e| {
            Error::backend(
                format!(
                    "cannot move the earlier dead letters {} aside",
                    path.display()
                ),
                e,
            )
        })?;
        tracing::warn!(earlier = %kept.display(), "a new run: the dead letters of an earlier one were moved aside");
        Ok(Some(kept))
    }

    /// The ids of the records of `entity` (`user`, `chat`, `file`, ...) set aside so far.
    pub fn ids_of<'a>(&'a self, entity: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.seen.iter().filter_map(move |(kind, id)| {
            kind.rsplit_once('/')
                .is_some_and(|(_, e)| e == entity)
                .then_some(id.as_str())
        })
    }

    /// How many records of `group` the file holds (written and pending).
    pub fn in_group(&self, group: &str) -> u64 {
        self.per_group.get(group).copied().unwrap_or(0)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records the file holds (written and pending).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing was set aside.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Queues a record; returns whether it is new (not written by an earlier run).
    pub fn push(&mut self, letter: DeadLetter) -> bool {
        let key = (
            format!("{}/{}", letter.group, letter.entity),
            letter.id.clone(),
        );
        if !self.seen.insert(key) {
            return false;
        }
        *self.per_group.entry(letter.group.clone()).or_default() += 1;
        tracing::warn!(group = %letter.group, entity = %letter.entity, id = %letter.id,
            error = %letter.error, "record set aside");
        self.pending.push(letter);
        true
    }

    /// Appends the queued records and syncs the file.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |e: std::io::Error| {
            Error::backend(
                format!("cannot write the dead-letter file {}", self.path.display()),
                e,
            )
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut text = Vec::new();
        for letter in self.pending.drain(..) {
            serde_json::to_writer(&mut text, &letter)
                .map_err(|e| Error::backend("cannot encode a dead letter", e))?;
            text.push(b'\n');
        }
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str) -> DeadLetter {
        DeadLetter {
            group: "users".into(),
            entity: "user".into(),
            id: id.into(),
            record: Value::Null,
            error: "refused".into(),
            kind: "InvalidInput".into(),
        }
    }

    /// A line cut short by a kill during a flush (inside a character too) is skipped, and the
    /// next letter starts on a line of its own, so it reads back whole.
    #[test]
    fn a_letter_after_a_cut_line_starts_on_a_new_line() {
        let whole = serde_json::to_string(&letter("u1")).expect("encode");
        let text = format!("{whole}\n{{\"group\":\"users\",\"id\":\"\u{e9}");
        // Cut after `"group":`, and after the first byte of `é`.
        for cut in [whole.len() + 10, whole.len() + 25] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("dead.jsonl");
            std::fs::write(&path, &text.as_bytes()[..cut]).expect("seed");
            let mut dead = DeadLetters::open(&path).expect("open");
            assert_eq!(dead.len(), 1);
            assert!(dead.push(letter("u2")));
            dead.flush().expect("flush");
            let reopened = DeadLetters::open(&path).expect("reopen");
            assert_eq!(reopened.len(), 2, "cut at {cut}");
            let text = std::fs::read(&path).expect("read");
            let last = text
                .split(|b| *b == b'\n')
                .rfind(|l| !l.is_empty())
                .expect("a last line");
            let read: DeadLetter = serde_json::from_slice(last).expect("the new letter is whole");
            assert_eq!(read.id, "u2");
        }
    }
}
