//! Script fixtures kept as real files under `tests/data/`, copied into temp
//! dirs by the tests, and the small process helpers the newer suites share.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::util::*;

/// `tests/data/<rel>` in the source tree.
pub fn data(rel: &str) -> PathBuf {
    repo().join("tests/data").join(rel)
}

/// Copy `tests/data/<src>` (a file or a folder, recursively) to `dst`.
/// Folders get mode 0755 and files 0644 whatever the checkout's umask was,
/// so that tests about permissions start from a known state.
pub fn copy_data(src: &str, dst: &Path) {
    umask_022();
    copy_tree(&data(src), dst);
}

fn copy_tree(src: &Path, dst: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    if meta.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut entries: Vec<_> = std::fs::read_dir(src).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name == "__pycache__" {
                continue;
            }
            copy_tree(&e.path(), &dst.join(name));
        }
    } else {
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::copy(src, dst).unwrap();
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

/// A DataKit install dir (see [`DataKitDir::new`]) whose `python.d/` holds
/// fixtures: each `(src, dst)` copies `tests/data/<src>` to `python.d/<dst>`.
pub fn datakit_with(listen: &str, scripts: &[(&str, &str)], conf: &str) -> DataKitDir {
    let dir = DataKitDir::new(listen, &[], conf);
    for (src, dst) in scripts {
        copy_data(src, &dir.path().join("python.d").join(dst));
    }
    dir
}

/// One `[[inputs.pythond]]` block with `cmd = "python3"`; `extra` is more
/// TOML lines of the block.
pub fn block(name: &str, dirs: &[&str], extra: &str) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| format!("{d:?}")).collect();
    format!(
        "[[inputs.pythond]]\n  name = '{name}'\n  cmd = \"python3\"\n  dirs = [{}]\n{extra}\n",
        dirs.join(", ")
    )
}

/// Total bytes of every file below `dir` (0 when it does not exist).
pub fn bytes_below(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => bytes_below(&p),
                Ok(m) => m.len(),
                Err(_) => 0,
            }
        })
        .sum()
}

/// A number a script keeps in a file (0 while the file is missing).
pub fn number_in(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Values of the integer field `seq` of a measurement's lines, in arrival order.
pub fn seqs(lines: &[String], measurement: &str) -> Vec<i64> {
    seq_of(lines, measurement)
}

/// Point timestamps (ns) of a measurement, sorted, duplicates removed.
pub fn times_of(lines: &[String], measurement: &str) -> Vec<i64> {
    let mut t: Vec<i64> = lines
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == measurement)
        .filter_map(|p| p.time)
        .collect();
    t.sort_unstable();
    t.dedup();
    t
}

/// Whether the timestamps `times` (sorted, ns) hold a stretch of at least
/// `span` ending at the newest one in which no two neighbours are more than
/// `max_gap` apart.
pub fn steady_for(times: &[i64], span: Duration, max_gap: Duration) -> bool {
    let (span, max_gap) = (span.as_nanos() as i64, max_gap.as_nanos() as i64);
    let Some(&last) = times.last() else {
        return false;
    };
    let mut start = last;
    for w in times.windows(2).rev() {
        if w[1] - w[0] > max_gap {
            break;
        }
        start = w[0];
    }
    last - start >= span
}

/// The largest gap (ns) between neighbouring timestamps in `times` (sorted).
pub fn max_gap(times: &[i64]) -> i64 {
    times.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

/// A child process that is waited for with a deadline and killed if it is
/// still running when dropped.
pub struct Bounded {
    pub child: Child,
    pub started: Instant,
}

impl Bounded {
    pub fn new(child: Child) -> Bounded {
        Bounded {
            child,
            started: Instant::now(),
        }
    }

    /// Wait up to `secs` for the exit; `None` if it is still running then.
    pub fn wait_for(&mut self, secs: u64) -> Option<ExitStatus> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Bounded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every one of `words` appears in `text`, ignoring ASCII case.
pub fn mentions_all(text: &str, words: &[&str]) -> bool {
    let t = text.to_ascii_lowercase();
    words.iter().all(|w| t.contains(&w.to_ascii_lowercase()))
}

/// No Rust panic in the output of a pythond process.
#[track_caller]
pub fn assert_no_panic(text: &str) {
    assert!(
        !text.contains("panicked at") && !text.contains("RUST_BACKTRACE"),
        "pythond panicked:\n{text}"
    );
}

/// `pythond run` on `dk` as [`Daemon::start`] starts it, but with the
/// caller's stdout and stderr.
pub fn spawn_run(
    dk: &DataKitDir,
    extra: &[&str],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> Child {
    let log_dir = dk.path().join("logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    pythond()
        .arg("run")
        .arg("--config")
        .arg(dk.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dk.path())
        .arg("--log-dir")
        .arg(&log_dir)
        .args(["--restart-delay-secs", "0.2"])
        .arg("--run-datakit-blocks")
        .args(extra)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// kill -9 of a daemon and of its workers, in the same instant (the workers
/// would otherwise get SIGTERM from their supervisor's death and shut down
/// gracefully).
pub fn kill_9_all(d: &mut Daemon) {
    let ws = workers(d.pid());
    unsafe { libc::kill(d.pid(), libc::SIGKILL) };
    for (pid, _) in &ws {
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    let _ = d.child.wait();
    for (pid, _) in &ws {
        eventually(10, "worker gone after kill -9", || {
            (unsafe { libc::kill(*pid, 0) } != 0).then_some(())
        });
    }
}
