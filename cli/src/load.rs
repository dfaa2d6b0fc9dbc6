//! `chatstore load`: N replica processes (this binary re-invoked as `load-worker`), each with
//! its own store and pool, drive a realistic mix of calls into the same user's shared chats for
//! S seconds; then the invariants are checked on the database and throughput, p50/p95/p99 per
//! operation and errors by kind are printed.
//!
//! Invariants: every acknowledged message is a row exactly once and is in its chat's blob
//! history (no lost update between replicas upserting into one chat); each blob history equals
//! the chat's message rows; every acknowledged chat exists; each tag's usage equals the chats
//! whose tag set holds it; no orphan tags.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chatstore_core::{
    ChatQuery, NewChat, NewFile, NewMessage, NewUser, PageRequest, Store, VectorItem,
};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `chatstore load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The store every replica opens (`postgres://...`, `sqlite://PATH`, `pocketbase://...`;
    /// Open WebUI's `DATABASE_URL` is accepted). The replicas get it through their
    /// environment, never on their command line, where any user of the machine could read it.
    #[arg(long, env = "CHATSTORE_DATABASE_URL")]
    database_url: Option<String>,
    /// Replica processes.
    #[arg(long, default_value_t = 2)]
    replicas: usize,
    /// Concurrent clients per replica.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// How long the load runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// A command run (through `sh -c`) during the load, to inject a fault: restart the
    /// database, kill a connection, cut the network. The report then measures the recovery.
    #[arg(long)]
    fault: Option<String>,
    /// Seconds after the replicas start when `--fault` runs.
    #[arg(long, default_value_t = 2.0, requires = "fault")]
    fault_at: f64,
}

/// Arguments of the hidden `chatstore load-worker` (one replica of a load run).
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The store; `chatstore load` passes it in `CHATSTORE_DATABASE_URL`.
    #[arg(long, env = "CHATSTORE_DATABASE_URL")]
    database_url: Option<String>,
    #[arg(long)]
    worker: usize,
    #[arg(long)]
    clients: usize,
    #[arg(long)]
    seconds: u64,
    #[arg(long)]
    user: String,
    /// Comma-separated ids of the chats every replica writes into.
    #[arg(long)]
    chats: String,
}

const SHARED_CHATS: usize = 4;
/// The longest run `--seconds` may ask for (a day), and the latest `--fault-at`.
const MAX_SECONDS: u64 = 86_400;
const TAGS: [&str; 3] = ["load-a", "load-b", "load-c"];
const DIMENSION: usize = 8;

/// What one client did: every call (when, what, how it ended, how long), acknowledged writes.
#[derive(Default)]
struct Tally {
    calls: Vec<Call>,
    messages: Vec<(String, String)>,
    chats: Vec<String>,
    /// The first error message seen per `"operation: kind"`, so a report names its failures.
    samples: BTreeMap<String, String>,
}

/// One call of a load run, as a replica reports it: `[start, operation, error kind or null,
/// milliseconds]`, the start in Unix milliseconds so the replicas' timelines line up.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Call(u64, String, Option<String>, f64);

impl Call {
    fn start(&self) -> u64 {
        self.0
    }
    fn op(&self) -> &str {
        &self.1
    }
    fn error(&self) -> Option<&str> {
        self.2.as_deref()
    }
    fn end(&self) -> u64 {
        self.0 + self.3.max(0.0).ceil() as u64
    }
    fn millis(&self) -> f64 {
        self.3
    }
}

/// Unix time in milliseconds.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Tally {
    fn record<T>(
        &mut self,
        op: &'static str,
        started: Instant,
        result: &chatstore_core::Result<T>,
    ) {
        let took = started.elapsed();
        let start = unix_millis().saturating_sub(u64::try_from(took.as_millis()).unwrap_or(0));
        if let Err(e) = result {
            self.samples
                .entry(format!("{op}: {}", e.kind()))
                .or_insert_with(|| e.to_string());
        }
        self.calls.push(Call(
            start,
            op.to_owned(),
            result.as_ref().err().map(|e| e.kind().to_string()),
            took.as_secs_f64() * 1000.0,
        ));
    }
}

