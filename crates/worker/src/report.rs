//! The worker's report to the supervisor: every second a [`WorkerReport`]
//! (each script's numbers and state, the writer's) as one JSON line on the
//! report pipe (`PYTHOND_REPORT_FD`), which the supervisor serves as
//! `GET /status` and `/metrics`.
//!
//! A pipe of its own, written by this thread only: a report may be larger
//! than the pipe's atomic write size, and must never interleave with, or
//! hold up, the control channel's crash markers.

use std::io::Write as _;
use std::os::fd::FromRawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pythond_core::scheduler::JobStats;
use pythond_core::status::{
    unix_ms, ErrorAt, ScriptState, ScriptStatus, WorkerReport, REPORT_FD_ENV,
};
use pythond_core::writer::Writer;

/// A scheduled script, as the report describes it.
pub struct ReportedScript {
    pub module: String,
    pub class: String,
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub stats: Arc<JobStats>,
    /// Points handed over by category.
    pub points: Arc<dyn Fn() -> std::collections::BTreeMap<String, u64> + Send + Sync>,
}

/// What the worker reports.
pub struct Reporter {
    pub scripts: Vec<ReportedScript>,
    /// Not scheduled: failed to load, or quarantined.
    pub not_run: Vec<ScriptStatus>,
    pub writer: Writer,
}

impl Reporter {
    /// The report of this moment.
    pub fn build(&self) -> WorkerReport {
        let mut scripts: Vec<ScriptStatus> = self
            .scripts
            .iter()
            .map(|r| {
                let s = r.stats.snapshot();
                ScriptStatus {
                    module: r.module.clone(),
                    class: Some(r.class.clone()),
                    name: r.name.clone(),
                    file: r.file.clone(),
                    interval_secs: r.interval.as_secs_f64(),
                    timeout_secs: r.timeout.as_secs_f64(),
                    state: s.state(),
                    runs: s.runs,
                    failures: s.failures,
                    consecutive_failures: s.consecutive_failures,
                    timeouts: s.timeouts,
                    skipped_ticks: s.skipped,
                    backed_off_ticks: s.backed_off,
                    last_run_start_ms: s.last_start.map(unix_ms),
                    last_run_duration_ms: s.last_duration.map(|d| d.as_secs_f64() * 1e3),
                    duration_p50_ms: s.duration_p50_ms,
                    duration_p99_ms: s.duration_p99_ms,
                    durations: s.durations,
                    last_success_ms: s.last_success.map(unix_ms),
                    last_error: s.last_error.map(|(t, m)| ErrorAt {
                        at_ms: unix_ms(t),
                        message: m,
                    }),
                    points: (r.points)(),
                    start_delay_p50_ms: s.start_delay_p50_ms,
                    start_delay_p99_ms: s.start_delay_p99_ms,
                }
            })
            .collect();
        scripts.extend(self.not_run.iter().cloned());
        WorkerReport {
            scripts,
            writer: self.writer.status(),
            log_lines_dropped: pythond_core::logs::dropped_lines(),
        }
    }

    /// Report every second on the pipe the supervisor gave (none when run
    /// by hand), until it closes. The handle sends one more on demand.
    pub fn start(self) -> ReportHandle {
        let Some(fd) = std::env::var(REPORT_FD_ENV)
            .ok()
            .and_then(|v| v.parse::<i32>().ok())
        else {
            return ReportHandle(None);
        };
        // SAFETY: the supervisor gave us this fd for the reporter's use only.
        let pipe = unsafe { std::fs::File::from_raw_fd(fd) };
        let shared = Arc::new((self, std::sync::Mutex::new(pipe)));
        let s2 = shared.clone();
        std::thread::Builder::new()
            .name("report".into())
            .spawn(move || loop {
                if !send(&s2) {
                    return; // supervisor gone
                }
                std::thread::sleep(Duration::from_secs(1));
            })
            .expect("spawn report thread");
        ReportHandle(Some(shared))
    }
}

type Shared = Arc<(Reporter, std::sync::Mutex<std::fs::File>)>;

fn send(s: &Shared) -> bool {
    let mut line = match serde_json::to_vec(&s.0.build()) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot encode the status report: {e}");
            return true;
        }
    };
    line.push(b'\n');
    s.1.lock()
        .unwrap_or_else(|e| e.into_inner())
        .write_all(&line)
        .is_ok()
}

/// A started reporter.
pub struct ReportHandle(Option<Shared>);

impl ReportHandle {
    /// Report now (the last report, after the writer shut down, says what
    /// was lost).
    pub fn send_now(&self) {
        if let Some(s) = &self.0 {
            send(s);
        }
    }
}

/// A script that is not run, with why.
pub fn not_run(
    module: &str,
    class: Option<&str>,
    file: &std::path::Path,
    state: ScriptState,
    why: &str,
) -> ScriptStatus {
    ScriptStatus::not_run(
        module,
        class,
        &file.display().to_string(),
        state,
        ErrorAt {
            at_ms: unix_ms(SystemTime::now()),
            message: why.to_owned(),
        },
    )
}
