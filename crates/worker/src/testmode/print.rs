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
                "error: {who}: run() did not return within its timeout of {} s ({}) and was \
                 interrupted (run() is called every interval and must return; if one run needs \
                 longer, {}):\n{traceback}",
                timeout.limit.as_secs_f64(),
                timeout.origin(),
                timeout.advice()
            )?,
            RunFailure::Hung {
                timeout,
                hang_grace,
            } => writeln!(
                err,
                "error: {who}: run() did not return within its timeout of {} s ({}), and {} s after \
                 being interrupted it still had not stopped: it is hung, blocked outside Python \
                 (in C code: a sleep, a socket read without timeout), where it cannot be \
                 interrupted; the daemon would stop scheduling it. Its points so far are shown; \
                 the command ends without waiting for it",
                timeout.limit.as_secs_f64(),
                timeout.origin(),
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
            for st in summaries(outcome) {
                let obj = json!({
                    "script_status": {
                        "script": st.script,
                        "module": st.module,
                        "class": st.class,
                        "state": st.state(),
                        "runs": st.runs,
                        "failures": st.failures,
                        "duration_ms": {"min": st.min_ms, "max": st.max_ms, "total": st.total_ms},
                        "points": st.points,
                        "last_error": st.last_error,
                    }
                });
                writeln!(out, "{obj}")?;
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
            let sums = summaries(outcome);
            if !sums.is_empty() {
                writeln!(out, "== scripts ==")?;
            }
            for st in &sums {
                let points: Vec<String> =
                    st.points.iter().map(|(c, n)| format!("{c}={n}")).collect();
                writeln!(
                    out,
                    "{}.{} (name {}): {}, {} run{}, {} failed, run time {:.1}-{:.1} ms, points {}",
                    st.module,
                    st.class,
                    st.script,
                    st.state(),
                    st.runs,
                    if st.runs == 1 { "" } else { "s" },
                    st.failures,
                    st.min_ms,
                    st.max_ms,
                    if points.is_empty() {
                        "none".to_owned()
                    } else {
                        points.join(" ")
                    }
                )?;
                if let Some(e) = &st.last_error {
                    for l in e.lines() {
                        writeln!(out, "    {l}")?;
                    }
                }
            }
            let total: usize = by_cat.values().map(|v| v.len()).sum();
            let ran = sums
                .iter()
                .filter(|s| !matches!(s.last_failure, Some(RunFailure::NotRun { .. })))
                .count();
            let not_run = sums.len() - ran;
            let failed = sums
                .iter()
                .filter(|s| {
                    s.failures > 0 && !matches!(s.last_failure, Some(RunFailure::NotRun { .. }))
                })
                .count();
            let rounds = outcome.runs.iter().map(|r| r.round + 1).max().unwrap_or(1);
            writeln!(
                out,
                "{ran} script{} ran{}, {total} point{}, {} failed to load, {failed} failed in run(){}",
                if ran == 1 { "" } else { "s" },
                if rounds > 1 {
                    format!(" {rounds} times")
                } else {
                    String::new()
                },
                if total == 1 { "" } else { "s" },
                outcome.load_failures.len(),
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

/// One script's runs in a test, summed up like the daemon's status.
struct Summary<'a> {
    script: &'a str,
    module: &'a str,
    class: &'a str,
    runs: u32,
    failures: u32,
    min_ms: f64,
    max_ms: f64,
    total_ms: f64,
    points: BTreeMap<&'static str, usize>,
    last_error: Option<String>,
    last_failure: Option<&'a RunFailure>,
}

impl Summary<'_> {
    fn state(&self) -> &'static str {
        match self.last_failure {
            None => "ok",
            Some(RunFailure::Raised(_)) => "failing",
            Some(RunFailure::TimedOut { .. }) => "timed_out",
            Some(RunFailure::Hung { .. }) => "hung",
            Some(RunFailure::NotRun { .. }) => "not_run",
        }
    }
}

fn failure_text(f: &RunFailure) -> String {
    match f {
        RunFailure::Raised(tb) | RunFailure::TimedOut { traceback: tb, .. } => tb.clone(),
        RunFailure::Hung { timeout, .. } => format!(
            "hung: did not stop after its timeout of {} s ({}) and an interrupt",
            timeout.limit.as_secs_f64(),
            timeout.origin()
        ),
        RunFailure::NotRun { blocked_by } => {
            format!("not run: the hung run of {blocked_by} holds the interpreter")
        }
    }
}

/// Per script, in the order they first ran.
fn summaries(outcome: &TestOutcome) -> Vec<Summary<'_>> {
    let mut v: Vec<Summary<'_>> = Vec::new();
    for r in &outcome.runs {
        let i = match v
            .iter()
            .position(|s| s.module == r.module && s.class == r.class)
        {
            Some(i) => i,
            None => {
                v.push(Summary {
                    script: &r.script,
                    module: &r.module,
                    class: &r.class,
                    runs: 0,
                    failures: 0,
                    min_ms: f64::MAX,
                    max_ms: 0.0,
                    total_ms: 0.0,
                    points: BTreeMap::new(),
                    last_error: None,
                    last_failure: None,
                });
                v.len() - 1
            }
        };
        let s = &mut v[i];
        let ms = r.took.as_secs_f64() * 1e3;
        s.runs += 1;
        s.min_ms = s.min_ms.min(ms);
        s.max_ms = s.max_ms.max(ms);
        s.total_ms += ms;
        s.last_failure = r.error.as_ref();
        if let Some(e) = &r.error {
            s.failures += 1;
            s.last_error = Some(failure_text(e));
        }
        for rec in &r.recorded {
            if let Recorded::Points(route, points) = rec {
                *s.points.entry(route.category.as_str()).or_default() += points.len();
            }
        }
    }
    v
}
