//! The report's migration section: `chatstore migrate`'s engine (chatstore-migrate) against the
//! raw bulk import of the same records, and its memory at two source sizes.
//!
//! A SQLite source (fresh folder) is loaded with the workload's users and chats (untimed). For
//! each target backend with a raw bulk import (PostgreSQL: multi-row `INSERT`s; PocketBase: the
//! batch API), one fresh opening receives the migration of the users and chats groups (user
//! rows, tag rows, chats, message rows; default batch size, state and dead-letter files on
//! disk, a checkpoint after every batch), timed from start to summary; a second fresh opening
//! receives [`RawBaseline::import_chats`] of the same records, prepared in memory from the
//! workload (no source read, so the raw side is the target's write ceiling). The share is raw
//! time / migration time; the target is at least 80%. The verification pass that
//! `chatstore migrate` runs afterwards is timed apart.
//!
//! Memory: for each of two source sizes (by default the report's scale and ten times it), the
//! migration into PostgreSQL with the resident set's growth measured as the streaming section
//! measures it (peak-RSS reset, then `VmHWM`); bounded memory means the two growths are about
//! the same.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatstore_core::{ModelGroup, Result, Store};
use chatstore_migrate::{BatchPoint, MigrateOptions, Migration, Progress, Silent};

use crate::backends::{self, BackendSpec, Opened};
use crate::baseline::RawBaseline;
use crate::streaming::{self, RssMethod, RssWatch};
use crate::workload::{Scale, Workload};

/// The groups the section copies: the records both raw imports write.
pub const GROUPS: [ModelGroup; 2] = [ModelGroup::Users, ModelGroup::Chats];

/// The smallest acceptable share of the raw import's throughput (issue 10).
pub const TARGET_SHARE: f64 = 0.8;

/// What the section measures.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationConfig {
    /// Chats in the source of the throughput comparison.
    pub scale: Scale,
    /// Source sizes of the memory measurement (empty: not measured).
    pub memory_scales: Vec<Scale>,
    /// The engine's batch size.
    pub batch_size: u32,
    /// Workload seed.
    pub seed: u64,
    /// Target backends (by registry name); those without a raw import are left out.
    pub targets: Vec<String>,
    /// Lines on stderr as it goes.
    pub progress: bool,
    /// Rounds of the throughput comparison per target (at least one): the migration and the
    /// raw import side by side in each, taking turns going first; the share is the median of
    /// the rounds' shares.
    pub rounds: usize,
}

/// Rounds of the throughput comparison by default (even, so each order weighs the same).
pub const ROUNDS: usize = 4;

impl MigrationConfig {
    /// PostgreSQL and PocketBase at `scale`, memory at `scale` and ten times it.
    pub fn new(scale: Scale, seed: u64) -> Self {
        MigrationConfig {
            scale,
            memory_scales: vec![scale, Scale::new(scale.chats() * 10)],
            batch_size: chatstore_migrate::engine::DEFAULT_BATCH_SIZE,
            seed,
            targets: vec!["postgres".to_owned(), "pocketbase".to_owned()],
            progress: false,
            rounds: ROUNDS,
        }
    }
}

/// One target's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRun {
    /// The target backend.
    pub target: String,
    /// The raw side's name (`raw sqlx`, `raw HTTP`).
    pub baseline: &'static str,
    /// The migration, start to summary.
    pub migrate: std::result::Result<Duration, String>,
    /// The verification pass after it.
    pub verify: std::result::Result<Duration, String>,
    /// The raw bulk import of the same records.
    pub raw: std::result::Result<Duration, String>,
    /// Each round's share (raw time / migration time of that round), in the order they ran;
    /// the times above are each the best of the rounds.
    pub round_shares: Vec<f64>,
}

impl TargetRun {
    /// The median of the rounds' shares; raw time / migration time when no round is
    /// recorded; `None` when a side failed.
    pub fn share(&self) -> Option<f64> {
        let (Ok(m), Ok(r)) = (&self.migrate, &self.raw) else {
            return None;
        };
        crate::stats::median(&self.round_shares)
            .or_else(|| Some(r.as_secs_f64() / m.as_secs_f64().max(1e-9)))
    }
}

/// The memory of one migration.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRun {
    /// Chats in the source.
    pub chats: u64,
    /// Records copied (users, tag rows, chats, messages).
    pub records: u64,
    /// Seconds the migration took.
    pub seconds: f64,
    /// Growth of the resident set during it, or why it was not measured.
    pub growth: std::result::Result<Option<u64>, String>,
}

