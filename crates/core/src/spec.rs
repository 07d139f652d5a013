//! What the supervisor tells a worker: the [`WorkerSpec`] of one input,
//! passed as JSON in the worker's environment, and the fd the worker writes
//! its heartbeats to. Both binaries are built from the same source, so the
//! format needs no versioning.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::discover::Resolved;
use crate::target::Target;

/// The environment variable carrying the spec from supervisor to worker.
pub const SPEC_ENV: &str = "PYTHOND_WORKER_SPEC";

/// The environment variable naming the file descriptor a worker writes its
/// heartbeats to (set up by the supervisor; absent when a worker runs alone).
pub const HEARTBEAT_FD_ENV: &str = "PYTHOND_HEARTBEAT_FD";

/// Everything a worker needs, decided by the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The block's `name`.
    pub input: String,
    /// The block's `cmd`: the Python whose `site-packages` scripts see.
    /// Empty: the embedded interpreter's own `sys.path`, no Python probed
    /// (launch mode without `PYTHOND_PYTHON` or `VIRTUAL_ENV`).
    pub cmd: String,
    /// `(module name, file)` to import, in order.
    pub modules: Vec<(String, PathBuf)>,
    /// Where each `dirs` entry resolved (shown by `pythond check`, logged).
    #[serde(default)]
    pub resolved: Vec<Resolved>,
    /// What discovery could not use (entries not found, scripts refused by
    /// the permission check): the worker logs them, `pythond check` lists
    /// them.
    #[serde(default)]
    pub discovery_errors: Vec<String>,
    pub sys_path: Vec<PathBuf>,
    pub tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
    /// DataKit, or a local output.
    pub target: Target,
    /// Replace every script's own ip/port too (set with `--output`).
    pub force_target: bool,
    /// Shutdown grace: how long running runs and the final flush may take.
    pub grace_secs: f64,
    /// The block's `timeout` (a class's own `timeout` attribute wins).
    pub timeout_secs: Option<f64>,
    /// How long an interrupted run may take to stop before it is hung.
    pub hang_grace_secs: f64,
    /// This input's spool directory; `None`: no spool (memory only).
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: u64,
    /// Where the input's framework log file goes.
    pub log_dir: PathBuf,
    pub log_level: String,
    /// Imports and classes not to run: they took the worker down again and
    /// again (see `control`).
    #[serde(default)]
    pub quarantined: Vec<Quarantined>,
    /// Keep little only in memory (launch mode, where a kill is the normal
    /// stop): a shorter batch linger, and a batch DataKit refuses goes to
    /// the spool at once instead of waiting in memory for a second attempt.
    #[serde(default)]
    pub short_linger: bool,
}

impl WorkerSpec {
    /// The block's `timeout`. Validated with the config; bounded again here
    /// so that a hand-made spec cannot panic the worker.
    pub fn block_timeout(&self) -> Option<std::time::Duration> {
        self.timeout_secs
            .and_then(|t| crate::seconds::to_duration(t).ok())
    }

    /// A digest of what this worker would import: module names, paths and
    /// file contents (and what discovery refused). Hot reload restarts a
    /// worker only when it differs from the running version's; reading the
    /// files blocks, so async callers run it on the blocking pool.
    pub fn scripts_digest(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for (name, path) in &self.modules {
            name.hash(&mut h);
            path.hash(&mut h);
            std::fs::read(path).unwrap_or_default().hash(&mut h);
        }
        self.discovery_errors.hash(&mut h);
        h.finish()
    }
}

/// Something the supervisor keeps out of a worker, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// `import:<module>` or `run:<module>.<Class>`.
    pub id: String,
    pub reason: String,
}

/// Exit codes of `pythond-worker` that the supervisor acts on.
pub mod exit {
    /// Stopped on request, nothing lost.
    pub const OK: i32 = 0;
    /// Could not start (bad spec, interpreter or `cmd` problem).
    pub const START_FAILED: i32 = 2;
    /// No script could be loaded.
    pub const NO_SCRIPTS: i32 = 3;
    /// Stopped, but points were dropped during the worker's life (queue
    /// full, retries exhausted, spool bound, nothing left to spool into).
    pub const DATA_LOST: i32 = 4;
    /// The configuration cannot work (`cmd` cannot be run, or is another
    /// Python version): restarting would not help, so the supervisor stops
    /// the input (and `pythond` exits with this code when no input is left).
    /// 78 is `EX_CONFIG` of sysexits.h.
    pub const CONFIG: i32 = 78;
}

/// What `pythond-worker parse-launch FILE` found in the runner file DataKit
/// renders for an `[[inputs.pythond]]` block (printed as JSON): the string
/// arguments of the calls that matter, in source order. Their meaning
/// (which path is DataKit's `python.d/core`) is decided by `pythond`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchFileCalls {
    /// `sys.path.append(p)` and `sys.path.insert(i, p)`.
    pub path_appends: Vec<String>,
    /// The elements of `sys.path.extend([...])` lists.
    pub path_extends: Vec<String>,
    /// The arguments of the last `main("mod", ...)` call with only strings.
    pub main_args: Option<Vec<String>>,
}
