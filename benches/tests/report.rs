//! The comparison report end to end, at a tiny scale on the memory backend, so CI exercises
//! the workload, every operation, the Markdown and the charts in a few seconds.

use std::time::Duration;

use chatstore_benches::models::Model;
use chatstore_benches::report::{self, REPORT_FILE, ReportConfig};
use chatstore_benches::vector_copy::{CopyOutcome, CopySource};
use chatstore_benches::{Op, Scale};

fn tiny(out: &std::path::Path) -> ReportConfig {
    ReportConfig {
        scale: Scale::new(60),
        samples: 12,
        max_time_per_op: Duration::from_secs(2),
        backends: vec!["memory".to_owned()],
        out_dir: out.to_owned(),
        progress: false,
        // Small files: the streaming section's path, not its figures.
        stream_sizes: vec![150_000, 600_000],
        stream_runs: 2,
        // The vector copy sections have a test of their own.
        copy_items: 0,
        ..ReportConfig::default()
    }
}

/// A report run writes `report.md` naming every operation and the machine, and one SVG chart
/// per operation with the backend in it.
#[tokio::test]
async fn report_covers_every_operation_with_a_table_and_a_chart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let report = report::run(&tiny(dir.path())).await.expect("report runs");
    assert!(
        report.failures().is_empty(),
        "failures: {:?}",
        report.failures()
    );
    assert_eq!(report.runs.len(), 1);

    let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("report.md");
    for needle in ["## Machine", "nproc", "CPU", "memory", "git commit", "date"] {
        assert!(md.contains(needle), "report.md lacks {needle:?}");
    }
    for op in Op::ALL {
        assert!(
            md.contains(&format!("\n## {}\n", op.name())),
            "report.md has no section for {}",
            op.name()
        );
        assert!(md.contains(&format!("({}.svg)", op.slug())));
        let svg = std::fs::read_to_string(dir.path().join(format!("{}.svg", op.slug())))
            .unwrap_or_else(|e| panic!("chart of {}: {e}", op.slug()));
        assert!(
            svg.starts_with("<svg") || svg.contains("<svg"),
            "{} is not SVG",
            op.slug()
        );
        assert!(
            svg.contains("memory"),
            "chart of {} lacks the backend",
            op.slug()
        );
        let run = &report.runs[0];
        let result = run.result(op).expect("every op has a result");
        let stats = result.adapter.stats().expect("memory measures every op");
        assert!(stats.samples >= 10 && stats.p50 <= stats.p95);
    }
    assert!(md.contains("| memory |"));
    assert!(
        report.runs[0].streaming.is_empty() && md.contains("memory: not streamed"),
        "the memory backend is left out of the streaming section, with a line saying so"
    );
    assert!(
        !md.contains("| sqlite |") && !md.contains("| postgres |"),
        "only the backends asked for are measured"
    );
}

/// Asking for a backend this build does not know is an error that names the known ones.
#[tokio::test]
async fn unknown_backends_are_refused_with_the_known_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = tiny(dir.path());
    config.backends = vec!["oracle".to_owned()];
    let err = report::run(&config).await.expect_err("unknown backend");
    let message = err.to_string();
    assert!(
        message.contains("oracle") && message.contains("memory"),
        "{message}"
    );
}

/// A store used as its own "raw baseline", so the baseline path (interleaved runs, the raw row,
/// the ratio column, target misses) is exercised before any adapter with a real one lands.
struct SameStore(chatstore_core::Store);

#[async_trait::async_trait]
impl chatstore_benches::RawBaseline for SameStore {
    fn name(&self) -> &'static str {
        "same store"
    }

    async fn import(
        &self,
        workload: &chatstore_benches::Workload,
        progress: &(dyn Fn(u64) + Sync),
    ) -> chatstore_core::Result<()> {
        workload.load(&self.0, progress).await
    }

    async fn get_chat(
        &self,
        fx: &chatstore_benches::Fixture,
        i: u64,
    ) -> chatstore_core::Result<()> {
        Op::GetChat.run(&self.0, fx, i).await
    }

    async fn create_chat(
        &self,
        fx: &chatstore_benches::Fixture,
        i: u64,
    ) -> chatstore_core::Result<()> {
        Op::CreateChat.run(&self.0, fx, i).await
    }
}

