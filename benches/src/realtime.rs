//! The realtime benchmark: how long a change takes from its commit to a Socket.IO client of
//! `chatstore-bridge`, and how many envelopes one bridge delivers per second to 1,000
//! connected sockets.
//!
//! Per backend (PostgreSQL: `pg_notify` + `LISTEN`; PocketBase: its realtime SSE API), a fresh
//! database (or collection prefix) gets `users` users; one bridge serves it on loopback in this
//! process, following its own store (own pool, own listener), while a second store (a writer,
//! as another replica would be) creates chats. The clients are real python-socketio 5.16.2
//! `AsyncClient`s (the library Open WebUI pins; [`CLIENT_SCRIPT`]), `sockets` of them spread
//! over `processes` Python processes, socket `i` logged in as user `i % users`, so every chat
//! created reaches `sockets / users` sockets (a user's tabs) as a `chat:list` envelope.
//!
//! Two phases, every receipt matched to its write by chat id:
//! - **paced**: one chat at a time every `pace`: the commit → client latency of a bridge that
//!   is not busy;
//! - **burst**: `writers` concurrent writers create `burst_events` chats as fast as the backend
//!   takes them, `burst_batch` chats per `create_many` transaction: deliveries per second
//!   (receipts summed over sockets, from the first write to the last receipt) and the latency
//!   under that load. Batches let the store commit changes faster than one transaction per
//!   chat allows on a small machine, so the bridge, not the writers' commit rate, is what the
//!   burst measures; `burst_batch` 1 gives one transaction per chat.
//!
//! Latency is `receipt - commit acknowledged`: the writer reads `CLOCK_REALTIME`
//! ([`SystemTime`]) when the create returns; the client reads it (`time.time_ns()`) first thing
//! in its `events` handler; same machine, same clock. A receipt can come a little before the
//! writer sees its acknowledgement (the notification races the reply), so the report also
//! gives the latency from the start of the write, which can only be larger. CPU seconds of
//! this process (bridge and writers) and of the client processes during the burst show which
//! side is the bottleneck.
//!
//! `redis` measures the other path into a bridge: Open WebUI's Socket.IO cluster. The bridge
//! (over a memory store) subscribes to a Redis channel, and a second bridge in this process
//! (another replica) sends each write with [`BridgeState::emit`] (`events` `chat:list` to the
//! owner's `user:{id}` room), which publishes it on that channel; "commit" is then the return
//! of `emit`, and the path is emit → Redis → the first bridge → its sockets.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatstore_bridge::{BridgeConfig, BridgeState, issue_token};
use chatstore_core::{NewChat, NewUser, Store};
use chatstore_registry::OpenOptions;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::backends::{
    POCKETBASE_ENV, POSTGRES_ENV, create_postgres_database, drop_postgres_database,
};
use crate::error::BenchError;
use crate::machine::Machine;
use crate::stats::group_thousands;

/// The Socket.IO client processes' program (python-socketio `AsyncClient`s in one asyncio
/// loop); written to a temporary file and run with the configured Python.
pub const CLIENT_SCRIPT: &str = include_str!("../realtime_client.py");

/// The file the realtime section is written to, beside `report.md`.
pub const REALTIME_FILE: &str = "realtime.md";

/// The issue's aim for the commit → client p99.
pub const LATENCY_AIM: Duration = Duration::from_millis(50);

/// The issue's aim for deliveries per second of one bridge to 1,000 sockets.
pub const DELIVERY_AIM: f64 = 10_000.0;

/// The backends the realtime benchmark knows, with the variable naming each one's server.
/// `memory` (no server: the writer is the bridge's own store, its feed an in-process
/// broadcast) shows the bridge's own ceiling, with a source that costs next to nothing.
pub const BACKENDS: [(&str, Option<&str>); 4] = [
    ("postgres", Some(POSTGRES_ENV)),
    ("pocketbase", Some(POCKETBASE_ENV)),
    ("memory", None),
    ("redis", Some(REDIS_ENV)),
];

/// The Redis server of the `redis` run (Open WebUI's Socket.IO cluster channel).
pub const REDIS_ENV: &str = "CHATSTORE_TEST_REDIS_URL";

/// How a run's writes are made: chats created in a store, or emits through a second bridge.
#[derive(Clone)]
enum Writer {
    Store(Store),
    Emit(BridgeState),
}

/// The key the benchmark's bridge verifies its clients' tokens with.
const SECRET: &str = "chatstore-realtime-bench";

