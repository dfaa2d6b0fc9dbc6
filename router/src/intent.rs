//! Intents: each process's record of its writes to both stores that are under way, so that a
//! process killed between the old store's commit and its repair-log entry leaves a trace.
//!
//! A write to both stores opens an intent (its operation and repair keys) before either store
//! is written and closes it once the outcome is settled: both stores agreed, or the keys went
//! to the [`RepairLog`](crate::RepairLog). Each open router holds a file of its own,
//! `{log}.intents/{uuid}.jsonl`, under an exclusive file lock for as long as it is open; the
//! lines are `{"open": n, "time", "operation", "keys"}` and `{"closed": n}`. A file whose lock
//! can be taken belongs to a router that is gone: [`RepairLog::adopt_orphans`] (run when a
//! router opens the log and before a reconcile) logs each intent it left open for repair, then
//! removes the file.
//!
//! Intents are written, not synced: they cost a `write` each, and they survive the process
//! (a crash, `kill -9`, an out-of-memory kill), which is the failure they are for. An intent
//! written in the last moments before the machine itself goes down may be lost with the page
//! cache; `chatstore verify` still finds that record.
//!
//! [`RepairLog::adopt_orphans`]: crate::RepairLog::adopt_orphans

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chatstore_core::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::repair::RepairKey;

/// A file is rewritten with only its open intents once it grows past this.
pub(crate) const COMPACT_AT: u64 = 1 << 20;

/// The folder, inside the intents' folder, where files are made before they are locked.
const STAGING: &str = ".new";

/// A file left in [`STAGING`] by a crash is removed once it is this old.
const STAGING_LEFTOVER: std::time::Duration = std::time::Duration::from_secs(600);

/// The folder of a log's intent files.
pub(crate) fn folder(log: &Path) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(".intents");
    log.with_file_name(name)
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Closed {
        closed: u64,
    },
    Open {
        open: u64,
        time: i64,
        operation: String,
        keys: Vec<RepairKey>,
    },
}

/// An intent a router that is gone left open.
#[derive(Debug)]
pub(crate) struct Orphan {
    pub(crate) time: i64,
    pub(crate) operation: String,
    pub(crate) keys: Vec<RepairKey>,
}

/// This process's intent file for one open repair log.
pub(crate) struct Intents {
    path: PathBuf,
    own: Mutex<Own>,
}

struct Own {
    file: File,
    next: u64,
    /// The lines of the intents still open, by number (what a rewrite keeps).
    open: BTreeMap<u64, Vec<u8>>,
    len: u64,
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::backend(format!("intent file {}: cannot {what}", path.display()), e)
}

/// A new file holding `bytes`, locked, made visible as `path` only once it is locked (an
/// adopter would take a file it could lock for a gone router's): it is made in the folder's
/// `.new` folder, which adopters do not read, then renamed to `path`.
fn create_locked(path: &Path, bytes: &[u8]) -> Result<File> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = dir.join(STAGING);
    std::fs::create_dir_all(&staging).map_err(|e| io_error(&staging, "create it", e))?;
    let temporary = staging.join(uuid::Uuid::new_v4().simple().to_string());
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|e| io_error(&temporary, "create it", e))?;
    let made = file
        .lock()
        .and_then(|()| file.write_all(bytes))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(e) = made {
        let _ = std::fs::remove_file(&temporary);
        return Err(io_error(path, "create it", e));
    }
    Ok(file)
}

impl Intents {
    /// A new intent file of this process's own beside the repair log at `log`.
    pub(crate) fn open(log: &Path) -> Result<Self> {
        let dir = folder(log);
        std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create its folder", e))?;
        let path = dir.join(format!("{}.jsonl", uuid::Uuid::new_v4().simple()));
        let file = create_locked(&path, b"")?;
        Ok(Intents {
            path,
            own: Mutex::new(Own {
                file,
                next: 0,
                open: BTreeMap::new(),
                len: 0,
            }),
        })
    }

