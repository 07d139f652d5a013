//! One input, to the end: its writer (with the disk spool), its interpreter,
//! its scripts on the scheduler. On SIGTERM/SIGINT it has one budget, the
//! grace period: it stops ticking, lets runs finish within most of it, then
//! the writer delivers what it can and spools the rest before the grace is
//! over (at least 1 s after the signal, even with a grace of 0; the
//! supervisor kills a worker 2 s after the grace). It exits without
//! finalizing Python, with [`exit::DATA_LOST`] if points were dropped,
//! including what was still only in memory at the writer's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pythond_core::control::{import_id, run_id};
use pythond_core::scheduler::{self, JobStats, RunTimeout, Scheduled};
use pythond_core::sink::Sink;
use pythond_core::spec::{exit, WorkerSpec};
use pythond_core::writer::spool::{Spool, SpoolLimits};
use pythond_core::writer::{Writer, WriterConfig};
use pythond_python::{Context, FailureKind, InterpreterSetup, PythonError};

use crate::job::ScriptJob;
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
/// site-packages and `sys.executable` (when `cmd` is empty, launch mode's
/// default: the interpreter's own), the scripts' folders on `sys.path`,
/// points to `ctx`.
pub fn start_python(spec: &WorkerSpec, ctx: Context) -> Result<(), StartError> {
    let cmd = if spec.cmd.is_empty() {
        None
    } else {
        // The answer of `cmd` is cached beside the input's spool (see
        // `pythond_python::env`): when the check made beside this start finds
        // it changed, this worker ends as a failed start and is started again.
        let cache = spec.spool_dir.as_ref().map(|d| d.join("python-env.json"));
        Some(pythond_python::env::resolve_cached(
            &spec.cmd,
            pythond_python::EMBEDDED_VERSION,
            cache.as_deref(),
            |e| {
                tracing::error!("{e}");
                std::process::exit(exit::START_FAILED);
            },
        )?)
    };
    let setup = InterpreterSetup {
        cmd,
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
        // A previous worker of this input may still be spooling on its way out.
        ..SpoolLimits::default()
    };
    match pythond_core::writer::open_spool(dir, limits) {
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

/// Import the modules one by one, each inside a control marker, leaving out
/// what the supervisor quarantined (reported to the log and lasterror).
/// `on_import` is told of each module before it is imported.
pub(crate) fn load(
    spec: &WorkerSpec,
    sink: &dyn Sink,
    mut on_import: impl FnMut(&str, &std::path::Path),
) -> pythond_python::Loaded {
    let skipped = |id: &str| spec.quarantined.iter().find(|q| q.id == id);
    for q in &spec.quarantined {
        let msg = format!("{} is not run: {}", q.id, q.reason);
        tracing::error!("{msg}");
        sink.lasterror(None, &spec.input, &msg);
    }
    let mut all = pythond_python::Loaded::default();
    for (name, path) in &spec.modules {
        let id = import_id(name);
        if skipped(&id).is_some() {
            continue;
        }
        on_import(name, path);
        let marker = crate::control::Marker::new(id);
        let mut one = pythond_python::load([(name.as_str(), path.as_path())]);
        drop(marker);
        one.scripts
            .retain(|s| skipped(&run_id(&s.module, &s.class)).is_none());
        all.scripts.append(&mut one.scripts);
        all.failures.append(&mut one.failures);
        all.empty_modules.append(&mut one.empty_modules);
        all.notes.append(&mut one.notes);
    }
    all
}

/// Log where the `dirs` entries resolved and what could not be loaded.
fn report_load_problems(spec: &WorkerSpec, loaded: &pythond_python::Loaded) {
    for r in &spec.resolved {
        tracing::info!(entry = %r.entry, path = %r.path.display(), "dirs entry resolved");
    }
    for e in &spec.discovery_errors {
        tracing::error!("{e}");
    }
    for f in &loaded.failures {
        match (f.kind, &f.class) {
            (FailureKind::Import, _) => {
                tracing::error!(module = %f.module, file = %f.path.display(), "module failed to load:\n{}", f.error)
            }
            (FailureKind::Instantiate, c) => {
                tracing::error!(module = %f.module, class = c.as_deref().unwrap_or("?"), file = %f.path.display(), "class could not be instantiated:\n{}", f.error)
            }
            (FailureKind::NameTaken | FailureKind::Attribute, _) => tracing::error!("{}", f.error),
        }
    }
    for n in &loaded.notes {
        tracing::info!("{n}");
    }
    for (m, p) in &loaded.empty_modules {
        tracing::info!(module = %m, file = %p.display(), "module defines no DataKitFramework subclass with a run() method (a helper or base-class module): nothing to schedule in it");
    }
}

/// Run a worker to the end; returns the process exit code.
pub fn main(spec: WorkerSpec) -> i32 {
    let span = tracing::info_span!("input", name = %spec.input);
    let _g = span.enter();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        // Runs are on the scheduler's own threads, which never end; the
        // blocking threads (interrupts, gzip) are kept as well: a thread
        // that ended would hand any process it had started to the main
        // thread, where the reaper would take it for an orphan (see
        // `descendants`).
        .thread_keep_alive(Duration::from_secs(100 * 365 * 86_400))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return exit::START_FAILED;
        }
    };
    let spool = open_spool(&spec);
    let writer = {
        let _e = rt.enter();
        Writer::spawn_with_spool(writer_config(&spec), spool)
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
    match start_python(&spec, ctx) {
        Ok(()) => {}
        Err(StartError::Env(e)) => {
            // `cmd` cannot work: restarting would not help.
            tracing::error!("{e}");
            crate::control::config_error(&e.to_string());
            return exit::CONFIG;
        }
        Err(e) => {
            tracing::error!("{e}");
            return exit::START_FAILED;
        }
    }
    crate::control::start();
    let loaded = load(&spec, &*sink, |_, _| {});
    crate::descendants::Reaper::start();
    report_load_problems(&spec, &loaded);
    let not_run: Vec<_> = loaded
        .failures
        .iter()
        .map(|f| {
            crate::report::not_run(
                &f.module,
                f.class.as_deref(),
                &f.path,
                pythond_core::status::ScriptState::NotLoaded,
                &f.error,
            )
        })
        .collect();
    if loaded.scripts.is_empty() {
        tracing::error!("no script to run in this input");
        crate::report::Reporter {
            scripts: Vec::new(),
            not_run,
            writer: writer.clone(),
        }
        .start()
        .send_now();
        return exit::NO_SCRIPTS;
    }
    for s in &loaded.scripts {
        tracing::info!(script = %s.name, module = %s.module, class = %s.class, interval_secs = s.interval.as_secs_f64(), "scheduled");
    }
    let block_timeout = spec.block_timeout();
    let jobs: Vec<Scheduled<ScriptJob>> = loaded
        .scripts
        .into_iter()
        .map(|script| {
            let timeout = RunTimeout::resolve(script.timeout, block_timeout, script.interval);
            Scheduled::new(Arc::new(ScriptJob {
                script,
                sink: sink.clone(),
                timeout,
            }))
        })
        .collect();
    // Starting the interpreter and importing the scripts freed more than it
    // kept (compiled code, the spec, temporary buffers): give the free
    // pages back now, before the worker settles into its runs.
    // SAFETY: plain libc call.
    unsafe { libc::malloc_trim(0) };
    let reporter = crate::report::Reporter {
        scripts: jobs
            .iter()
            .map(|j| {
                let s = &j.job.script;
                crate::report::ReportedScript {
                    module: s.module.clone(),
                    class: s.class.clone(),
                    name: s.name.to_string(),
                    file: s.path.display().to_string(),
                    interval: s.interval,
                    timeout: j.job.timeout.limit,
                    stats: j.stats.clone(),
                    points: {
                        let c = s.counters();
                        Arc::new(move || c.by_name())
                    },
                }
            })
            .collect(),
        not_run,
        writer: writer.clone(),
    }
    .start();
    let grace = Duration::from_secs_f64(spec.grace_secs.max(0.0));
    let code = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop_at = Arc::new(std::sync::OnceLock::new());
        let stop_at2 = stop_at.clone();
        // Handled from here on, before the first run(): a SIGTERM before
        // this kills a worker that holds no run's points (the supervisor
        // counts that death as clean).
        let signal = wait_for_signal();
        tokio::spawn(async move {
            signal.await;
            let _ = stop_at2.set(tokio::time::Instant::now());
            let _ = tx.send(true);
        });
        // The code that started the interpreter and imported the scripts
        // (ours and libpython's): paged out once the first runs are done,
        // not before them, so that the first points do not wait for it to
        // come back; what the runs use comes back as they start.
        pythond_core::pageout::soon();
        let stats: Vec<_> = jobs
            .iter()
            .map(|j| (j.job.script.name.clone(), j.stats.clone()))
            .collect();
        let t0 = Instant::now();
        let settings = scheduler::Settings {
            hang_grace: Duration::from_secs_f64(spec.hang_grace_secs.max(0.0)),
            shutdown_grace: runs_share(grace),
            ..scheduler::Settings::default()
        };
        let busy = scheduler::run(jobs, rx, settings).await;
        if !busy.is_empty() {
            tracing::warn!(
                ?busy,
                "runs still going after the grace period; their points so far are flushed"
            );
        }
        let stopped = *stop_at.get().unwrap_or(&tokio::time::Instant::now());
        let report = writer.shutdown(stopped + writer_deadline(grace)).await;
        tracing::info!(
            ?report,
            uptime_secs = t0.elapsed().as_secs_f64(),
            "writer shut down"
        );
        log_summary(&stats);
        reporter.send_now();
        if report.lost() > 0 {
            exit::DATA_LOST
        } else {
            exit::OK
        }
    });
    // An interrupt or a script helper stuck in C never returns: dropping the
    // runtime would wait for its blocking thread forever.
    rt.shutdown_background();
    code
}

