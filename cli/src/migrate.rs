//! `chatstore migrate` and `chatstore verify`: the migration engine (chatstore-migrate) with
//! progress bars on a terminal and plain lines otherwise, the copy of every other Open WebUI
//! table between SQL databases, and the final verification.
//!
//! Open WebUI's remaining tables (`chatstore_core::rows::ALL_TABLES`: folders, knowledge,
//! notes, channels, ...) belong to the workspace group: when it is copied, the row-for-row
//! copy between SQL databases leaves them alone and a PocketBase target needs no
//! `--skip-unmodelled` for them. When it is left out, or an end has no rows, the row-for-row
//! copy carries them between SQL databases as before.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::{ModelGroup, Result, parse_groups};
use chatstore_migrate::state::redact;
use chatstore_migrate::{
    BatchPoint, Counts, DeadLetter, DeadLetters, MigrateOptions, Migration, Progress, VerifyReport,
    count, verify,
};
use chatstore_sql::tables::{MODELLED_TABLES, NOT_COPIED, RowMode};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::ends::{self, End};

/// The environment variable of the test hook that stops a run at a batch:
/// `GROUP:N:written` (the target holds batch N, its checkpoint is not written yet) or
/// `GROUP:N:checkpointed`. The run then waits for ever, so that a test can kill it at that
/// point; with a fourth field `:SECONDS` it waits that long and goes on.
pub const PAUSE_ENV: &str = "CHATSTORE_MIGRATE_PAUSE";

/// `chatstore migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The store to copy from, opened read-only: sqlite://PATH, postgres://..., pocketbase://HOST:PORT, memory.
    /// May be left out with --groups vectors and --from-vectors.
    #[arg(long, default_value = "", hide_default_value = true)]
    from: String,
    /// The store to copy into. May be left out with --groups vectors and --to-vectors.
    #[arg(long, default_value = "", hide_default_value = true)]
    to: String,
    /// Where the source's vectors live, when not in --from (postgres:// for pgvector, sqlite://,
    /// chroma://HOST:PORT, chroma-dir://PATH for Open WebUI's DATA_DIR/vector_db, read through a
    /// private Chroma server on a copy).
    #[arg(long)]
    from_vectors: Option<String>,
    /// Where the target's vectors go, when not in --to.
    #[arg(long)]
    to_vectors: Option<String>,
    /// The groups to copy, comma separated.
    #[arg(long, default_value = "users,chats,files,workspace,vectors")]
    groups: String,
    /// Records per batch (1..=10000).
    #[arg(long, default_value_t = chatstore_migrate::engine::DEFAULT_BATCH_SIZE)]
    batch_size: u32,
    /// About how many MiB of chat content (blobs and messages) one page of chats may hold:
    /// pages of large chats hold fewer than --batch-size chats. Three pages are in memory at
    /// once.
    #[arg(long, default_value_t = (chatstore_migrate::engine::DEFAULT_CHAT_PAGE_BYTES >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=65_536))]
    chat_page_mib: u64,
    /// The checkpoint file; run again with the same file to resume.
    #[arg(long, default_value = "chatstore-migrate.state.json")]
    state: PathBuf,
    /// Where records that cannot be copied are written, one JSON object per line.
    #[arg(long, default_value = "chatstore-migrate.dead-letters.jsonl")]
    dead_letter: PathBuf,
    /// Check both ends and report what would be copied, without writing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print one JSON summary object instead of text.
    #[arg(long)]
    json: bool,
    /// Into a store that has no place for some of Open WebUI's other tables (PocketBase: auth,
    /// config, tools, functions...): leave them. The tables of the workspace group (folders,
    /// knowledge, notes, channels, ...) are copied through rows and need no such leave.
    #[arg(long)]
    skip_unmodelled: bool,
}

/// `chatstore verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// One store (may be left out with --groups vectors and --from-vectors).
    #[arg(long, default_value = "", hide_default_value = true)]
    from: String,
    /// The other store (may be left out with --groups vectors and --to-vectors).
    #[arg(long, default_value = "", hide_default_value = true)]
    to: String,
    /// Vectors of --from, when elsewhere.
    #[arg(long)]
    from_vectors: Option<String>,
    /// Vectors of --to, when elsewhere.
    #[arg(long)]
    to_vectors: Option<String>,
    /// The groups to compare, comma separated.
    #[arg(long, default_value = "users,chats,files,workspace,vectors")]
    groups: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Progress on stderr: a bar per group on a terminal, a line per group and every few seconds
