//! Criterion benches of chatstore: one group per operation (`create_chat`, `get_chat`, ...),
//! one function per configured backend, plus `{backend}/{baseline}` for its raw baseline.
//!
//! `CHATSTORE_BENCH_SCALE` sets the workload (`1k` by default, so `cargo bench` finishes in
//! minutes; `10k`, `100k` for more). Backends whose server variable is unset are skipped with a
//! line on stderr. Write operations delete what they created every 64 iterations, outside the
//! timed part, so the store does not grow while criterion samples it; they use flat sampling
//! with 10 samples, since a write can take milliseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chatstore_benches::workload::DEFAULT_SEED;
use chatstore_benches::{Fixture, Op, Opened, Scale, Workload, baseline, registry};
use chatstore_core::ErrorKind;
use criterion::{Criterion, SamplingMode};

/// Iterations between two clean-ups of what write operations created.
const CLEAN_EVERY: u64 = 64;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the benches");
    let scale: Scale = match std::env::var("CHATSTORE_BENCH_SCALE") {
        Ok(s) => s
            .parse()
            .expect("CHATSTORE_BENCH_SCALE is a scale such as 1k or 100k"),
        Err(_) => Scale::SMALL,
    };
    let workload = Workload::new(scale, DEFAULT_SEED);
    let mut backends: Vec<(&'static str, Opened)> = Vec::new();
    for spec in registry() {
        match spec.availability() {
            Ok(url) => {
                let opened = runtime
                    .block_on(spec.open(url))
                    .unwrap_or_else(|e| panic!("opening {}: {e}", spec.name));
                runtime
                    .block_on(workload.load(&opened.store, &|_| {}))
                    .unwrap_or_else(|e| {
                        panic!("loading the {scale} workload into {}: {e}", spec.name)
                    });
                runtime
                    .block_on(workload.load_rows(&opened.store, &|_| {}))
                    .unwrap_or_else(|e| {
                        panic!("loading the {scale} notes into {}: {e}", spec.name)
                    });
                backends.push((spec.name, opened));
            }
            Err(reason) => eprintln!("chatstore-benches: skipping {}: {reason}", spec.name),
        }
    }
    let fx = Fixture::new(workload);
    for (name, opened) in &backends {
        runtime
            .block_on(fx.record_row_plans(&opened.store))
            .unwrap_or_else(|e| panic!("recording the model reads on {name}: {e}"));
    }
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    for op in Op::ALL {
        let mut group = criterion.benchmark_group(op.slug());
        if op.creates_records() || op == Op::AddRemoveTag {
            // Writes can take milliseconds (the memory backend copies its state per write):
            // flat sampling keeps criterion from running thousands of them per sample.
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
        }
        for (name, opened) in &backends {
            if op.supported_by(opened.store.capabilities()) {
                group.bench_function(*name, |b| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        timed(iters, &fx, opened, |i| op.run(&opened.store, &fx, i))
                    })
                });
            }
            let Some(raw) = opened.baseline.as_deref() else {
                continue;
            };
            let probe = runtime.block_on(baseline::run(raw, op, &fx, 0));
            match probe {
                Err(e) if e.kind() == ErrorKind::Unsupported => continue,
                Err(e) => panic!("{name} {} {}: {e}", raw.name(), op.slug()),
                Ok(()) => {}
            }
            group.bench_function(format!("{name}/{}", raw.name()), |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    timed(iters, &fx, opened, |i| baseline::run(raw, op, &fx, i))
                })
            });
        }
        group.finish();
        for (_, opened) in &backends {
            runtime
                .block_on(fx.clean_up(&opened.store))
                .expect("cleaning up after the group");
        }
    }
    criterion.final_summary();
    for (name, opened) in backends {
        if let Err(e) = runtime.block_on(opened.close()) {
            eprintln!("chatstore-benches: tearing {name} down: {e}");
        }
    }
}

static ITERATION: AtomicU64 = AtomicU64::new(0);

/// Runs `iters` iterations of `run`, timing only them, and cleans up every [`CLEAN_EVERY`].
async fn timed<'a, F, Fut>(iters: u64, fx: &'a Fixture, opened: &'a Opened, run: F) -> Duration
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = chatstore_core::Result<()>>,
{
    let mut total = Duration::ZERO;
    for k in 0..iters {
        let i = ITERATION.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        run(i).await.expect("a benchmarked operation failed");
        total += started.elapsed();
        if k % CLEAN_EVERY == CLEAN_EVERY - 1 {
            fx.clean_up(&opened.store).await.expect("clean-up");
        }
    }
    fx.clean_up(&opened.store).await.expect("clean-up");
    total
}
