//! The checkpoint file: where each group stands, bound to the two ends it was made for, written
//! atomically (temporary file, fsync, rename, fsync of the folder) after every committed batch.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chatstore_core::{Error, ModelGroup, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The state file format version.
pub const STATE_VERSION: u32 = 1;

/// Record counts of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records read from the source.
    pub read: u64,
    /// Records written to the target.
    pub written: u64,
    /// Records the target already held (a resumed batch).
    pub skipped: u64,
    /// Records set aside in the dead-letter file.
    pub dead_lettered: u64,
    /// Records the source deleted while the run read them (listed, then not found): nothing
    /// left to copy. A state file written before this count reads as 0.
    #[serde(default)]
    pub gone: u64,
}

impl Counts {
    /// Adds another count.
    pub fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.written += other.written;
        self.skipped += other.skipped;
        self.dead_lettered += other.dead_lettered;
        self.gone += other.gone;
    }
}

/// Where one group stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// The stage within the group (`tags`, `chats`, `orphans`; a collection name for vectors).
    pub stage: Option<String>,
    /// The last source key copied in that stage (a string id, or a tag key object).
    pub cursor: Option<Value>,
    /// The group is complete.
    pub done: bool,
    /// Counts so far.
    pub counts: Counts,
}

/// The whole checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_VERSION`].
    pub version: u32,
    /// sha256 of the source, the target and the groups: a state is only used for the same run.
    pub binding: String,
    /// The source, credentials removed, for a person reading the file.
    pub source: String,
    /// The target, credentials removed.
    pub target: String,
    /// The groups, in order.
    pub groups: Vec<ModelGroup>,
    /// Per group, by name.
    pub progress: BTreeMap<String, GroupState>,
}

/// What a state is bound to.
pub fn binding(source: &str, target: &str, groups: &[ModelGroup]) -> String {
    let mut h = Sha256::new();
    for part in [source, target] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    for g in groups {
        h.update(g.as_str().as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A URL without its secrets (`scheme://***@host/db`, `?password=***`).
pub fn redact(url: &str) -> String {
    chatstore_core::redact::url_text(url)
}

impl State {
    /// A fresh state for this run.
    pub fn new(source: &str, target: &str, groups: &[ModelGroup]) -> Self {
        State {
            version: STATE_VERSION,
            binding: binding(source, target, groups),
            source: redact(source),
            target: redact(target),
            groups: groups.to_vec(),
            progress: BTreeMap::new(),
        }
    }

    /// The group's state (default when new).
    pub fn group(&self, group: ModelGroup) -> GroupState {
        self.progress
            .get(group.as_str())
            .cloned()
            .unwrap_or_default()
    }

    /// Replaces the group's state.
    pub fn set_group(&mut self, group: ModelGroup, state: GroupState) {
        self.progress.insert(group.as_str().to_owned(), state);
    }
}

/// The state file of a run.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The state at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state for this run: the saved one when it is bound to the same source, target
    /// and groups (`InvalidInput` when it is bound to others), else a fresh one.
    pub fn load_or_new(&self, source: &str, target: &str, groups: &[ModelGroup]) -> Result<State> {
        let fresh = State::new(source, target, groups);
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(fresh),
            Err(e) => {
                return Err(Error::invalid(format!(
                    "cannot read the state file {}: {e}",
                    self.path.display()
                )));
            }
        };
        let saved: State = serde_json::from_slice(&text).map_err(|e| {
            Error::invalid(format!(
                "the state file {} is not a chatstore migration state ({e}); remove it to start over",
                self.path.display()
            ))
        })?;
        if saved.version != STATE_VERSION {
            return Err(Error::invalid(format!(
                "the state file {} has version {}, this chatstore writes {STATE_VERSION}",
                self.path.display(),
                saved.version
            )));
        }
        if saved.binding != fresh.binding {
            return Err(Error::invalid(format!(
                "the state file {} belongs to another migration (from {} to {}, groups {}); \
                 resume with the same --from, --to and --groups, or give another --state",
                self.path.display(),
                saved.source,
                saved.target,
                saved
                    .groups
                    .iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        Ok(saved)
    }

    /// Writes the state atomically and durably: a crash leaves the old or the new file whole.
    pub fn save(&self, state: &State) -> Result<()> {
        let text = serde_json::to_vec_pretty(state)
            .map_err(|e| Error::backend("cannot encode the migration state", e))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |what: &str, e: std::io::Error| {
            Error::backend(format!("{what} {}", self.path.display()), e)
        };
        let mut file = std::fs::File::create(&tmp).map_err(|e| io("cannot write", e))?;
        file.write_all(&text).map_err(|e| io("cannot write", e))?;
        file.sync_all().map_err(|e| io("cannot sync", e))?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(|e| io("cannot replace", e))?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(d) = std::fs::File::open(&dir) {
            d.sync_all()
                .map_err(|e| io("cannot sync the folder of", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_for_other_ends_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = StateFile::new(dir.path().join("state.json"));
        let groups = [ModelGroup::Users];
        let mut state = file.load_or_new("a", "b", &groups).expect("fresh");
        state.set_group(
            ModelGroup::Users,
            GroupState {
                cursor: Some(Value::String("u9".into())),
                ..GroupState::default()
            },
        );
        file.save(&state).expect("save");
        assert_eq!(file.load_or_new("a", "b", &groups).expect("same"), state);
        let err = file.load_or_new("a", "c", &groups).expect_err("refused");
        assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
        let err = file
            .load_or_new("a", "b", &[ModelGroup::Chats])
            .expect_err("refused");
        assert_eq!(err.kind(), chatstore_core::ErrorKind::InvalidInput);
    }

    #[test]
    fn passwords_are_not_written() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/w"),
            "postgres://***@db:5432/w"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
