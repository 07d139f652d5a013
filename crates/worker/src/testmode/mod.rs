//! `pythond test`: load scripts, run each instance once, print every point it
//! reported, send nothing.
//!
//! Each run has the daemon's timeout (the class's `timeout`, else the
//! default of [`default_timeout`]) and runs on a thread of its own, so that
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

use crate::job::default_timeout;

pub use print::{datakit_notes, print};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// How long a run may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A timeout for scripts whose class sets none (the default otherwise).
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
        timeout: Duration,
        traceback: String,
    },
    /// `run()` outlived its timeout and did not stop within the hang grace
    /// after being interrupted: it is blocked outside Python.
    Hung {
        timeout: Duration,
        hang_grace: Duration,
    },
    /// Not run: the hung run of that script holds the interpreter.
    NotRun { blocked_by: String },
}

/// What one script's single run produced.
pub struct RunRecord {
    pub script: String,
    pub module: String,
    pub class: String,
    pub error: Option<RunFailure>,
    pub recorded: Vec<Recorded>,
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

/// Run every script of `modules` once, collecting what each reported.
pub fn run_once(
    modules: &[(String, std::path::PathBuf)],
    setup: &python::InterpreterSetup,
    numbers_as_float: bool,
    limits: Limits,
) -> Result<TestOutcome, python::PythonError> {
    let collector = Arc::new(Collector::new());
    python::init(
        setup,
        python::Context {
            sink: collector.clone(),
            input_tags: Vec::new(),
            numbers_as_float,
        },
    )?;
    let loaded = python::load(modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    let mut runs = Vec::new();
    let mut wedged: Option<String> = None;
    for script in loaded.scripts.into_iter().map(Arc::new) {
        let error = match &wedged {
            Some(blocker) => Some(RunFailure::NotRun {
                blocked_by: blocker.clone(),
            }),
            None => {
                let timeout = script
                    .timeout
                    .or(limits.timeout)
                    .unwrap_or_else(|| default_timeout(script.interval));
                run_bounded(&script, timeout, limits.hang_grace)
            }
        };
        let hung = matches!(error, Some(RunFailure::Hung { .. }));
        runs.push(RunRecord {
            script: script.name.to_string(),
            module: script.module.clone(),
            class: script.class.clone(),
            error,
            recorded: collector.take(),
        });
        // A run blocked in C usually lets go of the interpreter (a sleep, a
        // read); one that holds it would block every later run.
        if hung && !interpreter_free_within(limits.hang_grace) {
            wedged = Some(script.name.to_string());
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
    timeout: Duration,
    hang_grace: Duration,
) -> Option<RunFailure> {
    let (tx, rx) = mpsc::channel();
    let s = script.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("run {}", script.name))
        .spawn(move || {
            let _ = tx.send(python::run(&s, 1));
        });
    if let Err(e) = spawned {
        return Some(RunFailure::Raised(format!(
            "cannot start a thread for the run: {e}"
        )));
    }
    match rx.recv_timeout(timeout) {
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
        .spawn(move || python::interrupt(&s, 1));
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
