//! Where a dual file put's time goes: a SQLite store and PocketBase collections (both loaded
//! with the benchmark workload) each put a 4 KiB file alone, then both at once, the second on a
//! task of its own as the rollout router runs it, in turns. Prints each side's p10, p50 and p90
//! alone and inside the pair, and the pair's: the side that slows down beside the other is what
//! a dual write waits for.
//!
//! `cargo run --release -p chatstore-benches --example dual_sides` with the servers of
//! `scripts/services.sh` in the environment; `CHATSTORE_DUAL_ROUNDS` sets the rounds (default
//! 400).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chatstore_benches::workload::DEFAULT_SEED;
use chatstore_benches::{Fixture, Op, Opened, Scale, Workload, registry};

/// The sorted samples' value at quantile `q`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let k = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(k).copied().unwrap_or_default()
}

async fn open(name: &str) -> Result<Opened, Box<dyn std::error::Error>> {
    let spec = registry()
        .into_iter()
        .find(|spec| spec.name == name)
        .ok_or_else(|| format!("no backend {name:?} in this build"))?;
    let url = spec.availability().map_err(|e| e.to_string())?;
    Ok(spec.open(url).await?)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u64 = std::env::var("CHATSTORE_DUAL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(400);
    let sqlite = open("sqlite").await?;
    let pocketbase = open("pocketbase").await?;
    let workload = Workload::new(Scale::SMALL, DEFAULT_SEED);
    workload.load(&sqlite.store, &|_| {}).await?;
    workload.load(&pocketbase.store, &|_| {}).await?;
    let fx = Arc::new(Fixture::new(workload));
    let op = Op::PutFile;
    // sqlite alone, pocketbase alone, sqlite in the pair, pocketbase in the pair, the pair.
    let mut samples: [Vec<Duration>; 5] = Default::default();
    for i in 0..rounds {
        let base = i * 10;
        // Each of the three goes first, second and third equally often.
        for turn in 0..3 {
            match (i + turn) % 3 {
                0 => {
                    let started = Instant::now();
                    op.run(&sqlite.store, &fx, base + 1).await?;
                    samples[0].push(started.elapsed());
                }
                1 => {
                    let started = Instant::now();
                    op.run(&pocketbase.store, &fx, base + 2).await?;
                    samples[1].push(started.elapsed());
                }
                _ => {
                    let started = Instant::now();
                    let (store, fx2) = (pocketbase.store.clone(), fx.clone());
                    let second = tokio::spawn(async move {
                        let started = Instant::now();
                        let out = op.run(&store, &fx2, base + 3).await;
                        (out, started.elapsed())
                    });
                    op.run(&sqlite.store, &fx, base + 3).await?;
                    samples[2].push(started.elapsed());
                    let (out, took) = second.await?;
                    out?;
                    samples[3].push(took);
                    samples[4].push(started.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let names = [
        "sqlite alone",
        "pocketbase alone",
        "sqlite in the pair",
        "pocketbase in the pair",
        "the pair",
    ];
    for (name, mut v) in names.into_iter().zip(samples) {
        v.sort();
        println!(
            "{name:24} p10 {:>9.1?} p50 {:>9.1?} p90 {:>9.1?}",
            quantile(&v, 0.1),
            quantile(&v, 0.5),
            quantile(&v, 0.9)
        );
    }
    fx.clean_up(&sqlite.store).await?;
    fx.clean_up(&pocketbase.store).await?;
    sqlite.close().await?;
    pocketbase.close().await?;
    Ok(())
}
