//! Printing a test run: points grouped by category with notes on what
//! DataKit will rewrite (human), or one JSON object per point (for tools).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::json;

use pythond_core::lineproto::encode_point;
use pythond_core::point::{Category, FieldValue, Point};
use pythond_core::route::Route;
use pythond_core::sink::Recorded;

use super::{Format, RunRecord, TestOutcome};

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
