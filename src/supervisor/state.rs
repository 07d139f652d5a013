//! What the supervisor knows about each input while it runs: the worker's
//! pid and life, restarts, memory, reload errors, quarantines, and the
//! worker's latest report. `GET /status` is rendered from this
//! ([`InputState::status`]), never by asking a worker.
//!
//! Counters (runs, failures, points, requests, drops, the run duration
//! histogram) are the input's since pythond started: when a worker ends,
//! its last report's counters are added to those of the workers before it
//! ([`InputState::absorb_report`]), and the status shows that sum plus the
//! running worker's, per script (`module.Class`) and for the writer. So
//! they never go down across restarts (what Prometheus' counters promise).
//! Gauges (queue, spool, state, percentiles) are the running worker's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pythond_core::spec::Quarantined;
use pythond_core::status::{
    unix_ms, ErrorAt, InputStatus, ScriptState, ScriptStatus, Status, WorkerReport, WriterStatus,
};

/// One input's live state.
#[derive(Debug, Default)]
pub struct InputState {
    pub name: String,
    pub source: String,
    pub pid: Option<u32>,
    pub started: Option<SystemTime>,
    /// Workers started so far (the first start is not a restart).
    pub starts: u64,
    pub last_exit: Option<ErrorAt>,
    pub rss_bytes: Option<u64>,
    pub max_rss_bytes: Option<u64>,
    pub rss_restarts: u64,
    pub reload_error: Option<ErrorAt>,
    /// The counters of the input's earlier workers (see the module docs).
    pub earlier: Earlier,
    /// The running (or last) worker's latest report.
    pub report: Option<WorkerReport>,
    /// What the running worker was told to leave out: the script's file,
    /// and when the quarantine began.
    pub quarantined: Vec<(Quarantined, PathBuf, SystemTime)>,
    /// The folders of the running worker's scripts (`sys_path`), for reload.
    pub script_dirs: Vec<PathBuf>,
    /// What the running worker imported (see `WorkerSpec::scripts_digest`).
    pub scripts_digest: u64,
}

/// What the earlier workers of an input counted, summed.
#[derive(Debug, Default)]
pub struct Earlier {
    /// By script id (`module.Class`, or the module).
    scripts: BTreeMap<String, ScriptStatus>,
    writer: WriterStatus,
}

fn script_key(s: &ScriptStatus) -> String {
    match &s.class {
        Some(c) => format!("{}.{c}", s.module),
        None => s.module.clone(),
    }
}

fn add_map(to: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, n) in from {
        *to.entry(k.clone()).or_insert(0) += n;
    }
}

/// Adds the counters of `from` to `to` (what is not a counter is left).
fn add_script(to: &mut ScriptStatus, from: &ScriptStatus) {
    to.runs += from.runs;
    to.failures += from.failures;
    to.timeouts += from.timeouts;
    to.skipped_ticks += from.skipped_ticks;
    to.backed_off_ticks += from.backed_off_ticks;
    add_map(&mut to.points, &from.points);
    let (t, f) = (&mut to.durations, &from.durations);
    if t.bounds == f.bounds && t.counts.len() == f.counts.len() {
        for (a, b) in t.counts.iter_mut().zip(&f.counts) {
            *a += b;
        }
        t.sum_secs += f.sum_secs;
        t.count += f.count;
    }
}

fn zero_script(s: &mut ScriptStatus) {
    s.runs = 0;
    s.failures = 0;
    s.timeouts = 0;
    s.skipped_ticks = 0;
    s.backed_off_ticks = 0;
    s.points.clear();
    s.durations = pythond_core::status::Histogram::new();
}

fn add_writer(to: &mut WriterStatus, from: &WriterStatus) {
    to.requests_sent += from.requests_sent;
    to.requests_retried += from.requests_retried;
    to.requests_failed += from.requests_failed;
    to.points_spooled += from.points_spooled;
    to.points_replayed += from.points_replayed;
    add_map(&mut to.points_sent, &from.points_sent);
    add_map(&mut to.dropped, &from.dropped);
    if from.last_delivery_error.is_some() {
        to.last_delivery_error = from.last_delivery_error.clone();
    }
}

fn zero_writer(w: &mut WriterStatus) {
    w.requests_sent = 0;
    w.requests_retried = 0;
    w.requests_failed = 0;
    w.points_spooled = 0;
    w.points_replayed = 0;
    w.points_sent.clear();
    w.dropped.clear();
}

/// Every input's state, shared by the supervisor's tasks and the status
/// endpoint.
#[derive(Clone, Default)]
pub struct Registry {
    inputs: Arc<Mutex<BTreeMap<String, Arc<Mutex<InputState>>>>>,
    started: Arc<Mutex<Option<SystemTime>>>,
}

/// Launch mode's count of lines DataKit's pipe could not take (shown with
/// each input: there is one per pythond in that mode).
static PIPE_DROPPED: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// Show `count` as every input's `pipe_lines_dropped`.
pub fn count_pipe_drops(count: fn() -> u64) {
    let _ = PIPE_DROPPED.set(count);
}

/// An error now.
pub fn error_now(message: impl Into<String>) -> ErrorAt {
    ErrorAt {
        at_ms: unix_ms(SystemTime::now()),
        message: message.into(),
    }
}

impl Registry {
    pub fn new() -> Registry {
        let r = Registry::default();
        *r.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(SystemTime::now());
        r
    }

