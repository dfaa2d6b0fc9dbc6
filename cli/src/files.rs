//! `chatstore files`: put, get, link and list files of any store, streaming the bytes (a file
//! of any size costs a few chunks of memory), with a progress bar when stderr is a terminal.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chatstore_core::{ByteStream, FileQuery, NewFile, PageRequest, Store};
use clap::{Args, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;

use crate::open;

/// Arguments of `chatstore files`.
#[derive(Debug, Args)]
pub struct FilesArgs {
    #[command(subcommand)]
    command: FilesCommand,
}

/// The store a files command works on.
#[derive(Debug, Args)]
struct StoreArg {
    /// The store: `sqlite://path/to/webui.db`, `postgres://...`, `pocketbase://HOST:PORT`
    /// (Open WebUI's `DATABASE_URL` is accepted).
    #[arg(long, env = "CHATSTORE_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum FilesCommand {
    /// Store a local file for a user; prints the new file's id.
    Put {
        #[command(flatten)]
        store: StoreArg,
        /// The owner's user id.
        #[arg(long)]
        user: String,
        /// The name to record (default: the file's own name).
        #[arg(long)]
        name: Option<String>,
        /// The MIME type to record (default: guessed from the extension).
        #[arg(long)]
        content_type: Option<String>,
        /// Refuse the upload (and store nothing) unless the bytes hash to this sha256.
        #[arg(long)]
        sha256: Option<String>,
        /// Keep this id instead of a new uuid.
        #[arg(long)]
        id: Option<String>,
        /// The file to store.
        path: PathBuf,
    },
    /// Write a stored file to OUT (`-` for stdout), checked against its sha256.
    Get {
        #[command(flatten)]
        store: StoreArg,
        /// The file's id.
        id: String,
        /// Where to write it (`-`: stdout).
        out: PathBuf,
    },
    /// Print a link that downloads the file without other credentials.
    Url {
        #[command(flatten)]
        store: StoreArg,
        /// The file's id.
        id: String,
        /// How long the link works, in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// List files, newest first: id, size, sha256, name.
    Ls {
        #[command(flatten)]
        store: StoreArg,
        /// Only this user's files.
        #[arg(long)]
        user: Option<String>,
    },
}

/// Runs a files command.
pub async fn run(args: FilesArgs) -> Result<(), String> {
    match args.command {
        FilesCommand::Put {
            store,
            user,
            name,
            content_type,
            sha256,
            id,
            path,
        } => {
            let store = open_store(store).await?;
            let id = put(&store, &path, user, name, content_type, sha256, id).await?;
            outln!("{id}");
            Ok(())
        }
        FilesCommand::Get { store, id, out } => {
            let store = open_store(store).await?;
            get(&store, &id, &out).await
        }
        FilesCommand::Url { store, id, ttl } => {
            let store = open_store(store).await?;
            let link = store
                .files
                .download_url(&id, Duration::from_secs(ttl))
                .await
                .map_err(|e| e.to_string())?;
            outln!("{}", link.url);
            errln!("expires at {} (epoch seconds)", link.expires_at);
            Ok(())
        }
        FilesCommand::Ls { store, user } => {
            let store = open_store(store).await?;
            ls(&store, user).await
        }
    }
}

async fn open_store(arg: StoreArg) -> Result<Store, String> {
    let url = open::required_url(arg.database_url, "files").map_err(|e| e.to_string())?;
    open::open(&url).await.map_err(|e| e.to_string())
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

/// A MIME type from a file name's extension (the common types of chat uploads).
fn guess_type(name: &str) -> Option<&'static str> {
    let ext = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "zip" => "application/zip",
        _ => return None,
    })
}

async fn put(
    store: &Store,
    path: &Path,
    user: String,
    name: Option<String>,
    content_type: Option<String>,
    sha256: Option<String>,
    id: Option<String>,
) -> Result<String, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    let filename = name
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "upload".to_owned());
    let content_type = content_type.or_else(|| guess_type(&filename).map(str::to_owned));
    let bar = progress(len, "put");
    let counted = bar.clone();
    let body: ByteStream = Box::pin(
        tokio_util::io::ReaderStream::with_capacity(file, chatstore_core::transfer::CHUNK_BYTES)
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    counted.inc(chunk.len() as u64);
                }
            }),
    );
    let new = NewFile {
        id,
        user_id: user,
        filename,
        content_type,
        ..NewFile::default()
    };
    let meta = store
        .files
        .put_stream(new, body, sha256.as_deref())
        .await
        .map_err(|e| e.to_string());
    bar.finish_and_clear();
    Ok(meta?.id)
}

async fn get(store: &Store, id: &str, out: &Path) -> Result<(), String> {
    let stream = store
        .files
        .read_stream(id, None)
        .await
        .map_err(|e| e.to_string())?;
    let bar = progress(stream.len(), "get");
    let mut body = stream.body;
    if out == Path::new("-") {
        let mut stdout = tokio::io::stdout();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("reading file {id}: {e}"))?;
            stdout
                .write_all(&chunk)
                .await
                .map_err(|e| format!("writing to stdout: {e}"))?;
        }
        bar.finish_and_clear();
        return stdout.flush().await.map_err(|e| e.to_string());
    }
    // Written beside OUT and renamed at the end: OUT never holds a partial or unchecked file.
    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".to_owned());
    let part = out.with_file_name(part_name(&file_name));
    let written = async {
        // A name of this download's own, never an existing file: two downloads to one OUT
        // (or a leftover) must not write into, or rename away, each other's bytes.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&part)
            .await
            .map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("reading file {id}: {e}"))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("writing {}: {e}", part.display()))?;
            bar.inc(chunk.len() as u64);
        }
        file.sync_all()
            .await
            .map_err(|e| format!("writing {}: {e}", part.display()))?;
        tokio::fs::rename(&part, out)
            .await
            .map_err(|e| format!("cannot move the file to {}: {e}", out.display()))
    }
    .await;
    bar.finish_and_clear();
    if written.is_err() {
        let _ = tokio::fs::remove_file(&part).await;
    }
    written
}

/// The temporary name a download to `file_name` is written under beside it:
/// `.{file_name}.{pid}-{nanoseconds}-{n}.part`, unique to this process and call.
fn part_name(file_name: &str) -> String {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(".{file_name}.{}-{nanos}-{n}.part", std::process::id())
}

async fn ls(store: &Store, user: Option<String>) -> Result<(), String> {
    const PAGE: u64 = 200;
    let mut offset = 0u64;
    loop {
        let page = store
            .files
            .list(&FileQuery {
                user_id: user.clone(),
                page: PageRequest::new(offset, PAGE),
            })
            .await
            .map_err(|e| e.to_string())?;
        for f in &page.items {
            outln!(
                "{}\t{}\t{}\t{}\t{}",
                f.id,
                f.user_id,
                f.size,
                f.sha256,
                f.filename
            );
        }
        offset += page.items.len() as u64;
        if (page.items.len() as u64) < PAGE || offset >= page.total {
            return Ok(());
        }
    }
}
