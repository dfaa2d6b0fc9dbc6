//! Streaming file transfer: the byte stream type every backend reads and writes, byte ranges,
//! and the stream adapters that hash bytes as they pass, so that no backend ever holds a whole
//! file to hash or check it.
//!
//! Memory per transfer is bounded by [`CHUNK_BYTES`] (plus what the transport buffers), whatever
//! the file size.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use crate::files::{FileMeta, hex};
use crate::{Error, Result};

/// The size of the chunks backends read and send: the unit of memory per transfer.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// The largest file a streamed upload accepts (the whole-buffer `put` keeps the smaller
/// [`MAX_FILE_BYTES`](crate::files::MAX_FILE_BYTES), since it holds the file in memory).
pub const MAX_STREAMED_FILE_BYTES: u64 = 64 * 1024 * 1024 * 1024;

/// A stream of file bytes. An `Err` item ends the transfer: an upload fed such a stream
/// stores nothing; a download that yields one was cut off or failed its sha256 check.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A stream over bytes already in memory, in chunks of at most [`CHUNK_BYTES`] (no copy).
pub fn stream_bytes(bytes: impl Into<Bytes>) -> ByteStream {
    let bytes: Bytes = bytes.into();
    let chunks: Vec<Bytes> = (0..bytes.len())
        .step_by(CHUNK_BYTES)
        .map(|start| bytes.slice(start..bytes.len().min(start + CHUNK_BYTES)))
        .collect();
    Box::pin(futures::stream::iter(chunks.into_iter().map(Ok)))
}

/// `inner` pulled on a task of its own, up to `chunks` chunks ahead of the consumer, so that
/// what produces the bytes (a socket, a server) and what the consumer does with them (hashing,
/// sending them on) overlap instead of taking turns. Memory: `chunks` more of `inner`'s
/// chunks. Dropping the returned stream stops the task and drops `inner`. Call it inside a
/// tokio runtime.
pub fn read_ahead(mut inner: ByteStream, chunks: usize) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel(chunks.max(1));
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                next = inner.next() => next,
                () = tx.closed() => return,
            };
            let Some(item) = next else { return };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Reads a whole stream into memory, refusing more than `limit` bytes with `InvalidInput`.
pub async fn collect(mut body: ByteStream, limit: u64) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::backend("reading the file bytes failed", e))?;
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large(limit));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn too_large(limit: u64) -> Error {
    Error::invalid(format!(
        "the file is larger than {limit} bytes, the most this call accepts"
    ))
}

/// A byte range of a file: from `start` (inclusive) to `end` (exclusive), or to the end of the
/// file when `end` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte; `None` for "to the end".
    pub end: Option<u64>,
}

impl ByteRange {
    /// Bytes `start..end`.
    pub fn new(start: u64, end: u64) -> Self {
        ByteRange {
            start,
            end: Some(end),
        }
    }

    /// Bytes from `start` to the end of the file.
    pub fn from(start: u64) -> Self {
        ByteRange { start, end: None }
    }

    /// The range within a file of `size` bytes as `(start, end)`, the end clamped to the size.
    /// `InvalidInput` when it is empty or starts past the end (HTTP's 416).
    pub fn resolve(&self, size: u64) -> Result<(u64, u64)> {
        let end = self.end.unwrap_or(size).min(size);
        if self.start >= end {
            return Err(Error::invalid(format!(
                "byte range {}..{} is empty or outside the file of {size} bytes",
                self.start,
                self.end.map_or_else(|| "end".to_owned(), |e| e.to_string())
            )));
        }
        Ok((self.start, end))
    }
}

/// A file being read: its metadata, the bytes served (`start..end` of `meta.size`) and the
/// stream of them.
pub struct FileStream {
    /// The file's metadata.
    pub meta: FileMeta,
    /// First byte served.
    pub start: u64,
    /// One past the last byte served.
    pub end: u64,
    /// The bytes. A whole-file stream is checked against `meta.sha256` as it passes and ends
    /// with an `InvalidData` error when they differ; a range cannot be checked.
    pub body: ByteStream,
}

