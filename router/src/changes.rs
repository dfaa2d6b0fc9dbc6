//! The routed store's change feed. Each group's changes are announced by the store its reads
//! come from: the old store in `old`, `dual` and `shadow`, the group's new store in `new` and
//! `new-only`. A consumer that reads the record an event names (the bridge does) then reads it
//! from the store that announced it, after that store committed it: with the old store's
//! announcements in `new`, a read could reach the new store before the new store's half of
//! the write had landed, and pass on the state before it. Every write reaches the store reads
//! come from in every phase, so none goes unannounced; a write that reaches both stores is
//! announced once.
//!
//! Which store announced a change is weighed by the time of the change, not of its arrival:
//! within a few seconds of a phase change that moves the group's reads (either way), both
//! stores' announcements are passed on, so a write made across the move is announced even
//! when one feed is slow or reconnecting; such a write may be announced twice, which the
//! feed's at-least-once delivery allows.
//!
//! A new store's feed is followed only once one of its groups has read from it: before, it
//! would repeat every dual write's announcement only to have it dropped (a PocketBase feed
//! also reads the owner of every message it announces).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use chatstore_core::changes::{
    CATCH_UP_SKEW_SECS, ChangeEvent, ChangeFeed, ChangeFilter, ChangeHub, ChangeStream, now_ms,
    subscribe,
};
use chatstore_core::{ModelGroup, Result, Store};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::phase::Phase;

/// The groups whose writes are announced.
const ANNOUNCED: [ModelGroup; 3] = [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files];

/// How far either side of a move of a group's reads both stores' announcements are passed
/// on, by the time of the change: read-back events carry whole seconds, and feeds allow clocks
/// [`CATCH_UP_SKEW_SECS`] apart.
const OVERLAP_MS: i64 = (CATCH_UP_SKEW_SECS + 3) * 1000;

/// Moves of one group's reads kept, at most (older ones only matter to read-backs reaching
/// further into the past, which then go by the oldest kept).
const MOVES_KEPT: usize = 64;

fn slot(group: ModelGroup) -> Option<usize> {
    ANNOUNCED.iter().position(|g| *g == group)
}

