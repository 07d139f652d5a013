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
/// How long its pipes may stay open once it has exited (a process a module
/// started at import may hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);

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
    let mut child = match tokio::process::Command::new(worker)
        .args(["list", "--json"])
        .env(SPEC_ENV, json)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Some(format!("cannot run the dry load: {e}")),
    };
    let out_task = read_all(child.stdout.take());
    let err_task = read_all(child.stderr.take());
    if tokio::time::timeout(DRY_LOAD_LIMIT, child.wait())
        .await
        .is_err()
    {
        out_task.abort();
        err_task.abort();
        return Some(format!(
            "loading the scripts took more than {} s",
            DRY_LOAD_LIMIT.as_secs()
        ));
    }
    let deadline = tokio::time::Instant::now() + PIPE_GRACE;
    let stdout = taken(out_task, deadline).await;
    let stderr = taken(err_task, deadline).await;
    let text = String::from_utf8_lossy(&stdout);
    let Some(report) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<LoadReport>(l).ok())
    else {
        return Some(format!(
            "the dry load failed: {}",
            String::from_utf8_lossy(&stderr).trim()
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

/// A pipe read to its end on a task of its own; what it read so far can be
/// taken at any time.
struct Reader {
    task: tokio::task::JoinHandle<()>,
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

/// Read `pipe` to its end on a task of its own.
fn read_all(pipe: Option<impl tokio::io::AsyncRead + Send + Unpin + 'static>) -> Reader {
    use tokio::io::AsyncReadExt as _;
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let b = buf.clone();
    let task = tokio::spawn(async move {
        let Some(mut p) = pipe else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n @ 1..) = p.read(&mut chunk).await {
            b.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(&chunk[..n]);
        }
    });
    Reader { task, buf }
}

impl Reader {
    fn abort(&self) {
        self.task.abort();
    }
}

/// What `r` read, once its pipe ended or at `deadline` (then what came so
/// far: a process a module started at import may hold the pipe open long
/// after the dry load wrote its report).
async fn taken(r: Reader, deadline: tokio::time::Instant) -> Vec<u8> {
    let abort = r.task.abort_handle();
    if tokio::time::timeout_at(deadline, r.task).await.is_err() {
        abort.abort();
    }
    std::mem::take(&mut *r.buf.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The line of a traceback that says what went wrong.
fn last_line(e: &str) -> &str {
    e.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(e)
        .trim()
}
