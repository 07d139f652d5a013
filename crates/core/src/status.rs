//! What `GET /status` shows, as plain data: each worker sends its
//! [`WorkerReport`] to the supervisor every second (JSON lines on its
//! report pipe: the whole report, then what changed, see [`ReportLine`]),
//! and the supervisor adds what only it knows (pid, restarts,
//! RSS, quarantines, reload errors) into an [`InputStatus`] per input.
//!
//! Times are Unix milliseconds; durations milliseconds. Every field of
//! these types is serialized always (no skipping), so the JSON has a fixed
//! shape for tools (only the pipe's deltas leave zeros out).

mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use wire::{ReportDelta, ReportLine, ScriptUpdate};

/// The environment variable naming the fd a worker writes its reports to.
pub const REPORT_FD_ENV: &str = "PYTHOND_REPORT_FD";

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where a script stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptState {
    /// Its last run succeeded (or it has not run yet).
    Ok,
    /// Its last run raised.
    Failing,
    /// It failed several times in a row and waits longer than its interval.
    BackingOff,
    /// Its last run was interrupted by its timeout.
    TimedOut,
    /// A run did not stop after its interrupt: no longer scheduled.
    Hung,
    /// It took its worker down again and again: not run.
    Quarantined,
    /// Its module could not be imported or its class instantiated.
    NotLoaded,
}

impl ScriptState {
    /// Whether `pythond status` counts the script as broken (non-zero exit).
    pub fn is_broken(self) -> bool {
        !matches!(self, ScriptState::Ok)
    }
}

/// An error and when it happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAt {
    pub at_ms: u64,
    /// The message; for a script, its traceback.
    pub message: String,
}

/// Counts of run durations per bucket (not cumulative): `counts[i]` for
/// durations up to `bounds[i]` seconds, the last count for the rest (+Inf,
/// which JSON cannot carry as a number).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub bounds: Vec<f64>,
    pub counts: Vec<u64>,
    pub sum_secs: f64,
    pub count: u64,
}

/// The bounds of run duration histograms, in seconds.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            bounds: DURATION_BUCKETS.to_vec(),
            counts: vec![0; DURATION_BUCKETS.len() + 1],
            sum_secs: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, secs: f64) {
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_secs += secs;
        self.count += 1;
    }

    /// `(upper bound, count)` per bucket, the last bound +Inf.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(self.counts.iter().copied())
            .collect()
    }
}

/// One script (one plugin class instance, or a module that failed to load).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptStatus {
    pub module: String,
    /// `None` when the module itself failed to import.
    pub class: Option<String>,
    /// The class's `name` (logs, lasterror).
    pub name: String,
    pub file: String,
    pub interval_secs: f64,
    pub timeout_secs: f64,
    pub state: ScriptState,
    pub runs: u64,
    pub failures: u64,
    pub consecutive_failures: u64,
    pub timeouts: u64,
    /// Ticks skipped because the previous run was still going.
    pub skipped_ticks: u64,
    /// Ticks skipped while backing off after failures.
    pub backed_off_ticks: u64,
    pub last_run_start_ms: Option<u64>,
    pub last_run_duration_ms: Option<f64>,
    pub duration_p50_ms: Option<f64>,
    pub duration_p99_ms: Option<f64>,
    pub durations: Histogram,
    pub last_success_ms: Option<u64>,
    /// The last error: a traceback, an import error, or why it is not run.
    pub last_error: Option<ErrorAt>,
    /// Points handed over, by category (`metric`, `logging`, ...).
    pub points: BTreeMap<String, u64>,
    /// Delay between a tick and the run starting.
    pub start_delay_p50_ms: Option<f64>,
    pub start_delay_p99_ms: Option<f64>,
}

impl ScriptStatus {
    /// A script that is not scheduled (not loaded, or quarantined).
    pub fn not_run(
        module: &str,
        class: Option<&str>,
        file: &str,
        state: ScriptState,
        error: ErrorAt,
    ) -> ScriptStatus {
        ScriptStatus {
            module: module.to_owned(),
            class: class.map(str::to_owned),
            name: class.unwrap_or(module).to_owned(),
            file: file.to_owned(),
            interval_secs: 0.0,
            timeout_secs: 0.0,
            state,
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
            last_error: Some(error),
            points: BTreeMap::new(),
            start_delay_p50_ms: None,
            start_delay_p99_ms: None,
        }
    }
}

