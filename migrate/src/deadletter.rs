//! The dead-letter file: one JSON object per line for every record set aside (the record, its
//! group, the error), appended and synced before the batch that produced it is checkpointed.

use std::collections::HashSet;
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
    /// What kind of record (`user`, `chat`, `message`, `tag`, `file`, `vector`).
    pub entity: String,
    /// Its id (a message's key, a tag's `user_id/id`, a vector's `collection/id`).
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
    pending: Vec<DeadLetter>,
}

impl DeadLetters {
    /// Opens (without creating) the file at `path`, remembering what it already holds.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut seen = HashSet::new();
        match std::fs::File::open(&path) {
            Ok(f) => {
                for line in std::io::BufReader::new(f).lines() {
                    let line = line.map_err(|e| {
                        Error::backend(format!("cannot read {}", path.display()), e)
                    })?;
                    if let Ok(d) = serde_json::from_str::<DeadLetter>(&line) {
                        seen.insert((format!("{}/{}", d.group, d.entity), d.id));
                    }
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
            pending: Vec::new(),
        })
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
