//! The HTTP client: one keep-alive connection pool, superuser auth with refresh before expiry,
//! retries with backoff on idempotent calls, and the PocketBase endpoints chatstore uses
//! (records, batch, files, and the chatstore routes of `pb_hooks/`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::{ExponentialBuilder, Retryable};
use base64::Engine;
use bytes::Bytes;
use chatstore_core::{Error, ErrorKind, Result};
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::error::{self, Subject};
use crate::tx::{TxOp, TxRequest};

/// Refresh the superuser token when it expires within this many seconds.
const REFRESH_MARGIN_SECS: u64 = 600;
/// PocketBase: a file token lasts 180 s by default (the `_superusers` collection's
/// `fileToken.duration`); a cached one is reused until this many seconds before its `exp`.
const FILE_TOKEN_MARGIN_SECS: u64 = 60;
/// The longest a file transfer waits for the server without a byte moving.
const TRANSFER_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// PocketBase: `perPage` is clamped to 1000.
pub const MAX_PER_PAGE: u64 = 1000;
/// The largest body sent to the batch API, on a server whose batch `maxBodySize` is its
/// default (0: 128 MiB). A larger body has its connection cut: a refusal that reads as a
/// server gone, which a caller would retry for ever. A server set to take less gets
/// proportionally less ([`Client::batch_max_bytes`]).
pub const BATCH_MAX_BYTES: usize = 100 << 20;
/// PocketBase's batch `maxBodySize` when the setting is 0.
const SERVER_BATCH_BODY_DEFAULT: u64 = 128 << 20;
/// The largest body sent to the tx route (`pb_hooks/chatstore.pb.js` sets its body limit to
/// 512 MiB; a larger body has its connection cut too).
pub const TX_MAX_BYTES: usize = 500 << 20;

#[derive(Clone)]
pub(crate) struct Token {
    value: String,
    expires_at: u64,
}

/// The token itself is a credential: only its expiry is shown.
impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("value", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What to list from a collection.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// A filter built with [`crate::filter`] only.
    pub filter: String,
    /// Sort fields (`-updated_at,id`).
    pub sort: String,
    /// Relations to expand.
    pub expand: Option<&'static str>,
    /// Only these fields of each record (`fields=`); all when `None`.
    pub fields: Option<&'static str>,
    /// Skip the COUNT query (the total is then not known).
    pub skip_total: bool,
}

/// A PocketBase client authenticated as a superuser.
pub struct Client {
    http: reqwest::Client,
    /// For file bytes: no limit on a whole transfer (a large file takes long), only on the
    /// connection and on each wait for data.
    transfers: reqwest::Client,
    base: String,
    email: String,
    password: String,
    token: Mutex<Option<Token>>,
    file_token: Mutex<Option<Token>>,
    /// See [`Client::batch_max_bytes`].
    batch_max_bytes: AtomicUsize,
}

/// Where and as whom; never the password or a token.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("email", &self.email)
            .field("password", &"***")
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JSON request body, encoded once (a call sent again, after a new login, sends the same
/// bytes).
fn encode(body: &Value) -> Result<Bytes> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| Error::invalid(format!("a request body does not serialise: {e}")))
}

