//! The router: an old and a new [`Store`] behind one, with a phase per model group.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chatstore_core::compare::{self, Precision};
use chatstore_core::{Error, ErrorKind, ModelGroup, Result, Store, StoreParts};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard, Notify, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::changes::RoutedFeed;
use crate::phase::Phase;
use crate::repair::{self, RepairKey, RepairLog, Side};
use crate::shadow::{self, DiffLog, DiffRecord, Outcome, Verdict};
use crate::{chats, files, messages, rows, tags, users, vectors};

/// How long a shadow read may take before it is abandoned, by default.
pub const DEFAULT_SHADOW_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a shadow read waits, by default, for a moment when no caller's call is running
/// through the router before it starts anyway.
pub const DEFAULT_SHADOW_YIELD: Duration = Duration::from_millis(20);
/// How long the non-authoritative write may take before it is logged for repair, by default.
pub const DEFAULT_SECONDARY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most shadow reads in flight at once; more are skipped (and counted), so a slow new
/// store cannot pile up work.
pub const MAX_SHADOW_IN_FLIGHT: usize = 1024;
const LOCK_STRIPES: usize = 64;
/// How often the shadow dispatcher looks for queued shadow reads it may start.
const SHADOW_TICK: Duration = Duration::from_millis(1);
/// Ticks without a queued shadow read after which the dispatcher stops (the next shadow read
/// starts it again).
const SHADOW_IDLE_TICKS: u32 = 100;

/// Counters of a router since it was built (the same figures go to the `metrics` facade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouterStats {
    /// Shadow reads compared.
    pub shadow_reads: u64,
    /// Shadow reads whose answers differed (each is a line of the diff log).
    pub shadow_diffs: u64,
    /// Shadow reads the new store could not answer (unavailable).
    pub shadow_errors: u64,
    /// Shadow reads abandoned after the shadow timeout.
    pub shadow_timeouts: u64,
    /// Reads not shadowed because too many shadow reads were in flight.
    pub shadow_skipped: u64,
    /// Repair-log entries written.
    pub repairs_logged: u64,
    /// Repair-log entries that could not be written (the error is logged with `tracing`).
    pub repair_log_failures: u64,
}

#[derive(Default)]
struct Counters {
    shadow_reads: AtomicU64,
    shadow_diffs: AtomicU64,
    shadow_errors: AtomicU64,
    shadow_timeouts: AtomicU64,
    shadow_skipped: AtomicU64,
    repairs_logged: AtomicU64,
    repair_log_failures: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) old: Store,
    pub(crate) new: [Option<Store>; GROUPS],
    phases: [AtomicU8; GROUPS],
    pub(crate) repair: RepairLog,
    diffs: Option<DiffLog>,
    sample: AtomicU8,
    sample_counter: AtomicU64,
    shadow_timeout: Duration,
    shadow_yield: Duration,
    pub(crate) secondary_timeout: Duration,
    counters: Counters,
    in_flight: AtomicUsize,
    idle: Notify,
    /// Callers' calls running through the router's reads and writes.
    foreground: AtomicUsize,
    /// Shadow reads waiting for the dispatcher.
    queued: std::sync::Mutex<ShadowQueue>,
    stripes: Vec<Mutex<()>>,
    /// Held shared by the writes that give chats tags or make tag rows, exclusively by a tag
    /// delete (see [`Shared::tag_writes`]).
    tag_deletes: RwLock<()>,
    /// Per table of [`chatstore_core::rows::ALL_TABLES`], held shared by a row write that only
    /// inserts or upserts into it and exclusively by one that updates or deletes by a filter
    /// (see [`Shared::table_guards`]).
    tables: Vec<RwLock<()>>,
    /// Per group, held shared by every write to both stores while it runs and exclusively by a
    /// move to `new-only`, which so waits for the writes begun before it: a repair such a write
    /// logs is then seen before the old store stops being written.
    gates: [RwLock<()>; GROUPS],
    /// Per group, the writes to both stores begun and ended: a shadow read that overlapped
    /// one may have seen it on one store and not yet on the other.
    writes: [WriteActivity; GROUPS],
    /// Phase changes, one at a time.
    phase_change: Mutex<()>,
    /// The change feed, when a new store has one to take over from the old store's when reads
    /// move to it.
    feed: Option<Arc<RoutedFeed>>,
}

const GROUPS: usize = ModelGroup::ALL.len();

/// How many writes of a group to both stores have begun and ended.
#[derive(Debug, Default)]
struct WriteActivity {
    begun: AtomicU64,
    ended: AtomicU64,
}

impl WriteActivity {
    /// Whether every write begun before `begun` was counted has ended, waiting for that up
    /// to `limit`.
    async fn settled(&self, begun: u64, limit: Duration) -> bool {
        let ended = async {
            while self.ended.load(Ordering::SeqCst) < begun {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        bounded(limit, ended).await.is_some()
    }
}

/// A write's hold on its group while it writes both stores: the group's gate (a move to
/// `new-only` waits for it) and its count among the group's writes.
pub(crate) struct WriteGate<'a> {
    _gate: RwLockReadGuard<'a, ()>,
    activity: &'a WriteActivity,
}

impl Drop for WriteGate<'_> {
    fn drop(&mut self) {
        self.activity.ended.fetch_add(1, Ordering::SeqCst);
    }
}

/// A row write's hold on the tables it writes (see [`Shared::table_guards`]).
pub(crate) struct TableGuards<'a> {
    /// Tables it only inserts or upserts into.
    _shared: Vec<RwLockReadGuard<'a, ()>>,
    /// Tables it updates or deletes by a filter.
    _exclusive: Vec<RwLockWriteGuard<'a, ()>>,
}

fn index(group: ModelGroup) -> usize {
    match group {
        ModelGroup::Users => 0,
        ModelGroup::Chats => 1,
        ModelGroup::Files => 2,
        ModelGroup::Workspace => 3,
        ModelGroup::Vectors => 4,
    }
}

/// Whether `store` holds `group` (the workspace group: whether it has rows).
fn group_cap(store: &Store, group: ModelGroup) -> bool {
    let caps = store.capabilities();
    match group {
        ModelGroup::Users => caps.users,
        ModelGroup::Chats => caps.chats,
        ModelGroup::Files => caps.files,
        ModelGroup::Workspace => store.has_rows(),
        ModelGroup::Vectors => caps.vectors,
    }
}

/// Builds a [`Router`]: the old store, a new store and a phase per group, the log files.
pub struct RouterBuilder {
    old: Store,
    new: BTreeMap<ModelGroup, Store>,
    phases: BTreeMap<ModelGroup, Phase>,
    repair_log: PathBuf,
    shadow_log: Option<PathBuf>,
    sample: u8,
    shadow_timeout: Duration,
    shadow_yield: Duration,
    secondary_timeout: Duration,
}