/// How the realtime benchmark runs.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Backends to measure (`postgres`, `pocketbase`, `memory`); empty: every one whose server
    /// is set, and memory.
    pub backends: Vec<String>,
    /// Sockets connected to the bridge.
    pub sockets: usize,
    /// Users the sockets log in as (each user's chats reach `sockets / users` sockets).
    pub users: usize,
    /// Python processes holding the sockets.
    pub processes: usize,
    /// Chats created one at a time in the paced phase.
    pub paced_events: usize,
    /// Time between two paced writes.
    pub pace: Duration,
    /// Chats created in the burst phase.
    pub burst_events: usize,
    /// Concurrent writers in the burst phase.
    pub writers: usize,
    /// Chats per `create_many` call of a burst writer (1: one `create` per chat).
    pub burst_batch: usize,
    /// How long deliveries may stall before a phase gives up waiting for the missing ones.
    pub settle: Duration,
    /// The Python interpreter.
    pub python: String,
    /// Where python-socketio and aiohttp are (`CHATSTORE_TEST_SOCKETIO_PYTHONPATH`, installed
    /// by `scripts/services.sh`).
    pub pythonpath: Option<PathBuf>,
    /// Folder for `realtime.md`.
    pub out_dir: PathBuf,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            backends: Vec::new(),
            sockets: 1000,
            users: 100,
            processes: 4,
            paced_events: 300,
            pace: Duration::from_millis(20),
            burst_events: 3000,
            writers: 16,
            burst_batch: 8,
            settle: Duration::from_secs(15),
            python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned()),
            pythonpath: std::env::var_os("CHATSTORE_TEST_SOCKETIO_PYTHONPATH")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            out_dir: PathBuf::from("bench-report"),
        }
    }
}

/// Latency percentiles of matched receipts, in nanoseconds (may be negative: see the module
/// docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Receipts matched.
    pub samples: usize,
    /// Median.
    pub p50: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Largest.
    pub max: i64,
}

impl Latency {
    fn of(mut ns: Vec<i64>) -> Option<Latency> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |p: f64| {
            let rank = (p * ns.len() as f64).ceil() as usize;
            ns[rank.clamp(1, ns.len()) - 1]
        };
        Some(Latency {
            samples: ns.len(),
            p50: at(0.50),
            p99: at(0.99),
            max: ns[ns.len() - 1],
        })
    }
}

/// One phase of one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseResult {
    /// Chats created.
    pub events: usize,
    /// Envelopes the connected sockets should have received.
    pub expected: usize,
    /// Envelopes received.
    pub delivered: usize,
    /// Receipt minus the writer's commit acknowledgement.
    pub from_commit: Option<Latency>,
    /// Receipt minus the start of the write.
    pub from_write: Option<Latency>,
    /// How long the writes themselves took.
    pub write: Option<Latency>,
    /// Chats created per second (first write start to last acknowledgement).
    pub written_per_sec: f64,
    /// Envelopes received per second over all sockets (first write start to last receipt).
    pub delivered_per_sec: f64,
    /// CPU seconds of this process (bridge and writers) during the phase.
    pub cpu_bench: f64,
    /// CPU seconds of the client processes during the phase.
    pub cpu_clients: f64,
    /// Wall seconds of the phase (first write start to last receipt).
    pub wall: f64,
    /// The largest delay between a change and its arrival at the bridge's feed seen during
    /// the phase (sampled every few milliseconds): what is queued before the bridge.
    pub feed_lag_max: Duration,
}

/// The realtime measurements of one backend.
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeRun {
    /// The backend.
    pub backend: String,
    /// Sockets connected.
    pub connected: usize,
    /// Sockets that could not connect.
    pub failed: usize,
    /// How long connecting every socket took.
    pub connect: Duration,
    /// One write at a time.
    pub paced: PhaseResult,
    /// Concurrent writers, as fast as they go.
    pub burst: PhaseResult,
}

/// The realtime section.
#[derive(Debug, Clone)]
pub struct RealtimeReport {
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub config: RealtimeConfig,
    /// One run per measured backend.
    pub runs: Vec<RealtimeRun>,
    /// Backends left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// `/proc/loadavg` when the run ended.
    pub load_after: String,
}

/// Runs the realtime benchmark and writes `realtime.md` into the configured folder.
pub async fn run(config: &RealtimeConfig) -> Result<RealtimeReport, BenchError> {
    let report = measure(config).await?;
    report.write(&config.out_dir)?;
    Ok(report)
}

