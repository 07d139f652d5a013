//! `pythond test`: load scripts, run each instance once (or `--times N`,
//! with a pause between rounds so that rates and deltas show), print every
//! point it reported and a status block per script, send nothing.
//!
//! Each run has the daemon's timeout (the class's `timeout`, else the
//! block's with `--config --input`, else the default: [`RunTimeout`]) and runs on a thread of its own, so that
//! the command always ends: a run past its timeout gets `RunTimeout` raised
//! inside it and is reported with the traceback at the interruption point; a
//! run that does not stop within the hang grace after that (blocked in C, a
//! `sleep` or a socket read) is reported as hung and left behind, and the
//! other scripts still run. The process then exits without waiting for it
//! (the interpreter is never finalized, so nothing waits for that thread).
//!
//! The human format groups points by category and says what DataKit will drop
//! or rewrite; the JSON format is one object per point per line for tools.

mod print;

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use pythond_core::sink::{Collector, Recorded};
use pythond_python as python;

use pythond_core::scheduler::RunTimeout;

pub use print::{datakit_notes, print};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// How long a run may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The block's timeout, for scripts whose class sets none (the default
    /// otherwise).
    pub timeout: Option<Duration>,
    /// How long an interrupted run may take to stop before it is hung.
    pub hang_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: None,
            hang_grace: pythond_core::scheduler::Settings::default().hang_grace,
        }
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunFailure {
    /// `run()` raised: the traceback.
    Raised(String),
    /// `run()` outlived its timeout and was interrupted: the traceback at the
    /// interruption point (or what it raised instead).
    TimedOut {
        timeout: RunTimeout,
        traceback: String,
    },
    /// `run()` outlived its timeout and did not stop within the hang grace
    /// after being interrupted: it is blocked outside Python.
    Hung {
        timeout: RunTimeout,
        hang_grace: Duration,
    },
    /// Not run: the hung run of that script holds the interpreter.
    NotRun { blocked_by: String },
}

/// What one script's run produced.
pub struct RunRecord {
    pub script: String,
    pub module: String,
    pub class: String,
    /// Which round (0-based) of `--times`.
    pub round: u32,
    pub took: Duration,
    pub error: Option<RunFailure>,
    pub recorded: Vec<Recorded>,
}

/// How a test runs its scripts.
pub struct Plan {
    /// The input's tags (`--config --input`).
    pub input_tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
    pub limits: Limits,
    /// Rounds: every script runs this many times.
    pub times: u32,
    /// The pause between rounds.
    pub pause: Duration,
}

/// Outcome of a test run.
pub struct TestOutcome {
    pub runs: Vec<RunRecord>,
    pub load_failures: Vec<python::LoadFailure>,
    /// Worth knowing, no failure: helper and base-class modules with nothing
    /// to run, files left out on purpose.
    pub notes: Vec<String>,
}

impl TestOutcome {
    /// Load errors, runs that raised or timed out, or nothing runnable.
    pub fn failed(&self) -> bool {
        !self.load_failures.is_empty()
            || self.runs.is_empty()
            || self.runs.iter().any(|r| r.error.is_some())
    }
}

/// Start the interpreter (`init`, given the context scripts report into),
/// import `modules`, run every script `plan.times` times, collecting what
/// each reported.
pub fn run<E>(
    init: impl FnOnce(python::Context) -> Result<(), E>,
    modules: &[(String, std::path::PathBuf)],
    plan: &Plan,
) -> Result<TestOutcome, E> {
    let collector = Arc::new(Collector::new());
    init(python::Context {
        sink: collector.clone(),
        input_tags: plan.input_tags.clone(),
        numbers_as_float: plan.numbers_as_float,
    })?;
    let limits = plan.limits;
    let loaded = python::load(modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    let scripts: Vec<Arc<python::Script>> = loaded.scripts.into_iter().map(Arc::new).collect();
    let mut runs = Vec::new();
    let mut wedged: Option<String> = None;
    let mut hung: Vec<String> = Vec::new();
    for round in 0..plan.times.max(1) {
        if round > 0 {
            std::thread::sleep(plan.pause);
        }
        for script in &scripts {
            let began = std::time::Instant::now();
            let error = match &wedged {
                Some(blocker) => Some(RunFailure::NotRun {
                    blocked_by: blocker.clone(),
                }),
                // A hung run is never run again (as in the daemon).
                None if hung.contains(&script.name.to_string()) => continue,
                None => {
                    let timeout =
                        RunTimeout::resolve(script.timeout, limits.timeout, script.interval);
                    run_bounded(script, round as u64 + 1, timeout, limits.hang_grace)
                }
            };
            let is_hung = matches!(error, Some(RunFailure::Hung { .. }));
            runs.push(RunRecord {
                script: script.name.to_string(),
                module: script.module.clone(),
                class: script.class.clone(),
                round,
                took: began.elapsed(),
                error,
                recorded: collector.take(),
            });
            if is_hung {
                hung.push(script.name.to_string());
                // A run blocked in C usually lets go of the interpreter (a
                // sleep, a read); one that holds it would block every later run.
                if !interpreter_free_within(limits.hang_grace) {
                    wedged = Some(script.name.to_string());
                }
            }
        }
    }
    let mut notes = loaded.notes;
    for (m, p) in &loaded.empty_modules {
        notes.push(format!(
            "{}: module {m} defines no DataKitFramework subclass with a run() method \
             (a helper or base-class module): nothing to run in it",
            p.display()
        ));
    }
    Ok(TestOutcome {
        runs,
        load_failures: loaded.failures,
        notes,
    })
}

/// Run `script` once on a thread of its own, interrupting it after
/// `timeout` and giving up on it `hang_grace` later.
fn run_bounded(
    script: &Arc<python::Script>,
    run_id: u64,
    timeout: RunTimeout,
    hang_grace: Duration,
) -> Option<RunFailure> {
    let (tx, rx) = mpsc::channel();
    let s = script.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("run {}", script.name))
        .spawn(move || {
            let _ = tx.send(python::run(&s, run_id));
        });
    if let Err(e) = spawned {
        return Some(RunFailure::Raised(format!(
            "cannot start a thread for the run: {e}"
        )));
    }
    match rx.recv_timeout(timeout.limit) {
        Ok(r) => return r.err().map(|e| RunFailure::Raised(e.traceback)),
        Err(RecvTimeoutError::Disconnected) => {
            return Some(RunFailure::Raised(
                "the run's thread ended without a result".into(),
            ))
        }
        Err(RecvTimeoutError::Timeout) => {}
    }
    // Interrupting needs the interpreter, which a run blocked in C may hold:
    // never wait for it here.
    let s = script.clone();
    let _ = std::thread::Builder::new()
        .name(format!("interrupt {}", script.name))
        .spawn(move || python::interrupt(&s, run_id));
    match rx.recv_timeout(hang_grace) {
        Ok(r) => Some(RunFailure::TimedOut {
            timeout,
            traceback: match r {
                Err(e) => e.traceback,
                Ok(()) => {
                    "run() returned after its timeout, before the interrupt reached it".into()
                }
            },
        }),
        Err(_) => Some(RunFailure::Hung {
            timeout,
            hang_grace,
        }),
    }
}

/// Whether another thread can enter the interpreter within `limit`.
fn interpreter_free_within(limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("interpreter probe".into())
        .spawn(move || {
            python::wait_for_interpreter();
            let _ = tx.send(());
        });
    spawned.is_ok() && rx.recv_timeout(limit).is_ok()
}