impl RouterBuilder {
    /// The new store of `group`.
    pub fn new_store(mut self, group: ModelGroup, store: Store) -> Self {
        self.new.insert(group, store);
        self
    }

    /// The same new store for every group it is capable of.
    pub fn new_store_for_all(mut self, store: &Store) -> Self {
        for group in ModelGroup::ALL {
            if group_cap(store, group) {
                self.new.insert(group, store.clone());
            }
        }
        self
    }

    /// The starting phase of `group` (`old` when not given).
    pub fn phase(mut self, group: ModelGroup, phase: Phase) -> Self {
        self.phases.insert(group, phase);
        self
    }

    /// The same starting phase for every group that has a new store.
    pub fn phase_for_all(mut self, phase: Phase) -> Self {
        for group in self.new.keys() {
            self.phases.insert(*group, phase);
        }
        self
    }

    /// Where the repair log lives (default `chatstore-repair.jsonl`).
    pub fn repair_log(mut self, path: impl Into<PathBuf>) -> Self {
        self.repair_log = path.into();
        self
    }

    /// Where shadow-read differences are written; `None` sends them to `tracing` only.
    pub fn shadow_log(mut self, path: Option<PathBuf>) -> Self {
        self.shadow_log = path;
        self
    }

    /// The percentage (0-100) of reads shadowed in the `shadow` phase (default 100).
    pub fn shadow_sample(mut self, percent: u8) -> Self {
        self.sample = percent.min(100);
        self
    }

    /// How long a shadow read may take before it is abandoned.
    pub fn shadow_timeout(mut self, timeout: Duration) -> Self {
        self.shadow_timeout = timeout;
        self
    }

    /// How long a shadow read waits for a moment when no caller's call is running through the
    /// router (reads and writes of every group) before it starts anyway (default 20 ms).
    /// Zero starts it as soon as the old store has answered.
    pub fn shadow_yield(mut self, wait: Duration) -> Self {
        self.shadow_yield = wait;
        self
    }

    /// How long the non-authoritative write may take before it is logged for repair.
    pub fn secondary_timeout(mut self, timeout: Duration) -> Self {
        self.secondary_timeout = timeout;
        self
    }

    /// Checks the configuration and opens the logs.
    pub fn build(self) -> Result<Router> {
        for (group, store) in &self.new {
            if !group_cap(store, *group) {
                return Err(Error::invalid(format!(
                    "the new store for {group} ({}) cannot store {group}",
                    store.backend_name()
                )));
            }
            if !group_cap(&self.old, *group) {
                return Err(Error::invalid(format!(
                    "the old store ({}) cannot store {group}, so there is nothing to route",
                    self.old.backend_name()
                )));
            }
        }
        for (group, phase) in &self.phases {
            if phase.needs_new() && !self.new.contains_key(group) {
                return Err(Error::invalid(format!(
                    "phase {phase} for {group} needs a new store: set CHATSTORE_{}_NEW_URL",
                    group.env_name()
                )));
            }
        }
        let repair = RepairLog::open(&self.repair_log)?;
        let diffs = self.shadow_log.map(DiffLog::open).transpose()?;
        let mut new: [Option<Store>; GROUPS] = Default::default();
        for (group, store) in self.new {
            new[index(group)] = Some(store);
        }
        let phases = ModelGroup::ALL
            .map(|g| AtomicU8::new(self.phases.get(&g).copied().unwrap_or(Phase::Old).to_u8()));
        let feed = RoutedFeed::build(
            &self.old,
            |g| new[index(g)].clone(),
            |g| self.phases.get(&g).copied().unwrap_or(Phase::Old),
        );
        let shared = Shared {
            old: self.old,
            new,
            phases,
            repair,
            diffs,
            sample: AtomicU8::new(self.sample),
            sample_counter: AtomicU64::new(0),
            shadow_timeout: self.shadow_timeout,
            shadow_yield: self.shadow_yield,
            secondary_timeout: self.secondary_timeout,
            counters: Counters::default(),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            foreground: AtomicUsize::new(0),
            queued: std::sync::Mutex::new(ShadowQueue::default()),
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            tag_deletes: RwLock::new(()),
            tables: chatstore_core::rows::ALL_TABLES
                .iter()
                .map(|_| RwLock::new(()))
                .collect(),
            gates: Default::default(),
            writes: Default::default(),
            phase_change: Mutex::new(()),
            feed,
        };
        Ok(Router {
            shared: Arc::new(shared),
        })
    }
}

/// A handle on a router: its [`Store`], its phases (changeable at run time), its counters and
/// its repair log. Clones share everything.
#[derive(Clone)]
pub struct Router {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("phases", &self.phases())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A builder around the old store.
    pub fn builder(old: Store) -> RouterBuilder {
        RouterBuilder {
            old,
            new: BTreeMap::new(),
            phases: BTreeMap::new(),
            repair_log: PathBuf::from(crate::config::DEFAULT_REPAIR_LOG),
            shadow_log: None,
            sample: 100,
            shadow_timeout: DEFAULT_SHADOW_TIMEOUT,
            shadow_yield: DEFAULT_SHADOW_YIELD,
            secondary_timeout: DEFAULT_SECONDARY_TIMEOUT,
        }
    }

    /// The routed store. Every repository follows the phases of this router, changes
    /// included; `Store::delete_user` goes through the routed repositories.
    pub fn store(&self) -> Store {
        let s = &self.shared;
        let mut caps = s.old.capabilities();
        for store in s.new.iter().flatten() {
            caps.atomic_bulk &= store.capabilities().atomic_bulk;
        }
        let news: BTreeSet<&str> = s.new.iter().flatten().map(|n| n.backend_name()).collect();
        let name = if news.is_empty() {
            format!("router({})", s.old.backend_name())
        } else {
            let news: Vec<&str> = news.into_iter().collect();
            format!("router({} -> {})", s.old.backend_name(), news.join(", "))
        };
        let store = Store::new(
            name,
            caps,
            StoreParts {
                users: Arc::new(users::Users(s.clone())),
                chats: Arc::new(chats::Chats(s.clone())),
                messages: Arc::new(messages::Messages(s.clone())),
                tags: Arc::new(tags::Tags(s.clone())),
                files: Arc::new(files::Files(s.clone())),
                vectors: Arc::new(vectors::Vectors(s.clone())),
            },
        );
        // Rows follow the workspace group's phase; each store checks them, so the router's
        // own row store goes in unwrapped.
        let store = if s.old.has_rows() {
            store.with_checked_rows(Arc::new(rows::Rows(s.clone())))
        } else {
            store
        };
        // The store a group's reads come from announces its changes (see `changes`): the old
        // store's feed as it is while no new store has one.
        match (&s.feed, s.old.changes()) {
            (Some(feed), _) => store.with_changes(feed.clone()),
            (None, Some(feed)) => store.with_changes(feed),
            (None, None) => store,
        }
    }

