//! The writes' overhead over their raw baseline, one operation at a time: loads the benchmark
//! workload into SQLite (or `CHATSTORE_OVERHEAD_BACKEND=postgres`, with
//! `CHATSTORE_TEST_POSTGRES_URL` set), then runs each write through the store and its raw sqlx
//! statements in turns, and prints both medians, their ratio and the ratio of their 10th
//! percentiles. `CHATSTORE_OVERHEAD_DECILES=1` prints every decile too.
//!
//! A quicker loop than the whole report for telling the adapter's cost from the machine's.
//! On a virtual machine whose idle CPUs halt at once (the report's "idle CPUs" line), every
//! statement sqlx hands to a SQLite connection's worker thread may wait for a halted CPU to
//! wake, and the medians then swing between runs and between the two sides. Running the loop
//! on one CPU removes those wake-ups and leaves the code's own cost:
//!
//! `taskset -c 0 cargo run --release -p chatstore-benches --example write_overhead --
//! [OP_SLUG...]` (slugs as in the report, e.g. `upsert_message vector_insert_batch`, or a read
//! such as `list_by_two_tags`; every write by default). `CHATSTORE_OVERHEAD_ROUNDS` sets the
//! rounds (default 300), `CHATSTORE_OVERHEAD_SCALE` the workload (`1k`, `10k` or `100k`; default
//! 1k).

use std::time::{Duration, Instant};

use chatstore_benches::workload::DEFAULT_SEED;
use chatstore_benches::{Fixture, Op, Scale, Workload, baseline, registry};

/// The sorted samples' value at quantile `q` (0.5: the median).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let k = ((sorted.len().saturating_sub(1)) as f64 * q).round() as usize;
    sorted.get(k).copied().unwrap_or_default()
}

fn deciles(sorted: &[Duration]) -> String {
    (0..=10)
        .map(|k| {
            format!(
                "{:.2}",
                quantile(sorted, k as f64 / 10.0).as_secs_f64() * 1e3
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let rounds: u64 = std::env::var("CHATSTORE_OVERHEAD_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let backend =
        std::env::var("CHATSTORE_OVERHEAD_BACKEND").unwrap_or_else(|_| "sqlite".to_owned());
    let print_deciles = std::env::var_os("CHATSTORE_OVERHEAD_DECILES").is_some();
    let scale: Scale = match std::env::var("CHATSTORE_OVERHEAD_SCALE") {
        Ok(s) => s.parse()?,
        Err(_) => Scale::SMALL,
    };
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| {
            if wanted.is_empty() {
                op.creates_records() || *op == Op::AddRemoveTag
            } else {
                wanted.iter().any(|w| w == op.slug())
            }
        })
        .collect();
    let spec = registry()
        .into_iter()
        .find(|spec| spec.name == backend)
        .ok_or_else(|| format!("no backend {backend:?} in this build"))?;
    let url = spec.availability().map_err(|e| e.to_string())?;
    let opened = spec.open(url).await?;
    let workload = Workload::new(scale, DEFAULT_SEED);
    workload.load(&opened.store, &|_| {}).await?;
    let fx = Fixture::new(workload);
    let raw = opened.baseline.as_deref().ok_or("no raw baseline")?;
    for &op in &ops {
        match baseline::run(raw, op, &fx, 0).await {
            Err(e) if e.kind() == chatstore_core::ErrorKind::Unsupported => continue,
            other => other?,
        }
        let (mut store, mut direct) = (Vec::new(), Vec::new());
        for i in 0..rounds {
            // Each side goes first every other round.
            for store_side in [i % 2 == 0, i % 2 == 1] {
                let started = Instant::now();
                if store_side {
                    op.run(&opened.store, &fx, i).await?;
                    store.push(started.elapsed());
                } else {
                    baseline::run(raw, op, &fx, i).await?;
                    direct.push(started.elapsed());
                }
            }
            if i % 50 == 49 {
                fx.clean_up(&opened.store).await?;
            }
        }
        fx.clean_up(&opened.store).await?;
        store.sort();
        direct.sort();
        let ratio = |q: f64| {
            quantile(&store, q).as_secs_f64() / quantile(&direct, q).as_secs_f64().max(1e-9)
        };
        println!(
            "{backend} {:22} store {:>9.1?} raw {:>9.1?} x{:.2} (p10 x{:.2})",
            op.slug(),
            quantile(&store, 0.5),
            quantile(&direct, 0.5),
            ratio(0.5),
            ratio(0.1)
        );
        if print_deciles {
            println!("  store deciles (ms): {}", deciles(&store));
            println!("  raw deciles (ms):   {}", deciles(&direct));
        }
    }
    opened.close().await?;
    Ok(())
}
