//! Times `VectorRepo::insert` of one row to a few hundred, then `upsert` of the same sizes
//! into new collections (new ids: Open WebUI's usual upsert) and again over the same ids (each
//! row replaced), 31 rounds each, a collection per round: median, fastest and slowest, in a
//! fresh database on the test server. Writes of fewer than 64 rows go through one
//! `INSERT ... SELECT FROM unnest(...)`, larger ones through binary COPY (the README's "Small
//! writes: COPY from 64 rows").
//!
//! ```sh
//! eval "$(scripts/services.sh start)"
//! cargo run --release -p chatstore-pgvector --example small_writes
//! ```

use chatstore_core::{VectorItem, VectorRepo};
use chatstore_pgvector::{PgVectorConfig, PgVectorStore};
use std::time::Instant;

const ROUNDS: usize = 31;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = std::env::var("CHATSTORE_TEST_POSTGRES_URL")?;
    let url = chatstore_testkit::fresh_postgres_database(&server).await;
    let config = PgVectorConfig::new(url).dimension(384).auto_index(false);
    let store = PgVectorStore::connect(config).await?;
    for (what, sizes) in [
        ("insert", &[1usize, 4, 16, 32, 64, 100, 255][..]),
        ("upsert new", &[1, 4, 16, 32, 64, 100, 255][..]),
        ("upsert again", &[1, 4, 16, 32, 64, 100, 255][..]),
    ] {
        for &rows in sizes {
            let mut ms = Vec::new();
            for round in 0..ROUNDS {
                let items: Vec<VectorItem> = (0..rows)
                    .map(|i| VectorItem {
                        id: format!(
                            "{}{rows}-{round}-{i}",
                            if what == "insert" { "i" } else { "u" }
                        ),
                        text: "some chunk text ".repeat(20),
                        vector: (0..384)
                            .map(|d| ((i * 7 + d) % 13) as f32 / 13.0 + 0.01)
                            .collect(),
                        metadata: serde_json::json!({"file_id": format!("f{round}")})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    })
                    .collect();
                let collection = match what {
                    "insert" => format!("file-{rows}-{round}"),
                    _ => format!("up-{rows}-{round}"),
                };
                let t = Instant::now();
                if what == "insert" {
                    store.insert(&collection, items).await?;
                } else {
                    store.upsert(&collection, items).await?;
                }
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            println!(
                "{what:>12} {rows:>5} rows: median {:.2} ms, fastest {:.2} ms, slowest {:.2} ms",
                ms[ROUNDS / 2],
                ms[0],
                ms[ROUNDS - 1]
            );
        }
    }
    Ok(())
}
