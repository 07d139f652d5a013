//! One worker process: spawned with a heartbeat pipe and a parent-death
//! signal, its output forwarded line by line, stopped with SIGTERM then
//! SIGKILL, or killed when its heartbeats stop.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use pythond_core::spec::{HEARTBEAT_FD_ENV, SPEC_ENV};

use super::{Launch, LineSink, Stream};

/// The fd number heartbeats arrive on in the worker.
const HEARTBEAT_FD: i32 = 3;

pub(super) fn start(launch: &Launch, lines: &LineSink) -> anyhow::Result<(Child, tokio::fs::File)> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let spec = (launch.prepare)()?;
    let exe = crate::worker_exe::path()?;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe for heartbeats");
    }
    // SAFETY: both fds are fresh and owned by nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut cmd = Command::new(&exe);
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
    cmd.arg("run")
        .arg("--log-level")
        .arg(&spec.log_level)
        .env(HEARTBEAT_FD_ENV, HEARTBEAT_FD.to_string())
        .env(SPEC_ENV, serde_json::to_string(&spec)?)
        .envs(launch.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
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

pub(super) async fn wait_or_stop(
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