async fn client(store: Store, args: &WorkerArgs, chats: &[String], client: usize) -> Tally {
    let mut tally = Tally::default();
    // `run_worker` refused a duration the clock cannot add.
    let deadline = Instant::now()
        .checked_add(Duration::from_secs(args.seconds))
        .unwrap_or_else(Instant::now);
    let caps = store.capabilities();
    let collection = format!("load_{}_{client}", args.worker);
    let mut n = 0usize;
    while Instant::now() < deadline {
        let chat = &chats[n.wrapping_add(args.worker).wrapping_add(client) % chats.len()];
        let t = Instant::now();
        match n % 10 {
            0..=3 => {
                let id = format!("m-{}-{client}-{n}", args.worker);
                let r = store
                    .messages
                    .upsert(NewMessage::text(chat, &id, "user", "load"))
                    .await;
                tally.record("upsert message", t, &r);
                if r.is_ok() {
                    tally.messages.push((chat.clone(), id));
                }
            }
            4 => {
                let r = store
                    .chats
                    .create(NewChat::new(&args.user, format!("load {n}")))
                    .await;
                tally.record("create chat", t, &r);
                if let Ok(c) = r {
                    tally.chats.push(c.id);
                }
            }
            5 => {
                let tag = TAGS[n % TAGS.len()];
                let r = if n % 20 < 10 {
                    store.chats.add_tag(chat, tag).await
                } else {
                    store.chats.remove_tag(chat, tag).await
                };
                tally.record("tag change", t, &r);
            }
            6 => {
                let mut q = ChatQuery::for_user(&args.user);
                q.page = PageRequest {
                    offset: 0,
                    limit: Some(20),
                };
                let r = store.chats.list(&q).await;
                tally.record("list chats", t, &r);
            }
            7 => {
                let mut q = ChatQuery::for_user(&args.user);
                q.title = Some("shared".into());
                let r = store.chats.list(&q).await;
                tally.record("search titles", t, &r);
            }
            8 if caps.files => {
                let bytes = format!("load file {n}").into_bytes();
                let r = store
                    .files
                    .put(NewFile::new(&args.user, "load.txt", bytes))
                    .await;
                tally.record("put file", t, &r);
                if let Ok(meta) = r {
                    let t = Instant::now();
                    let r = store.files.read(&meta.id).await;
                    tally.record("get file", t, &r);
                }
            }
            9 if caps.vectors => {
                let vector: Vec<f32> = (0..DIMENSION).map(|i| ((n + i) % 7) as f32 + 1.0).collect();
                let item = VectorItem {
                    id: format!("v-{}-{client}-{n}", args.worker),
                    text: "load".into(),
                    vector: vector.clone(),
                    metadata: serde_json::Map::new(),
                };
                let r = store.vectors.upsert(&collection, vec![item]).await;
                tally.record("insert vector", t, &r);
                let t = Instant::now();
                let r = store.vectors.search(&collection, &[vector], None, 5).await;
                tally.record("search vectors", t, &r);
            }
            _ => {}
        }
        n += 1;
    }
    tally
}

/// Runs one replica: its clients, then one JSON line on stdout.
pub async fn run_worker(args: WorkerArgs) -> Result<(), String> {
    check_seconds(args.seconds)?;
    let url = crate::open::required_url(args.database_url.clone(), "load-worker")
        .map_err(|e| e.to_string())?;
    let store = open_retrying(&url).await?;
    let chats: Vec<String> = args.chats.split(',').map(str::to_owned).collect();
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let store = store.clone();
        let chats = chats.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            client(store, &args, &chats, c).await
        }));
    }
    let mut out = Tally::default();
    for task in tasks {
        let t = task
            .await
            .map_err(|e| format!("a load client failed: {e}"))?;
        out.calls.extend(t.calls);
        out.messages.extend(t.messages);
        out.chats.extend(t.chats);
        for (key, message) in t.samples {
            out.samples.entry(key).or_insert(message);
        }
    }
    let doc = json!({
        "calls": out.calls,
        "messages": out.messages,
        "chats": out.chats,
        "error_samples": out.samples,
    });
    crate::emit(&format!("{doc}\n"));
    Ok(())
}