    /// The old store.
    pub fn old(&self) -> &Store {
        &self.shared.old
    }

    /// The new store of `group`, if one is configured.
    pub fn new_store(&self, group: ModelGroup) -> Option<&Store> {
        self.shared.new[index(group)].as_ref()
    }

    /// The phase of `group` now.
    pub fn phase(&self, group: ModelGroup) -> Phase {
        self.shared.phase(group)
    }

    /// Every group's phase now.
    pub fn phases(&self) -> BTreeMap<ModelGroup, Phase> {
        ModelGroup::ALL
            .into_iter()
            .map(|g| (g, self.phase(g)))
            .collect()
    }

    /// Moves `group` to `phase`, effective for the next call (calls in flight finish in the
    /// phase they started in). A move to `new-only` first waits for the group's writes to both
    /// stores that are under way (at most the secondary timeout; the group's next writes wait
    /// with it), so that a repair one of them logs is seen. Phase changes run one at a time.
    ///
    /// Refused with `InvalidInput`: any phase but `old` without a new store; entering
    /// `new-only` while repairs of the group are pending (the new store would become the only
    /// one while missing writes: run `reconcile` first); leaving `new-only` (the old store has
    /// not been written since, so a flag flip would lose those writes: copy new into old with
    /// `chatstore migrate` first, then restart with the phase wanted).
    pub async fn set_phase(&self, group: ModelGroup, phase: Phase) -> Result<()> {
        let _one_at_a_time = self.shared.phase_change.lock().await;
        let current = self.phase(group);
        if current == phase {
            return Ok(());
        }
        if phase.needs_new() && self.new_store(group).is_none() {
            return Err(Error::invalid(format!(
                "phase {phase} for {group} needs a new store: set CHATSTORE_{}_NEW_URL",
                group.env_name()
            )));
        }
        if current == Phase::NewOnly {
            return Err(Error::invalid(format!(
                "{group} is new-only: the old store has not been written since, so moving back \
                 would hide those writes; copy new into old first (chatstore migrate --from NEW \
                 --to OLD --groups {group}), then restart with CHATSTORE_{}_PHASE",
                group.env_name()
            )));
        }
        if phase.reads_new() && self.shared.group_behind(group)? {
            return Err(Error::invalid(format!(
                "{group} ran in `old` since the new store was last written, so the new store \
                 misses those writes: run `chatstore reconcile` (it copies the group's records \
                 from the old store) before moving {group} to {phase}"
            )));
        }
        if phase == Phase::Old && current.writes_both() {
            // From now on only the old store is written: the new store falls behind, and a
            // later move to a phase reading it waits for the group to be copied over. Logged
            // before the move, so a failure to log leaves the phase as it was.
            let entry = repair::entry(
                RepairKey::Group(group),
                "set_phase old",
                Side::Old,
                "the group was moved back to old: the new store is no longer written",
            );
            self.shared.repair.append(&[entry])?;
        }
        // Entering new-only waits for the group's writes to both stores that are under way (new
        // ones wait meanwhile): a write whose new half fails after the check below would leave
        // the only store written from now on without it.
        // The wait is bounded: a write holds the group for its old store's write and at most
        // the secondary timeout for the new store's half, so twice that and a second is ample;
        // a write that holds it longer (a long upload read from its caller) would otherwise
        // hold every later write of the group behind this move.
        let _gate = match phase {
            Phase::NewOnly => {
                let limit = (self.shared.secondary_timeout.saturating_mul(2))
                    .saturating_add(Duration::from_secs(1));
                let gate = &self.shared.gates[index(group)];
                let Some(gate) = bounded(limit, gate.write()).await else {
                    return Err(Error::Unavailable {
                        message: format!(
                            "{group}: writes to both stores were still under way after \
                             {limit:?}; try the move to new-only again"
                        ),
                        source: None,
                    });
                };
                Some(gate)
            }
            _ => None,
        };
        if phase == Phase::NewOnly {
            let pending = self.shared.pending_repairs(group)?;
            if pending > 0 {
                return Err(Error::invalid(format!(
                    "{pending} repair(s) of {group} are pending in {}: run `chatstore reconcile` \
                     before moving {group} to new-only",
                    self.shared.repair.path().display()
                )));
            }
        }
        if let Some(feed) = &self.shared.feed {
            // Before the first read from the store the feed is to follow.
            feed.phase_changes(group, phase);
        }
        self.shared.phases[index(group)].store(phase.to_u8(), Ordering::SeqCst);
        tracing::info!(%group, from = %current, to = %phase, "router phase changed");
        Ok(())
    }

    /// Changes the share of reads shadowed in the `shadow` phase (0-100).
    pub fn set_shadow_sample(&self, percent: u8) {
        self.shared
            .sample
            .store(percent.min(100), Ordering::Relaxed);
    }

    /// The counters so far.
    pub fn stats(&self) -> RouterStats {
        let c = &self.shared.counters;
        RouterStats {
            shadow_reads: c.shadow_reads.load(Ordering::Relaxed),
            shadow_diffs: c.shadow_diffs.load(Ordering::Relaxed),
            shadow_errors: c.shadow_errors.load(Ordering::Relaxed),
            shadow_timeouts: c.shadow_timeouts.load(Ordering::Relaxed),
            shadow_skipped: c.shadow_skipped.load(Ordering::Relaxed),
            repairs_logged: c.repairs_logged.load(Ordering::Relaxed),
            repair_log_failures: c.repair_log_failures.load(Ordering::Relaxed),
        }
    }

    /// The repair log.
    pub fn repair_log(&self) -> &RepairLog {
        &self.shared.repair
    }

