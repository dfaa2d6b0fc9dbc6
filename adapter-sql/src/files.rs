//! Files: Open WebUI's `file` table, with the bytes in a local upload folder the way Open WebUI
//! keeps uploads (`{upload_dir}/{id}_{filename}`, the full path in `file.path`).
//!
//! `file.meta` holds `{name, content_type, size, file_hash, ...}`: the first four are fields of
//! [`FileMeta`], the rest is its `meta`. `file.data` is its `data`, `file.hash` its `hash`. The
//! sha256 in `meta.file_hash` is checked whenever the bytes are read.
//!
//! A put of bytes in memory (`put`) creates its file exclusively at its final name (never
//! replacing a file there), then inserts the row in a transaction (a taken id fails here) while
//! the bytes are written and synced, the folder with them, in one trip to the blocking pool;
//! then the transaction commits. No reader finds the file before its row exists. A streamed
//! upload (`put_stream`) writes the bytes to a temporary file in the upload folder while
//! hashing them (in [`WRITE_BYTES`] writes, each one on the blocking pool while the next is
//! hashed), so a refused stream (too large, or not the expected sha256) never reaches a final
//! name; it is renamed into place and synced, the folder with it, while the row is inserted,
//! and the transaction commits. A large file is written out before the transaction instead
//! ([`SYNC_BEFORE_LOCK_BYTES`]), so that SQLite's write lock is never held while a big file
//! goes to disk. A failed, refused or interrupted upload (even one whose future is dropped half
//! way) leaves no row and no file behind: the file is removed by a guard. A process killed
//! part way can leave a file without a row (a temporary one is swept later, see
//! [`sweep_partial_uploads`]); never a row without its bytes. Reads stream the file in
//! [`READ_BYTES`] chunks, the next one read on the blocking pool while the caller handles the
//! last, checked against its sha256.
//!
//! A bulk `put_many` inserts the rows first (so a taken id fails before any byte is written),
//! then writes the bytes durably at their final names (one trip to the blocking pool each),
//! then commits; if anything fails the rows roll back and the new files are removed.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatstore_core::changes::{ChangeEvent, ChangeKind};
use chatstore_core::files::{RESERVED_META_KEYS, sha256_hex, verify};
use chatstore_core::signing::local_download_url;
use chatstore_core::transfer::{Hashing, MAX_STREAMED_FILE_BYTES, Received};
use chatstore_core::{
    ByteRange, ByteStream, Error, ErrorKind, FileMeta, FileQuery, FileRepo, FileStream, NewFile,
    Page, Result, SignedUrl, validate,
};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::pool::{Arg, Mode, Row, Sql, Tx, When, args, cursor, page_args, storable};
use crate::{SqlStore, json};

macro_rules! file_columns {
    () => {
        "id, user_id, hash, filename, path, data, meta, created_at, updated_at"
    };
}