/// A backend with a raw baseline gets a baseline row and a ratio for the operations the
/// baseline implements, none for the others, a raw bulk import into a second fresh store, and
/// every ratio beyond its target is reported with the size of the miss.
#[tokio::test]
async fn baselines_give_ratios_and_target_misses_are_reported() {
    use chatstore_benches::backends::{BackendSpec, Opened};

    let spec = BackendSpec::embedded("memory-with-baseline", |_| {
        Box::pin(async {
            let store = chatstore_core::memory::store();
            Ok(Opened::new(store.clone()).with_baseline(SameStore(store)))
        })
    })
    // Impossible targets, so that every measured ratio misses them.
    .with_baseline_target(0.01)
    .with_import_target(100.0);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = tiny(dir.path());
    let report = report::measure_backends(vec![spec], &config)
        .await
        .expect("report runs");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let run = &report.runs[0];
    assert_eq!(run.baseline, Some("same store"));
    for op in Op::ALL {
        let result = run.result(op).expect("result");
        let has_raw = matches!(op, Op::GetChat | Op::CreateChat);
        assert_eq!(result.raw.stats().is_some(), has_raw, "{}", op.slug());
    }
    let misses = report.target_misses();
    assert_eq!(misses.len(), 2, "{misses:?}");
    assert!(run.raw_import.stats().is_some(), "{:?}", run.raw_import);
    assert_eq!(report.import_misses().len(), 1);
    report.write(dir.path()).expect("write");
    let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("report.md");
    assert!(md.contains("| ↳ same store |"));
    assert!(md.contains("missed by"));
    assert!(md.contains("bulk import"));
    let svg = std::fs::read_to_string(dir.path().join("get_chat.svg")).expect("chart");
    assert!(svg.contains("memory-with-baseline (same store)"));
}

/// The sqlite backend (no server needed) runs in the report at a tiny scale: every operation,
/// vectors included, measured through the store and compared with raw sqlx, and its temporary
/// folder is removed afterwards.
#[tokio::test]
async fn sqlite_runs_in_the_report_with_its_raw_sqlx_baseline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ReportConfig {
        scale: Scale::new(40),
        samples: 5,
        backends: vec!["sqlite".to_owned()],
        ..tiny(dir.path())
    };
    let report = report::run(&config).await.expect("report runs");
    assert!(
        report.failures().is_empty(),
        "failures: {:?}",
        report.failures()
    );
    let run = &report.runs[0];
    assert_eq!(run.name, "sqlite");
    assert_eq!(run.baseline, Some("raw sqlx"));
    for op in Op::ALL {
        let result = run.result(op).expect("every op has a result");
        assert!(
            result.adapter.stats().is_some(),
            "sqlite did not measure {}",
            op.slug()
        );
    }
    for op in [
        Op::GetChat,
        Op::ListChatsFirstPage,
        Op::GetFile,
        Op::List(Model::Notes),
        Op::Get(Model::Notes),
        Op::List(Model::Knowledge),
        Op::Get(Model::Folders),
        Op::List(Model::ChannelMessages),
        Op::VectorSearch,
    ] {
        let result = run.result(op).expect("every op has a result");
        assert!(
            result.raw.stats().is_some(),
            "raw sqlx did not measure {}",
            op.slug()
        );
    }
    assert_eq!(run.streaming.len(), 2, "one streaming entry per size");
    for s in &run.streaming {
        let adapter = s
            .adapter
            .transfers()
            .expect("put_stream/read_stream measured");
        let raw = s.raw.transfers().expect("the raw file copy measured");
        // Files under 10 MB get five times the transfers asked for (their medians are noisy).
        let runs = chatstore_benches::streaming::runs_for(s.size, 2);
        assert_eq!(runs, 10, "a {}-byte file", s.size);
        assert_eq!((adapter.put.len(), raw.get.len()), (runs, runs));
        assert!(s.shares().is_some_and(|(put, get)| put > 0.0 && get > 0.0));
    }
    let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("report.md");
    assert!(md.contains("raw sqlx"));
    assert!(md.contains("## Streaming files"));
    assert!(md.contains("| sqlite | 600 kB |"), "{md}");
    assert!(md.contains("memory per transfer"));
}

