//! Vectors: Open WebUI's `VectorDBBase` (collections of embedded text chunks).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Error, Result, validate};

/// The largest dimension any backend accepts (pgvector's limit for `vector`); backends with a
/// smaller limit refuse larger vectors with `InvalidInput`.
pub const MAX_DIMENSION: usize = 16_000;

/// The most query vectors one search takes.
pub const MAX_QUERY_VECTORS: usize = 1_000;

/// The most neighbours one search returns per query vector.
pub const MAX_SEARCH_LIMIT: u32 = 10_000;

/// A chunk of text with its embedding. Ids are unique across all collections (Open WebUI's
/// `document_chunk` key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VectorItem {
    /// Id.
    pub id: String,
    /// The text.
    pub text: String,
    /// The embedding.
    pub vector: Vec<f32>,
    /// Metadata object.
    pub metadata: Map<String, Value>,
}

/// One neighbour found by a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// Item id.
    pub id: String,
    /// Item text.
    pub text: String,
    /// Item metadata.
    pub metadata: Map<String, Value>,
    /// Cosine distance to the query vector, in [0, 2].
    pub distance: f64,
    /// Open WebUI's score: `(2 - distance) / 2`, in [0, 1], higher is nearer.
    pub score: f64,
}

/// Open WebUI's score of a cosine distance.
pub fn score(distance: f64) -> f64 {
    (2.0 - distance) / 2.0
}

/// Cosine distance `1 - cos(a, b)`, computed in f64. Both vectors must be non-zero and of the
/// same length (checked by [`validate_vector`]).
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    1.0 - dot / (na.sqrt() * nb.sqrt())
}

/// Checks one vector: 1..=`max_dim` finite components, not all zero (cosine distance is
/// undefined for a zero vector).
pub fn validate_vector(what: &str, vector: &[f32], max_dim: usize) -> Result<()> {
    match vector_problem(vector, max_dim) {
        Some(problem) => Err(Error::invalid(format!("{what} {problem}"))),
        None => Ok(()),
    }
}

/// Lanes [`plainly_fine`] sums a vector's squares in (independent sums the compiler turns into
/// SIMD; one running sum is a chain of dependent additions).
const LANES: usize = 16;

/// A vector whose sum of squares, taken in [`LANES`] partial sums, is positive and far below
/// `f32::MAX`: every component is finite (a NaN or an infinity makes the sum NaN or infinite),
/// one is not zero, and the sum of squares in any order is finite too (orders differ by rounding
/// only, a relative 2^-24 per addition). The common case, checked in one vectorised pass; the
/// rest goes through [`vector_problem`]'s checks one by one, which name the problem.
fn plainly_fine(vector: &[f32]) -> bool {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = vector.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, x) in lanes.iter_mut().zip(chunk) {
            *lane += x * x;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    let norm = lanes.iter().sum::<f32>() + tail;
    norm > 0.0 && norm < f32::MAX / 4.0
}

/// What [`validate_vector`] refuses in `vector`, as the end of a sentence naming it; `None`
/// when it is fine. Callers checking many vectors name one only when it fails.
fn vector_problem(vector: &[f32], max_dim: usize) -> Option<String> {
    if vector.is_empty() {
        return Some("is empty".into());
    }
    if vector.len() > max_dim {
        return Some(format!(
            "has {} dimensions; this backend takes at most {max_dim}",
            vector.len()
        ));
    }
    if plainly_fine(vector) {
        return None;
    }
    component_problem(vector)
}

/// [`vector_problem`]'s checks of the components, one at a time (slower than
/// [`plainly_fine`], and naming what is wrong).
fn component_problem(vector: &[f32]) -> Option<String> {
    if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
        return Some(format!("has a non-finite component at index {i}"));
    }
    if vector.iter().all(|x| *x == 0.0) {
        return Some("is all zeros; cosine distance is undefined for it".into());
    }
    // pgvector sums a vector's squares in single precision: past f32's range the norm is
    // infinite, below it zero, and every distance to the vector NaN.
    let norm: f32 = vector.iter().map(|x| x * x).sum();
    if !norm.is_finite() || norm == 0.0 {
        return Some(format!(
            "has a length (sum of squares {norm}) that single precision cannot hold; scale \
             it to about 1 (cosine distance does not change)"
        ));
    }
    None
}