/// Opens the store, retrying what may succeed when tried again: replicas starting together
/// race to create the schema (a deadlock or serialization failure answers `Unavailable`).
async fn open_retrying(url: &str) -> Result<Store, String> {
    let mut wait = Duration::from_millis(100);
    for _ in 0..8 {
        match crate::open::open(url).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_retryable() => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    crate::open::open(url).await.map_err(|e| e.to_string())
}

/// Count, rate and percentiles per operation of successful calls.
fn per_operation(ok: &[&Call], seconds: f64) -> serde_json::Map<String, Value> {
    let mut latencies: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for c in ok {
        latencies.entry(c.op()).or_default().push(c.millis());
    }
    let mut ops = serde_json::Map::new();
    for (op, mut l) in latencies {
        l.sort_by(f64::total_cmp);
        ops.insert(
            op.to_owned(),
            json!({
                "count": l.len(),
                "per_second": l.len() as f64 / seconds.max(1e-9),
                "p50_ms": percentile(&l, 50.0),
                "p95_ms": percentile(&l, 95.0),
                "p99_ms": percentile(&l, 99.0),
                "max_ms": l.last().copied().unwrap_or_default(),
            }),
        );
    }
    ops
}

/// A fault injected during a run: the command, when it ran, how it ended.
struct Fault {
    command: String,
    started_ms: u64,
    ended_ms: u64,
    outcome: std::result::Result<(), String>,
}

/// Runs `command` through `sh -c` once `at` seconds have passed.
async fn inject(command: &str, at: f64) -> Fault {
    tokio::time::sleep(Duration::from_secs_f64(at.max(0.0))).await;
    let started_ms = unix_millis();
    let outcome = match tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .await
    {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("exited with {status}")),
        Err(e) => Err(format!("could not run: {e}")),
    };
    Fault {
        command: command.to_owned(),
        started_ms,
        ended_ms: unix_millis(),
        outcome,
    }
}

