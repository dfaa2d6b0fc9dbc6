//! A repository for an aggregate a backend does not store: every call answers `Unsupported`.

use async_trait::async_trait;

use crate::vectors::{SearchHit, VectorFilter, VectorItem, VectorRepo};
use crate::{Error, Result};

/// A `VectorRepo` for a backend without vectors.
#[derive(Debug, Clone, Copy)]
pub struct NoVectors {
    /// The backend's name, for the error.
    pub backend: &'static str,
}

impl NoVectors {
    fn no<T>(&self, operation: &'static str) -> Result<T> {
        Err(Error::unsupported(self.backend, operation))
    }
}

#[async_trait]
impl VectorRepo for NoVectors {
    async fn has_collection(&self, _: &str) -> Result<bool> {
        self.no("vectors.has_collection")
    }
    async fn delete_collection(&self, _: &str) -> Result<()> {
        self.no("vectors.delete_collection")
    }
    async fn insert(&self, _: &str, _: Vec<VectorItem>) -> Result<()> {
        self.no("vectors.insert")
    }
    async fn upsert(&self, _: &str, _: Vec<VectorItem>) -> Result<()> {
        self.no("vectors.upsert")
    }
    async fn search(
        &self,
        _: &str,
        _: &[Vec<f32>],
        _: Option<&VectorFilter>,
        _: u32,
    ) -> Result<Vec<Vec<SearchHit>>> {
        self.no("vectors.search")
    }
    async fn query(&self, _: &str, _: &VectorFilter, _: Option<u32>) -> Result<Vec<VectorItem>> {
        self.no("vectors.query")
    }
    async fn get(&self, _: &str) -> Result<Vec<VectorItem>> {
        self.no("vectors.get")
    }
    async fn delete(&self, _: &str, _: Option<&[String]>, _: Option<&VectorFilter>) -> Result<u64> {
        self.no("vectors.delete")
    }
    async fn reset(&self) -> Result<()> {
        self.no("vectors.reset")
    }
    async fn collections(&self) -> Result<Vec<String>> {
        self.no("vectors.collections")
    }
    async fn scan(&self, _: &str, _: Option<&str>, _: u32) -> Result<Vec<VectorItem>> {
        self.no("vectors.scan")
    }
    async fn optimize(&self, _: &str) -> Result<()> {
        self.no("vectors.optimize")
    }
}
