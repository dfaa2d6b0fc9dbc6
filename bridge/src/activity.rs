//! A user's activity from the web client's `heartbeat`: the bridge writes the user's
//! `last_active_at`, as Open WebUI's own Socket.IO server does, at most once per user per
//! interval (Open WebUI's `DATABASE_USER_ACTIVE_STATUS_UPDATE_INTERVAL`).
//!
//! Open WebUI counts a user as active while `last_active_at` is within the last 180 s, and its
//! web client sends `heartbeat` every 30 s while a tab is open. A browser whose Socket.IO
//! connection is served by the bridge sends those heartbeats here, not to Open WebUI: without
//! this, a user with an open but idle tab would show as away.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatstore_core::ErrorKind;

use crate::{BridgeState, metric};

/// Users remembered before the first sweep of those whose interval has passed.
const SWEEP_FROM: usize = 1024;

/// When this bridge last wrote each user's activity.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Mutex<Marks>,
}

#[derive(Debug, Default)]
struct Marks {
    at: HashMap<String, Instant>,
    /// Users remembered after the last sweep; the next sweep runs at twice as many, so the
    /// map stays within twice the users active in one interval and a sweep costs O(1) per
    /// claim on average.
    swept_to: usize,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(Marks::default()),
        }
    }

    /// Whether `user`'s activity is due to be written at `now`; if so, it is marked as
    /// written at `now` (several sockets of one user heartbeating at once: one claims it).
    pub(crate) fn claim(&self, user: &str, now: Instant) -> bool {
        if self.every.is_zero() {
            return true;
        }
        // A poisoned lock only means another claim panicked; the marks stay usable.
        let mut marks = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if marks
            .at
            .get(user)
            .is_some_and(|t| now.saturating_duration_since(*t) < self.every)
        {
            return false;
        }
        if marks.at.len() >= SWEEP_FROM.max(2 * marks.swept_to) {
            let every = self.every;
            marks
                .at
                .retain(|_, t| now.saturating_duration_since(*t) < every);
            marks.swept_to = marks.at.len();
        }
        marks.at.insert(user.to_owned(), now);
        true
    }

    /// Forgets the claim made at `at` (its write failed), so the next heartbeat tries again.
    pub(crate) fn release(&self, user: &str, at: Instant) {
        let mut marks = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if marks.at.get(user) == Some(&at) {
            marks.at.remove(user);
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).at.len()
    }
}

/// A heartbeat of `user`'s socket: writes the user's `last_active_at` (now, in epoch seconds)
/// unless this bridge wrote it within the interval, or activity is off.
pub(crate) async fn heartbeat(state: &BridgeState, user: &str) {
    let Some(throttle) = state.activity() else {
        return;
    };
    let claimed_at = Instant::now();
    if !throttle.claim(user, claimed_at) {
        return;
    }
    let now = chatstore_core::validate::now();
    match state.store().users.set_last_active(user, now).await {
        Ok(()) => metrics::counter!(metric::ACTIVITY_WRITES).increment(1),
        // Deleted since it connected: its session check disconnects it.
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => {
            throttle.release(user, claimed_at);
            metrics::counter!(metric::ACTIVITY_FAILURES).increment(1);
            tracing::warn!(user, error = %e, "bridge: cannot record a user's activity");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    /// One write per user per interval; other users are not held back by it.
    #[test]
    fn a_user_is_written_once_per_interval() {
        let throttle = Throttle::new(MINUTE);
        let t0 = Instant::now();
        assert!(throttle.claim("ada", t0));
        assert!(!throttle.claim("ada", t0));
        assert!(!throttle.claim("ada", t0 + Duration::from_secs(59)));
        assert!(throttle.claim("bob", t0 + Duration::from_secs(1)));
        assert!(throttle.claim("ada", t0 + MINUTE));
        assert!(!throttle.claim("ada", t0 + MINUTE + Duration::from_secs(30)));
    }

    /// A failed write is released, so the next heartbeat tries again; a release of an older
    /// claim leaves a newer one in place.
    #[test]
    fn a_failed_write_is_tried_again() {
        let throttle = Throttle::new(MINUTE);
        let t0 = Instant::now();
        assert!(throttle.claim("ada", t0));
        throttle.release("ada", t0);
        assert!(throttle.claim("ada", t0 + Duration::from_secs(1)));
        throttle.release("ada", t0);
        assert!(!throttle.claim("ada", t0 + Duration::from_secs(2)));
    }

    /// A zero interval writes every heartbeat and remembers no one.
    #[test]
    fn a_zero_interval_writes_every_heartbeat() {
        let throttle = Throttle::new(Duration::ZERO);
        let t0 = Instant::now();
        assert!(throttle.claim("ada", t0));
        assert!(throttle.claim("ada", t0));
        assert_eq!(throttle.remembered(), 0);
    }

    /// Users whose interval has passed are forgotten, so the marks do not grow with every
    /// user who ever connected.
    #[test]
    fn users_whose_interval_passed_are_forgotten() {
        let throttle = Throttle::new(MINUTE);
        let t0 = Instant::now();
        for i in 0..SWEEP_FROM {
            assert!(throttle.claim(&format!("u{i}"), t0));
        }
        assert_eq!(throttle.remembered(), SWEEP_FROM);
        let later = t0 + MINUTE;
        for i in 0..10 {
            assert!(throttle.claim(&format!("v{i}"), later));
        }
        assert!(
            throttle.remembered() <= 10,
            "{} remembered",
            throttle.remembered()
        );
        assert!(!throttle.claim("v0", later));
        // Users still inside their interval survive a sweep.
        let fresh = Throttle::new(MINUTE);
        for i in 0..SWEEP_FROM {
            assert!(fresh.claim(&format!("u{i}"), t0));
        }
        assert!(fresh.claim("late", t0 + Duration::from_secs(1)));
        assert_eq!(fresh.remembered(), SWEEP_FROM + 1);
        assert!(!fresh.claim("u0", t0 + Duration::from_secs(2)));
    }
}
