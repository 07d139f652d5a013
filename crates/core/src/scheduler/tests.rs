use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

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
    fn run(&self) -> Result<(), RunFailed> {
        if self.active.fetch_add(1, Ordering::SeqCst) > 0 {
            self.overlap.store(true, Ordering::SeqCst);
        }
        std::thread::sleep(self.work);
        self.active.fetch_sub(1, Ordering::SeqCst);
        if self.fail {
            Err(RunFailed("boom".into()))
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
    fn run(&self) -> Result<(), RunFailed> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let end = std::time::Instant::now() + self.work;
        while std::time::Instant::now() < end {
            if self.obeys && self.interrupted.swap(false, Ordering::SeqCst) {
                return Err(RunFailed("interrupted".into()));
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
