//! Launch mode: pythond as the `cmd` of `[[inputs.pythond]]`, started the
//! way DataKit starts it (its Go source, `internal/plugins/inputs/pythond`):
//! a runner file rendered into `pythond_<digits>` (no `.py`), argv
//! `[cmd, file, "--logname=<name without whitespace>"]`, an environment of
//! only the block's `envs`, stdout and stderr on one pipe read 1 KiB a
//! second, and SIGKILL to stop it. Fixtures are in `tests/data/launch/`.
//!
//! - [`start`]: the start, the empty environment, DataKit's pipe, the
//!   block's keys, where the address and the logs come from, bad runner files;
//! - [`found`]: the block in a git repo, no `datakit.conf`, `-l`, an
//!   unwritable `$HOME`;
//! - [`stop`]: SIGKILL, and the spool replayed at the next start;
//! - [`python`]: which Python's packages, and `pythond run` beside DataKit;
//! - [`processes`]: a crash and restart; the processes scripts start end
//!   with their worker;
//! - [`kill`]: the SIGKILL loss measurement.

mod found;
mod kill;
mod processes;
mod python;
mod start;
mod stop;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::FakeDataKit;

use crate::fixtures::{bytes_below, copy_data, data};
use crate::util::*;

/// A DataKit install: `conf.d/datakit.conf` with `listen` and a git repo
/// `myconf`, DataKit's own `python.d/core`, a temp folder for runner files.
struct Install {
    dir: tempfile::TempDir,
}

