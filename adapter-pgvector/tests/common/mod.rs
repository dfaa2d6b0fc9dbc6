//! Test support: a fresh database per test on the server from `CHATSTORE_TEST_PGVECTOR_URL`,
//! and a small seeded random generator.
#![allow(dead_code)]

use chatstore_pgvector::{PgVectorConfig, PgVectorStore};

/// The server URL (`CHATSTORE_TEST_PGVECTOR_URL`), by the test kit's one CI rule.
pub fn server_url() -> Option<String> {
    chatstore_testkit::require_env("CHATSTORE_TEST_PGVECTOR_URL")
}

/// Creates an empty database `t_<uuid>` from `template` and returns its URL.
pub async fn fresh_database(template: &str) -> Option<String> {
    let url = server_url()?;
    Some(chatstore_testkit::fresh_postgres_database_from(&url, template).await)
}

/// A store on a fresh database, its table created with `dimension` columns.
pub async fn fresh_store(dimension: usize) -> Option<PgVectorStore> {
    let url = fresh_database("template1").await?;
    let config = PgVectorConfig::new(url).dimension(dimension).pool_size(4);
    Some(PgVectorStore::connect(config).await.expect("open store"))
}

/// A store's configuration for tests of the partial indexes: `dimension` columns, collections
/// of more than 300 rows indexed, no background builds (the tests call `optimize`).
pub fn indexing_config(url: impl Into<String>, dimension: usize) -> PgVectorConfig {
    PgVectorConfig::new(url)
        .dimension(dimension)
        .exact_max_rows(300)
        .auto_index(false)
}

/// splitmix64: small, seeded, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box-Muller).
    pub fn gaussian(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A unit vector uniform on the sphere.
    pub fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f64> = (0..dim).map(|_| self.gaussian()).collect();
        normalise(&v)
    }
}

pub fn normalise(v: &[f64]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
    v.iter().map(|x| (x / norm) as f32).collect()
}
