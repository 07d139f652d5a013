//! `pythond check`'s view of an input: load the scripts (nothing runs,
//! nothing is sent) and print one line per class that would run.

use std::sync::Arc;

use pythond_core::sink::Collector;
use pythond_core::spec::WorkerSpec;
use pythond_core::status::LoadReport;
use pythond_python::Context;

use pythond_core::scheduler::RunTimeout;

/// The prefix of the progress lines on stderr (read by `pythond check`).
pub const IMPORTING: &str = "importing module ";

/// Print the listing (as a [`LoadReport`] with `json`); the exit code is 0
/// when every module loaded and at least one class would run.
pub fn main(spec: WorkerSpec, json: bool) -> i32 {
    let sink = Arc::new(Collector::new());
    let ctx = Context {
        sink: sink.clone(),
        input_tags: Vec::new(),
        numbers_as_float: false,
    };
    if let Err(e) = crate::runtime::start_python(&spec, ctx) {
        if json {
            let report = LoadReport {
                discovery_errors: vec![e.to_string()],
                ..LoadReport::default()
            };
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
        } else {
            println!("error: {e}");
        }
        return 2;
    }
    if json {
        let loaded = crate::runtime::load(&spec, &*sink, |_, _| {});
        let report = LoadReport {
            scripts: loaded
                .scripts
                .iter()
                .map(|s| format!("{}.{}", s.module, s.class))
                .collect(),
            failures: loaded
                .failures
                .iter()
                .map(|f| (f.module.clone(), f.class.clone(), f.error.clone()))
                .collect(),
            discovery_errors: spec.discovery_errors.clone(),
        };
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
        let ok = report.failures.is_empty() && report.discovery_errors.is_empty();
        return if ok && !report.scripts.is_empty() {
            0
        } else {
            1
        };
    }
    for r in &spec.resolved {
        println!("dirs entry {:?}: {}", r.entry, r.path.display());
    }
    for e in &spec.discovery_errors {
        println!("error: {e}");
    }
    // Progress on stderr, unbuffered: if an import never returns, `pythond
    // check` names the module it is stuck in.
    let loaded = crate::runtime::load(&spec, &*sink, |name, path| {
        eprintln!("{IMPORTING}{name} ({})", path.display());
    });
    let block_timeout = spec.block_timeout();
    for s in &loaded.scripts {
        let timeout = RunTimeout::resolve(s.timeout, block_timeout, s.interval).limit;
        println!(
            "{}.{}  name={:?}  interval={}s  timeout={}s  ({})",
            s.module,
            s.class,
            &*s.name,
            s.interval.as_secs_f64(),
            timeout.as_secs_f64(),
            where_from(&s.path)
        );
    }
    for (m, p) in &loaded.empty_modules {
        println!(
            "note: module {m} ({}) defines no DataKitFramework subclass with run() (a helper or base-class module)",
            p.display()
        );
    }
    for n in &loaded.notes {
        println!("note: {n}");
    }
    for f in &loaded.failures {
        if !f.is_traceback() {
            println!("error: {}", f.error);
            continue;
        }
        println!(
            "error: {} ({}){}:",
            f.module,
            f.path.display(),
            f.class
                .as_ref()
                .map(|c| format!(" class {c}"))
                .unwrap_or_default()
        );
        for line in f.error.lines() {
            println!("    {line}");
        }
    }
    if loaded.failures.is_empty() && spec.discovery_errors.is_empty() && !loaded.scripts.is_empty()
    {
        0
    } else {
        1
    }
}

/// A script's path, and where it really is when that differs (a symlinked
/// file): `…/python.d/s/linked.py -> /opt/scripts/kept.py`.
fn where_from(path: &std::path::Path) -> String {
    match path.canonicalize() {
        Ok(real) if real != path => format!("{} -> {}", path.display(), real.display()),
        _ => path.display().to_string(),
    }
}
