//! One worker process: one `[[inputs.pythond]]` block, one embedded CPython.
//!
//! The supervisor starts `pythond worker` with a [`WorkerSpec`] (JSON in the
//! `PYTHOND_WORKER_SPEC` environment variable) and the block's `envs` already
//! in the environment, so they are in place before the interpreter starts.
//! The worker imports the modules, instantiates the plugin classes, runs them
//! on their intervals and delivers their points through its own writer. On
//! SIGTERM/SIGINT it stops ticking, lets runs finish within the grace period,
//! flushes, and exits 0 without finalizing Python.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::python;
use crate::scheduler::{self, Job, Scheduled};
use crate::sink::Sink;
use crate::writer::{Target, Writer, WriterConfig};

/// The environment variable carrying the spec from supervisor to worker.
pub const SPEC_ENV: &str = "PYTHOND_WORKER_SPEC";

/// The file descriptor a worker writes its heartbeats to (set up by the
/// supervisor; absent when a worker is run by hand).
pub const HEARTBEAT_FD_ENV: &str = "PYTHOND_HEARTBEAT_FD";

/// Every second, prove that the interpreter can still be entered (no C code
/// holds the GIL forever) by writing a byte to the supervisor's pipe. The
/// supervisor restarts a worker whose heartbeats stop.
fn start_heartbeat() {
    let Some(fd) = std::env::var(HEARTBEAT_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            pyo3::Python::attach(|_| ());
            // SAFETY: writing one byte from a live buffer to our own fd.
            let n = unsafe { libc::write(fd, b"h".as_ptr().cast(), 1) };
            if n < 0 {
                return; // supervisor gone
            }
            std::thread::sleep(Duration::from_secs(1));
        })
        .expect("spawn heartbeat thread");
}

/// Everything a worker needs, decided by the supervisor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The block's `name`.
    pub input: String,
    pub cmd: String,
    /// `(module name, file)` to import, in order.
    pub modules: Vec<(String, PathBuf)>,
    pub sys_path: Vec<PathBuf>,
    pub tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
    /// DataKit (`http://…`, `unix:/path`) or a local output (`-`, `file:/path`).
    pub target: String,
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
}

/// Start the embedded interpreter for `spec`: the `cmd` environment's
/// site-packages, the scripts' folders on `sys.path`.
fn start_python(spec: &WorkerSpec) -> Result<(), String> {
    let env = crate::python_env::resolve(&spec.cmd, python::EMBEDDED_VERSION)
        .map_err(|e| e.to_string())?;
    let setup = python::InterpreterSetup {
        site_dirs: env.site_dirs,
        sys_path: spec.sys_path.clone(),
    };
    python::init(&setup).map_err(|e| e.to_string())
}