/// Checks a collection name: an id of at most 255 bytes.
pub fn validate_collection(name: &str) -> Result<()> {
    validate::id("collection name", name)
}

/// The longest collection name a read takes (Chroma's names run to 512 characters).
pub const MAX_READ_NAME_LEN: usize = 1024;

/// Checks the name of a collection to read (`has_collection`, `get`, `scan`): not empty, at
/// most [`MAX_READ_NAME_LEN`] bytes, no control characters. Looser than
/// [`validate_collection`], which guards writes: a store lists collections that other programs
/// named by their own rules (Chroma takes `docs.v2`), and every collection it lists reads back.
pub fn validate_collection_to_read(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("collection name must not be empty"));
    }
    if name.len() > MAX_READ_NAME_LEN {
        return Err(Error::invalid(format!(
            "collection name is {} bytes long; at most {MAX_READ_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "collection name {name:?} contains a control character"
        )));
    }
    Ok(())
}

/// Checks items to insert: valid ids, text and metadata, one dimension for all of them (and
/// equal to `dim` when the collection already has one), no id twice.
pub fn validate_items(items: &[VectorItem], dim: Option<usize>, max_dim: usize) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut expected = dim;
    for item in items {
        validate::id("vector item id", &item.id)?;
        if !seen.insert(item.id.as_str()) {
            return Err(Error::invalid(format!(
                "vector item id {:?} appears twice in one call",
                item.id
            )));
        }
        validate::text("vector item text", &item.text)?;
        validate::json_map("vector item metadata", &item.metadata)?;
        if let Some(problem) = vector_problem(&item.vector, max_dim) {
            return Err(Error::invalid(format!(
                "vector of item {:?} {problem}",
                item.id
            )));
        }
        match expected {
            Some(d) if d != item.vector.len() => {
                return Err(Error::invalid(format!(
                    "vector of item {:?} has {} dimensions but the collection's vectors have {d}",
                    item.id,
                    item.vector.len()
                )));
            }
            Some(_) => {}
            None => expected = Some(item.vector.len()),
        }
    }
    Ok(())
}

/// One entry of [`VectorRepo::upsert_many`]: a collection and the items to upsert into it.
pub type CollectionItems = (String, Vec<VectorItem>);

/// Checks an [`VectorRepo::upsert_many`] call: every collection name valid and named by one
/// entry only, every entry's items as [`validate_items`] checks them (without the stored
/// dimension), and no id twice in the whole call (an id lives in one collection).
pub fn validate_many(entries: &[CollectionItems], max_dim: usize) -> Result<()> {
    let mut collections = std::collections::HashSet::with_capacity(entries.len());
    let mut ids = std::collections::HashSet::new();
    for (collection, items) in entries {
        validate_collection(collection)?;
        if !collections.insert(collection.as_str()) {
            return Err(Error::invalid(format!(
                "collection {collection:?} appears in two entries of one call; put its items in one"
            )));
        }
        validate_items(items, None, max_dim)?;
        for item in items {
            if !ids.insert(item.id.as_str()) {
                return Err(Error::invalid(format!(
                    "vector item id {:?} appears in two collections of one call",
                    item.id
                )));
            }
        }
    }
    Ok(())
}

/// The ids of every item of an [`VectorRepo::upsert_many`] call: the rows it replaces, which
/// therefore do not pin a collection's dimension.
pub fn ids_of_many(entries: &[CollectionItems]) -> Vec<&str> {
    entries
        .iter()
        .flat_map(|(_, items)| items.iter().map(|i| i.id.as_str()))
        .collect()
}