    /// Waits until every shadow read started so far has been compared and logged.
    pub async fn shadow_settled(&self) {
        loop {
            let notified = self.shared.idle.notified();
            if self.shared.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Decrements the in-flight count of shadow reads when the background task ends.
struct InFlight(Arc<Shared>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a shadow read's answer from the new store is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compared {
    /// A second read of the old store, run beside the new store's read in the background. The
    /// caller's path copies nothing (copying a chat's blob cost more than the router's other
    /// work together), and the two compared reads are as close in time as two reads can be,
    /// so a write landing between the caller's read and the shadow read (which may wait up to
    /// the shadow yield) is not reported as a difference. It costs the old store one more read
    /// per shadowed read, run when no call is (`CHATSTORE_SHADOW_SAMPLE` bounds both).
    ReadAgain,
    /// A copy of the caller's answer, taken on the caller's path.
    Answer,
}

/// The old side of a queued shadow read.
enum OldSide<T, Fut> {
    /// The copy of the caller's answer.
    Kept(std::result::Result<T, chatstore_core::ErrorKind>),
    /// The second read of the old store, not started yet.
    Again(Fut),
}

/// How many times a shadow comparison that differed beside a write of its group reads both
/// stores again, each time after the writes begun by then have ended.
const SHADOW_READS_AGAIN: u32 = 3;

/// The old store's side of a shadow comparison and the new store's answer (or its timeout).
type ShadowPair<T> = (
    std::result::Result<T, ErrorKind>,
    std::result::Result<Result<T>, tokio::time::error::Elapsed>,
);

/// Whether both sides of a shadow comparison answered the same value.
fn same_pair<T: PartialEq>((old, new): &ShadowPair<T>) -> bool {
    matches!((old, new), (Ok(a), Ok(Ok(b))) if a == b)
}

/// A shadow read with its comparison, ready to run.
type ShadowJob = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Shadow reads queued for the dispatcher, each with the moment it was queued.
#[derive(Default)]
struct ShadowQueue {
    jobs: Vec<(tokio::time::Instant, ShadowJob)>,
    /// Whether a dispatcher task is running.
    dispatching: bool,
}

/// A caller's call running through the router.
pub(crate) struct Foreground<'a>(&'a Shared);

impl Drop for Foreground<'_> {
    fn drop(&mut self) {
        self.0.foreground.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The running dispatcher's hold on its router. Made before the dispatcher's task is spawned,
/// so a task dropped before it first runs or mid-loop (its runtime shutting down) still marks
/// the dispatcher stopped (the next queued shadow read starts a new one) and drops the shadow
/// reads it left queued: each holds the router, so a queue nobody dispatches would keep the
/// router and its stores alive for ever.
struct Dispatching(Option<Arc<Shared>>);

impl Drop for Dispatching {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            let abandoned = {
                let mut queue = shared.queue();
                queue.dispatching = false;
                std::mem::take(&mut queue.jobs)
            };
            shared
                .counters
                .shadow_skipped
                .fetch_add(abandoned.len() as u64, Ordering::Relaxed);
            // Dropped here, outside the queue's lock: a job may hold the last other handle
            // on the router.
            drop(abandoned);
        }
    }
}

impl Shared {
    /// Counts a caller's call as running until the guard is dropped.
    pub(crate) fn foreground(&self) -> Foreground<'_> {
        self.foreground.fetch_add(1, Ordering::SeqCst);
        Foreground(self)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, ShadowQueue> {
        // Nothing panics while holding the lock; a poisoned queue is still a valid queue.
        self.queued.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a shadow read for the dispatcher, starting the dispatcher if it is not running.
    /// The caller neither spawns nor wakes anything else: a task woken at the end of the
    /// caller's call could take the caller's core before the caller returns.
    fn queue_shadow(self: &Arc<Self>, runtime: &tokio::runtime::Handle, job: ShadowJob) {
        let start = {
            let mut queue = self.queue();
            queue.jobs.push((tokio::time::Instant::now(), job));
            !std::mem::replace(&mut queue.dispatching, true)
        };
        if start {
            runtime.spawn(Self::dispatch(Dispatching(Some(self.clone()))));
        }
    }

    /// Every [`SHADOW_TICK`], starts the queued shadow reads once no caller's call is running
    /// through the router, or once the oldest has waited `shadow_yield`: shadow reads (the new
    /// store's client here, its server wherever it runs) use the machine while callers do
    /// not, rather than while they do. Stops after [`SHADOW_IDLE_TICKS`] ticks with nothing
    /// queued.
    async fn dispatch(mut running: Dispatching) {
        let Some(shared) = running.0.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(SHADOW_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut idle = 0;
        loop {
            tick.tick().await;
            let due: Vec<ShadowJob> = {
                let mut queue = shared.queue();
                let Some((oldest, _)) = queue.jobs.first() else {
                    idle += 1;
                    if idle >= SHADOW_IDLE_TICKS {
                        // Stopped under the lock, so a shadow read queued from now on
                        // starts a new dispatcher.
                        queue.dispatching = false;
                        running.0 = None;
                        return;
                    }
                    continue;
                };
                idle = 0;
                if shared.foreground.load(Ordering::SeqCst) > 0
                    && oldest.elapsed() < shared.shadow_yield
                {
                    continue;
                }
                queue.jobs.drain(..).map(|(_, job)| job).collect()
            };
            for job in due {
                tokio::spawn(job);
            }
        }
    }

    pub(crate) fn phase(&self, group: ModelGroup) -> Phase {
        Phase::from_u8(self.phases[index(group)].load(Ordering::SeqCst))
    }

    /// How long a write waits for the new store.
    pub(crate) fn secondary_timeout(&self) -> Duration {
        self.secondary_timeout
    }

    pub(crate) fn new_of(&self, group: ModelGroup) -> Result<&Store> {
        self.new[index(group)].as_ref().ok_or_else(|| {
            Error::invalid(format!(
                "{group} has no new store: set CHATSTORE_{}_NEW_URL",
                group.env_name()
            ))
        })
    }

    pub(crate) fn side(&self, group: ModelGroup, side: Side) -> Result<&Store> {
        match side {
            Side::Old => Ok(&self.old),
            Side::New => self.new_of(group),
        }
    }

    fn sampled(&self) -> bool {
        let sample = u64::from(self.sample.load(Ordering::Relaxed));
        if sample >= 100 {
            return true;
        }
        let n = self.sample_counter.fetch_add(1, Ordering::Relaxed);
        // Spreads `sample` of every 100 reads evenly: read n is taken when the running share
        // crosses a whole number.
        (n * sample) / 100 != ((n + 1) * sample) / 100
    }

    /// Held by a write that gives a chat tags or makes tag rows (`chats.create` with tags,
    /// `set_tags`, `add_tag`, `tags.ensure`, `tags.create_many`) while it writes both stores.
    /// A tag delete changes every chat of the user under another repair key than those writes,
    /// so the two stores could apply a delete and such a write in opposite orders and end
    /// differently (the tag gone on one, back on the other) with equal answers and nothing
    /// logged; [`Shared::tag_delete`] waits for them instead.
    pub(crate) async fn tag_writes(&self) -> RwLockReadGuard<'_, ()> {
        self.tag_deletes.read().await
    }

    /// Held by a tag delete while it writes both stores (see [`Shared::tag_writes`]), and by
    /// every write that deletes tag rows no chat carries any more (`chats.remove_tag`,
    /// `set_tags`, `chats.delete`, `delete_for_user`): against a `tags.ensure` of the same tag
    /// at the same moment, the two stores could apply the two in opposite orders.
    pub(crate) async fn tag_delete(&self) -> RwLockWriteGuard<'_, ()> {
        self.tag_deletes.write().await
    }