impl Install {
    fn new(listen: &str) -> Install {
        let dir = tempfile::tempdir().unwrap();
        let i = Install { dir };
        i.write(
            "conf.d/datakit.conf",
            &format!(
                "[http_api]\n  listen = \"{listen}\"\n\n[git_repos]\n  pull_interval = \"1m\"\n  [[git_repos.repo]]\n    enable = true\n    branch = \"master\"\n    url = \"http://git.example.com/ops/myconf.git\"\n"
            ),
        );
        copy_data(
            "launch/core_framework.py",
            &i.path().join("python.d/core/datakit_framework.py"),
        );
        i
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `conf.d/pythond/pythond.conf`: one block whose cmd is pythond.
    fn block(&self, name: &str, dirs: &[&str], extra: &str) {
        let dirs: Vec<String> = dirs.iter().map(|d| format!("{d:?}")).collect();
        self.write(
            "conf.d/pythond/pythond.conf",
            &format!(
                "[[inputs.pythond]]\n  name = '{name}'\n  cmd = \"/usr/local/bin/pythond\"\n  dirs = [{}]\n{extra}\n",
                dirs.join(", ")
            ),
        );
    }

    /// Copy `tests/data/launch/<src>` to `<install>/<dst>`.
    fn script(&self, src: &str, dst: &str) {
        copy_data(&format!("launch/{src}"), &self.path().join(dst));
    }

    /// The runner file, rendered as DataKit renders it (Go's `os.Expand` of
    /// the template), in a fresh `pythond_<digits>`.
    fn render(&self, roots: &[PathBuf], modules: &[&str]) -> PathBuf {
        let template = std::fs::read_to_string(data("launch/runner.py.tmpl")).unwrap();
        let core = self.path().join("python.d/core");
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let text = expand(&template, |k| match k {
            "PythonCorePath" => format!("\"{}\"", core.display()),
            "CustomerDefinedScriptRoot" => format!("['{}']", roots.join("', '")),
            "CustomerDefinedScriptName" => format!("\"{}\"", modules.join("\", \"")),
            _ => String::new(),
        });
        let tmp = self.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let path = tmp.join(format!("pythond_{}", fastrand_digits()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cli_log(&self, log_dir: &Path) -> String {
        std::fs::read_to_string(log_dir.join("_datakit_pythond_cli.log")).unwrap_or_default()
    }

    /// The log folder of launch mode without `HOME`.
    fn data_dir(&self) -> PathBuf {
        self.path().join("cache/pythond")
    }
}

/// Go's `os.Expand` for `${Key}`.
fn expand(s: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').expect("closed placeholder");
        out.push_str(&f(&after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn fastrand_digits() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{}", std::process::id(), n)
}

/// pythond as DataKit runs it, with its one pipe drained 1 KiB a second.
struct Launched {
    child: Child,
    pipe: Arc<Mutex<Vec<u8>>>,
}

/// `pythond <file> --logname=<name>` with an environment of only `envs`.
fn launch(file: &Path, name: &str, envs: &[(&str, String)]) -> Launched {
    let logname: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    launch_with(
        file,
        &[&format!("--logname={logname}")],
        envs,
        Pipe::Drained,
    )
}

/// How the test, playing DataKit, treats pythond's pipe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pipe {
    /// Read 1 KiB a second, as DataKit does.
    Drained,
    /// Full before pythond starts, and never read.
    Full,
}

/// `pythond <file> <args>` with an environment of only `envs`.
fn launch_with(file: &Path, args: &[&str], envs: &[(&str, String)], mode: Pipe) -> Launched {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if mode == Pipe::Full {
        // SAFETY: fcntl and write on our own fds, from a live buffer.
        unsafe {
            let flags = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
            let junk = [b'.'; 4096];
            while libc::write(w.as_raw_fd(), junk.as_ptr().cast(), junk.len()) > 0 {}
            // Down to single bytes: not even a newline fits.
            while libc::write(w.as_raw_fd(), junk.as_ptr().cast(), 1) > 0 {}
            libc::fcntl(w.as_raw_fd(), libc::F_SETFL, flags);
        }
    }
    let child = Command::new(env!("CARGO_BIN_EXE_pythond"))
        .arg(file)
        .args(args)
        .env_clear()
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(w.try_clone().unwrap())
        .stderr(w)
        .spawn()
        .unwrap();
    let pipe = Arc::new(Mutex::new(Vec::new()));
    let sink = pipe.clone();
    std::thread::spawn(move || {
        if mode == Pipe::Full {
            // Held open, never read, until the test ends.
            std::thread::sleep(Duration::from_secs(3600));
        }
        // DataKit: every second, one read of at most 1024 bytes.
        let mut buf = [0u8; 1024];
        loop {
            std::thread::sleep(Duration::from_secs(1));
            // SAFETY: reading into a live buffer from our own fd.
            let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n as usize]);
        }
    });
    Launched { child, pipe }
}

impl Launched {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// What DataKit has read from the pipe so far.
    fn pipe_text(&self) -> String {
        String::from_utf8_lossy(&self.pipe.lock().unwrap()).into_owned()
    }

    /// The exit status within `secs`, or `None`.
    fn exit_within(&mut self, secs: u64) -> Option<ExitStatus> {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What DataKit has read once the pipe has been drained (the process has
    /// exited and the reader has had its next second).
    fn pipe_after_exit(&self) -> String {
        std::thread::sleep(Duration::from_millis(2200));
        self.pipe_text()
    }

    /// DataKit's stop: SIGKILL to our pid only. Returns how long it took
    /// until no process of ours (all descendants seen before) was left.
    fn kill9(&mut self) -> Duration {
        let ours = descendants(self.pid());
        assert!(!ours.is_empty(), "a worker runs under pythond");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        let t0 = Instant::now();
        let _ = self.child.wait();
        eventually(15, "every process of ours gone after SIGKILL", || {
            ours.iter().all(|p| !alive(*p)).then_some(())
        });
        t0.elapsed()
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        let ours = descendants(self.pid());
        let _ = self.child.kill();
        let _ = self.child.wait();
        for p in ours {
            // SAFETY: kill(2) of a process this test started.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

/// Every process below `pid`.
fn descendants(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<i32>().ok())
            {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

/// Running (not gone, not a zombie).
fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..]
        .chars()
        .next()
        .unwrap_or('?');
    state != 'Z' && state != 'X'
}

fn measurements(lines: &[String]) -> Vec<String> {
    let mut m: Vec<String> = lines.iter().map(|l| parse_line(l).measurement).collect();
    m.sort();
    m.dedup();
    m
}

fn field(line: &str, key: &str) -> String {
    parse_line(line)
        .fields
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The usual install: `team` in git repo `myconf` (modules `top` and
/// `sub.deep`), the file entry `extra/single.py` in `python.d`.
fn team_install(listen: &str, name: &str, extra: &str) -> (Install, PathBuf) {
    let i = Install::new(listen);
    i.script("team", "gitrepos/myconf/python.d/team");
    i.script("extra/single.py", "python.d/extra/single.py");
    i.block(name, &["team", "extra/single.py"], extra);
    let file = i.render(
        &[i.path().join("gitrepos/myconf/python.d/team")],
        &["top", "sub.deep", "single"],
    );
    (i, file)
}