/// Checks items against the dimension of the collection they go to (`None`: it has none
/// yet): the part of [`validate_items`] that needs the stored data, for backends behind the
/// validation layer.
pub fn validate_item_dimension(items: &[VectorItem], dim: Option<usize>) -> Result<()> {
    let Some(d) = dim else {
        return Ok(());
    };
    match items.iter().find(|item| item.vector.len() != d) {
        Some(item) => Err(Error::invalid(format!(
            "vector of item {:?} has {} dimensions but the collection's vectors have {d}",
            item.id,
            item.vector.len()
        ))),
        None => Ok(()),
    }
}

/// Checks query vectors against the collection's dimension (`None`: unknown): the part of
/// [`validate_search`] that needs the stored data, for backends behind the validation layer.
pub fn validate_query_dimension(vectors: &[Vec<f32>], dim: Option<usize>) -> Result<()> {
    let Some(d) = dim else {
        return Ok(());
    };
    match vectors.iter().enumerate().find(|(_, v)| v.len() != d) {
        Some((i, v)) => Err(Error::invalid(format!(
            "query vector {i} has {} dimensions but the collection's vectors have {d}",
            v.len()
        ))),
        None => Ok(()),
    }
}

/// Checks a search: 1..=[`MAX_QUERY_VECTORS`] query vectors of the collection's dimension
/// (when known) and a limit in 1..=[`MAX_SEARCH_LIMIT`].
pub fn validate_search(
    vectors: &[Vec<f32>],
    dim: Option<usize>,
    limit: u32,
    max_dim: usize,
) -> Result<()> {
    if vectors.is_empty() {
        return Err(Error::invalid("search needs at least one query vector"));
    }
    if vectors.len() > MAX_QUERY_VECTORS {
        return Err(Error::invalid(format!(
            "search takes at most {MAX_QUERY_VECTORS} query vectors, got {}",
            vectors.len()
        )));
    }
    if limit == 0 || limit > MAX_SEARCH_LIMIT {
        return Err(Error::invalid(format!(
            "search limit must be between 1 and {MAX_SEARCH_LIMIT}, got {limit}"
        )));
    }
    for (i, v) in vectors.iter().enumerate() {
        validate_vector(&format!("query vector {i}"), v, max_dim)?;
        if let Some(d) = dim
            && v.len() != d
        {
            return Err(Error::invalid(format!(
                "query vector {i} has {} dimensions but the collection's vectors have {d}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Checks a metadata query: a valid collection name, a well-formed filter, and a limit of at
/// least 1 when one is given.
pub fn validate_query(collection: &str, filter: &VectorFilter, limit: Option<u32>) -> Result<()> {
    validate_collection(collection)?;
    filter.validate()?;
    if limit == Some(0) {
        return Err(Error::invalid(
            "query limit must be at least 1 (use None for no limit)",
        ));
    }
    Ok(())
}

/// Checks a delete: a valid collection name, and ids or a filter (deleting a whole collection
/// is `delete_collection`'s job), the filter well formed.
pub fn validate_delete(
    collection: &str,
    ids: Option<&[String]>,
    filter: Option<&VectorFilter>,
) -> Result<()> {
    validate_collection(collection)?;
    if ids.is_none() && filter.is_none() {
        return Err(Error::invalid(
            "delete needs ids or a filter; use delete_collection to delete everything",
        ));
    }
    if let Some(f) = filter {
        f.validate()?;
    }
    Ok(())
}

/// One condition of a [`VectorFilter`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// `{key: value}`: the metadata value equals this one.
    Eq(Value),
    /// `{key: {"$in": [...]}}`: the metadata value equals one of these.
    In(Vec<Value>),
}

/// A metadata filter in Open WebUI's dialect: `{key: value}` and `{key: {"$in": [..]}}`, all
/// conditions ANDed. Values compare as text the way PostgreSQL's `->>` renders them: a string
/// as itself, anything else as its JSON text (so `1` matches `1` and `"1"`, `true` matches
/// `true` and `"true"`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VectorFilter {
    /// `(key, condition)` pairs, sorted by key.
    pub conditions: Vec<(String, Condition)>,
}

impl VectorFilter {
    /// `{key: value}`.
    pub fn eq(key: impl Into<String>, value: impl Into<Value>) -> Self {
        VectorFilter::default().and_eq(key, value)
    }

    /// Adds `{key: value}`.
    pub fn and_eq(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.conditions
            .push((key.into(), Condition::Eq(value.into())));
        self.conditions.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }

    /// Adds `{key: {"$in": values}}`.
    pub fn and_in(mut self, key: impl Into<String>, values: Vec<Value>) -> Self {
        self.conditions.push((key.into(), Condition::In(values)));
        self.conditions.sort_by(|a, b| a.0.cmp(&b.0));
        self
    }

    /// Parses Open WebUI's JSON form; anything else is `InvalidInput`.
    pub fn from_json(value: &Value) -> Result<Self> {
        let Value::Object(map) = value else {
            return Err(Error::invalid(format!(
                "a vector filter must be an object like {{\"file_id\": \"x\"}}, got {}",
                validate::json_type(value)
            )));
        };
        let mut conditions = Vec::with_capacity(map.len());
        for (key, v) in map {
            let condition = match v {
                Value::Object(op) => {
                    let Some(Value::Array(values)) = op.get("$in").filter(|_| op.len() == 1) else {
                        return Err(Error::invalid(format!(
                            "filter on {key:?}: the only operator is {{\"$in\": [...]}}"
                        )));
                    };
                    Condition::In(values.clone())
                }
                other => Condition::Eq(other.clone()),
            };
            conditions.push((key.clone(), condition));
        }
        let filter = VectorFilter { conditions };
        filter.validate()?;
        Ok(filter)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        for (key, condition) in &self.conditions {
            let v = match condition {
                Condition::Eq(v) => v.clone(),
                Condition::In(values) => serde_json::json!({ "$in": values }),
            };
            map.insert(key.clone(), v);
        }
        Value::Object(map)
    }

    /// Checks keys and values: keys non-empty, values scalars (no null, object or array),
    /// `$in` lists non-empty.
    pub fn validate(&self) -> Result<()> {
        for (key, condition) in &self.conditions {
            if key.is_empty() {
                return Err(Error::invalid("a vector filter key must not be empty"));
            }
            validate::text("vector filter key", key)?;
            let values: &[Value] = match condition {
                Condition::Eq(v) => std::slice::from_ref(v),
                Condition::In(values) => {
                    if values.is_empty() {
                        return Err(Error::invalid(format!(
                            "filter on {key:?}: $in needs at least one value"
                        )));
                    }
                    values
                }
            };
            for v in values {
                match v {
                    Value::String(s) => validate::text("vector filter value", s)?,
                    Value::Number(_) | Value::Bool(_) => {}
                    other => {
                        return Err(Error::invalid(format!(
                            "filter on {key:?}: values must be strings, numbers or booleans, got {}",
                            validate::json_type(other)
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether metadata satisfies every condition.
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|(key, condition)| {
            let Some(actual) = metadata.get(key).filter(|v| !v.is_null()) else {
                return false;
            };
            let actual = as_text(actual);
            match condition {
                Condition::Eq(v) => as_text(v) == actual,
                Condition::In(values) => values.iter().any(|v| as_text(v) == actual),
            }
        })
    }
}

/// A JSON value as PostgreSQL's `->>` renders it.
pub fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Storage of vectors, Open WebUI's `VectorDBBase`. A collection exists while it has items.
#[async_trait]
pub trait VectorRepo: Send + Sync {
    /// Whether the collection has any item.
    async fn has_collection(&self, name: &str) -> Result<bool>;
    /// Deletes every item of the collection (a no-op when it has none).
    async fn delete_collection(&self, name: &str) -> Result<()>;
    /// Inserts items, all or nothing; `Conflict` when an id exists (in any collection).
    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()>;
    /// Inserts or replaces items (an id from another collection moves into this one).
    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()>;
    /// Upserts the items of several collections in one call, as `upsert` of each
    /// `(collection, items)` entry would (an id from another collection moves), for bulk loads
    /// of many small collections (Open WebUI's `file-{id}`): pgvector and SQLite write them in
    /// one transaction instead of one per collection. A collection is named by one entry at
    /// most and an id appears once in the call, else `InvalidInput`; an entry's items pass
    /// the checks of `upsert` (a collection's other rows pin its dimension). Invalid input
    /// changes nothing. The default checks what needs no stored data, then upserts entry by
    /// entry: a backend that keeps its own rules overrides it, and a failure part way (a lost
    /// server) may leave earlier entries written there (a retry of the call is safe).
    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        validate_many(&entries, MAX_DIMENSION)?;
        for (collection, items) in entries {
            self.upsert(&collection, items).await?;
        }
        Ok(())
    }
    /// For each query vector, the `limit` nearest items of the collection inside the filter,
    /// by cosine distance then id. A missing collection gives empty lists.
    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>>;
    /// Items of the collection matching the filter, ordered by id, at most `limit`.
    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>>;
    /// Every item of the collection, ordered by id.
    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>>;
    /// Deletes items of the collection by id and/or filter (both given: both must hold; neither:
    /// `InvalidInput`, use `delete_collection`); returns how many were deleted.
    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64>;
    /// Deletes every item of every collection.
    async fn reset(&self) -> Result<()>;
    /// The names of the collections that have items, sorted.
    async fn collections(&self) -> Result<Vec<String>>;
    /// The names of the collections, sorted, possibly with some that hold no items: for a
    /// walk of every collection with [`scan`](Self::scan), where an empty one costs one empty
    /// page. A backend that must ask each collection whether it is empty to answer
    /// `collections` (Chroma: one request per collection) lists them all in one request here;
    /// the default is `collections`.
    async fn collection_names(&self) -> Result<Vec<String>> {
        self.collections().await
    }
    /// Up to `limit` items of the collection with an id greater than `after`, ordered by id
    /// (byte order), for export: a collection is walked page by page, never loaded whole.
    /// A page is cut short only at the collection's end, so a walk may stop at the first page
    /// with fewer than `limit` items. A missing collection gives an empty list.
    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>>;
    /// Prepares a collection for searching after a bulk load (pgvector builds and calibrates
    /// its index). Backends that search without preparation have nothing to do and return
    /// `Ok`.
    async fn optimize(&self, collection: &str) -> Result<()> {
        validate_collection(collection)
    }
    /// Prepares several collections for searching, as `optimize` of each would (the default
    /// calls it for each in turn): after a bulk load of many collections, pgvector decides all
    /// its small ones (searched exactly, no index) in one statement instead of one call each.
    /// A missing collection has nothing to prepare.
    async fn optimize_many(&self, collections: &[String]) -> Result<()> {
        for collection in collections {
            self.optimize(collection).await?;
        }
        Ok(())
    }
    /// Called once after a bulk load of the whole store (a migration's vectors group), to leave
    /// it ready for the other programs that read it: pgvector builds Open WebUI's own vector
    /// index with the memory the build needs, so Open WebUI's start-up finds it instead of
    /// failing to build it on default settings. Backends with nothing to do return `Ok`.
    async fn finish_load(&self) -> Result<()> {
        Ok(())
    }
    /// Waits until the work this store started in the background on its own is done
    /// (pgvector's automatic index builds, queued after large writes): call it before a
    /// graceful shutdown, or before dropping the database under the store, so that no build is
    /// cut off part way (a cut `CREATE INDEX CONCURRENTLY` leaves an invalid index to be
    /// dropped and built again). Writes made meanwhile may queue more. Backends with no
    /// background work return at once.
    async fn settle(&self) -> Result<()> {
        Ok(())
    }
}

/// Checks a vector scan: a collection name to read ([`validate_collection_to_read`]) and a
/// limit in 1..=`MAX_SCAN_LIMIT`.
pub fn validate_scan(collection: &str, limit: u32) -> Result<()> {
    validate_collection_to_read(collection)?;
    crate::query::validate_scan_limit(limit)
}

/// Exact search over items in memory: the reference semantics (ties broken by id).
pub fn exact_search(
    items: &[&VectorItem],
    query: &[f32],
    filter: Option<&VectorFilter>,
    limit: u32,
) -> Vec<SearchHit> {
    let mut scored: Vec<(f64, &VectorItem)> = items
        .iter()
        .filter(|item| filter.is_none_or(|f| f.matches(&item.metadata)))
        .map(|item| (cosine_distance(&item.vector, query), *item))
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
    scored
        .into_iter()
        .take(limit as usize)
        .map(|(distance, item)| SearchHit {
            id: item.id.clone(),
            text: item.text.clone(),
            metadata: item.metadata.clone(),
            distance,
            score: score(distance),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_open_webui_dialect() {
        let f = VectorFilter::from_json(&json!({"file_id": "a", "page": {"$in": [1, 2]}}))
            .expect("valid");
        let meta = json!({"file_id": "a", "page": 2})
            .as_object()
            .cloned()
            .expect("object");
        assert!(f.matches(&meta));
        assert!(VectorFilter::from_json(&json!({"a": {"$gt": 1}})).is_err());
        assert!(VectorFilter::from_json(&json!({"a": {"$in": []}})).is_err());
        assert!(VectorFilter::from_json(&json!([1])).is_err());
    }

    /// pgvector sums squares in single precision: a vector whose sum overflows or underflows
    /// it has no distance there (NaN), so it is refused, with what to do about it.
    #[test]
    fn vectors_single_precision_cannot_measure_are_refused() {
        for vector in [vec![1e20, 1.0], vec![1e-25, 1e-25], vec![3e19; 4]] {
            let err = validate_vector("vector", &vector, 16).expect_err("refused");
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("scale it"), "{err}");
        }
        for vector in [vec![1e18, 1.0], vec![1e-18, 1e-18], vec![0.0, 1e-10]] {
            validate_vector("vector", &vector, 16).expect("accepted");
        }
    }

    /// The vectorised pass takes only vectors the one-at-a-time checks take, and takes the
    /// ordinary ones: random lengths and scales from 1e-30 to 1e20, some with a zero, NaN or
    /// infinite component, or all zeros.
    #[test]
    fn the_fast_check_agrees_with_the_one_at_a_time_checks() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut fast = 0;
        for round in 0..20_000 {
            let len = [1, 3, 15, 16, 17, 40, 384][round % 7];
            let exponent = (next() % 51) as i32 - 30;
            let scale = 10f32.powi(exponent);
            let mut v: Vec<f32> = (0..len)
                .map(|_| ((next() % 2001) as f32 / 1000.0 - 1.0) * scale)
                .collect();
            let at = (next() as usize) % len;
            match next() % 8 {
                0 => v[at] = f32::NAN,
                1 => v[at] = f32::INFINITY,
                2 => v[at] = f32::NEG_INFINITY,
                3 => v.iter_mut().for_each(|x| *x = 0.0),
                _ => {}
            }
            if plainly_fine(&v) {
                fast += 1;
                assert_eq!(component_problem(&v), None, "{v:?}");
            }
            if (-15..=15).contains(&exponent) && v.iter().all(|x| x.is_finite()) {
                assert_eq!(
                    plainly_fine(&v),
                    v.iter().any(|x| *x != 0.0),
                    "an ordinary vector went the slow way: {v:?}"
                );
            }
        }
        assert!(fast > 5_000, "only {fast} vectors took the fast check");
    }

    #[test]
    fn identical_vectors_score_one() {
        let d = cosine_distance(&[1.0, 2.0], &[2.0, 4.0]);
        assert!(d.abs() < 1e-12);
        assert!((score(d) - 1.0).abs() < 1e-12);
    }
}
