//! `pythond run`: one worker process per `[[inputs.pythond]]` block.
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
//! (`exit::CONFIG`: its `cmd` cannot work, restarting would not help); and on
//! SIGTERM/SIGINT stops them all (SIGTERM, then SIGKILL 2 s after the grace
//! period) and reports how each ended.

mod child;
mod crashes;

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use pythond_core::control::module_of;
use pythond_core::spec::{exit, WorkerSpec};

use child::Ended;

/// How to (re)start one input's worker.
pub struct Launch {
    pub input: String,
    /// Extra environment from the block's `envs`, already expanded.
    pub envs: Vec<(String, String)>,
    /// Builds the worker's spec; called before every (re)start so that
    /// discovery sees the scripts as they are now.
    pub prepare: Box<dyn Fn() -> anyhow::Result<WorkerSpec> + Send + Sync>,
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

/// How one input's last worker ended: at shutdown, or on a configuration
/// error.
#[derive(Debug)]
pub struct Outcome {
    pub input: String,
    pub status: Option<ExitStatus>,
    /// It did not stop within the grace period.
    pub killed: bool,
    /// The input was stopped for this configuration error (not restarted).
    pub config_error: Option<String>,
}

impl Outcome {
    /// Stopped in time with nothing lost (or never started).
    pub fn clean(&self) -> bool {
        !self.killed
            && self
                .status
                .is_none_or(|s| s.success() || s.code() != Some(exit::DATA_LOST))
    }
}

/// Supervise every launch until `shutdown`; returns when all workers are
/// gone, with how each input's worker ended.
pub async fn supervise(
    launches: Vec<Launch>,
    settings: Settings,
    lines: LineSink,
    shutdown: watch::Receiver<bool>,
) -> Vec<Outcome> {
    let tasks: Vec<_> = launches
        .into_iter()
        .map(|l| tokio::spawn(keep_running(l, settings, lines.clone(), shutdown.clone())))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(o) = t.await {
            out.push(o);
        }
    }
    out
}

fn describe(status: &Option<ExitStatus>) -> String {
    status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "unknown status".into())
}

async fn keep_running(
    launch: Launch,
    settings: Settings,
    lines: LineSink,
    mut shutdown: watch::Receiver<bool>,
) -> Outcome {
    let input = launch.input.clone();
    let mut outcome = Outcome {
        input: input.clone(),
        status: None,
        killed: false,
        config_error: None,
    };
    let mut delay = settings.restart_initial;
    let mut crashes = crashes::Crashes::default();
    loop {
        if *shutdown.borrow() {
            return outcome;
        }
        let started = Instant::now();
        let spec = (launch.prepare)().map(|mut s| {
            s.quarantined = crashes.active();
            s
        });
        let result = match spec {
            Err(e) => Err(e),
            Ok(spec) => child::start(&launch, &spec, &settings, &lines).map(|r| (spec, r)),
        };
        let (spec, mut running) = match result {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(input = %input, "cannot start worker: {e:#}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return outcome,
                }
                delay = (delay * 2).min(settings.restart_max);
                continue;
            }
        };
        // Stop on shutdown, or restart when a quarantine ends.
        let mut sd = shutdown.clone();
        let retry_due = async {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if crashes.any_expired() {
                    return;
                }
            }
        };
        let stop = async {
            tokio::select! {
                _ = sd.wait_for(|s| *s) => {}
                _ = retry_due => {}
            }
        };
        let ended = child::wait(&mut running, &input, &settings, stop).await;
        let child::Last {
            running: in_flight,
            config_error,
        } = child::finish(running).await;
        if started.elapsed() >= settings.healthy_after {
            delay = settings.restart_initial;
            crashes.healthy();
        }
        let (status, how) = match ended {
            Ended::Stopped { status, killed } => {
                if *shutdown.borrow() {
                    outcome.status = status;
                    outcome.killed = killed;
                    return outcome;
                }
                tracing::info!(input = %input, "worker restarted to try a quarantined script again");
                continue;
            }
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
            outcome.status = status;
            outcome.config_error = Some(reason);
            return outcome;
        }
        let start_failure = status
            .and_then(|s| s.code())
            .is_some_and(|c| c == exit::START_FAILED || c == exit::NO_SCRIPTS);
        if !start_failure {
            let file_of = |id: &str| {
                let m = module_of(id)?;
                spec.modules
                    .iter()
                    .find(|(n, _)| n == m)
                    .map(|(_, p)| p.clone())
            };
            for q in crashes.record(&in_flight, &how, file_of) {
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
        }
        delay = (delay * 2).min(settings.restart_max);
    }
}