    /// Held by a row write while it writes both stores: shared for a table it only inserts or
    /// upserts into, exclusive for a table it updates or deletes by a filter. Such a filter
    /// write locks the rows the old store matched before it; a row inserted by another write
    /// meanwhile matched on the old store and not yet on the new one, so the stores ended
    /// differently with nothing logged. Tables are locked in [`ALL_TABLES`] order, so two
    /// writes never wait on each other in a cycle.
    ///
    /// [`ALL_TABLES`]: chatstore_core::rows::ALL_TABLES
    pub(crate) async fn table_guards(
        &self,
        ops: &[chatstore_core::rows::RowOp],
    ) -> TableGuards<'_> {
        use chatstore_core::rows::{ALL_TABLES, RowOp};
        let mut exclusive: BTreeMap<usize, bool> = BTreeMap::new();
        for op in ops {
            let (table, filtered) = match op {
                RowOp::Insert { table, .. } | RowOp::Upsert { table, .. } => (table, false),
                RowOp::Update { table, .. } | RowOp::Delete { table, .. } => (table, true),
            };
            if let Some(i) = ALL_TABLES.iter().position(|t| t.name == table.name) {
                *exclusive.entry(i).or_default() |= filtered;
            }
        }
        let mut guards = TableGuards {
            _shared: Vec::new(),
            _exclusive: Vec::new(),
        };
        for (i, exclusive) in exclusive {
            if exclusive {
                guards._exclusive.push(self.tables[i].write().await);
            } else {
                guards._shared.push(self.tables[i].read().await);
            }
        }
        guards
    }