    fn own(&self) -> Result<std::sync::MutexGuard<'_, Own>> {
        self.own
            .lock()
            .map_err(|_| Error::backend_msg("intent file: a writer panicked while holding it"))
    }

    /// Opens an intent for a write to both stores of `keys`; its number closes it.
    pub(crate) fn begin(&self, operation: &str, keys: &[RepairKey]) -> Result<u64> {
        let mut own = self.own()?;
        let number = own.next;
        own.next += 1;
        let mut line = serde_json::to_vec(&Line::Open {
            open: number,
            time: crate::shadow::now_millis(),
            operation: operation.to_owned(),
            keys: keys.to_vec(),
        })
        .map_err(|e| Error::backend("intent file: cannot encode an intent", e))?;
        line.push(b'\n');
        (&own.file)
            .write_all(&line)
            .map_err(|e| io_error(&self.path, "write an intent", e))?;
        own.len += line.len() as u64;
        own.open.insert(number, line);
        Ok(number)
    }

    /// Closes an intent: its write's outcome is settled.
    pub(crate) fn end(&self, number: u64) -> Result<()> {
        let mut own = self.own()?;
        own.open.remove(&number);
        let mut line = serde_json::to_vec(&Line::Closed { closed: number })
            .map_err(|e| Error::backend("intent file: cannot encode a close", e))?;
        line.push(b'\n');
        (&own.file)
            .write_all(&line)
            .map_err(|e| io_error(&self.path, "close an intent", e))?;
        own.len += line.len() as u64;
        if own.len > COMPACT_AT {
            self.rewrite(&mut own)?;
        }
        Ok(())
    }

    /// Replaces the file with one holding only the open intents (see [`create_locked`];
    /// adopters check that the file they locked is still the one under its name).
    fn rewrite(&self, own: &mut Own) -> Result<()> {
        let kept: Vec<u8> = own.open.values().flatten().copied().collect();
        own.file = create_locked(&self.path, &kept)?;
        own.len = kept.len() as u64;
        Ok(())
    }
}

impl Drop for Intents {
    /// A router closed with every intent settled leaves no file behind; one with intents
    /// still open (a write whose repair entry could not be logged) leaves it to be adopted.
    fn drop(&mut self) {
        let settled = self.own.get_mut().map(|own| own.open.is_empty());
        if settled.unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads and removes, one file at a time, the intent files of routers that are gone, passing
/// each file's open intents to `adopt` first; a file is removed only once `adopt` took its
/// intents. Files held by a live router (this process's included) are left alone.
pub(crate) fn adopt(log: &Path, mut adopt: impl FnMut(Vec<Orphan>) -> Result<()>) -> Result<()> {
    let dir = folder(log);
    let listing = match std::fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(&dir, "list it", e)),
    };
    for item in listing {
        let path = item.map_err(|e| io_error(&dir, "list it", e))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let Some(file) = lock_if_gone(&path)? else {
            continue;
        };
        let orphans = read_open(&file, &path)?;
        if !orphans.is_empty() {
            adopt(orphans)?;
        }
        std::fs::remove_file(&path).map_err(|e| io_error(&path, "remove it", e))?;
    }
    sweep_staging(&dir.join(STAGING));
    Ok(())
}

/// Removes what a crash left in the staging folder: files nobody holds, old enough that no
/// router is about to lock them.
fn sweep_staging(staging: &Path) {
    let Ok(listing) = std::fs::read_dir(staging) else {
        return;
    };
    for path in listing.flatten().map(|item| item.path()) {
        let old = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age > STAGING_LEFTOVER);
        if old && matches!(lock_if_gone(&path), Ok(Some(_))) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The file at `path`, locked, if no live router holds it and it is still the file under that
/// name (a rewrite may have replaced it since it was opened); `None` otherwise.
fn lock_if_gone(path: &Path) -> Result<Option<File>> {
    let file = match OpenOptions::new().read(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path, "open it", e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => return Err(io_error(path, "lock it", e)),
    }
    if !same_file(&file, path)? {
        return Ok(None);
    }
    Ok(Some(file))
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file
        .metadata()
        .map_err(|e| io_error(path, "read its metadata", e))?;
    match std::fs::metadata(path) {
        Ok(named) => Ok(named.dev() == held.dev() && named.ino() == held.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, "read its metadata", e)),
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> Result<bool> {
    Ok(path.exists())
}

/// The intents a file holds open. A line that does not parse (torn by the crash: written
/// before either store was, so nothing to repair) is skipped.
fn read_open(mut file: &File, path: &Path) -> Result<Vec<Orphan>> {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| io_error(path, "read it", e))?;
    let mut opened = Vec::new();
    let mut closed = HashSet::new();
    for raw in bytes.split(|b| *b == b'\n') {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line>(raw) {
            Ok(Line::Open {
                open,
                time,
                operation,
                keys,
            }) => opened.push((
                open,
                Orphan {
                    time,
                    operation,
                    keys,
                },
            )),
            Ok(Line::Closed { closed: number }) => {
                closed.insert(number);
            }
            Err(e) => tracing::warn!(path = %path.display(), error = %e,
                "intent file: skipping a line that is not an intent (torn by a crash?)"),
        }
    }
    Ok(opened
        .into_iter()
        .filter(|(number, _)| !closed.contains(number))
        .map(|(_, orphan)| orphan)
        .collect())
}