/// The file row's insert, its nine parameters numbered `$1`-`$9`.
macro_rules! insert_file {
    () => {
        "INSERT INTO \"file\" (id, user_id, hash, filename, path, data, meta, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    };
}

const INSERT: Sql = Sql::both(insert_file!());

/// PostgreSQL: [`INSERT`] with the transaction's changes recorded and notified.
const INSERT_RECORDED: Sql = Sql::both(crate::changes::recorded!(
    insert_file!(); "$10" "$11" "$12" "$13" "$14" "$15"
));

const GET: Sql = Sql::both(concat!(
    "SELECT ",
    file_columns!(),
    " FROM \"file\" WHERE id = $1"
));

/// Deletes a file's row and answers the path and owner of the row it deleted: a path read
/// before the delete may belong to a row another call deleted and put again meanwhile.
const DELETE: Sql = Sql::both("DELETE FROM \"file\" WHERE id = $1 RETURNING path, user_id");

/// Deletes a user's files and answers the rows it deleted: on PostgreSQL a select before the
/// delete missed a file put meanwhile, whose row the delete took and whose bytes stayed.
const DELETE_USER: Sql = Sql::both("DELETE FROM \"file\" WHERE user_id = $1 RETURNING id, path");

const COUNT: Sql =
    Sql::both("SELECT count(*) AS n FROM \"file\" WHERE ($1 IS NULL OR user_id = $1)");

const LIST: Sql = Sql::each(
    concat!(
        "SELECT ",
        file_columns!(),
        " FROM \"file\" WHERE ($1 IS NULL OR user_id = $1) \
         ORDER BY COALESCE(updated_at, 0) DESC, id LIMIT $2 OFFSET $3"
    ),
    concat!(
        "SELECT ",
        file_columns!(),
        " FROM \"file\" WHERE ($1 IS NULL OR user_id = $1) \
         ORDER BY COALESCE(updated_at, 0) DESC, id COLLATE \"C\" LIMIT $2 OFFSET $3"
    ),
);

/// The ids of a scan page, read without decoding the rows.
pub(crate) const SCAN_IDS: Sql = Sql::each(
    "SELECT id FROM \"file\" WHERE id > $1 ORDER BY id LIMIT $2",
    "SELECT id FROM \"file\" WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
);

pub(crate) const SCAN: Sql = Sql::each(
    concat!(
        "SELECT ",
        file_columns!(),
        " FROM \"file\" WHERE id > $1 ORDER BY id LIMIT $2"
    ),
    concat!(
        "SELECT ",
        file_columns!(),
        " FROM \"file\" WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2"
    ),
);

fn file_from_row(row: &Row) -> Result<FileMeta> {
    let mut meta = json::parse_object("file.meta", row.json_text("meta")?)?;
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let name = text(meta.remove("name"));
    let content_type = text(meta.remove("content_type"));
    let size = meta.remove("size").and_then(|v| v.as_u64()).unwrap_or(0);
    let sha256 = text(meta.remove("file_hash")).unwrap_or_default();
    for key in RESERVED_META_KEYS {
        meta.remove(key);
    }
    Ok(FileMeta {
        id: row.text("id")?,
        user_id: row.text("user_id")?,
        filename: row.opt_text("filename")?.or(name).unwrap_or_default(),
        content_type,
        size,
        sha256,
        hash: row.opt_text("hash")?,
        data: json::parse_object("file.data", row.json_text("data")?)?,
        meta,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

/// Open WebUI's `file.meta` of a file.
fn stored_meta(file: &FileMeta) -> Value {
    let mut meta = file.meta.clone();
    meta.insert("name".to_owned(), json!(file.filename));
    meta.insert("content_type".to_owned(), json!(file.content_type));
    meta.insert("size".to_owned(), json!(file.size));
    meta.insert("file_hash".to_owned(), json!(file.sha256));
    Value::Object(meta)
}

/// The longest file name chatstore writes (file systems allow 255 bytes).
const MAX_DISK_NAME: usize = 200;

/// `{id}_{filename}` (Open WebUI's own naming) made safe as one file name: separators and
/// control characters become `_`. The id part must end at the first `_`, or two files could
/// share one name and one's bytes replace the other's (id `f1` with `2_a.txt`, id `f1_2` with
/// `a.txt`): an id that holds `_`, or is longer than 100 bytes, is written as its sha256
/// followed by `.h`, which no id can spell (ids hold no `.`). Reads follow the row's `path`,
/// so files written under the earlier naming stay where they are.
fn disk_name(id: &str, filename: &str) -> String {
    let id = if id.len() > 100 || id.contains('_') {
        format!("{}.h", sha256_hex(id.as_bytes()))
    } else {
        id.to_owned()
    };
    let mut name = format!("{id}_");
    for c in filename.chars() {
        let c = if c == '/' || c == '\\' || c == ':' || c.is_control() {
            '_'
        } else {
            c
        };
        if name.len() + c.len_utf8() > MAX_DISK_NAME {
            break;
        }
        name.push(c);
    }
    name
}

/// Inserts a file's row, its bytes at `path`.
async fn insert_row(tx: &mut Tx, meta: &FileMeta, path: &Path) -> Result<()> {
    // Announced first, so that the feed's statement rides on the insert (PostgreSQL).
    tx.announce(ChangeEvent::file(ChangeKind::Created, meta));
    tx.execute_recording(
        When::Now,
        INSERT,
        INSERT_RECORDED,
        args![
            meta.id.as_str(),
            meta.user_id.as_str(),
            &meta.hash,
            meta.filename.as_str(),
            path.to_string_lossy().into_owned(),
            Arg::Json(Some(json::to_text(&Value::Object(meta.data.clone())))),
            Arg::Json(Some(json::to_text(&stored_meta(meta)))),
            meta.created_at,
            meta.updated_at,
        ],
    )
    .await
}

fn io_error(what: String, e: std::io::Error) -> Error {
    Error::backend(what, e)
}

impl SqlStore {
    /// The upload folder as an absolute path (what `file.path` records).
    fn absolute_upload_dir(&self) -> Result<PathBuf> {
        std::path::absolute(self.upload_dir()).map_err(|e| {
            io_error(
                format!(
                    "upload folder {} has no absolute path",
                    self.upload_dir().display()
                ),
                e,
            )
        })
    }

    /// Where a new file's bytes go. A name already taken on disk (bytes written under an
    /// earlier naming, or a name differing only in case on a case-insensitive volume) is never
    /// replaced, which would garble the file whose row points there: the new file gets a name
    /// of its own, `{id}.{uuid}_{filename}` (reads follow the row's `path`).
    async fn file_path(&self, meta: &FileMeta) -> Result<PathBuf> {
        let dir = self.absolute_upload_dir()?;
        let path = dir.join(disk_name(&meta.id, &meta.filename));
        match tokio::fs::symlink_metadata(&path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
            Err(e) => Err(io_error(format!("cannot look at {}", path.display()), e)),
            Ok(_) => Ok(own_path(&dir, meta)),
        }
    }

    /// Inserts the row of a file and returns where its bytes go.
    async fn insert_file(&self, tx: &mut Tx, file: &NewFile) -> Result<(FileMeta, PathBuf)> {
        let meta = file.prepare(validate::now())?;
        let path = self.file_path(&meta).await?;
        insert_row(tx, &meta, &path).await?;
        Ok((meta, path))
    }

    async fn put_files(&self, mut files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        let mut tx = self.begin("file", Mode::Write).await?;
        let mut planned = Vec::with_capacity(files.len());
        for file in &files {
            planned.push(self.insert_file(&mut tx, file).await?);
        }
        // The guards remove every written file unless the commit succeeds.
        let mut written = Vec::with_capacity(planned.len());
        for ((_, path), file) in planned.iter().zip(&mut files) {
            written.push(write_bytes(path, std::mem::take(&mut file.bytes)).await?);
        }
        commit_keeping(tx, written).await?;
        Ok(planned.into_iter().map(|(meta, _)| meta).collect())
    }

    /// Stores a file whose bytes `on_disk` brings durably to `path` (synced, folder included):
    /// the row is inserted while the bytes go to disk (the insert only fails on a taken id,
    /// and the guard `on_disk` gives then removes the bytes); a file of
    /// [`SYNC_BEFORE_LOCK_BYTES`] or more goes first, outside the transaction, so SQLite's
    /// write lock is never held while it is written out. Then the row is committed.
    async fn store_file(
        &self,
        meta: &FileMeta,
        path: &Path,
        on_disk: impl std::future::Future<Output = Result<Discard>>,
    ) -> Result<()> {
        let row = async {
            let mut tx = self.begin("file", Mode::Write).await?;
            insert_row(&mut tx, meta, path).await?;
            Ok::<_, Error>(tx)
        };
        let (tx, placed) = if meta.size >= SYNC_BEFORE_LOCK_BYTES {
            let placed = on_disk.await?;
            (row.await?, placed)
        } else {
            // Both end before either result is looked at, so a failed insert never drops the
            // guard of a file still being written.
            let (tx, placed) = tokio::join!(row, on_disk);
            let placed = placed?;
            (tx?, placed)
        };
        commit_keeping(tx, vec![placed]).await
    }

    fn backend_name(&self) -> &'static str {
        match self.dialect() {
            crate::Dialect::Sqlite => "sqlite",
            crate::Dialect::Postgres => "postgres",
        }
    }

    /// A file's row: metadata and the path of its bytes.
    async fn file_row(&self, id: &str) -> Result<(FileMeta, String)> {
        if !storable(id) {
            return Err(Error::not_found("file", id));
        }
        let row = self
            .pool()
            .fetch_optional("file", GET, args![id])
            .await?
            .ok_or_else(|| Error::not_found("file", id))?;
        let meta = file_from_row(&row)?;
        let path = row.opt_text("path")?.ok_or_else(|| {
            Error::backend_msg(format!("file {id:?} has no path: its bytes are not stored"))
        })?;
        Ok((meta, path))
    }
}

/// Commits the rows of placed files and keeps their bytes. The guards are given up before the
/// commit is sent: once sent, the rows may be stored whether or not the caller still waits, so
/// a caller that goes away meanwhile (a cancelled request) must not remove a stored row's
/// bytes. A commit that fails removes them, unless the connection was lost on the way: its
/// outcome is then unknown, and a file without a row is harmless where a row without its
/// bytes is not.
async fn commit_keeping(tx: crate::pool::Tx, placed: Vec<Discard>) -> Result<()> {
    let paths: Vec<PathBuf> = placed.into_iter().filter_map(Discard::disarm).collect();
    let committed = tx.commit().await;
    match &committed {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::Unavailable => {
            tracing::warn!(
                files = paths.len(),
                "a file commit's outcome is unknown ({e}); its bytes are kept"
            );
        }
        Err(_) => drop(paths.into_iter().map(Discard::new).collect::<Vec<_>>()),
    }
    committed
}

/// A file that is removed when the guard is dropped unless [`Discard::keep`] was called: the
/// temporary file of an upload, or its final file until the row is committed.
struct Discard {
    path: Option<PathBuf>,
}

impl Discard {
    fn new(path: PathBuf) -> Self {
        Discard { path: Some(path) }
    }

    fn keep(self) {
        drop(self.disarm());
    }

    /// Gives up the guard: the file stays, its path returned.
    fn disarm(mut self) -> Option<PathBuf> {
        self.path.take()
    }
}

impl Drop for Discard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            // Runs on every exit path, a dropped future included, so it must be synchronous.
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

/// How old a partial upload (`.<uuid>.part`) must be before [`sweep_partial_uploads`] removes
/// it: a live upload writes to its file all the time, so only a process that died part way
/// (killed, crashed, power lost) leaves one this old.
pub const PARTIAL_UPLOAD_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `name` is a partial upload's file name (`.<uuid>.part`).
fn is_partial_upload(name: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|n| n.strip_suffix(".part"))
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// Removes the partial uploads in `dir` last written more than `older_than` ago (what a process
/// that died during an upload leaves behind); returns how many it removed. Other files, and
/// partial uploads still in progress (on this or another replica), are left alone. A missing
/// folder holds nothing to sweep.
pub async fn sweep_partial_uploads(dir: &Path, older_than: std::time::Duration) -> Result<u64> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error(format!("cannot list {}", dir.display()), e)),
        };
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_partial_upload) {
                continue;
            }
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > older_than);
            if stale {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, folder = %dir.display(), "removed partial uploads left by an interrupted process");
        }
        Ok(removed)
    })
    .await
    .map_err(|e| Error::backend("sweeping partial uploads", e))?
}