/// `streaming_only` (`chatstore bench --only streaming`) streams files through the backend and
/// its raw client and times no operation and no bulk import.
#[tokio::test]
async fn the_streaming_section_runs_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ReportConfig {
        scale: Scale::new(10),
        backends: vec!["sqlite".to_owned()],
        stream_sizes: vec![300_000],
        streaming_only: true,
        ..tiny(dir.path())
    };
    let report = report::run(&config).await.expect("report runs");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    let run = &report.runs[0];
    assert!(run.ops.is_empty(), "no operation is timed");
    assert!(run.raw_import.stats().is_none(), "no bulk import runs");
    let streamed = &run.streaming[0];
    assert!(streamed.adapter.transfers().is_some() && streamed.raw.transfers().is_some());
}

/// Two sizes give one scaling table: every operation of the backend with a p50 per size, the
/// growth, the target of the operations it judges, and each run's load.
#[tokio::test]
async fn the_scaling_table_puts_every_size_side_by_side() {
    use chatstore_benches::scaling::{self, SCALING_FILE};
    let dir = tempfile::tempdir().expect("temp dir");
    let mut reports = Vec::new();
    for chats in [40, 80] {
        let config = ReportConfig {
            scale: Scale::new(chats),
            samples: 10,
            stream_runs: 0,
            out_dir: dir.path().join(chats.to_string()),
            ..tiny(dir.path())
        };
        reports.push((
            config.scale,
            report::run(&config).await.expect("report runs"),
        ));
    }
    let runs: Vec<_> = reports.iter().map(|(s, r)| (*s, r)).collect();
    let path = scaling::write(&runs, dir.path()).expect("scaling.md");
    assert_eq!(path, dir.path().join(SCALING_FILE));
    let md = std::fs::read_to_string(&path).expect("read scaling.md");
    assert!(
        md.contains("| [40](40/report.md) | 40 |") && md.contains("| [80](80/report.md) | 80 |")
    );
    assert!(
        md.contains(&reports[0].1.machine.load),
        "each run's load is shown"
    );
    assert!(md.contains("\n## memory\n\n| operation | 40 | 80 | growth | target |"));
    let rows = scaling::rows(&runs);
    for op in Op::ALL {
        let row = rows
            .iter()
            .find(|r| r.op == op)
            .unwrap_or_else(|| panic!("{} has no row", op.name()));
        assert!(row.p50.iter().all(Option::is_some) && row.growth.is_some());
        assert!(md.contains(&format!("| {} |", op.name())));
    }
    assert!(md.contains("≤ 1.5×") && md.contains("≤ 3×"));
}

