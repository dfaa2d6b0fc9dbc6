//! [`RawHttp`]: the PocketBase adapter's operations as direct reqwest calls to the same
//! endpoints (the records API with the same filters, sorts and expands; the file download with
//! a file token), so that the report's ratio is the abstraction's overhead.
//!
//! Each call decodes the answer as JSON, as the adapter does; what it leaves out is the
//! abstraction: the `Store`'s dynamic dispatch, the adapter's client layer (token checks,
//! retries, error mapping) and the mapping of records into domain types.
//!
//! Written so far: get chat, the plain lists (page 1, deep page, title search) and get file.
//! The writes go through the adapter's hooks routes (`/api/chatstore/tx`) and the tag filter
//! through `/api/chatstore/chats-by-tags` with derived tag record ids; their baselines and the
//! batch-API bulk import are not written yet, so those rows have no baseline ratio.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use chatstore_core::files::sha256_hex;
use chatstore_core::{Error, Result};
use chatstore_pocketbase::{Collections, PocketBaseConfig, filter};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::baseline::RawBaseline;
use crate::ops::Fixture;
use crate::workload::{PAGE_SIZE, SEARCH_TERM};

/// How long a file token is reused (PocketBase's file tokens live a few minutes).
const FILE_TOKEN_REUSE: Duration = Duration::from_secs(60);

/// The PocketBase adapter's operations as direct HTTP calls (see the module docs).
#[derive(Debug)]
pub struct RawHttp {
    http: reqwest::Client,
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
            base,
            token,
            cols: cols.clone(),
            file_token: Mutex::new(None),
        })
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

    /// The heavy user's chat list page through the records API, as the adapter's
    /// `list_plain` asks for it.
    async fn list(&self, fx: &Fixture, offset: u64, title: Option<&str>) -> Result<()> {
        let mut parts = vec![
            filter::eq("user_id", &fx.heavy_user_id),
            "internal = false".to_owned(),
            "archived = false".to_owned(),
        ];
        if let Some(t) = title {
            parts.push(format!(
                "title_lower ~ {}",
                filter::contains(&t.to_lowercase())
            ));
        }
        let query = [
            ("page", (offset / PAGE_SIZE + 1).to_string()),
            ("perPage", PAGE_SIZE.to_string()),
            ("filter", parts.join(" && ")),
            ("sort", "-updated_at,id".to_owned()),
            ("expand", "tags".to_owned()),
        ];
        let path = format!("/api/collections/{}/records", self.cols.chats);
        std::hint::black_box(self.get_json(&path, &query).await?);
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
        self.list(fx, 0, None).await
    }

    async fn list_chats_deep_page(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, fx.deep_offset, None).await
    }

    async fn search_title(&self, fx: &Fixture, _i: u64) -> Result<()> {
        self.list(fx, 0, Some(SEARCH_TERM)).await
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
        let hash = record.get("hash").and_then(Value::as_str);
        if hash.is_some_and(|h| h != sha256_hex(&bytes)) {
            return Err(Error::backend_msg("raw HTTP: file bytes do not match"));
        }
        std::hint::black_box(bytes);
        Ok(())
    }
}