/// A new temporary file in `dir` (the upload folder, so the rename into place stays on one
/// file system), removed when its guard drops. The folder is created when missing.
async fn temp_file(dir: &Path) -> Result<(tokio::fs::File, Discard)> {
    let tmp = temp_path(dir);
    let folder = dir.to_owned();
    // One trip to the blocking pool for both steps: on a busy machine each trip waits its turn.
    // The guard travels with the file: a caller gone meanwhile drops both.
    let (created, guard) = tokio::task::spawn_blocking(move || {
        let guard = Discard::new(tmp.clone());
        let created = create_temp(&folder, &tmp)?;
        Ok::<_, Error>((created, guard))
    })
    .await
    .map_err(|e| Error::backend("creating an upload file", e))??;
    Ok((tokio::fs::File::from_std(created), guard))
}

/// Where the next temporary file in `dir` goes (`.<uuid>.part`, what
/// [`sweep_partial_uploads`] recognises).
fn temp_path(dir: &Path) -> PathBuf {
    dir.join(format!(".{}.part", uuid::Uuid::new_v4()))
}

/// Creates `folder` when missing and the new file `path` in it (blocking).
fn create_temp(folder: &Path, path: &Path) -> Result<std::fs::File> {
    create_new(folder, path)?
        .ok_or_else(|| Error::backend_msg(format!("cannot create {}: it exists", path.display())))
}

