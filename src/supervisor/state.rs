//! What the supervisor knows about each input while it runs: the worker's
//! pid and life, restarts, memory, reload errors, quarantines, and the
//! worker's latest report. `GET /status` is rendered from this
//! ([`InputState::status`]), never by asking a worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pythond_core::spec::Quarantined;
use pythond_core::status::{
    unix_ms, ErrorAt, InputStatus, ScriptState, ScriptStatus, Status, WorkerReport,
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
    /// Points lost by the input's earlier workers.
    pub lost_before: u64,
    /// The running (or last) worker's latest report.
    pub report: Option<WorkerReport>,
    /// What the running worker was told to leave out: the script's file,
    /// and when the quarantine began.
    pub quarantined: Vec<(Quarantined, PathBuf, SystemTime)>,
    /// The folders of the running worker's scripts (`sys_path`), for reload.
    pub script_dirs: Vec<PathBuf>,
    /// What the running worker imported (see `reload::scripts_digest`).
    pub scripts_digest: u64,
}

/// Every input's state, shared by the supervisor's tasks and the status
/// endpoint.
#[derive(Clone, Default)]
pub struct Registry {
    inputs: Arc<Mutex<BTreeMap<String, Arc<Mutex<InputState>>>>>,
    started: Arc<Mutex<Option<SystemTime>>>,
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
    /// This input as `GET /status` shows it.
    pub fn status(&self) -> InputStatus {
        let report = self.report.clone().unwrap_or_default();
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
            lost_points: self.lost_before + report.writer.lost(),
            writer: report.writer,
            scripts,
        }
    }
}
