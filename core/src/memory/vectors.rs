use std::collections::BTreeSet;
use std::ops::Bound;

use async_trait::async_trait;

use super::{MemoryBackend, State};
use crate::vectors::{
    CollectionItems, SearchHit, VectorFilter, VectorItem, VectorRepo, exact_search, ids_of_many,
    validate_item_dimension, validate_query_dimension,
};
use crate::{Error, Result};

impl State {
    fn collection_dim(&self, collection: &str, except: &[&str]) -> Option<usize> {
        self.vectors
            .values()
            .find(|(c, item)| c == collection && !except.contains(&item.id.as_str()))
            .map(|(_, item)| item.vector.len())
    }

    fn items_of<'a>(&'a self, collection: &'a str) -> impl Iterator<Item = &'a VectorItem> + 'a {
        self.vectors
            .values()
            .filter(move |(c, _)| c == collection)
            .map(|(_, item)| item)
    }
}

#[async_trait]
impl VectorRepo for MemoryBackend {
    async fn has_collection(&self, name: &str) -> Result<bool> {
        Ok(self.lock()?.items_of(name).next().is_some())
    }

    async fn delete_collection(&self, name: &str) -> Result<()> {
        self.lock()?.vectors.retain(|_, (c, _)| c != name);
        Ok(())
    }

    async fn insert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        let mut s = self.lock()?;
        validate_item_dimension(&items, s.collection_dim(collection, &[]))?;
        if let Some(item) = items.iter().find(|i| s.vectors.contains_key(&i.id)) {
            return Err(Error::conflict(
                "vector",
                format!("item id {:?} exists", item.id),
            ));
        }
        for item in items {
            s.vectors
                .insert(item.id.clone(), (collection.to_owned(), item));
        }
        Ok(())
    }

    async fn upsert(&self, collection: &str, items: Vec<VectorItem>) -> Result<()> {
        let mut s = self.lock()?;
        let replaced: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        validate_item_dimension(&items, s.collection_dim(collection, &replaced))?;
        for item in items {
            s.vectors
                .insert(item.id.clone(), (collection.to_owned(), item));
        }
        Ok(())
    }

    async fn upsert_many(&self, entries: Vec<CollectionItems>) -> Result<()> {
        let mut s = self.lock()?;
        // Every id of the call ends in its entry's collection, so none of them pins another
        // collection's dimension; all are checked before anything is written.
        let replaced = ids_of_many(&entries);
        for (collection, items) in &entries {
            validate_item_dimension(items, s.collection_dim(collection, &replaced))?;
        }
        for (collection, items) in entries {
            for item in items {
                s.vectors
                    .insert(item.id.clone(), (collection.clone(), item));
            }
        }
        Ok(())
    }

    async fn search(
        &self,
        collection: &str,
        vectors: &[Vec<f32>],
        filter: Option<&VectorFilter>,
        limit: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        let s = self.lock()?;
        validate_query_dimension(vectors, s.collection_dim(collection, &[]))?;
        let items: Vec<&VectorItem> = s.items_of(collection).collect();
        Ok(vectors
            .iter()
            .map(|q| exact_search(&items, q, filter, limit))
            .collect())
    }

    async fn query(
        &self,
        collection: &str,
        filter: &VectorFilter,
        limit: Option<u32>,
    ) -> Result<Vec<VectorItem>> {
        let s = self.lock()?;
        Ok(s.items_of(collection)
            .filter(|i| filter.matches(&i.metadata))
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .cloned()
            .collect())
    }

    async fn get(&self, collection: &str) -> Result<Vec<VectorItem>> {
        Ok(self.lock()?.items_of(collection).cloned().collect())
    }

    async fn delete(
        &self,
        collection: &str,
        ids: Option<&[String]>,
        filter: Option<&VectorFilter>,
    ) -> Result<u64> {
        let mut s = self.lock()?;
        let before = s.vectors.len();
        s.vectors.retain(|id, (c, item)| {
            let hit = c == collection
                && ids.is_none_or(|ids| ids.iter().any(|i| i == id))
                && filter.is_none_or(|f| f.matches(&item.metadata));
            !hit
        });
        Ok((before - s.vectors.len()) as u64)
    }

    async fn reset(&self) -> Result<()> {
        self.lock()?.vectors.clear();
        Ok(())
    }

    async fn collections(&self) -> Result<Vec<String>> {
        let s = self.lock()?;
        let names: BTreeSet<String> = s.vectors.values().map(|(c, _)| c.clone()).collect();
        Ok(names.into_iter().collect())
    }

    async fn scan(
        &self,
        collection: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<VectorItem>> {
        let s = self.lock()?;
        let start = match after {
            Some(a) => Bound::Excluded(a.to_owned()),
            None => Bound::Unbounded,
        };
        Ok(s.vectors
            .range((start, Bound::Unbounded))
            .filter(|(_, (c, _))| c == collection)
            .take(limit as usize)
            .map(|(_, (_, item))| item.clone())
            .collect())
    }
}