/// The section's results.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationReport {
    /// Chats in the source of the throughput comparison.
    pub chats: u64,
    /// Records per copy: users, tag rows, chats and message rows.
    pub records: u64,
    /// The engine's batch size.
    pub batch_size: u32,
    /// Rounds of the throughput comparison per target.
    pub rounds: usize,
    /// Per target.
    pub targets: Vec<TargetRun>,
    /// Per memory size.
    pub memory: Vec<MemoryRun>,
    /// How memory was measured.
    pub rss_method: RssMethod,
    /// Targets left out, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Records one copy of the workload's users and chats holds: users, distinct tag rows, chats,
/// message rows.
pub fn record_count(workload: &Workload) -> Result<u64> {
    let now = chatstore_core::validate::now();
    let mut tags = std::collections::BTreeSet::new();
    let mut messages = 0u64;
    for i in 0..workload.chats() {
        let p = workload.chat(i).prepare(now)?;
        messages += p.messages.len() as u64;
        for (id, _) in p.tags {
            tags.insert((p.chat.user_id.clone(), id));
        }
    }
    Ok(workload.users() + tags.len() as u64 + workload.chats() + messages)
}

/// Loads the workload's users and chats into `store` (the migration's source).
async fn load_source(store: &Store, workload: &Workload) -> Result<()> {
    const BATCH: u64 = 500;
    for start in (0..workload.users()).step_by(BATCH as usize) {
        let end = (start + BATCH).min(workload.users());
        store
            .users
            .create_many((start..end).map(|i| workload.user(i)).collect())
            .await?;
    }
    for start in (0..workload.chats()).step_by(BATCH as usize) {
        let end = (start + BATCH).min(workload.chats());
        store
            .chats
            .create_many((start..end).map(|i| workload.chat(i)).collect())
            .await?;
    }
    Ok(())
}

fn spec(name: &str) -> std::result::Result<BackendSpec, String> {
    backends::select(&[name.to_owned()]).and_then(|mut specs| {
        specs
            .pop()
            .ok_or_else(|| format!("{name} is not a registered backend"))
    })
}

/// Progress that prints when each batch is checkpointed, seconds since the migration started
/// (where the time goes: users, tag rows, chats, the orphan-message pass).
struct Timeline {
    started: Instant,
    print: bool,
}

