//! Fixed-rate scheduling of script runs, with timeouts and backoff.
//!
//! The design (ticks, timeouts, backoff, hung runs): `docs/design.md`,
//! "Inside a worker".
//!
//! Every job runs once right after start, then on ticks of its interval
//! measured from that start, so a slow run never makes the schedule drift.
//! The jobs' first ticks are spread over the first second (at most their
//! interval), so 200 scripts at 1 s start 5 ms apart instead of all at once. A
//! run still going when its next tick comes makes that tick *skipped* (and
//! counted): one job never runs twice at once. Runs execute on the
//! scheduler's own runner threads ([`runner`]), because they hold Python and
//! may block for their whole duration; the runners keep the plan themselves,
//! so a run costs one thread wake-up (the alarm's), not a hand-off from an
//! async task to a blocking thread and back.
//!
//! A run longer than its timeout is interrupted ([`Job::interrupt`], naming
//! the run: one that has ended by then is left alone, and so is the next);
//! one that still has not returned `hang_grace` later is declared *hung*: the
//! job is no longer scheduled (its thread is lost to it) and the others go
//! on. A job whose runs keep failing backs off: after `n` failures in a row
//! its next run starts `interval × 2^(n-1)` (capped) after the last one
//! started, whatever that run's duration; back to its normal ticks after the
//! first success.

mod job;
mod recent;
mod runner;
mod tick;
mod timeout;
mod timer;

use std::sync::atomic::Ordering;
use std::time::Duration;

use std::time::Instant;

use tokio::sync::watch;

pub use job::{Job, JobSnapshot, JobStats, RunFailed, Scheduled};
pub use tick::backoff_delay;
pub use timeout::{default_timeout, timeout_message, RunTimeout, TimeoutSource};

/// Scheduler-wide settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long an interrupted run may take to stop before it is hung.
    pub hang_grace: Duration,
    /// Longest wait between retries of a failing job.
    pub backoff_cap: Duration,
    /// How long shutdown waits for runs in progress.
    pub shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            hang_grace: Duration::from_secs(5),
            backoff_cap: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Drive every job until `shutdown` turns true, then wait up to the shutdown
/// grace for runs in progress (hung ones excepted). Returns the names of jobs
/// still running at the deadline.
pub async fn run<J: Job>(
    jobs: Vec<Scheduled<J>>,
    mut shutdown: watch::Receiver<bool>,
    settings: Settings,
) -> Vec<String> {
    let start = Instant::now();
    let n = jobs.len().max(1) as u32;
    // Spread the jobs' phases over the first second (or their interval, if
    // shorter) so that many scripts with the same interval do not all queue
    // for the GIL at the same instant.
    let first = |i: usize| {
        let spread = jobs[i].job.interval().min(Duration::from_secs(1));
        start + spread * i as u32 / n
    };
    let pool = match runner::Pool::start(&jobs, first, settings) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!("cannot start the threads that run the scripts: {e}");
            None
        }
    };
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    if let Some(p) = &pool {
        p.stop();
    }
    let deadline = Instant::now() + settings.shutdown_grace;
    loop {
        let busy: Vec<String> = jobs
            .iter()
            .filter(|s| s.is_running() && !s.stats.hung.load(Ordering::Acquire))
            .map(|s| s.job.name().to_owned())
            .collect();
        if busy.is_empty() || Instant::now() >= deadline {
            return busy;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests;
