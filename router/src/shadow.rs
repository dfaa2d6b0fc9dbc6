//! Shadow reads: the new store answers the same read in the background, the two answers are
//! compared with `chatstore_core::compare`, and every difference goes to a JSONL diff log and
//! a counter. The caller always gets the old store's answer and never waits for the new one.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chatstore_core::compare::{self, FieldDiff, Precision};
use chatstore_core::{Error, ErrorKind, ModelGroup, Result};
use serde::Serialize;
use serde_json::{Value, json};

/// The most field differences one diff record keeps (a whole different blob is one field).
pub const MAX_FIELDS_PER_RECORD: usize = 50;

/// Unix time in milliseconds.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One line of the diff log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRecord {
    /// When the read ran, Unix milliseconds.
    pub time: i64,
    /// The model group.
    pub group: ModelGroup,
    /// The read (`chats.get`).
    pub operation: String,
    /// The ids (or query) the read was for.
    pub ids: Vec<String>,
    /// Each differing field: its JSON pointer and the old and new values.
    pub fields: Vec<FieldChange>,
}

/// One differing field of a [`DiffRecord`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// JSON pointer of the field (`""` for the whole answer).
    pub path: String,
    /// The old store's value.
    pub old: Value,
    /// The new store's value.
    pub new: Value,
}

impl From<FieldDiff> for FieldChange {
    fn from(d: FieldDiff) -> Self {
        FieldChange {
            path: d.path,
            old: d.left,
            new: d.right,
        }
    }
}

/// The JSONL diff log.
#[derive(Debug)]
pub struct DiffLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl DiffLog {
    /// Opens (creating it and its folder if needed) the log at `path`, appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::backend(
                    format!("diff log {}: cannot create its folder", path.display()),
                    e,
                )
            })?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| {
                Error::backend(format!("diff log {}: cannot open it", path.display()), e)
            })?;
        Ok(DiffLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record (one write of one line).
    pub fn write(&self, record: &DiffRecord) -> Result<()> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::backend("diff log: cannot encode a record", e))?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| Error::backend_msg("diff log: a writer panicked while holding it"))?;
        file.write_all(&line).map_err(|e| {
            Error::backend(
                format!("diff log {}: cannot append", self.path.display()),
                e,
            )
        })
    }
}

/// What one side answered, as compared: the canonical JSON of the value, or the error kind.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Value(Value),
    Failed(ErrorKind),
}

impl Outcome {
    fn to_json(&self) -> Value {
        match self {
            Outcome::Value(v) => v.clone(),
            Outcome::Failed(kind) => json!({ "error": kind.to_string() }),
        }
    }
}

/// How the two answers of a shadow read compare.
#[derive(Debug)]
pub(crate) enum Verdict {
    Same,
    /// A side failed in a way worth retrying (down, busy): not a data difference. (The old
    /// side is read a second time in the background, and that read can meet an outage the
    /// caller's did not.)
    Unavailable,
    Different(Vec<FieldChange>),
}

/// `precision`: how closely the numbers must agree ([`Precision::HalfVectors`] for the vectors
/// of a pair where a store keeps them in half precision).
pub(crate) fn judge(old: &Outcome, new: &Outcome, precision: Precision) -> Verdict {
    match (old, new) {
        (Outcome::Value(a), Outcome::Value(b)) => {
            if compare::same_within(a, b, precision) {
                Verdict::Same
            } else {
                Verdict::Different(
                    compare::diff_within(a, b, precision)
                        .into_iter()
                        .take(MAX_FIELDS_PER_RECORD)
                        .map(FieldChange::from)
                        .collect(),
                )
            }
        }
        (Outcome::Failed(a), Outcome::Failed(b)) if a == b => Verdict::Same,
        (_, Outcome::Failed(ErrorKind::Unavailable))
        | (Outcome::Failed(ErrorKind::Unavailable), _) => Verdict::Unavailable,
        _ => Verdict::Different(vec![FieldChange {
            path: String::new(),
            old: old.to_json(),
            new: new.to_json(),
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_record_on_the_new_side_is_a_difference_but_an_outage_on_either_side_is_not() {
        let found = Outcome::Value(json!({"id": "c1", "title": "a"}));
        assert!(matches!(
            judge(&found, &Outcome::Failed(ErrorKind::NotFound), Precision::Float),
            Verdict::Different(f) if f.len() == 1 && f[0].path.is_empty()
        ));
        assert!(matches!(
            judge(
                &found,
                &Outcome::Failed(ErrorKind::Unavailable),
                Precision::Float
            ),
            Verdict::Unavailable
        ));
        assert!(matches!(
            judge(
                &Outcome::Failed(ErrorKind::Unavailable),
                &found,
                Precision::Float
            ),
            Verdict::Unavailable
        ));
        assert!(matches!(
            judge(
                &Outcome::Failed(ErrorKind::NotFound),
                &Outcome::Failed(ErrorKind::NotFound),
                Precision::Float
            ),
            Verdict::Same
        ));
        let changed = Outcome::Value(json!({"id": "c1", "title": "b"}));
        match judge(&found, &changed, Precision::Float) {
            Verdict::Different(fields) => {
                assert_eq!(fields.len(), 1);
                assert_eq!(fields[0].path, "/title");
                assert_eq!(fields[0].old, json!("a"));
                assert_eq!(fields[0].new, json!("b"));
            }
            other => panic!("expected a difference, got {other:?}"),
        }
    }
}
