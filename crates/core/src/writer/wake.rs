//! When a sleeping task of the writer wakes by itself, published for the
//! threads that might need it sooner: they wake it only then (see `inbox`
//! and `stage`), instead of at every message.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

use tokio::time::Instant;

/// The task is awake (it looks at its work before it sleeps again).
const AWAKE: u64 = 0;
/// The task sleeps until someone wakes it.
const NEVER: u64 = u64::MAX;

pub(super) struct WakeAt {
    /// Microseconds after `epoch`, or [`AWAKE`], or [`NEVER`].
    at: AtomicU64,
    epoch: Instant,
}

impl Default for WakeAt {
    fn default() -> Self {
        WakeAt {
            at: AtomicU64::new(AWAKE),
            epoch: Instant::now(),
        }
    }
}

impl WakeAt {
    fn micros(&self, t: Instant) -> u64 {
        // Never AWAKE nor NEVER: a time at the epoch itself is 1 µs after it.
        (t.saturating_duration_since(self.epoch).as_micros() as u64).clamp(1, NEVER - 1)
    }

    pub(super) fn awake(&self) {
        self.at.store(AWAKE, SeqCst);
    }

    /// About to sleep until `until` (`None`: until woken).
    pub(super) fn sleeping_until(&self, until: Option<Instant>) {
        self.at
            .store(until.map_or(NEVER, |t| self.micros(t)), SeqCst);
    }

    pub(super) fn is_awake(&self) -> bool {
        self.at.load(SeqCst) == AWAKE
    }

    /// Asleep, and not waking by itself before `by`.
    pub(super) fn asleep_past(&self, by: Instant) -> bool {
        let at = self.at.load(SeqCst);
        at != AWAKE && self.micros(by) < at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn asleep_past_compares_with_the_published_time() {
        let w = WakeAt::default();
        let now = Instant::now();
        assert!(w.is_awake() && !w.asleep_past(now));
        w.sleeping_until(Some(now + Duration::from_secs(1)));
        assert!(!w.is_awake());
        assert!(w.asleep_past(now + Duration::from_millis(500)));
        assert!(!w.asleep_past(now + Duration::from_secs(2)));
        w.sleeping_until(None);
        assert!(w.asleep_past(now + Duration::from_secs(3600)));
        w.awake();
        assert!(!w.asleep_past(now));
    }
}
