//! The worker's report to the supervisor: every second a JSON line on the
//! report pipe (`PYTHOND_REPORT_FD`) with each script's numbers and state
//! and the writer's, which the supervisor serves as `GET /status` and
//! `/metrics`. The first line and one a minute are the whole
//! [`WorkerReport`]; the others name only the scripts whose numbers changed
//! ([`ReportLine`]), so an idle status costs next to nothing.
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
    unix_ms, ErrorAt, Histogram, ReportDelta, ReportLine, ScriptState, ScriptStatus, ScriptUpdate,
    WorkerReport, REPORT_FD_ENV,
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

/// A full report at least this often (it also repairs a line the
/// supervisor could not read).
const FULL_EVERY: Duration = Duration::from_secs(60);

/// What the reporter sent last.
#[derive(Default)]
struct Sent {
    full_at: Option<std::time::Instant>,
    /// Each script's numbers as last sent.
    scripts: Vec<Option<ScriptUpdate>>,
}

impl ReportedScript {
    /// This script's changing numbers now.
    fn update(&self, index: u32) -> ScriptUpdate {
        let s = self.stats.snapshot();
        ScriptUpdate {
            index,
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
            duration_counts: s.durations.counts,
            duration_sum_secs: s.durations.sum_secs,
            duration_count: s.durations.count,
            last_success_ms: s.last_success.map(unix_ms),
            last_error: s.last_error.map(|(t, m)| ErrorAt {
                at_ms: unix_ms(t),
                message: m,
            }),
            points: (self.points)(),
            start_delay_p50_ms: s.start_delay_p50_ms,
            start_delay_p99_ms: s.start_delay_p99_ms,
        }
    }

    /// The whole status, with the numbers of `u`.
    fn status(&self, u: &ScriptUpdate) -> ScriptStatus {
        let mut s = ScriptStatus {
            module: self.module.clone(),
            class: Some(self.class.clone()),
            name: self.name.clone(),
            file: self.file.clone(),
            interval_secs: self.interval.as_secs_f64(),
            timeout_secs: self.timeout.as_secs_f64(),
            state: u.state,
            runs: 0,
            failures: 0,
            consecutive_failures: 0,
            timeouts: 0,
            skipped_ticks: 0,
            backed_off_ticks: 0,
            last_run_start_ms: None,
            last_run_duration_ms: None,
            duration_p50_ms: None,
            duration_p99_ms: None,
            durations: Histogram::new(),
            last_success_ms: None,
            last_error: None,
            points: Default::default(),
            start_delay_p50_ms: None,
            start_delay_p99_ms: None,
        };
        u.clone().apply_to(&mut s);
        s
    }
}

impl Reporter {
    /// The whole report of this moment.
    fn full(&self, sent: &mut Sent) -> WorkerReport {
        sent.scripts.clear();
        let mut scripts: Vec<ScriptStatus> = Vec::with_capacity(self.scripts.len());
        for (i, r) in self.scripts.iter().enumerate() {
            let u = r.update(i as u32);
            scripts.push(r.status(&u));
            sent.scripts.push(Some(u));
        }
        scripts.extend(self.not_run.iter().cloned());
        WorkerReport {
            scripts,
            writer: self.writer.status(),
            log_lines_dropped: pythond_core::logs::dropped_lines(),
        }
    }

    /// The next line: the whole report when due, else what changed since
    /// the previous line.
    fn line(&self, sent: &mut Sent) -> ReportLine {
        let due = sent.full_at.is_none_or(|t| t.elapsed() >= FULL_EVERY);
        if due {
            sent.full_at = Some(std::time::Instant::now());
            return ReportLine::Full(self.full(sent));
        }
        let mut changed = Vec::new();
        for (i, r) in self.scripts.iter().enumerate() {
            let mut u = r.update(i as u32);
            let last = &mut sent.scripts[i];
            if last.as_ref() == Some(&u) {
                continue;
            }
            let error_known = last.as_ref().is_some_and(|l| l.last_error == u.last_error);
            let keep = u.clone();
            if error_known {
                u.last_error = None;
            }
            *last = Some(keep);
            changed.push(u);
        }
        ReportLine::Delta(ReportDelta {
            scripts: changed,
            writer: self.writer.status(),
            log_lines_dropped: pythond_core::logs::dropped_lines(),
        })
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
        let shared = Arc::new((self, std::sync::Mutex::new((pipe, Sent::default()))));
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

type Shared = Arc<(Reporter, std::sync::Mutex<(std::fs::File, Sent)>)>;

fn send(s: &Shared) -> bool {
    let mut g = s.1.lock().unwrap_or_else(|e| e.into_inner());
    let (pipe, sent) = &mut *g;
    let mut line = match serde_json::to_vec(&s.0.line(sent)) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot encode the status report: {e}");
            return true;
        }
    };
    line.push(b'\n');
    pipe.write_all(&line).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use pythond_core::writer::WriterConfig;
    use std::sync::atomic::Ordering::Relaxed;

    fn script(name: &str, stats: &Arc<JobStats>) -> ReportedScript {
        ReportedScript {
            module: "m".into(),
            class: name.into(),
            name: name.into(),
            file: "/s/m.py".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            stats: stats.clone(),
            points: Arc::new(Default::default),
        }
    }

    #[test]
    fn only_scripts_whose_numbers_changed_are_sent_between_full_reports() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let _g = rt.enter();
        let (a, b) = (Arc::new(JobStats::default()), Arc::new(JobStats::default()));
        let r = Reporter {
            scripts: vec![script("A", &a), script("B", &b)],
            not_run: vec![],
            writer: Writer::spawn(WriterConfig::default()),
        };
        let mut sent = Sent::default();
        let ReportLine::Full(full) = r.line(&mut sent) else {
            panic!("the first line is the whole report")
        };
        assert_eq!(full.scripts.len(), 2);
        assert_eq!(full.scripts[1].name, "B");
        let ReportLine::Delta(d) = r.line(&mut sent) else {
            panic!("then deltas")
        };
        assert!(d.scripts.is_empty(), "{d:?}");
        b.runs.store(5, Relaxed);
        let ReportLine::Delta(d) = r.line(&mut sent) else {
            panic!()
        };
        assert_eq!(d.scripts.len(), 1);
        assert_eq!((d.scripts[0].index, d.scripts[0].runs), (1, 5));
        // Applied to the full report, it gives the report of this moment.
        let mut merged = full;
        merged.apply(d);
        assert_eq!(merged.scripts, r.full(&mut Sent::default()).scripts);
    }
}
