//! The routed store's change feed. Each group's changes are announced by the store its writes
//! reach: the old store in every phase but `new-only` (it receives every write, so a write
//! that reaches both stores is announced once, by the old one), and the group's new store
//! once the group is `new-only`. For a few seconds either side of a move to `new-only` (by
//! the time of the change, not of its arrival) both stores' announcements are passed on, so a
//! write made across the move is announced even when one feed is slow or reconnecting; such a
//! write may be announced twice, which the feed's at-least-once delivery allows.
//!
//! The new stores' feeds are only followed once a group of theirs is `new-only`: before, they
//! would repeat every dual write's announcement only to have it dropped (a PocketBase feed
//! also reads the owner of every message it announces).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use chatstore_core::changes::{
    CATCH_UP_SKEW_SECS, ChangeEvent, ChangeFeed, ChangeFilter, ChangeHub, ChangeStream, now_ms,
    subscribe,
};
use chatstore_core::{ModelGroup, Result, Store};
use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

/// The groups whose writes are announced.
const ANNOUNCED: [ModelGroup; 3] = [ModelGroup::Users, ModelGroup::Chats, ModelGroup::Files];

/// `new_only_since` of a group that is not new-only.
const NEVER: i64 = i64::MAX;
/// `new_only_since` of a group new-only since the router was built.
const ALWAYS: i64 = i64::MIN;

/// How far either side of a move to `new-only` both stores' announcements are passed on, by
/// the time of the change: read-back events carry whole seconds, and feeds allow clocks
/// [`CATCH_UP_SKEW_SECS`] apart.
const OVERLAP_MS: i64 = (CATCH_UP_SKEW_SECS + 3) * 1000;

fn slot(group: ModelGroup) -> Option<usize> {
    ANNOUNCED.iter().position(|g| *g == group)
}

fn same(a: &Arc<dyn ChangeFeed>, b: &Arc<dyn ChangeFeed>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// The change feed of a router whose new stores have feeds of their own.
pub(crate) struct RoutedFeed {
    me: Weak<RoutedFeed>,
    hub: ChangeHub,
    old: Arc<dyn ChangeFeed>,
    /// Per announced group, its new store's feed, if the group has a new store with one.
    new: [Option<Arc<dyn ChangeFeed>>; ANNOUNCED.len()],
    /// Per announced group, since when (epoch milliseconds) it is new-only.
    new_only_since: [AtomicI64; ANNOUNCED.len()],
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
    /// The feed of a router over `old` with the new stores `new_store(group)` and the groups
    /// for which `new_only(group)` holds starting in `new-only`; `None` when the old store has
    /// no feed or no announced group's new store has one (the old store's feed then serves
    /// as it is).
    pub(crate) fn build(
        old: &Store,
        new_store: impl Fn(ModelGroup) -> Option<Store>,
        new_only: impl Fn(ModelGroup) -> bool,
    ) -> Option<Arc<RoutedFeed>> {
        let old = old.changes()?;
        let new = ANNOUNCED.map(|g| new_store(g).and_then(|s| s.changes()));
        if new.iter().all(Option::is_none) {
            return None;
        }
        let new_only_since =
            ANNOUNCED.map(|g| AtomicI64::new(if new_only(g) { ALWAYS } else { NEVER }));
        Some(Arc::new_cyclic(|me| RoutedFeed {
            me: me.clone(),
            hub: ChangeHub::default(),
            old,
            new,
            new_only_since,
            forwarding: Mutex::new(Forwarding::default()),
        }))
    }

    /// `group` is moving to `new-only` now: its new store's feed is followed from here on
    /// (before the first write that reaches only that store).
    pub(crate) fn new_only(&self, group: ModelGroup) {
        let Some(i) = slot(group) else { return };
        if let Some(feed) = &self.new[i] {
            let mut forwarding = self.forwarding();
            if forwarding.runtime.is_some() {
                self.follow(&mut forwarding, feed);
            }
        }
        let _ = self.new_only_since[i].compare_exchange(
            NEVER,
            now_ms(),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    fn forwarding(&self) -> std::sync::MutexGuard<'_, Forwarding> {
        self.forwarding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// Follows the feeds the groups' phases need now, once a runtime is at hand. A task that
    /// ended (its runtime shut down) is started again on the caller's runtime.
    fn start(&self, forwarding: &mut Forwarding) {
        if let Ok(runtime) = Handle::try_current() {
            forwarding.runtime = Some(runtime);
        }
        if forwarding.runtime.is_none() {
            return;
        }
        forwarding.sources.retain(|(_, task)| !task.is_finished());
        self.follow(forwarding, &self.old);
        for (i, feed) in self.new.iter().enumerate() {
            if let Some(feed) = feed
                && self.new_only_since[i].load(Ordering::SeqCst) != NEVER
            {
                self.follow(forwarding, feed);
            }
        }
    }

    /// Whether `event`, announced by `source`, is passed on: by the old store while its group
    /// was not new-only when it changed, by the group's new store from then on, by both
    /// around the move.
    fn passes(&self, source: &Arc<dyn ChangeFeed>, event: &ChangeEvent) -> bool {
        let Some(i) = slot(event.group) else {
            return same(source, &self.old);
        };
        let since = self.new_only_since[i].load(Ordering::SeqCst);
        if same(source, &self.old) && event.at < since.saturating_add(OVERLAP_MS) {
            return true;
        }
        since != NEVER
            && event.at >= since.saturating_sub(OVERLAP_MS)
            && self.new[i].as_ref().is_some_and(|n| same(source, n))
    }
}

impl Drop for RoutedFeed {
    fn drop(&mut self) {
        for (_, task) in &self.forwarding().sources {
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
    fn hub(&self) -> &ChangeHub {
        let mut forwarding = self.forwarding();
        self.start(&mut forwarding);
        let (mut connected, mut reconnects) = (true, 0);
        for (feed, _) in &forwarding.sources {
            let status = feed.hub().status();
            connected &= status.connected;
            reconnects += status.reconnects;
        }
        self.hub.mirror(connected, reconnects);
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
        for (i, feed) in self.new.iter().enumerate() {
            let Some(feed) = feed else { continue };
            if self.new_only_since[i].load(Ordering::SeqCst) == NEVER
                || asked.iter().any(|a| same(a, feed))
            {
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
