//! Files in the `owui_files` collection: the bytes in the protected file field `blob` (size
//! limit raised to chatstore's `MAX_FILE_BYTES`), the original name and the sha256 in fields
//! of their own (PocketBase mangles stored file names). Reads use a file token and check the
//! sha256 of what comes back.

use async_trait::async_trait;
use chatstore_core::files::verify;
use chatstore_core::{FileMeta, FileQuery, FileRepo, NewFile, Page, Result, validate};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Map, Value, json};

use crate::PocketBase;
use crate::client::ListQuery;
use crate::error::{Subject, malformed};
use crate::{filter, record};

/// PocketBase: the name the bytes are uploaded under (it is mangled anyway; the original
/// name lives in `filename`).
const UPLOAD_NAME: &str = "blob.bin";

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

fn bytes_part(bytes: &[u8]) -> Part {
    Part::bytes(bytes.to_vec())
        .file_name(UPLOAD_NAME)
        .mime_str("application/octet-stream")
        .unwrap_or_else(|_| Part::bytes(bytes.to_vec()).file_name(UPLOAD_NAME))
}

#[async_trait]
impl FileRepo for PocketBase {
    async fn put(&self, file: NewFile) -> Result<FileMeta> {
        let meta = file.prepare(validate::now())?;
        let payload = body(&meta).to_string();
        let path = format!("/api/collections/{}/records", self.cols().files);
        self.client()
            .send_multipart(
                Method::POST,
                &path,
                || {
                    let form = Form::new().text("@jsonPayload", payload.clone());
                    // PocketBase cannot store an empty file: no bytes, no file.
                    if file.bytes.is_empty() {
                        form
                    } else {
                        form.part("blob", bytes_part(&file.bytes))
                    }
                },
                Subject::new("file", &meta.id),
            )
            .await?;
        Ok(meta)
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
        let r = self
            .client()
            .get_record(&self.cols().files, id, None, subject)
            .await?;
        let meta = from_record(&r)?;
        let stored = r.get("blob").and_then(Value::as_str).unwrap_or_default();
        let bytes = if stored.is_empty() {
            Vec::new()
        } else {
            self.client()
                .download(&self.cols().files, id, stored, subject)
                .await?
        };
        verify(&meta, &bytes)?;
        Ok(bytes)
    }

    async fn list(&self, query: &FileQuery) -> Result<Page<FileMeta>> {
        query.page.validate()?;
        if let Some(user) = &query.user_id {
            validate::id("user_id", user)?;
        }
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

    async fn delete(&self, id: &str) -> Result<()> {
        self.client()
            .delete_record(&self.cols().files, id, Subject::new("file", id))
            .await
    }

    async fn delete_for_user(&self, user_id: &str) -> Result<u64> {
        validate::id("user_id", user_id)?;
        let ops = vec![
            json!({"op": "delete_where", "collection": self.cols().files,
                              "field": "user_id", "value": user_id}),
        ];
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
}
