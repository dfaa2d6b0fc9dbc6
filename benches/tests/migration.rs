//! The report's migration section on the real servers, at a tiny scale: the engine's copy of
//! the users and chats groups into PostgreSQL and PocketBase verifies equal, the raw import of
//! the same records runs beside it, and the memory runs at two sizes.

use chatstore_benches::Scale;
use chatstore_benches::migration::{self, MigrationConfig};
use chatstore_benches::workload::DEFAULT_SEED;

/// Every target with a server set is migrated, verified equal and compared with its raw
/// import; memory is measured at both sizes; the Markdown names every figure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_section_measures_every_configured_target() {
    let postgres = chatstore_testkit::require_env("CHATSTORE_TEST_POSTGRES_URL");
    let pocketbase = chatstore_testkit::require_env("CHATSTORE_TEST_POCKETBASE_URL");
    if postgres.is_none() && pocketbase.is_none() {
        return;
    }
    let mut config = MigrationConfig::new(Scale::new(30), DEFAULT_SEED);
    config.memory_scales = vec![Scale::new(10), Scale::new(30)];
    config.batch_size = 7;
    config.rounds = 2;
    let report = migration::measure(&config).await.expect("the section runs");
    assert!(
        report.failures().is_empty(),
        "failures: {:?}",
        report.failures()
    );
    let expected = usize::from(postgres.is_some()) + usize::from(pocketbase.is_some());
    assert_eq!(report.targets.len(), expected, "{:?}", report.skipped);
    for t in &report.targets {
        assert!(t.share().is_some_and(|s| s > 0.0), "{t:?}");
        assert_eq!(t.round_shares.len(), 2, "{t:?}");
    }
    if postgres.is_some() {
        assert_eq!(report.memory.len(), 2);
    }
    let md = report.to_markdown();
    assert!(md.contains("## Migration"));
    for t in &report.targets {
        assert!(md.contains(&format!("| {} (", t.target)), "{md}");
        assert!(
            md.contains(&format!("{}: the rounds' shares", t.target)),
            "{md}"
        );
    }
}