/// `pythond check`'s view of an input: load the scripts (nothing runs, nothing
/// is sent) and print one line per class that would run.
pub fn list(spec: WorkerSpec) -> i32 {
    if let Err(e) = start_python(&spec) {
        println!("error: {e}");
        return 2;
    }
    python::set_context(python::Context {
        sink: Arc::new(crate::sink::Collector::new()),
        input_tags: Vec::new(),
        numbers_as_float: false,
    });
    let loaded = python::load(spec.modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    for s in &loaded.scripts {
        let timeout = s
            .timeout
            .or(spec.timeout_secs.map(Duration::from_secs_f64))
            .unwrap_or_else(|| default_timeout(s.interval));
        println!(
            "{}.{}  name={:?}  interval={}s  timeout={}s  ({})",
            s.module,
            s.class,
            &*s.name,
            s.interval.as_secs_f64(),
            timeout.as_secs_f64(),
            s.path.display()
        );
    }
    for (m, p) in &loaded.empty_modules {
        println!(
            "warning: module {m} ({}) defines no DataKitFramework subclass with run()",
            p.display()
        );
    }
    for f in &loaded.failures {
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
    if loaded.failures.is_empty() && !loaded.scripts.is_empty() {
        0
    } else {
        1
    }
}

/// Parse the target notation of [`WorkerSpec::target`].
pub fn parse_target(s: &str) -> Target {
    if s == "-" {
        Target::Stdout
    } else if let Some(p) = s.strip_prefix("file:") {
        Target::File(PathBuf::from(p))
    } else if let Some(p) = s.strip_prefix("unix:") {
        Target::Unix(PathBuf::from(p))
    } else {
        Target::Http(s.trim_end_matches('/').to_owned())
    }
}

/// The writer as the scripts' sink.
pub struct WriterSink {
    pub writer: Writer,
    pub handle: tokio::runtime::Handle,
}

impl Sink for WriterSink {
    fn submit(
        &self,
        route: crate::writer::Route,
        points: crate::sink::Payload,
    ) -> Result<(), crate::sink::SinkError> {
        self.writer
            .submit(route, points)
            .map_err(|e| crate::sink::SinkError::Refused(e.to_string()))
    }

    fn flush(&self) {
        self.writer.flush();
    }

    fn lasterror(&self, target: Option<Target>, input: &str, message: &str) {
        let writer = self.writer.clone();
        let (input, message) = (input.to_owned(), message.to_owned());
        self.handle.spawn(async move {
            if let Err(e) = writer.post_lasterror(target.as_ref(), &input, &message).await {
                tracing::warn!(target: "pythond::writer", input = %input, "POST /v1/lasterror failed: {e}");
            }
        });
    }

    fn post(&self, url: &str, body: String, json: bool) -> Result<String, String> {
        let writer = self.writer.clone();
        let url = url.to_owned();
        self.handle.block_on(async move {
            if json {
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| e.to_string())?;
                writer.post_json(&url, &v).await.map_err(|e| e.to_string())
            } else {
                writer.post_raw(&url, body).await.map_err(|e| e.to_string())
            }
        })
    }
}

/// One plugin instance as a scheduler job.
pub struct ScriptJob {
    pub script: python::Script,
    pub sink: Arc<dyn Sink>,
    pub timeout: Duration,
}

/// The run timeout when neither the class nor the config gives one: a run
/// may miss one tick, never less than 30 s.
pub fn default_timeout(interval: Duration) -> Duration {
    (interval * 2).max(Duration::from_secs(30))
}

impl Job for ScriptJob {
    fn name(&self) -> &str {
        &self.script.name
    }

    fn interval(&self) -> Duration {
        self.script.interval
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn interrupt(&self) {
        python::interrupt(&self.script);
    }

    fn hung(&self) {
        let msg = format!(
            "run() did not return {}s after its timeout was reached and it was interrupted; \
             the script is no longer scheduled until pythond restarts this input",
            self.timeout.as_secs_f64()
        );
        self.sink.lasterror(None, &self.script.name, &msg);
    }

    fn run(&self) -> Result<(), String> {
        let result = python::run(&self.script);
        self.sink.flush();
        if let Err(tb) = &result {
            tracing::error!(
                script = %self.script.name,
                module = %self.script.module,
                "run() raised:\n{tb}"
            );
            self.sink.lasterror(None, &self.script.name, tb);
        }
        result
    }
}

/// Run a worker to the end; returns the process exit code.
pub fn main(spec: WorkerSpec) -> i32 {
    let span = tracing::info_span!("input", name = %spec.input);
    let _g = span.enter();
    if let Err(e) = start_python(&spec) {
        tracing::error!("{e}");
        return 2;
    }
    start_heartbeat();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 2;
        }
    };
    let target = parse_target(&spec.target);
    let spool = match &spec.spool_dir {
        None => None,
        Some(dir) => {
            // Segments small enough that the bound drops a fraction, not all.
            let limits = crate::spool::SpoolLimits {
                max_bytes: spec.spool_max_bytes,
                segment_bytes: (spec.spool_max_bytes / 8).clamp(4096, 8 << 20),
            };
            match crate::spool::Spool::open(dir, limits) {
                Ok(s) => {
                    let st = s.stats();
                    if st.records > 0 {
                        tracing::info!(
                            records = st.records,
                            bytes = st.bytes,
                            "spool holds undelivered data: replaying it"
                        );
                    }
                    Some(s)
                }
                Err(e) => {
                    tracing::error!("{e}; running without a spool");
                    None
                }
            }
        }
    };
    let writer = {
        let _e = rt.enter();
        Writer::spawn_with_spool(
            WriterConfig {
                force_target: spec.force_target.then(|| target.clone()),
                target,
                input: Some(spec.input.clone()),
                ..WriterConfig::default()
            },
            spool,
        )
    };
    let sink: Arc<dyn Sink> = Arc::new(WriterSink {
        writer: writer.clone(),
        handle: rt.handle().clone(),
    });
    python::set_context(python::Context {
        sink: sink.clone(),
        input_tags: spec.tags.clone(),
        numbers_as_float: spec.numbers_as_float,
    });
    let loaded = python::load(spec.modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
    for f in &loaded.failures {
        match &f.class {
            None => {
                tracing::error!(module = %f.module, file = %f.path.display(), "module failed to load:\n{}", f.error)
            }
            Some(c) => {
                tracing::error!(module = %f.module, class = %c, file = %f.path.display(), "class could not be instantiated:\n{}", f.error)
            }
        }
    }
    for (m, p) in &loaded.empty_modules {
        tracing::warn!(module = %m, file = %p.display(), "module defines no DataKitFramework subclass with a run() method");
    }
    if loaded.scripts.is_empty() {
        tracing::error!("no script to run in this input");
        return 3;
    }
    for s in &loaded.scripts {
        tracing::info!(script = %s.name, module = %s.module, class = %s.class, interval_secs = s.interval.as_secs_f64(), "scheduled");
    }
    let jobs: Vec<Scheduled<ScriptJob>> = loaded
        .scripts
        .into_iter()
        .map(|script| {
            let timeout = script
                .timeout
                .or(spec.timeout_secs.map(Duration::from_secs_f64))
                .unwrap_or_else(|| default_timeout(script.interval));
            Scheduled::new(Arc::new(ScriptJob {
                script,
                sink: sink.clone(),
                timeout,
            }))
        })
        .collect();
    let grace = Duration::from_secs_f64(spec.grace_secs.max(0.0));
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        let stats: Vec<_> = jobs
            .iter()
            .map(|j| (j.job.script.name.clone(), j.stats.clone()))
            .collect();
        let t0 = Instant::now();
        let settings = scheduler::Settings {
            hang_grace: Duration::from_secs_f64(spec.hang_grace_secs.max(0.0)),
            shutdown_grace: grace,
            ..scheduler::Settings::default()
        };
        let busy = scheduler::run(jobs, rx, settings).await;
        if !busy.is_empty() {
            tracing::warn!(
                ?busy,
                "runs still going after the grace period; their points so far are flushed"
            );
        }
        let report = writer.shutdown(grace.max(Duration::from_secs(1))).await;
        tracing::info!(
            ?report,
            uptime_secs = t0.elapsed().as_secs_f64(),
            "writer shut down"
        );
        log_summary(&stats);
    });
    0
}

fn log_summary(stats: &[(Arc<str>, Arc<scheduler::JobStats>)]) {
    use std::sync::atomic::Ordering::Relaxed;
    for (name, s) in stats {
        let mut j = s.jitter_samples();
        j.sort_unstable();
        let p = |q: f64| {
            j.get(((j.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        tracing::info!(
            script = %name,
            runs = s.runs.load(Relaxed),
            failures = s.failures.load(Relaxed),
            skipped = s.skipped.load(Relaxed),
            jitter_p50_us = p(0.5),
            jitter_p99_us = p(0.99),
            jitter_max_us = j.last().copied().unwrap_or(0),
            "script summary"
        );
    }
}

/// SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
