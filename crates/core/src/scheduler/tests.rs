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
    fn run(&self, _run: u64) -> Result<(), RunFailed> {
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

/// The timeout a job's class sets.
fn class_timeout(ms: u64) -> Option<RunTimeout> {
    Some(RunTimeout::new(
        Duration::from_millis(ms),
        TimeoutSource::Class,
    ))
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
    fn timeout(&self) -> Option<RunTimeout> {
        class_timeout(100)
    }
    fn run(&self, _run: u64) -> Result<(), RunFailed> {
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
    fn interrupt(&self, _run: u64) {
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

/// Runs as a script dictates: run `i` (from 1) takes `plan[i-1].0` and fails
/// if `plan[i-1].1`; past the plan, the last entry repeats. Records when each
/// run started, and which runs it was asked to interrupt.
struct Planned {
    interval: Duration,
    timeout: Option<Duration>,
    plan: Vec<(Duration, bool)>,
    /// How long an interrupt takes to get to the run (waiting for the GIL).
    interrupt_delay: Duration,
    t0: std::time::Instant,
    /// (run, started, ended) per run, in order.
    log: std::sync::Mutex<Vec<(u64, Duration, Option<Duration>)>>,
    /// (run named, the run in progress when the interrupt arrived).
    interrupts: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
    current: std::sync::Mutex<Option<u64>>,
}

impl Job for Planned {
    fn name(&self) -> &str {
        "planned"
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn timeout(&self) -> Option<RunTimeout> {
        self.timeout
            .map(|t| RunTimeout::new(t, TimeoutSource::Block))
    }
    fn run(&self, run: u64) -> Result<(), RunFailed> {
        let i = (run as usize).min(self.plan.len()) - 1;
        let (work, fail) = self.plan[i];
        *self.current.lock().unwrap() = Some(run);
        self.log
            .lock()
            .unwrap()
            .push((run, self.t0.elapsed(), None));
        std::thread::sleep(work);
        *self.current.lock().unwrap() = None;
        if let Some(e) = self.log.lock().unwrap().iter_mut().find(|e| e.0 == run) {
            e.2 = Some(self.t0.elapsed());
        }
        if fail {
            Err(RunFailed("planned failure".into()))
        } else {
            Ok(())
        }
    }
    fn interrupt(&self, run: u64) {
        std::thread::sleep(self.interrupt_delay);
        let now = *self.current.lock().unwrap();
        self.interrupts.lock().unwrap().push((run, now));
    }
}

fn planned(interval_ms: u64, plan: &[(u64, bool)]) -> Planned {
    Planned {
        interval: Duration::from_millis(interval_ms),
        timeout: None,
        plan: plan
            .iter()
            .map(|&(ms, fail)| (Duration::from_millis(ms), fail))
            .collect(),
        interrupt_delay: Duration::ZERO,
        t0: std::time::Instant::now(),
        log: Default::default(),
        interrupts: Default::default(),
        current: Default::default(),
    }
}

async fn run_planned(job: Planned, cap_ms: u64, dur: Duration) -> Scheduled<Planned> {
    let s = Scheduled::new(Arc::new(job));
    let (tx, rx) = watch::channel(false);
    let settings = Settings {
        hang_grace: Duration::from_secs(5),
        backoff_cap: Duration::from_millis(cap_ms),
        shutdown_grace: Duration::from_secs(5),
    };
    let h = tokio::spawn(run(vec![s.clone()], rx, settings));
    tokio::time::sleep(dur).await;
    tx.send(true).unwrap();
    h.await.unwrap();
    s
}

/// Start offsets of the runs, in ms.
fn starts(s: &Scheduled<Planned>) -> Vec<u128> {
    s.job
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.1.as_millis())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_runs_longer_than_the_interval_back_off_too() {
    // Every run takes 1.5 intervals and fails. Each failure counts, so the
    // starts are spaced 2, 2, 4, 8 intervals apart (the first two spaced by
    // the runs' own length), not 2 intervals forever.
    let s = run_planned(
        planned(100, &[(150, true)]),
        10_000,
        Duration::from_millis(2_100),
    )
    .await;
    let st = starts(&s);
    let gaps: Vec<u128> = st.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(st.len() >= 4, "runs started at {st:?}");
    // Backoff is a lower bound on the gaps; an interval of slack for a late
    // start of the run a gap is measured from.
    assert!(gaps[2] >= 300, "third failure waits 4 intervals: {gaps:?}");
    if let Some(g) = gaps.get(3) {
        assert!(*g >= 700, "fourth failure waits 8 intervals: {gaps:?}");
    }
    assert!(
        s.stats.backed_off.load(Ordering::SeqCst) >= 2,
        "ticks were held back"
    );
    assert_eq!(
        s.stats.failures.load(Ordering::SeqCst),
        s.stats.runs.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_after_slow_failures_restores_the_normal_ticks() {
    // Three slow failures, then fast successes: after the first success the
    // runs are back on every tick.
    let s = run_planned(
        planned(100, &[(150, true), (150, true), (150, true), (1, false)]),
        10_000,
        Duration::from_millis(1_700),
    )
    .await;
    let st = starts(&s);
    // Slow failures at about 0, 200, 400; the backoff of the third (4
    // intervals) puts the first success at about 800; then every tick.
    assert!(st.len() >= 7, "runs started at {st:?}");
    let gaps: Vec<u128> = st.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[2] >= 300,
        "the third slow failure backed off: {gaps:?}"
    );
    // Backing off again would wait 8 intervals; a late tick, 2 at most.
    assert!(
        gaps[3..].iter().all(|g| *g <= 350),
        "normal ticks after the success: {gaps:?}"
    );
    assert_eq!(s.stats.consecutive_failures.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interrupt_names_the_run_that_timed_out_even_when_it_arrives_late() {
    // Run 1 outlives its timeout (100 ms) and returns on its own at 180 ms;
    // the interrupt takes 150 ms to get there (the GIL), by which time run 2
    // (fast, every 200 ms) may be going. The interrupt must name run 1.
    let mut job = planned(200, &[(180, false), (60, false)]);
    job.timeout = Some(Duration::from_millis(100));
    job.interrupt_delay = Duration::from_millis(150);
    let s = run_planned(job, 10_000, Duration::from_millis(700)).await;
    let interrupts = s.job.interrupts.lock().unwrap().clone();
    let log = s.job.log.lock().unwrap().clone();
    assert!(!interrupts.is_empty(), "run 1 was interrupted: {log:?}");
    assert_eq!(
        interrupts[0].0, 1,
        "the interrupt names the run that timed out, whatever runs when it arrives: \
         {interrupts:?} {log:?}"
    );
    assert!(s.stats.timeouts.load(Ordering::SeqCst) >= 1);
}

#[test]
fn the_timeout_message_names_the_class_attribute_when_the_class_set_it() {
    let t = RunTimeout::resolve(
        Some(Duration::from_secs(2)),
        Some(Duration::from_secs(60)),
        Duration::from_millis(500),
    );
    assert_eq!(
        t,
        RunTimeout::new(Duration::from_secs(2), TimeoutSource::Class)
    );
    assert_eq!(
        timeout_message("loops", &t, Duration::from_millis(500)),
        "run() of loops exceeded its timeout (2s, the class attribute `timeout`) and is \
         interrupted: run() is called every interval (0.5s) and must return each time, not \
         loop; if one run needs longer, raise the class attribute `timeout = <seconds>` (the \
         input block's `timeout` does not apply to a class that sets its own)"
    );
}

#[test]
fn the_timeout_message_names_the_blocks_timeout_when_it_applied() {
    let t = RunTimeout::resolve(None, Some(Duration::from_secs(2)), Duration::from_secs(10));
    assert_eq!(
        t,
        RunTimeout::new(Duration::from_secs(2), TimeoutSource::Block)
    );
    assert_eq!(
        timeout_message("loops", &t, Duration::from_secs(10)),
        "run() of loops exceeded its timeout (2s, the input block's `timeout`) and is \
         interrupted: run() is called every interval (10s) and must return each time, not \
         loop; if one run needs longer, raise the input block's `timeout = \"60s\"`, or set \
         the class attribute `timeout = <seconds>` for this script alone"
    );
}

#[test]
fn the_timeout_message_names_the_default_when_neither_set_one() {
    let t = RunTimeout::resolve(None, None, Duration::from_secs(10));
    assert_eq!(
        t,
        RunTimeout::new(Duration::from_secs(30), TimeoutSource::Default)
    );
    assert_eq!(
        RunTimeout::resolve(None, None, Duration::from_secs(20)).limit,
        Duration::from_secs(40),
        "twice the interval past 15 s"
    );
    assert_eq!(
        timeout_message("loops", &t, Duration::from_secs(10)),
        "run() of loops exceeded its timeout (30s, the default: twice the interval, at least \
         30s) and is interrupted: run() is called every interval (10s) and must return each \
         time, not loop; if one run needs longer, set the class attribute `timeout = \
         <seconds>` or the input block's `timeout = \"60s\"`"
    );
}

/// Obeys its interrupt, but slowly: from the interrupt to `run()` returning
/// takes `unwind` (the traceback of the `RunTimeout` being formatted, the
/// GIL being waited for).
struct SlowToStop {
    unwind: Duration,
    interrupted: AtomicBool,
}

impl Job for SlowToStop {
    fn name(&self) -> &str {
        "slow_to_stop"
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(10)
    }
    fn timeout(&self) -> Option<RunTimeout> {
        class_timeout(100)
    }
    fn run(&self, _run: u64) -> Result<(), RunFailed> {
        while !self.interrupted.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(self.unwind);
        Err(RunFailed("RunTimeout".into()))
    }
    fn interrupt(&self, _run: u64) {
        self.interrupted.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_timed_out_from_the_moment_its_timeout_fires() {
    use crate::status::ScriptState;
    let s = Scheduled::new(Arc::new(SlowToStop {
        unwind: Duration::from_millis(400),
        interrupted: AtomicBool::new(false),
    }));
    let (tx, rx) = watch::channel(false);
    let settings = Settings {
        hang_grace: Duration::from_secs(5),
        ..settings(1000)
    };
    let h = tokio::spawn(run(vec![s.clone()], rx, settings));
    // Every snapshot that counts the timeout says the script timed out:
    // while the interrupted run unwinds, when it has ended, and after.
    let end = std::time::Instant::now() + Duration::from_millis(900);
    let mut seen_while_running = false;
    while std::time::Instant::now() < end {
        let snap = s.stats.snapshot();
        if snap.timeouts > 0 {
            assert_eq!(snap.state(), ScriptState::TimedOut, "{snap:?}");
            seen_while_running |= s.is_running();
        } else {
            assert_eq!(snap.state(), ScriptState::Ok, "{snap:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        seen_while_running,
        "the window before the run ended was looked at"
    );
    assert_eq!(s.stats.snapshot().timeouts, 1);
    tx.send(true).unwrap();
    h.await.unwrap();
}

/// Jobs of one pool that misbehave in the ways a runner must survive.
enum Kind {
    /// Returns at once.
    Quick,
    /// Never returns, and its interrupt never returns either (as when a
    /// run blocked in C holds the GIL the interrupt needs).
    Wedged,
    /// Panics in `run`.
    Panics,
}

struct Mixed {
    name: &'static str,
    kind: Kind,
    runs: AtomicUsize,
}

impl Job for Mixed {
    fn name(&self) -> &str {
        self.name
    }
    fn interval(&self) -> Duration {
        Duration::from_millis(100)
    }
    fn timeout(&self) -> Option<RunTimeout> {
        class_timeout(100)
    }
    fn run(&self, _run: u64) -> Result<(), RunFailed> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        match self.kind {
            Kind::Quick => Ok(()),
            Kind::Wedged => loop {
                std::thread::park();
            },
            Kind::Panics => panic!("a bug in the job"),
        }
    }
    fn interrupt(&self, _run: u64) {
        if let Kind::Wedged = self.kind {
            loop {
                std::thread::park();
            }
        }
    }
}

fn mixed(name: &'static str, kind: Kind) -> Scheduled<Mixed> {
    Scheduled::new(Arc::new(Mixed {
        name,
        kind,
        runs: AtomicUsize::new(0),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wedged_run_and_its_wedged_interrupt_neither_stop_the_others_nor_its_hung_verdict() {
    let wedged = mixed("wedged", Kind::Wedged);
    let panics = mixed("panics", Kind::Panics);
    let quick = mixed("quick", Kind::Quick);
    let (tx, rx) = watch::channel(false);
    let jobs = vec![wedged.clone(), panics.clone(), quick.clone()];
    let h = tokio::spawn(run(jobs, rx, settings(50)));
    // The wedged run times out at 100 ms, its interrupt never returns, it is
    // hung 200 ms later; meanwhile and after, the others keep their ticks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(wedged.stats.hung.load(Ordering::SeqCst), "declared hung");
    assert_eq!(wedged.stats.timeouts.load(Ordering::SeqCst), 1);
    let ran = quick.stats.runs.load(Ordering::SeqCst);
    // 15 ticks in 1.5 s; most of them, on a loaded machine.
    assert!(ran >= 8, "the quick job ran {ran} times");
    // A panicking run is a failure (and backs off), not a lost runner.
    let failed = panics.stats.failures.load(Ordering::SeqCst);
    assert!(failed >= 2, "panicking job failed {failed} times");
    assert_eq!(panics.stats.runs.load(Ordering::SeqCst), failed);
    assert!(!panics.is_running());
    tx.send(true).unwrap();
    assert!(
        h.await.unwrap().is_empty(),
        "a hung job does not hold up shutdown"
    );
}
