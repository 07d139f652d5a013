//! Fixed-rate scheduling of script runs.
//!
//! Every job runs once right after start, then on ticks of its interval
//! measured from that start, so a slow run never makes the schedule drift. A
//! run still going when its next tick comes makes that tick *skipped* (and
//! counted): one job never runs twice at once. Runs execute on tokio's
//! blocking pool, because they hold Python and may block for their whole
//! duration; the tick loops themselves are cheap async tasks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Something the scheduler runs on an interval.
pub trait Job: Send + Sync + 'static {
    /// For logs.
    fn name(&self) -> &str;
    fn interval(&self) -> Duration;
    /// Run once, blocking the calling (blocking-pool) thread. `Err` carries a
    /// message that has already been reported by the job itself.
    fn run(&self) -> Result<(), String>;
}

/// Counters of one job.
#[derive(Debug, Default)]
pub struct JobStats {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub skipped: AtomicU64,
    /// Start delays after the tick, microseconds (bounded sample).
    jitter_us: Mutex<Vec<u64>>,
}

const JITTER_SAMPLES: usize = 10_000;

impl JobStats {
    fn record_jitter(&self, d: Duration) {
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
    running: Arc<AtomicBool>,
}

impl<J: Job> Clone for Scheduled<J> {
    fn clone(&self) -> Self {
        Scheduled {
            job: self.job.clone(),
            stats: self.stats.clone(),
            running: self.running.clone(),
        }
    }
}

impl<J: Job> Scheduled<J> {
    pub fn new(job: Arc<J>) -> Self {
        Scheduled {
            job,
            stats: Arc::default(),
            running: Arc::default(),
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }
}

/// Drive every job until `shutdown` turns true, then wait up to `grace` for
/// runs in progress. Returns the names of jobs still running at the deadline.
pub async fn run<J: Job>(
    jobs: Vec<Scheduled<J>>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) -> Vec<String> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(jobs.len());
    for s in &jobs {
        tasks.push(tokio::spawn(tick_loop(s.clone(), start, shutdown.clone())));
    }
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    for t in &tasks {
        t.abort();
    }
    let deadline = Instant::now() + grace;
    loop {
        let busy: Vec<String> = jobs
            .iter()
            .filter(|s| s.is_running())
            .map(|s| s.job.name().to_owned())
            .collect();
        if busy.is_empty() || Instant::now() >= deadline {
            return busy;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn tick_loop<J: Job>(s: Scheduled<J>, start: Instant, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval_at(start, s.job.interval());
    // Ticks missed while the process was stalled are skipped, not bunched.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let tick = tokio::select! {
            t = ticker.tick() => t,
            _ = shutdown.changed() => return,
        };
        if *shutdown.borrow() {
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
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || {
            s2.stats
                .record_jitter(Instant::now().saturating_duration_since(tick));
            let ok = s2.job.run().is_ok();
            s2.stats.runs.fetch_add(1, Ordering::Relaxed);
            if !ok {
                s2.stats.failures.fetch_add(1, Ordering::Relaxed);
            }
            s2.running.store(false, Ordering::Release);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Sleepy {
        interval: Duration,
        work: Duration,
        active: Arc<AtomicUsize>,
        overlap: Arc<AtomicBool>,
        fail: bool,
    }

    impl Job for Sleepy {
        fn name(&self) -> &str {
            "sleepy"
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        fn run(&self) -> Result<(), String> {
            if self.active.fetch_add(1, Ordering::SeqCst) > 0 {
                self.overlap.store(true, Ordering::SeqCst);
            }
            std::thread::sleep(self.work);
            self.active.fetch_sub(1, Ordering::SeqCst);
            if self.fail {
                Err("boom".into())
            } else {
                Ok(())
            }
        }
    }

    fn sleepy(interval_ms: u64, work_ms: u64, fail: bool) -> Scheduled<Sleepy> {
        Scheduled::new(Arc::new(Sleepy {
            interval: Duration::from_millis(interval_ms),
            work: Duration::from_millis(work_ms),
            active: Arc::default(),
            overlap: Arc::default(),
            fail,
        }))
    }

    async fn run_for(jobs: Vec<Scheduled<Sleepy>>, dur: Duration) -> Vec<String> {
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(jobs, rx, Duration::from_secs(2)));
        tokio::time::sleep(dur).await;
        tx.send(true).unwrap();
        h.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_start_then_on_each_tick() {
        let s = sleepy(100, 1, false);
        run_for(vec![s.clone()], Duration::from_millis(550)).await;
        // ticks at 0,100,...,500 ms; allow the last one to lose a race with
        // shutdown on a loaded machine.
        let runs = s.stats.runs.load(Ordering::SeqCst);
        assert!((5..=6).contains(&runs), "runs {runs}");
        assert_eq!(s.stats.skipped.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_run_skips_ticks_and_never_overlaps() {
        let s = sleepy(50, 120, false);
        run_for(vec![s.clone()], Duration::from_millis(500)).await;
        assert!(!s.job.overlap.load(Ordering::SeqCst), "two runs overlapped");
        let skipped = s.stats.skipped.load(Ordering::SeqCst);
        let runs = s.stats.runs.load(Ordering::SeqCst);
        assert!(skipped >= 4, "skipped {skipped}");
        assert!((3..=5).contains(&runs), "runs {runs}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failures_are_counted_and_schedule_goes_on() {
        let s = sleepy(100, 1, true);
        run_for(vec![s.clone()], Duration::from_millis(350)).await;
        assert_eq!(s.stats.runs.load(Ordering::SeqCst), 4);
        assert_eq!(s.stats.failures.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_waits_for_running_runs_up_to_grace() {
        let s = sleepy(1000, 300, false);
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(vec![s.clone()], rx, Duration::from_millis(50)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(true).unwrap();
        let busy = h.await.unwrap();
        assert_eq!(busy, vec!["sleepy".to_string()]);
    }
}
