//! `pythond run`: one worker process per `[[inputs.pythond]]` block.
//!
//! The process model (workers, control channel, restarts, quarantine):
//! `docs/design.md`, "Processes".
//!
//! Each worker is a `pythond-worker` process (installed beside `pythond`)
//! with its block's `envs` in its environment, so they are set before its
//! interpreter starts, and with its own CPython, so a crash, a hang or a leak
//! in one input's scripts stays in that input ([`child`]). The supervisor
//! forwards what workers write (their logs, and anything C code prints to the
//! process's stdout/stderr) line by line, tagged with the input name;
//! restarts a worker that exits, with a backoff that grows while it keeps
//! dying and resets once it has stayed up; keeps a script that takes its
//! worker down again and again out of it ([`crashes`]); stops, without
//! restarting it, an input whose worker exits with a configuration error
//! (`exit::CONFIG`: its `cmd` cannot work, restarting would not help);
//! restarts a worker past its `max_rss` gracefully; starts, restarts and
//! stops inputs on command (hot reload); keeps each input's state for the
//! status endpoint ([`state`]); and on SIGTERM/SIGINT stops them all
//! (SIGTERM, then SIGKILL 2 s after the grace period) and reports how each
//! input ended over all its workers' lives ([`Outcome`]: points lost,
//! workers that died uncleanly).

mod child;
pub mod crashes;
mod outcome;
pub mod rss;
pub mod state;

use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use pythond_core::control::module_of;
use pythond_core::spec::{exit, WorkerSpec};

use child::Ended;
pub use outcome::Outcome;
use state::{error_now, InputState, Registry};

/// How to (re)start one input's worker.
pub struct Launch {
    pub input: String,
    /// Where the input is configured (`file:line`, or the launch file).
    pub source: String,
    /// Extra environment from the block's `envs`, already expanded.
    pub envs: Vec<(String, String)>,
    /// Builds the worker's spec; called before every (re)start so that
    /// discovery sees the scripts as they are now.
    pub prepare: Box<dyn Fn() -> anyhow::Result<WorkerSpec> + Send + Sync>,
    /// Restart the worker gracefully past this resident size.
    pub max_rss: Option<u64>,
    /// The block's configuration, for reload: another value means the block
    /// changed.
    pub fingerprint: String,
}

/// How workers are run and restarted.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// First restart delay; doubles while the worker keeps dying.
    pub restart_initial: Duration,
    pub restart_max: Duration,
    /// A worker up this long is healthy: the backoff and crash count reset.
    pub healthy_after: Duration,
    /// A worker silent on its control pipe this long is stuck (its
    /// interpreter cannot be entered): it is killed and restarted.
    pub stall_timeout: Duration,
    /// The workers' shutdown grace; they are killed 2 s after it.
    pub grace: Duration,
    /// Workers' stdout carries points (`--output -`): copied to ours, whole.
    pub stdout_is_points: bool,
    /// How often a worker's resident memory is read.
    pub rss_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            restart_initial: Duration::from_secs(1),
            restart_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(5),
            stdout_is_points: false,
            rss_every: Duration::from_secs(1),
        }
    }
}

/// Which of a worker's pipes a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Anything C code prints to the process's stdout.
    Stdout,
    /// The worker's log.
    Stderr,
}

/// A function receiving each line workers print, with the input name. It
/// must not block: the supervisor runs on one thread.
pub type LineSink = Arc<dyn Fn(&str, Stream, &str) + Send + Sync>;

/// What an input's task is told.
pub enum Command {
    /// Restart the worker, with this launch from now on (`None`: the same).
    Restart(Option<Launch>),
    /// Stop the worker and end (the block is gone).
    Stop,
}

/// Why a running worker is stopped.
enum StopWhy {
    Shutdown,
    Command(Command),
    QuarantineOver,
    Rss(u64),
}

struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    task: JoinHandle<Outcome>,
    fingerprint: String,
}