/// Runs the realtime benchmark without writing anything.
pub async fn measure(config: &RealtimeConfig) -> Result<RealtimeReport, BenchError> {
    check(config)?;
    let machine = Machine::detect();
    let mut runs = Vec::new();
    let mut skipped = Vec::new();
    for (name, env) in BACKENDS {
        if !config.backends.is_empty() && !config.backends.iter().any(|b| b == name) {
            continue;
        }
        let url = match env {
            None => String::new(),
            Some(env) => match std::env::var(env).ok().filter(|u| !u.is_empty()) {
                Some(url) => url,
                None => {
                    skipped.push((name.to_owned(), format!("{env} is not set")));
                    continue;
                }
            },
        };
        runs.push(run_backend(config, name, &url).await?);
    }
    let load_after = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    Ok(RealtimeReport {
        machine,
        config: config.clone(),
        runs,
        skipped,
        load_after,
    })
}

fn check(config: &RealtimeConfig) -> Result<(), BenchError> {
    let bad = |m: &str| Err(BenchError::Config(m.to_owned()));
    if let Some(unknown) = config
        .backends
        .iter()
        .find(|b| !BACKENDS.iter().any(|(n, _)| n == b))
    {
        return Err(BenchError::Config(format!(
            "the realtime benchmark knows postgres, pocketbase, memory and redis, not {unknown:?}"
        )));
    }
    if config.sockets == 0 || config.users == 0 || config.processes == 0 {
        return bad("--sockets, --users and --processes must be at least 1");
    }
    if config.users > config.sockets {
        return bad("--users must not exceed --sockets (every user needs a socket)");
    }
    if config.writers == 0 {
        return bad("--writers must be at least 1");
    }
    if config.burst_batch == 0 {
        return bad("--burst-batch must be at least 1");
    }
    if config.pythonpath.is_none() {
        return bad(
            "no python-socketio client: set CHATSTORE_TEST_SOCKETIO_PYTHONPATH \
             (`eval \"$(scripts/services.sh start)\"` installs it)",
        );
    }
    Ok(())
}

/// The two stores of a run (the bridge's and the writer's) and how to remove their data.
struct Stores {
    bridge: Store,
    writer: Store,
    teardown: Option<(String, String)>,
}

async fn open_stores(name: &str, url: &str) -> chatstore_core::Result<Stores> {
    if name == "memory" || name == "redis" {
        let store = chatstore_core::memory::store();
        return Ok(Stores {
            bridge: store.clone(),
            writer: store,
            teardown: None,
        });
    }
    if name == "postgres" {
        let (db_url, db) = create_postgres_database(url).await?;
        let opened = async {
            let writer = OpenOptions::new(&db_url).pool_size(32).open().await?;
            let bridge = OpenOptions::new(&db_url).open().await?;
            Ok::<_, chatstore_core::Error>((writer, bridge))
        }
        .await;
        return match opened {
            Ok((writer, bridge)) => Ok(Stores {
                bridge,
                writer,
                teardown: Some((url.to_owned(), db)),
            }),
            Err(e) => {
                let _ = drop_postgres_database(url, &db).await;
                Err(e)
            }
        };
    }
    let var = |n: &str| {
        std::env::var(n).map_err(|_| chatstore_core::Error::invalid(format!("{n} is not set")))
    };
    let email = var("CHATSTORE_TEST_POCKETBASE_ADMIN_EMAIL")?;
    let password = var("CHATSTORE_TEST_POCKETBASE_ADMIN_PASSWORD")?;
    let host = url.trim_end_matches('/');
    let host = host.strip_prefix("http://").ok_or_else(|| {
        chatstore_core::Error::invalid(format!("{POCKETBASE_ENV} must be an http:// URL"))
    })?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("rt{}_", &id[..10]);
    let open = |throwaway: bool| {
        OpenOptions::new(format!("pocketbase://{host}"))
            .pocketbase_superuser(&email, &password)
            .pocketbase_prefix(&prefix)
            .throwaway(throwaway)
    };
    // The writer creates the collections and deletes them when it goes (after the bridge).
    let writer = open(true).open().await?;
    let bridge = open(false).open().await?;
    Ok(Stores {
        bridge,
        writer,
        teardown: None,
    })
}

async fn run_backend(
    config: &RealtimeConfig,
    name: &str,
    url: &str,
) -> Result<RealtimeRun, BenchError> {
    let err = |e| BenchError::store(name, e);
    let stores = open_stores(name, url).await.map_err(err)?;
    let result = run_opened(config, name, &stores).await;
    let Stores {
        bridge,
        writer,
        teardown,
    } = stores;
    drop(bridge);
    drop(writer);
    if let Some((server, db)) = teardown {
        let _ = drop_postgres_database(&server, &db).await;
    }
    result
}