fn same(a: &Arc<dyn ChangeFeed>, b: &Arc<dyn ChangeFeed>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The change feed of a router whose new stores have feeds of their own.
pub(crate) struct RoutedFeed {
    me: Weak<RoutedFeed>,
    hub: ChangeHub,
    old: Arc<dyn ChangeFeed>,
    /// Per announced group, its new store's feed, if the group has a new store with one.
    new: [Option<Arc<dyn ChangeFeed>>; ANNOUNCED.len()],
    /// Per announced group, where its reads came from since when: `(epoch ms, reads new)`,
    /// oldest first, the first from the start of time.
    reads: [Mutex<Vec<(i64, bool)>>; ANNOUNCED.len()],
    /// Per announced group, whether its reads ever came from the new store.
    read_new: [AtomicBool; ANNOUNCED.len()],
    forwarding: Mutex<Forwarding>,
}

/// The feeds being passed on, each by a task of its own (started by the first subscriber,
/// which brings the runtime to spawn on).
#[derive(Default)]
struct Forwarding {
    runtime: Option<Handle>,
    sources: Vec<(Arc<dyn ChangeFeed>, JoinHandle<()>)>,
}

impl RoutedFeed {
    /// The feed of a router over `old` with the new stores `new_store(group)` and the starting
    /// phases `phase(group)`; `None` when the old store has no feed or no announced group's
    /// new store has one (the old store's feed then serves as it is).
    pub(crate) fn build(
        old: &Store,
        new_store: impl Fn(ModelGroup) -> Option<Store>,
        phase: impl Fn(ModelGroup) -> Phase,
    ) -> Option<Arc<RoutedFeed>> {
        let old = old.changes()?;
        let new = ANNOUNCED.map(|g| new_store(g).and_then(|s| s.changes()));
        if new.iter().all(Option::is_none) {
            return None;
        }
        let reads_new = ANNOUNCED.map(|g| phase(g).reads_new());
        Some(Arc::new_cyclic(|me| RoutedFeed {
            me: me.clone(),
            hub: ChangeHub::default(),
            old,
            new,
            reads: reads_new.map(|n| Mutex::new(vec![(i64::MIN, n)])),
            read_new: reads_new.map(AtomicBool::new),
            forwarding: Mutex::new(Forwarding::default()),
        }))
    }

    /// `group` moves to `phase` now. Called before the move takes effect, so a new store
    /// that reads are about to come from is listened to before the first read does.
    pub(crate) fn phase_changes(&self, group: ModelGroup, phase: Phase) {
        let Some(i) = slot(group) else { return };
        let reads_new = phase.reads_new();
        if reads_new && let Some(feed) = &self.new[i] {
            self.read_new[i].store(true, Ordering::SeqCst);
            let mut forwarding = lock(&self.forwarding);
            if forwarding.runtime.is_some() {
                self.follow(&mut forwarding, feed);
            }
        }
        let mut moves = lock(&self.reads[i]);
        if moves.last().is_some_and(|(_, n)| *n != reads_new) {
            moves.push((now_ms(), reads_new));
            if moves.len() > MOVES_KEPT {
                moves.remove(0);
            }
        }
    }

    /// Starts passing on `feed`'s events, unless that already runs.
    fn follow(&self, forwarding: &mut Forwarding, feed: &Arc<dyn ChangeFeed>) {
        let Some(runtime) = &forwarding.runtime else {
            return;
        };
        if forwarding.sources.iter().any(|(f, _)| same(f, feed)) {
            return;
        }
        // Subscribed here, not in the task: whatever the store announces from now on is heard.
        let events = subscribe(feed.clone(), ChangeFilter::all());
        let task = runtime.spawn(forward(self.me.clone(), feed.clone(), events));
        forwarding.sources.push((feed.clone(), task));
    }

    /// Follows the feeds the groups need, once a runtime is at hand. A task that ended (its
    /// runtime shut down) is started again on the caller's runtime.
    fn start(&self, forwarding: &mut Forwarding) {
        if let Ok(runtime) = Handle::try_current() {
            forwarding.runtime = Some(runtime);
        }
        if forwarding.runtime.is_none() {
            return;
        }
        forwarding.sources.retain(|(_, task)| !task.is_finished());
        self.follow(forwarding, &self.old);
        for feed in self.followed_new() {
            self.follow(forwarding, feed);
        }
    }

    /// The new stores' feeds of the groups whose reads ever came from them.
    fn followed_new(&self) -> impl Iterator<Item = &Arc<dyn ChangeFeed>> {
        self.new
            .iter()
            .enumerate()
            .filter(|(i, _)| self.read_new[*i].load(Ordering::SeqCst))
            .filter_map(|(_, feed)| feed.as_ref())
    }

    /// Whether `event`, announced by `source`, is passed on: by the store the event's group
    /// read from when it changed, by both within [`OVERLAP_MS`] of a move.
    fn passes(&self, source: &Arc<dyn ChangeFeed>, event: &ChangeEvent) -> bool {
        let from_old = same(source, &self.old);
        let Some(i) = slot(event.group) else {
            return from_old;
        };
        let from_new = self.new[i].as_ref().is_some_and(|n| same(source, n));
        if !from_old && !from_new {
            return false;
        }
        let (early, late) = (
            event.at.saturating_sub(OVERLAP_MS),
            event.at.saturating_add(OVERLAP_MS),
        );
        let moves = lock(&self.reads[i]);
        // Where reads came from at any moment of [early, late]: the side in effect at `early`
        // and every side moved to before `late`.
        let in_effect = moves.iter().rposition(|(t, _)| *t <= early).unwrap_or(0);
        moves[in_effect..]
            .iter()
            .enumerate()
            .filter(|(k, (t, _))| *k == 0 || *t <= late)
            .any(|(_, (_, reads_new))| if *reads_new { from_new } else { from_old })
    }
}

impl Drop for RoutedFeed {
    fn drop(&mut self) {
        for (_, task) in &lock(&self.forwarding).sources {
            task.abort();
        }
    }
}

/// Passes `source`'s events on to the routed feed while it lives.
async fn forward(feed: Weak<RoutedFeed>, source: Arc<dyn ChangeFeed>, mut events: ChangeStream) {
    while let Some(event) = events.next().await {
        let Some(feed) = feed.upgrade() else { return };
        if feed.passes(&source, &event) {
            feed.hub.publish(event);
        }
    }
}

#[async_trait]
impl ChangeFeed for RoutedFeed {
    /// Only when every feed it may pass on does: the old store's and each new store's. A
    /// SQLite store on either side hears only this process's writes to it.
    fn hears_other_processes(&self) -> bool {
        self.old.hears_other_processes()
            && self.new.iter().flatten().all(|f| f.hears_other_processes())
    }

    fn hub(&self) -> &ChangeHub {
        let mut forwarding = lock(&self.forwarding);
        self.start(&mut forwarding);
        let sources: Vec<_> = forwarding
            .sources
            .iter()
            .map(|(feed, _)| feed.hub().status())
            .collect();
        self.hub.mirror(&sources);
        &self.hub
    }

    async fn changes_since(
        &self,
        since_secs: i64,
        user_id: Option<&str>,
    ) -> Result<Vec<ChangeEvent>> {
        let mut events: Vec<ChangeEvent> = self
            .old
            .changes_since(since_secs, user_id)
            .await?
            .into_iter()
            .filter(|e| self.passes(&self.old, e))
            .collect();
        let mut asked: Vec<&Arc<dyn ChangeFeed>> = vec![&self.old];
        for feed in self.followed_new() {
            if asked.iter().any(|a| same(a, feed)) {
                continue;
            }
            asked.push(feed);
            let theirs = feed.changes_since(since_secs, user_id).await?;
            events.extend(theirs.into_iter().filter(|e| self.passes(feed, e)));
        }
        events.sort_by_key(|e| e.at);
        Ok(events)
    }
}