/// Launch mode's linger: what a batch may wait for before it is sent.
/// Measured (BENCHMARKS.md, "SIGKILL in launch mode"): with the default
/// 200 ms, a kill of the worker while a long run fed 1 000 points/s lost up
/// to 170 points; a run's points are sent when it ends whatever the linger.
pub const SHORT_LINGER: Duration = Duration::from_millis(50);

/// The writer of `spec`'s input.
pub fn writer_config(spec: &WorkerSpec) -> WriterConfig {
    let mut c = WriterConfig {
        force_target: spec.force_target.then(|| spec.target.clone()),
        target: spec.target.clone(),
        input: Some(spec.input.clone()),
        ..WriterConfig::default()
    };
    if spec.short_linger {
        c.batch_max_delay = SHORT_LINGER;
        // A refused batch goes to disk at once rather than waiting in memory
        // for its second attempt.
        c.spool_after_attempts = 1;
    }
    c
}

/// The writer always keeps this long to spool what is in memory, even with
/// `--grace-secs 0`: within the 2 s the supervisor waits past the grace
/// before it kills a worker.
const WRITER_MIN: Duration = Duration::from_secs(1);

/// When the writer's shutdown must be over, counted from the signal: the
/// end of the grace, or [`WRITER_MIN`] when the grace is shorter.
fn writer_deadline(grace: Duration) -> Duration {
    grace.max(WRITER_MIN)
}

/// Of the shutdown grace, what runs in progress may take; the rest is the
/// writer's, to deliver or spool what they produced.
fn runs_share(grace: Duration) -> Duration {
    let writer = grace
        .mul_f64(0.4)
        .clamp(Duration::from_millis(500), Duration::from_secs(3));
    grace.saturating_sub(writer)
}

fn log_summary(stats: &[(Arc<str>, Arc<JobStats>)]) {
    use std::sync::atomic::Ordering::Relaxed;
    for (name, s) in stats {
        let (p50, p99, max) = s.start_delay_summary_us();
        tracing::info!(
            script = %name,
            runs = s.runs.load(Relaxed),
            failures = s.failures.load(Relaxed),
            skipped = s.skipped.load(Relaxed),
            jitter_p50_us = p50,
            jitter_p99_us = p99,
            jitter_max_us = max,
            "script summary"
        );
    }
}

/// SIGTERM or SIGINT: both are handled from the call on (not from the
/// first poll of the future).
pub fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