/// The writer of one input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriterStatus {
    /// Points accepted and not yet delivered, spooled or dropped.
    pub queue_points: u64,
    pub spool_bytes: u64,
    pub spool_records: u64,
    /// Points waiting in the spool.
    pub spool_points: u64,
    pub requests_sent: u64,
    pub requests_retried: u64,
    /// Attempts that failed (retried, spooled or dropped after).
    pub requests_failed: u64,
    /// Points delivered, by category.
    pub points_sent: BTreeMap<String, u64>,
    pub points_spooled: u64,
    pub points_replayed: u64,
    /// Points dropped, by reason (`rejected`, `queue_full`,
    /// `retries_exhausted`, `shutdown`, `routes`, `spool_full`).
    pub dropped: BTreeMap<String, u64>,
    pub last_delivery_error: Option<ErrorAt>,
}

impl WriterStatus {
    /// Points pythond lost (everything dropped but DataKit's refusals).
    pub fn lost(&self) -> u64 {
        self.dropped
            .iter()
            .filter(|(r, _)| r.as_str() != "rejected")
            .map(|(_, n)| n)
            .sum()
    }
}

/// What a worker reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    pub scripts: Vec<ScriptStatus>,
    pub writer: WriterStatus,
    /// Log lines dropped because stderr could not keep up.
    pub log_lines_dropped: u64,
}

/// What loading an input's scripts gives, without running them
/// (`pythond-worker list --json`): a reload restarts a worker only when the
/// new version loads as well as the old.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// `module.Class` of every class that would run.
    pub scripts: Vec<String>,
    /// Modules or classes that failed: (module, class or None, error).
    pub failures: Vec<(String, Option<String>, String)>,
    /// Problems finding the scripts (missing entries, untrusted files).
    pub discovery_errors: Vec<String>,
}

/// One input, as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputStatus {
    pub name: String,
    /// Where the block is (`file:line`), or the launch file.
    pub source: String,
    pub pid: Option<u32>,
    pub started_ms: Option<u64>,
    pub uptime_secs: Option<f64>,
    /// Worker restarts since pythond started (crashes, stalls, memory limit,
    /// reloads).
    pub restarts: u64,
    pub last_exit: Option<ErrorAt>,
    pub rss_bytes: Option<u64>,
    pub max_rss_bytes: Option<u64>,
    /// Restarts because the worker passed `max_rss`.
    pub rss_restarts: u64,
    /// The last reload that could not be applied (the old version runs on).
    pub reload_error: Option<ErrorAt>,
    /// Points dropped since pythond started, whatever worker dropped them.
    pub lost_points: u64,
    /// Launch mode (one pythond per input): lines pythond could not write
    /// to DataKit's pipe because it was full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipe_lines_dropped: Option<u64>,
    pub writer: WriterStatus,
    pub scripts: Vec<ScriptStatus>,
}

/// `GET /status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub started_ms: u64,
    pub inputs: Vec<InputStatus>,
}

impl Status {
    /// Why `pythond status` should exit non-zero: a broken script or an
    /// input that lost points; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        for i in &self.inputs {
            for s in &i.scripts {
                if s.state.is_broken() {
                    v.push(format!(
                        "input {:?}: script {} is {}",
                        i.name,
                        s.class
                            .as_ref()
                            .map(|c| format!("{}.{c}", s.module))
                            .unwrap_or_else(|| s.module.clone()),
                        serde_json::to_value(s.state)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default()
                    ));
                }
            }
            if i.lost_points > 0 {
                v.push(format!(
                    "input {:?}: {} points dropped since start",
                    i.name, i.lost_points
                ));
            }
            if let Some(e) = &i.reload_error {
                v.push(format!(
                    "input {:?}: reload failed: {}",
                    i.name,
                    first_line(&e.message)
                ));
            }
        }
        v
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_each_value_once_in_its_bucket() {
        let mut h = Histogram::new();
        for s in [0.0005, 0.003, 0.003, 0.7, 42.0] {
            h.observe(s);
        }
        assert_eq!(h.count, 5);
        let b = h.buckets();
        assert_eq!(b[0], (0.001, 1));
        assert_eq!(b[1], (0.005, 2));
        assert_eq!(b.last().unwrap(), &(f64::INFINITY, 1));
        assert_eq!(b.iter().map(|b| b.1).sum::<u64>(), 5);
        // JSON round trip (+Inf is not a JSON number).
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), h);
    }

    #[test]
    fn states_serialize_in_snake_case_and_only_ok_is_healthy() {
        assert_eq!(
            serde_json::to_string(&ScriptState::BackingOff).unwrap(),
            "\"backing_off\""
        );
        assert!(!ScriptState::Ok.is_broken());
        assert!(ScriptState::NotLoaded.is_broken());
    }
}