    /// Locks the stripes of `keys` (sorted, so two writers never wait on each other in a
    /// cycle): writes to one record through this router reach both stores in the same order.
    pub(crate) async fn lock_keys(&self, keys: &[RepairKey]) -> Vec<MutexGuard<'_, ()>> {
        let stripes: BTreeSet<usize> = keys
            .iter()
            .map(|k| {
                let mut h = DefaultHasher::new();
                k.hash(&mut h);
                (h.finish() % LOCK_STRIPES as u64) as usize
            })
            .collect();
        let mut guards = Vec::with_capacity(stripes.len());
        for i in stripes {
            guards.push(self.stripes[i].lock().await);
        }
        guards
    }

    /// A read in the group's phase. In `shadow`, the new store runs the same read in the
    /// background beside a second read of the old store, and `canon` turns both answers into
    /// the JSON that is compared (see [`Compared`]).
    pub(crate) async fn read<T, F, Fut>(
        self: &Arc<Self>,
        group: ModelGroup,
        operation: &'static str,
        ids: Vec<String>,
        canon: fn(&T) -> Result<Value>,
        call: F,
    ) -> Result<T>
    where
        T: Clone + PartialEq + Send + 'static,
        F: Fn(&Store) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.read_compared(group, operation, ids, canon, call, Compared::ReadAgain)
            .await
    }

    /// [`read`](Self::read) with the shadow read compared as `compared` says
    /// ([`Compared::Answer`] for answers that cost less to copy than to read again).
    pub(crate) async fn read_compared<T, F, Fut>(
        self: &Arc<Self>,
        group: ModelGroup,
        operation: &'static str,
        ids: Vec<String>,
        canon: fn(&T) -> Result<Value>,
        call: F,
        compared: Compared,
    ) -> Result<T>
    where
        T: Clone + PartialEq + Send + 'static,
        F: Fn(&Store) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let _foreground = self.foreground();
        match self.phase(group) {
            Phase::Old | Phase::Dual => call(&self.old).await,
            Phase::New | Phase::NewOnly => call(self.new_of(group)?).await,
            Phase::Shadow => {
                let Some(new) = self.new[index(group)].as_ref() else {
                    return call(&self.old).await;
                };
                if !self.sampled() {
                    return call(&self.old).await;
                }
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return call(&self.old).await;
                };
                if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_SHADOW_IN_FLIGHT {
                    drop(InFlight(self.clone()));
                    self.counters.shadow_skipped.fetch_add(1, Ordering::Relaxed);
                    return call(&self.old).await;
                }
                let guard = InFlight(self.clone());
                // The old store answers first, alone. The new store's read is queued for the
                // dispatcher, which starts it once no caller's call is running through the
                // router (at most `shadow_yield` later), so it does not compete with the
                // caller's next call for the cores; the comparison runs there too.
                let answer = call(&self.old).await;
                // What the new store's answer is compared with: a second read of the old
                // store made beside it, or a copy of the caller's answer.
                let old = match compared {
                    Compared::ReadAgain => OldSide::Again(call(&self.old)),
                    Compared::Answer => OldSide::Kept(match &answer {
                        Ok(v) => Ok(v.clone()),
                        Err(e) => Err(e.kind()),
                    }),
                };
                let shadow = call(new);
                let timeout = self.shadow_timeout;
                let shared = self.clone();
                let job = Box::pin(async move {
                    let _guard = guard;
                    let writes = &shared.writes[index(group)];
                    let mut begun = writes.begun.load(Ordering::SeqCst);
                    let mut quiet = writes.ended.load(Ordering::SeqCst) >= begun;
                    let Some(mut pair) = shared
                        .shadow_pair(group, operation, old, shadow, timeout)
                        .await
                    else {
                        return;
                    };
                    let mut again = 0;
                    loop {
                        // Equal answers (nearly every read once the stores agree) are the same
                        // without turning either into JSON: the comparison's CPU shares the
                        // machine with the caller's next calls.
                        if same_pair(&pair) {
                            shared.count_shadow_read(group, operation);
                            return;
                        }
                        // A write of the group ran beside the two reads: it may have reached
                        // one store and not yet the other. Once the writes begun by now have
                        // ended, both are read again; only a difference still there, or one
                        // that every reading found beside a write, is one.
                        let now = writes.begun.load(Ordering::SeqCst);
                        let beside_a_write = !quiet || now != begun;
                        if !beside_a_write
                            || again == SHADOW_READS_AGAIN
                            || !writes.settled(now, timeout).await
                        {
                            break;
                        }
                        again += 1;
                        let Some(new) = shared.new[index(group)].as_ref() else {
                            break;
                        };
                        begun = writes.begun.load(Ordering::SeqCst);
                        quiet = writes.ended.load(Ordering::SeqCst) >= begun;
                        let old = OldSide::Again(call(&shared.old));
                        match shared
                            .shadow_pair(group, operation, old, call(new), timeout)
                            .await
                        {
                            Some(next) => pair = next,
                            None => return,
                        }
                    }
                    let (old, answer) = pair;
                    let old = match old {
                        Ok(v) => match canon(&v) {
                            Ok(v) => Outcome::Value(v),
                            Err(e) => Outcome::Failed(e.kind()),
                        },
                        Err(kind) => Outcome::Failed(kind),
                    };
                    let new = match answer {
                        Err(_) => {
                            shared.count_timeout(group, operation);
                            return;
                        }
                        Ok(Ok(v)) => match canon(&v) {
                            Ok(v) => Outcome::Value(v),
                            Err(e) => Outcome::Failed(e.kind()),
                        },
                        Ok(Err(e)) => Outcome::Failed(e.kind()),
                    };
                    shared.record_shadow(group, operation, ids, &old, &new);
                });
                self.queue_shadow(&runtime, job);
                answer
            }
        }
    }

    /// The two sides of a shadow comparison: the old store's (a second read, or the caller's
    /// answer) and the new store's, each bounded by `timeout`. `None` (counted as a timeout)
    /// when the old store's second read did not answer in time: nothing to compare with.
    async fn shadow_pair<T, Fut>(
        &self,
        group: ModelGroup,
        operation: &'static str,
        old: OldSide<T, Fut>,
        shadow: Fut,
        timeout: Duration,
    ) -> Option<ShadowPair<T>>
    where
        Fut: Future<Output = Result<T>>,
    {
        match old {
            OldSide::Kept(old) => Some((old, tokio::time::timeout(timeout, shadow).await)),
            OldSide::Again(again) => {
                let (old, new) = tokio::join!(
                    tokio::time::timeout(timeout, again),
                    tokio::time::timeout(timeout, shadow)
                );
                match old {
                    Ok(old) => Some((old.map_err(|e| e.kind()), new)),
                    Err(_) => {
                        self.count_timeout(group, operation);
                        None
                    }
                }
            }
        }
    }

    fn count_timeout(&self, group: ModelGroup, operation: &'static str) {
        self.counters
            .shadow_timeouts
            .fetch_add(1, Ordering::Relaxed);
        metrics::counter!("chatstore_router_shadow_timeouts_total",
            "group" => group.as_str(), "operation" => operation)
        .increment(1);
    }

    fn count_shadow_read(&self, group: ModelGroup, operation: &'static str) {
        self.counters.shadow_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("chatstore_router_shadow_reads_total",
            "group" => group.as_str(), "operation" => operation)
        .increment(1);
    }

    fn record_shadow(
        &self,
        group: ModelGroup,
        operation: &'static str,
        ids: Vec<String>,
        old: &Outcome,
        new: &Outcome,
    ) {
        self.count_shadow_read(group, operation);
        // A store keeping vectors in half precision answers them rounded.
        let precision = match (group, self.new_of(group)) {
            (ModelGroup::Vectors, Ok(new)) => {
                Precision::between(&self.old.capabilities(), &new.capabilities())
            }
            _ => Precision::Float,
        };
        match shadow::judge(old, new, precision) {
            Verdict::Same => {}
            Verdict::Unavailable => {
                self.counters.shadow_errors.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("chatstore_router_shadow_errors_total",
                    "group" => group.as_str(), "operation" => operation)
                .increment(1);
            }
            Verdict::Different(fields) => {
                self.counters.shadow_diffs.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("chatstore_router_shadow_diffs_total",
                    "group" => group.as_str(), "operation" => operation)
                .increment(1);
                let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
                tracing::warn!(%group, operation, ?ids, ?paths, "shadow read differs");
                let record = DiffRecord {
                    time: shadow::now_millis(),
                    group,
                    operation: operation.to_owned(),
                    ids,
                    fields,
                };
                if let Some(log) = &self.diffs
                    && let Err(e) = log.write(&record)
                {
                    tracing::error!(error = %e, "cannot write the shadow diff log");
                }
            }
        }
    }

    /// A write in the group's phase. Where both stores are written, they are written at the
    /// same time: the new store's write runs on a task of its own, so its CPU work (building
    /// the request, the other store's client) overlaps the old store's instead of waiting for
    /// it in one task. The old store's answer is the caller's; any sign that the new store did
    /// not end up like the old one (an error, a timeout, a different answer, success where the
    /// old store failed, or a caller that went away before both answered) logs `keys` for
    /// repair.
    pub(crate) async fn write<T, F, Fut>(
        &self,
        group: ModelGroup,
        operation: &'static str,
        keys: Vec<RepairKey>,
        call: F,
    ) -> Result<T>
    where
        T: Serialize + PartialEq + Send + 'static,
        F: Fn(&Store) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        let _foreground = self.foreground();
        let (phase, _gate) = self.write_phase(group).await;
        match phase {
            Phase::Old => call(&self.old).await,
            Phase::NewOnly => call(self.new_of(group)?).await,
            Phase::Dual | Phase::Shadow | Phase::New => {
                let new = self.new_of(group)?;
                let _locks = self.lock_keys(&keys).await;
                // Logs the keys if this future is dropped before both stores answered: the
                // new store's task goes on, the old store's write may not have finished.
                let unfinished = self.unfinished(operation, keys);
                let (old, new) = match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        let new_write = tokio::time::timeout(self.secondary_timeout, call(new));
                        let task = runtime.spawn(new_write);
                        let old = call(&self.old).await;
                        (old, task.await.map_err(|e| e.to_string()))
                    }
                    // Outside Tokio there is no timer to bound the new store's write with
                    // (building one would panic): both writes are awaited together.
                    Err(_) => {
                        let (old, new) = futures::join!(call(&self.old), call(new));
                        (old, Ok(Ok(new)))
                    }
                };
                let reason = match (&old, &new) {
                    (_, Err(e)) => Some(format!("the new store's write did not finish: {e}")),
                    (_, Ok(Err(_))) => Some(format!(
                        "the new store did not answer within {:?}",
                        self.secondary_timeout
                    )),
                    (Ok(a), Ok(Ok(Ok(b)))) => {
                        (!same_answer(a, b)).then(|| "the stores answered differently".to_owned())
                    }
                    (Ok(_), Ok(Ok(Err(e)))) => Some(format!("the new store failed: {e}")),
                    (Err(e), Ok(Ok(Ok(_)))) => Some(format!(
                        "the old store failed ({e}) but the new store succeeded"
                    )),
                    // An old store that answered `Unavailable` may have written (its commit
                    // went through, then the connection broke), whatever the new store did.
                    (Err(a), Ok(Ok(Err(_)))) if a.kind() == ErrorKind::Unavailable => {
                        Some(format!("the old store answered {a}: it may have written"))
                    }
                    (Err(a), Ok(Ok(Err(b)))) => (a.kind() != b.kind())
                        .then(|| format!("the stores failed differently: old {a}, new {b}")),
                };
                unfinished.settle(reason);
                old
            }
        }
    }

    /// The phase a write of `group` runs in, holding the group's gate while it writes both
    /// stores (a move to `new-only` waits for it).
    pub(crate) async fn write_phase(&self, group: ModelGroup) -> (Phase, Option<WriteGate<'_>>) {
        let phase = self.phase(group);
        if !phase.writes_both() {
            return (phase, None);
        }
        let gate = self.gates[index(group)].read().await;
        // The group may have moved to new-only while this write waited.
        let phase = self.phase(group);
        if !phase.writes_both() {
            return (phase, None);
        }
        let activity = &self.writes[index(group)];
        activity.begun.fetch_add(1, Ordering::SeqCst);
        (
            phase,
            Some(WriteGate {
                _gate: gate,
                activity,
            }),
        )
    }

    /// Entries of `group` pending in the repair log.
    /// Whether a [`RepairKey::Group`] entry of `group` is pending: the group ran in `old`
    /// since, and the new store has not been copied up to date.
    pub(crate) fn group_behind(&self, group: ModelGroup) -> Result<bool> {
        Ok(self
            .repair
            .pending()?
            .iter()
            .any(|e| e.key == RepairKey::Group(group)))
    }

    pub(crate) fn pending_repairs(&self, group: ModelGroup) -> Result<usize> {
        Ok(self
            .repair
            .pending()?
            .iter()
            .filter(|e| e.group == group)
            .count())
    }

    /// `keys`, about to be written to both stores: recorded as under way (an intent, see
    /// [`RepairLog`]) until the returned guard is settled, and logged for repair if it is
    /// dropped first (a caller that went away part way).
    pub(crate) fn unfinished(
        &self,
        operation: &'static str,
        keys: Vec<RepairKey>,
    ) -> Unfinished<'_> {
        let intent = self.repair.intend(operation, &keys);
        Unfinished {
            shared: self,
            operation,
            keys: Some(keys),
            intent,
        }
    }

    /// Logs `keys` for repair; whether the log took them.
    pub(crate) fn log_repairs(
        &self,
        operation: &str,
        keys: Vec<RepairKey>,
        source: Side,
        reason: &str,
    ) -> bool {
        let entries: Vec<_> = keys
            .into_iter()
            .map(|k| repair::entry(k, operation, source, reason))
            .collect();
        tracing::warn!(
            operation,
            reason,
            count = entries.len(),
            "write logged for repair"
        );
        match self.repair.append(&entries) {
            Ok(()) => {
                self.counters
                    .repairs_logged
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                for e in &entries {
                    metrics::counter!("chatstore_router_repairs_logged_total",
                        "group" => e.group.as_str())
                    .increment(1);
                }
                true
            }
            Err(e) => {
                // The caller's write stands on the authoritative store; what is lost is the
                // record that the other store lags. Loud, counted, and `verify` finds it.
                self.counters
                    .repair_log_failures
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                metrics::counter!("chatstore_router_repair_log_failures_total")
                    .increment(entries.len() as u64);
                tracing::error!(error = %e, ?entries, "cannot write the repair log");
                false
            }
        }
    }
}

