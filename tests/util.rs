//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(unused_imports)]
pub use testkit::lp::{field_text, kv, parse_line, Seen};

/// Files this suite creates get the modes an administrator's would (umask
/// 022), whatever umask `cargo test` was started with: pythond refuses
/// scripts and config files that group or others can write. Process-wide,
/// inherited by the processes the tests start; called by every helper that
/// creates files or starts pythond.
pub fn umask_022() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: umask only swaps the process's file creation mask.
    ONCE.call_once(|| unsafe {
        libc::umask(0o022);
    });
}

/// The binary under test.
pub fn pythond() -> Command {
    umask_022();
    let mut c = Command::new(env!("CARGO_BIN_EXE_pythond"));
    c.env_remove("PYTHOND_WORKER_SPEC");
    c
}

/// The repository root (for python.d/, conf.d/).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The text of the Python fixture `tests/data/<rel>`.
pub fn fixture(rel: &str) -> String {
    let p = crate::fixtures::data(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// [`fixture`] with its `PARAMS = ...` line (the knobs a test sets, marked in
/// the file) replaced by `PARAMS = <params>`, a Python literal.
pub fn fixture_with(rel: &str, params: &str) -> String {
    let text = fixture(rel);
    assert!(
        text.lines().any(|l| l.starts_with("PARAMS = ")),
        "fixture {rel} has no PARAMS line"
    );
    text.lines()
        .map(|l| {
            if l.starts_with("PARAMS = ") {
                format!("PARAMS = {params}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// A copy of the fixture folder `tests/data/<rel>` in a new temp dir.
pub fn fixture_tree(rel: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::fixtures::copy_data(rel, dir.path());
    dir
}

/// Write `files` (relative path → content) under a new temp dir.
pub fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    umask_022();
    let dir = tempfile::tempdir().unwrap();
    for (rel, content) in files {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `pythond test --format json PATHS...` → (exit ok, one JSON value per point).
pub fn test_json(paths: &[&Path]) -> (Output, Vec<serde_json::Value>) {
    let out = pythond()
        .arg("test")
        .arg("--format")
        .arg("json")
        .args(paths)
        .output()
        .unwrap();
    // Points and lasterror records; the per-script status lines that close
    // the output are left out (see `test_status`).
    let vals = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}"))
        })
        .filter(|v| v.get("script_status").is_none())
        .collect();
    (out, vals)
}

/// A new temp dir in a folder that only root and this user can write, up
/// to `/` (the target dir's `tmp`, else `$HOME`): for trees that a symlink or
/// `..` leads out of, whose folders pythond then checks up to `/` (so not
/// below the world-writable `/tmp`).
pub fn trusted_tempdir() -> tempfile::TempDir {
    umask_022();
    let candidates = [
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR"))),
        std::env::var_os("HOME").map(PathBuf::from),
    ];
    let mut why = Vec::new();
    for c in candidates.into_iter().flatten() {
        let Ok(real) = c.canonicalize() else { continue };
        match real
            .ancestors()
            .find_map(|a| pythond_core::trust::check(a).err())
        {
            None => return tempfile::tempdir_in(&real).unwrap(),
            Some(e) => why.push(e.to_string()),
        }
    }
    panic!(
        "the symlink tests need a folder that only root and this user can write, up to /: {}",
        why.join("; ")
    )
}

/// A DataKit install dir for a test: `python.d/`, `conf.d/`, `datakit.conf`
/// pointing at `listen`.
pub struct DataKitDir {
    pub dir: tempfile::TempDir,
}

impl DataKitDir {
    pub fn new(listen: &str, scripts: &[(&str, &str)], conf: &str) -> DataKitDir {
        umask_022();
        DataKitDir::new_in(tempfile::tempdir().unwrap(), listen, scripts, conf)
    }

    /// [`DataKitDir::new`] in a [`trusted_tempdir`], for installs that a
    /// symlink or `..` leads out of.
    pub fn new_trusted(listen: &str, scripts: &[(&str, &str)], conf: &str) -> DataKitDir {
        umask_022();
        DataKitDir::new_in(trusted_tempdir(), listen, scripts, conf)
    }

    fn new_in(
        dir: tempfile::TempDir,
        listen: &str,
        scripts: &[(&str, &str)],
        conf: &str,
    ) -> DataKitDir {
        let w = |rel: &str, content: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        };
        for (rel, content) in scripts {
            w(&format!("python.d/{rel}"), content);
        }
        w("conf.d/pythond/pythond.conf", conf);
        w(
            "conf.d/datakit.conf",
            &format!("[http_api]\n  listen = \"{listen}\"\n"),
        );
        DataKitDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A running `pythond run`; killed if still running when dropped.
pub struct Daemon {
    pub child: std::process::Child,
    pub log_dir: PathBuf,
    pub stderr_path: PathBuf,
}

impl Daemon {
    pub fn start(dk: &DataKitDir, extra: &[&str]) -> Daemon {
        let log_dir = dk.path().join("logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        // A file, not a pipe: a pipe nobody reads would fill and stall pythond.
        let stderr = std::fs::File::create(dk.path().join("stderr.txt")).unwrap();
        let child = pythond()
            .arg("run")
            .arg("--config")
            .arg(dk.path().join("conf.d"))
            .arg("--datakit-dir")
            .arg(dk.path())
            .arg("--log-dir")
            .arg(&log_dir)
            .args(["--restart-delay-secs", "0.2"])
            // The test's DataKit dir looks like an install (conf.d/datakit.conf),
            // but no DataKit runs its blocks.
            .arg("--run-datakit-blocks")
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Daemon {
            child,
            stderr_path: dk.path().join("stderr.txt"),
            log_dir,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then wait (bounded) for the exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pythond did not stop after SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn cli_log(&self) -> String {
        std::fs::read_to_string(self.log_dir.join("_datakit_pythond_cli.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Worker pids of a running daemon, with their input names.
pub fn workers(supervisor: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{supervisor}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(kids) = std::fs::read_to_string(t.path().join("children")) else {
            continue;
        };
        for pid in kids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let env = String::from_utf8_lossy(&env);
            if let Some(i) = env.find("\"input\":\"") {
                let rest = &env[i + 9..];
                let name = rest[..rest.find('"').unwrap_or(0)].to_owned();
                out.push((pid, name));
            }
        }
    }
    out
}

/// Wait until `f` returns Some, or panic after `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The counter script (`tests/data/faults/counter.py`): script `class`
/// reporting 5 points of `measurement` a run with `seq` = 0, 1, 2..., and
/// keeping the number produced so far in `produced_<class>` beside the script.
pub fn counter_script(class: &str, measurement: &str, interval: f64) -> String {
    fixture_with(
        "faults/counter.py",
        &format!("{{'name': '{class}', 'measurement': '{measurement}', 'interval': {interval}}}"),
    )
}

/// What a [`counter_script`] in `python.d/<dir>` says it produced.
pub fn produced(dk: &DataKitDir, dir: &str, class: &str) -> usize {
    std::fs::read_to_string(dk.path().join(format!("python.d/{dir}/produced_{class}")))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `pythond status --json` of the daemon whose DataKit dir is `dir`
/// (`Null` when it does not answer).
pub fn status(dir: &Path) -> serde_json::Value {
    let out = pythond()
        .args(["status", "--json", "--datakit-dir"])
        .arg(dir)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Bodies (text) of the requests DataKit got on `/v1/lasterror`, in order.
pub fn lasterrors(dk: &testkit::FakeDataKit) -> Vec<String> {
    dk.requests()
        .iter()
        .filter(|r| r.path == "/v1/lasterror")
        .map(|r| r.text())
        .collect()
}

/// DataKit's `/v1/lasterror` gets `what` for `input` within 10 s (it is
/// sent after the status shows the error: waited for).
pub fn lasterror_has(dk: &testkit::FakeDataKit, input: &str, what: &str) -> bool {
    let input = format!("\"input\":\"{input}\"");
    dk.wait_until(std::time::Duration::from_secs(10), |dk| {
        lasterrors(dk)
            .iter()
            .any(|t| t.contains(&input) && t.contains(what))
    })
}

/// One line of the README's reliability table, printed with `--nocapture`.
pub fn report_outcome(scenario: &str, what: &str, produced: usize, arrived: usize) {
    eprintln!("RELIABILITY | {scenario} | {what} | {produced} | {arrived} |");
}

/// `seq` values of the lines of one measurement, in arrival order.
pub fn seq_of(lines: &[String], measurement: &str) -> Vec<i64> {
    lines
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == measurement)
        .map(|p| {
            let (_, v) = p.fields.iter().find(|(k, _)| k == "seq").unwrap();
            v.trim_start_matches("i:").parse().unwrap()
        })
        .collect()
}

/// When each run of a [`counter_script`] happened: the timestamp pythond
/// stamped on the first of its 5 points, in order.
pub fn run_times(lines: &[String], measurement: &str) -> Vec<std::time::SystemTime> {
    let mut runs: Vec<(i64, i64)> = lines
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == measurement)
        .filter_map(|p| {
            let (_, v) = p.fields.iter().find(|(k, _)| k == "seq")?;
            let seq: i64 = v.trim_start_matches("i:").parse().ok()?;
            (seq % 5 == 0).then_some((seq, p.time?))
        })
        .collect();
    runs.sort();
    runs.iter()
        .map(|(_, t)| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(*t as u64))
        .collect()
}

/// Whether a script kept its schedule from `from` to `until`: no gap
/// between runs, nor before the first after `from` or after the last before
/// `until`, longer than `max_gap`. Gaps, not counts: a loaded machine delays
/// single ticks, a stalled scheduler stops them.
pub fn kept_ticking(
    runs: &[std::time::SystemTime],
    from: std::time::SystemTime,
    until: std::time::SystemTime,
    max_gap: std::time::Duration,
) -> Result<(), String> {
    let mut points = vec![from];
    points.extend(runs.iter().copied().filter(|t| *t >= from && *t <= until));
    points.push(until);
    let worst = points
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default())
        .max()
        .unwrap_or_default();
    if worst <= max_gap {
        Ok(())
    } else {
        Err(format!(
            "largest gap {worst:?} > {max_gap:?} ({} runs between)",
            points.len() - 2
        ))
    }
}

/// [`kept_ticking`], or panic saying why.
pub fn assert_kept_ticking(
    runs: &[std::time::SystemTime],
    from: std::time::SystemTime,
    until: std::time::SystemTime,
    max_gap: std::time::Duration,
) {
    if let Err(e) = kept_ticking(runs, from, until, max_gap) {
        panic!("the script did not keep its schedule: {e}");
    }
}

/// Whether process `pid` runs: it exists and is not a zombie (an ended
/// process its parent, or init, has not reaped yet).
pub fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}