impl std::fmt::Debug for FileStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStream")
            .field("meta", &self.meta)
            .field("start", &self.start)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl FileStream {
    /// Whether this is the whole file.
    pub fn is_whole(&self) -> bool {
        self.start == 0 && self.end == self.meta.size
    }

    /// How many bytes the stream yields.
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the stream yields no byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A stream of `meta`'s bytes `start..end` from `body`: the bytes are counted, and a whole
    /// file is hashed as it passes; a stream that ends early, runs long or (whole) hashes to
    /// something else than `meta.sha256` ends with an error.
    pub fn checked(meta: FileMeta, start: u64, end: u64, body: ByteStream) -> Self {
        let expected = end - start;
        let whole = start == 0 && end == meta.size;
        let sha = whole.then(|| meta.sha256.clone());
        let body = Box::pin(Checked {
            inner: body,
            id: meta.id.clone(),
            expected,
            seen: 0,
            hasher: sha.as_ref().map(|_| Sha256::new()),
            sha256: sha,
            done: false,
        });
        FileStream {
            meta,
            start,
            end,
            body,
        }
    }

    /// Reads the stream to its end keeping nothing, so a file of any size is checked (its
    /// length, and a whole file's sha256) in the memory of one chunk; the bytes read.
    pub async fn drain(self) -> Result<u64> {
        let mut read = 0u64;
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => read += chunk.len() as u64,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Error::backend_msg(e.to_string()));
                }
                Err(e) => return Err(Error::backend("reading the file bytes failed", e)),
            }
        }
        Ok(read)
    }

    /// Reads the whole stream into memory (for small files and the whole-buffer `read`).
    pub async fn into_vec(self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(self.len()).unwrap_or(0));
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => out.extend_from_slice(&chunk),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    return Err(Error::backend_msg(e.to_string()));
                }
                Err(e) => return Err(Error::backend("reading the file bytes failed", e)),
            }
        }
        Ok(out)
    }
}

struct Checked {
    inner: ByteStream,
    id: String,
    expected: u64,
    seen: u64,
    hasher: Option<Sha256>,
    sha256: Option<String>,
    done: bool,
}

impl Stream for Checked {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                self.seen += chunk.len() as u64;
                if self.seen > self.expected {
                    self.done = true;
                    let msg = format!(
                        "file {:?} holds more than the {} bytes recorded",
                        self.id, self.expected
                    );
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, msg))));
                }
                if let Some(h) = self.hasher.as_mut() {
                    h.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                if self.seen != self.expected {
                    let msg = format!(
                        "file {:?} ended after {} of {} bytes",
                        self.id, self.seen, self.expected
                    );
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        msg,
                    ))));
                }
                if let (Some(h), Some(expected)) = (self.hasher.take(), self.sha256.as_ref()) {
                    let actual = hex(&h.finalize());
                    if actual != *expected {
                        let msg = format!(
                            "file {:?} is corrupt: stored sha256 {expected} but the bytes hash to {actual}",
                            self.id
                        );
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            msg,
                        ))));
                    }
                }
                Poll::Ready(None)
            }
        }
    }
}

/// What an upload counted and hashed, once its stream has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Bytes received.
    pub size: u64,
    /// Lower-case hex sha256 of them.
    pub sha256: String,
}

impl Received {
    /// `InvalidInput` when `expected` (a hex sha256, any case) is given and differs.
    pub fn check(&self, expected: Option<&str>) -> Result<()> {
        match expected {
            Some(want) if !want.eq_ignore_ascii_case(&self.sha256) => Err(Error::invalid(format!(
                "the uploaded bytes hash to sha256 {} but {want} was expected; nothing was stored",
                self.sha256
            ))),
            _ => Ok(()),
        }
    }
}

/// Checks the form of an expected sha256 before any byte moves: 64 hex digits.
pub fn validate_sha256(expected: Option<&str>) -> Result<()> {
    match expected {
        Some(s) if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Err(Error::invalid(format!(
                "expected sha256 {s:?} is not 64 hexadecimal digits"
            )))
        }
        _ => Ok(()),
    }
}

