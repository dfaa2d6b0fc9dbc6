//! The HTTP client: one keep-alive connection pool and one typed function per Chroma v2 route
//! chatstore uses.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chatstore_core::{Error, ErrorKind, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::ChromaConfig;
use crate::error::{from_reqwest, from_status};

/// A collection as Chroma describes it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Collection {
    /// Chroma's uuid of the collection.
    pub id: String,
    /// Its name as Chroma stores it.
    pub name: String,
    /// The dimension fixed by its first write (`None` until then).
    #[serde(default)]
    pub dimension: Option<usize>,
}

/// Which fields a `get` or `query` returns.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Include {
    pub embeddings: bool,
    pub documents: bool,
    pub metadatas: bool,
    pub distances: bool,
}

impl Include {
    pub const NOTHING: Include = Include {
        embeddings: false,
        documents: false,
        metadatas: false,
        distances: false,
    };
    pub const ITEMS: Include = Include {
        embeddings: true,
        documents: true,
        metadatas: true,
        distances: false,
    };

    fn list(self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.embeddings {
            out.push("embeddings");
        }
        if self.documents {
            out.push("documents");
        }
        if self.metadatas {
            out.push("metadatas");
        }
        if self.distances {
            out.push("distances");
        }
        out
    }
}

/// The answer of `get`: parallel arrays.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GetResponse {
    pub ids: Vec<String>,
    #[serde(default)]
    pub embeddings: Option<Vec<Option<Vec<f32>>>>,
    #[serde(default)]
    pub documents: Option<Vec<Option<String>>>,
    #[serde(default)]
    pub metadatas: Option<Vec<Option<Map<String, Value>>>>,
}

/// The answer of `query`: one list per query vector.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct QueryResponse {
    pub ids: Vec<Vec<String>>,
    #[serde(default)]
    pub distances: Option<Vec<Vec<Option<f64>>>>,
}

#[derive(Deserialize)]
struct Deleted {
    #[serde(default)]
    deleted: Option<u64>,
}

#[derive(Deserialize)]
struct PreFlight {
    max_batch_size: usize,
}

/// Records to add or upsert, embeddings as base64 little-endian f32 (smaller and faster for
/// the server to read than JSON numbers).
#[derive(Serialize)]
struct Records<'a> {
    ids: Vec<&'a str>,
    embeddings: Vec<String>,
    documents: Vec<&'a str>,
    metadatas: Vec<Option<&'a Map<String, Value>>>,
}

/// One record to write.
pub(crate) struct Record<'a> {
    pub id: &'a str,
    pub vector: &'a [f32],
    pub text: &'a str,
    pub metadata: &'a Map<String, Value>,
}

