//! What the scheduler runs ([`Job`]), and what it keeps about each one
//! ([`JobStats`], [`Scheduled`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::recent::Recent;
use crate::status::{Histogram, ScriptState};

/// Something the scheduler runs on an interval.
pub trait Job: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &str;
    fn interval(&self) -> Duration;
    /// Longest a run may take before it is interrupted, and which setting
    /// said so (for the message); `None`: no limit.
    fn timeout(&self) -> Option<super::RunTimeout> {
        None
    }
    /// Run once as run `run` (numbered from 1, never reused), blocking the
    /// calling (runner) thread. An `Err` has already been reported by
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
    /// Unix ms before which no run starts (backoff), 0 when not backing off.
    pub(super) not_before_ms: AtomicU64,
    /// The run the watchdog interrupted last.
    pub(super) interrupted_run: AtomicU64,
    detail: Mutex<Detail>,
}

/// What is kept about the runs beyond counters.
#[derive(Debug, Default)]
struct Detail {
    /// Start delays after the tick, of the latest runs.
    delays: Recent,
    /// Durations of the latest runs.
    durations: Recent,
    histogram: Option<Histogram>,
    last_start: Option<SystemTime>,
    last_duration: Option<Duration>,
    last_success: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
    last_timed_out: bool,
}

/// A copy of a job's numbers at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSnapshot {
    pub runs: u64,
    pub failures: u64,
    pub skipped: u64,
    pub backed_off: u64,
    pub timeouts: u64,
    pub consecutive_failures: u64,
    pub hung: bool,
    /// Waiting past its normal tick because of failures.
    pub backing_off: bool,
    /// The last run (or the one in progress) was interrupted by its timeout.
    pub last_timed_out: bool,
    pub last_start: Option<SystemTime>,
    pub last_duration: Option<Duration>,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
    pub duration_p50_ms: Option<f64>,
    pub duration_p99_ms: Option<f64>,
    pub durations: Histogram,
    pub start_delay_p50_ms: Option<f64>,
    pub start_delay_p99_ms: Option<f64>,
}

impl JobSnapshot {
    /// The state `pythond status` shows for these numbers.
    pub fn state(&self) -> ScriptState {
        // Timed out before "no failure yet": the timeout is counted the
        // moment it fires, while the interrupted run still unwinds.
        if self.hung {
            ScriptState::Hung
        } else if self.last_timed_out {
            ScriptState::TimedOut
        } else if self.consecutive_failures == 0 {
            ScriptState::Ok
        } else if self.backing_off {
            ScriptState::BackingOff
        } else {
            ScriptState::Failing
        }
    }
}

impl JobStats {
    fn detail(&self) -> std::sync::MutexGuard<'_, Detail> {
        self.detail.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn record_start(&self, delay: Duration) {
        let mut d = self.detail();
        d.delays.record(delay.as_micros() as u64);
        d.last_start = Some(SystemTime::now());
    }

    /// Run `run` outlived its timeout: counted, and the script is timed
    /// out from now on (until a run ends otherwise), in one step under the
    /// lock [`JobStats::snapshot`] reads under, so no snapshot counts the
    /// timeout without the state.
    pub(super) fn record_timeout(&self, run: u64) {
        let mut d = self.detail();
        self.timeouts.fetch_add(1, Ordering::Relaxed);
        self.interrupted_run.store(run, Ordering::Release);
        d.last_timed_out = true;
    }

    pub(super) fn record_end(&self, run: u64, took: Duration, result: &Result<(), RunFailed>) {
        let timed_out = self.interrupted_run.load(Ordering::Acquire) == run;
        let mut d = self.detail();
        d.durations.record(took.as_micros() as u64);
        d.histogram
            .get_or_insert_with(Histogram::new)
            .observe(took.as_secs_f64());
        d.last_duration = Some(took);
        d.last_timed_out = timed_out && result.is_err();
        match result {
            Ok(()) => d.last_success = Some(SystemTime::now()),
            Err(e) => d.last_error = Some((SystemTime::now(), e.0.clone())),
        }
    }

    /// Start delays of the latest runs (microseconds): p50, p99, max
    /// (percentiles within ±3.2 %, see [`Recent`]); zeros before any run.
    pub fn start_delay_summary_us(&self) -> (u64, u64, u64) {
        let d = self.detail();
        let q = |q: f64| d.delays.quantile_us(q).unwrap_or(0.0).round() as u64;
        (q(0.5), q(0.99), d.delays.max_us().unwrap_or(0))
    }

    /// All the numbers, with percentiles over the latest runs.
    pub fn snapshot(&self) -> JobSnapshot {
        let d = self.detail();
        let not_before = self.not_before_ms.load(Ordering::Relaxed);
        JobSnapshot {
            runs: self.runs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            backed_off: self.backed_off.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            hung: self.hung.load(Ordering::Relaxed),
            backing_off: not_before > crate::status::unix_ms(SystemTime::now()),
            last_timed_out: d.last_timed_out,
            last_start: d.last_start,
            last_duration: d.last_duration,
            last_success: d.last_success,
            last_error: d.last_error.clone(),
            duration_p50_ms: d.durations.quantile_ms(0.5),
            duration_p99_ms: d.durations.quantile_ms(0.99),
            durations: d.histogram.clone().unwrap_or_default(),
            start_delay_p50_ms: d.delays.quantile_ms(0.5),
            start_delay_p99_ms: d.delays.quantile_ms(0.99),
        }
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
