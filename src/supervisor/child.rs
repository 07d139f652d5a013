//! One worker process: spawned with a control pipe (heartbeats, run
//! markers), a report pipe (its status every second) and a parent-death
//! signal, its output forwarded line by line, stopped with SIGTERM then
//! SIGKILL, or killed when its heartbeats stop.
//!
//! Each worker leads a process group of its own, which the processes its
//! scripts start join unless they leave it: once the worker is gone, however
//! it ended, that group is killed, so nothing it started outlives it even
//! when it could not end them itself (a crash; the worker ends them on its
//! way out otherwise, see `pythond_worker::descendants`). Workers are thus
//! out of the terminal's process group: a Ctrl-C reaches the supervisor only,
//! which stops them with SIGTERM as on any shutdown.

use std::collections::BTreeMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use pythond_core::control::Event;
use pythond_core::spec::{WorkerSpec, HEARTBEAT_FD_ENV, SPEC_ENV};
use pythond_core::status::{ReportLine, REPORT_FD_ENV};

use super::state::InputState;
use super::{Launch, LineSink, Settings, Stream};

/// The fd number the control channel has in the worker.
const CONTROL_FD: i32 = 3;
/// The fd number the report pipe has in the worker.
const REPORT_FD: i32 = 4;

/// What the control channel told us so far.
struct ControlState {
    last_beat: Instant,
    /// Started and not yet ended: how many times, and the number of the
    /// latest start (crash attribution blames the one started last).
    running: BTreeMap<String, (u32, u64)>,
    starts: u64,
    /// Why the worker could not start, if it said so (`c` message).
    config_error: Option<String>,
}

/// A started worker.
pub(super) struct Running {
    child: Child,
    pid: Option<u32>,
    control: JoinHandle<()>,
    reports: JoinHandle<()>,
    forwarders: Vec<JoinHandle<()>>,
    state: Arc<Mutex<ControlState>>,
}

/// How a worker's life ended.
pub(super) enum Ended {
    /// It exited on its own.
    Exited(Option<ExitStatus>),
    /// Its heartbeats stopped: it was killed.
    Stalled(Option<ExitStatus>),
    /// We stopped it (shutdown or restart): its status, and whether it had to
    /// be killed after the grace period.
    Stopped {
        status: Option<ExitStatus>,
        killed: bool,
    },
}

/// Why a worker was stopped, or `None` if it ended on its own.
pub(super) type Why<R> = Option<R>;

fn pipe() -> anyhow::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("control pipe");
    }
    // SAFETY: both fds are fresh and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start `spec`'s worker.