async fn run_opened(
    config: &RealtimeConfig,
    name: &str,
    stores: &Stores,
) -> Result<RealtimeRun, BenchError> {
    let err = |e| BenchError::store(name, e);
    let mut users = Vec::with_capacity(config.users);
    for i in 0..config.users {
        let user = stores
            .writer
            .users
            .create(NewUser {
                role: Some("user".into()),
                ..NewUser::new(format!("rt{i}@example.com"), format!("Realtime {i}"))
            })
            .await
            .map_err(err)?;
        users.push(user.id);
    }
    let exp = Some(epoch_ns() as u64 / 1_000_000_000 + 3600);
    let mut tokens = Vec::with_capacity(users.len());
    for id in &users {
        tokens.push(
            issue_token(&stores.writer, SECRET, id, exp)
                .await
                .map_err(err)?,
        );
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("127.0.0.1:0", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::io("127.0.0.1:0", e))?;
    let mut bridge_config = BridgeConfig::default().secret_key(SECRET);
    let mut writer = Writer::Store(stores.writer.clone());
    if name == "redis" {
        let target = std::env::var(REDIS_ENV)
            .map_err(|_| BenchError::Config(format!("{REDIS_ENV} is not set")))
            .and_then(|url| {
                let channel = format!("chatstore-realtime-{}", uuid::Uuid::new_v4().simple());
                chatstore_bridge::RedisTarget::parse(&url, channel).map_err(err)
            })?;
        bridge_config = bridge_config.redis(target.clone());
        let emitter = BridgeState::new(
            stores.writer.clone(),
            BridgeConfig::default()
                .secret_key(SECRET)
                .redis(target)
                .publish_changes(false),
        );
        // Its routes are never served: building them starts its Redis publisher.
        drop(chatstore_bridge::router(emitter.clone()));
        writer = Writer::Emit(emitter);
    }
    let state = BridgeState::new(stores.bridge.clone(), bridge_config);
    let served = state.clone();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, chatstore_bridge::router(served)).await;
    });
    let outcome = async {
        wait_healthy(addr, name).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while state.redis_subscribed() == Some(false) {
            if Instant::now() > deadline {
                return Err(BenchError::Config(format!(
                    "{name}: the bridge did not subscribe to Redis within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut clients = Clients::start(config, &format!("http://{addr}"), &tokens).await?;
        let connect_started = Instant::now();
        let (connected, failed) = clients.ready(Duration::from_secs(300)).await?;
        let connect = connect_started.elapsed();
        let paced = phase(config, stores, &writer, &users, &mut clients, Mode::Paced).await?;
        let burst = phase(config, stores, &writer, &users, &mut clients, Mode::Burst).await?;
        clients.stop().await;
        Ok(RealtimeRun {
            backend: name.to_owned(),
            connected,
            failed,
            connect,
            paced,
            burst,
        })
    }
    .await;
    server.abort();
    outcome
}

/// Waits until the bridge answers `/health` with 200 (its change feed is connected).
async fn wait_healthy(addr: std::net::SocketAddr, name: &str) -> Result<(), BenchError> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Config(format!(
                "{name}: the bridge's change feed did not connect within 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Paced,
    Burst,
}

/// One write: the chat, its owner's index, and when it started and was acknowledged (ns).
struct Write {
    chat_id: String,
    user: usize,
    start: i64,
    ack: i64,
}

async fn phase(
    config: &RealtimeConfig,
    stores: &Stores,
    writer: &Writer,
    users: &[String],
    clients: &mut Clients,
    mode: Mode,
) -> Result<PhaseResult, BenchError> {
    let name = stores.writer.backend_name().to_owned();
    let cpu_before = (cpu_seconds(std::process::id()), clients.cpu_seconds());
    let stop = Arc::new(AtomicBool::new(false));
    let lag = stores.bridge.changes().map(|feed| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max = 0i64;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(feed.hub().status().lag_ms);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            max
        })
    });
    let events = match mode {
        Mode::Paced => config.paced_events,
        Mode::Burst => config.burst_events,
    };
    let writes = match mode {
        Mode::Paced => {
            let mut out = Vec::with_capacity(events);
            let mut tick = tokio::time::interval(config.pace);
            for k in 0..events {
                tick.tick().await;
                out.push(
                    write_one(writer, users, k)
                        .await
                        .map_err(|e| BenchError::store(&name, e))?,
                );
            }
            out
        }
        Mode::Burst => {
            let next = Arc::new(AtomicUsize::new(0));
            let batch = config.burst_batch;
            let mut tasks = Vec::new();
            for _ in 0..config.writers {
                let next = next.clone();
                let writer = writer.clone();
                let users = users.to_vec();
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(batch, Ordering::Relaxed);
                        if k >= events {
                            return Ok::<_, chatstore_core::Error>(out);
                        }
                        let ks = k..(k + batch).min(events);
                        match &writer {
                            Writer::Store(store) if ks.len() > 1 => {
                                out.extend(write_many(store, &users, ks).await?)
                            }
                            _ => {
                                for k in ks {
                                    out.push(write_one(&writer, &users, k).await?);
                                }
                            }
                        }
                    }
                }));
            }
            let mut out = Vec::with_capacity(events);
            for task in tasks {
                let part = task
                    .await
                    .map_err(|e| BenchError::Config(format!("a writer task failed: {e}")))?
                    .map_err(|e| BenchError::store(&name, e))?;
                out.extend(part);
            }
            out
        }
    };
    let mut expected_per_process = vec![0usize; clients.procs.len()];
    for w in &writes {
        for (p, proc_) in clients.procs.iter().enumerate() {
            expected_per_process[p] += proc_.sockets_of_user[w.user];
        }
    }
    let received = clients
        .collect(&expected_per_process, config.settle)
        .await?;
    stop.store(true, Ordering::Relaxed);
    let feed_lag_max = match lag {
        Some(task) => Duration::from_millis(task.await.unwrap_or(0).max(0) as u64),
        None => Duration::ZERO,
    };
    let cpu_after = (cpu_seconds(std::process::id()), clients.cpu_seconds());
    let by_chat: HashMap<&str, &Write> = writes.iter().map(|w| (w.chat_id.as_str(), w)).collect();
    let mut from_commit = Vec::with_capacity(received.len());
    let mut from_write = Vec::with_capacity(received.len());
    let mut last_receipt = i64::MIN;
    let mut delivered = 0;
    for (chat_id, ns) in &received {
        if let Some(w) = by_chat.get(chat_id.as_str()) {
            delivered += 1;
            from_commit.push(ns - w.ack);
            from_write.push(ns - w.start);
            last_receipt = last_receipt.max(*ns);
        }
    }
    let first_start = writes.iter().map(|w| w.start).min().unwrap_or(0);
    let last_ack = writes.iter().map(|w| w.ack).max().unwrap_or(0);
    let secs = |from: i64, to: i64| (to - from).max(1) as f64 / 1e9;
    let wall = if delivered > 0 {
        secs(first_start, last_receipt)
    } else {
        0.0
    };
    Ok(PhaseResult {
        events,
        expected: expected_per_process.iter().sum(),
        delivered,
        from_commit: Latency::of(from_commit),
        from_write: Latency::of(from_write),
        write: Latency::of(writes.iter().map(|w| w.ack - w.start).collect()),
        written_per_sec: writes.len() as f64 / secs(first_start, last_ack),
        delivered_per_sec: if wall > 0.0 {
            delivered as f64 / wall
        } else {
            0.0
        },
        cpu_bench: cpu_after.0 - cpu_before.0,
        cpu_clients: cpu_after.1 - cpu_before.1,
        wall,
        feed_lag_max,
    })
}

