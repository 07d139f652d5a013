//! One job's tick loop: fixed-rate ticks, a run per tick on the blocking
//! pool (never two at once), backoff after failures.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
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
    loop {
        let tick = tokio::select! {
            t = ticker.tick() => t,
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() || s.stats.hung.load(Ordering::Acquire) {
            return;
        }
        if s.running.swap(true, Ordering::AcqRel) {
            s.stats.skipped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                script = s.job.name(),
                "previous run still going at the next tick: tick skipped"
            );
            continue;
        }
        if tick < not_before {
            s.running.store(false, Ordering::Release);
            s.stats.backed_off.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let generation = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
        let s2 = s.clone();
        let done = tokio::task::spawn_blocking(move || {
            s2.stats
                .record_jitter(Instant::now().saturating_duration_since(tick));
            let ok = s2.job.run().is_ok();
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
        // Learn the outcome without holding up the ticks.
        let s3 = s.clone();
        let cap = settings.backoff_cap;
        let outcome = tokio::spawn(async move {
            let ok = done.await.unwrap_or(false);
            let n = s3.stats.consecutive_failures.load(Ordering::Relaxed);
            (ok, n, cap)
        });
        // The next tick comes at least `interval` later; by then most runs
        // are done and their outcome decides a backoff.
        if let Ok(Ok((ok, n, cap))) = tokio::time::timeout(interval, outcome).await {
            if !ok {
                let wait = backoff_delay(interval, n, cap);
                not_before = tick + wait;
                if n > 1 {
                    tracing::warn!(
                        script = s.job.name(),
                        consecutive_failures = n,
                        next_run_in_secs = wait.as_secs_f64(),
                        "run keeps failing: backing off"
                    );
                }
            } else {
                not_before = tick;
            }
        }
    }
}
