//! The router's own CPU per call, with the stores out of the way: memory (old) + memory (new),
//! the bench workload at a small scale. Prints the median time per call of each operation on
//! the old store alone and through the router in `dual` and `shadow`.
//!
//! `cargo run --release -p chatstore-benches --example router_cpu [ROUNDS]`

use std::time::{Duration, Instant};

use chatstore_benches::models::Model;
use chatstore_benches::ops::{Fixture, Op};
use chatstore_benches::{Scale, Workload};
use chatstore_core::{Store, memory};
use chatstore_router::{Phase, Router};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let ops = [
        Op::GetChat,
        Op::ListChatsFirstPage,
        Op::GetFile,
        Op::CreateChat,
        Op::UpsertMessage,
        Op::AddRemoveTag,
        Op::PutFile,
        Op::Get(Model::Channels),
        Op::List(Model::Channels),
    ];
    let workload = Workload::new(Scale::new(200), 7);
    let dir = std::env::temp_dir().join(format!("chatstore-router-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut stores: Vec<(String, Store, Option<Router>)> = Vec::new();
    let alone = memory::store();
    workload.load(&alone, &|_| {}).await?;
    workload.load_rows(&alone, &|_| {}).await?;
    stores.push(("alone".into(), alone, None));
    for phase in [Phase::Dual, Phase::Shadow] {
        let router = Router::builder(memory::store())
            .new_store_for_all(&memory::store())
            .phase_for_all(phase)
            .repair_log(dir.join(format!("{phase}-repair.jsonl")))
            .build()?;
        let store = router.store();
        workload.load(&store, &|_| {}).await?;
        workload.load_rows(&store, &|_| {}).await?;
        router.shadow_settled().await;
        stores.push((phase.to_string(), store, Some(router)));
    }
    let only = std::env::var("ROUTER_CPU_ONLY").ok();
    for op in ops {
        let mut line = format!("{:<20}", op.name());
        for (name, store, router) in &stores {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let fx = Fixture::new(workload);
            let mut times = Vec::with_capacity(rounds);
            for i in 0..rounds as u64 {
                let t = Instant::now();
                op.run(store, &fx, i).await?;
                times.push(t.elapsed());
                if let Some(router) = router {
                    router.shadow_settled().await;
                }
            }
            fx.clean_up(store).await?;
            line.push_str(&format!(
                " {name} {:>8.1} µs",
                median(times).as_secs_f64() * 1e6
            ));
        }
        println!("{line}");
    }
    for (name, _, router) in &stores {
        if let Some(router) = router {
            println!("{name}: {:?}", router.stats());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
