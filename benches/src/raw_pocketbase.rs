//! [`RawHttp`]: the PocketBase adapter's operations as direct reqwest calls to the same
//! endpoints (the records API and the hooks routes with the same parameters; the file download with
//! a file token), so that the report's ratio is the abstraction's overhead.
//!
//! Each call decodes the answer as JSON, as the adapter does; what it leaves out is the
//! abstraction: the `Store`'s dynamic dispatch, the adapter's client layer (token checks,
//! retries, error mapping) and the mapping of records into domain types.
//!
//! Written: get chat, the lists (page 1, deep page, title search, two tags: the adapter's
//! hooks route `/api/chatstore/chat-list`), get file, and
//! [`RawBaseline::import`]: the whole workload through PocketBase's batch API (`/api/batch`,
//! up to 1,000 record creations per request, files as multipart parts), the yardstick of the
//! issue's "bulk import at least 80% of the batch API's throughput". Create chat sends the
//! adapter's operation list to the same transaction route (`/api/chatstore/tx`); put file is
//! the same multipart record creation. Upsert message sends the adapter's one typed
//! `upsert_messages` op (the route reads, applies the blob rules and writes in one
//! transaction); add + remove tag does the adapter's reads, then sends the adapter's versioned
//! transactions (typed [`TxOp`]s, the same enum the adapter builds them from) to the same
//! route.
//!
//! For the streaming section, [`RawBaseline::upload`] is the adapter's streamed upload as one
//! raw multipart record creation (the record's fields, then the bytes streamed from disk) and
//! [`RawBaseline::download`] reads the record and GETs the file with a file token, chunk by
//! chunk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chatstore_core::chats::PreparedChat;
use chatstore_core::files::sha256_hex;
use chatstore_core::transfer::Received;
use chatstore_core::{Error, Result};
use chatstore_core::{FileMeta, NewFile, User, validate};
use chatstore_pocketbase::tx::TxRequest;
use chatstore_pocketbase::{
    Collections, PocketBaseConfig, TxOp, message_record_id, message_write, tag_record_id,
};
use chatstore_pocketbase::{client, rows};
use futures::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::baseline::RawBaseline;
use crate::models::RowPlan;
use crate::ops::{BENCH_TAG, Fixture};
use crate::streaming::{Source, check_digest, hex_digest};
use crate::workload::{PAGE_SIZE, SEARCH_TERM, Workload};

/// Record creations per batch request (the adapter configures PocketBase's batch API for
/// this many).
const BATCH: usize = 1000;

/// File records per batch request: each file is one more multipart part, and PocketBase's
/// Go server refuses a form of more than 1,000 parts (`multipartmaxparts`), which 1,000 files
/// plus `@jsonPayload` exceed (the import failed at scale 10k, 1,000 files, with it).
const FILE_BATCH: usize = 500;

/// PocketBase json fields are sent as serialised text (the adapter's `record::json_value`:
/// given an object, PocketBase would re-encode its numbers through float64).
fn json_text(value: &Value) -> Value {
    Value::String(value.to_string())
}

fn user_body(user: &User) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "email_key": user.email.to_lowercase(),
        "name": user.name,
        "role": user.role,
        "profile_image_url": user.profile_image_url,
        "info": user.info.as_ref().map(json_text),
        "settings": user.settings.as_ref().map(json_text),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "last_active_at": user.last_active_at,
    })
}

fn chat_body(p: &PreparedChat) -> Value {
    let chat = &p.chat;
    json!({
        "id": chat.id,
        "user_id": chat.user_id,
        "title": chat.title,
        "title_lower": chat.title.to_lowercase(),
        "chat": json_text(&chat.chat),
        "meta": json_text(&Value::Object(chat.meta.clone())),
        "archived": chat.archived,
        "pinned": chat.pinned,
        "internal": chat.is_internal(),
        "folder_id": chat.folder_id.clone().unwrap_or_default(),
        "share_id": chat.share_id.clone().unwrap_or_default(),
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
        "version": 0,
        "tags": chat.tags.iter().map(|t| tag_record_id(&chat.user_id, t)).collect::<Vec<_>>(),
    })
}