async fn write_one(writer: &Writer, users: &[String], k: usize) -> chatstore_core::Result<Write> {
    let user = k % users.len();
    let start = epoch_ns();
    let chat_id = match writer {
        Writer::Store(store) => {
            store
                .chats
                .create(NewChat::new(&users[user], format!("realtime {k}")))
                .await?
                .id
        }
        Writer::Emit(bridge) => {
            let chat_id = uuid::Uuid::new_v4().to_string();
            let envelope = serde_json::json!({
                "chat_id": chat_id,
                "message_id": null,
                "data": {"type": "chat:list", "data": {}},
            });
            bridge
                .emit(&format!("user:{}", users[user]), "events", &envelope)
                .await?;
            chat_id
        }
    };
    let ack = epoch_ns();
    Ok(Write {
        chat_id,
        user,
        start,
        ack,
    })
}

/// Creates chats `ks` in one `create_many` transaction; they share its start and acknowledgement.
async fn write_many(
    store: &Store,
    users: &[String],
    ks: std::ops::Range<usize>,
) -> chatstore_core::Result<Vec<Write>> {
    let owners: Vec<usize> = ks.clone().map(|k| k % users.len()).collect();
    let start = epoch_ns();
    let chats = store
        .chats
        .create_many(
            ks.map(|k| NewChat::new(&users[k % users.len()], format!("realtime {k}")))
                .collect(),
        )
        .await?;
    let ack = epoch_ns();
    Ok(chats
        .into_iter()
        .zip(owners)
        .map(|(chat, user)| Write {
            chat_id: chat.id,
            user,
            start,
            ack,
        })
        .collect())
}

