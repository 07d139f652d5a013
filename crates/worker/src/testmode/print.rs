//! Printing a test run: points grouped by category with notes on what
//! DataKit will rewrite (human), or one JSON object per point (for tools).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use pythond_core::lineproto::encode_point;
use pythond_core::point::{Category, FieldValue, Point};
use pythond_core::route::Route;
use pythond_core::sink::Recorded;

use pythond_python::FailureKind;

use super::{Format, RunFailure, RunRecord, TestOutcome};

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
        match (f.kind, &f.class) {
            (FailureKind::NameTaken | FailureKind::Attribute, _) => {
                writeln!(err, "error: {}", f.error)?
            }
            (_, None) => writeln!(
                err,
                "error: {}: module {} failed to load:\n{}",
                f.path.display(),
                f.module,
                f.error
            )?,
            (_, Some(c)) => writeln!(
                err,
                "error: {}: class {c} could not be instantiated:\n{}",
                f.path.display(),
                f.error
            )?,
        }
    }
    for n in &outcome.notes {
        writeln!(err, "note: {n}")?;
    }
    for r in &outcome.runs {
        let Some(e) = &r.error else { continue };
        let who = format!("script {} ({}.{})", r.script, r.module, r.class);
        match e {
            RunFailure::Raised(tb) => writeln!(err, "error: {who} raised in run():\n{tb}")?,
            RunFailure::TimedOut { timeout, traceback } => writeln!(
                err,
                "error: {who}: run() did not return within its timeout of {} s and was interrupted \
                 (run() is called every interval and must return; raise the timeout with the \
                 class attribute `timeout`):\n{traceback}",
                timeout.as_secs_f64()
            )?,
            RunFailure::Hung {
                timeout,
                hang_grace,
            } => writeln!(
                err,
                "error: {who}: run() did not return within its timeout of {} s, and {} s after \
                 being interrupted it still had not stopped: it is hung, blocked outside Python \
                 (in C code: a sleep, a socket read without timeout), where it cannot be \
                 interrupted; the daemon would stop scheduling it. Its points so far are shown; \
                 the command ends without waiting for it",
                timeout.as_secs_f64(),
                hang_grace.as_secs_f64()
            )?,
            RunFailure::NotRun { blocked_by } => writeln!(
                err,
                "error: {who}: not run: the hung run of {blocked_by} holds the interpreter"
            )?,
        }
    }
    if outcome.runs.is_empty() {
        writeln!(
            err,
            "error: nothing to run: no DataKitFramework subclass with a run() method was loaded"
        )?;
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
            let mut by_cat: BTreeMap<&str, Vec<(&RunRecord, &Route, &Point)>> = BTreeMap::new();
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
            let ran = outcome
                .runs
                .iter()
                .filter(|r| !matches!(r.error, Some(RunFailure::NotRun { .. })))
                .count();
            let not_run = outcome.runs.len() - ran;
            writeln!(
                out,
                "{ran} script{} ran, {total} point{}, {} failed to load, {} failed in run(){}",
                if ran == 1 { "" } else { "s" },
                if total == 1 { "" } else { "s" },
                outcome.load_failures.len(),
                outcome.runs.iter().filter(|r| r.error.is_some()).count() - not_run,
                if not_run > 0 {
                    format!(", {not_run} not run")
                } else {
                    String::new()
                }
            )?;
        }
    }
    Ok(())
}