/// Creates `folder` when missing and the new file `path` in it, exclusively (blocking); `None`
/// when something is at `path` already.
fn create_new(folder: &Path, path: &Path) -> Result<Option<std::fs::File>> {
    std::fs::create_dir_all(folder).map_err(|e| {
        io_error(
            format!("cannot create upload folder {}", folder.display()),
            e,
        )
    })?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(io_error(format!("cannot create {}", path.display()), e)),
    }
}

/// Syncs a folder, so that a rename into it survives a crash (blocking).
fn sync_folder(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .map_err(|e| io_error(format!("cannot open upload folder {}", dir.display()), e))?
        .sync_all()
        .map_err(|e| io_error(format!("cannot sync upload folder {}", dir.display()), e))
}

/// Moves a written temporary file to `path`, then syncs the file and the folder, in one trip
/// to the blocking pool: the file's sync commits the rename with its bytes on journaling file
/// systems, where syncing the file before the rename cost a second journal commit. The returned
/// guard removes `path` unless kept (also when a sync fails).
async fn place_synced(tmp: Discard, written: tokio::fs::File, path: &Path) -> Result<Discard> {
    let to = path.to_owned();
    let file = written.into_std().await;
    // Both guards live in the blocking task, which gives back the placed file's: a caller gone
    // before the task ends drops it with the task's result, removing the file it never recorded.
    tokio::task::spawn_blocking(move || {
        let Some(from) = tmp.path.clone() else {
            return Err(Error::backend_msg("the temporary upload file is gone"));
        };
        std::fs::rename(&from, &to)
            .map_err(|e| io_error(format!("cannot move file bytes into {}", to.display()), e))?;
        tmp.keep();
        let placed = Discard::new(to.clone());
        sync_with_folder(&file, &to)?;
        Ok(placed)
    })
    .await
    .map_err(|e| Error::backend("moving an upload into place", e))?
}