    /// The state of `name`, created empty on first use.
    pub fn input(&self, name: &str) -> Arc<Mutex<InputState>> {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(InputState {
                    name: name.to_owned(),
                    ..InputState::default()
                }))
            })
            .clone()
    }

    pub fn remove(&self, name: &str) {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    pub fn names(&self) -> Vec<String> {
        self.inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// `GET /status`.
    pub fn status(&self) -> Status {
        let inputs: Vec<Arc<Mutex<InputState>>> = self
            .inputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            started_ms: self
                .started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .map(unix_ms)
                .unwrap_or(0),
            inputs: inputs
                .iter()
                .map(|i| i.lock().unwrap_or_else(|e| e.into_inner()).status())
                .collect(),
        }
    }
}

impl InputState {
    /// The worker ended: its counters join the earlier workers', and its
    /// last report stays (scripts and states, counters zeroed) until the
    /// next worker reports.
    pub fn absorb_report(&mut self) {
        let Some(report) = self.report.as_mut() else {
            return;
        };
        for s in &mut report.scripts {
            let key = script_key(s);
            match self.earlier.scripts.get_mut(&key) {
                Some(acc) => add_script(acc, s),
                None => {
                    self.earlier.scripts.insert(key, s.clone());
                }
            }
            zero_script(s);
        }
        add_writer(&mut self.earlier.writer, &report.writer);
        zero_writer(&mut report.writer);
    }

    /// This input as `GET /status` shows it.
    pub fn status(&self) -> InputStatus {
        let mut report = self.report.clone().unwrap_or_default();
        for s in &mut report.scripts {
            if let Some(before) = self.earlier.scripts.get(&script_key(s)) {
                add_script(s, before);
            }
        }
        let last_error = report.writer.last_delivery_error.take();
        add_writer(&mut report.writer, &self.earlier.writer);
        if last_error.is_some() {
            report.writer.last_delivery_error = last_error;
        }
        let mut scripts = report.scripts;
        // What the supervisor keeps out of the worker is reported here: the
        // worker does not know it is quarantined, only that it was told so.
        for (q, file, since) in &self.quarantined {
            let module = pythond_core::control::module_of(&q.id).unwrap_or(&q.id);
            let class =
                q.id.strip_prefix("run:")
                    .and_then(|r| r.rsplit_once('.'))
                    .map(|(_, c)| c);
            scripts.retain(|s| {
                !(s.module == module && (class.is_none() || s.class.as_deref() == class))
            });
            scripts.push(ScriptStatus::not_run(
                module,
                class,
                &file.display().to_string(),
                ScriptState::Quarantined,
                ErrorAt {
                    at_ms: unix_ms(*since),
                    message: q.reason.clone(),
                },
            ));
        }
        InputStatus {
            name: self.name.clone(),
            source: self.source.clone(),
            pid: self.pid,
            started_ms: self.started.map(unix_ms),
            uptime_secs: self
                .started
                .filter(|_| self.pid.is_some())
                .and_then(|s| s.elapsed().ok())
                .map(|d| d.as_secs_f64()),
            restarts: self.starts.saturating_sub(1),
            last_exit: self.last_exit.clone(),
            rss_bytes: self.rss_bytes,
            max_rss_bytes: self.max_rss_bytes,
            rss_restarts: self.rss_restarts,
            reload_error: self.reload_error.clone(),
            lost_points: report.writer.lost(),
            pipe_lines_dropped: PIPE_DROPPED.get().map(|f| f()),
            writer: report.writer,
            scripts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(runs: u64, sent: u64, dropped: u64, durations: &[f64]) -> WorkerReport {
        let mut s = ScriptStatus::not_run("m", Some("C"), "m.py", ScriptState::Ok, error_now("-"));
        s.last_error = None;
        s.runs = runs;
        s.points.insert("metric".into(), runs * 2);
        for d in durations {
            s.durations.observe(*d);
        }
        let mut w = WriterStatus::default();
        w.points_sent.insert("metric".into(), sent);
        w.dropped.insert("queue_full".into(), dropped);
        w.requests_sent = sent;
        w.queue_points = 7;
        WorkerReport {
            scripts: vec![s],
            writer: w,
            log_lines_dropped: 0,
        }
    }

    #[test]
    fn counters_add_up_across_workers_and_never_go_down() {
        let mut st = InputState {
            report: Some(report(5, 10, 1, &[0.002, 0.3])),
            ..InputState::default()
        };
        let first = st.status();
        assert_eq!(first.scripts[0].runs, 5);
        // The worker ends: nothing goes down meanwhile.
        st.absorb_report();
        let between = st.status();
        assert_eq!(between.scripts[0].runs, 5);
        assert_eq!(between.writer.points_sent["metric"], 10);
        assert_eq!(between.lost_points, 1);
        // The next worker counts from 0; the status adds the earlier one's.
        st.report = Some(report(3, 4, 2, &[0.002]));
        let v = st.status();
        let s = &v.scripts[0];
        assert_eq!(s.runs, 8);
        assert_eq!(s.points["metric"], 16);
        assert_eq!(s.durations.count, 3);
        assert_eq!(s.durations.counts[1], 2, "two runs up to 5 ms");
        assert!((s.durations.sum_secs - 0.304).abs() < 1e-9);
        assert_eq!(v.writer.points_sent["metric"], 14);
        assert_eq!(v.writer.requests_sent, 14);
        assert_eq!(v.writer.dropped["queue_full"], 3);
        assert_eq!(v.lost_points, 3);
        assert_eq!(v.writer.queue_points, 7, "a gauge is the running worker's");
        // And once more: a third worker.
        st.absorb_report();
        st.report = Some(report(1, 1, 0, &[]));
        assert_eq!(st.status().scripts[0].runs, 9);
    }
}