/// otherwise.
struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<ModelGroup, (ProgressBar, Instant)>>,
    pause: Option<(String, u64, String, Option<u64>)>,
}

impl Bars {
    fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal() && !quiet;
        let pause = std::env::var(PAUSE_ENV).ok().and_then(|v| {
            let mut parts = v.split(':');
            let group = parts.next()?.to_owned();
            let n = parts.next()?.parse().ok()?;
            let point = parts.next()?.to_owned();
            let seconds = parts.next().and_then(|s| s.parse().ok());
            Some((group, n, point, seconds))
        });
        Bars {
            multi: terminal.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
            bars: Mutex::new(HashMap::new()),
            pause,
        }
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => errln!("{text}"),
        }
    }
}

fn counts_text(c: &Counts) -> String {
    let mut text = format!(
        "read {}, written {}, already there {}, set aside {}",
        c.read, c.written, c.skipped, c.dead_lettered
    );
    if c.gone > 0 {
        text.push_str(&format!(", deleted from the source meanwhile {}", c.gone));
    }
    text
}

impl Progress for Bars {
    fn wants_totals(&self) -> bool {
        self.multi.is_some()
    }

    fn group_started(&self, group: ModelGroup, total: Option<u64>, counts: &Counts) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        let bar = match (&self.multi, total) {
            (Some(m), Some(total)) => {
                let bar = m.add(ProgressBar::new(total));
                if let Ok(style) = ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}",
                ) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            (Some(m), None) => m.add(ProgressBar::new_spinner()),
            (None, _) => ProgressBar::hidden(),
        };
        bar.set_prefix(group.as_str());
        bar.set_position(counts.read);
        if self.multi.is_none() {
            let resumed = if counts.read > 0 {
                format!(" (resuming: {})", counts_text(counts))
            } else {
                String::new()
            };
            errln!("{group}: copying{resumed}");
        }
        bars.insert(group, (bar, Instant::now()));
    }

    fn advanced(&self, group: ModelGroup, counts: &Counts) {
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        if let Some((bar, last)) = bars.get_mut(&group) {
            bar.set_position(counts.read);
            if counts.dead_lettered > 0 {
                bar.set_message(format!("{} set aside", counts.dead_lettered));
            }
            if self.multi.is_none() && last.elapsed() >= Duration::from_secs(5) {
                *last = Instant::now();
                errln!("{group}: {}", counts_text(counts));
            }
        }
    }

    fn group_finished(&self, group: ModelGroup, counts: &Counts) {
        if let Ok(mut bars) = self.bars.lock()
            && let Some((bar, _)) = bars.remove(&group)
        {
            bar.finish();
        }
        self.line(&format!("{group}: done, {}", counts_text(counts)));
    }

    fn batch(&self, group: ModelGroup, number: u64, point: BatchPoint) {
        let Some((g, n, p, seconds)) = &self.pause else {
            return;
        };
        let point = match point {
            BatchPoint::Written => "written",
            BatchPoint::Checkpointed => "checkpointed",
        };
        if g == group.as_str() && *n == number && p == point {
            errln!("paused: {group} batch {number} {point}");
            match seconds {
                Some(s) => std::thread::sleep(Duration::from_secs(*s)),
                None => loop {
                    std::thread::sleep(Duration::from_secs(3600));
                },
            }
        }
    }

    fn note(&self, message: &str) {
        self.line(message);
    }
}

/// An end's store URL: the one given, or `memory` (holding nothing) when only its vectors are
/// named and only vectors are copied.
fn end_url(
    url: &mut String,
    vectors: &Option<String>,
    groups: &[ModelGroup],
    flag: &str,
) -> std::result::Result<(), String> {
    if url.is_empty() {
        if vectors.is_none() || groups.iter().any(|g| *g != ModelGroup::Vectors) {
            return Err(format!(
                "--{flag} is required (it may be left out only with --groups vectors and --{flag}-vectors)"
            ));
        }
        *url = "memory".to_owned();
    }
    Ok(())
}

fn identity(url: &str, vectors: &Option<String>) -> String {
    match vectors {
        Some(v) => format!("{url} vectors={v}"),
        None => url.to_owned(),
    }
}