/// How many bytes an upload hands to the file system at a time: the bytes of one write are
/// written on the blocking pool while the next ones are received and hashed.
pub const WRITE_BYTES: usize = 1024 * 1024;

/// Uploads at least this large are synced before the transaction opens, so that the
/// transaction (SQLite's write lock) is not held while their bytes go to disk; smaller ones are
/// synced while their row is inserted.
pub const SYNC_BEFORE_LOCK_BYTES: u64 = 8 * 1024 * 1024;

/// Receives an upload into a temporary file in `dir`, hashing it; gives what was received,
/// the written (not yet synced) file and its guard.
async fn receive(dir: &Path, body: ByteStream) -> Result<(Received, tokio::fs::File, Discard)> {
    let (file, guard) = temp_file(dir).await?;
    let tmp = guard.path.clone().unwrap_or_default();
    let write_failed = |e| io_error(format!("cannot write {}", tmp.display()), e);
    let mut out = BufWriter::with_capacity(WRITE_BYTES, file);
    let mut hashing = Hashing::new(body, MAX_STREAMED_FILE_BYTES);
    while let Some(chunk) = hashing.next_chunk().await? {
        out.write_all(&chunk).await.map_err(write_failed)?;
    }
    out.flush().await.map_err(write_failed)?;
    let received = hashing
        .received()
        .ok_or_else(|| Error::backend_msg("the upload stream did not end"))?;
    Ok((received, out.into_inner(), guard))
}

