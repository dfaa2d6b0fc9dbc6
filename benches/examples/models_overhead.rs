//! The typed models' overhead over their raw baseline, one operation at a time: loads the
//! benchmark workload into each configured SQL backend (SQLite always; PostgreSQL when
//! `CHATSTORE_TEST_POSTGRES_URL` is set), records each model operation's row reads, then runs
//! the typed call and its raw sqlx replay alternately and prints both medians, their ratio, and the ratio of their 10th percentiles (what the
//! load of a shared machine disturbs least).
//! A quicker loop than the whole report for finding where a list or get spends its time.
//!
//! `cargo run --release -p chatstore-benches --example models_overhead -- [OP_SLUG...]`
//! (slugs as in the report, e.g. `list_feedback get_note`; every model operation by default).
//! `CHATSTORE_OVERHEAD_ROUNDS` sets the rounds (default 400); `CHATSTORE_OVERHEAD_ONLY=adapter`
//! runs the typed call alone, `raw` the baseline alone (for a profiler);
//! `CHATSTORE_OVERHEAD_WARM_RAW=N` first runs N baseline calls at once, so that the raw pool
//! holds as many connections as the loaded adapter's (a diagnosis, not what the report does).

use std::time::{Duration, Instant};

use chatstore_benches::workload::DEFAULT_SEED;
use chatstore_benches::{Fixture, Op, Scale, Workload, baseline, registry};

/// The `q` quantile (0.5: the median) of the samples.
fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    let k = ((v.len() as f64 - 1.0) * q).round() as usize;
    v.get(k).copied().unwrap_or_default()
}

fn ops_model(ops: &[Op]) -> chatstore_benches::models::Model {
    ops.iter()
        .find_map(|op| match op {
            Op::List(m) | Op::Get(m) => Some(*m),
            _ => None,
        })
        .unwrap_or(chatstore_benches::models::Model::Folders)
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
    let rounds: usize = std::env::var("CHATSTORE_OVERHEAD_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(400);
    let only = std::env::var("CHATSTORE_OVERHEAD_ONLY").unwrap_or_default();
    let ops: Vec<Op> = Op::ALL
        .into_iter()
        .filter(|op| matches!(op, Op::List(_) | Op::Get(_)))
        .filter(|op| wanted.is_empty() || wanted.iter().any(|w| w == op.slug()))
        .collect();
    let workload = Workload::new(Scale::SMALL, DEFAULT_SEED);
    for spec in registry() {
        if !matches!(spec.name, "sqlite" | "postgres") {
            continue;
        }
        let Ok(url) = spec.availability() else {
            eprintln!("skipping {}", spec.name);
            continue;
        };
        let opened = spec.open(url).await?;
        workload.load(&opened.store, &|_| {}).await?;
        workload.load_rows(&opened.store, &|_| {}).await?;
        let fx = Fixture::new(workload);
        fx.record_row_plans(&opened.store).await?;
        let raw = opened.baseline.as_deref().ok_or("no baseline")?;
        if let Some(n) = std::env::var("CHATSTORE_OVERHEAD_WARM_RAW")
            .ok()
            .and_then(|n| n.parse::<u64>().ok())
        {
            // As many raw connections as the load left the adapter's pool (diagnosis only).
            let calls = (0..n).map(|i| baseline::run(raw, Op::List(ops_model(&ops)), &fx, i));
            for r in futures::future::join_all(calls).await {
                r?;
            }
        }
        for &op in &ops {
            let (mut a, mut r, mut s) = (Vec::new(), Vec::new(), Vec::new());
            let rows = opened.store.rows()?;
            for i in 0..rounds as u64 {
                if only == "raw" {
                    baseline::run(raw, op, &fx, i).await?;
                    continue;
                }
                let t = Instant::now();
                op.run(&opened.store, &fx, i).await?;
                a.push(t.elapsed());
                if only != "adapter" {
                    let t = Instant::now();
                    baseline::run(raw, op, &fx, i).await?;
                    r.push(t.elapsed());
                    // The same reads through the row store alone (no records).
                    let plan = fx.row_plan(op, i).ok_or("no plan")?;
                    let t = Instant::now();
                    for call in plan.iter() {
                        if call.count {
                            std::hint::black_box(rows.count(call.table, &call.query.filter).await?);
                        } else {
                            std::hint::black_box(rows.select(call.table, &call.query).await?);
                        }
                    }
                    s.push(t.elapsed());
                }
            }
            let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64().max(1e-9);
            let (a10, r10) = (quantile(&mut a, 0.1), quantile(&mut r, 0.1));
            let (a, r, s) = (
                quantile(&mut a, 0.5),
                quantile(&mut r, 0.5),
                quantile(&mut s, 0.5),
            );
            println!(
                "{:8} {:24} adapter {:>9.1?} rows {:>9.1?} raw {:>9.1?} x{:.2} (rows x{:.2}, p10 x{:.2})",
                spec.name,
                op.slug(),
                a,
                s,
                r,
                ratio(a, r),
                ratio(s, r),
                ratio(a10, r10)
            );
        }
        opened.close().await?;
    }
    Ok(())
}
