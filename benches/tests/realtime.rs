//! The realtime benchmark end to end at a tiny size (a few sockets, a few dozen chats), so CI
//! runs its whole path on the real servers: PostgreSQL and PocketBase change feeds, Redis
//! between two bridges, the bridge, python-socketio clients, matching receipts to writes, and
//! `realtime.md`.

use std::time::Duration;

use chatstore_benches::realtime::{self, REALTIME_FILE, RealtimeConfig};

/// Every envelope of both phases reaches every socket of its user on PostgreSQL, PocketBase,
/// memory and through Redis (another bridge's emits), each receipt is matched to its write,
/// and the section names the figures and the reproduce command.
#[tokio::test]
async fn the_realtime_benchmark_delivers_every_envelope_on_every_backend() {
    let needed = [
        "CHATSTORE_TEST_POSTGRES_URL",
        "CHATSTORE_TEST_POCKETBASE_URL",
        "CHATSTORE_TEST_REDIS_URL",
        "CHATSTORE_TEST_SOCKETIO_PYTHONPATH",
    ];
    if needed
        .iter()
        .any(|v| chatstore_testkit::require_env(v).is_none())
    {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = RealtimeConfig {
        sockets: 6,
        users: 3,
        processes: 2,
        paced_events: 12,
        pace: Duration::from_millis(10),
        burst_events: 30,
        writers: 3,
        out_dir: dir.path().to_owned(),
        ..RealtimeConfig::default()
    };
    let report = realtime::run(&config).await.expect("the benchmark runs");
    assert_eq!(report.runs.len(), 4, "skipped: {:?}", report.skipped);
    assert!(report.losses().is_empty(), "lost: {:?}", report.losses());
    for run in &report.runs {
        assert_eq!((run.connected, run.failed), (6, 0), "{}", run.backend);
        // 12 + 30 chats, each to its user's 2 sockets.
        assert_eq!(
            run.paced.expected + run.burst.expected,
            84,
            "{}",
            run.backend
        );
        let latency = run.paced.from_commit.expect("paced receipts matched");
        assert_eq!(latency.samples, 24, "{}", run.backend);
        assert!(latency.p50 <= latency.p99 && latency.p99 <= latency.max);
        assert!(run.burst.delivered_per_sec > 0.0);
    }
    let md = std::fs::read_to_string(dir.path().join(REALTIME_FILE)).expect("realtime.md");
    for needle in [
        "| postgres |",
        "| pocketbase |",
        "| redis |",
        "bench-realtime --sockets 6",
        "load ",
    ] {
        assert!(md.contains(needle), "realtime.md lacks {needle:?}");
    }
}

/// A configuration that cannot run is refused before anything starts.
#[tokio::test]
async fn an_impossible_configuration_is_refused() {
    for config in [
        RealtimeConfig {
            users: 10,
            sockets: 5,
            ..RealtimeConfig::default()
        },
        RealtimeConfig {
            backends: vec!["mongodb".to_owned()],
            ..RealtimeConfig::default()
        },
    ] {
        let err = realtime::measure(&config).await.expect_err("refused");
        assert!(matches!(err, chatstore_benches::BenchError::Config(_)));
    }
}