/// The keys of a write to both stores still in flight, recorded as under way until it is
/// settled; logged for repair if the caller drops the write before both stores answered.
pub(crate) struct Unfinished<'a> {
    shared: &'a Shared,
    operation: &'static str,
    keys: Option<Vec<RepairKey>>,
    /// The write's intent, closed once the keys are settled (logged or not needed). Left open
    /// when the repair log would not take them, for the next router to adopt.
    intent: Option<u64>,
}

impl Unfinished<'_> {
    /// Both stores answered (or the write is over): the keys are logged for repair when
    /// there is a `reason` (the stores did not end up alike), and the write is settled.
    pub(crate) fn settle(mut self, reason: Option<String>) {
        let keys = self.keys.take().unwrap_or_default();
        if let Some(reason) = reason.filter(|_| !keys.is_empty()) {
            self.log(keys, &reason);
        }
    }

    /// The old store's answer to a write the new store is only given after it, passed on. A
    /// failure leaves nothing to repair (the write is settled), unless the old store's answer
    /// was lost on the way (unavailable), so that its write may have landed all the same: then
    /// the keys are logged.
    pub(crate) fn old_answer<T>(&mut self, answer: Result<T>) -> Result<T> {
        if let Err(error) = &answer {
            let keys = self.keys.take().unwrap_or_default();
            if error.kind() == ErrorKind::Unavailable && !keys.is_empty() {
                let reason =
                    format!("the old store's answer was lost ({error}); it may have written");
                self.log(keys, &reason);
            }
        }
        answer
    }

    /// Logs `keys`; if the log will not take them, the intent stays open, so the next router
    /// to open the log after this one is gone logs them.
    fn log(&mut self, keys: Vec<RepairKey>, reason: &str) {
        if !self
            .shared
            .log_repairs(self.operation, keys, Side::Old, reason)
        {
            self.intent = None;
        }
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if let Some(keys) = self.keys.take().filter(|k| !k.is_empty()) {
            self.log(keys, "the caller went away before both stores answered");
        }
        if let Some(intent) = self.intent.take() {
            self.shared.repair.settled(intent);
        }
    }
}

/// Whether the two stores' answers to a write are the same: equal values are (the common
/// case, and a comparison that allocates nothing); others are compared the way shadow reads
/// are, as canonical JSON (numbers within a tolerance, maps whatever their order). The
/// caller waits for this, so the cheap test goes first: turning a chat with its blob into
/// JSON twice cost more than the router's every other step of a dual write together.
fn same_answer<T: Serialize + PartialEq>(a: &T, b: &T) -> bool {
    if a == b {
        return true;
    }
    match (compare::canonical(a), compare::canonical(b)) {
        (Ok(a), Ok(b)) => compare::same(&a, &b),
        _ => false,
    }
}

/// `future`'s output, or `None` when it has not finished within `limit`. The limit needs
/// Tokio's timer: outside a Tokio runtime (another executor) the future is awaited whole, as
/// building the timer there would panic, after the old store had already written.
pub(crate) async fn bounded<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::time::timeout(limit, future).await.ok()
    } else {
        Some(future.await)
    }
}

/// The canonical JSON of a value (the usual `canon` of a shadow read).
pub(crate) fn canon<T: Serialize>(value: &T) -> Result<Value> {
    compare::canonical(value)
}