/// The rollout router's runs measure their references (SQLite and PocketBase, each alone) in
/// the same loop, the router section reads its ratios off them, and the references' writes
/// leave the router's two stores equal: no repair logged, no shadow difference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_runs_measure_their_references_in_the_same_loop() {
    if chatstore_testkit::require_env("CHATSTORE_TEST_POCKETBASE_URL").is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ReportConfig {
        scale: Scale::new(20),
        samples: 4,
        max_time_per_op: Duration::from_millis(500),
        backends: vec!["router-dual".to_owned(), "router-shadow".to_owned()],
        stream_runs: 0,
        ..tiny(dir.path())
    };
    let report = report::run(&config).await.expect("report runs");
    assert!(
        report.failures().is_empty(),
        "failures: {:?}",
        report.failures()
    );
    assert_eq!(report.runs.len(), 2);
    for run in &report.runs {
        for op in [Op::GetChat, Op::CreateChat, Op::AddRemoveTag, Op::PutFile] {
            let result = run.result(op).expect("every op has a result");
            assert!(result.adapter.stats().is_some(), "{} {op:?}", run.name);
            for name in ["sqlite", "pocketbase"] {
                let stats = result
                    .reference(name)
                    .and_then(|o| o.stats())
                    .unwrap_or_else(|| panic!("{} {op:?}: {name} alone not measured", run.name));
                assert!(stats.samples >= 4, "{stats:?}");
            }
        }
        // The shadow run also reads the router's own old store directly, and only reads it.
        let direct = |op: Op| {
            run.result(op)
                .and_then(|r| r.reference(chatstore_benches::backends::ROUTER_OLD_DIRECT))
                .and_then(|o| o.stats())
        };
        if run.name == "router-shadow" {
            assert!(direct(Op::GetChat).is_some_and(|s| s.samples >= 4));
            assert!(direct(Op::GetFile).is_some());
            assert!(direct(Op::CreateChat).is_none(), "no write on it alone");
            assert!(direct(Op::PutFile).is_none(), "no write on it alone");
        } else {
            assert!(direct(Op::GetChat).is_none());
        }
        if run.name == "router-dual" {
            let both = run
                .result(Op::CreateChat)
                .and_then(|r| r.reference(chatstore_benches::backends::BOTH_AT_ONCE))
                .and_then(|o| o.stats());
            assert!(both.is_some(), "router-dual runs both stores at once too");
        }
        let stats = run.router_stats.expect("a router run reports its counters");
        assert_eq!(
            (stats.shadow_diffs, stats.shadow_errors),
            (0, 0),
            "{}: {stats:?}",
            run.name
        );
        // A new message's `created_at` is each store's own clock in seconds: an upsert whose
        // two writes straddle a second is (rightly) logged for repair. Writes measured on the
        // router's stores alone would leave dozens.
        assert!(stats.repairs_logged <= 1, "{}: {stats:?}", run.name);
    }
    let shadow = report
        .runs
        .iter()
        .find(|r| r.name == "router-shadow")
        .and_then(|r| r.router_stats)
        .expect("router-shadow ran");
    assert!(shadow.shadow_reads > 0);
    let checks = chatstore_benches::rollout::checks(&report);
    assert_eq!(
        checks.len(),
        7,
        "3 shadowed reads, 4 dual writes: {checks:?}"
    );
    for check in checks.iter().filter(|c| c.backend == "router-shadow") {
        assert_eq!(
            check.reference,
            chatstore_benches::backends::ROUTER_OLD_DIRECT,
            "{check:?}"
        );
        assert!(check.second_store.is_some(), "{check:?}");
    }
    let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("report.md");
    assert!(md.contains("## Rollout router"));
    assert!(md.contains("same loop"));
    assert!(md.contains("| ↳ sqlite alone, same loop |"));
    assert!(
        md.contains("| ↳ the router's sqlite alone, same loop |"),
        "{md}"
    );
    assert!(md.contains("router-dual: 0 shadow reads compared"), "{md}");
    assert!(md.contains("routed / both at once"));
}

/// `vector_copy_only` (`chatstore bench --only vector-copy`) times no backend's operations and
/// runs a copy section per source backend into pgvector (SQLite's and Chroma's): each measures
/// the migration's copy and both ceilings on the same vectors, and the report gives each its
/// own section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_copy_sections_run_alone_one_per_source() {
    if chatstore_testkit::require_env("CHATSTORE_TEST_PGVECTOR_URL").is_none() {
        return;
    }
    let Some(chroma) = chatstore_testkit::require_env("CHATSTORE_TEST_CHROMA_URL") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ReportConfig {
        backends: vec![
            "memory".to_owned(),
            "sqlite".to_owned(),
            "chroma".to_owned(),
        ],
        stream_runs: 0,
        copy_items: 300,
        copy_rounds: 2,
        vector_copy_only: true,
        ..tiny(dir.path())
    };
    let report = report::run(&config).await.expect("report runs");
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    assert!(report.runs.is_empty(), "no backend's workload is timed");
    let sources: Vec<&CopySource> = report.vector_copies.iter().map(|(s, _)| s).collect();
    assert_eq!(sources, [&CopySource::Sqlite, &CopySource::Chroma(chroma)]);
    let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).expect("report.md written");
    for (source, outcome) in &report.vector_copies {
        let CopyOutcome::Measured(r) = outcome else {
            panic!("{} not measured: {outcome:?}", source.name());
        };
        assert!(r.items >= 300 && r.collections > 1, "{r:?}");
        assert!(r.read_alone > Duration::ZERO && r.copy_alone > Duration::ZERO);
        assert!(r.migration_copy > Duration::ZERO && r.migration_copy <= r.migration_total);
        assert!(r.share() > 0.0);
        assert_eq!(r.round_shares.len(), 2, "{r:?}");
        let name = source.name();
        assert!(
            md.contains(&format!("\n## {name} → pgvector copy\n")),
            "{name}"
        );
        assert!(md.contains(&format!("| reading {name} alone |")), "{name}");
    }
}
