//! The lines of the report pipe (worker → supervisor).
//!
//! A worker of 2 000 scripts has ~1.5 MB of [`WorkerReport`] as JSON; sent
//! whole every second, encoding and parsing it was most of what `pythond
//! status` cost while nobody asked for it. So the worker sends the whole
//! report first and once a minute ([`ReportLine::Full`]), and in between
//! only the numbers of the scripts that changed since its previous line
//! ([`ReportLine::Delta`]), in short keys, zeros and `None`s left out. The
//! supervisor applies each delta to the last full report
//! ([`WorkerReport::apply`]): what it serves is the same [`WorkerReport`]
//! as before. The pipe is in order and lossless; the periodic full report
//! also repairs a line the supervisor could not read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ErrorAt, ScriptState, ScriptStatus, WorkerReport, WriterStatus};

/// One line on the report pipe: `{"full": ...}` or `{"delta": ...}`
/// (externally tagged: read in one pass, where a tag inside the object
/// would have the whole line buffered first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportLine {
    /// The whole report.
    Full(WorkerReport),
    /// What changed since the previous line.
    Delta(ReportDelta),
}

/// The writer's numbers, and the scripts whose numbers changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportDelta {
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptUpdate>,
    #[serde(rename = "w")]
    pub writer: WriterStatus,
    #[serde(rename = "l", default)]
    pub log_lines_dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Everything of a [`ScriptStatus`] that changes while it runs. In a delta
/// it is the script's whole changing state (a field left out is zero or
/// `None`), except `last_error`, sent only when it changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptUpdate {
    /// The script's index in the full report's `scripts`.
    #[serde(rename = "i")]
    pub index: u32,
    #[serde(rename = "st")]
    pub state: ScriptState,
    #[serde(rename = "r", default, skip_serializing_if = "is_zero")]
    pub runs: u64,
    #[serde(rename = "f", default, skip_serializing_if = "is_zero")]
    pub failures: u64,
    #[serde(rename = "cf", default, skip_serializing_if = "is_zero")]
    pub consecutive_failures: u64,
    #[serde(rename = "to", default, skip_serializing_if = "is_zero")]
    pub timeouts: u64,
    #[serde(rename = "sk", default, skip_serializing_if = "is_zero")]
    pub skipped_ticks: u64,
    #[serde(rename = "bo", default, skip_serializing_if = "is_zero")]
    pub backed_off_ticks: u64,
    #[serde(rename = "ls", default, skip_serializing_if = "Option::is_none")]
    pub last_run_start_ms: Option<u64>,
    #[serde(rename = "ld", default, skip_serializing_if = "Option::is_none")]
    pub last_run_duration_ms: Option<f64>,
    #[serde(rename = "d5", default, skip_serializing_if = "Option::is_none")]
    pub duration_p50_ms: Option<f64>,
    #[serde(rename = "d9", default, skip_serializing_if = "Option::is_none")]
    pub duration_p99_ms: Option<f64>,
    /// `durations`: counts per bucket, sum, count (the bounds are fixed).
    #[serde(rename = "dc", default, skip_serializing_if = "Vec::is_empty")]
    pub duration_counts: Vec<u64>,
    #[serde(rename = "ds", default)]
    pub duration_sum_secs: f64,
    #[serde(rename = "dn", default, skip_serializing_if = "is_zero")]
    pub duration_count: u64,
    #[serde(rename = "lk", default, skip_serializing_if = "Option::is_none")]
    pub last_success_ms: Option<u64>,
    /// In a delta: present only when it changed.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorAt>,
    #[serde(rename = "p", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub points: BTreeMap<String, u64>,
    #[serde(rename = "j5", default, skip_serializing_if = "Option::is_none")]
    pub start_delay_p50_ms: Option<f64>,
    #[serde(rename = "j9", default, skip_serializing_if = "Option::is_none")]
    pub start_delay_p99_ms: Option<f64>,
}

impl ScriptUpdate {
    /// Set what this update says on `s` (`last_error` only when given).
    pub fn apply_to(self, s: &mut ScriptStatus) {
        s.state = self.state;
        s.runs = self.runs;
        s.failures = self.failures;
        s.consecutive_failures = self.consecutive_failures;
        s.timeouts = self.timeouts;
        s.skipped_ticks = self.skipped_ticks;
        s.backed_off_ticks = self.backed_off_ticks;
        s.last_run_start_ms = self.last_run_start_ms;
        s.last_run_duration_ms = self.last_run_duration_ms;
        s.duration_p50_ms = self.duration_p50_ms;
        s.duration_p99_ms = self.duration_p99_ms;
        if self.duration_counts.len() == s.durations.counts.len() {
            s.durations.counts = self.duration_counts;
        } else {
            s.durations.counts.iter_mut().for_each(|c| *c = 0);
        }
        s.durations.sum_secs = self.duration_sum_secs;
        s.durations.count = self.duration_count;
        s.last_success_ms = self.last_success_ms;
        if let Some(e) = self.last_error {
            s.last_error = Some(e);
        }
        s.points = self.points;
        s.start_delay_p50_ms = self.start_delay_p50_ms;
        s.start_delay_p99_ms = self.start_delay_p99_ms;
    }
}