/// The refusal of a body larger than the server takes, before anything is sent.
pub(crate) fn too_large(what: &str, bytes: usize, taker: &str, max: usize) -> Error {
    Error::invalid(format!(
        "{what} is {:.1} MiB, more than {taker} takes in one request ({:.1} MiB): write \
         fewer or smaller records at once",
        mib(bytes),
        mib(max)
    ))
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// The `exp` claim of a JWT, without checking its signature (PocketBase checks it).
fn jwt_expiry(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp").and_then(Value::as_u64)
}

/// Whether a token expiring at `expires_at` is refreshed at `now` (shortly before expiry).
fn needs_refresh(expires_at: u64, now: u64) -> bool {
    expires_at <= now.saturating_add(REFRESH_MARGIN_SECS)
}

fn backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(4)
        .with_jitter()
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8090`); it logs in lazily.
    pub fn new(base: &str, email: &str, password: &str, timeout: Duration) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::backend("cannot build the HTTP client", e))?;
        let transfers = reqwest::Client::builder()
            .connect_timeout(timeout)
            // PocketBase answers a large upload only after copying it into its storage.
            .read_timeout(timeout.max(TRANSFER_IDLE_TIMEOUT))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::backend("cannot build the HTTP client", e))?;
        Ok(Client {
            http,
            transfers,
            base: base.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
            password: password.to_owned(),
            token: Mutex::new(None),
            file_token: Mutex::new(None),
            batch_max_bytes: AtomicUsize::new(BATCH_MAX_BYTES),
        })
    }

    /// The largest body this client sends to the batch API: [`BATCH_MAX_BYTES`] of the
    /// default 128 MiB, the same share of a smaller `maxBodySize` the server was set to (read
    /// at start-up). Larger writes go through the tx route, or are refused before sending.
    pub fn batch_max_bytes(&self) -> usize {
        self.batch_max_bytes.load(Ordering::Relaxed)
    }

    /// Takes the server's batch `maxBodySize` setting (0: PocketBase's default).
    pub(crate) fn set_server_batch_body_limit(&self, max_body_size: u64) {
        let server = if max_body_size == 0 {
            SERVER_BATCH_BODY_DEFAULT
        } else {
            max_body_size
        };
        let share = server.saturating_mul(BATCH_MAX_BYTES as u64) / SERVER_BATCH_BODY_DEFAULT;
        let bytes = usize::try_from(share)
            .unwrap_or(usize::MAX)
            .min(BATCH_MAX_BYTES);
        self.batch_max_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn login(&self) -> Result<Token> {
        let url = format!(
            "{}/api/collections/_superusers/auth-with-password",
            self.base
        );
        let body = json!({"identity": self.email, "password": self.password});
        let call = || async {
            let resp = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(error::from_transport)?;
            let status = resp.status();
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                let err = error::from_status(status.as_u16(), value, Subject::new("login", ""));
                if err.is_retryable() {
                    return Err(err);
                }
                return Err(Error::backend_msg(format!(
                    "PocketBase superuser login as {:?} failed ({status}): check \
                     CHATSTORE_POCKETBASE_ADMIN_EMAIL and CHATSTORE_POCKETBASE_ADMIN_PASSWORD",
                    self.email
                )));
            }
            token_of(&value)
        };
        call.retry(backoff())
            .when(|e: &Error| e.is_retryable())
            .await
    }

    async fn refresh(&self, current: &str) -> Result<Token> {
        let url = format!("{}/api/collections/_superusers/auth-refresh", self.base);
        let resp = self
            .http
            .post(&url)
            .header("Authorization", current)
            .send()
            .await
            .map_err(error::from_transport)?;
        if !resp.status().is_success() {
            return self.login().await;
        }
        let value: Value = resp.json().await.map_err(error::from_transport)?;
        token_of(&value)
    }

    /// A valid superuser token: logs in when there is none, refreshes it shortly before it
    /// expires.
    async fn token(&self) -> Result<String> {
        let mut guard = self.token.lock().await;
        let token = match guard.take() {
            None => self.login().await?,
            Some(t) if needs_refresh(t.expires_at, now_secs()) => self.refresh(&t.value).await?,
            Some(t) => t,
        };
        let value = token.value.clone();
        *guard = Some(token);
        Ok(value)
    }

    /// Refreshes the superuser token now (it is otherwise refreshed shortly before it expires);
    /// logs in again when PocketBase refuses the refresh.
    pub async fn refresh_token(&self) -> Result<()> {
        let mut guard = self.token.lock().await;
        let token = match guard.take() {
            Some(t) => self.refresh(&t.value).await?,
            None => self.login().await?,
        };
        *guard = Some(token);
        Ok(())
    }

    /// This client's superuser token, unless a call is using it right now.
    pub(crate) fn token_now(&self) -> Option<Token> {
        self.token.try_lock().ok().and_then(|t| t.clone())
    }

    /// This client, starting with `token` (from [`Client::token_now`] of a client of the same
    /// server and superuser) instead of logging in: a login hashes the password on the server,
    /// tens of milliseconds of its CPU.
    pub(crate) fn with_token(mut self, token: Option<Token>) -> Self {
        self.token = Mutex::new(token);
        self
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Checks the credentials now (and caches the token).
    pub async fn authenticate(&self) -> Result<()> {
        self.token().await.map(|_| ())
    }

    async fn send_once(
        &self,
        method: &Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Bytes>,
        subject: Subject<'_>,
    ) -> Result<Value> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut req = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("Authorization", token)
                .query(query);
            if let Some(body) = body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let resp = req.send().await.map_err(error::from_transport)?;
            let status = resp.status();
            let bytes = resp.bytes().await.map_err(error::from_transport)?;
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            };
            if status.is_success() {
                return Ok(value);
            }
            if attempt == 0 && error::token_refused(status.as_u16(), &value) {
                // A token invalidated on the server (the superuser's password changed): log in
                // again once. Nothing was written: a refused batch is rolled back whole.
                self.forget_token().await;
                continue;
            }
            return Err(error::from_status(status.as_u16(), value, subject));
        }
        Err(Error::backend_msg(
            "PocketBase refused the superuser token twice",
        ))
    }

    /// Sends a JSON request. `idempotent` calls are retried with backoff while PocketBase is
    /// unavailable.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        subject: Subject<'_>,
        idempotent: bool,
    ) -> Result<Value> {
        let body = body.map(encode).transpose()?;
        let body = body.as_ref();
        if !idempotent {
            return self.send_once(&method, path, query, body, subject).await;
        }
        let call = || self.send_once(&method, path, query, body, subject);
        call.retry(backoff())
            .when(|e: &Error| e.is_retryable())
            .await
    }

    /// `GET /api/collections/{collection}/records/{id}`.
    pub async fn get_record(
        &self,
        collection: &str,
        id: &str,
        expand: Option<&str>,
        subject: Subject<'_>,
    ) -> Result<Value> {
        if id.is_empty() {
            return Err(Error::not_found(subject.entity, id));
        }
        let path = format!("/api/collections/{collection}/records/{}", path_segment(id));
        let query: Vec<(&str, String)> = expand
            .map(|e| ("expand", e.to_owned()))
            .into_iter()
            .collect();
        self.send(Method::GET, &path, &query, None, subject, true)
            .await
    }

    /// The record, or `None` when it does not exist.
    pub async fn find_record(
        &self,
        collection: &str,
        id: &str,
        expand: Option<&str>,
        subject: Subject<'_>,
    ) -> Result<Option<Value>> {
        match self.get_record(collection, id, expand, subject).await {
            Ok(v) => Ok(Some(v)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /api/collections/{collection}/records` with a JSON body.
    pub async fn create_record(
        &self,
        collection: &str,
        body: &Value,
        subject: Subject<'_>,
    ) -> Result<Value> {
        let path = format!("/api/collections/{collection}/records");
        self.send(Method::POST, &path, &[], Some(body), subject, false)
            .await
    }

    /// `PATCH /api/collections/{collection}/records/{id}`.
    pub async fn update_record(
        &self,
        collection: &str,
        id: &str,
        body: &Value,
        subject: Subject<'_>,
    ) -> Result<Value> {
        let path = format!("/api/collections/{collection}/records/{}", path_segment(id));
        self.send(Method::PATCH, &path, &[], Some(body), subject, false)
            .await
    }

    /// `DELETE /api/collections/{collection}/records/{id}`.
    pub async fn delete_record(
        &self,
        collection: &str,
        id: &str,
        subject: Subject<'_>,
    ) -> Result<()> {
        if id.is_empty() {
            return Err(Error::not_found(subject.entity, id));
        }
        let path = format!("/api/collections/{collection}/records/{}", path_segment(id));
        self.send(Method::DELETE, &path, &[], None, subject, false)
            .await
            .map(|_| ())
    }

    /// Items `offset .. offset + limit` of a list (all the rest when `limit` is `None`) and the
    /// total (0 when `skip_total`). PocketBase pages by `page`/`perPage` (at most 1000), so the
    /// range is read from as many pages as it spans.
    pub async fn list(
        &self,
        collection: &str,
        q: &ListQuery,
        offset: u64,
        limit: Option<u64>,
        subject: Subject<'_>,
    ) -> Result<(Vec<Value>, u64)> {
        if limit == Some(0) {
            return Ok((Vec::new(), 0));
        }
        let per_page = page_size(offset, limit);
        let mut page = offset / per_page + 1;
        let mut skip = offset % per_page;
        let path = format!("/api/collections/{collection}/records");
        let mut out = Vec::new();
        let mut total = None;
        loop {
            let mut query = vec![
                ("page", page.to_string()),
                ("perPage", per_page.to_string()),
            ];
            if !q.filter.is_empty() {
                query.push(("filter", q.filter.clone()));
            }
            if !q.sort.is_empty() {
                query.push(("sort", q.sort.clone()));
            }
            if let Some(expand) = q.expand {
                query.push(("expand", expand.to_owned()));
            }
            if let Some(fields) = q.fields {
                query.push(("fields", fields.to_owned()));
            }
            if q.skip_total || total.is_some() {
                query.push(("skipTotal", "1".to_owned()));
            }
            let resp = self
                .send(Method::GET, &path, &query, None, subject, true)
                .await?;
            if total.is_none() && !q.skip_total {
                let t = resp
                    .get("totalItems")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| error::malformed("a list without totalItems"))?;
                total = Some(t);
            }
            let items = match resp {
                Value::Object(mut map) => match map.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => return Err(error::malformed("a list without items")),
                },
                _ => return Err(error::malformed("a list without items")),
            };
            let full = items.len() as u64 == per_page;
            out.extend(items.into_iter().skip(skip as usize));
            skip = 0;
            if limit.is_some_and(|l| out.len() as u64 >= l) || !full {
                break;
            }
            page += 1;
        }
        if let Some(l) = limit {
            out.truncate(usize::try_from(l).unwrap_or(usize::MAX));
        }
        Ok((out, total.unwrap_or(0)))
    }

    /// The first `n` records of a list (no total): one page of a keyset walk.
    pub async fn first(
        &self,
        collection: &str,
        q: &ListQuery,
        n: u64,
        subject: Subject<'_>,
    ) -> Result<Vec<Value>> {
        Ok(self.list(collection, q, 0, Some(n), subject).await?.0)
    }

    /// Up to `limit` records of `collection` with an id greater than `after`, ordered by id:
    /// the keyset scan behind every repository's `scan`. A limit over one page is read page
    /// after page by id too (see [`keyset_pages`]).
    pub async fn scan_by_id(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        expand: Option<&'static str>,
        subject: Subject<'_>,
    ) -> Result<Vec<Value>> {
        self.scan_fields(collection, after, limit, expand, None, subject)
            .await
    }

    /// The ids [`scan_by_id`](Self::scan_by_id) would return, read without the records' other
    /// fields: a caller finds the id of a record that does not decode this way (a migration
    /// sets that record aside and goes on).
    pub async fn scan_ids_by_id(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        subject: Subject<'_>,
    ) -> Result<Vec<String>> {
        self.scan_fields(collection, after, limit, None, Some("id"), subject)
            .await?
            .iter()
            .map(|r| crate::record::text(r, "id"))
            .collect()
    }

    async fn scan_fields(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
        expand: Option<&'static str>,
        fields: Option<&'static str>,
        subject: Subject<'_>,
    ) -> Result<Vec<Value>> {
        chatstore_core::query::validate_scan_limit(limit)?;
        keyset_pages(
            after,
            u64::from(limit),
            MAX_PER_PAGE,
            |after, n| async move {
                let q = ListQuery {
                    filter: after
                        .map(|a| format!("id > {}", crate::filter::literal(&a)))
                        .unwrap_or_default(),
                    sort: "id".to_owned(),
                    expand,
                    fields,
                    skip_total: true,
                };
                self.first(collection, &q, n, subject).await
            },
        )
        .await
    }

    /// How many records match `filter`.
    pub async fn count(&self, collection: &str, filter: &str, subject: Subject<'_>) -> Result<u64> {
        let q = ListQuery {
            filter: filter.to_owned(),
            ..ListQuery::default()
        };
        // PocketBase: perPage=1 still runs the COUNT query and returns totalItems.
        let path = format!("/api/collections/{collection}/records");
        let query = vec![
            ("page", "1".to_owned()),
            ("perPage", "1".to_owned()),
            ("filter", q.filter),
            ("fields", "id".to_owned()),
        ];
        let resp = self
            .send(Method::GET, &path, &query, None, subject, true)
            .await?;
        resp.get("totalItems")
            .and_then(Value::as_u64)
            .ok_or_else(|| error::malformed("a count without totalItems"))
    }

    /// `POST /api/batch`: the requests run in one transaction, all or nothing. A body over
    /// [`Client::batch_max_bytes`] is refused here (`InvalidInput`, nothing sent).
    pub async fn batch(&self, requests: Vec<Value>, subject: Subject<'_>) -> Result<Vec<Value>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let count = requests.len();
        let body = encode(&json!({ "requests": requests }))?;
        self.send_batch(body, count, subject).await
    }

    /// Sends an encoded batch body of `count` requests.
    async fn send_batch(
        &self,
        body: Bytes,
        count: usize,
        subject: Subject<'_>,
    ) -> Result<Vec<Value>> {
        if body.len() > self.batch_max_bytes() {
            return Err(too_large(
                &format!("a batch of {count} records"),
                body.len(),
                "PocketBase's batch API",
                self.batch_max_bytes(),
            ));
        }
        let resp = self
            .send_once(&Method::POST, "/api/batch", &[], Some(&body), subject)
            .await?;
        match resp {
            Value::Array(items) => Ok(items),
            other => Err(error::malformed(format!("a batch answer {other}"))),
        }
    }

    /// Creates records in one transaction, all or nothing: through the batch API when they fit
    /// one batch (in records and in bytes), else through the tx route. Each body carries its
    /// `id`.
    pub async fn create_all(
        &self,
        collection: &str,
        mut bodies: Vec<Value>,
        subject: Subject<'_>,
    ) -> Result<()> {
        if bodies.len() as u64 <= crate::schema::BATCH_MAX_REQUESTS {
            let url = format!("/api/collections/{collection}/records?fields=id");
            let count = bodies.len();
            let mut payload = json!({"requests": bodies
                .into_iter()
                .map(|body| json!({"method": "POST", "url": url, "body": body}))
                .collect::<Vec<_>>()});
            let encoded = encode(&payload)?;
            if encoded.len() <= self.batch_max_bytes() {
                self.send_batch(encoded, count, subject).await?;
                return Ok(());
            }
            // Too many bytes for one batch: the bodies go to the tx route instead.
            bodies = match payload["requests"].take() {
                Value::Array(requests) => {
                    requests.into_iter().map(|mut r| r["body"].take()).collect()
                }
                _ => Vec::new(),
            };
        }
        let ops = bodies
            .into_iter()
            .map(|mut body| {
                let id = body
                    .as_object_mut()
                    .and_then(|m| m.remove("id"))
                    .unwrap_or(Value::Null);
                TxOp::Create {
                    collection: collection.to_owned(),
                    entity: subject.entity,
                    id: id.as_str().map(str::to_owned).unwrap_or_default(),
                    fields: body,
                }
            })
            .collect();
        self.tx(ops, subject).await.map(|_| ())
    }

    /// `POST /api/chatstore/tx` (pb_hooks/chatstore.pb.js): the operations run in one
    /// transaction, all or nothing. A body over [`TX_MAX_BYTES`] is refused here
    /// (`InvalidInput`, nothing sent).
    pub async fn tx(&self, ops: Vec<TxOp>, subject: Subject<'_>) -> Result<Value> {
        if ops.is_empty() {
            return Ok(Value::Null);
        }
        let body = serde_json::to_vec(&TxRequest { ops: &ops })
            .map(Bytes::from)
            .map_err(|e| Error::invalid(format!("a tx operation does not serialise: {e}")))?;
        if body.len() > TX_MAX_BYTES {
            return Err(too_large(
                &format!("a transaction of {} operations", ops.len()),
                body.len(),
                "chatstore's PocketBase route",
                TX_MAX_BYTES,
            ));
        }
        self.send_once(
            &Method::POST,
            "/api/chatstore/tx",
            &[],
            Some(&body),
            subject,
        )
        .await
    }

    /// Sends a multipart form (a record with a file); never retried.
    pub async fn send_multipart(
        &self,
        method: Method,
        path: &str,
        form: impl Fn() -> reqwest::multipart::Form,
        subject: Subject<'_>,
    ) -> Result<Value> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let resp = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .header("Authorization", token)
                .multipart(form())
                .send()
                .await
                .map_err(error::from_transport)?;
            let status = resp.status();
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(value);
            }
            if attempt == 0 && error::token_refused(status.as_u16(), &value) {
                self.forget_token().await;
                continue;
            }
            return Err(error::from_status(status.as_u16(), value, subject));
        }
        Err(Error::backend_msg(
            "PocketBase refused the superuser token twice",
        ))
    }

    /// A new file token (`POST /api/files/token`) with its expiry (the JWT's `exp`).
    pub async fn new_file_token(&self) -> Result<(String, u64)> {
        let resp = self
            .send(
                Method::POST,
                "/api/files/token",
                &[],
                None,
                Subject::new("file token", ""),
                true,
            )
            .await?;
        let value = resp
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| error::malformed("a file token answer without token"))?
            .to_owned();
        let expires_at = jwt_expiry(&value).unwrap_or_else(|| now_secs() + 120);
        Ok((value, expires_at))
    }

    async fn file_token(&self) -> Result<String> {
        let mut guard = self.file_token.lock().await;
        if let Some(t) = guard.as_ref()
            && t.expires_at > now_secs() + FILE_TOKEN_MARGIN_SECS
        {
            return Ok(t.value.clone());
        }
        let (value, expires_at) = self.new_file_token().await?;
        *guard = Some(Token {
            value: value.clone(),
            expires_at,
        });
        Ok(value)
    }

    /// The URL of a stored file (without a token).
    pub fn file_url(&self, collection: &str, id: &str, filename: &str) -> String {
        format!(
            "{}/api/files/{collection}/{}/{}",
            self.base,
            path_segment(id),
            path_segment(filename)
        )
    }

    /// The bytes of a protected file, read with a file token.
    pub async fn download(
        &self,
        collection: &str,
        id: &str,
        filename: &str,
        subject: Subject<'_>,
    ) -> Result<Vec<u8>> {
        let resp = self
            .download_stream(collection, id, filename, None, subject)
            .await?;
        Ok(resp.bytes().await.map_err(error::from_transport)?.to_vec())
    }

    /// Starts reading a protected file with a file token: bytes `range` (`start..end`) when
    /// given, answered with 206. Retried while PocketBase is unavailable, until it answers.
    pub async fn download_stream(
        &self,
        collection: &str,
        id: &str,
        filename: &str,
        range: Option<(u64, u64)>,
        subject: Subject<'_>,
    ) -> Result<reqwest::Response> {
        if let Some((start, end)) = range
            && start >= end
        {
            return Err(Error::invalid(format!(
                "byte range {start}..{end} of file {id:?} is empty or reversed: the end must \
                 be past the start"
            )));
        }
        let url = self.file_url(collection, id, filename);
        match self.download_once(&url, range, subject).await {
            // A file token made before the superuser's token was invalidated on the server
            // (or one the server's clock finds expired) reads as missing: a fresh one decides.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                *self.file_token.lock().await = None;
                self.download_once(&url, range, subject).await
            }
            answer => answer,
        }
    }

    async fn download_once(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
        subject: Subject<'_>,
    ) -> Result<reqwest::Response> {
        let call = || async {
            let token = self.file_token().await?;
            let mut req = self.transfers.get(url).query(&[("token", token)]);
            if let Some((start, end)) = range {
                req = req.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1));
            }
            let resp = req.send().await.map_err(error::from_transport)?;
            let status = resp.status();
            let expected = if range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            if status != expected {
                let value: Value = resp.json().await.unwrap_or(Value::Null);
                if status.is_success() {
                    return Err(error::malformed(format!(
                        "PocketBase answered a file read with {status}, not {expected}"
                    )));
                }
                return Err(error::from_status(status.as_u16(), value, subject));
            }
            Ok(resp)
        };
        call.retry(backoff())
            .when(|e: &Error| e.is_retryable())
            .await
    }

    /// Sends a multipart form whose parts stream (a large file): once, never retried (a stream
    /// cannot be replayed), on the transfer client.
    pub async fn send_multipart_stream(
        &self,
        method: Method,
        path: &str,
        form: reqwest::multipart::Form,
        subject: Subject<'_>,
    ) -> Result<Value> {
        let token = self.token().await?;
        let resp = self
            .transfers
            .request(method, format!("{}{path}", self.base))
            .header("Authorization", token)
            .multipart(form)
            .send()
            .await
            .map_err(error::from_transport)?;
        let status = resp.status();
        let value: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        if error::token_refused(status.as_u16(), &value) {
            // A stream cannot be sent again: the next call logs in, this one may be retried.
            self.forget_token().await;
            return Err(Error::unavailable(
                "PocketBase refused the superuser token (changed on the server?); the next \
                 call logs in again, and the upload may be retried",
                error::TokenRefused,
            ));
        }
        Err(error::from_status(status.as_u16(), value, subject))
    }
}