impl Progress for Timeline {
    fn batch(&self, group: ModelGroup, number: u64, point: BatchPoint) {
        if self.print && point == BatchPoint::Checkpointed {
            eprintln!(
                "migration:   {group} batch {number} checkpointed at {:.2} s",
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// A scratch folder for the migration's state and dead-letter files.
fn scratch() -> Result<PathBuf> {
    backends::fresh_dir("migration")
}

/// Migrates `source` into `target` (users and chats), returning the time it took; the
/// verification pass is timed apart and must find the two equal.
async fn migrate(
    source: &Store,
    target: &Store,
    batch_size: u32,
    print: bool,
) -> Result<(Duration, std::result::Result<Duration, String>)> {
    let dir = scratch()?;
    let mut options = MigrateOptions::new(
        "bench-source",
        "bench-target",
        dir.join("state.json"),
        dir.join("dead-letters.jsonl"),
    );
    options.groups = GROUPS.to_vec();
    options.batch_size = batch_size;
    let started = Instant::now();
    let timeline = Timeline { started, print };
    let summary = Migration::new(source, target, options, &timeline)
        .run()
        .await;
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let summary = summary?;
    if summary.dead_letters > 0 {
        return Err(chatstore_core::Error::backend_msg(format!(
            "the migration set {} record(s) aside",
            summary.dead_letters
        )));
    }
    let started = Instant::now();
    let verify = match chatstore_migrate::verify(source, target, &GROUPS, &Silent).await {
        Ok(r) if r.equal => Ok(started.elapsed()),
        Ok(r) => Err(format!(
            "the target differs: {}",
            r.differing_ids().join(", ")
        )),
        Err(e) => Err(e.to_string()),
    };
    Ok((took, verify))
}

async fn close(opened: Opened) {
    if let Err(e) = opened.close().await {
        eprintln!("migration bench: closing an opening failed: {e}");
    }
}

/// Runs the section.
pub async fn measure(config: &MigrationConfig) -> Result<MigrationReport> {
    let say = |line: String| {
        if config.progress {
            eprintln!("{line}");
        }
    };
    let workload = Workload::new(config.scale, config.seed);
    let mut report = MigrationReport {
        chats: workload.chats(),
        records: record_count(&workload)?,
        batch_size: config.batch_size,
        rounds: config.rounds.max(1),
        targets: Vec::new(),
        memory: Vec::new(),
        rss_method: streaming::rss_method(),
        skipped: Vec::new(),
    };
    let sqlite = spec("sqlite").map_err(chatstore_core::Error::invalid)?;
    say(format!(
        "migration: loading a SQLite source with {} chats",
        workload.chats()
    ));
    let source = sqlite.open(None).await?;
    if let Err(e) = load_source(&source.store, &workload).await {
        close(source).await;
        return Err(e);
    }
    for name in &config.targets {
        let spec = match spec(name) {
            Ok(s) => s,
            Err(reason) => {
                report.skipped.push((name.clone(), reason));
                continue;
            }
        };
        let url = match spec.availability() {
            Ok(url) => url,
            Err(reason) => {
                report.skipped.push((name.clone(), reason));
                continue;
            }
        };
        let mut run = TargetRun {
            target: name.clone(),
            baseline: "",
            migrate: Err("not run".to_owned()),
            verify: Err("not run".to_owned()),
            raw: Err("not run".to_owned()),
            round_shares: Vec::new(),
        };
        for round in 0..config.rounds.max(1) {
            // Odd rounds run the raw import first: each order weighs the same.
            let raw_first = round % 2 == 1;
            let mut raw = None;
            if raw_first {
                say(format!(
                    "migration: {name}: raw import (round {})",
                    round + 1
                ));
                raw = raw_import(&spec, &url, &workload).await?;
            }
            say(format!(
                "migration: {name}: migrating (round {})",
                round + 1
            ));
            let target = spec.open(url.clone()).await?;
            let (migrate_time, verify) = match migrate(
                &source.store,
                &target.store,
                config.batch_size,
                config.progress,
            )
            .await
            {
                Ok((m, v)) => (Ok(m), v),
                Err(e) => (Err(e.to_string()), Err("not run".to_owned())),
            };
            close(target).await;
            if !raw_first {
                say(format!(
                    "migration: {name}: raw import (round {})",
                    round + 1
                ));
                raw = raw_import(&spec, &url, &workload).await?;
            }
            let Some((baseline, raw)) = raw else {
                break;
            };
            run.baseline = baseline;
            if let (Ok(m), Ok(r)) = (&migrate_time, &raw) {
                run.round_shares
                    .push(r.as_secs_f64() / m.as_secs_f64().max(1e-9));
            }
            if round == 0 {
                (run.migrate, run.raw, run.verify) = (migrate_time, raw, verify);
            } else {
                run.migrate = best_unless_failed(run.migrate, migrate_time);
                run.raw = best_unless_failed(run.raw, raw);
                run.verify = best_unless_failed(run.verify, verify);
            }
        }
        if run.baseline.is_empty() {
            report
                .skipped
                .push((name.clone(), "no raw baseline".to_owned()));
            continue;
        }
        report.targets.push(run);
    }
    close(source).await;
    let postgres = spec("postgres").ok().and_then(|s| {
        let url = s.availability().ok()?;
        Some((s, url))
    });
    for scale in &config.memory_scales {
        let Some((spec, url)) = &postgres else {
            report.skipped.push((
                "memory".to_owned(),
                "PostgreSQL is not configured".to_owned(),
            ));
            break;
        };
        let workload = Workload::new(*scale, config.seed);
        say(format!(
            "migration: memory at {} chats: loading the source",
            workload.chats()
        ));
        let source = sqlite.open(None).await?;
        if let Err(e) = load_source(&source.store, &workload).await {
            close(source).await;
            return Err(e);
        }
        let target = spec.open(url.clone()).await?;
        say(format!(
            "migration: memory at {} chats: migrating",
            workload.chats()
        ));
        let watch = RssWatch::start();
        let started = Instant::now();
        let outcome = migrate(&source.store, &target.store, config.batch_size, false).await;
        let seconds = started.elapsed().as_secs_f64();
        let growth = watch.finish();
        close(target).await;
        close(source).await;
        report.memory.push(MemoryRun {
            chats: workload.chats(),
            records: record_count(&workload)?,
            seconds,
            growth: outcome.map(|_| growth).map_err(|e| e.to_string()),
        });
    }
    Ok(report)
}

impl MigrationReport {
    /// What failed, one line each.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            for (what, r) in [
                ("migration", &t.migrate),
                ("verification", &t.verify),
                ("raw import", &t.raw),
            ] {
                if let Err(e) = r {
                    out.push(format!("migration into {}: {what}: {e}", t.target));
                }
            }
        }
        for m in &self.memory {
            if let Err(e) = &m.growth {
                out.push(format!("migration memory at {} chats: {e}", m.chats));
            }
        }
        out
    }

    /// Targets whose migration ran below [`TARGET_SHARE`] of the raw import: (target, share).
    pub fn misses(&self) -> Vec<(String, f64)> {
        self.targets
            .iter()
            .filter_map(|t| Some((t.target.clone(), t.share()?)))
            .filter(|(_, s)| *s < TARGET_SHARE)
            .collect()
    }

    /// The section as Markdown.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Migration\n");
        let _ = writeln!(
            md,
            "`chatstore migrate`'s engine copying the users and chats groups ({} records: users, \
             tag rows, {} chats and their message rows) from a SQLite source into a fresh \
             target, batch size {}, a checkpoint after every batch; against the raw bulk import \
             of the same records into a second fresh opening of the target (prepared in memory \
             from the workload, no source read: the target's write ceiling), in {} rounds \
             taking turns going first. Each time is the best of the rounds; the share is the \
             median of the rounds' shares (raw time / migration time of one round; target: at \
             least {:.0}%). The verification pass `chatstore migrate` runs after every \
             migration, timed apart (the best shown; \"equal\" when every round's was).\n",
            crate::stats::group_thousands(self.records),
            crate::stats::group_thousands(self.chats),
            self.batch_size,
            self.rounds,
            TARGET_SHARE * 100.0
        );
        if !self.targets.is_empty() {
            let _ = writeln!(
                md,
                "| target | migration | records/s | raw import | records/s | share | verify |"
            );
            let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
        }
        let rate = |d: &Duration| self.records as f64 / d.as_secs_f64().max(1e-9);
        let cell = |r: &std::result::Result<Duration, String>| match r {
            Ok(d) => (
                format!("{:.2} s", d.as_secs_f64()),
                crate::stats::format_rate(rate(d)),
            ),
            Err(e) => (format!("failed: {e}"), String::new()),
        };
        for t in &self.targets {
            let (m, m_rate) = cell(&t.migrate);
            let (r, r_rate) = cell(&t.raw);
            let share = match t.share() {
                Some(s) if s < TARGET_SHARE => format!("**{:.0}%**", s * 100.0),
                Some(s) => format!("{:.0}%", s * 100.0),
                None => String::new(),
            };
            let verify = match &t.verify {
                Ok(d) => format!("{:.2} s, equal", d.as_secs_f64()),
                Err(e) => format!("**{e}**"),
            };
            let _ = writeln!(
                md,
                "| {} ({}) | {m} | {m_rate} | {r} | {r_rate} | {share} | {verify} |",
                t.target, t.baseline
            );
        }
        for t in self.targets.iter().filter(|t| t.round_shares.len() > 1) {
            let rounds: Vec<String> = t
                .round_shares
                .iter()
                .map(|s| format!("{:.0}%", s * 100.0))
                .collect();
            let _ = writeln!(
                md,
                "\n{}: the rounds' shares, in the order they ran: {}.",
                t.target,
                rounds.join(", ")
            );
        }
        for (name, reason) in &self.skipped {
            let _ = writeln!(md, "\n- {name}: left out: {reason}.");
        }
        if !self.memory.is_empty() {
            let _ = writeln!(
                md,
                "\nMemory: the migration into PostgreSQL at two source sizes; growth of the \
                 resident set during the migration and its verification, measured with {}.\n",
                self.rss_method.describe()
            );
            let _ = writeln!(md, "| source chats | records | seconds | memory growth |");
            let _ = writeln!(md, "|---:|---:|---:|---:|");
            for m in &self.memory {
                let growth = match &m.growth {
                    Ok(g) => streaming::format_mib(*g),
                    Err(e) => format!("failed: {e}"),
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {:.1} | {growth} |",
                    crate::stats::group_thousands(m.chats),
                    crate::stats::group_thousands(m.records),
                    m.seconds
                );
            }
        }
        md
    }
}

