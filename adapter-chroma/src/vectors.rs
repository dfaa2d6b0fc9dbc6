//! [`VectorRepo`] for [`ChromaStore`].

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chatstore_core::vectors::{
    CollectionItems, MAX_DIMENSION, SearchHit, VectorFilter, VectorItem, VectorRepo, ids_of_many,
    score, validate_collection, validate_collection_to_read, validate_delete, validate_items,
    validate_many, validate_query, validate_search,
};
use chatstore_core::{Error, ErrorKind, Result};
use serde_json::{Map, Value};

use crate::client::{
    CHROMA_MAX_BODY, Collection, GetResponse, Include, REQUEST_MAX_BYTES, Record, batches, json_len,
};
use crate::config::IdScope;
use crate::filter::{check_metadata, matches_nothing, to_where};
use crate::names::{from_chroma, to_chroma};
use crate::{ChromaStore, fan_out};

/// Ids per `get` request.
const IDS_PER_REQUEST: usize = 1_000;
/// Beyond the exact threshold, this many neighbours more than asked for are fetched, so that
/// ties at the cut are ordered by id.
const TIE_SLACK: usize = 16;
/// Most (query vectors x results) asked in one `query` request.
const QUERY_BUDGET: usize = 200_000;

/// Refuses an item too large for one of Chroma's requests (checked before anything is written).
fn check_request_size(item: &VectorItem) -> Result<()> {
    // The room a write request needs besides its records.
    const FRAME: usize = 1 << 10;
    let size = Record {
        id: &item.id,
        vector: &item.vector,
        text: &item.text,
        metadata: &item.metadata,
    }
    .encoded_len();
    if size.saturating_add(FRAME) > CHROMA_MAX_BODY {
        return Err(Error::invalid(format!(
            "vector item {:?} is {:.1} MiB as JSON (its text {:.1} MiB), more than Chroma takes \
             in one request ({} MiB): split its text into smaller items",
            item.id,
            mib(size),
            mib(item.text.len()),
            CHROMA_MAX_BODY >> 20
        )));
    }
    Ok(())
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1u32 << 20)
}

/// One collection's answer during a walk over a listing of the database: a collection another
/// client deleted since the listing (Chroma answers 404 for its id) is `gone`.
fn or_gone<T>(answer: Result<T>, gone: T) -> Result<T> {
    match answer {
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(gone),
        other => other,
    }
}

/// Items of a `get` answer, in Chroma's order.
pub(crate) fn items_of(answer: GetResponse) -> Vec<VectorItem> {
    let GetResponse {
        ids,
        embeddings,
        documents,
        metadatas,
    } = answer;
    let mut embeddings = embeddings.unwrap_or_default().into_iter();
    let mut documents = documents.unwrap_or_default().into_iter();
    let mut metadatas = metadatas.unwrap_or_default().into_iter();
    ids.into_iter()
        .map(|id| VectorItem {
            id,
            vector: embeddings.next().flatten().unwrap_or_default(),
            text: documents.next().flatten().unwrap_or_default(),
            metadata: metadatas.next().flatten().unwrap_or_default(),
        })
        .collect()
}

impl ChromaStore {
    pub(crate) async fn resolve(&self, collection: &str) -> Result<Option<Collection>> {
        self.client.collection(&to_chroma(collection)).await
    }