/// The inputs under supervision.
pub struct Supervisor {
    settings: Settings,
    lines: LineSink,
    registry: Registry,
    shutdown: watch::Receiver<bool>,
    inputs: HashMap<String, Handle>,
    done: Vec<Outcome>,
    /// Where inputs keep state across restarts of pythond (quarantines).
    data_dir: Option<std::path::PathBuf>,
}

impl Supervisor {
    pub fn new(
        settings: Settings,
        lines: LineSink,
        registry: Registry,
        shutdown: watch::Receiver<bool>,
    ) -> Supervisor {
        Supervisor {
            settings,
            lines,
            registry,
            shutdown,
            inputs: HashMap::new(),
            done: Vec::new(),
            data_dir: None,
        }
    }

    /// Keep each input's quarantines in `dir` (see [`crashes`]), so they
    /// outlive pythond and `pythond check` can list them.
    pub fn keep_state_in(&mut self, dir: Option<std::path::PathBuf>) {
        self.data_dir = dir;
    }

    /// Start supervising a new input.
    pub fn start(&mut self, launch: Launch) {
        let name = launch.input.clone();
        let fingerprint = launch.fingerprint.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = self.registry.input(&name);
        let quarantine_file = self
            .data_dir
            .as_deref()
            .map(|d| crashes::file_for(d, &name));
        let task = tokio::spawn(keep_running(
            launch,
            self.settings,
            self.lines.clone(),
            self.shutdown.clone(),
            rx,
            state,
            quarantine_file,
        ));
        self.inputs.insert(
            name,
            Handle {
                tx,
                task,
                fingerprint,
            },
        );
    }

    /// Restart `name`'s worker (with a new launch when its block changed).
    pub fn restart(&mut self, name: &str, launch: Option<Launch>) {
        if let Some(h) = self.inputs.get_mut(name) {
            if let Some(l) = &launch {
                h.fingerprint = l.fingerprint.clone();
            }
            let _ = h.tx.send(Command::Restart(launch));
        }
    }

    /// Stop `name` for good (its block is gone).
    pub async fn stop(&mut self, name: &str) {
        if let Some(h) = self.inputs.remove(name) {
            let _ = h.tx.send(Command::Stop);
            if let Ok(o) = h.task.await {
                self.done.push(o);
            }
            self.registry.remove(name);
        }
    }

    /// The inputs supervised, with their fingerprints.
    pub fn inputs(&self) -> Vec<(String, String)> {
        self.inputs
            .iter()
            .map(|(n, h)| (n.clone(), h.fingerprint.clone()))
            .collect()
    }

    /// Whether every input's task has ended (stopped on a configuration
    /// error): nothing is left to run.
    pub fn all_ended(&self) -> bool {
        self.inputs.values().all(|h| h.task.is_finished())
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Wait for every input's task (after shutdown, or once all ended).
    pub async fn finish(mut self) -> Vec<Outcome> {
        for (_, h) in self.inputs.drain() {
            if let Ok(o) = h.task.await {
                self.done.push(o);
            }
        }
        self.done
    }
}

fn describe(status: &Option<ExitStatus>) -> String {
    status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown status".into())
}

fn lock(s: &Arc<Mutex<InputState>>) -> std::sync::MutexGuard<'_, InputState> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resolves when the worker `pid` passes `max` resident bytes (never when
/// there is no limit), keeping the state's RSS up to date meanwhile.
async fn rss_watch(
    pid: Option<u32>,
    max: Option<u64>,
    every: Duration,
    st: Arc<Mutex<InputState>>,
) -> u64 {
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(every).await;
        let rss = rss::of(pid);
        lock(&st).rss_bytes = rss;
        if let (Some(rss), Some(max)) = (rss, max) {
            if rss > max {
                return rss;
            }
        }
    }
}