fn message_body(m: &chatstore_core::Message) -> Value {
    let doc = serde_json::to_value(m).unwrap_or(Value::Null);
    json!({"chat_id": m.chat_id, "msg_id": m.id, "key": m.key(), "created_at": m.created_at,
           "doc": json_text(&doc)})
}

fn file_body(meta: &FileMeta) -> Value {
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
        "doc": json_text(&doc),
        "created_at": meta.created_at,
        "updated_at": meta.updated_at,
    })
}

/// How long a file token is reused (PocketBase's file tokens live a few minutes).
const FILE_TOKEN_REUSE: Duration = Duration::from_secs(60);

/// The PocketBase adapter's operations as direct HTTP calls (see the module docs).
#[derive(Debug)]
pub struct RawHttp {
    http: reqwest::Client,
    /// For streamed file bytes: no limit on a whole transfer, as the adapter's transfer client.
    transfers: reqwest::Client,
    base: String,
    token: String,
    cols: Collections,
    file_token: Mutex<Option<(String, Instant)>>,
}

fn http_err(what: &'static str) -> impl FnOnce(reqwest::Error) -> Error {
    move |e| Error::backend(format!("raw HTTP: {what}"), e)
}

impl RawHttp {
    /// Logs in as the config's superuser and works on the collections `cols`.
    pub async fn connect(config: &PocketBaseConfig, cols: &Collections) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(http_err("client"))?;
        let transfers = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout.max(Duration::from_secs(60)))
            .build()
            .map_err(http_err("client"))?;
        let base = config.url.trim_end_matches('/').to_owned();
        let answer: Value = http
            .post(format!(
                "{base}/api/collections/_superusers/auth-with-password"
            ))
            .json(&json!({"identity": config.admin_email, "password": config.admin_password}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("login"))?
            .json()
            .await
            .map_err(http_err("login answer"))?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::backend_msg("raw HTTP: login answer without a token"))?
            .to_owned();
        Ok(RawHttp {
            http,
            transfers,
            base,
            token,
            cols: cols.clone(),
            file_token: Mutex::new(None),
        })
    }

    /// `POST /api/chatstore/tx` with typed operations, as the adapter sends them.
    async fn tx(&self, ops: &[TxOp]) -> Result<Value> {
        self.http
            .post(format!("{}/api/chatstore/tx", self.base))
            .header("Authorization", &self.token)
            .json(&TxRequest { ops })
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("tx"))?
            .json()
            .await
            .map_err(http_err("tx answer"))
    }

    /// Chat `id` with its tag relations expanded, as the adapter reads it for tag changes:
    /// its tag ids, owner and version.
    async fn chat_tags(&self, id: &str) -> Result<(Vec<String>, String, i64)> {
        let r = self
            .get_json(
                &format!("/api/collections/{}/records/{id}", self.cols.chats),
                &[("expand", "tags".to_owned())],
            )
            .await?;
        let tags = r["expand"]["tags"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| t["tag_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let user = r["user_id"].as_str().unwrap_or_default().to_owned();
        Ok((tags, user, r["version"].as_i64().unwrap_or(0)))
    }

    /// The transaction that sets chat `id`'s tags (ids of `user`) at `version` + 1.
    fn set_tags_op(&self, id: &str, user: &str, tags: &[String], version: i64) -> TxOp {
        let ids: Vec<String> = tags.iter().map(|t| tag_record_id(user, t)).collect();
        TxOp::Update {
            collection: self.cols.chats.clone(),
            entity: "chat",
            id: id.to_owned(),
            fields: json!({"tags": ids, "version": version + 1}),
            return_record: false,
        }
    }

    fn expect_version(&self, id: &str, version: i64) -> TxOp {
        TxOp::ExpectVersion {
            collection: self.cols.chats.clone(),
            entity: "chat",
            id: id.to_owned(),
            version,
        }
    }

    async fn get_json(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.http
            .get(format!("{}{path}", self.base))
            .header("Authorization", &self.token)
            .query(query)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("GET"))?
            .json()
            .await
            .map_err(http_err("GET answer"))
    }

    /// The heavy user's chat list page through the hooks route `chat-list`, as the adapter's
    /// `list_page` asks for it: the tag filter's tag record ids when given, the title filter
    /// lower-cased, and `skip_total` unless the total is wanted.
    async fn list(
        &self,
        fx: &Fixture,
        offset: u64,
        tags: &[String],
        title: Option<&str>,
        with_total: bool,
    ) -> Result<()> {
        let user = fx.heavy_user_id.as_str();
        let mut query = vec![
            ("chats", self.cols.chats.clone()),
            ("tags_collection", self.cols.tags.clone()),
            ("user", user.to_owned()),
        ];
        if !tags.is_empty() {
            let ids: Vec<String> = tags
                .iter()
                .map(|t| tag_record_id(user, &chatstore_core::tag_id(t)))
                .collect();
            query.push(("tags", json!(ids).to_string()));
        }
        query.push(("archived", "0".to_owned()));
        if let Some(t) = title {
            query.push(("title", t.to_lowercase()));
        }
        query.extend([
            ("order", "updated".to_owned()),
            ("limit", PAGE_SIZE.to_string()),
            ("offset", offset.to_string()),
        ]);
        if !with_total {
            query.push(("skip_total", "1".to_owned()));
        }
        std::hint::black_box(self.get_json("/api/chatstore/chat-list", &query).await?);
        Ok(())
    }

    /// Creates `bodies` in `collection` through the batch API, [`BATCH`] per request.
    async fn batch_create(
        &self,
        collection: &str,
        bodies: Vec<Value>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let url = format!("/api/collections/{collection}/records?fields=id");
        for chunk in bodies.chunks(BATCH) {
            let requests: Vec<Value> = chunk
                .iter()
                .map(|body| json!({"method": "POST", "url": url, "body": body}))
                .collect();
            self.http
                .post(format!("{}/api/batch", self.base))
                .header("Authorization", &self.token)
                .json(&json!({ "requests": requests }))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(http_err("batch"))?;
            progress(chunk.len() as u64);
        }
        Ok(())
    }

    async fn file_token(&self) -> Result<String> {
        let mut guard = self.file_token.lock().await;
        if let Some((token, at)) = guard.as_ref()
            && at.elapsed() < FILE_TOKEN_REUSE
        {
            return Ok(token.clone());
        }
        let answer: Value = self
            .http
            .post(format!("{}/api/files/token", self.base))
            .header("Authorization", &self.token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("file token"))?
            .json()
            .await
            .map_err(http_err("file token answer"))?;
        let token = answer
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::backend_msg("raw HTTP: file token answer without a token"))?
            .to_owned();
        *guard = Some((token.clone(), Instant::now()));
        Ok(token)
    }
}

