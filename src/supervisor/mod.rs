//! `pythond run`: one worker process per `[[inputs.pythond]]` block.
//!
//! Each worker is a `pythond-worker` process (installed beside `pythond`) with
//! its block's `envs` in its environment, so they are set before its
//! interpreter starts, and with its own CPython, so a crash, a hang or a leak in one input's scripts stays
//! in that input. The supervisor forwards what workers write (their logs, and
//! anything C code prints to the process's stdout/stderr) line by line, tagged
//! with the input name; restarts a worker that exits with a backoff that grows
//! while it keeps dying and resets once it has stayed up; and on SIGTERM/SIGINT
//! stops them all (SIGTERM, then SIGKILL after the grace period) and exits 0.

mod child;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use pythond_core::spec::WorkerSpec;

/// How to (re)start one input's worker.
pub struct Launch {
    pub input: String,
    /// Extra environment from the block's `envs`, already expanded.
    pub envs: Vec<(String, String)>,
    /// Builds the worker's spec; called before every (re)start so that
    /// discovery sees the scripts as they are now.
    pub prepare: Box<dyn Fn() -> anyhow::Result<WorkerSpec> + Send + Sync>,
}

/// Restart backoff of a worker.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A worker up this long is considered healthy: the backoff resets.
    pub healthy_after: Duration,
    /// A worker silent on its heartbeat pipe this long is stuck (its
    /// interpreter cannot be entered): it is killed and restarted.
    pub stall_timeout: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(30),
        }
    }
}

/// Which of a worker's pipes a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Points written with `--output -`, and anything C code prints.
    Stdout,
    /// The worker's log.
    Stderr,
}

/// A function receiving each line workers print, with the input name.
pub type LineSink = Arc<dyn Fn(&str, Stream, &str) + Send + Sync>;

/// Supervise every launch until `shutdown`; returns when all workers are gone.
pub async fn supervise(
    launches: Vec<Launch>,
    backoff: Backoff,
    grace: Duration,
    lines: LineSink,
    shutdown: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for l in launches {
        tasks.push(tokio::spawn(keep_running(
            l,
            backoff,
            grace,
            lines.clone(),
            shutdown.clone(),
        )));
    }
    for t in tasks {
        let _ = t.await;
    }
}

async fn keep_running(
    launch: Launch,
    backoff: Backoff,
    grace: Duration,
    lines: LineSink,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = backoff.initial;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let exit = match child::start(&launch, &lines) {
            Ok((child, beats)) => {
                child::wait_or_stop(
                    child,
                    beats,
                    &launch.input,
                    grace,
                    backoff.stall_timeout,
                    &mut shutdown,
                )
                .await
            }
            Err(e) => {
                tracing::error!(input = %launch.input, "cannot start worker: {e:#}");
                None
            }
        };
        if *shutdown.borrow() {
            return;
        }
        if started.elapsed() >= backoff.healthy_after {
            delay = backoff.initial;
        }
        tracing::error!(
            input = %launch.input,
            status = %exit.map(|s| s.to_string()).unwrap_or_else(|| "not started".into()),
            restart_in_secs = delay.as_secs_f64(),
            "worker exited; restarting"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(backoff.max);
    }
}