/// The `perPage` [`Client::list`] reads items `offset .. offset + limit` with: one page when
/// one of at most [`MAX_PER_PAGE`] holds them, else pages of [`MAX_PER_PAGE`].
pub fn page_size(offset: u64, limit: Option<u64>) -> u64 {
    limit
        .and_then(|l| one_page_for(offset, l))
        .unwrap_or(MAX_PER_PAGE)
}

/// The smallest `perPage` whose one page holds items `offset .. offset + limit`, if one of at
/// most [`MAX_PER_PAGE`] does (PocketBase pages by `page`/`perPage`, not by offset).
fn one_page_for(offset: u64, limit: u64) -> Option<u64> {
    let last = offset.checked_add(limit)?.checked_sub(1)?;
    (limit..=MAX_PER_PAGE).find(|p| offset / p == last / p)
}

fn token_of(value: &Value) -> Result<Token> {
    let token = value
        .get("token")
        .and_then(Value::as_str)
        .ok_or_else(|| error::malformed("an auth answer without token"))?;
    Ok(Token {
        value: token.to_owned(),
        // Without a readable expiry, refresh within the margin (next call).
        expires_at: jwt_expiry(token).unwrap_or_else(now_secs),
    })
}

/// A path segment with everything but unreserved characters percent-encoded.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Up to `limit` records with an id greater than `after`, by id, read `page_size` (at most)
/// at a time through `page(after, n)`, each page after the last id of the one before. Pages by
/// number (`page=2`) skipped a record whenever one before it was deleted between two pages,
/// and repeated one when one was created: a migration's scan of 2,000 chats missed a chat for
/// good, and a change feed's catch-up after a long outage a change.
pub(crate) async fn keyset_pages<F, Fut>(
    after: Option<&str>,
    limit: u64,
    page_size: u64,
    page: F,
) -> Result<Vec<Value>>
where
    F: FnMut(Option<String>, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>>>,
{
    pages_after(
        after.map(str::to_owned),
        limit,
        page_size,
        text_of("id"),
        page,
    )
    .await
}

/// Up to `limit` records of a list ordered by a unique key, read `page_size` (at most) at a
/// time through `page(after, n)`: `after` is the key (`cursor`) of the last record read, and
/// each page holds the records after it. [`keyset_pages`] is this on `id`.
pub(crate) async fn pages_after<C, K, F, Fut>(
    after: Option<C>,
    limit: u64,
    page_size: u64,
    cursor: K,
    mut page: F,
) -> Result<Vec<Value>>
where
    C: Clone,
    K: Fn(&Value) -> Result<C>,
    F: FnMut(Option<C>, u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Value>>>,
{
    let mut out: Vec<Value> = Vec::new();
    let mut last = after;
    while (out.len() as u64) < limit {
        let want = (limit - out.len() as u64).min(page_size.max(1));
        let got = page(last.clone(), want).await?;
        let full = got.len() as u64 >= want;
        if let Some(record) = got.last() {
            last = Some(cursor(record)?);
        }
        out.extend(got);
        if !full {
            break;
        }
    }
    Ok(out)
}

/// The [`pages_after`] cursor of a text field.
pub(crate) fn text_of(field: &'static str) -> impl Fn(&Value) -> Result<String> {
    move |record| {
        record
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| error::malformed(format!("a listed record without its {field}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_shows_no_password_or_token() {
        let client = Client::new(
            "http://127.0.0.1:1",
            "admin@example.com",
            "hunter2",
            Duration::from_secs(5),
        )
        .expect("client");
        *client.token.lock().await = Some(Token {
            value: "eyJsecret".into(),
            expires_at: 1,
        });
        let shown = format!("{client:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("eyJsecret"),
            "{shown}"
        );
        assert!(shown.contains("admin@example.com"), "{shown}");
    }

    /// Records `r0000..` read by keyset pages while the first record of each page already read
    /// is deleted after it: every record that exists throughout is read once.
    #[tokio::test]
    async fn keyset_pages_keep_every_record_when_earlier_ones_are_deleted_meanwhile() {
        let records = std::sync::Mutex::new(
            (0..2_500)
                .map(|i| format!("r{i:04}"))
                .collect::<Vec<String>>(),
        );
        let read = keyset_pages(None, 2_500, MAX_PER_PAGE, |after, n| {
            let mut ids = records.lock().expect("records");
            let page: Vec<Value> = ids
                .iter()
                .filter(|id| after.as_deref().is_none_or(|a| id.as_str() > a))
                .take(n as usize)
                .map(|id| serde_json::json!({ "id": id }))
                .collect();
            // A record of this page is deleted before the next page is asked for.
            if let Some(first) = page.first().and_then(|r| r["id"].as_str()) {
                ids.retain(|id| id != first);
            }
            std::future::ready(Ok(page))
        })
        .await
        .expect("pages");
        let ids: Vec<&str> = read.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids.len(), 2_500);
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, none twice");
        assert_eq!(ids[1_000], "r1000");
    }

    #[test]
    fn batches_stay_within_the_servers_body_limit() {
        let client = Client::new("http://127.0.0.1:9", "a@x.io", "pw", Duration::from_secs(1))
            .expect("client");
        assert_eq!(client.batch_max_bytes(), BATCH_MAX_BYTES);
        client.set_server_batch_body_limit(0);
        assert_eq!(client.batch_max_bytes(), 100 << 20, "PocketBase's default");
        client.set_server_batch_body_limit(4 << 20);
        assert_eq!(client.batch_max_bytes(), 25 << 17, "the same share of less");
        client.set_server_batch_body_limit(1 << 40);
        assert_eq!(
            client.batch_max_bytes(),
            BATCH_MAX_BYTES,
            "never more than the default's"
        );
        let e = too_large(
            "a batch of 3 files",
            6 << 20,
            "PocketBase's batch API",
            25 << 17,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "invalid input: a batch of 3 files is 6.0 MiB, more than PocketBase's batch API \
             takes in one request (3.1 MiB): write fewer or smaller records at once"
        );
    }

    #[test]
    fn jwt_expiry_reads_the_exp_claim() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"exp":1700000000,"type":"auth"}"#);
        assert_eq!(jwt_expiry(&format!("h.{payload}.s")), Some(1_700_000_000));
        assert_eq!(jwt_expiry("garbage"), None);
    }

    #[test]
    fn tokens_are_refreshed_shortly_before_they_expire() {
        let now = 1_700_000_000;
        assert!(!needs_refresh(now + 86_400, now));
        assert!(!needs_refresh(now + REFRESH_MARGIN_SECS + 1, now));
        assert!(needs_refresh(now + REFRESH_MARGIN_SECS, now));
        assert!(needs_refresh(now - 5, now));
    }

    #[test]
    fn a_range_is_read_from_one_page_when_one_fits() {
        assert_eq!(one_page_for(0, 30), Some(30));
        assert_eq!(one_page_for(60, 30), Some(30));
        assert_eq!(one_page_for(7, 5), Some(6));
        assert_eq!(one_page_for(999, 3), Some(3));
        assert_eq!(one_page_for(1000, 3), Some(4));
        assert_eq!(one_page_for(7, 1001), None);
        for (offset, limit) in [(7, 5), (999, 3), (5, 1), (123, 77)] {
            let p = one_page_for(offset, limit).expect("fits");
            assert_eq!(offset / p, (offset + limit - 1) / p);
        }
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("a b?c"), "a%20b%3Fc");
        assert_eq!(path_segment("é"), "%C3%A9");
    }
}