/// Runs `call` on a clone of `$repo` of the store with clones of the named arguments, as a
/// `'static` future (shadow reads outlive the caller's borrow).
macro_rules! on {
    ($repo:ident, [$($arg:ident),*], |$r:ident| $body:expr) => {
        move |s: &chatstore_core::Store| {
            let $r = s.$repo.clone();
            $(let $arg = $arg.clone();)*
            async move { $body }
        }
    };
}
pub(crate) use on;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chatstore_core::{NewUser, UserPatch, memory};
    use serde_json::json;

    use super::{Router, same_answer};
    use crate::Phase;

    /// A router over memory stores (`new` the new one), every group in `shadow` with the given
    /// shadow yield, its repair log named after `test`, holding user `u1` ("Ada").
    async fn shadow_router(
        test: &str,
        new: &chatstore_core::Store,
        shadow_yield: Duration,
    ) -> (Router, std::path::PathBuf) {
        let log = std::env::temp_dir().join(format!(
            "chatstore-router-{test}-{}.jsonl",
            std::process::id()
        ));
        let router = Router::builder(memory::store())
            .new_store_for_all(new)
            .phase_for_all(Phase::Shadow)
            .repair_log(&log)
            .shadow_yield(shadow_yield)
            .build()
            .expect("router");
        let ada = NewUser::new("ada@example.com", "Ada").with_id("u1");
        router.store().users.create(ada).await.expect("create u1");
        (router, log)
    }

    /// A shadow read waits while a caller's call is running through the router, and starts
    /// once none is, or once it has waited `shadow_yield`, whichever comes first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shadow_reads_wait_for_callers_at_most_the_shadow_yield() {
        let (router, log) =
            shadow_router("yield", &memory::store(), Duration::from_millis(300)).await;
        let store = router.store();
        // A caller's call still running (another request, say).
        let running = router.shared.foreground();
        store.users.get("u1").await.expect("read u1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(router.stats().shadow_reads, 0, "waits while a call runs");
        drop(running);
        router.shadow_settled().await;
        assert_eq!(router.stats().shadow_reads, 1, "starts once none runs");
        let running = router.shared.foreground();
        store.users.get("u1").await.expect("read u1");
        tokio::time::timeout(Duration::from_secs(5), router.shadow_settled())
            .await
            .expect("starts after the shadow yield though a call still runs");
        assert_eq!(router.stats().shadow_reads, 2);
        drop(running);
        std::fs::remove_file(&log).ok();
    }

    /// A shadow read compares the new store's answer with a second read of the old store made
    /// beside it: a write landing between the caller's read and the shadow read (held back
    /// here by a call still running) is in both and is no difference. A record changed on
    /// the new store alone still is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_between_the_callers_read_and_its_shadow_is_no_difference() {
        let new = memory::store();
        let (router, log) = shadow_router("between", &new, Duration::from_secs(600)).await;
        let store = router.store();
        let running = router.shared.foreground();
        let read = store.users.get("u1").await.expect("read u1");
        assert_eq!(read.name, "Ada");
        let renamed = UserPatch {
            name: Some("Ada L.".to_owned()),
            ..UserPatch::default()
        };
        store.users.update("u1", renamed).await.expect("rename u1");
        drop(running);
        router.shadow_settled().await;
        let stats = router.stats();
        assert_eq!(
            (stats.shadow_reads, stats.shadow_diffs),
            (1, 0),
            "{stats:?}"
        );

        let behind = UserPatch {
            name: Some("changed behind the router".to_owned()),
            ..UserPatch::default()
        };
        new.users
            .update("u1", behind)
            .await
            .expect("change the new side");
        let read = store.users.get("u1").await.expect("read u1 again");
        assert_eq!(read.name, "Ada L.", "the old store answers");
        router.shadow_settled().await;
        let stats = router.stats();
        assert_eq!(
            (stats.shadow_reads, stats.shadow_diffs),
            (2, 1),
            "{stats:?}"
        );
        std::fs::remove_file(&log).ok();
    }

    /// A shadow read still queued when its runtime shuts down is dropped with the dispatcher:
    /// the router (and the stores it holds) goes when its last handle does, and a router used
    /// again from another runtime dispatches again.
    #[test]
    fn queued_shadow_reads_do_not_outlive_their_runtime() {
        let log = std::env::temp_dir().join(format!(
            "chatstore-router-queued-{}.jsonl",
            std::process::id()
        ));
        let runtime = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime")
        };
        let router = Router::builder(memory::store())
            .new_store_for_all(&memory::store())
            .phase_for_all(Phase::Shadow)
            .repair_log(&log)
            .shadow_yield(Duration::from_secs(600))
            .build()
            .expect("router");
        let store = router.store();
        let first = runtime();
        first.block_on(async {
            let ada = NewUser::new("ada@example.com", "Ada").with_id("u1");
            store.users.create(ada).await.expect("create u1");
            // Held as a caller's call, so the shadow read stays queued until the runtime goes.
            let running = router.shared.foreground();
            store.users.get("u1").await.expect("read u1");
            std::mem::forget(running);
        });
        drop(first);
        router
            .shared
            .foreground
            .store(0, std::sync::atomic::Ordering::SeqCst);
        assert!(router.shared.queue().jobs.is_empty(), "nothing left queued");
        assert_eq!(
            router.stats().shadow_skipped,
            1,
            "the abandoned read is counted"
        );

        let second = runtime();
        second.block_on(async {
            store.users.get("u1").await.expect("read u1 again");
            tokio::time::timeout(Duration::from_secs(5), router.shadow_settled())
                .await
                .expect("a new runtime dispatches again");
        });
        assert_eq!(router.stats().shadow_reads, 1);

        let weak = std::sync::Arc::downgrade(&router.shared);
        drop((store, router));
        drop(second);
        assert!(
            weak.upgrade().is_none(),
            "the router is gone with its handles"
        );
        std::fs::remove_file(&log).ok();
    }

    /// Equal answers are the same without JSON; answers that differ only where the canonical
    /// comparison allows (a float within the tolerance) are still the same; others are not.
    #[test]
    fn answers_compare_equal_first_then_as_canonical_json() {
        let chat = json!({"id": "c1", "title": "Trip", "tags": ["a", "b"], "score": 0.5});
        assert!(same_answer(&chat, &chat.clone()));
        let close = json!({"id": "c1", "title": "Trip", "tags": ["a", "b"], "score": 0.5 + 1e-9});
        assert!(chat != close && same_answer(&chat, &close));
        let other = json!({"id": "c1", "title": "Trip", "tags": ["a"], "score": 0.5});
        assert!(!same_answer(&chat, &other));
        assert!(same_answer(&(), &()));
        assert!(!same_answer(&Some(1_u64), &None));
    }
}