/// Runs `chatstore migrate`; `Err` carries the reason for a non-zero exit.
pub async fn run(mut args: MigrateArgs) -> std::result::Result<(), String> {
    let groups = parse_groups(&args.groups).map_err(|e| e.to_string())?;
    end_url(&mut args.from, &args.from_vectors, &groups, "from")?;
    end_url(&mut args.to, &args.to_vectors, &groups, "to")?;
    let source = ends::open(&args.from, args.from_vectors.as_deref(), true)
        .await
        .map_err(|e| format!("cannot open the source {}: {e}", redact(&args.from)))?;
    // A dry run opens the target read-only too; a SQLite target that does not exist yet (the
    // run would create it) is looked at as an empty database.
    // Only a missing file is: any other refusal (a bad vector URL beside it) is the run's.
    let missing_sqlite = match chatstore_registry::StoreUrl::parse(&args.to) {
        Ok(url) => matches!(
            url.target(),
            chatstore_registry::Target::Sqlite { path: Some(path), .. } if !path.exists()
        ),
        Err(_) => false,
    };
    let mut target_exists = true;
    let target = match ends::open(&args.to, args.to_vectors.as_deref(), args.dry_run).await {
        Ok(t) => t,
        Err(e)
            if args.dry_run
                && missing_sqlite
                && e.kind() == chatstore_core::ErrorKind::InvalidInput
                && e.to_string().contains("no SQLite database at") =>
        {
            target_exists = false;
            ends::open("sqlite::memory:", None, false)
                .await
                .map_err(|e| e.to_string())?
        }
        Err(e) => return Err(format!("cannot open the target {}: {e}", redact(&args.to))),
    };
    let owned = row_tables_owned(&groups, &source, &target);
    let tables_plan = plan_tables(&source, &target, args.skip_unmodelled, &owned).await?;
    if args.dry_run {
        return dry_run(
            &args,
            &source,
            &target,
            target_exists,
            &groups,
            &tables_plan,
            &owned,
        )
        .await;
    }
    let bars = Bars::new(args.json);
    let mut options = MigrateOptions::new(
        identity(&args.from, &args.from_vectors),
        identity(&args.to, &args.to_vectors),
        &args.state,
        &args.dead_letter,
    );
    options.groups = groups.clone();
    options.batch_size = args.batch_size;
    options.chat_page_bytes = usize::try_from(args.chat_page_mib << 20).unwrap_or(usize::MAX);
    // SQL to SQL: the `chat` table's rows follow, as the source holds them.
    options.chat_rows_follow = matches!(tables_plan, TablesPlan::Copy);
    let summary = Migration::new(&source.store, &target.store, options, &bars)
        .run()
        .await
        .map_err(|e| {
            format!(
                "{e}\nthe run stopped; its progress is kept in {}: run the same command again to resume",
                args.state.display()
            )
        })?;
    // The workspace group copied Open WebUI's remaining tables through the stores' rows
    // (unless it was left out or skipped): the row-for-row copy leaves them alone.
    let rows_copied = summary
        .groups
        .iter()
        .any(|g| g.group == ModelGroup::Workspace && g.skipped.is_none());
    let owned = if rows_copied { owned } else { Vec::new() };
    let tables = match (&tables_plan, &source.sql, &target.sql) {
        (TablesPlan::Copy, Some(s), Some(t)) => {
            copy_tables(s, t, args.batch_size, &args.dead_letter, &bars, &owned).await?
        }
        _ => Vec::new(),
    };
    let dead = DeadLetters::open(&args.dead_letter).map_err(|e| e.to_string())?;
    let report = verify(&source.store, &target.store, &groups, &bars)
        .await
        .map_err(|e| format!("verification failed to run: {e}"))?;
    let table_rows: u64 = tables.iter().map(|t| t.1).sum();
    if args.json {
        let out = json!({
            "groups": summary.groups,
            "tables": tables.iter().map(|(name, rows, rejected)| json!({"table": name, "rows": rows, "rejected": rejected})).collect::<Vec<_>>(),
            "skipped_tables": match &tables_plan { TablesPlan::Skip(t) => json!(t), _ => json!([]) },
            "dead_letters": dead.len(),
            "dead_letter_file": args.dead_letter,
            "seconds": summary.seconds,
            "peak_rss_kib": peak_rss_kib(),
            "verification": report,
        });
        crate::emit(&format!("{out}\n"));
    } else {
        let mut text = String::new();
        for g in &summary.groups {
            text.push_str(&format!(
                "{:<8} {}{} ({:.1} s, {:.0} records/s)\n",
                g.group.as_str(),
                counts_text(&g.counts),
                g.skipped
                    .as_ref()
                    .map(|s| format!(" - skipped: {s}"))
                    .unwrap_or_default(),
                g.seconds,
                g.records_per_second
            ));
        }
        if !tables.is_empty() {
            text.push_str(&format!(
                "tables   {} tables, {table_rows} rows copied row for row\n",
                tables.len()
            ));
        }
        if let TablesPlan::Skip(t) = &tables_plan {
            text.push_str(&format!(
                "left out (--skip-unmodelled): {}\n",
                t.iter()
                    .map(|(n, r)| format!("{n} ({r} rows)"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        text.push_str(&render_report(&report));
        crate::emit(&text);
    }
    if !dead.is_empty() {
        return Err(format!(
            "{} records were set aside; see {}",
            dead.len(),
            args.dead_letter.display()
        ));
    }
    if !report.equal {
        return Err("the target does not equal the source (differences listed above)".into());
    }
    Ok(())
}

/// What happens to the tables outside the aggregates.
enum TablesPlan {
    /// Nothing to do (a non-SQL source, or no rows outside the aggregates).
    None,
    /// SQL to SQL: copy every table.
    Copy,
    /// Left out with --skip-unmodelled: `(table, rows)`.
    Skip(Vec<(String, u64)>),
}

/// The tables the workspace group copies through the stores' rows
/// ([`chatstore_core::rows::ALL_TABLES`]) when it is among `groups` and both ends have rows;
/// empty otherwise (the row-for-row copy between SQL databases then carries them).
fn row_tables_owned(groups: &[ModelGroup], source: &End, target: &End) -> Vec<&'static str> {
    if groups.contains(&ModelGroup::Workspace) && source.store.has_rows() && target.store.has_rows()
    {
        chatstore_core::rows::ALL_TABLES
            .iter()
            .map(|t| t.name)
            .collect()
    } else {
        Vec::new()
    }
}

async fn plan_tables(
    source: &End,
    target: &End,
    skip: bool,
    owned: &[&str],
) -> std::result::Result<TablesPlan, String> {
    let Some(s) = &source.sql else {
        return Ok(TablesPlan::None);
    };
    if target.sql.is_some() {
        return Ok(TablesPlan::Copy);
    }
    let with_rows: Vec<(String, u64)> = s
        .unmodelled_tables()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|t| t.rows > 0 && !owned.contains(&t.name.as_str()))
        .map(|t| (t.name, t.rows))
        .collect();
    if with_rows.is_empty() {
        return Ok(TablesPlan::None);
    }
    if skip {
        return Ok(TablesPlan::Skip(with_rows));
    }
    Err(format!(
        "the target ({}) has no place for these Open WebUI tables, which hold rows: {}\n\
         nothing was copied; run again with --skip-unmodelled to leave them behind",
        target.store.backend_name(),
        with_rows
            .iter()
            .map(|(n, r)| format!("{n} ({r} rows)"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Copies every table in foreign-key order: the aggregates' tables only update the rows the
/// engine wrote (bringing the columns the model does not carry), the tables in `owned` (copied
/// by the workspace group) are left alone, the others are upserted.
async fn copy_tables(
    source: &chatstore_sql::SqlStore,
    target: &chatstore_sql::SqlStore,
    batch: u32,
    dead_letter: &PathBuf,
    bars: &Bars,
    owned: &[&str],
) -> std::result::Result<Vec<(String, u64, usize)>, String> {
    let mut dead = DeadLetters::open(dead_letter).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let order = source
        .tables_in_fk_order()
        .await
        .map_err(|e| e.to_string())?;
    for table in order {
        if NOT_COPIED.contains(&table.as_str()) || owned.contains(&table.as_str()) {
            continue;
        }
        let mode = if MODELLED_TABLES.contains(&table.as_str()) {
            RowMode::UpdateOnly
        } else {
            RowMode::Upsert
        };
        // The rows of records the engine set aside (`user`, `chat`, `file`: the entity is the
        // table) are the target's own, a file it holds with other bytes say: they keep their
        // columns.
        let set_aside: HashSet<String> = if mode == RowMode::UpdateOnly {
            dead.ids_of(&table).map(str::to_owned).collect()
        } else if table == "auth" {
            // A user's credentials (keyed by the user's id) stay with the user: the target
            // has no such user (another of its own holds the email, say), and a password hash
            // for an id it does not hold is not copied.
            dead.ids_of("user").map(str::to_owned).collect()
        } else {
            HashSet::new()
        };
        let copy = source
            .copy_table_except(target, &table, mode, batch, &set_aside, &mut |_| {})
            .await
            .map_err(|e| format!("copying table {table}: {e}"))?;
        for r in &copy.rejected {
            dead.push(DeadLetter {
                group: "tables".into(),
                entity: table.clone(),
                id: r.key.clone(),
                record: r.row.clone(),
                error: r.error.clone(),
                kind: "Backend".into(),
            });
        }
        dead.flush().map_err(|e| e.to_string())?;
        if copy.read > 0 {
            bars.note(&format!(
                "table {table}: {} rows{}",
                copy.written,
                if copy.rejected.is_empty() {
                    String::new()
                } else {
                    format!(", {} set aside", copy.rejected.len())
                }
            ));
        }
        out.push((table, copy.written, copy.rejected.len()));
    }
    Ok(out)
}

async fn dry_run(
    args: &MigrateArgs,
    source: &End,
    target: &End,
    target_exists: bool,
    groups: &[ModelGroup],
    tables: &TablesPlan,
    owned: &[&str],
) -> std::result::Result<(), String> {
    let mut rows = Vec::new();
    for g in groups {
        let s = count(&source.store, *g).await;
        let t = count(&target.store, *g).await;
        let show = |r: &Result<u64>| match r {
            Ok(n) => json!(n),
            Err(e) => json!(e.to_string()),
        };
        rows.push(json!({"group": g, "source": show(&s), "target": show(&t)}));
    }
    let mut file_bytes = 0u64;
    if groups.contains(&ModelGroup::Files) {
        let mut after: Option<String> = None;
        while let Ok(page) = source.store.files.scan(after.as_deref(), 1000).await {
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            // Sizes come from the source's rows: summed without overflowing.
            file_bytes = page
                .iter()
                .fold(file_bytes, |sum, f| sum.saturating_add(f.size));
        }
    }
    let tables_json = match tables {
        TablesPlan::None => json!("none"),
        TablesPlan::Copy => {
            let mut list = Vec::new();
            if let Some(s) = &source.sql {
                for t in s.unmodelled_tables().await.map_err(|e| e.to_string())? {
                    if !owned.contains(&t.name.as_str()) {
                        list.push(json!({"table": t.name, "rows": t.rows}));
                    }
                }
            }
            json!({"copied": list})
        }
        TablesPlan::Skip(t) => json!({"left_out": t}),
    };
    let out = json!({
        "dry_run": true,
        "source": {"url": redact(&args.from), "backend": source.store.backend_name(),
                   "schema": schema_of(source).await,
                   "capabilities": format!("{:?}", source.store.capabilities())},
        "target": {"url": redact(&args.to), "exists": target_exists,
                   "backend": target.store.backend_name(),
                   "schema": schema_of(target).await,
                   "capabilities": format!("{:?}", target.store.capabilities())},
        "groups": rows,
        "file_bytes_to_copy": file_bytes,
        "other_tables": tables_json,
        "state_file_exists": args.state.exists(),
    });
    if args.json {
        crate::emit(&format!("{out}\n"));
    } else {
        crate::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&out).unwrap_or_default()
        ));
    }
    Ok(())
}

/// The process's peak resident set size (Linux `VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn schema_of(e: &End) -> Option<String> {
    match &e.sql {
        Some(s) => s.schema_version().await.ok(),
        None => None,
    }
}

fn render_report(report: &VerifyReport) -> String {
    let mut text = String::new();
    for g in &report.groups {
        let name = g.group.map(|g| g.as_str()).unwrap_or("?");
        match &g.skipped {
            Some(why) => text.push_str(&format!("verify {name}: not compared ({why})\n")),
            None => text.push_str(&format!(
                "verify {name}: source {}, target {}, equal {}, differences {}\n",
                g.source, g.target, g.equal, g.differences
            )),
        }
    }
    if report.equal {
        text.push_str("verification: the target equals the source\n");
    } else {
        for id in report.differing_ids() {
            text.push_str(&format!("  {id}\n"));
        }
    }
    text
}

/// Runs `chatstore verify`.
pub async fn run_verify(mut args: VerifyArgs) -> std::result::Result<(), String> {
    let groups = parse_groups(&args.groups).map_err(|e| e.to_string())?;
    end_url(&mut args.from, &args.from_vectors, &groups, "from")?;
    end_url(&mut args.to, &args.to_vectors, &groups, "to")?;
    let a = ends::open(&args.from, args.from_vectors.as_deref(), true)
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(&args.from)))?;
    let b = ends::open(&args.to, args.to_vectors.as_deref(), true)
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(&args.to)))?;
    let bars = Bars::new(true);
    let report = verify(&a.store, &b.store, &groups, &bars)
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        let v: Value = serde_json::to_value(&report).unwrap_or(Value::Null);
        crate::emit(&format!("{v}\n"));
    } else {
        crate::emit(&render_report(&report));
    }
    if report.equal {
        Ok(())
    } else {
        Err("the stores differ".into())
    }
}