/// Writes bytes durably into the new file `path` (never replacing one there), in one trip to
/// the blocking pool; the guard removes the file unless kept.
async fn write_bytes(path: &Path, bytes: Vec<u8>) -> Result<Discard> {
    let to = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let folder = to.parent().unwrap_or(Path::new("."));
        // The guard is made once the file is this call's own: a file found there is another's.
        let Some(mut file) = create_new(folder, &to)? else {
            return Err(Error::backend_msg(format!(
                "{} was taken on disk while the file was stored; try again",
                to.display()
            )));
        };
        let guard = Discard::new(to.clone());
        write_and_sync(&mut file, &to, &bytes)?;
        Ok(guard)
    })
    .await
    .map_err(|e| Error::backend("writing an upload file", e))?
}

/// The name of a file's own, `{id}.{uuid}_{filename}`, for when Open WebUI's is taken on disk.
fn own_path(dir: &Path, meta: &FileMeta) -> PathBuf {
    let own = format!("{}.{}", meta.id, validate::new_id());
    dir.join(disk_name(&own, &meta.filename))
}

/// Stores a put's bytes in one trip to the blocking pool: creates the new file, Open WebUI's
/// name `{id}_{filename}` in `dir` or, when anything is there already, a name of the file's own
/// (see [`SqlStore::file_path`]), then writes the bytes and syncs the file and its folder.
///
/// The create is exclusive, so no file is ever replaced, even one another process creates
/// meanwhile. The name taken is sent on the returned receiver as soon as the file exists, so
/// the row can be inserted while the bytes are written; a receiver that gets nothing means the
/// file was not created, and the future says why. The file's sync commits its creation too on
/// journaling file systems, so the folder's sync after it finds little left to do. No reader
/// finds the file before its row commits. The guard removes the file unless kept, also when
/// the caller goes away part way.
fn place_new_file(
    dir: PathBuf,
    meta: &FileMeta,
    bytes: Vec<u8>,
) -> (
    tokio::sync::oneshot::Receiver<PathBuf>,
    impl std::future::Future<Output = Result<Discard>> + use<>,
) {
    let meta = meta.clone();
    let (named, name) = tokio::sync::oneshot::channel();
    let task = tokio::task::spawn_blocking(move || {
        let mut path = dir.join(disk_name(&meta.id, &meta.filename));
        // The guard is made once the file is this call's own: a file found there is another's.
        let mut file = loop {
            if let Some(file) = create_new(&dir, &path)? {
                break file;
            }
            path = own_path(&dir, &meta);
        };
        let guard = Discard::new(path.clone());
        let _ = named.send(path.clone());
        write_and_sync(&mut file, &path, &bytes)?;
        Ok(guard)
    });
    let placed = async move {
        task.await
            .map_err(|e| Error::backend("writing an upload file", e))?
    };
    (name, placed)
}

/// Writes `bytes` into the new file `file` at `path`, then syncs it and its folder (blocking).
fn write_and_sync(file: &mut std::fs::File, path: &Path, bytes: &[u8]) -> Result<()> {
    std::io::Write::write_all(file, bytes)
        .map_err(|e| io_error(format!("cannot write {}", path.display()), e))?;
    sync_with_folder(file, path)
}

/// Syncs the file at `path`, then its folder, so that both its bytes and its name survive a
/// crash (blocking).
fn sync_with_folder(file: &std::fs::File, path: &Path) -> Result<()> {
    file.sync_all()
        .map_err(|e| io_error(format!("cannot sync {} to disk", path.display()), e))?;
    sync_folder(path.parent().unwrap_or(Path::new(".")))
}

/// How many bytes a read of stored bytes takes from disk at a time.
pub const READ_BYTES: usize = 256 * 1024;

/// What a chunk read leaves for the next: the file, where it is and how much is left.
struct Reading {
    file: std::fs::File,
    at: u64,
    left: u64,
}