    /// Every id of the collection, sorted.
    pub(crate) async fn all_ids(&self, coll: &str) -> Result<Vec<String>> {
        let mut ids = self
            .client
            .get(coll, None, None, Include::NOTHING, None, None)
            .await?
            .ids;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The ids (sorted) of the records inside `filter` and, when given, among `ids`.
    async fn matching_ids(
        &self,
        coll: &str,
        filter: Option<&VectorFilter>,
        ids: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let filter = filter.filter(|f| !f.conditions.is_empty());
        if filter.is_some_and(matches_nothing) {
            return Ok(Vec::new());
        }
        let selected;
        let ids = match ids {
            Some(ids) => ids,
            None if filter.is_none() => return self.all_ids(coll).await,
            // Chroma 1.5.9 reads the metadata a `get` returns with one SQLite statement binding
            // every record, and answers 500 "too many SQL variables" past 32,766 of them; ids
            // alone it returns without. So the `where` clause selects ids, and their metadata
            // is read below, `IDS_PER_REQUEST` at a time.
            None => {
                let where_ = filter.and_then(to_where);
                selected = self
                    .client
                    .get(coll, None, where_.as_ref(), Include::NOTHING, None, None)
                    .await?
                    .ids;
                &selected[..]
            }
        };
        let include = Include {
            metadatas: filter.is_some(),
            ..Include::NOTHING
        };
        // By ids alone, without the `where` clause: in a collection of 33,000 records, Chroma
        // 1.5.9 took 24 s to answer a `get` of 1,000 ids with one, 0.02 s without.
        // `VectorFilter::matches` below keeps exactly the records the filter matches.
        let answers = self.get_by_ids(coll, ids, include).await?;
        let mut out = Vec::new();
        for answer in answers {
            for item in items_of(answer) {
                if filter.is_none_or(|f| f.matches(&item.metadata)) {
                    out.push(item.id);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The `include`d fields of the records with these ids, [`IDS_PER_REQUEST`] ids a request,
    /// `fan_out` requests at a time.
    async fn get_by_ids(
        &self,
        coll: &str,
        ids: &[String],
        include: Include,
    ) -> Result<Vec<GetResponse>> {
        let chunks: Vec<Vec<String>> = ids
            .chunks(IDS_PER_REQUEST)
            .map(<[String]>::to_vec)
            .collect();
        fan_out(chunks, self.config.fan_out, |chunk| async move {
            self.client
                .get(coll, Some(&chunk), None, include, None, None)
                .await
        })
        .await
    }

    /// The items with these ids, in this order (ids that no longer exist are left out).
    pub(crate) async fn fetch(&self, coll: &str, ids: &[String]) -> Result<Vec<VectorItem>> {
        let answers = self.get_by_ids(coll, ids, Include::ITEMS).await?;
        let mut by_id: HashMap<String, VectorItem> = answers
            .into_iter()
            .flat_map(items_of)
            .map(|item| (item.id.clone(), item))
            .collect();
        Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// The metadata of these ids.
    async fn fetch_metadata(
        &self,
        coll: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Map<String, Value>)>> {
        let include = Include {
            metadatas: true,
            ..Include::NOTHING
        };
        let answers = self.get_by_ids(coll, ids, include).await?;
        Ok(answers
            .into_iter()
            .flat_map(items_of)
            .map(|i| (i.id, i.metadata))
            .collect())
    }

    /// For each collection of the database holding some of `ids`: the collection and those
    /// ids. One request per collection, `fan_out` at a time; a collection deleted since the
    /// listing holds none.
    async fn holders(&self, ids: &[String]) -> Result<Vec<(Collection, Vec<String>)>> {
        let collections = self.client.list_collections().await?;
        let found = fan_out(collections, self.config.fan_out, |c| async move {
            let ids = or_gone(self.matching_ids(&c.id, None, Some(ids)).await, Vec::new())?;
            Ok((c, ids))
        })
        .await?;
        Ok(found
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .collect())
    }

    async fn write(&self, collection: &str, items: Vec<VectorItem>, upsert: bool) -> Result<()> {
        validate_collection(collection)?;
        validate_items(&items, None, MAX_DIMENSION)?;
        for item in &items {
            check_metadata(&item.id, &item.metadata)?;
            check_request_size(item)?;
        }
        let replaced: Vec<String> = if upsert {
            items.iter().map(|i| i.id.clone()).collect()
        } else {
            Vec::new()
        };
        let _guard = self.write_lock.lock().await;
        self.write_locked(collection, items, upsert, &replaced)
            .await
    }

    /// `upsert_many`: every entry checked (its collection's dimension included) before the
    /// first is written, then written one after the other under the write lock. Chroma has no
    /// transaction across collections: a server lost part way leaves earlier entries written.
    async fn write_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        validate_many(&entries, MAX_DIMENSION)?;
        for item in entries.iter().flat_map(|(_, items)| items) {
            check_metadata(&item.id, &item.metadata)?;
            check_request_size(item)?;
        }
        let replaced: Vec<String> = ids_of_many(&entries)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let _guard = self.write_lock.lock().await;
        for (collection, items) in &entries {
            let existing = self.client.collection(&to_chroma(collection)).await?;
            self.recreates(existing.as_ref(), items, &replaced).await?;
        }
        for (collection, items) in entries {
            self.write_locked(&collection, items, true, &replaced)
                .await?;
        }
        Ok(())
    }

    /// Whether writing `items` into the `existing` collection makes it anew (Chroma fixes a
    /// collection's dimension at its first write, for good; chatstore's rule is that only the
    /// rows that stay pin it, so a collection without such rows is made anew);
    /// `InvalidInput` when rows outside `replaced` stay and have another dimension.
    async fn recreates(
        &self,
        existing: Option<&Collection>,
        items: &[VectorItem],
        replaced: &[String],
    ) -> Result<bool> {
        let Some(dim) = items.first().map(|i| i.vector.len()) else {
            return Ok(false);
        };
        let Some(c) = existing else {
            return Ok(false);
        };
        let Some(d) = c.dimension.filter(|d| *d != dim) else {
            return Ok(false);
        };
        let count = self.client.count(&c.id).await?;
        let replaced = if replaced.is_empty() {
            0
        } else {
            self.matching_ids(&c.id, None, Some(replaced)).await?.len() as u64
        };
        if count > replaced {
            validate_items(items, Some(d), MAX_DIMENSION)?;
        }
        Ok(true)
    }

    /// Writes checked items under the write lock; `replaced` are the ids the call replaces
    /// (empty for an insert).
    async fn write_locked(
        &self,
        collection: &str,
        items: Vec<VectorItem>,
        upsert: bool,
        replaced: &[String],
    ) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        let chroma_name = to_chroma(collection);
        let existing = self.client.collection(&chroma_name).await?;
        let recreate = self.recreates(existing.as_ref(), &items, replaced).await?;
        let holders = match (self.config.id_scope, &existing) {
            (IdScope::Database, _) => self.holders(&ids).await?,
            (IdScope::Collection, Some(c)) => {
                let found = self.matching_ids(&c.id, None, Some(&ids)).await?;
                vec![(c.clone(), found)]
            }
            (IdScope::Collection, None) => Vec::new(),
        };
        if !upsert && let Some((c, found)) = holders.iter().find(|(_, f)| !f.is_empty()) {
            return Err(Error::conflict(
                "vector",
                format!(
                    "vector id {:?} exists in collection {:?}",
                    found[0],
                    from_chroma(&c.name)
                ),
            ));
        }
        if recreate {
            self.client.delete_collection(&chroma_name).await?;
        }
        let target = self.client.get_or_create(&chroma_name).await?;
        self.snapshots.forget(&target.id);
        // Chroma's upsert merges metadata into the stored one; chatstore's replaces it. Keys
        // the new metadata lacks are sent as null, which removes them.
        let mut metadata: Vec<Map<String, Value>> =
            items.iter().map(|i| i.metadata.clone()).collect();
        if upsert && !recreate {
            let replaced: Vec<String> = holders
                .iter()
                .filter(|(c, _)| c.name == chroma_name)
                .flat_map(|(_, found)| found.iter().cloned())
                .collect();
            if !replaced.is_empty() {
                let old: HashMap<String, Map<String, Value>> = self
                    .fetch_metadata(&target.id, &replaced)
                    .await?
                    .into_iter()
                    .collect();
                for (item, meta) in items.iter().zip(metadata.iter_mut()) {
                    for key in old.get(&item.id).into_iter().flat_map(Map::keys) {
                        if !meta.contains_key(key) {
                            meta.insert(key.clone(), Value::Null);
                        }
                    }
                }
            }
        }
        // The ids of the requests sent so far, the one in flight included.
        let mut sent: Vec<String> = Vec::new();
        let records: Vec<Record<'_>> = items
            .iter()
            .zip(&metadata)
            .map(|(i, m)| Record {
                id: &i.id,
                vector: &i.vector,
                text: &i.text,
                metadata: m,
            })
            .collect();
        let sizes: Vec<usize> = records.iter().map(Record::encoded_len).collect();
        for run in batches(&sizes, self.client.max_batch, REQUEST_MAX_BYTES) {
            sent.extend(items[run.clone()].iter().map(|i| i.id.clone()));
            if let Err(e) = self.client.write(&target.id, &records[run], upsert).await {
                if !upsert {
                    // Best effort: a failed insert takes back what it added, the failed
                    // request's records too: Chroma may have applied that request and only its
                    // answer was lost (a timeout, a connection reset). All these ids were
                    // absent when checked under the write lock, so nothing else is deleted.
                    if let Err(undo) = self.client.delete_records(&target.id, &sent).await {
                        tracing::warn!(error = %undo, "could not undo a failed Chroma insert");
                    }
                }
                return Err(e);
            }
        }
        if upsert {
            for (c, found) in holders {
                if c.name != chroma_name {
                    or_gone(self.client.delete_records(&c.id, &found).await, 0)?;
                    self.snapshots.forget(&c.id);
                }
            }
        }
        Ok(())
    }

    async fn search_impl(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        validate_collection(collection)?;
        validate_search(vectors, None, limit, MAX_DIMENSION)?;
        if let Some(f) = filter {
            f.validate()?;
        }
        let empty = vec![Vec::new(); vectors.len()];
        let Some(coll) = self.resolve(collection).await? else {
            return Ok(empty);
        };
        let count = usize::try_from(self.client.count(&coll.id).await?).unwrap_or(usize::MAX);
        if count == 0 {
            return Ok(empty);
        }
        if let Some(d) = coll.dimension {
            validate_search(vectors, Some(d), limit, MAX_DIMENSION)?;
        }
        let allowed = match filter.filter(|f| !f.conditions.is_empty()) {
            Some(f) => {
                let ids = self.matching_ids(&coll.id, Some(f), None).await?;
                if ids.is_empty() {
                    return Ok(empty);
                }
                Some(ids)
            }
            None => None,
        };
        let candidates = allowed.as_ref().map_or(count, Vec::len);
        let limit = limit as usize;
        // Asking for every candidate makes Chroma's HNSW walk go as far as its graph reaches:
        // exact in practice, though a record the graph does not link to is still missed.
        let n_results = if candidates <= self.config.exact_max_candidates {
            candidates
        } else {
            (limit + TIE_SLACK).min(candidates)
        };
        let per_request = (QUERY_BUDGET / n_results.max(1)).max(1);
        // The query vectors are sent as JSON numbers, beside the allowed ids.
        let ids_bytes = allowed.as_deref().map_or(0, json_len);
        let sizes: Vec<usize> = vectors.iter().map(|v| json_len(v) + 1).collect();
        let room = REQUEST_MAX_BYTES.saturating_sub(ids_bytes);
        let mut ranked: Vec<Vec<(String, f64)>> = Vec::with_capacity(vectors.len());
        for run in batches(&sizes, per_request, room) {
            let group = &vectors[run];
            let answer = self
                .client
                .query(&coll.id, group, allowed.as_deref(), n_results)
                .await?;
            // One list per query vector, in their order: any other count would pair a
            // query's neighbours with another query.
            if answer.ids.len() != group.len() {
                return Err(Error::backend_msg(format!(
                    "Chroma answered {} searches for {} query vectors",
                    answer.ids.len(),
                    group.len()
                )));
            }
            let distances = answer.distances.unwrap_or_default();
            for (i, ids) in answer.ids.into_iter().enumerate() {
                let mut pairs = Vec::with_capacity(ids.len());
                for (j, id) in ids.into_iter().enumerate() {
                    let d = distances
                        .get(i)
                        .and_then(|row| row.get(j).copied().flatten())
                        .ok_or_else(|| {
                            Error::backend_msg("Chroma answered a search without distances")
                        })?;
                    pairs.push((id, d.clamp(0.0, 2.0)));
                }
                pairs.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                pairs.truncate(limit);
                ranked.push(pairs);
            }
        }
        let wanted: Vec<String> = ranked
            .iter()
            .flatten()
            .map(|(id, _)| id.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let include = Include {
            documents: true,
            metadatas: true,
            ..Include::NOTHING
        };
        let answers = self.get_by_ids(&coll.id, &wanted, include).await?;
        let details: HashMap<String, (String, Map<String, Value>)> = answers
            .into_iter()
            .flat_map(items_of)
            .map(|i| (i.id, (i.text, i.metadata)))
            .collect();
        Ok(ranked
            .into_iter()
            .map(|pairs| {
                pairs
                    .into_iter()
                    .filter_map(|(id, distance)| {
                        // A record deleted between the two requests is left out.
                        let (text, metadata) = details.get(&id)?.clone();
                        Some(SearchHit {
                            id,
                            text,
                            metadata,
                            distance,
                            score: score(distance),
                        })
                    })
                    .collect()
            })
            .collect())
    }
}

#[async_trait]
impl VectorRepo for ChromaStore {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        validate_collection_to_read(name)?;
        match self.resolve(name).await? {
            Some(c) => Ok(self.client.count(&c.id).await? > 0),
            None => Ok(false),
        }
    }

    async fn delete_collection(&self, name: &str) -> Result<()> {
        validate_collection(name)?;
        let _guard = self.write_lock.lock().await;
        self.client.delete_collection(&to_chroma(name)).await
    }

    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.write(collection, items, false).await
    }

    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        self.write(collection, items, true).await
    }

    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        self.write_many(entries).await
    }

    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        self.search_impl(collection, vectors, filter, limit).await
    }

    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        validate_query(collection, filter, limit)?;
        let Some(coll) = self.resolve(collection).await? else {
            return Ok(Vec::new());
        };
        let mut ids = self.matching_ids(&coll.id, Some(filter), None).await?;
        if let Some(l) = limit {
            ids.truncate(l as usize);
        }
        self.fetch(&coll.id, &ids).await
    }

    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        validate_collection_to_read(collection)?;
        let Some(coll) = self.resolve(collection).await? else {
            return Ok(Vec::new());
        };
        let ids = self.all_ids(&coll.id).await?;
        self.fetch(&coll.id, &ids).await
    }

    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        validate_delete(collection, ids, filter)?;
        if ids.is_some_and(<[String]>::is_empty) {
            return Ok(0);
        }
        let _guard = self.write_lock.lock().await;
        let Some(coll) = self.resolve(collection).await? else {
            return Ok(0);
        };
        let targets = self.matching_ids(&coll.id, filter, ids).await?;
        if targets.is_empty() {
            return Ok(0);
        }
        self.snapshots.forget(&coll.id);
        self.client.delete_records(&coll.id, &targets).await
    }

    async fn reset(&self) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let collections = self.client.list_collections().await?;
        fan_out(collections, self.config.fan_out, |c| async move {
            self.client.delete_collection(&c.name).await
        })
        .await?;
        Ok(())
    }

    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        self.scan_page(collection, after, limit).await
    }

    async fn collections(&self) -> Result<Vec<String>> {
        let collections = self.client.list_collections().await?;
        self.snapshots.listed(&collections);
        let counted = fan_out(collections, self.config.fan_out, |c| async move {
            Ok((or_gone(self.client.count(&c.id).await, 0)?, c.name))
        })
        .await?;
        let names = counted
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(_, name)| name);
        addressable_names(names)
    }

    /// Every collection of the database, empty ones too: one listing, no count per collection.
    async fn collection_names(&self) -> Result<Vec<String>> {
        let collections = self.client.list_collections().await?;
        self.snapshots.listed(&collections);
        addressable_names(collections.into_iter().map(|c| c.name))
    }
}

/// The chatstore names of Chroma's collections `names`, sorted; an error naming the first
/// collection no chatstore name leads back to (a name such as `300.1.1.1`, which Chroma takes
/// and chatstore stores encoded, or one starting `chatstore.` that chatstore did not write) or
/// that shares its chatstore name with another. Such a collection would be listed but read as
/// empty: a migration would skip its records, and its verification would find them equal.
fn addressable_names(names: impl Iterator<Item = String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut seen = HashMap::new();
    for chroma in names {
        let name = from_chroma(&chroma);
        if to_chroma(&name) != chroma {
            return Err(Error::backend_msg(format!(
                "the Chroma collection {chroma:?} has a name chatstore cannot address (it would \
                 read it as {name:?}, stored as {:?}): rename it in Chroma or move it to \
                 another database",
                to_chroma(&name)
            )));
        }
        if let Some(other) = seen.insert(name.clone(), chroma.clone()) {
            return Err(Error::backend_msg(format!(
                "the Chroma collections {other:?} and {chroma:?} both read as {name:?}: rename \
                 one of them in Chroma"
            )));
        }
        out.push(name);
    }
    out.sort();
    Ok(out)
}
