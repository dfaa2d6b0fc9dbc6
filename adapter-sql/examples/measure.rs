//! Rough timings of the SQL adapter on a fresh database (not a benchmark suite: one run, wall
//! clock). Run in release mode:
//!
//! ```sh
//! cargo run --release -p chatstore-sql --example measure                      # SQLite file
//! cargo run --release -p chatstore-sql --example measure -- postgres://...   # a new PG database URL
//! ```

use std::time::Instant;

use chatstore_core::{
    ChatQuery, NewChat, NewMessage, NewUser, PageRequest, Result, VectorFilter, VectorItem,
};
use chatstore_sql::{SqlOptions, SqlStore};
use serde_json::{Map, json};

struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

fn lap(what: &str, start: Instant) -> Instant {
    println!(
        "{what:<58} {:>9.1} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    Instant::now()
}

async fn run(url: &str) -> Result<()> {
    let sql = SqlStore::connect(url, SqlOptions::default()).await?;
    let store = sql.store();
    println!("{} at {url}", store.backend_name());
    let user = store
        .users
        .create(NewUser::new("bench@example.com", "Bench"))
        .await?;

    let t = Instant::now();
    let chats: Vec<NewChat> = (0..10_000)
        .map(|i| NewChat {
            created_at: Some(1_700_000_000 + i),
            ..NewChat::new(&user.id, format!("Chat number {i} über alles"))
                .with_tags([format!("t{}", i % 10), format!("u{}", i % 7)])
        })
        .collect();
    for batch in chats.chunks(1000) {
        store.chats.create_many(batch.to_vec()).await?;
    }
    let mut t = lap("create 10,000 chats with 2 tags each (batches of 1,000)", t);

    let q = ChatQuery::for_user(&user.id).page(PageRequest::first(50));
    let page = store.chats.list(&q).await?;
    t = lap(&format!("list first page of 50 (total {})", page.total), t);
    let page = store.chats.list(&q.clone().with_tags(["t3", "u4"])).await?;
    t = lap(&format!("list with 2-tag filter (total {})", page.total), t);
    let page = store.chats.list(&q.clone().with_title("NUMBER 99")).await?;
    t = lap(&format!("list with title filter (total {})", page.total), t);
    let usage = store.tags.usage(&user.id).await?;
    t = lap(&format!("tag usage ({} tags)", usage.len()), t);

    let chat = store.chats.create(NewChat::new(&user.id, "long")).await?;
    let mut parent: Option<String> = None;
    for i in 0..300 {
        let mut m = NewMessage::text(&chat.id, format!("m{i}"), "user", "x".repeat(500));
        m.parent_id = parent.replace(format!("m{i}"));
        store.messages.upsert(m).await?;
    }
    t = lap("upsert 300 messages one by one into one chat", t);
    let listed = store.messages.list(&chat.id).await?;
    t = lap(&format!("list its {} messages", listed.len()), t);

    if store.capabilities().vectors {
        let mut rng = Lcg(1);
        let items: Vec<VectorItem> = (0..10_000)
            .map(|i| {
                let mut metadata = Map::new();
                metadata.insert("file_id".into(), json!(format!("f{}", i % 100)));
                VectorItem {
                    id: format!("v{i}"),
                    text: format!("chunk {i}"),
                    vector: (0..1536).map(|_| rng.next()).collect(),
                    metadata,
                }
            })
            .collect();
        for batch in items.chunks(1000) {
            store.vectors.insert("kb", batch.to_vec()).await?;
        }
        t = lap("insert 10,000 vectors of 1536 dims (batches of 1,000)", t);
        let query = vec![(0..1536).map(|_| rng.next()).collect::<Vec<f32>>()];
        store.vectors.search("kb", &query, None, 10).await?;
        t = lap("search k=10 over 10,000 x 1536 (exact scan)", t);
        store
            .vectors
            .search("kb", &query, Some(&VectorFilter::eq("file_id", "f7")), 10)
            .await?;
        lap("search k=10 with a filter selecting 1%", t);
    }
    sql.close().await;
    Ok(())
}

fn main() {
    let url = std::env::args().nth(1).unwrap_or_else(|| {
        let dir = std::env::temp_dir().join(format!("chatstore-measure-{}", std::process::id()));
        format!("sqlite://{}/webui.db", dir.display())
    });
    if let Some(path) = url.strip_prefix("sqlite://")
        && let Some(dir) = std::path::Path::new(path).parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&url)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
