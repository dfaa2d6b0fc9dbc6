//! # chatstore-benches
//!
//! What the chatstore backends cost on the same work. A seeded, realistic Open WebUI workload
//! ([`workload`]) is loaded into each backend of the [`backends`] registry; the operations of
//! [`ops`] (create chat, upsert message, get chat, list a user's chats on page 1 and on a deep
//! page, list by two tags, search titles, add and remove a tag, put and get a file, insert a
//! batch of vectors and search them) are timed through the [`Store`](chatstore_core::Store)
//! and, where the backend has one, through its raw [`baseline`] written directly against the
//! driver, so the abstraction's overhead is a ratio. The report's [`streaming`] section streams
//! a 1 MB and a 100 MB file through each backend and through its raw client, with the memory
//! each transfer takes. [`realtime`] measures the realtime bridge apart (`chatstore
//! bench-realtime`, `realtime.md`): commit → Socket.IO client latency on PostgreSQL and
//! PocketBase and envelopes/s delivered to 1,000 python-socketio clients.
//!
//! Two ways to run it:
//! - `cargo bench -p chatstore-benches`: criterion, one group per operation, one function per
//!   backend (`CHATSTORE_BENCH_SCALE` picks the scale, default `1k`).
//! - `chatstore bench [--backends ...] [--scale ...] [--out DIR]`, or [`report::run`] from
//!   code: every configured backend once, with a progress bar, written as `report.md` plus one
//!   SVG chart per operation. `--scales 1k,10k,100k` runs one report per size (each in a
//!   folder named after it) and writes [`scaling`]'s table of every operation's p50 at each
//!   size side by side (`scaling.md`).
//!
//! ```
//! use chatstore_benches::report::{self, ReportConfig};
//! use chatstore_benches::workload::Scale;
//!
//! # let dir = std::env::temp_dir().join(format!("chatstore-bench-doc-{}", std::process::id()));
//! let config = ReportConfig {
//!     scale: Scale::new(40),
//!     samples: 5,
//!     backends: vec!["memory".to_owned()],
//!     out_dir: dir.clone(),
//!     progress: false,
//!     ..ReportConfig::default()
//! };
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
//! let report = runtime.block_on(report::run(&config)).expect("report");
//! assert!(report.failures().is_empty());
//! assert!(dir.join("report.md").exists());
//! # std::fs::remove_dir_all(&dir).ok();
//! ```

pub mod backends;
pub mod baseline;
pub mod chart;
pub mod error;
pub mod machine;
pub mod migration;
pub mod models;
pub mod ops;
pub mod raw_pocketbase;
pub mod raw_sql;
pub mod realtime;
pub mod report;
pub mod rng;
pub mod rollout;
pub mod scaling;
pub mod stats;
pub mod streaming;
pub mod vector_copy;
pub mod workload;

pub use backends::{BackendSpec, Opened, registry};
pub use baseline::RawBaseline;
pub use error::BenchError;
pub use ops::{Fixture, Op};
pub use report::{Report, ReportConfig};
pub use workload::{Scale, Workload};