impl WorkerReport {
    /// Apply a delta to this (full) report.
    pub fn apply(&mut self, delta: ReportDelta) {
        for u in delta.scripts {
            if let Some(s) = self.scripts.get_mut(u.index as usize) {
                u.apply_to(s);
            }
        }
        self.writer = delta.writer;
        self.log_lines_dropped = delta.log_lines_dropped;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Histogram;

    fn script(name: &str) -> ScriptStatus {
        ScriptStatus {
            module: "m".into(),
            class: Some(name.into()),
            name: name.into(),
            file: "/s/m.py".into(),
            interval_secs: 1.0,
            timeout_secs: 30.0,
            state: ScriptState::Ok,
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
            points: BTreeMap::new(),
            start_delay_p50_ms: None,
            start_delay_p99_ms: None,
        }
    }

    fn update(index: u32, runs: u64) -> ScriptUpdate {
        let mut h = Histogram::new();
        h.observe(0.002);
        ScriptUpdate {
            index,
            state: ScriptState::Failing,
            runs,
            failures: 1,
            consecutive_failures: 1,
            timeouts: 0,
            skipped_ticks: 2,
            backed_off_ticks: 0,
            last_run_start_ms: Some(1_700_000_000_000),
            last_run_duration_ms: Some(2.0),
            duration_p50_ms: Some(2.0),
            duration_p99_ms: Some(2.5),
            duration_counts: h.counts.clone(),
            duration_sum_secs: h.sum_secs,
            duration_count: h.count,
            last_success_ms: None,
            last_error: Some(ErrorAt {
                at_ms: 1_700_000_000_002,
                message: "Traceback ...".into(),
            }),
            points: BTreeMap::from([("metric".to_owned(), 10)]),
            start_delay_p50_ms: Some(0.1),
            start_delay_p99_ms: None,
        }
    }

    #[test]
    fn a_delta_sets_the_scripts_it_names_and_the_writer() {
        let mut full = WorkerReport {
            scripts: vec![script("A"), script("B")],
            ..WorkerReport::default()
        };
        let delta = ReportDelta {
            scripts: vec![update(1, 3)],
            writer: WriterStatus {
                requests_sent: 7,
                ..WriterStatus::default()
            },
            log_lines_dropped: 2,
        };
        // Through the wire, as the supervisor reads it.
        let line = serde_json::to_string(&ReportLine::Delta(delta)).unwrap();
        let ReportLine::Delta(delta) = serde_json::from_str(&line).unwrap() else {
            panic!("{line}")
        };
        full.apply(delta);
        assert_eq!(full.scripts[0], script("A"));
        let b = &full.scripts[1];
        assert_eq!((b.runs, b.failures, b.skipped_ticks), (3, 1, 2));
        assert_eq!(b.state, ScriptState::Failing);
        assert_eq!(b.durations.count, 1);
        assert_eq!(b.durations.bounds, Histogram::new().bounds);
        assert_eq!(b.points["metric"], 10);
        assert_eq!(b.last_error.as_ref().unwrap().message, "Traceback ...");
        assert_eq!(b.start_delay_p99_ms, None);
        assert_eq!(full.writer.requests_sent, 7);
        assert_eq!(full.log_lines_dropped, 2);

        // A later delta without the error keeps it; zeros left out are zeros.
        let mut u = update(1, 4);
        u.last_error = None;
        u.consecutive_failures = 0;
        u.state = ScriptState::Ok;
        let line = serde_json::to_string(&ReportLine::Delta(ReportDelta {
            scripts: vec![u],
            ..ReportDelta::default()
        }))
        .unwrap();
        assert!(!line.contains("\"cf\""), "{line}");
        let ReportLine::Delta(delta) = serde_json::from_str(&line).unwrap() else {
            panic!()
        };
        full.apply(delta);
        let b = &full.scripts[1];
        assert_eq!((b.runs, b.consecutive_failures), (4, 0));
        assert_eq!(b.state, ScriptState::Ok);
        assert!(b.last_error.is_some());
    }

    #[test]
    fn a_full_line_carries_the_whole_report() {
        let full = WorkerReport {
            scripts: vec![script("A")],
            ..WorkerReport::default()
        };
        let line = serde_json::to_string(&ReportLine::Full(full.clone())).unwrap();
        assert!(line.starts_with("{\"full\":{"), "{line}");
        assert_eq!(
            serde_json::from_str::<ReportLine>(&line).unwrap(),
            ReportLine::Full(full)
        );
    }
}
