//! `pythond run`: one worker process per `[[inputs.pythond]]` block.
//!
//! Each worker is this same binary (`pythond worker`) with its block's `envs`
//! in its environment, so they are set before its interpreter starts, and with
//! its own CPython, so a crash, a hang or a leak in one input's scripts stays
//! in that input. The supervisor forwards what workers write (their logs, and
//! anything C code prints to the process's stdout/stderr) line by line, tagged
//! with the input name; restarts a worker that exits with a backoff that grows
//! while it keeps dying and resets once it has stayed up; and on SIGTERM/SIGINT
//! stops them all (SIGTERM, then SIGKILL after the grace period) and exits 0.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::worker::{WorkerSpec, SPEC_ENV};

/// How to (re)start one input's worker.
pub struct Launch {
    pub input: String,
    /// Extra environment from the block's `envs`, already expanded.
    pub envs: Vec<(String, String)>,
    /// Builds the worker's spec; called before every (re)start so that
    /// discovery sees the scripts as they are now.
    pub prepare: Box<dyn Fn() -> Result<WorkerSpec, String> + Send + Sync>,
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
        let exit = match start(&launch, &lines) {
            Ok((child, beats)) => {
                wait_or_stop(
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
                tracing::error!(input = %launch.input, "cannot start worker: {e}");
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

/// The fd number heartbeats arrive on in the worker.
const HEARTBEAT_FD: i32 = 3;

fn start(launch: &Launch, lines: &LineSink) -> Result<(Child, tokio::fs::File), String> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let spec = (launch.prepare)()?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both fds are fresh and owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut cmd = Command::new(exe);
    let child_fd = std::os::fd::AsRawFd::as_raw_fd(&write_end);
    // SAFETY: only async-signal-safe dup2 between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, HEARTBEAT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // If the supervisor dies (even by kill -9), the worker gets
            // SIGTERM: it spools what it holds and exits instead of running
            // on as an orphan nobody supervises.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.arg("worker")
        .env(crate::worker::HEARTBEAT_FD_ENV, HEARTBEAT_FD.to_string())
        .env(
            SPEC_ENV,
            serde_json::to_string(&spec).map_err(|e| e.to_string())?,
        )
        .envs(launch.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    drop(write_end);
    let beats = tokio::fs::File::from_std(std::fs::File::from(read_end));
    tracing::info!(input = %launch.input, pid = child.id(), "worker started");
    let pipes = [
        (
            Stream::Stdout,
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
        (
            Stream::Stderr,
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ),
    ];
    for (stream, pipe) in pipes {
        let Some(pipe) = pipe else { continue };
        let lines = lines.clone();
        let input = launch.input.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = r.next_line().await {
                lines(&input, stream, &line);
            }
        });
    }
    Ok((child, beats))
}

/// Resolves when no heartbeat arrived for `stall` (or the pipe closed and
/// stayed quiet that long).
async fn stalled(mut beats: tokio::fs::File, stall: Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(stall, beats.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => continue,
            Ok(_) => {
                // Closed: the worker is exiting; let `wait` see it.
                tokio::time::sleep(stall).await;
                return;
            }
            Err(_) => return,
        }
    }
}

async fn wait_or_stop(
    mut child: Child,
    beats: tokio::fs::File,
    input: &str,
    grace: Duration,
    stall: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<std::process::ExitStatus> {
    tokio::select! {
        s = child.wait() => s.ok(),
        _ = stalled(beats, stall) => {
            tracing::error!(input = %input, stall_secs = stall.as_secs_f64(), "worker stopped making progress (no heartbeat): killing it");
            let _ = child.kill().await;
            child.wait().await.ok()
        }
        _ = shutdown.changed() => {
            if let Some(pid) = child.id() {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            match tokio::time::timeout(grace + Duration::from_secs(2), child.wait()).await {
                Ok(s) => s.ok(),
                Err(_) => {
                    tracing::error!(input = %input, "worker did not stop in time: killed");
                    let _ = child.kill().await;
                    child.wait().await.ok()
                }
            }
        }
    }
}
