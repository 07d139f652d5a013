//! `pythond test`: load scripts, run each instance once, print every point it
//! reported, send nothing.
//!
//! The human format groups points by category and says what DataKit will drop
//! or rewrite; the JSON format is one object per point per line for tools.

mod print;

use std::sync::Arc;

use pythond_core::sink::{Collector, Recorded};
use pythond_python as python;

pub use print::{datakit_notes, print};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// What one script's single run produced.
pub struct RunRecord {
    pub script: String,
    pub module: String,
    pub class: String,
    pub error: Option<String>,
    pub recorded: Vec<Recorded>,
}

/// Outcome of a test run.
pub struct TestOutcome {
    pub runs: Vec<RunRecord>,
    pub load_failures: Vec<python::LoadFailure>,
    pub problems: Vec<String>,
}

impl TestOutcome {
    pub fn failed(&self) -> bool {
        !self.load_failures.is_empty()
            || !self.problems.is_empty()
            || self.runs.iter().any(|r| r.error.is_some())
    }
}

/// Run every script of `modules` once, collecting what each reported.
pub fn run_once(
    modules: &[(String, std::path::PathBuf)],
    setup: &python::InterpreterSetup,
    numbers_as_float: bool,
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
    for script in &loaded.scripts {
        let error = python::run(script, 1).err().map(|e| e.traceback);
        runs.push(RunRecord {
            script: script.name.to_string(),
            module: script.module.clone(),
            class: script.class.clone(),
            error,
            recorded: collector.take(),
        });
    }
    let mut problems = Vec::new();
    for (m, p) in &loaded.empty_modules {
        problems.push(format!(
            "{}: module {m} defines no DataKitFramework subclass with a run() method",
            p.display()
        ));
    }
    Ok(TestOutcome {
        runs,
        load_failures: loaded.failures,
        problems,
    })
}