pub(super) fn start(
    launch: &Launch,
    spec: &WorkerSpec,
    settings: &Settings,
    lines: &LineSink,
    input: &Arc<Mutex<InputState>>,
) -> anyhow::Result<Running> {
    let exe = crate::worker_exe::path()?;
    let (read_end, write_end) = pipe()?;
    // Room for the markers of every run between two reads (see
    // `read_control`), which the worker drops rather than block on. The
    // kernel takes the pages as they are written.
    // SAFETY: fcntl on a pipe fd we own; failure keeps the default size.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&read_end),
            libc::F_SETPIPE_SZ,
            CONTROL_PIPE_BYTES,
        )
    };
    let (report_read, report_write) = pipe()?;
    let mut cmd = Command::new(&exe);
    let child_fd = std::os::fd::AsRawFd::as_raw_fd(&write_end);
    let report_fd = std::os::fd::AsRawFd::as_raw_fd(&report_write);
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(child_fd, CONTROL_FD) < 0 || libc::dup2(report_fd, REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // If the supervisor dies (even by kill -9), the worker gets
            // SIGTERM: it spools what it holds and exits instead of running
            // on as an orphan nobody supervises.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Died between fork and prctl: the signal will never come.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    cmd.arg("run")
        .arg("--log-level")
        .arg(&spec.log_level)
        .env(HEARTBEAT_FD_ENV, CONTROL_FD.to_string())
        .env(REPORT_FD_ENV, REPORT_FD.to_string())
        .env(SPEC_ENV, serde_json::to_string(spec)?)
        .envs(launch.envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    drop(write_end);
    drop(report_write);
    let pid = child.id();
    tracing::info!(input = %launch.input, pid, "worker started");
    let state = Arc::new(Mutex::new(ControlState {
        last_beat: Instant::now(),
        running: BTreeMap::new(),
        starts: 0,
        config_error: None,
    }));
    let control = tokio::spawn(read_control(read_end, state.clone()));
    let reports = tokio::spawn(read_reports(
        tokio::net::unix::pipe::Receiver::from_owned_fd(report_read)?,
        input.clone(),
    ));
    let mut forwarders = Vec::new();
    if let Some(out) = child.stdout.take() {
        let input = launch.input.clone();
        forwarders.push(if settings.stdout_is_points {
            tokio::spawn(copy_points(out))
        } else {
            tokio::spawn(forward(out, input, Stream::Stdout, lines.clone()))
        });
    }
    if let Some(err) = child.stderr.take() {
        forwarders.push(tokio::spawn(forward(
            err,
            launch.input.clone(),
            Stream::Stderr,
            lines.clone(),
        )));
    }
    Ok(Running {
        child,
        pid,
        control,
        reports,
        forwarders,
        state,
    })
}

/// How long control messages gather before the supervisor reads them: a
/// worker writes two markers per run (400 a second for 200 scripts at 1 s),
/// and waking for each one cost more than the worker's runs themselves.
/// Nothing waits on them that cannot wait this long (heartbeats are checked
/// against a 30 s stall timeout; markers matter once the worker has exited,
/// and `finish` reads to the end).
const CONTROL_BATCH: Duration = Duration::from_millis(100);

/// The control pipe's size: what a worker may write in [`CONTROL_BATCH`]
/// (1 MiB, the largest an unprivileged process may ask for: 10 000 runs a
/// second of ~50-byte markers fill a tenth of it per batch).
const CONTROL_PIPE_BYTES: i32 = 1 << 20;

async fn read_control(pipe: OwnedFd, state: Arc<Mutex<ControlState>>) {
    use std::io::Read as _;
    // Read on a timer, not on readiness: a pipe registered with the event
    // loop wakes it at every write, whether or not anyone reads.
    // SAFETY: fcntl on the pipe fd we own.
    unsafe {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&pipe);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            tracing::error!("control pipe: {}", std::io::Error::last_os_error());
            return;
        }
    }
    let mut pipe = std::fs::File::from(pipe);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        tokio::time::sleep(CONTROL_BATCH).await;
        let mut eof = false;
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        let complete = pending
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        if complete > 0 {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            for line in pending[..complete].split(|b| *b == b'\n') {
                if let Ok(line) = std::str::from_utf8(line) {
                    apply_control(&mut st, line);
                }
            }
            drop(st);
            pending.drain(..complete);
        }
        if eof {
            return;
        }
    }
}

fn apply_control(st: &mut ControlState, line: &str) {
    match Event::parse(line) {
        Some(Event::Beat) => st.last_beat = Instant::now(),
        Some(Event::Start(w)) => {
            st.starts += 1;
            let seq = st.starts;
            let e = st.running.entry(w).or_insert((0, 0));
            *e = (e.0 + 1, seq);
        }
        Some(Event::End(w)) => {
            if let Some((n, _)) = st.running.get_mut(&w) {
                *n -= 1;
                if *n == 0 {
                    st.running.remove(&w);
                }
            }
        }
        Some(Event::ConfigError(m)) => st.config_error = Some(m),
        None => {}
    }
}

/// Keep the worker's latest report in its input's state: a full report
/// replaces it, a delta is applied to it (see [`ReportLine`]).
async fn read_reports(pipe: tokio::net::unix::pipe::Receiver, input: Arc<Mutex<InputState>>) {
    let mut r = BufReader::with_capacity(64 << 10, pipe).lines();
    while let Ok(Some(line)) = r.next_line().await {
        match serde_json::from_str::<ReportLine>(&line) {
            Ok(ReportLine::Full(rep)) => {
                input.lock().unwrap_or_else(|e| e.into_inner()).report = Some(rep)
            }
            Ok(ReportLine::Delta(d)) => {
                let mut st = input.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(rep) = st.report.as_mut() {
                    rep.apply(d);
                }
            }
            Err(e) => tracing::debug!("unreadable worker report: {e}"),
        }
    }
}

async fn forward(
    pipe: impl tokio::io::AsyncRead + Unpin,
    input: String,
    stream: Stream,
    lines: LineSink,
) {
    let mut r = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = r.next_line().await {
        lines(&input, stream, &line);
    }
}

