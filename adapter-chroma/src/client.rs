//! The HTTP client: one keep-alive connection pool and one typed function per Chroma v2 route
//! chatstore uses.

use std::collections::HashSet;

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

impl Record<'_> {
    /// The bytes this record adds to a write's JSON body: its id, base64 embedding, document
    /// and metadata, quoted and escaped, and their commas.
    pub fn encoded_len(&self) -> usize {
        let metadata = if self.metadata.is_empty() {
            "null".len()
        } else {
            json_len(self.metadata)
        };
        json_len(self.id)
            + (self.vector.len() * 4).div_ceil(3) * 4
            + 2
            + json_len(self.text)
            + metadata
            + 4
    }
}

/// Chroma 1.5.9 refuses a request body over 40 MiB: 413 "Payload too large" (measured: a body
/// of 41,943,100 bytes refused, one of 41,943,000 read), and a much larger one is cut off
/// while it is being sent.
pub(crate) const CHROMA_MAX_BODY: usize = 40 << 20;
/// The most one request of chatstore's carries, well under [`CHROMA_MAX_BODY`] with room for
/// the request's own fields.
pub(crate) const REQUEST_MAX_BYTES: usize = 32 << 20;

/// The length of a value's JSON, counted without building it.
pub(crate) fn json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Consecutive runs of items, each of at most `max_count` items and, where more than one
/// item, at most `max_bytes` by the items' sizes; in order, covering every item.
pub(crate) fn batches(
    sizes: &[usize],
    max_count: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, size) in sizes.iter().enumerate() {
        let count = i - start;
        if count > 0 && (count >= max_count.max(1) || bytes.saturating_add(*size) > max_bytes) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
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

/// Collections asked for per request when listing the database.
const LIST_PAGE: usize = 1_000;
/// How many times a listing starts again when collections changed faster than its pages overlap.
const LIST_RESTARTS: usize = 8;

/// Every item of a listing Chroma pages only by offset, while other clients may add and delete
/// items: an item that exists from the start of the listing to its end is listed once.
///
/// Paging by `offset = items read so far` skips one item for every item deleted before the
/// offset between two requests (the items after it move forward). So each request after the
/// first starts a tenth of a page before the end of the previous page, and its answer must
/// hold one of that page's items: every item after it in Chroma's order is then either in
/// this page or in a later one. When none is there (more deleted or added before the offset
/// than the pages overlap), the listing starts again from the first page, keeping what it
/// found; after [`LIST_RESTARTS`] of those it fails as `Unavailable`, for the caller to try
/// again. Items added meanwhile may or may not be listed; items deleted meanwhile may be.
pub(crate) async fn list_all<F, Fut>(page: usize, mut fetch: F) -> Result<Vec<Collection>>
where
    F: FnMut(usize, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Collection>>>,
{
    let page = page.max(2);
    let overlap = (page / 10).max(1);
    let mut out: Vec<Collection> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for _ in 0..=LIST_RESTARTS {
        let mut offset = 0;
        let mut previous: Option<HashSet<String>> = None;
        let complete = loop {
            let got = fetch(offset, page).await?;
            if let Some(previous) = &previous
                && !got.iter().any(|c| previous.contains(&c.id))
            {
                break false;
            }
            let full = got.len() >= page;
            let ids: HashSet<String> = got.iter().map(|c| c.id.clone()).collect();
            for c in got {
                if seen.insert(c.id.clone()) {
                    out.push(c);
                }
            }
            if !full {
                break true;
            }
            offset += page - overlap;
            previous = Some(ids);
        };
        if complete {
            return Ok(out);
        }
    }
    Err(Error::unavailable(
        format!(
            "listing collections: they changed faster than chatstore could page through them \
             ({} listings started again); try again",
            LIST_RESTARTS
        ),
        "collections changed while listing",
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

    /// Every collection of the database (see [`list_all`]).
    pub async fn list_collections(&self) -> Result<Vec<Collection>> {
        list_all(LIST_PAGE, |offset, limit| self.list_page(offset, limit)).await
    }

    /// One page of the database's collections, in Chroma's order.
    async fn list_page(&self, offset: usize, limit: usize) -> Result<Vec<Collection>> {
        let url = format!("{}/collections?limit={limit}&offset={offset}", self.db);
        self.call(reqwest::Method::GET, &url, None, "listing collections")
            .await
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
        // Typed, so the vectors go out as the f32 they are (through `Value` they would be
        // written as f64, about twice as long).
        #[derive(Serialize)]
        struct Query<'a> {
            query_embeddings: &'a [Vec<f32>],
            n_results: usize,
            include: Vec<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ids: Option<&'a [String]>,
        }
        let body = Query {
            query_embeddings: vectors,
            n_results,
            include: Include {
                distances: true,
                ..Include::NOTHING
            }
            .list(),
            ids,
        };
        let req = self.http.post(self.coll_url(id, "query")).json(&body);
        self.send(req, "searching vectors").await
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A client of a new database of the test server (`None`, outside CI, without one).
    async fn fresh_client() -> Option<Client> {
        let url = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL")?;
        let config = ChromaConfig::new(&url)
            .expect("a valid Chroma URL")
            .database(format!("t_{}", uuid::Uuid::new_v4().simple()))
            .create_database(true);
        Some(Client::connect(&config).await.expect("connect"))
    }

    async fn names(client: &Client, n: usize) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..n {
            let name = format!("c{i:03}");
            client.get_or_create(&name).await.expect("create");
            names.push(name);
        }
        names
    }

    fn sorted(collections: Vec<Collection>) -> Vec<String> {
        let mut names: Vec<String> = collections.into_iter().map(|c| c.name).collect();
        names.sort();
        names
    }

    /// Deletes, before the `at`th request of a listing, the collections the first request
    /// answered at `positions`; returns those names.
    async fn list_deleting(
        client: &Client,
        page: usize,
        at: usize,
        positions: std::ops::Range<usize>,
    ) -> (Result<Vec<Collection>>, Vec<String>) {
        let requests = AtomicUsize::new(0);
        let first: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let deleted: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
        let listed = list_all(page, |offset, limit| {
            let n = requests.fetch_add(1, Ordering::SeqCst);
            let (first, deleted, positions) = (&first, &deleted, positions.clone());
            async move {
                if n == at {
                    let doomed: Vec<String> = first.lock().expect("lock")[positions].to_vec();
                    for name in &doomed {
                        client.delete_collection(name).await?;
                    }
                    deleted.lock().expect("lock").extend(doomed);
                }
                let got = client.list_page(offset, limit).await?;
                if n == 0 {
                    *first.lock().expect("lock") = got.iter().map(|c| c.name.clone()).collect();
                }
                Ok(got)
            }
        })
        .await;
        let deleted = deleted.lock().expect("lock").clone();
        (listed, deleted)
    }

    /// Collections deleted between two pages of a listing (the first of them on the first
    /// page) no longer hide the ones after them: every collection that was never deleted is
    /// listed, once.
    #[tokio::test]
    async fn a_listing_keeps_every_collection_when_others_are_deleted_meanwhile() {
        let Some(client) = fresh_client().await else {
            return;
        };
        let all = names(&client, 25).await;
        assert_eq!(sorted(client.list_collections().await.expect("list")), all);
        let paged = list_all(10, |offset, limit| client.list_page(offset, limit))
            .await
            .expect("list in pages");
        assert_eq!(sorted(paged), all, "in pages of 10, nothing changing");

        // Fewer deleted than the pages overlap (1 in 10): the next page finds its place.
        let (listed, deleted) = list_deleting(&client, 10, 1, 0..1).await;
        let listed = sorted(listed.expect("list"));
        let kept: Vec<String> = all
            .iter()
            .filter(|n| !deleted.contains(n))
            .cloned()
            .collect();
        assert!(
            kept.iter().all(|n| listed.contains(n)),
            "every collection never deleted is listed: {listed:?} lacks some of {kept:?}"
        );

        // More deleted than the pages overlap: the listing starts again.
        let (listed, deleted2) = list_deleting(&client, 10, 2, 2..6).await;
        let listed = sorted(listed.expect("list"));
        let kept: Vec<String> = kept
            .iter()
            .filter(|n| !deleted2.contains(n))
            .cloned()
            .collect();
        assert_eq!(deleted2.len(), 4);
        assert!(
            kept.iter().all(|n| listed.contains(n)),
            "every collection never deleted is listed: {listed:?} lacks some of {kept:?}"
        );
        assert_eq!(sorted(client.list_collections().await.expect("list")), kept);
    }

    #[test]
    fn batches_keep_to_the_count_and_the_bytes() {
        assert_eq!(batches(&[], 3, 10), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[1; 7], 3, 100), vec![0..3, 3..6, 6..7]);
        assert_eq!(batches(&[4, 4, 4, 4, 4], 10, 10), vec![0..2, 2..4, 4..5]);
        // An item larger than the budget goes alone.
        assert_eq!(batches(&[2, 30, 2, 2], 10, 10), vec![0..1, 1..2, 2..4]);
    }

    #[test]
    fn a_record_knows_its_length_in_the_body() {
        let metadata: Map<String, Value> = json!({"file_id": "f\"1", "n": 2})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let record = Record {
            id: "a\"b",
            vector: &[0.5, 1.5, -2.0],
            text: "line\nnext é",
            metadata: &metadata,
        };
        let alone = serde_json::to_string(&Records {
            ids: vec![record.id],
            embeddings: vec![STANDARD.encode([0u8; 12])],
            documents: vec![record.text],
            metadatas: vec![Some(record.metadata)],
        })
        .expect("encode");
        let two = serde_json::to_string(&Records {
            ids: vec![record.id, record.id],
            embeddings: vec![STANDARD.encode([0u8; 12]), STANDARD.encode([0u8; 12])],
            documents: vec![record.text, record.text],
            metadatas: vec![Some(record.metadata), Some(record.metadata)],
        })
        .expect("encode");
        assert_eq!(record.encoded_len(), two.len() - alone.len());
    }

    /// A listing whose every page meets more changes than the pages overlap gives up as
    /// `Unavailable` instead of answering with collections missing.
    #[tokio::test]
    async fn a_listing_that_never_settles_is_unavailable() {
        let requests = AtomicUsize::new(0);
        let err = list_all(10, |offset, limit| {
            // Each request sees a listing shifted by a whole page since the last one.
            let n = requests.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok((offset..offset + limit)
                    .map(|i| Collection {
                        id: format!("{}", i + n * 100),
                        name: format!("c{}", i + n * 100),
                        dimension: None,
                    })
                    .collect())
            }
        })
        .await
        .expect_err("never settles");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(requests.load(Ordering::SeqCst), 2 * (LIST_RESTARTS + 1));
    }
}