#[async_trait]
impl RawBaseline for RawHttp {
    fn name(&self) -> &'static str {
        "raw HTTP"
    }

    async fn import(&self, workload: &Workload, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        // The records the adapter's load writes (users, tag rows, chats with their tag
        // relations, message rows, files with their bytes), prepared by core as the adapter
        // prepares them, created through the batch API.
        self.import_chats(workload, progress).await?;
        let now = validate::now();
        let files: Vec<_> = (0..workload.files()).map(|i| workload.file(i)).collect();
        let url = format!("/api/collections/{}/records?fields=id", self.cols.files);
        for chunk in files.chunks(FILE_BATCH) {
            let metas = chunk
                .iter()
                .map(|f| f.prepare(now))
                .collect::<Result<Vec<_>>>()?;
            let requests: Vec<Value> = metas
                .iter()
                .map(|m| json!({"method": "POST", "url": url, "body": file_body(m)}))
                .collect();
            // PocketBase batch: the files of request N go in the parts `requests.N.<field>`.
            let mut form =
                Form::new().text("@jsonPayload", json!({ "requests": requests }).to_string());
            for (n, f) in chunk.iter().enumerate() {
                if !f.bytes.is_empty() {
                    form = form.part(
                        format!("requests.{n}.blob"),
                        Part::bytes(f.bytes.clone()).file_name("blob.bin"),
                    );
                }
            }
            self.http
                .post(format!("{}/api/batch", self.base))
                .header("Authorization", &self.token)
                .multipart(form)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(http_err("file batch"))?;
            progress(chunk.len() as u64);
        }
        Ok(())
    }

    async fn import_chats(
        &self,
        workload: &Workload,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let now = validate::now();
        let users = (0..workload.users())
            .map(|i| workload.user(i).into_user(now).map(|u| user_body(&u)))
            .collect::<Result<Vec<_>>>()?;
        self.batch_create(&self.cols.users, users, progress).await?;
        let chats = (0..workload.chats())
            .map(|i| workload.chat(i).prepare(now))
            .collect::<Result<Vec<_>>>()?;
        let mut tags = std::collections::BTreeMap::new();
        for p in &chats {
            for (id, name) in &p.tags {
                let record = tag_record_id(&p.chat.user_id, id);
                tags.entry(record.clone()).or_insert_with(|| {
                    json!({"id": record, "user_id": p.chat.user_id, "tag_id": id,
                           "name": name, "meta": null})
                });
            }
        }
        self.batch_create(&self.cols.tags, tags.into_values().collect(), &|_| {})
            .await?;
        let messages: Vec<Value> = chats
            .iter()
            .flat_map(|p| &p.messages)
            .map(|m| {
                let mut body = message_body(m);
                body["id"] = json!(message_record_id(&m.chat_id, &m.id));
                body
            })
            .collect();
        let chat_bodies = chats.iter().map(chat_body).collect();
        self.batch_create(&self.cols.chats, chat_bodies, progress)
            .await?;
        self.batch_create(&self.cols.messages, messages, &|_| {})
            .await?;
        Ok(())
    }

    async fn create_chat(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The adapter's operation list for one chat (its tag rows ensured, the chat record with
        // its tag relations, one upsert per message), prepared by core as the adapter does,
        // sent to the same all-or-nothing transaction route.
        let p = fx.new_chat(i).prepare(validate::now())?;
        let chat = &p.chat;
        let mut ops = Vec::new();
        for (id, name) in &p.tags {
            ops.push(TxOp::Ensure {
                collection: self.cols.tags.clone(),
                entity: "tag",
                id: tag_record_id(&chat.user_id, id),
                fields: json!({"user_id": chat.user_id, "tag_id": id, "name": name, "meta": null}),
            });
        }
        let mut fields = chat_body(&p);
        if let Some(body) = fields.as_object_mut() {
            body.remove("id");
        }
        ops.push(TxOp::Create {
            collection: self.cols.chats.clone(),
            entity: "chat",
            id: chat.id.clone(),
            fields,
        });
        for m in &p.messages {
            ops.push(TxOp::Upsert {
                collection: self.cols.messages.clone(),
                entity: "message",
                id: message_record_id(&m.chat_id, &m.id),
                fields: message_body(m),
            });
        }
        std::hint::black_box(self.tx(&ops).await?);
        Ok(())
    }

    async fn upsert_message(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The adapter's one request: the message prepared by core's rules as the adapter
        // prepares it, then the typed `upsert_messages` op on the same transaction route
        // (which reads the chat and the stored message, writes the blob by core's rules and
        // upserts the record in one transaction).
        let new = fx.new_message(i);
        let (item, _) = message_write(&new.chat_id, &new, validate::now())?;
        let ops = [TxOp::UpsertMessages {
            collection: self.cols.chats.clone(),
            entity: "chat",
            messages: self.cols.messages.clone(),
            chat_id: new.chat_id.clone(),
            items: vec![item],
            modelled: &chatstore_core::blob::MESSAGE_KEYS,
        }];
        std::hint::black_box(self.tx(&ops).await?);
        Ok(())
    }

    async fn add_remove_tag(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The adapter's two calls: each reads the chat with its tags, then one versioned
        // transaction; adding ensures the tag row, removing drops it when no chat of the
        // user carries it any more.
        let chat = fx.chat_id(i);
        let tag = chatstore_core::tag_id(BENCH_TAG);
        let (mut tags, user, version) = self.chat_tags(chat).await?;
        let mut ops = vec![self.expect_version(chat, version)];
        if !tags.contains(&tag) {
            ops.push(TxOp::Ensure {
                collection: self.cols.tags.clone(),
                entity: "tag",
                id: tag_record_id(&user, &tag),
                fields: json!({"user_id": user, "tag_id": tag, "name": BENCH_TAG, "meta": null}),
            });
            tags.push(tag.clone());
        }
        tags.sort();
        ops.push(self.set_tags_op(chat, &user, &tags, version));
        std::hint::black_box(self.tx(&ops).await?);

        let (tags, user, version) = self.chat_tags(chat).await?;
        let kept: Vec<String> = tags.into_iter().filter(|t| *t != tag).collect();
        let ops = [
            self.expect_version(chat, version),
            self.set_tags_op(chat, &user, &kept, version),
            TxOp::DropOrphanTags {
                collection: self.cols.tags.clone(),
                chats: self.cols.chats.clone(),
                ids: vec![tag_record_id(&user, &tag)],
            },
        ];
        std::hint::black_box(self.tx(&ops).await?);
        Ok(())
    }

    async fn put_file(&self, fx: &Fixture, i: u64) -> Result<()> {
        let file = fx.new_file(i);
        let meta = file.prepare(validate::now())?;
        let form = Form::new()
            .text("@jsonPayload", file_body(&meta).to_string())
            .part("blob", Part::bytes(file.bytes).file_name("blob.bin"));
        let answer: Value = self
            .http
            .post(format!(
                "{}/api/collections/{}/records",
                self.base, self.cols.files
            ))
            .header("Authorization", &self.token)
            .multipart(form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("put file"))?
            .json()
            .await
            .map_err(http_err("put file answer"))?;
        std::hint::black_box(answer);
        Ok(())
    }

    async fn list_by_two_tags(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, 0, &fx.two_tags, None, false).await
    }

    async fn get_chat(&self, fx: &Fixture, i: u64) -> Result<()> {
        let path = format!(
            "/api/collections/{}/records/{}",
            self.cols.chats,
            fx.chat_id(i)
        );
        std::hint::black_box(
            self.get_json(&path, &[("expand", "tags".to_owned())])
                .await?,
        );
        Ok(())
    }

    async fn list_chats_first_page(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, 0, &[], None, false).await
    }

    async fn list_chats_with_total(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, 0, &[], None, true).await
    }

    async fn rows(&self, plan: &RowPlan) -> Result<()> {
        // Each read the typed call made, as the row store sends it: one records-API list with
        // the adapter's filter and sort, `skipTotal`, the same pages (a count: one item and
        // the total); the answers are parsed, not decoded into rows.
        for call in plan {
            let (filter, sort) = rows::exact_list(call.table, &call.query)?.ok_or_else(|| {
                Error::backend_msg("raw HTTP: a row read the adapter splits or checks in process")
            })?;
            let path = format!("/api/collections/{}/records", self.cols.rows(call.table));
            if call.count {
                let query = [
                    ("page", "1".to_owned()),
                    ("perPage", "1".to_owned()),
                    ("filter", filter),
                    ("fields", "id".to_owned()),
                ];
                std::hint::black_box(self.get_json(&path, &query).await?);
                continue;
            }
            let (offset, limit) = (call.query.offset, call.query.limit);
            if limit == Some(0) {
                continue;
            }
            let per_page = client::page_size(offset, limit);
            let (mut page, mut skip, mut got) = (offset / per_page + 1, offset % per_page, 0);
            loop {
                let query = [
                    ("page", page.to_string()),
                    ("perPage", per_page.to_string()),
                    ("filter", filter.clone()),
                    ("sort", sort.clone()),
                    ("skipTotal", "1".to_owned()),
                ];
                let answer = self.get_json(&path, &query).await?;
                let n = answer["items"].as_array().map_or(0, Vec::len) as u64;
                got += n.saturating_sub(skip);
                skip = 0;
                std::hint::black_box(answer);
                if n < per_page || limit.is_some_and(|l| got >= l) {
                    break;
                }
                page += 1;
            }
        }
        Ok(())
    }

    async fn list_chats_deep_page(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, fx.deep_offset, &[], None, false).await
    }

    async fn search_title(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, 0, &[], Some(SEARCH_TERM), false).await
    }

    async fn upload(&self, id: &str, source: &Source, user_id: &str) -> Result<()> {
        // The adapter's streamed upload: one multipart record creation on the same collection,
        // the record's fields (core's, for these bytes) in `@jsonPayload`, the bytes streamed
        // from disk as the `blob` part. The raw client knows the hash beforehand (it checks
        // the bytes it sent against it); the adapter computes it on the way and sends the
        // fields after the bytes.
        let meta = NewFile::new(user_id, "stream.bin", Vec::new())
            .with_id(id)
            .prepare_upload(validate::now())?
            .finish(&Received {
                size: source.size,
                sha256: source.sha256.clone(),
            });
        let hashed = Arc::new(std::sync::Mutex::new(Sha256::new()));
        let on_the_way = hashed.clone();
        let body = source.stream().await?.inspect(move |chunk| {
            if let (Ok(chunk), Ok(mut hasher)) = (chunk, on_the_way.lock()) {
                hasher.update(chunk);
            }
        });
        let blob = Part::stream(reqwest::Body::wrap_stream(body))
            .file_name("blob.bin")
            .mime_str("application/octet-stream")
            .map_err(http_err("upload part"))?;
        let form = Form::new()
            .text("@jsonPayload", file_body(&meta).to_string())
            .part("blob", blob);
        let answer: Value = self
            .transfers
            .post(format!(
                "{}/api/collections/{}/records",
                self.base, self.cols.files
            ))
            .header("Authorization", &self.token)
            .multipart(form)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("upload"))?
            .json()
            .await
            .map_err(http_err("upload answer"))?;
        std::hint::black_box(answer);
        let digest = hashed
            .lock()
            .map(|h| hex_digest(h.clone()))
            .unwrap_or_default();
        check_digest("upload", &digest, source)
    }

    async fn download(&self, id: &str) -> Result<u64> {
        // The adapter's streamed read: the record (for the stored name), then a GET of the
        // file with a file token, its body taken chunk by chunk and hashed (a checked read).
        let path = format!("/api/collections/{}/records/{id}", self.cols.files);
        let record = self.get_json(&path, &[]).await?;
        let blob = record
            .get("blob")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let token = self.file_token().await?;
        let mut body = self
            .transfers
            .get(format!(
                "{}/api/files/{}/{id}/{blob}",
                self.base, self.cols.files
            ))
            .query(&[("token", token)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("download"))?
            .bytes_stream();
        let mut n = 0u64;
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(http_err("download body"))?;
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        std::hint::black_box(hex_digest(hasher));
        Ok(n)
    }

    async fn remove_upload(&self, id: &str) -> Result<()> {
        self.http
            .delete(format!(
                "{}/api/collections/{}/records/{id}",
                self.base, self.cols.files
            ))
            .header("Authorization", &self.token)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("delete upload"))
            .map(drop)
    }

    async fn get_file(&self, fx: &Fixture, i: u64) -> Result<()> {
        // The operation is `files.get` then `files.read`, two calls that each read the record:
        // the baseline reads it twice too, then downloads the bytes and checks their hash.
        let id = fx.file_id(i);
        let path = format!("/api/collections/{}/records/{id}", self.cols.files);
        std::hint::black_box(self.get_json(&path, &[]).await?);
        let record = self.get_json(&path, &[]).await?;
        let blob = record
            .get("blob")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let token = self.file_token().await?;
        let bytes = self
            .http
            .get(format!(
                "{}/api/files/{}/{id}/{blob}",
                self.base, self.cols.files
            ))
            .query(&[("token", token)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http_err("download"))?
            .bytes()
            .await
            .map_err(http_err("download body"))?;
        // The adapter checks the bytes against the record's `sha256` field.
        let sha256 = record
            .get("sha256")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if sha256_hex(&bytes) != sha256 {
            return Err(Error::backend_msg("raw HTTP: file bytes do not match"));
        }
        std::hint::black_box(bytes);
        Ok(())
    }
}
