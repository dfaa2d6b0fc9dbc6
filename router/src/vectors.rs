//! Routed vectors: a write is repaired by re-copying its whole collection.

use std::sync::Arc;

use async_trait::async_trait;
use chatstore_core::vectors::{CollectionItems, SearchHit, VectorFilter, VectorItem, VectorRepo};
use chatstore_core::{ModelGroup, Result};

use crate::repair::RepairKey;
use crate::router::{Shared, canon, on};

const G: ModelGroup = ModelGroup::Vectors;

pub(crate) struct Vectors(pub(crate) Arc<Shared>);

fn collection_key(name: &str) -> Vec<RepairKey> {
    vec![RepairKey::Collection(name.to_owned())]
}

#[async_trait]
impl VectorRepo for Vectors {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.0
            .read(
                G,
                "vectors.has_collection",
                vec![name.clone()],
                canon,
                on!(vectors, [name], |r| r.has_collection(&name).await),
            )
            .await
    }

    async fn delete_collection(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.0
            .write(
                G,
                "vectors.delete_collection",
                collection_key(&name),
                on!(vectors, [name], |r| r.delete_collection(&name).await),
            )
            .await
    }

    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        let name = collection.to_owned();
        self.0
            .write(
                G,
                "vectors.insert",
                collection_key(&name),
                on!(vectors, [name, items], |r| r.insert(&name, items).await),
            )
            .await
    }

    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        let name = collection.to_owned();
        self.0
            .write(
                G,
                "vectors.upsert",
                collection_key(&name),
                on!(vectors, [name, items], |r| r.upsert(&name, items).await),
            )
            .await
    }

    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        let keys = entries
            .iter()
            .map(|(name, _)| RepairKey::Collection(name.clone()))
            .collect();
        self.0
            .write(
                G,
                "vectors.upsert_many",
                keys,
                on!(vectors, [entries], |r| r.upsert_many(entries).await),
            )
            .await
    }

    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        let name = collection.to_owned();
        let queries = vectors.to_vec();
        let filter = filter.cloned();
        self.0
            .read(
                G,
                "vectors.search",
                vec![name.clone()],
                canon,
                on!(vectors, [name, queries, filter, limit], |r| r
                    .search(&name, &queries, filter.as_ref(), limit)
                    .await),
            )
            .await
    }

    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        let name = collection.to_owned();
        let filter = filter.clone();
        self.0
            .read(
                G,
                "vectors.query",
                vec![name.clone()],
                canon,
                on!(vectors, [name, filter, limit], |r| r
                    .query(&name, &filter, limit)
                    .await),
            )
            .await
    }

    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        let name = collection.to_owned();
        self.0
            .read(
                G,
                "vectors.get",
                vec![name.clone()],
                canon,
                on!(vectors, [name], |r| r.get(&name).await),
            )
            .await
    }

    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        let name = collection.to_owned();
        let ids = ids.map(<[String]>::to_vec);
        let filter = filter.cloned();
        self.0
            .write(
                G,
                "vectors.delete",
                collection_key(&name),
                on!(vectors, [name, ids, filter], |r| r
                    .delete(&name, ids.as_deref(), filter.as_ref())
                    .await),
            )
            .await
    }

    async fn reset(&self) -> Result<()> {
        self.0
            .write(
                G,
                "vectors.reset",
                vec![RepairKey::AllVectors],
                on!(vectors, [], |r| r.reset().await),
            )
            .await
    }

    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        let name = collection.to_owned();
        let after = after.map(str::to_owned);
        self.0
            .read(
                G,
                "vectors.scan",
                vec![format!("{name} after={after:?} limit={limit}")],
                canon,
                on!(vectors, [name, after, limit], |r| r
                    .scan(&name, after.as_deref(), limit)
                    .await),
            )
            .await
    }

    async fn optimize(&self, collection: &str) -> Result<()> {
        let name = collection.to_owned();
        // No data changes: nothing to repair when the stores answer differently.
        self.0
            .write(
                G,
                "vectors.optimize",
                Vec::new(),
                on!(vectors, [name], |r| r.optimize(&name).await),
            )
            .await
    }

    async fn optimize_many(&self, collections: &[String]) -> Result<()> {
        let names = collections.to_vec();
        // No data changes: nothing to repair when the stores answer differently.
        self.0
            .write(
                G,
                "vectors.optimize_many",
                Vec::new(),
                on!(vectors, [names], |r| r.optimize_many(&names).await),
            )
            .await
    }

    async fn finish_load(&self) -> Result<()> {
        // No data changes: nothing to repair when the stores answer differently.
        self.0
            .write(
                G,
                "vectors.finish_load",
                Vec::new(),
                on!(vectors, [], |r| r.finish_load().await),
            )
            .await
    }

    async fn settle(&self) -> Result<()> {
        // Both stores, whatever the phase: either may still build for writes made earlier.
        // Their builds are independent, so they are waited for together.
        match self.0.new_of(G) {
            Ok(new) => {
                futures::try_join!(self.0.old.vectors.settle(), new.vectors.settle()).map(drop)
            }
            Err(_) => self.0.old.vectors.settle().await,
        }
    }

    async fn collections(&self) -> Result<Vec<String>> {
        self.0
            .read(
                G,
                "vectors.collections",
                Vec::new(),
                canon,
                on!(vectors, [], |r| r.collections().await),
            )
            .await
    }
}