/// Nanoseconds since the epoch on `CLOCK_REALTIME`, the clock Python's `time.time_ns` reads.
fn epoch_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// CPU seconds (user + system) a process used so far, from `/proc/PID/stat` (0 elsewhere).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; fields after its closing parenthesis.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    match (ticks(11), ticks(12)) {
        (Some(u), Some(s)) => (u + s) / 100.0,
        _ => 0.0,
    }
}

/// The Python processes holding the sockets.
struct Clients {
    procs: Vec<ClientProc>,
    _script: tempfile::NamedTempFile,
}

struct ClientProc {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// How many of this process's sockets each user has.
    sockets_of_user: Vec<usize>,
    count: usize,
}

impl Clients {
    async fn start(
        config: &RealtimeConfig,
        url: &str,
        tokens: &[String],
    ) -> Result<Clients, BenchError> {
        let script = tempfile::Builder::new()
            .prefix("chatstore-realtime-client")
            .suffix(".py")
            .tempfile()
            .map_err(|e| BenchError::io(std::env::temp_dir(), e))?;
        std::fs::write(script.path(), CLIENT_SCRIPT)
            .map_err(|e| BenchError::io(script.path(), e))?;
        let processes = config.processes.min(config.sockets);
        let mut procs = Vec::with_capacity(processes);
        for p in 0..processes {
            let mut sockets_of_user = vec![0usize; tokens.len()];
            let mut sockets = Vec::new();
            for i in (p..config.sockets).step_by(processes) {
                let user = i % tokens.len();
                sockets_of_user[user] += 1;
                sockets.push(serde_json::json!({"token": tokens[user]}));
            }
            let spec = serde_json::json!({
                "url": url,
                "prefix": "",
                "connect_concurrency": 32,
                "sockets": sockets,
            });
            let mut cmd = Command::new(&config.python);
            cmd.arg(script.path())
                .env(
                    "PYTHONPATH",
                    config.pythonpath.as_deref().unwrap_or(Path::new("")),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .map_err(|e| BenchError::Config(format!("cannot start {}: {e}", config.python)))?;
            let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(BenchError::Config(
                    "client process without pipes".to_owned(),
                ));
            };
            let line = format!("{spec}\n");
            stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| BenchError::io("client stdin", e))?;
            let (tx, lines) = mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            procs.push(ClientProc {
                child,
                stdin,
                lines,
                sockets_of_user,
                count: 0,
            });
        }
        Ok(Clients {
            procs,
            _script: script,
        })
    }

    /// Waits for every process's `ready`; gives sockets connected and failed.
    async fn ready(&mut self, within: Duration) -> Result<(usize, usize), BenchError> {
        let deadline = tokio::time::Instant::now() + within;
        let (mut connected, mut failed) = (0, 0);
        for proc_ in &mut self.procs {
            loop {
                let line = tokio::time::timeout_at(deadline, proc_.lines.recv())
                    .await
                    .map_err(|_| {
                        BenchError::Config(format!(
                            "the Socket.IO clients did not connect within {within:?}"
                        ))
                    })?
                    .ok_or_else(|| {
                        BenchError::Config(
                            "a Socket.IO client process ended before connecting (is \
                             CHATSTORE_TEST_SOCKETIO_PYTHONPATH an install with aiohttp?)"
                                .to_owned(),
                        )
                    })?;
                if let Some(rest) = line.strip_prefix("ready ") {
                    let mut parts = rest.split_whitespace().map(|n| n.parse::<usize>());
                    if let (Some(Ok(c)), Some(Ok(f))) = (parts.next(), parts.next()) {
                        connected += c;
                        failed += f;
                    }
                    break;
                }
            }
        }
        Ok((connected, failed))
    }

    /// CPU seconds the client processes used so far.
    fn cpu_seconds(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|p| p.child.id())
            .map(cpu_seconds)
            .sum()
    }

    /// Waits until each process counted `expected` more receipts (or they stall for
    /// `settle`), then dumps and returns the receipts `(chat_id, ns)`.
    async fn collect(
        &mut self,
        expected: &[usize],
        settle: Duration,
    ) -> Result<Vec<(String, i64)>, BenchError> {
        let targets: Vec<usize> = self
            .procs
            .iter()
            .zip(expected)
            .map(|(p, e)| p.count + e)
            .collect();
        let mut last_progress = tokio::time::Instant::now();
        loop {
            let mut progressed = false;
            for proc_ in &mut self.procs {
                while let Ok(line) = proc_.lines.try_recv() {
                    if let Some(n) = line.strip_prefix("count ").and_then(|n| n.parse().ok()) {
                        if n > proc_.count {
                            progressed = true;
                        }
                        proc_.count = n;
                    }
                }
            }
            if self.procs.iter().zip(&targets).all(|(p, t)| p.count >= *t) {
                break;
            }
            if progressed {
                last_progress = tokio::time::Instant::now();
            } else if last_progress.elapsed() > settle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut out = Vec::new();
        for proc_ in &mut self.procs {
            proc_
                .stdin
                .write_all(b"dump\n")
                .await
                .map_err(|e| BenchError::io("client stdin", e))?;
            loop {
                let line = tokio::time::timeout(Duration::from_secs(60), proc_.lines.recv())
                    .await
                    .map_err(|_| BenchError::Config("a client did not dump in 60 s".to_owned()))?
                    .ok_or_else(|| {
                        BenchError::Config("a client process ended while dumping".to_owned())
                    })?;
                if let Some(rest) = line.strip_prefix("r ") {
                    let mut parts = rest.split_whitespace().skip(1);
                    if let (Some(chat), Some(Ok(ns))) =
                        (parts.next(), parts.next().map(str::parse::<i64>))
                    {
                        out.push((chat.to_owned(), ns));
                    }
                } else if let Some(n) = line.strip_prefix("dumped ") {
                    if let Ok(n) = n.trim().parse() {
                        proc_.count = n;
                    }
                    break;
                } else if let Some(n) = line.strip_prefix("count ").and_then(|n| n.parse().ok()) {
                    proc_.count = n;
                }
            }
        }
        Ok(out)
    }

    async fn stop(self) {
        for mut proc_ in self.procs {
            let _ = proc_.stdin.write_all(b"stop\n").await;
            drop(proc_.stdin);
            if tokio::time::timeout(Duration::from_secs(20), proc_.child.wait())
                .await
                .is_err()
            {
                let _ = proc_.child.kill().await;
            }
        }
    }
}

