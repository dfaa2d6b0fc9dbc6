//! Files in the `owui_files` collection: the bytes in the protected file field `blob` (size
//! limit raised to chatstore's `MAX_FILE_BYTES`), the original name and the sha256 in fields
//! of their own (PocketBase mangles stored file names). Reads use a file token and check the
//! sha256 of what comes back.
//!
//! Streamed uploads send one multipart request whose file part streams from the caller's
//! stream, hashed as it passes; the record's fields (size and sha256 among them) go in a
//! `@jsonPayload` part *after* the file, filled in once the stream has ended. A stream that
//! fails, or whose hash differs from the expected one, aborts the request before its end, so
//! PocketBase creates no record. Streamed reads ask for the file with a file token (and a
//! `Range` header for byte ranges) and pass the answer's body on chunk by chunk, received a
//! few chunks ahead of the caller so that the connection and the hashing overlap.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chatstore_core::files::verify;
use chatstore_core::rows::cascades::FILE_CASCADES;
use chatstore_core::signing::validate_ttl;
use chatstore_core::transfer::{Hashing, MAX_STREAMED_FILE_BYTES, read_ahead, stream_bytes};
use chatstore_core::{
    ByteRange, ByteStream, Error, FileMeta, FileQuery, FileRepo, FileStream, NewFile, Page, Result,
    SignedUrl, validate,
};
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use reqwest::{Body, Method};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use crate::PocketBase;
use crate::client::{ListQuery, too_large};
use crate::error::{Subject, TokenRefused, malformed};
use crate::tx::{Cascaded, TxOp};
use crate::{filter, record};

/// PocketBase: the name the bytes are uploaded under (it is mangled anyway; the original
/// name lives in `filename`).
const UPLOAD_NAME: &str = "blob.bin";

/// How many chunks of a download's body (hyper's reads, at most about 400 KiB each) are
/// received ahead of the caller.
const READ_AHEAD_CHUNKS: usize = 4;

fn body(meta: &FileMeta) -> Value {
    let doc = json!({
        "content_type": meta.content_type,
        "hash": meta.hash,
        "data": meta.data,
        "meta": meta.meta,
    });
    json!({
        "id": meta.id,
        "user_id": meta.user_id,
        "filename": meta.filename,
        "sha256": meta.sha256,
        "size": meta.size,
        "doc": record::json_value(&doc),
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
    })
}

fn from_record(r: &Value) -> Result<FileMeta> {
    let doc = record::json(r, "doc").unwrap_or(Value::Null);
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let object = |k: &str| match doc.get(k) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    Ok(FileMeta {
        id: record::text(r, "id")?,
        user_id: record::text(r, "user_id")?,
        filename: record::text(r, "filename")?,
        content_type: text("content_type"),
        size: u64::try_from(record::int(r, "size")?)
            .map_err(|_| malformed("negative file size"))?,
        sha256: record::text(r, "sha256")?,
        hash: text("hash"),
        data: object("data"),
        meta: object("meta"),
        created_at: record::int(r, "created_at")?,
        updated_at: record::int(r, "updated_at")?,
    })
}

/// What a streamed upload's file part saw, for the caller once the request is over.
type Outcome = Arc<Mutex<Option<Result<FileMeta>>>>;

/// The file part of a streamed upload: passes the caller's chunks on while hashing them; at
/// the end checks the hash and hands the record's fields to the `@jsonPayload` part, or ends
/// with an error that aborts the request.
struct Upload {
    hashing: Hashing,
    first: Option<Bytes>,
    pending: FileMeta,
    expected: Option<String>,
    payload: Option<oneshot::Sender<String>>,
    outcome: Outcome,
    done: bool,
}

impl Upload {
    fn settle(&self, result: Result<FileMeta>) {
        if let Ok(mut slot) = self.outcome.lock() {
            *slot = Some(result);
        }
    }