impl Fault {
    /// What the fault did to the calls: how long calls kept failing, when every call
    /// succeeded again (the recovery, from the fault's start), and the latencies of the calls
    /// made in between, per operation.
    fn report(&self, calls: &[Call], run_started_ms: u64) -> Value {
        let since = |ms: u64| ms.saturating_sub(self.started_ms) as f64 / 1000.0;
        let failed: Vec<&Call> = calls
            .iter()
            .filter(|c| c.error().is_some() && c.end() >= self.started_ms)
            .collect();
        let last_failure = failed.iter().map(|c| c.end()).max();
        // Recovered: the first call to succeed once the fault's command is over (the server
        // back, for a restart) and the last failing call has answered.
        let settled_after = last_failure.unwrap_or(0).max(self.ended_ms);
        let recovered = calls
            .iter()
            .filter(|c| c.error().is_none() && c.end() >= settled_after)
            .map(|c| c.end())
            .min();
        let window_end = recovered.unwrap_or(u64::MAX);
        let window: Vec<&Call> = calls
            .iter()
            .filter(|c| {
                c.error().is_none() && c.end() >= self.started_ms && c.start() <= window_end
            })
            .collect();
        let seconds =
            (window_end.min(unix_millis()) - self.started_ms.min(window_end)) as f64 / 1000.0;
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for c in &failed {
            *errors
                .entry(c.error().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        json!({
            "command": self.command,
            "at_seconds": self.started_ms.saturating_sub(run_started_ms) as f64 / 1000.0,
            "took_seconds": (self.ended_ms - self.started_ms.min(self.ended_ms)) as f64 / 1000.0,
            "succeeded": self.outcome.is_ok(),
            "error": self.outcome.as_ref().err(),
            "failed_calls": failed.len(),
            "errors_by_kind": errors,
            "failing_seconds": last_failure.map_or(0.0, since),
            "recovery_seconds": recovered.map(since),
            "window": per_operation(&window, seconds.max(1e-3)),
        })
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs `chatstore load`.
pub async fn run(args: LoadArgs) -> Result<(), String> {
    if args.replicas == 0 || args.clients == 0 || args.seconds == 0 {
        return Err("--replicas, --clients and --seconds must be at least 1".into());
    }
    check_seconds(args.seconds)?;
    if !(args.fault_at.is_finite() && args.fault_at >= 0.0 && args.fault_at <= MAX_SECONDS as f64) {
        return Err(format!(
            "--fault-at must be a number of seconds from 0 to {MAX_SECONDS}, got {}",
            args.fault_at
        ));
    }
    let url =
        crate::open::required_url(args.database_url.clone(), "load").map_err(|e| e.to_string())?;
    let store = open_retrying(&url).await?;
    let run_id = uuid_like();
    let user = store
        .users
        .create(NewUser::new(format!("load-{run_id}@example.com"), "Load"))
        .await
        .map_err(|e| format!("cannot create the load user: {e}"))?;
    let mut chats = Vec::new();
    for i in 0..SHARED_CHATS {
        let chat = store
            .chats
            .create(NewChat::new(&user.id, format!("shared {i}")))
            .await
            .map_err(|e| format!("cannot create a shared chat: {e}"))?;
        chats.push(chat.id);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let started = Instant::now();
    let started_ms = unix_millis();
    let mut children = Vec::new();
    for w in 0..args.replicas {
        let child = worker_command(&exe, &url, w, &args, &user.id, &chats)
            .spawn()
            .map_err(|e| format!("cannot start replica {w}: {e}"))?;
        children.push(child);
    }
    let fault = match &args.fault {
        Some(command) => Some(inject(command, args.fault_at).await),
        None => None,
    };
    let mut calls: Vec<Call> = Vec::new();
    let mut messages: Vec<(String, String)> = Vec::new();
    let mut created: Vec<String> = Vec::new();
    let mut samples: BTreeMap<String, String> = BTreeMap::new();
    for (w, child) in children.into_iter().enumerate() {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("replica {w}: {e}"))?;
        if !out.status.success() {
            return Err(format!("replica {w} failed ({})", out.status));
        }
        let doc: Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("replica {w} reported no result: {e}"))?;
        let field = |name: &str| doc[name].clone();
        let made_calls: Vec<Call> = serde_json::from_value(field("calls"))
            .map_err(|e| format!("replica {w} reported unreadable calls: {e}"))?;
        let acked: Vec<(String, String)> =
            serde_json::from_value(field("messages")).unwrap_or_default();
        let made: Vec<String> = serde_json::from_value(field("chats")).unwrap_or_default();
        let seen: BTreeMap<String, String> =
            serde_json::from_value(field("error_samples")).unwrap_or_default();
        for (key, message) in seen {
            samples.entry(key).or_insert(message);
        }
        calls.extend(made_calls);
        messages.extend(acked);
        created.extend(made);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let violations = check_invariants(&store, &user.id, &chats, &messages, &created).await;
    calls.sort_by_key(Call::start);
    let ok: Vec<&Call> = calls.iter().filter(|c| c.error().is_none()).collect();
    let total = ok.len();
    let ops = per_operation(&ok, args.seconds as f64);
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for c in calls.iter().filter_map(|c| Some((c.op(), c.error()?))) {
        *errors.entry(format!("{}: {}", c.0, c.1)).or_default() += 1;
    }
    let fault = fault.map(|f| f.report(&calls, started_ms));
    let report = json!({
        "backend": store.backend_name(),
        "replicas": args.replicas,
        "clients_per_replica": args.clients,
        "seconds": args.seconds,
        "wall_seconds": elapsed,
        "calls": total,
        "throughput_per_second": total as f64 / args.seconds as f64,
        "operations": ops,
        "errors": errors,
        "error_samples": samples,
        "fault": fault,
        "acknowledged_messages": messages.len(),
        "invariant_violations": violations,
    });
    if args.json {
        crate::emit(&format!("{report:#}\n"));
    } else {
        crate::emit(&render(&report));
    }
    let mut failures = Vec::new();
    if !violations.is_empty() {
        failures.push(format!("{} invariant(s) violated", violations.len()));
    }
    if let Some(f) = report["fault"].as_object() {
        let command = f["command"].as_str().unwrap_or_default();
        if let Some(error) = f["error"].as_str() {
            failures.push(format!("the fault command `{command}` failed ({error})"));
        }
        if f["recovery_seconds"].is_null() {
            failures.push(format!(
                "calls were not recovered within the run after the fault `{command}`"
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

/// `InvalidInput`-style refusal of a run longer than [`MAX_SECONDS`] (its deadline would not
/// fit the clock).
fn check_seconds(seconds: u64) -> Result<(), String> {
    if seconds > MAX_SECONDS {
        return Err(format!(
            "--seconds must be a number of seconds from 1 to {MAX_SECONDS}, got {seconds}"
        ));
    }
    Ok(())
}

/// The command starting replica `worker`: the store's URL goes in its environment
/// (`CHATSTORE_DATABASE_URL`), since a command line is readable by every user of the machine
/// (`ps`, `/proc/PID/cmdline`) and the URL may hold a password.
fn worker_command(
    exe: &std::path::Path,
    url: &str,
    worker: usize,
    args: &LoadArgs,
    user: &str,
    chats: &[String],
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("load-worker")
        .args(["--worker", &worker.to_string()])
        .args(["--clients", &args.clients.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--user", user])
        .args(["--chats", &chats.join(",")])
        .env("CHATSTORE_DATABASE_URL", url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

fn render(report: &Value) -> String {
    let mut out = format!(
        "{} replicas x {} clients on {} for {} s: {} calls, {:.1} calls/s\n",
        report["replicas"],
        report["clients_per_replica"],
        report["backend"].as_str().unwrap_or_default(),
        report["seconds"],
        report["calls"],
        report["throughput_per_second"].as_f64().unwrap_or_default(),
    );
    out.push_str(&format!(
        "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "operation", "count", "per s", "p50 ms", "p95 ms", "p99 ms"
    ));
    if let Some(ops) = report["operations"].as_object() {
        for (op, v) in ops {
            out.push_str(&format!(
                "{op:<16} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2}\n",
                v["count"].as_u64().unwrap_or_default(),
                v["per_second"].as_f64().unwrap_or_default(),
                v["p50_ms"].as_f64().unwrap_or_default(),
                v["p95_ms"].as_f64().unwrap_or_default(),
                v["p99_ms"].as_f64().unwrap_or_default(),
            ));
        }
    }
    match report["errors"].as_object() {
        Some(e) if !e.is_empty() => {
            out.push_str("errors by kind:\n");
            for (k, v) in e {
                out.push_str(&format!("  {k}: {v}\n"));
                if let Some(sample) = report["error_samples"][k].as_str() {
                    out.push_str(&format!("    e.g. {sample}\n"));
                }
            }
        }
        _ => out.push_str("errors: none\n"),
    }
    if let Some(f) = report["fault"].as_object() {
        let recovery = match f["recovery_seconds"].as_f64() {
            Some(s) => format!("all calls succeed again {s:.2} s after it began"),
            None => "not recovered within the run".to_owned(),
        };
        out.push_str(&format!(
            "fault `{}` at {:.1} s (took {:.2} s, {}): calls failed for {:.2} s, {recovery}\n",
            f["command"].as_str().unwrap_or_default(),
            f["at_seconds"].as_f64().unwrap_or_default(),
            f["took_seconds"].as_f64().unwrap_or_default(),
            if f["succeeded"].as_bool().unwrap_or(false) {
                "succeeded"
            } else {
                "FAILED"
            },
            f["failing_seconds"].as_f64().unwrap_or_default(),
        ));
        if let Some(window) = f["window"].as_object() {
            for (op, v) in window {
                out.push_str(&format!(
                    "  during the fault {op:<16} {:>6} ok  p99 {:>9.2} ms  max {:>9.2} ms\n",
                    v["count"].as_u64().unwrap_or_default(),
                    v["p99_ms"].as_f64().unwrap_or_default(),
                    v["max_ms"].as_f64().unwrap_or_default(),
                ));
            }
        }
    }
    match report["invariant_violations"].as_array() {
        Some(v) if !v.is_empty() => {
            out.push_str("INVARIANTS VIOLATED:\n");
            for line in v {
                out.push_str(&format!("  {}\n", line.as_str().unwrap_or_default()));
            }
        }
        _ => out.push_str(&format!(
            "invariants hold: {} acknowledged messages present once, blob histories = rows, tag sets = tag links, no orphan tags\n",
            report["acknowledged_messages"]
        )),
    }
    out
}

/// Every invariant the run must keep; one line per violation.
async fn check_invariants(
    store: &Store,
    user_id: &str,
    chats: &[String],
    messages: &[(String, String)],
    created: &[String],
) -> Vec<String> {
    let mut bad = Vec::new();
    for chat in chats {
        let rows = match store.messages.list(chat).await {
            Ok(rows) => rows,
            Err(e) => {
                bad.push(format!("cannot list messages of {chat}: {e}"));
                continue;
            }
        };
        let ids: Vec<String> = rows.into_iter().map(|m| m.id).collect();
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        if unique.len() != ids.len() {
            bad.push(format!("chat {chat}: a message row is doubled"));
        }
        let lost = messages
            .iter()
            .filter(|(c, id)| c == chat && !unique.contains(id))
            .count();
        if lost > 0 {
            bad.push(format!("chat {chat}: {lost} acknowledged messages lost"));
        }
        match store.chats.get(chat).await {
            Ok(c) => {
                let history: BTreeSet<String> = c.chat["history"]["messages"]
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                if history != unique {
                    bad.push(format!(
                        "chat {chat}: blob history ({}) differs from message rows ({})",
                        history.len(),
                        unique.len()
                    ));
                }
            }
            Err(e) => bad.push(format!("cannot read chat {chat}: {e}")),
        }
    }
    let mut missing = 0;
    for id in created {
        if store.chats.get(id).await.is_err() {
            missing += 1;
        }
    }
    if missing > 0 {
        bad.push(format!("{missing} acknowledged chats missing"));
    }
    // Tag sets against tag links, and orphans.
    let mut by_tag: BTreeMap<String, u64> = BTreeMap::new();
    for chat in chats.iter().chain(created) {
        if let Ok(c) = store.chats.get(chat).await {
            for t in c.tags {
                *by_tag.entry(t).or_default() += 1;
            }
        }
    }
    match store.tags.usage(user_id).await {
        Ok(usage) => {
            for u in usage {
                if u.chats == 0 {
                    bad.push(format!("orphan tag {}", u.tag.id));
                }
                let expected = by_tag.remove(&u.tag.id).unwrap_or(0);
                if expected != u.chats {
                    bad.push(format!(
                        "tag {}: {} links but {expected} chats carry it",
                        u.tag.id, u.chats
                    ));
                }
            }
            for (t, n) in by_tag {
                bad.push(format!("tag {t} carried by {n} chats has no tag record"));
            }
        }
        Err(e) => bad.push(format!("cannot read tag usage: {e}")),
    }
    bad
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fault after which calls never all succeeded again is reported so, not as a
    /// recovery after 0 s.
    #[test]
    fn a_fault_without_recovery_is_reported_as_not_recovered() {
        let report = json!({
            "replicas": 1, "clients_per_replica": 1, "backend": "sqlite", "seconds": 1,
            "calls": 0, "throughput_per_second": 0.0, "operations": {}, "errors": {},
            "acknowledged_messages": 0, "invariant_violations": [],
            "fault": {
                "command": "sleep 5", "at_seconds": 0.0, "took_seconds": 5.0,
                "succeeded": true, "failing_seconds": 0.0, "recovery_seconds": null,
                "window": {},
            },
        });
        let text = render(&report);
        assert!(text.contains("not recovered within the run"), "{text}");
        assert!(!text.contains("succeed again"), "{text}");
    }

    /// A replica's command line never holds the store's URL (a password in it would show in
    /// `ps`); the URL reaches it through its environment.
    #[test]
    fn a_replica_gets_the_url_in_its_environment_not_its_command_line() {
        let url = "postgres://owui:hunter2@db:5432/webui";
        let args = LoadArgs {
            database_url: Some(url.to_owned()),
            replicas: 2,
            clients: 4,
            seconds: 10,
            json: false,
            fault: None,
            fault_at: 2.0,
        };
        let chats = ["a".to_owned(), "b".to_owned()];
        let command = worker_command(
            std::path::Path::new("chatstore"),
            url,
            1,
            &args,
            "u",
            &chats,
        );
        let command = command.as_std();
        for arg in command.get_args() {
            let arg = arg.to_string_lossy();
            assert!(!arg.contains("hunter2"), "{arg}");
            assert_ne!(arg, "--database-url");
        }
        let env: Vec<_> = command.get_envs().collect();
        assert!(
            env.contains(&(
                std::ffi::OsStr::new("CHATSTORE_DATABASE_URL"),
                Some(std::ffi::OsStr::new(url))
            )),
            "{env:?}"
        );
    }
}