/// Counts and hashes an upload as it passes. Read the stream to its end, then
/// [`Hashing::received`] gives the size and sha256. Chunks beyond `limit` bytes end the stream
/// with an error (the upload is then refused).
pub struct Hashing {
    inner: ByteStream,
    hasher: Sha256,
    size: u64,
    limit: u64,
    finished: bool,
}

impl Hashing {
    /// Hashes `inner`, refusing more than `limit` bytes.
    pub fn new(inner: ByteStream, limit: u64) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            size: 0,
            limit,
            finished: false,
        }
    }

    /// The next chunk, counted and hashed; `None` at the end. A stream error or too many bytes
    /// is an error (`InvalidInput` for the size, `Backend` for a broken stream).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.inner.next().await {
            None => {
                self.finished = true;
                Ok(None)
            }
            Some(Err(e)) => Err(Error::backend("the upload stream failed", e)),
            Some(Ok(chunk)) => {
                self.size += chunk.len() as u64;
                if self.size > self.limit {
                    return Err(too_large(self.limit));
                }
                self.hasher.update(&chunk);
                Ok(Some(chunk))
            }
        }
    }

    /// Size and sha256 of everything read; `None` until the stream has ended.
    pub fn received(&self) -> Option<Received> {
        self.finished.then(|| Received {
            size: self.size,
            sha256: hex(&self.hasher.clone().finalize()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::sha256_hex;

    fn meta(bytes: &[u8]) -> FileMeta {
        FileMeta {
            id: "f".into(),
            user_id: "u".into(),
            filename: "f".into(),
            content_type: None,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            hash: None,
            data: Default::default(),
            meta: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn ranges_resolve_against_the_size() {
        assert_eq!(ByteRange::new(2, 5).resolve(10).ok(), Some((2, 5)));
        assert_eq!(ByteRange::new(2, 50).resolve(10).ok(), Some((2, 10)));
        assert_eq!(ByteRange::from(9).resolve(10).ok(), Some((9, 10)));
        assert!(ByteRange::from(10).resolve(10).is_err());
        assert!(ByteRange::new(3, 3).resolve(10).is_err());
    }

    #[test]
    fn whole_streams_are_checked_against_the_sha256() {
        let data = vec![7u8; 200_000];
        let good = FileStream::checked(meta(&data), 0, 200_000, stream_bytes(data.clone()));
        assert_eq!(block_on(good.into_vec()).expect("intact"), data);
        let mut other = data.clone();
        other[100] = 8;
        let bad = FileStream::checked(meta(&data), 0, 200_000, stream_bytes(other));
        assert!(block_on(bad.into_vec()).is_err());
        let short = FileStream::checked(meta(&data), 0, 200_000, stream_bytes(vec![7u8; 10]));
        assert!(block_on(short.into_vec()).is_err());
    }

    #[test]
    fn read_ahead_passes_every_chunk_and_the_error_that_ends_a_stream() {
        block_on(async {
            let data: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
            let ahead = read_ahead(stream_bytes(data.clone()), 2);
            assert_eq!(collect(ahead, u64::MAX).await.expect("whole"), data);
            let broken: ByteStream = Box::pin(futures::stream::iter(vec![
                Ok(Bytes::from_static(b"ab")),
                Err(io::Error::other("cut off")),
                Ok(Bytes::from_static(b"never")),
            ]));
            assert!(collect(read_ahead(broken, 2), u64::MAX).await.is_err());
        });
    }

    #[test]
    fn hashing_counts_hashes_and_enforces_the_limit() {
        block_on(async {
            let mut h = Hashing::new(stream_bytes(&b"abc"[..]), 10);
            while h.next_chunk().await.expect("ok").is_some() {}
            let got = h.received().expect("ended");
            assert_eq!(got.size, 3);
            assert_eq!(got.sha256, sha256_hex(b"abc"));
            assert!(got.check(Some(&sha256_hex(b"abc").to_uppercase())).is_ok());
            assert!(got.check(Some(&sha256_hex(b"abd"))).is_err());
            let mut h = Hashing::new(stream_bytes(vec![0u8; 11]), 10);
            assert!(h.next_chunk().await.is_err());
        });
    }
}
