//! `pythond test`: load scripts, run each instance once, print every point it
//! reported, send nothing.
//!
//! The human format groups points by category and says what DataKit will drop
//! or rewrite; the JSON format is one object per point per line for tools.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use serde_json::json;

use crate::lineproto::encode_point;
use crate::point::{Category, FieldValue, Point};
use crate::python;
use crate::sink::{Collector, Recorded};

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
    python::init(setup)?;
    python::set_context(python::Context {
        sink: collector.clone(),
        input_tags: Vec::new(),
        numbers_as_float,
    });
    let loaded = python::load(modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    let mut runs = Vec::new();
    for script in &loaded.scripts {
        let error = python::run(script).err();
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

/// What DataKit will do to this point that the script may not expect.
pub fn datakit_notes(category: &Category, p: &Point) -> Vec<String> {
    let mut notes = Vec::new();
    match category {
        Category::Metric => {
            for (k, v) in &p.fields {
                if matches!(v, FieldValue::Str(_) | FieldValue::Bytes(_)) {
                    notes.push(format!(
                        "string field {k:?} will be dropped: DataKit keeps only numbers and bools in metrics"
                    ));
                }
            }
        }
        _ => {
            let dotted: Vec<&str> = p
                .tags
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(p.fields.iter().map(|(k, _)| k.as_str()))
                .filter(|k| k.contains('.'))
                .collect();
            for k in dotted {
                notes.push(format!(
                    "key {k:?} will be renamed {:?}: DataKit replaces '.' in keys outside metrics",
                    k.replace('.', "_")
                ));
            }
        }
    }
    let has =
        |key: &str| p.tags.iter().any(|(k, _)| k == key) || p.fields.iter().any(|(k, _)| k == key);
    if *category == Category::Logging && !has("status") {
        notes.push("no \"status\": DataKit will set status=unknown".into());
    }
    if matches!(category, Category::Object | Category::CustomObject) && !has("name") {
        notes.push("no \"name\": DataKit will set name=default".into());
    }
    notes
}

fn line_of(p: &Point) -> String {
    let mut buf = Vec::with_capacity(128);
    encode_point(p, &mut buf);
    buf.pop();
    String::from_utf8_lossy(&buf).into_owned()
}

/// Print the outcome: points to `out`, errors and tracebacks to `err`.
pub fn print(
    outcome: &TestOutcome,
    format: Format,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    for f in &outcome.load_failures {
        match &f.class {
            None => writeln!(
                err,
                "error: {}: module {} failed to load:\n{}",
                f.path.display(),
                f.module,
                f.error
            )?,
            Some(c) => writeln!(
                err,
                "error: {}: class {c} could not be instantiated:\n{}",
                f.path.display(),
                f.error
            )?,
        }
    }
    for p in &outcome.problems {
        writeln!(err, "error: {p}")?;
    }
    for r in &outcome.runs {
        if let Some(e) = &r.error {
            writeln!(
                err,
                "error: script {} ({}.{}) raised in run():\n{e}",
                r.script, r.module, r.class
            )?;
        }
    }
    match format {
        Format::Json => {
            for r in &outcome.runs {
                for rec in &r.recorded {
                    match rec {
                        Recorded::Points(route, points) => {
                            for p in points {
                                let obj = json!({
                                    "script": r.script,
                                    "category": route.category.as_str(),
                                    "input": route.query.input,
                                    "measurement": p.measurement,
                                    "line": line_of(p),
                                    "notes": datakit_notes(&route.category, p),
                                });
                                writeln!(out, "{obj}")?;
                            }
                        }
                        Recorded::LastError { input, message } => {
                            let obj = json!({"script": r.script, "lasterror": {"input": input, "err_content": message}});
                            writeln!(out, "{obj}")?;
                        }
                    }
                }
            }
        }
        Format::Human => {
            let mut by_cat: BTreeMap<&str, Vec<(&RunRecord, &crate::writer::Route, &Point)>> =
                BTreeMap::new();
            for r in &outcome.runs {
                for rec in &r.recorded {
                    if let Recorded::Points(route, points) = rec {
                        for p in points {
                            by_cat
                                .entry(route.category.as_str())
                                .or_default()
                                .push((r, route, p));
                        }
                    }
                }
            }
            for (cat, items) in &by_cat {
                writeln!(
                    out,
                    "== {cat} ({} point{}) ==",
                    items.len(),
                    if items.len() == 1 { "" } else { "s" }
                )?;
                for (r, route, p) in items {
                    let input = route
                        .query
                        .input
                        .as_deref()
                        .map(|i| format!(" input={i}"))
                        .unwrap_or_default();
                    writeln!(out, "[{}{input}] {}", r.script, line_of(p))?;
                    for n in datakit_notes(&route.category, p) {
                        writeln!(out, "    note: {n}")?;
                    }
                }
            }
            for r in &outcome.runs {
                for rec in &r.recorded {
                    if let Recorded::LastError { input, message } = rec {
                        writeln!(out, "[{}] lasterror input={input}: {message}", r.script)?;
                    }
                }
            }
            let total: usize = by_cat.values().map(|v| v.len()).sum();
            writeln!(
                out,
                "{} script{} ran, {total} point{}, {} failed to load, {} raised",
                outcome.runs.len(),
                if outcome.runs.len() == 1 { "" } else { "s" },
                if total == 1 { "" } else { "s" },
                outcome.load_failures.len(),
                outcome.runs.iter().filter(|r| r.error.is_some()).count()
            )?;
        }
    }
    Ok(())
}

/// Quick resolution used until discovery is wired in: a file is a module by
/// its stem, a directory contributes its `.py` files.
pub fn simple_modules(
    paths: &[&Path],
) -> (Vec<(String, std::path::PathBuf)>, Vec<std::path::PathBuf>) {
    let mut mods = Vec::new();
    let mut sys_path = Vec::new();
    for p in paths {
        if p.is_dir() {
            sys_path.push(p.to_path_buf());
            if let Ok(rd) = std::fs::read_dir(p) {
                let mut files: Vec<_> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| f.extension().is_some_and(|e| e == "py"))
                    .collect();
                files.sort();
                for f in files {
                    mods.push((f.file_stem().unwrap().to_string_lossy().into_owned(), f));
                }
            }
        } else {
            sys_path.push(p.parent().unwrap_or(Path::new(".")).to_path_buf());
            mods.push((
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                p.to_path_buf(),
            ));
        }
    }
    (mods, sys_path)
}
