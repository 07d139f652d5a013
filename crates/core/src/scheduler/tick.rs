//! One job's tick loop: fixed-rate ticks, a run per tick on the blocking
//! pool (never two at once), backoff after failures.
//!
//! The loop waits for three things at once: shutdown, the outcome of the run
//! in progress, and the next tick. A run's outcome is taken whenever it
//! comes, however many ticks the run lasted, so every failure counts toward
//! the backoff; and it is taken before a tick that is due at the same
//! moment, so the run a tick starts always knows the backoff of the one
//! before.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::job::{Job, Scheduled};
use super::watchdog::watchdog;
use super::Settings;

/// The wait after `failures` consecutive failures.
pub fn backoff_delay(interval: Duration, failures: u64, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval.saturating_mul(factor).min(cap.max(interval))
}

/// The run in progress: the tick it started on, and its outcome to come.
struct InFlight {
    tick: Instant,
    done: JoinHandle<bool>,
}

/// The outcome of the run in flight (`tick`, succeeded), once it has one;
/// never resolves when no run is in flight. Cancel-safe: the run stays in
/// flight until its outcome has been taken.
async fn outcome(in_flight: &mut Option<InFlight>) -> (Instant, bool) {
    let Some(f) = in_flight.as_mut() else {
        return std::future::pending().await;
    };
    // A run that panicked counts as a failure.
    let ok = (&mut f.done).await.unwrap_or(false);
    let tick = f.tick;
    *in_flight = None;
    (tick, ok)
}

pub(super) async fn tick_loop<J: Job>(
    s: Scheduled<J>,
    start: Instant,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let interval = s.job.interval();
    let mut ticker = tokio::time::interval_at(start, interval);
    // Ticks missed while the process was stalled are skipped, not bunched.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut not_before = start;
    let mut in_flight: Option<InFlight> = None;
    loop {
        let tick = tokio::select! {
            // Shutdown first, then an outcome, then a tick: an outcome that
            // is ready when a tick is due decides that tick.
            biased;
            _ = shutdown.changed() => return,
            (started, ok) = outcome(&mut in_flight) => {
                not_before = next_allowed(&s, started, ok, interval, settings.backoff_cap);
                continue;
            }
            t = ticker.tick() => t,
        };
        if *shutdown.borrow() || s.stats.hung.load(Ordering::Acquire) {
            return;
        }
        if in_flight.is_some() {
            s.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                script = s.job.name(),
                interval_secs = interval.as_secs_f64(),
                "run() still going at its next tick: tick skipped (run() is called every \
                 interval and should return well within it)"
            );
            continue;
        }
        if tick < not_before {
            s.stats.backed_off.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        s.running.store(true, Ordering::Release);
        let generation = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let s2 = s.clone();
        let done = tokio::task::spawn_blocking(move || {
            let began = Instant::now();
            s2.stats.record_start(began.saturating_duration_since(tick));
            let result = s2.job.run(generation);
            s2.stats.record_end(generation, began.elapsed(), &result);
            let ok = result.is_ok();
            s2.stats.runs.fetch_add(1, Ordering::Relaxed);
            if ok {
                s2.stats.consecutive_failures.store(0, Ordering::Relaxed);
            } else {
                s2.stats.failures.fetch_add(1, Ordering::Relaxed);
                s2.stats
                    .consecutive_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            s2.running.store(false, Ordering::Release);
            ok
        });
        if let Some(timeout) = s.job.timeout() {
            tokio::spawn(watchdog(
                s.clone(),
                generation,
                timeout,
                settings.hang_grace,
            ));
        }
        in_flight = Some(InFlight { tick, done });
    }
}

/// The earliest tick the next run may start on, after the run that started
/// on `started` ended. Backoff spaces the starts of failing runs: after `n`
/// failures in a row the next run starts `interval × 2^(n-1)` (capped) after
/// the last one started, so the time a long run took counts toward its wait.
fn next_allowed<J: Job>(
    s: &Scheduled<J>,
    started: Instant,
    ok: bool,
    interval: Duration,
    cap: Duration,
) -> Instant {
    if ok {
        s.stats.not_before_ms.store(0, Ordering::Relaxed);
        return started;
    }
    let n = s.stats.consecutive_failures.load(Ordering::Relaxed);
    let wait = backoff_delay(interval, n, cap);
    if n > 1 {
        // For status: until when the job waits longer than its interval.
        let until = std::time::SystemTime::now() + wait.saturating_sub(started.elapsed());
        s.stats
            .not_before_ms
            .store(crate::status::unix_ms(until), Ordering::Relaxed);
    }
    if n > 1 {
        tracing::warn!(
            script = s.job.name(),
            consecutive_failures = n,
            backoff_secs = wait.as_secs_f64(),
            "run keeps failing: backing off (the next run starts {}s after the last one started)",
            wait.as_secs_f64()
        );
    }
    started.checked_add(wait).unwrap_or(started)
}