/// The shorter of two rounds' timings, or the first failure of either: a round that failed
/// (a migration, a raw import, a verification that found a difference) is never hidden by
/// another that went well.
fn best_unless_failed(
    a: std::result::Result<Duration, String>,
    b: std::result::Result<Duration, String>,
) -> std::result::Result<Duration, String> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(a.min(b)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The raw bulk import of `workload` into a fresh opening of the target: its baseline's name
/// and time, or `None` when the target has no raw baseline.
async fn raw_import(
    spec: &BackendSpec,
    url: &Option<String>,
    workload: &Workload,
) -> Result<Option<(&'static str, std::result::Result<Duration, String>)>> {
    let raw_side = spec.open(url.clone()).await?;
    let Some(baseline) = raw_side.baseline.as_deref() else {
        close(raw_side).await;
        return Ok(None);
    };
    let started = Instant::now();
    let raw = baseline
        .import_chats(workload, &|_| {})
        .await
        .map(|()| started.elapsed())
        .map_err(|e| e.to_string());
    let name = RawBaseline::name(baseline);
    close(raw_side).await;
    Ok(Some((name, raw)))
}

/// Runs the section alone and writes it as `report.md` in `dir` (created when missing), with
/// the machine it ran on; returns the report and the path written.
pub async fn run_alone(
    config: &MigrationConfig,
    dir: &std::path::Path,
) -> std::result::Result<(MigrationReport, PathBuf), crate::BenchError> {
    let machine = crate::machine::Machine::detect();
    let report = measure(config)
        .await
        .map_err(|e| crate::BenchError::store("migration section", e))?;
    let mut md = String::new();
    let _ = writeln!(md, "# chatstore migration benchmark\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} |", machine.cpu);
    let _ = writeln!(md, "| cores (`nproc`) | {} |", machine.nproc);
    let _ = writeln!(md, "| memory | {} |", machine.memory);
    let _ = writeln!(md, "| load average at start | {} |", machine.load);
    let _ = writeln!(md, "| date | {} |", machine.date);
    let _ = writeln!(md, "| git commit | `{}` |", machine.commit);
    let _ = writeln!(md, "| build | {} ({}) |\n", machine.build, machine.rustc);
    md.push_str(&report.to_markdown());
    std::fs::create_dir_all(dir).map_err(|e| crate::BenchError::io(dir, e))?;
    let path = dir.join(crate::report::REPORT_FILE);
    std::fs::write(&path, md).map_err(|e| crate::BenchError::io(&path, e))?;
    Ok((report, path))
}

#[cfg(test)]
mod tests {
    use super::{TargetRun, best_unless_failed};
    use std::time::Duration;

    fn run(shares: &[f64]) -> TargetRun {
        TargetRun {
            target: "postgres".to_owned(),
            baseline: "raw sqlx",
            migrate: Ok(Duration::from_secs(2)),
            verify: Ok(Duration::from_secs(1)),
            raw: Ok(Duration::from_secs(1)),
            round_shares: shares.to_vec(),
        }
    }

    /// One slow round on either side does not move the verdict; without rounds the share is
    /// the times' own.
    #[test]
    fn the_share_is_the_median_of_the_rounds() {
        assert_eq!(run(&[0.9, 0.47, 1.1]).share(), Some(0.9));
        let even = run(&[0.8, 2.0, 0.9, 0.1]).share().expect("both sides ran");
        assert!((even - 0.85).abs() < 1e-9, "{even}");
        assert_eq!(run(&[]).share(), Some(0.5));
        let failed = TargetRun {
            raw: Err("refused".to_owned()),
            ..run(&[0.9])
        };
        assert_eq!(failed.share(), None);
    }

    /// One failed round fails the target, whichever round it was.
    #[test]
    fn a_failed_round_is_never_hidden_by_a_good_one() {
        let ok = |ms| Ok(Duration::from_millis(ms));
        let failed = || Err("the stores differ".to_owned());
        assert_eq!(best_unless_failed(ok(5), ok(3)), ok(3));
        assert_eq!(best_unless_failed(ok(5), failed()), failed());
        assert_eq!(best_unless_failed(failed(), ok(3)), failed());
    }
}