fn ms(ns: i64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// Envelopes per CPU second, or "n/a" below the 10 ms the kernel counts in.
fn per_cpu(envelopes: usize, cpu: f64) -> String {
    if cpu < 0.01 {
        "n/a".to_owned()
    } else {
        group_thousands((envelopes as f64 / cpu).round() as u64)
    }
}

fn latency_cell(l: Option<Latency>) -> String {
    match l {
        Some(l) => format!("{} / {}", ms(l.p50), ms(l.p99)),
        None => "n/a".to_owned(),
    }
}

impl RealtimeReport {
    /// Backends whose p99 (from commit, paced phase) or burst deliveries miss the aims.
    pub fn misses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for run in &self.runs {
            if let Some(l) = run.paced.from_commit
                && l.p99 > LATENCY_AIM.as_nanos() as i64
            {
                out.push(format!("{}: p99 {} > 50 ms", run.backend, ms(l.p99)));
            }
            if run.burst.delivered_per_sec < DELIVERY_AIM {
                out.push(format!(
                    "{}: {:.0} envelopes/s delivered < 10,000",
                    run.backend, run.burst.delivered_per_sec
                ));
            }
        }
        out
    }

    /// Phases whose sockets did not all receive every envelope.
    pub fn losses(&self) -> Vec<String> {
        let mut out = Vec::new();
        for run in &self.runs {
            for (phase, r) in [("paced", &run.paced), ("burst", &run.burst)] {
                if r.delivered < r.expected {
                    out.push(format!(
                        "{} {phase}: {} of {} envelopes delivered",
                        run.backend, r.delivered, r.expected
                    ));
                }
            }
        }
        out
    }

    /// The section as Markdown.
    pub fn to_markdown(&self) -> String {
        let c = &self.config;
        let m = &self.machine;
        let mut md = String::new();
        let _ = writeln!(md, "# chatstore realtime: commit → Socket.IO client\n");
        let _ = writeln!(
            md,
            "{} · {} cores · {} · {} · load {} at the start, {} at the end · {} build · commit {} · {}\n",
            m.cpu, m.nproc, m.memory, m.kernel, m.load, self.load_after, m.build, m.commit, m.date
        );
        let fanout = c.sockets as f64 / c.users as f64;
        let _ = writeln!(
            md,
            "One `chatstore-bridge` in the benchmark's process, {} python-socketio 5.16.2 \
             `AsyncClient` websockets in {} Python processes, logged in as {} users ({:.0} \
             sockets each, so a chat created reaches {:.0} sockets as `chat:list`). A second \
             store (another replica) writes; on `memory` the writer is the bridge's own store \
             (in-process feed), which shows the bridge's and the clients' ceiling; on `redis` \
             a second bridge in the benchmark's process sends each `chat:list` with \
             `BridgeState::emit` through Open WebUI's Socket.IO cluster channel, and the \
             bridge (over a memory store) delivers what it hears there (\"commit\": the \
             return of `emit`). Paced: {} chats one at a time every {} ms. \
             Burst: {} chats from {} concurrent writers, {}. Latency is the receipt time in the \
             client minus the writer's commit acknowledgement (and minus the start of the \
             write), same clock; deliveries/s count every socket's receipt, from the first \
             write to the last receipt. Feed lag: the largest delay between a change's time \
             and its arrival at the bridge's feed (PocketBase's feed stamps events when they \
             arrive, so it reads 0 there). Envelopes per CPU second: of the benchmark process \
             (bridge, and the writers except on memory) and of the client processes. Aims: \
             p99 ≤ 50 ms, ≥ 10,000 envelopes/s.\n",
            group_thousands(c.sockets as u64),
            c.processes,
            c.users,
            fanout,
            fanout,
            c.paced_events,
            c.pace.as_millis(),
            group_thousands(c.burst_events as u64),
            c.writers,
            if c.burst_batch == 1 {
                "one `create` transaction per chat".to_owned()
            } else {
                format!(
                    "{} per `create_many` transaction (so the store's commit rate does not \
                     bound the feed)",
                    c.burst_batch
                )
            }
        );
        let _ = writeln!(
            md,
            "| backend | sockets | paced p50 / p99 from commit | from write start | burst chats/s | burst envelopes/s | burst p50 / p99 from commit | burst feed lag max | delivered | CPU s in the burst: bench / clients of wall × cores | envelopes per CPU s: bench / clients |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
        for r in &self.runs {
            let _ = writeln!(
                md,
                "| {} | {} ({} failed, {:.1} s to connect) | {} | {} | {:.0} | {} | {} | {} ms | {} / {} | {:.1} / {:.1} of {:.1} s × {} | {} / {} |",
                r.backend,
                group_thousands(r.connected as u64),
                r.failed,
                r.connect.as_secs_f64(),
                latency_cell(r.paced.from_commit),
                latency_cell(r.paced.from_write),
                r.burst.written_per_sec,
                group_thousands(r.burst.delivered_per_sec.round() as u64),
                latency_cell(r.burst.from_commit),
                r.burst.feed_lag_max.as_millis(),
                group_thousands((r.paced.delivered + r.burst.delivered) as u64),
                group_thousands((r.paced.expected + r.burst.expected) as u64),
                r.burst.cpu_bench,
                r.burst.cpu_clients,
                r.burst.wall,
                m.nproc,
                per_cpu(r.burst.delivered, r.burst.cpu_bench),
                per_cpu(r.burst.delivered, r.burst.cpu_clients),
            );
        }
        for (name, why) in &self.skipped {
            let _ = writeln!(md, "\n{name}: left out ({why}).");
        }
        let misses = self.misses();
        let losses = self.losses();
        md.push('\n');
        if misses.is_empty() {
            md.push_str("Every measured backend meets both aims.\n");
        } else {
            let _ = writeln!(md, "Aims missed: {}.", misses.join("; "));
        }
        if !losses.is_empty() {
            let _ = writeln!(md, "\nNot delivered: {}.", losses.join("; "));
        }
        let _ = writeln!(
            md,
            "\nReproduce: `eval \"$(scripts/services.sh start)\"; cargo run --release -p \
             chatstore-cli -- bench-realtime --sockets {} --users {} --processes {} \
             --paced-events {} --burst-events {} --writers {} --burst-batch {}`",
            c.sockets,
            c.users,
            c.processes,
            c.paced_events,
            c.burst_events,
            c.writers,
            c.burst_batch
        );
        md
    }

    /// Writes `realtime.md` into `dir`; gives its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, BenchError> {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::io(dir, e))?;
        let path = dir.join(REALTIME_FILE);
        std::fs::write(&path, self.to_markdown()).map_err(|e| BenchError::io(&path, e))?;
        Ok(path)
    }
}