    async fn next(mut self) -> Option<(io::Result<Bytes>, Upload)> {
        if self.done {
            return None;
        }
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        let failed = match self.hashing.next_chunk().await {
            Ok(Some(chunk)) => return Some((Ok(chunk), self)),
            Ok(None) => match self.hashing.received() {
                Some(received) => match received.check(self.expected.as_deref()) {
                    Ok(()) => {
                        let meta = self.pending.clone().finish(&received);
                        let sent = self
                            .payload
                            .take()
                            .map(|tx| tx.send(body(&meta).to_string()).is_ok());
                        self.settle(Ok(meta));
                        if sent == Some(true) {
                            return None;
                        }
                        Error::backend_msg("the upload request ended before its fields were sent")
                    }
                    Err(e) => e,
                },
                None => Error::backend_msg("the upload stream did not end"),
            },
            Err(e) => e,
        };
        let message = failed.to_string();
        self.settle(Err(failed));
        self.done = true;
        Some((Err(io::Error::other(message)), self))
    }
}

impl PocketBase {
    /// Creates the record of a file without bytes (PocketBase cannot store an empty file).
    async fn create_empty(&self, meta: FileMeta) -> Result<FileMeta> {
        let payload = body(&meta).to_string();
        let path = format!("/api/collections/{}/records", self.cols().files);
        self.client()
            .send_multipart(
                Method::POST,
                &path,
                || Form::new().text("@jsonPayload", payload.clone()),
                Subject::new("file", &meta.id),
            )
            .await?;
        Ok(meta)
    }

    /// A file's metadata and the stored name of its bytes (empty for an empty file).
    async fn record(&self, id: &str) -> Result<(FileMeta, String)> {
        let r = self
            .client()
            .get_record(&self.cols().files, id, None, Subject::new("file", id))
            .await?;
        let meta = from_record(&r)?;
        let stored = r
            .get("blob")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((meta, stored))
    }
}

fn bytes_part(bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(UPLOAD_NAME)
        .mime_str("application/octet-stream")
        .unwrap_or_else(|_| Part::bytes(bytes.to_vec()).file_name(UPLOAD_NAME))
}

#[async_trait]
impl FileRepo for PocketBase {
    async fn put(&self, mut file: NewFile) -> Result<FileMeta> {
        file.prepare(validate::now())?;
        let bytes = Bytes::from(std::mem::take(&mut file.bytes));
        match self
            .put_stream(file.clone(), stream_bytes(bytes.clone()), None)
            .await
        {
            // The server refused a token it had invalidated, before storing anything: the
            // bytes are at hand, so the put is sent once more, with a new login.
            Err(e) if chatstore_core::error::caused_by::<TokenRefused>(&e) => {
                self.put_stream(file, stream_bytes(bytes), None).await
            }
            answer => answer,
        }
    }

    async fn put_many(&self, files: Vec<NewFile>) -> Result<Vec<FileMeta>> {
        let now = validate::now();
        let metas = files
            .iter()
            .map(|f| f.prepare(now))
            .collect::<Result<Vec<_>>>()?;
        if metas.is_empty() {
            return Ok(metas);
        }
        if metas.len() as u64 > crate::schema::BATCH_MAX_REQUESTS {
            return Err(chatstore_core::Error::invalid(format!(
                "at most {} files can be stored in one call",
                crate::schema::BATCH_MAX_REQUESTS
            )));
        }
        let url = format!("/api/collections/{}/records?fields=id", self.cols().files);
        let requests: Vec<Value> = metas
            .iter()
            .map(|m| json!({"method": "POST", "url": url, "body": body(m)}))
            .collect();
        let payload = json!({ "requests": requests }).to_string();
        // The bytes of every file travel in the same request; a form part's own headers are a
        // few hundred bytes.
        let size = payload.len() + files.iter().map(|f| f.bytes.len() + 512).sum::<usize>();
        let max = self.client().batch_max_bytes();
        if size > max {
            return Err(too_large(
                &format!("a batch of {} files", files.len()),
                size,
                "PocketBase's batch API",
                max,
            ));
        }
        // PocketBase batch: the files of request N go in the parts `requests.N.<field>`.
        self.client()
            .send_multipart(
                Method::POST,
                "/api/batch",
                || {
                    let mut form = Form::new().text("@jsonPayload", payload.clone());
                    for (n, f) in files.iter().enumerate() {
                        if !f.bytes.is_empty() {
                            form = form.part(format!("requests.{n}.blob"), bytes_part(&f.bytes));
                        }
                    }
                    form
                },
                Subject::new("file", ""),
            )
            .await?;
        Ok(metas)
    }

