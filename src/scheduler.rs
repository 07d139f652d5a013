//! Fixed-rate scheduling of script runs, with timeouts and backoff.
//!
//! Every job runs once right after start, then on ticks of its interval
//! measured from that start, so a slow run never makes the schedule drift.
//! The jobs' first ticks are spread over the first second (at most their
//! interval), so 200 scripts at 1 s start 5 ms apart instead of all at once. A
//! run still going when its next tick comes makes that tick *skipped* (and
//! counted): one job never runs twice at once. Runs execute on tokio's
//! blocking pool, because they hold Python and may block for their whole
//! duration; the tick loops themselves are cheap async tasks.
//!
//! A run longer than its timeout is interrupted ([`Job::interrupt`]); one that
//! still has not returned `hang_grace` later is declared *hung*: the job is no
//! longer scheduled (its thread is lost to it) and the others go on. A job
//! whose runs keep failing waits `interval × 2^(failures-1)` (capped) before
//! its next run, back to its normal ticks after the first success.

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
    /// Longest a run may take before it is interrupted; `None`: no limit.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Run once, blocking the calling (blocking-pool) thread. `Err` carries a
    /// message that has already been reported by the job itself.
    fn run(&self) -> Result<(), String>;
    /// Ask the run in progress to stop (called from another thread).
    fn interrupt(&self) {}
    /// The run did not stop after being interrupted: the job is abandoned.
    fn hung(&self) {}
}

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
    /// Incremented at every run start: tells a watchdog which run it watches.
    generation: Arc<AtomicU64>,
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

