//! One input, to the end: its writer (with the disk spool), its interpreter,
//! its scripts on the scheduler. On SIGTERM/SIGINT it stops ticking, lets runs
//! finish within the grace period, flushes, and exits without finalizing
//! Python.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pythond_core::scheduler::{self, JobStats, Scheduled};
use pythond_core::sink::Sink;
use pythond_core::spec::WorkerSpec;
use pythond_core::writer::spool::{Spool, SpoolLimits};
use pythond_core::writer::{Writer, WriterConfig};
use pythond_python::{Context, InterpreterSetup, PythonError};

use crate::job::{default_timeout, ScriptJob};
use crate::sink::WriterSink;

/// Why the interpreter could not be started for an input.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Env(#[from] pythond_python::env::EnvError),
    #[error(transparent)]
    Python(#[from] PythonError),
}

/// Start the embedded interpreter for `spec`: the `cmd` environment's
/// site-packages, the scripts' folders on `sys.path`, points to `ctx`.
pub fn start_python(spec: &WorkerSpec, ctx: Context) -> Result<(), StartError> {
    let env = pythond_python::env::resolve(&spec.cmd, pythond_python::EMBEDDED_VERSION)?;
    let setup = InterpreterSetup {
        site_dirs: env.site_dirs,
        sys_path: spec.sys_path.clone(),
    };
    pythond_python::init(&setup, ctx)?;
    Ok(())
}

fn open_spool(spec: &WorkerSpec) -> Option<Spool> {
    let dir = spec.spool_dir.as_ref()?;
    // Segments small enough that the bound drops a fraction, not all.
    let limits = SpoolLimits {
        max_bytes: spec.spool_max_bytes,
        segment_bytes: (spec.spool_max_bytes / 8).clamp(4096, 8 << 20),
    };
    match Spool::open(dir, limits) {
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

/// Run a worker to the end; returns the process exit code.
pub fn main(spec: WorkerSpec) -> i32 {
    let span = tracing::info_span!("input", name = %spec.input);
    let _g = span.enter();
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
    let spool = open_spool(&spec);
    let writer = {
        let _e = rt.enter();
        Writer::spawn_with_spool(
            WriterConfig {
                force_target: spec.force_target.then(|| spec.target.clone()),
                target: spec.target.clone(),
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
    let ctx = Context {
        sink: sink.clone(),
        input_tags: spec.tags.clone(),
        numbers_as_float: spec.numbers_as_float,
    };
    if let Err(e) = start_python(&spec, ctx) {
        tracing::error!("{e}");
        return 2;
    }
    crate::heartbeat::start();
    let loaded = pythond_python::load(spec.modules.iter().map(|(n, p)| (n.as_str(), p.as_path())));
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

fn log_summary(stats: &[(Arc<str>, Arc<JobStats>)]) {
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
