//! The dry load of hot reload: the new version of an input's scripts is
//! imported by a `pythond-worker list --json` (nothing runs) before the
//! running worker is replaced.

use std::time::Duration;

use pythond_core::spec::{WorkerSpec, SPEC_ENV};
use pythond_core::status::LoadReport;

use crate::supervisor::{off_runtime, Launch};

/// `launch` with its spec prepared (discovery) on the blocking pool.
pub(super) async fn prepared(launch: Launch) -> (Launch, anyhow::Result<WorkerSpec>) {
    off_runtime(move || {
        let spec = (launch.prepare)();
        (launch, spec)
    })
    .await
}

/// How long a dry load may take.
const DRY_LOAD_LIMIT: Duration = Duration::from_secs(30);

/// Load `spec`'s scripts in a `pythond-worker list --json` (nothing runs)
/// and say why the new version may not replace the old one, if it may not:
/// it finds no script, or a module fails that did not fail before
/// (`broken_now`: failing already, it does not hold a fix of another back).
pub(super) async fn dry_load(
    spec: &WorkerSpec,
    envs: &[(String, String)],
    broken_now: &[String],
) -> Option<String> {
    let worker = match crate::worker_exe::path() {
        Ok(w) => w,
        Err(e) => return Some(format!("{e:#}")),
    };
    let json = match serde_json::to_string(spec) {
        Ok(j) => j,
        Err(e) => return Some(e.to_string()),
    };
    let envs = envs.to_vec();
    let loaded = off_runtime(move || {
        let mut child = std::process::Command::new(worker)
            .args(["list", "--json"])
            .env(SPEC_ENV, json)
            .envs(envs)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        crate::bounded::wait_bounded(&mut child, DRY_LOAD_LIMIT)
    })
    .await;
    let (out, finished) = match loaded {
        Ok(o) => o,
        Err(e) => return Some(format!("cannot run the dry load: {e}")),
    };
    if !finished {
        return Some(format!(
            "loading the scripts took more than {} s",
            DRY_LOAD_LIMIT.as_secs()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(report) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<LoadReport>(l).ok())
    else {
        return Some(format!(
            "the dry load failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    };
    let new_failures: Vec<String> = report
        .failures
        .iter()
        .filter(|(m, _, _)| !broken_now.contains(m))
        .map(|(m, c, e)| {
            let what = c
                .as_ref()
                .map(|c| format!("{m}.{c}"))
                .unwrap_or_else(|| m.clone());
            format!("{what}: {}", last_line(e))
        })
        .collect();
    if !new_failures.is_empty() {
        return Some(new_failures.join("; "));
    }
    if report.scripts.is_empty() {
        let mut why = vec!["no script to run".to_owned()];
        why.extend(report.discovery_errors.iter().cloned());
        return Some(why.join("; "));
    }
    None
}

/// The line of a traceback that says what went wrong.
fn last_line(e: &str) -> &str {
    e.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(e)
        .trim()
}