/// The wait after `failures` consecutive failures.
pub fn backoff_delay(interval: Duration, failures: u64, cap: Duration) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32 << (failures - 1).min(16);
    interval.saturating_mul(factor).min(cap.max(interval))
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
    let mut tasks = Vec::with_capacity(jobs.len());
    let n = jobs.len().max(1) as u32;
    for (i, s) in jobs.iter().enumerate() {
        // Spread the jobs' phases over the first second (or their interval,
        // if shorter) so that many scripts with the same interval do not all
        // queue for the GIL at the same instant.
        let spread = s.job.interval().min(Duration::from_secs(1));
        let phase = spread * i as u32 / n;
        tasks.push(tokio::spawn(tick_loop(
            s.clone(),
            start + phase,
            settings,
            shutdown.clone(),
        )));
    }
    while !*shutdown.borrow() {
        if shutdown.changed().await.is_err() {
            break;
        }
    }
    for t in &tasks {
        t.abort();
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

async fn tick_loop<J: Job>(
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

/// Interrupt the run `generation` if it outlives `timeout`; declare the job
/// hung if it then outlives `hang_grace` too.
async fn watchdog<J: Job>(
    s: Scheduled<J>,
    generation: u64,
    timeout: Duration,
    hang_grace: Duration,
) {
    let same_run =
        |s: &Scheduled<J>| s.is_running() && s.generation.load(Ordering::Acquire) == generation;
    tokio::time::sleep(timeout).await;
    if !same_run(&s) {
        return;
    }
    s.stats.timeouts.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        script = s.job.name(),
        timeout_secs = timeout.as_secs_f64(),
        "run() exceeded its timeout: interrupting it"
    );
    let job = s.job.clone();
    // Interrupting needs the interpreter; never block an async worker on it.
    tokio::task::spawn_blocking(move || job.interrupt());
    tokio::time::sleep(hang_grace).await;
    if !same_run(&s) {
        return;
    }
    s.stats.hung.store(true, Ordering::Release);
    tracing::error!(
        script = s.job.name(),
        "run() did not stop after being interrupted (blocked outside Python?): \
         the script is hung and will not be scheduled again until the worker restarts"
    );
    let job = s.job.clone();
    tokio::task::spawn_blocking(move || job.hung());
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

    fn settings(shutdown_ms: u64) -> Settings {
        Settings {
            hang_grace: Duration::from_millis(200),
            backoff_cap: Duration::from_millis(400),
            shutdown_grace: Duration::from_millis(shutdown_ms),
        }
    }

    async fn run_for(jobs: Vec<Scheduled<Sleepy>>, dur: Duration) -> Vec<String> {
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(jobs, rx, settings(2000)));
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
    async fn failing_job_backs_off_exponentially_up_to_the_cap() {
        // interval 100 ms, cap 400 ms: runs at 0, 100, 300, 700 ms, then 1100.
        let s = sleepy(100, 1, true);
        run_for(vec![s.clone()], Duration::from_millis(1050)).await;
        assert_eq!(s.stats.runs.load(Ordering::SeqCst), 4);
        assert_eq!(s.stats.failures.load(Ordering::SeqCst), 4);
        assert!(s.stats.backed_off.load(Ordering::SeqCst) >= 5);
    }

    #[test]
    fn backoff_doubles_from_the_interval_and_stops_at_the_cap() {
        let i = Duration::from_secs(10);
        let cap = Duration::from_secs(300);
        assert_eq!(backoff_delay(i, 0, cap), Duration::ZERO);
        assert_eq!(backoff_delay(i, 1, cap), Duration::from_secs(10));
        assert_eq!(backoff_delay(i, 3, cap), Duration::from_secs(40));
        assert_eq!(backoff_delay(i, 10, cap), cap);
        assert_eq!(backoff_delay(i, 1000, cap), cap);
    }

    /// Sleeps in small steps until interrupted (like Python noticing an
    /// async exception), or ignores interrupts entirely (blocked in C).
    struct Stubborn {
        name: &'static str,
        interval: Duration,
        work: Duration,
        obeys: bool,
        interrupted: AtomicBool,
        runs: AtomicUsize,
        hung_called: AtomicBool,
    }

    impl Job for Stubborn {
        fn name(&self) -> &str {
            self.name
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        fn timeout(&self) -> Option<Duration> {
            Some(Duration::from_millis(100))
        }
        fn run(&self) -> Result<(), String> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            let end = std::time::Instant::now() + self.work;
            while std::time::Instant::now() < end {
                if self.obeys && self.interrupted.swap(false, Ordering::SeqCst) {
                    return Err("interrupted".into());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
        fn interrupt(&self) {
            self.interrupted.store(true, Ordering::SeqCst);
        }
        fn hung(&self) {
            self.hung_called.store(true, Ordering::SeqCst);
        }
    }

    fn stubborn(name: &'static str, work_ms: u64, obeys: bool) -> Scheduled<Stubborn> {
        Scheduled::new(Arc::new(Stubborn {
            name,
            interval: Duration::from_millis(1000),
            work: Duration::from_millis(work_ms),
            obeys,
            interrupted: AtomicBool::new(false),
            runs: AtomicUsize::new(0),
            hung_called: AtomicBool::new(false),
        }))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_past_its_timeout_is_interrupted_and_not_hung() {
        let s = stubborn("slow", 10_000, true);
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(vec![s.clone()], rx, settings(100)));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!s.is_running(), "interrupted run returned");
        assert_eq!(s.stats.timeouts.load(Ordering::SeqCst), 1);
        assert!(!s.stats.hung.load(Ordering::SeqCst));
        tx.send(true).unwrap();
        assert!(h.await.unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_ignoring_interrupts_is_declared_hung_and_others_keep_ticking() {
        let stuck = stubborn("stuck", 1_500, false);
        let (tx, rx) = watch::channel(false);
        let other = sleepy(100, 1, false);
        let stuck2 = stuck.clone();
        let other2 = other.clone();
        let h = tokio::spawn(async move {
            // Two job types: run each under its own scheduler call.
            let a = tokio::spawn(run(vec![stuck2], rx.clone(), settings(50)));
            let b = tokio::spawn(run(vec![other2], rx, settings(50)));
            (a.await.unwrap(), b.await.unwrap())
        });
        tokio::time::sleep(Duration::from_millis(550)).await;
        assert!(stuck.stats.hung.load(Ordering::SeqCst), "declared hung");
        assert!(stuck.job.hung_called.load(Ordering::SeqCst));
        assert_eq!(stuck.job.runs.load(Ordering::SeqCst), 1);
        let others = other.stats.runs.load(Ordering::SeqCst);
        assert!(
            (5..=6).contains(&others),
            "other job kept its ticks: {others}"
        );
        tx.send(true).unwrap();
        let (busy_stuck, busy_other) = h.await.unwrap();
        assert!(
            busy_stuck.is_empty(),
            "a hung job does not hold up shutdown"
        );
        assert!(busy_other.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_waits_for_running_runs_up_to_grace() {
        let s = sleepy(1000, 300, false);
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(run(vec![s.clone()], rx, settings(50)));
        tokio::time::sleep(Duration::from_millis(20)).await;
        tx.send(true).unwrap();
        let busy = h.await.unwrap();
        assert_eq!(busy, vec!["sleepy".to_string()]);
    }
}
