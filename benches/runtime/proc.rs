//! The processes a scenario starts and what `/proc` says about them.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use testkit::FakeDataKit;

pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

pub fn daemon(root: &Path, dk: &FakeDataKit) -> Daemon {
    write(
        root,
        "conf.d/datakit.conf",
        &format!("[http_api]\nlisten = \"{}\"\n", dk.addr()),
    );
    Command::new(PYTHOND)
        .args(["run", "--config"])
        .arg(root.join("conf.d"))
        .arg("--datakit-dir")
        .arg(root)
        .arg("--log-dir")
        .arg(root.join("logs"))
        // A DataKit-shaped dir that no DataKit runs.
        .arg("--run-datakit-blocks")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("stderr.txt")).unwrap())
        .spawn()
        .map(|c| Daemon(Some(c)))
        .unwrap()
}

/// A `pythond run` that is stopped (SIGTERM, then waited for) when dropped,
/// also when a scenario panics: no daemon outlives the bench.
pub struct Daemon(Option<Child>);

impl Daemon {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map(Child::id).unwrap_or(0)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            stop(c);
        }
    }
}

/// SIGTERM, then wait for the exit.
pub fn stop(mut c: Child) {
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let _ = c.wait();
}

pub const PYTHOND: &str = env!("CARGO_BIN_EXE_pythond");

pub fn conf(root: &Path, dirs: &str) {
    write(
        root,
        "conf.d/pythond/pythond.conf",
        &format!("[[inputs.pythond]]\nname = 'bench'\ncmd = 'python3'\ndirs = [{dirs}]\n"),
    );
}

/// Children of `pid` (the workers).
pub fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    v
}

pub fn cpu_secs(pid: u32) -> f64 {
    stat_cpu_secs(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// utime + stime of a `/proc/.../stat` line, in seconds.
fn stat_cpu_secs(stat: &str) -> f64 {
    let after = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks
}

/// CPU seconds of the threads of `pid` named `name` (`/proc/<pid>/task/*/comm`).
pub fn thread_cpu_secs(pid: u32, name: &str) -> f64 {
    let mut total = 0.0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            total += stat_cpu_secs(&stat);
        }
    }
    total
}

pub fn status_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

pub fn hwm_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// Proportional set size: shared pages (the same binary and libpython
/// mapped in supervisor and worker) are split between the processes instead
/// of counted in each.
pub fn pss_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}