    async fn get(&self, id: &str) -> Result<FileMeta> {
        let r = self
            .client()
            .get_record(&self.cols().files, id, None, Subject::new("file", id))
            .await?;
        from_record(&r)
    }

    async fn read(&self, id: &str) -> Result<Vec<u8>> {
        let subject = Subject::new("file", id);
        let (meta, stored) = self.record(id).await?;
        let bytes = if stored.is_empty() {
            Vec::new()
        } else {
            self.client()
                .download(&self.cols().files, id, &stored, subject)
                .await?
        };
        verify(&meta, &bytes)?;
        Ok(bytes)
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        let q = ListQuery {
            filter: query
                .user_id
                .as_deref()
                .map(|u| filter::eq("user_id", u))
                .unwrap_or_default(),
            sort: "-updated_at,id".to_owned(),
            ..ListQuery::default()
        };
        let (items, total) = self
            .client()
            .list(
                &self.cols().files,
                &q,
                query.page.offset,
                query.page.limit,
                Subject::new("file", ""),
            )
            .await?;
        Ok(Page {
            items: items.iter().map(from_record).collect::<Result<_>>()?,
            total,
        })
    }

    /// PocketBase has no foreign keys: the file's links to chats, knowledge bases and channels
    /// go in the same transaction, as SQL's `ON DELETE CASCADE` takes them.
    async fn delete(&self, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::not_found("file", id));
        }
        let mut ops = vec![TxOp::Delete {
            collection: self.cols().files.clone(),
            entity: "file",
            id: id.to_owned(),
            must_exist: true,
        }];
        ops.extend(Cascaded::delete_ops(self.cols(), FILE_CASCADES, id));
        self.client().tx(ops, Subject::new("file", id)).await?;
        Ok(())
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        let ops = vec![TxOp::DeleteWhere {
            collection: self.cols().files.clone(),
            field: "user_id",
            value: user_id.to_owned(),
            cascades: Cascaded::of(self.cols(), FILE_CASCADES),
        }];
        let resp = self.client().tx(ops, Subject::new("file", user_id)).await?;
        resp.get("results")
            .and_then(|r| r.get(0))
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("tx answer without a delete count"))
    }

    async fn scan(&self, after: Option<&str>, limit: u32) -> Result<Vec<FileMeta>> {
        let items = self
            .client()
            .scan_by_id(
                &self.cols().files,
                after,
                limit,
                None,
                Subject::new("file", ""),
            )
            .await?;
        items.iter().map(from_record).collect()
    }

    async fn scan_ids(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.client()
            .scan_ids_by_id(&self.cols().files, after, limit, Subject::new("file", ""))
            .await
    }

    async fn put_stream(
        &self,
        file: NewFile,
        body: ByteStream,
        expected_sha256: Option<&str>,
    ) -> Result<FileMeta> {
        let pending = file.prepare_stream(validate::now(), expected_sha256)?;
        let mut hashing = Hashing::new(body, MAX_STREAMED_FILE_BYTES);
        // PocketBase cannot store an empty file: find out whether there is a first byte.
        let mut first = None;
        while first.is_none() {
            match hashing.next_chunk().await? {
                Some(chunk) if chunk.is_empty() => {}
                Some(chunk) => first = Some(chunk),
                None => break,
            }
        }
        if first.is_none() {
            let received = hashing
                .received()
                .ok_or_else(|| Error::backend_msg("the upload stream did not end"))?;
            received.check(expected_sha256)?;
            return self.create_empty(pending.finish(&received)).await;
        }
        let id = pending.id.clone();
        let (payload_tx, payload_rx) = oneshot::channel::<String>();
        let outcome: Outcome = Arc::new(Mutex::new(None));
        let upload = Upload {
            hashing,
            first,
            pending,
            expected: expected_sha256.map(str::to_owned),
            payload: Some(payload_tx),
            outcome: outcome.clone(),
            done: false,
        };
        let blob = futures::stream::unfold(upload, Upload::next);
        let fields = futures::stream::once(async move {
            payload_rx
                .await
                .map(Bytes::from)
                .map_err(|_| io::Error::other("the upload was abandoned"))
        });
        let blob_part = Part::stream(Body::wrap_stream(blob))
            .file_name(UPLOAD_NAME)
            .mime_str("application/octet-stream")
            .map_err(|e| Error::backend("cannot build the upload", e))?;
        // PocketBase reads the whole form before it looks at the fields, so they may come last.
        let form = Form::new()
            .part("blob", blob_part)
            .part("@jsonPayload", Part::stream(Body::wrap_stream(fields)));
        let path = format!("/api/collections/{}/records", self.cols().files);
        let sent = self
            .client()
            .send_multipart_stream(Method::POST, &path, form, Subject::new("file", &id))
            .await;
        let seen = outcome.lock().ok().and_then(|mut slot| slot.take());
        match (sent, seen) {
            // The stream's own failure (a hash mismatch, a broken source) explains the abort.
            (_, Some(Err(e))) => Err(e),
            (Ok(_), Some(Ok(meta))) => Ok(meta),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(Error::backend_msg(
                "PocketBase answered before the upload was complete",
            )),
        }
    }

    async fn read_stream(&self, id: &str, range: Option<ByteRange>) -> Result<FileStream> {
        let (meta, stored) = self.record(id).await?;
        let (start, end) = match range {
            Some(r) => r.resolve(meta.size)?,
            None => (0, meta.size),
        };
        if stored.is_empty() {
            let body = stream_bytes(Bytes::new());
            return Ok(FileStream::checked(meta, start, end, body));
        }
        let whole = start == 0 && end == meta.size;
        let resp = self
            .client()
            .download_stream(
                &self.cols().files,
                id,
                &stored,
                (!whole).then_some((start, end)),
                Subject::new("file", id),
            )
            .await?;
        let body: ByteStream = Box::pin(resp.bytes_stream().map(|r| r.map_err(io::Error::other)));
        // The connection keeps receiving while the caller hashes (and forwards) what came.
        let body = read_ahead(body, READ_AHEAD_CHUNKS);
        Ok(FileStream::checked(meta, start, end, body))
    }

    /// PocketBase: the file's own URL with a fresh file token. The token's life is the
    /// server's (`_superusers` `fileToken.duration`, 180 s by default), whatever `ttl` asks;
    /// `expires_at` says when the link stops working.
    async fn download_url(&self, id: &str, ttl: Duration) -> Result<SignedUrl> {
        validate_ttl(ttl)?;
        let (_, stored) = self.record(id).await?;
        if stored.is_empty() {
            return Err(Error::unsupported(
                crate::BACKEND,
                "files.download_url of an empty file (PocketBase stores no bytes for it)",
            ));
        }
        let (token, expires_at) = self.client().new_file_token().await?;
        let url = self.client().file_url(&self.cols().files, id, &stored);
        Ok(SignedUrl {
            url: format!("{url}?token={token}"),
            expires_at: i64::try_from(expires_at).unwrap_or(i64::MAX),
        })
    }
}
