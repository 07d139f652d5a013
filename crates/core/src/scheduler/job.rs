//! What the scheduler runs ([`Job`]), and what it keeps about each one
//! ([`JobStats`], [`Scheduled`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something the scheduler runs on an interval.
pub trait Job: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &str;
    fn interval(&self) -> Duration;
    /// Longest a run may take before it is interrupted; `None`: no limit.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Run once as run `run` (numbered from 1, never reused), blocking the
    /// calling (blocking-pool) thread. An `Err` has already been reported by
    /// the job itself.
    fn run(&self, run: u64) -> Result<(), RunFailed>;
    /// Ask run `run` to stop (called from another thread). By the time this
    /// is called that run may have ended and the next begun: the job must
    /// stop run `run` only, and do nothing once it has returned.
    fn interrupt(&self, _run: u64) {}
    /// The run did not stop after being interrupted: the job is abandoned.
    fn hung(&self) {}
}

/// A run that did not succeed (raised, or was interrupted). Its details were
/// reported by the job when it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

/// Counters of one job.
#[derive(Debug, Default)]
pub struct JobStats {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    /// Ticks skipped because the previous run was still going.
    pub skipped: AtomicU64,
    /// Ticks skipped because the job is backing off after failures.
    pub backed_off: AtomicU64,
    pub timeouts: AtomicU64,
    pub consecutive_failures: AtomicU64,
    pub hung: AtomicBool,
    /// Start delays after the tick, microseconds (bounded sample).
    jitter_us: Mutex<Vec<u64>>,
}

const JITTER_SAMPLES: usize = 10_000;

impl JobStats {
    pub(super) fn record_jitter(&self, d: Duration) {
        let mut v = self.jitter_us.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < JITTER_SAMPLES {
            v.push(d.as_micros() as u64);
        }
    }

    /// Start delays recorded so far (microseconds).
    pub fn jitter_samples(&self) -> Vec<u64> {
        self.jitter_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A job under the scheduler.
pub struct Scheduled<J: Job> {
    pub job: Arc<J>,
    pub stats: Arc<JobStats>,
    pub(super) running: Arc<AtomicBool>,
    /// Incremented at every run start: the number of the latest run, which
    /// tells a watchdog (and [`Job::interrupt`]) which run it means.
    pub(super) generation: Arc<AtomicU64>,
}

impl<J: Job> Clone for Scheduled<J> {
    fn clone(&self) -> Self {
        Scheduled {
            job: self.job.clone(),
            stats: self.stats.clone(),
            running: self.running.clone(),
            generation: self.generation.clone(),
        }
    }
}

impl<J: Job> Scheduled<J> {
    pub fn new(job: Arc<J>) -> Self {
        Scheduled {
            job,
            stats: Arc::default(),
            running: Arc::default(),
            generation: Arc::default(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}
