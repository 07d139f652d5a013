//! The arithmetic of a job's ticks: where the next one falls, and how long
//! a failing job waits.

use std::time::{Duration, Instant};

/// The wait after `failures` consecutive failures.
pub fn backoff_delay(interval: Duration, failures: u64, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval.saturating_mul(factor).min(cap.max(interval))
}

/// The tick after `tick`, taken at `now`: one interval on, or, if the
/// process was stalled past that, the first tick of the same grid after
/// `now` (missed ticks are skipped, not bunched, and the grid never drifts).
pub(super) fn next_tick(tick: Instant, interval: Duration, now: Instant) -> Instant {
    let next = tick + interval;
    if next > now || interval.is_zero() {
        return next;
    }
    let late = now.duration_since(tick).as_nanos();
    let steps = late / interval.as_nanos() + 1;
    tick + interval.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_is_one_interval_on_unless_that_has_passed() {
        let t = Instant::now();
        let i = Duration::from_millis(100);
        assert_eq!(next_tick(t, i, t), t + i);
        assert_eq!(next_tick(t, i, t + Duration::from_millis(99)), t + i);
        // Stalled past two ticks: the third, on the same grid.
        assert_eq!(next_tick(t, i, t + Duration::from_millis(250)), t + 3 * i);
        // Exactly on a tick that has come: the one after it.
        assert_eq!(next_tick(t, i, t + 2 * i), t + 3 * i);
    }
}