/// Reads the next chunk (at most [`READ_BYTES`]); an empty chunk means the file ended early.
fn read_chunk(mut r: Reading) -> (Reading, std::io::Result<Bytes>) {
    let want = r.left.min(READ_BYTES as u64);
    let mut buf = Vec::with_capacity(want as usize);
    let read = r
        .file
        .seek(SeekFrom::Start(r.at))
        .and_then(|_| (&mut r.file).take(want).read_to_end(&mut buf));
    match read {
        Ok(n) => {
            r.at += n as u64;
            r.left -= n as u64;
            (r, Ok(Bytes::from(buf)))
        }
        Err(e) => (r, Err(e)),
    }
}

/// A chunk read that is done, or under way on the blocking pool.
enum NextChunk {
    Done((Reading, std::io::Result<Bytes>)),
    Reading(tokio::task::JoinHandle<(Reading, std::io::Result<Bytes>)>),
}

/// The rest of a read as a stream, from its first chunk (read already, on the trip to the
/// blocking pool that opened the file): each further chunk is read on the blocking pool while
/// the caller handles the one before (hashes it, sends it on), so disk and caller overlap, and
/// no thread is held while the caller is slow. Memory: two chunks.
fn read_ahead(first: Option<(Reading, std::io::Result<Bytes>)>) -> ByteStream {
    Box::pin(futures::stream::unfold(
        first.map(NextChunk::Done),
        |next| async move {
            let (reading, chunk) = match next? {
                NextChunk::Done(done) => done,
                NextChunk::Reading(handle) => match handle.await {
                    Ok(done) => done,
                    Err(e) => return Some((Err(std::io::Error::other(e)), None)),
                },
            };
            match chunk {
                // The file ended early: the checked stream reports the short read.
                Ok(chunk) if chunk.is_empty() => None,
                Ok(chunk) => {
                    let next = (reading.left > 0).then(|| {
                        NextChunk::Reading(tokio::task::spawn_blocking(move || read_chunk(reading)))
                    });
                    Some((Ok(chunk), next))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    ))
}

/// Removes stored bytes; a file that is already gone is fine, other failures are logged (the
/// row is gone, so the bytes are only an orphan).
async fn remove_bytes(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove file bytes {}: {e}", path.display()),
    }
}

/// Commits the deletion of file rows, then removes their bytes, on a task of its own: a caller
/// that goes away once the commit is sent (a cancelled request) would otherwise leave the
/// bytes of deleted files on disk for good, a deleted user's among them.
async fn commit_removing(tx: crate::pool::Tx, paths: Vec<String>) -> Result<()> {
    tokio::spawn(async move {
        tx.commit().await?;
        for path in paths {
            remove_bytes(Path::new(&path)).await;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::backend("deleting files", e))?
}

#[async_trait]
impl FileRepo for SqlStore {
    async fn put(&self, mut file: NewFile) -> Result<FileMeta> {
        let meta = file.prepare(validate::now())?;
        // Bytes already in memory: created, written and synced in place in one blocking trip;
        // the row goes in once the file has its name.
        let (name, on_disk) = place_new_file(
            self.absolute_upload_dir()?,
            &meta,
            std::mem::take(&mut file.bytes),
        );
        let Ok(path) = name.await else {
            on_disk.await?;
            return Err(Error::backend_msg("the upload file was not created"));
        };
        self.store_file(&meta, &path, on_disk).await?;
        Ok(meta)
    }

    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        self.put_files(files).await
    }

    async fn get(&self, id: &str) -> Result<FileMeta> {
        if !storable(id) {
            return Err(Error::not_found("file", id));
        }
        match self.pool().fetch_optional("file", GET, args![id]).await? {
            Some(row) => file_from_row(&row),
            None => Err(Error::not_found("file", id)),
        }
    }

    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        let (meta, path) = self.file_row(id).await?;
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| io_error(format!("cannot read the bytes of file {id:?} at {path}"), e))?;
        verify(&meta, &bytes)?;
        Ok(bytes)
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        let (limit, offset) = page_args(&query.page);
        let mut tx = self.begin("file", Mode::Read).await?;
        let total = tx.fetch_one(COUNT, args![&query.user_id]).await?.int("n")?;
        let items = tx
            .fetch_all(LIST, args![&query.user_id, limit, offset])
            .await?
            .iter()
            .map(file_from_row)
            .collect::<Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or_default(),
        })
    }

    async fn delete(&self, id: &str) -> Result<()> {
        if !storable(id) {
            return Err(Error::not_found("file", id));
        }
        let mut tx = self.begin("file", Mode::Write).await?;
        let (path, owner) = match tx.fetch_optional(DELETE, args![id]).await? {
            Some(row) => (row.opt_text("path")?, row.text("user_id")?),
            None => return Err(Error::not_found("file", id)),
        };
        tx.announce(ChangeEvent::file_ids(ChangeKind::Deleted, &owner, id));
        commit_removing(tx, path.into_iter().collect()).await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let mut tx = self.begin("file", Mode::Write).await?;
        let rows = tx.fetch_all(DELETE_USER, args![user_id]).await?;
        let mut paths: Vec<Option<String>> = Vec::with_capacity(rows.len());
        for row in &rows {
            paths.push(row.opt_text("path")?);
            tx.announce(ChangeEvent::file_ids(
                ChangeKind::Deleted,
                user_id,
                &row.text("id")?,
            ));
        }
        commit_removing(tx, paths.into_iter().flatten().collect()).await?;
        Ok(rows.len() as u64)
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        self.pool()
            .fetch_all("file", SCAN, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(file_from_row)
            .collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.pool()
            .fetch_all("file", SCAN_IDS, args![cursor(after), i64::from(limit)])
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect()
    }

    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        let pending = file.prepare_stream(validate::now(), expected_sha256)?;
        let path = self.file_path(&pending).await?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let (received, written, tmp) = receive(dir, body).await?;
        received.check(expected_sha256)?;
        let meta = pending.finish(&received);
        let on_disk = place_synced(tmp, written, &path);
        self.store_file(&meta, &path, on_disk).await?;
        Ok(meta)
    }

    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        let (meta, path) = self.file_row(id).await?;
        let (start, end) = match range {
            Some(r) => r.resolve(meta.size)?,
            None => (0, meta.size),
        };
        // One trip to the blocking pool opens the file, checks its size and reads the first
        // chunk.
        let recorded = meta.size;
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)?;
                let on_disk = file.metadata()?.len();
                if on_disk != recorded {
                    return Ok(Err(on_disk));
                }
                let reading = Reading {
                    file,
                    at: start,
                    left: end - start,
                };
                Ok::<_, std::io::Error>(Ok((reading.left > 0).then(|| read_chunk(reading))))
            })
            .await
            .map_err(|e| Error::backend("opening a stored file", e))?
        };
        let first = opened
            .map_err(|e| io_error(format!("cannot read the bytes of file {id:?} at {path}"), e))?
            .map_err(|on_disk| {
                Error::backend_msg(format!(
                    "file {id:?} is corrupt: {on_disk} bytes at {path}, {recorded} recorded"
                ))
            })?;
        let body = read_ahead(first);
        Ok(FileStream::checked(meta, start, end, body))
    }

    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        self.file_row(id).await?;
        local_download_url(self.backend_name(), self.urls.as_ref(), id, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::disk_name;

    #[test]
    fn disk_names_are_single_safe_components() {
        assert_eq!(disk_name("f1", "a/b\\c.txt"), "f1_a_b_c.txt");
        let long = disk_name(&"x".repeat(255), &"é".repeat(300));
        assert!(long.len() <= 200);
        assert_ne!(
            disk_name(&"a".repeat(150), "n"),
            disk_name(&"a".repeat(151), "n")
        );
        // Ids holding `_` cannot make two files share a name.
        assert_ne!(disk_name("f1", "2_a.txt"), disk_name("f1_2", "a.txt"));
        let hashed = disk_name("f1_2", "a.txt");
        assert!(hashed.ends_with(".h_a.txt"), "{hashed}");
        let literal = chatstore_core::files::sha256_hex(b"f1_2");
        assert_ne!(hashed, disk_name(&literal, "a.txt"));
    }
}