/// Adds the CA certificates of `config.ca_cert` to the system's for `chromas://`.
#[cfg(feature = "tls")]
fn trust_ca(
    builder: reqwest::ClientBuilder,
    config: &ChromaConfig,
) -> Result<reqwest::ClientBuilder> {
    use crate::config::CA_CERT_ENV;
    let Some(path) = &config.ca_cert else {
        return Ok(builder);
    };
    let pem = std::fs::read(path).map_err(|e| {
        Error::invalid(format!(
            "reading the CA certificate file {} ({CA_CERT_ENV}): {e}",
            path.display()
        ))
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            Error::invalid(format!(
                "{} ({CA_CERT_ENV}) holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        })?;
    Ok(builder.tls_certs_merge(certs))
}

#[cfg(not(feature = "tls"))]
fn trust_ca(
    _builder: reqwest::ClientBuilder,
    _config: &ChromaConfig,
) -> Result<reqwest::ClientBuilder> {
    Err(Error::invalid(
        "this build of chatstore-chroma has no TLS; build it with the `tls` feature (on by \
         default) for chromas:// and https:// URLs",
    ))
}

/// The HTTP client of one tenant and database.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    root: String,
    db: String,
    /// Most records per write (Chroma's `max_batch_size`).
    pub max_batch: usize,
}

impl Client {
    /// Builds the client, checks that the server answers, reads its batch limit and ensures
    /// the database.
    pub async fn connect(config: &ChromaConfig) -> Result<Self> {
        config.check()?;
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| Error::invalid(format!("HTTP header name {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| Error::invalid(format!("HTTP header {k:?} value: {e}")))?;
            headers.insert(name, value);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .default_headers(headers);
        if config.url.starts_with("https://") {
            builder = trust_ca(builder, config)?;
        }
        let http = builder
            .build()
            .map_err(|e| Error::backend("building the HTTP client", e))?;
        let root = format!("{}/api/v2", config.url.trim_end_matches('/'));
        let db = format!(
            "{root}/tenants/{}/databases/{}",
            config.tenant, config.database
        );
        let mut client = Client {
            http,
            root,
            db,
            max_batch: 1_000,
        };
        let pre: PreFlight = client
            .call(
                reqwest::Method::GET,
                &format!("{}/pre-flight-checks", client.root),
                None,
                "reaching Chroma",
            )
            .await?;
        client.max_batch = pre.max_batch_size.max(1);
        let db_url = client.db.clone();
        match client
            .call::<Value>(reqwest::Method::GET, &db_url, None, "opening the database")
            .await
        {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound && config.create_database => {
                let url = format!("{}/tenants/{}/databases", client.root, config.tenant);
                client
                    .call::<Value>(
                        reqwest::Method::POST,
                        &url,
                        Some(&json!({"name": config.database})),
                        "creating the database",
                    )
                    .await?;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::invalid(format!(
                    "Chroma has no database {:?} in tenant {:?} ({e}); create it or enable create_database",
                    config.database, config.tenant
                )));
            }
            Err(e) => return Err(e),
        }
        Ok(client)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<&Value>,
        what: &str,
    ) -> Result<T> {
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(b);
        }
        self.send(req, what).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T> {
        let resp = req.send().await.map_err(|e| from_reqwest(what, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| from_reqwest(what, e))?;
        if !status.is_success() {
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            return Err(from_status(what, status.as_u16(), body));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::backend(
                format!("{what}: Chroma's answer is not what chatstore expects"),
                e,
            )
        })
    }

    fn coll_url(&self, id: &str, op: &str) -> String {
        format!("{}/collections/{id}/{op}", self.db)
    }

    /// The collection with this Chroma name, if any.
    pub async fn collection(&self, chroma_name: &str) -> Result<Option<Collection>> {
        let url = format!("{}/collections/{chroma_name}", self.db);
        match self
            .call(reqwest::Method::GET, &url, None, "looking up a collection")
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gets or creates a collection in cosine space, the way Open WebUI creates them
    /// (`metadata={"hnsw:space": "cosine"}`).
    pub async fn get_or_create(&self, chroma_name: &str) -> Result<Collection> {
        let url = format!("{}/collections", self.db);
        let body = json!({
            "name": chroma_name,
            "metadata": {"hnsw:space": "cosine"},
            "get_or_create": true,
        });
        self.call(
            reqwest::Method::POST,
            &url,
            Some(&body),
            "creating a collection",
        )
        .await
    }

    /// Deletes a collection by Chroma name; a missing one is not an error.
    pub async fn delete_collection(&self, chroma_name: &str) -> Result<()> {
        let url = format!("{}/collections/{chroma_name}", self.db);
        match self
            .call::<Value>(reqwest::Method::DELETE, &url, None, "deleting a collection")
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every collection of the database.
    pub async fn list_collections(&self) -> Result<Vec<Collection>> {
        const PAGE: usize = 1_000;
        let mut out = Vec::new();
        loop {
            let url = format!("{}/collections?limit={PAGE}&offset={}", self.db, out.len());
            let page: Vec<Collection> = self
                .call(reqwest::Method::GET, &url, None, "listing collections")
                .await?;
            let n = page.len();
            out.extend(page);
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// How many records the collection holds.
    pub async fn count(&self, id: &str) -> Result<u64> {
        self.call(
            reqwest::Method::GET,
            &self.coll_url(id, "count"),
            None,
            "counting a collection",
        )
        .await
    }

    /// `get`: by ids and/or a where clause, paged by limit/offset in Chroma's own order.
    pub async fn get(
        &self,
        id: &str,
        ids: Option<&[String]>,
        where_: Option<&Value>,
        include: Include,
        limit: Option<usize>,
        offset: Option<usize>,
    ) -> Result<GetResponse> {
        let mut body = Map::new();
        if let Some(ids) = ids {
            body.insert("ids".into(), json!(ids));
        }
        if let Some(w) = where_ {
            body.insert("where".into(), w.clone());
        }
        body.insert("include".into(), json!(include.list()));
        if let Some(l) = limit {
            body.insert("limit".into(), json!(l));
        }
        if let Some(o) = offset {
            body.insert("offset".into(), json!(o));
        }
        self.call(
            reqwest::Method::POST,
            &self.coll_url(id, "get"),
            Some(&Value::Object(body)),
            "reading vectors",
        )
        .await
    }

    /// `query`: the `n_results` nearest records per query vector, optionally among `ids`.
    pub async fn query(
        &self,
        id: &str,
        vectors: &[Vec<f32>],
        ids: Option<&[String]>,
        n_results: usize,
    ) -> Result<QueryResponse> {
        let mut body = json!({
            "query_embeddings": vectors,
            "n_results": n_results,
            "include": Include { distances: true, ..Include::NOTHING }.list(),
        });
        if let (Some(ids), Some(map)) = (ids, body.as_object_mut()) {
            map.insert("ids".into(), json!(ids));
        }
        self.call(
            reqwest::Method::POST,
            &self.coll_url(id, "query"),
            Some(&body),
            "searching vectors",
        )
        .await
    }

    /// `add` (`upsert = false`) or `upsert` of at most `max_batch` records.
    pub async fn write(&self, id: &str, records: &[Record<'_>], upsert: bool) -> Result<()> {
        let payload = Records {
            ids: records.iter().map(|r| r.id).collect(),
            embeddings: records
                .iter()
                .map(|r| {
                    let mut bytes = Vec::with_capacity(r.vector.len() * 4);
                    for x in r.vector {
                        bytes.extend_from_slice(&x.to_le_bytes());
                    }
                    STANDARD.encode(bytes)
                })
                .collect(),
            documents: records.iter().map(|r| r.text).collect(),
            // Chroma refuses an empty metadata object on some routes; none reads back the same.
            metadatas: records
                .iter()
                .map(|r| (!r.metadata.is_empty()).then_some(r.metadata))
                .collect(),
        };
        let (op, what) = if upsert {
            ("upsert", "upserting vectors")
        } else {
            ("add", "adding vectors")
        };
        let req = self.http.post(self.coll_url(id, op)).json(&payload);
        self.send::<Value>(req, what).await?;
        Ok(())
    }

    /// Deletes records by id; returns how many Chroma deleted.
    pub async fn delete_records(&self, id: &str, ids: &[String]) -> Result<u64> {
        let body = json!({ "ids": ids });
        let answer: Deleted = self
            .call(
                reqwest::Method::POST,
                &self.coll_url(id, "delete"),
                Some(&body),
                "deleting vectors",
            )
            .await?;
        Ok(answer.deleted.unwrap_or(ids.len() as u64))
    }
}