/// `--output -`: the worker's stdout is points; copy it with back-pressure
/// (never dropped), in chunks of whole lines so inputs never interleave
/// mid-line.
async fn copy_points(pipe: impl tokio::io::AsyncRead + Unpin) {
    static OUT: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    const CAPACITY: usize = 256 << 10;
    let mut r = BufReader::with_capacity(CAPACITY, pipe);
    let mut out = tokio::io::stdout();
    loop {
        let buf = match r.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(b) => b,
        };
        // Up to the last newline; a line longer than the buffer goes as is.
        let n = match buf.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if buf.len() == CAPACITY => buf.len(),
            None => {
                // A partial line: wait for the rest (or EOF).
                let mut line = Vec::new();
                if r.read_until(b'\n', &mut line).await.is_err() || line.is_empty() {
                    return;
                }
                let _g = OUT.lock().await;
                if out.write_all(&line).await.is_err() || out.flush().await.is_err() {
                    return;
                }
                continue;
            }
        };
        let chunk = buf[..n].to_vec();
        r.consume(n);
        let _g = OUT.lock().await;
        if out.write_all(&chunk).await.is_err() || out.flush().await.is_err() {
            return;
        }
    }
}

/// Wait until the worker exits, stalls, or `stop` resolves (shutdown or a
/// restart): then SIGTERM, and SIGKILL if it is not gone `grace` + 2 s later.
pub(super) async fn wait<R>(
    r: &mut Running,
    input: &str,
    settings: &Settings,
    stop: impl std::future::Future<Output = R>,
) -> (Ended, Why<R>) {
    let state = r.state.clone();
    let stalled = async move {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let last = state.lock().unwrap_or_else(|e| e.into_inner()).last_beat;
            if last.elapsed() >= settings.stall_timeout {
                return;
            }
        }
    };
    tokio::select! {
        s = r.child.wait() => {
            r.kill_group(input);
            (Ended::Exited(s.ok()), None)
        }
        _ = stalled => {
            tracing::error!(input = %input, stall_secs = settings.stall_timeout.as_secs_f64(),
                "worker stopped making progress (no heartbeat): killing it");
            let _ = r.child.kill().await;
            r.kill_group(input);
            (Ended::Stalled(r.child.wait().await.ok()), None)
        }
        why = stop => {
            if let Some(pid) = r.pid {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            }
            let ended = match tokio::time::timeout(settings.grace + Duration::from_secs(2), r.child.wait()).await {
                Ok(s) => {
                    r.kill_group(input);
                    Ended::Stopped { status: s.ok(), killed: false }
                }
                Err(_) => {
                    tracing::error!(input = %input, "worker did not stop in time: killed");
                    let _ = r.child.kill().await;
                    r.kill_group(input);
                    Ended::Stopped { status: r.child.wait().await.ok(), killed: true }
                }
            };
            (ended, Some(why))
        }
    }
}

impl Running {
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// SIGKILL to the worker's process group: the worker if it still runs,
    /// and whatever it started that is still in the group. Its pid stays
    /// the group's id while any member lives, so this reaches no one else
    /// (once the group is empty, the id could only be another group's after
    /// the whole pid space had been cycled since the worker was reaped,
    /// microseconds ago).
    fn kill_group(&self, input: &str) {
        let Some(pgid) = self.pid else {
            return;
        };
        // SAFETY: kill(2) of the process group our worker leads.
        if unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) } == 0 {
            tracing::info!(input = %input, pgid, "killed what was left in the worker's process group");
        }
    }
}

/// What a worker said before it exited.
pub(super) struct Last {
    /// What it had started and not ended when it died, in the order they
    /// (last) started.
    pub running: Vec<String>,
    /// Its configuration error, when it exited with `exit::CONFIG`.
    pub config_error: Option<String>,
}

/// After the worker exited: let its last lines and control messages arrive
/// (bounded: a grandchild may hold the pipes).
pub(super) async fn finish(r: Running) -> Last {
    let deadline = Instant::now() + Duration::from_secs(2);
    let _ = tokio::time::timeout_at(deadline, r.control).await;
    // Its final report (written after its writer shut down) says what it lost.
    let _ = tokio::time::timeout_at(deadline, r.reports).await;
    for f in r.forwarders {
        let _ = tokio::time::timeout_at(deadline, f).await;
    }
    let st = r.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut running: Vec<(&String, u64)> =
        st.running.iter().map(|(w, (_, seq))| (w, *seq)).collect();
    running.sort_by_key(|(_, seq)| *seq);
    Last {
        running: running.into_iter().map(|(w, _)| w.clone()).collect(),
        config_error: st.config_error.clone(),
    }
}