/// Run `f` on the blocking pool: the supervisor's one runtime thread never
/// waits on the file system (discovery, digests, quarantine files).
pub(crate) async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn keep_running(
    launch: Launch,
    settings: Settings,
    lines: LineSink,
    mut shutdown: watch::Receiver<bool>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    st: Arc<Mutex<InputState>>,
    quarantine_file: Option<std::path::PathBuf>,
) -> Outcome {
    let mut launch = Arc::new(launch);
    let input = launch.input.clone();
    let mut outcome = Outcome {
        input: input.clone(),
        ..Outcome::default()
    };
    let mut delay = settings.restart_initial;
    let crashes = Arc::new(Mutex::new(
        off_runtime(move || crashes::Crashes::kept_in(quarantine_file)).await,
    ));
    {
        let mut s = lock(&st);
        s.source = launch.source.clone();
        s.max_rss_bytes = launch.max_rss;
    }
    loop {
        if *shutdown.borrow() {
            return outcome;
        }
        let started = Instant::now();
        let (l, c) = (launch.clone(), crashes.clone());
        let (spec, digest, quarantined) = off_runtime(move || {
            let active = lock_crashes(&c).active(SystemTime::now());
            let spec = (l.prepare)().map(|mut s| {
                s.quarantined = active.iter().map(|e| e.quarantined()).collect();
                s
            });
            let digest = spec.as_ref().map(WorkerSpec::scripts_digest).unwrap_or(0);
            (spec, digest, active)
        })
        .await;
        let result = match spec {
            Err(e) => Err(e),
            Ok(spec) => child::start(&launch, &spec, &settings, &lines, &st).map(|r| (spec, r)),
        };
        let (spec, mut running) = match result {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(input = %input, "cannot start worker: {e:#}");
                lock(&st).last_exit = Some(error_now(format!("cannot start: {e:#}")));
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return outcome,
                    c = commands.recv() => match c {
                        Some(Command::Restart(l)) => { if let Some(l) = l { launch = Arc::new(l); } }
                        Some(Command::Stop) | None => return outcome,
                    },
                }
                delay = (delay * 2).min(settings.restart_max);
                continue;
            }
        };
        {
            let mut s = lock(&st);
            s.pid = running.pid();
            s.started = Some(SystemTime::now());
            s.starts += 1;
            // The last report (absorbed, counters zeroed) stays until this
            // worker's first: the scripts do not vanish from the status.
            s.script_dirs = spec.sys_path.clone();
            s.scripts_digest = digest;
            s.quarantined = quarantined
                .iter()
                .map(|e| {
                    let file = module_of(&e.id)
                        .and_then(|m| spec.modules.iter().find(|(n, _)| n == m))
                        .map(|(_, p)| p.clone())
                        .unwrap_or_default();
                    (e.quarantined(), file, e.since())
                })
                .collect();
        }
        // Stop on shutdown, a command, the memory limit, or when a
        // quarantine ends.
        let mut sd = shutdown.clone();
        let retry_due = async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let c = crashes.clone();
                if off_runtime(move || lock_crashes(&c).any_expired(SystemTime::now())).await {
                    return;
                }
            }
        };
        let rss = rss_watch(
            running.pid(),
            launch.max_rss,
            settings.rss_every,
            st.clone(),
        );
        let stop = async {
            tokio::select! {
                _ = sd.wait_for(|s| *s) => StopWhy::Shutdown,
                c = commands.recv() => StopWhy::Command(c.unwrap_or(Command::Stop)),
                _ = retry_due => StopWhy::QuarantineOver,
                r = rss => StopWhy::Rss(r),
            }
        };
        let (ended, why) = child::wait(&mut running, &input, &settings, stop).await;
        let child::Last {
            running: in_flight,
            config_error,
        } = child::finish(running).await;
        {
            let mut s = lock(&st);
            s.pid = None;
            let (status, stopped, killed) = match &ended {
                Ended::Exited(x) => (x, false, false),
                Ended::Stalled(x) => (x, false, true),
                Ended::Stopped { status: x, killed } => (x, true, *killed),
            };
            let lost = s.report.as_ref().map_or(0, |r| r.writer.lost());
            s.absorb_report();
            outcome.add_life(*status, lost, stopped, killed);
            s.last_exit = Some(error_now(match (&ended, &why) {
                (Ended::Stalled(_), _) => "killed: no heartbeat (stalled)".to_owned(),
                (_, Some(StopWhy::Rss(r))) => {
                    format!("restarted: resident memory {r} bytes passed max_rss")
                }
                (_, Some(StopWhy::Command(_))) => "restarted: reload".to_owned(),
                (_, Some(StopWhy::QuarantineOver)) => "restarted: a quarantine ended".to_owned(),
                _ => describe(status),
            }));
        }
        if started.elapsed() >= settings.healthy_after {
            delay = settings.restart_initial;
            lock_crashes(&crashes).healthy();
        }
        let (status, how) = match ended {
            Ended::Stopped { status, killed } => match why {
                Some(StopWhy::Shutdown) | None => {
                    outcome.status = status;
                    outcome.killed = killed;
                    return outcome;
                }
                Some(StopWhy::Command(Command::Stop)) => {
                    tracing::info!(input = %input, "input stopped: its block was removed");
                    outcome.status = status;
                    outcome.killed = killed;
                    return outcome;
                }
                Some(StopWhy::Command(Command::Restart(l))) => {
                    if let Some(l) = l {
                        launch = Arc::new(l);
                        let mut s = lock(&st);
                        s.source = launch.source.clone();
                        s.max_rss_bytes = launch.max_rss;
                    }
                    tracing::info!(input = %input, "worker restarted: reload");
                    continue;
                }
                Some(StopWhy::QuarantineOver) => {
                    tracing::info!(input = %input, "worker restarted to try a quarantined script again");
                    continue;
                }
                Some(StopWhy::Rss(r)) => {
                    lock(&st).rss_restarts += 1;
                    tracing::warn!(
                        input = %input,
                        rss_bytes = r,
                        max_rss_bytes = launch.max_rss,
                        "worker passed max_rss: restarted (its data was spooled)"
                    );
                    continue;
                }
            },
            Ended::Exited(s) => (s, describe(&s)),
            Ended::Stalled(s) => (s, "no heartbeat: killed".to_owned()),
        };
        if *shutdown.borrow() {
            outcome.status = status;
            return outcome;
        }
        if status.and_then(|s| s.code()) == Some(exit::CONFIG) {
            let reason = config_error
                .unwrap_or_else(|| "the worker exited with a configuration error".to_owned());
            tracing::error!(
                input = %input,
                "configuration error: {reason}; this input is stopped (restarting would not help): fix the configuration and restart pythond"
            );
            lock(&st).last_exit = Some(error_now(format!("configuration error: {reason}")));
            outcome.status = status;
            outcome.config_error = Some(reason);
            return outcome;
        }
        let start_failure = status
            .and_then(|s| s.code())
            .is_some_and(|c| c == exit::START_FAILED || c == exit::NO_SCRIPTS);
        if !start_failure {
            let modules = spec.modules.clone();
            let file_of = move |id: &str| {
                let m = module_of(id)?;
                modules.iter().find(|(n, _)| n == m).map(|(_, p)| p.clone())
            };
            let (c, running, how2) = (crashes.clone(), in_flight.clone(), how.clone());
            let newly = off_runtime(move || {
                lock_crashes(&c).record(&running, &how2, file_of, SystemTime::now())
            })
            .await;
            for q in newly {
                tracing::error!(input = %input, id = %q.id, "quarantined: {}", q.reason);
            }
        }
        tracing::error!(
            input = %input,
            status = %how,
            running = ?in_flight,
            restart_in_secs = delay.as_secs_f64(),
            "worker exited; restarting"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return outcome,
            c = commands.recv() => match c {
                Some(Command::Restart(l)) => { if let Some(l) = l { launch = Arc::new(l); } }
                Some(Command::Stop) | None => return outcome,
            },
        }
        delay = (delay * 2).min(settings.restart_max);
    }
}

fn lock_crashes(c: &Mutex<crashes::Crashes>) -> std::sync::MutexGuard<'_, crashes::Crashes> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}
