//! The router's own cost, measured in one process with the calls interleaved: a read through
//! the router (dual and shadow) against the same read on the old store alone, and a dual write
//! against the same write on each store alone and against both writes run at once without the
//! router (what the machine charges for running them together). SQLite (old, a temporary file) and PocketBase
//! (new, collections of their own on `CHATSTORE_TEST_POCKETBASE_URL`).
//!
//! `cargo run --release -p chatstore-router --example overhead` (after
//! `eval "$(scripts/services.sh start)"`). Prints medians and the median of per-pair ratios.

use std::time::{Duration, Instant};

use chatstore_core::{ModelGroup, NewChat, NewUser, Store};
use chatstore_pocketbase::{PocketBase, PocketBaseConfig};
use chatstore_router::{Phase, Router};
use chatstore_sql::SqlOptions;

const ROUNDS: usize = 400;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pb = std::env::var("CHATSTORE_TEST_POCKETBASE_URL")?;
    let email = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL")?;
    let password = std::env::var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD")?;
    let dir =
        std::env::temp_dir().join(format!("chatstore-router-overhead-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let old = chatstore_sql::connect(
        &format!("sqlite://{}", dir.join("webui.db").display()),
        SqlOptions::default(),
    )
    .await?;
    let prefix = format!("ov{}_", std::process::id());
    let new: Store = PocketBase::connect(
        PocketBaseConfig::new(&pb, &email, &password)
            .with_prefix(prefix)
            .dropping_collections_on_drop(),
    )
    .await?
    .store();
    let router = Router::builder(old.clone())
        .new_store_for_all(&new)
        .phase_for_all(Phase::Dual)
        .repair_log(dir.join("repair.jsonl"))
        .build()?;
    let routed = router.store();
    let user = routed
        .users
        .create(NewUser::new("ada@example.com", "Ada"))
        .await?;
    let mut ids = Vec::new();
    for i in 0..50 {
        let chat = NewChat::new(&user.id, format!("chat {i}"));
        ids.push(routed.chats.create(chat).await?.id);
    }
    for phase in [Phase::Dual, Phase::Shadow] {
        router.set_phase(ModelGroup::Chats, phase).await?;
        let (mut alone, mut through, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for k in 0..ROUNDS {
            let id = &ids[k % ids.len()];
            let t = Instant::now();
            old.chats.get(id).await?;
            let a = micros(t.elapsed());
            let t = Instant::now();
            routed.chats.get(id).await?;
            let b = micros(t.elapsed());
            router.shadow_settled().await;
            alone.push(a);
            through.push(b);
            ratios.push(b / a);
        }
        println!(
            "get chat, {phase:<6}: old alone {:>8.1} µs  routed {:>8.1} µs  median pair ratio {:.3}",
            median(alone),
            median(through),
            median(ratios)
        );
    }
    router.set_phase(ModelGroup::Chats, Phase::Dual).await?;
    let (mut o, mut n, mut r, mut ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut both, mut own) = (Vec::new(), Vec::new());
    for k in 0..ROUNDS / 4 {
        let chat = |s: &str| NewChat::new(&user.id, format!("{s} {k}"));
        let t = Instant::now();
        old.chats.create(chat("old")).await?;
        let a = micros(t.elapsed());
        let t = Instant::now();
        new.chats.create(chat("new")).await?;
        let b = micros(t.elapsed());
        // The two writes at once without the router (the new one on a task of its own, as
        // the router runs it): what running both costs on this machine, router aside.
        let t = Instant::now();
        let (new_repo, new_chat) = (new.chats.clone(), chat("both new"));
        let task = tokio::spawn(async move { new_repo.create(new_chat).await });
        old.chats.create(chat("both old")).await?;
        task.await??;
        let p = micros(t.elapsed());
        let t = Instant::now();
        routed.chats.create(chat("routed")).await?;
        let c = micros(t.elapsed());
        o.push(a);
        n.push(b);
        both.push(p);
        r.push(c);
        ratios.push(c / a.max(b));
        own.push(c / p);
    }
    println!(
        "create chat, dual: old alone {:>8.1} µs  new alone {:>8.1} µs  both at once {:>8.1} µs  routed {:>8.1} µs  median ratio to the slower {:.3}, to both at once {:.3}",
        median(o),
        median(n),
        median(both),
        median(r),
        median(ratios),
        median(own)
    );
    println!("repairs logged: {}", router.stats().repairs_logged);
    drop(routed);
    drop(router);
    drop(new);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
