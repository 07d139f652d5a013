//! The run-timeout interrupt against a real embedded CPython: it reaches the
//! run it names, and nothing after that run's `run()` returned (not the
//! traceback formatting of that run, not the next run, not another script).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use pythond_core::sink::Collector;
use pythond_python::{self as python, Context, InterpreterSetup, Script};

fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        python::init(
            &InterpreterSetup::default(),
            Context {
                sink: Arc::new(Collector::new()),
                input_tags: Vec::new(),
                numbers_as_float: false,
            },
        )
        .expect("the embedded interpreter starts");
    });
}

/// Load the one plugin class of `src`, as a module of its own.
fn script(dir: &tempfile::TempDir, module: &str, src: &str) -> Script {
    init();
    let path: PathBuf = dir.path().join(format!("{module}.py"));
    std::fs::write(&path, src).unwrap();
    let mut loaded = python::load([(module, path.as_path())]);
    assert!(loaded.failures.is_empty(), "{:?}", loaded.failures);
    assert_eq!(loaded.scripts.len(), 1);
    loaded.scripts.remove(0)
}

/// Spins until a `stop` file appears beside it (10 s at most), after
/// creating a `started` file: the test knows when a run is inside `run()`.
const SPIN: &str = include_str!("data/interrupt/spin.py");

/// Run `run` of `s` on a thread of its own, once it is inside `run()`.
fn start_spin(
    s: &Arc<Script>,
    dir: &tempfile::TempDir,
    run: u64,
) -> std::thread::JoinHandle<Result<(), python::RunError>> {
    let _ = std::fs::remove_file(dir.path().join("started"));
    let _ = std::fs::remove_file(dir.path().join("stop"));
    let s2 = s.clone();
    let t = std::thread::spawn(move || python::run(&s2, run));
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while !dir.path().join("started").exists() {
        assert!(std::time::Instant::now() < end, "run {run} started");
        std::thread::sleep(Duration::from_millis(5));
    }
    t
}

#[test]
fn an_interrupt_naming_an_ended_run_leaves_the_next_run_alone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(script(&dir, "spin_named", SPIN));
    std::fs::write(dir.path().join("stop"), "").unwrap();
    python::run(&s, 1).expect("run 1 is left alone");
    assert!(
        !python::interrupt(&s, 1),
        "run 1 has returned: nothing to interrupt"
    );

    // Run 2 is going; an interrupt meant for run 1 arrives late.
    let t = start_spin(&s, &dir, 2);
    assert!(!python::interrupt(&s, 1), "run 1 is not run 2");
    std::thread::sleep(Duration::from_millis(50));
    std::fs::write(dir.path().join("stop"), "").unwrap();
    t.join().unwrap().expect("run 2 was not interrupted");

    // An interrupt naming the run in progress stops it.
    let t = start_spin(&s, &dir, 3);
    assert!(python::interrupt(&s, 3), "run 3 is interrupted");
    let e = t.join().unwrap().expect_err("run 3 stopped");
    assert!(e.timed_out, "{e:?}");
    assert!(
        e.traceback.contains("RunTimeout") && e.traceback.contains("spin_named.py\", line"),
        "the traceback shows where the run was: {}",
        e.traceback
    );
}

/// `run()` raises `ValueError` from 150 frames down, so formatting its
/// traceback takes a while; the switch interval is made tiny so the GIL
/// changes hands inside it.
const DEEP: &str = include_str!("data/interrupt/deep.py");

const QUICK: &str = include_str!("data/interrupt/quick.py");

#[test]
fn an_interrupt_never_lands_after_the_run_it_names_returned() {
    let dir = tempfile::tempdir().unwrap();
    let deep = Arc::new(script(&dir, "deep_race", DEEP));
    let quick = Arc::new(script(&dir, "quick_race", QUICK));
    // The run of `deep` in progress (0: none). The interrupter names odd runs
    // only, as fast as it can: its interrupts race every end of those runs.
    let current = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let interrupter = {
        let (deep, current, done, delivered, refused) = (
            deep.clone(),
            current.clone(),
            done.clone(),
            delivered.clone(),
            refused.clone(),
        );
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                let run = current.load(Ordering::Acquire);
                if run % 2 == 1 {
                    if python::interrupt(&deep, run) {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::yield_now();
            }
        })
    };
    let mut timed_out = 0;
    // At least 400 runs, and until 20 interrupts got in (a loaded machine
    // hands the GIL over less often), for 60 s at most.
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let mut runs = 0;
    while runs < 400 || (delivered.load(Ordering::Relaxed) < 20 && std::time::Instant::now() < end)
    {
        runs += 1;
        let run = runs;
        current.store(run, Ordering::Release);
        let e = python::run(&deep, run).expect_err("deep() always raises");
        current.store(0, Ordering::Release);
        if e.timed_out {
            assert!(run % 2 == 1, "run {run} was never named, yet: {e:?}");
            assert!(e.traceback.contains("RunTimeout"), "{}", e.traceback);
            timed_out += 1;
        } else {
            assert!(
                e.traceback.starts_with("Traceback (most recent call last)")
                    && e.traceback.ends_with("ValueError: boom")
                    && !e.traceback.contains("RunTimeout"),
                "run {run}: the traceback of a run that raised on its own is whole: {}",
                e.traceback
            );
        }
        // Whatever this thread runs next is not hit by an interrupt of the run
        // that ended, nor is the next script.
        if let Err(e) = python::run(&quick, run) {
            panic!("after run {run}, another script was hit: {e:?}");
        }
    }
    done.store(true, Ordering::Release);
    interrupter.join().unwrap();
    eprintln!(
        "{runs} runs, {} interrupts set, {} refused (no such run inside run()), \
         {timed_out} runs timed out",
        delivered.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    );
    assert!(
        delivered.load(Ordering::Relaxed) > 0,
        "the interrupter did reach runs in progress (the race was exercised)"
    );
}

/// A value whose `__index__` loops: the timeout fires inside the converter,
/// which must pass `RunTimeout` on rather than take it for "not a number".
const LOOPS_IN_INDEX: &str = include_str!("data/interrupt/loops_in_index.py");

#[test]
fn a_timeout_inside_script_code_the_converter_runs_is_not_swallowed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(script(&dir, "loops_in_index", LOOPS_IN_INDEX));
    let s2 = s.clone();
    let t = std::thread::spawn(move || python::run(&s2, 1));
    std::thread::sleep(Duration::from_millis(200));
    assert!(python::interrupt(&s, 1));
    let e = t
        .join()
        .unwrap()
        .expect_err("the run stopped with RunTimeout");
    assert!(e.timed_out, "{e:?}");
    assert!(e.traceback.contains("__index__"), "{}", e.traceback);
}
