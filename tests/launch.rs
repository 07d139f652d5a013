//! Launch mode: pythond as the `cmd` of `[[inputs.pythond]]`, started the
//! way DataKit starts it (its Go source, `internal/plugins/inputs/pythond`):
//! a runner file rendered into `pythond_<digits>` (no `.py`), argv
//! `[cmd, file, "--logname=<name without whitespace>"]`, an environment of
//! only the block's `envs`, stdout and stderr on one pipe read 1 KiB a
//! second, and SIGKILL to stop it. Fixtures are in `tests/data/launch/`.

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
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned below.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds owned by nothing else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let logname: String = name.chars().filter(|c| !c.is_whitespace()).collect();
    let child = Command::new(env!("CARGO_BIN_EXE_pythond"))
        .arg(file)
        .arg(format!("--logname={logname}"))
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

#[test]
fn datakit_starts_pythond_with_an_empty_environment_and_the_points_arrive() {
    let dk = FakeDataKit::start();
    let (i, file) = team_install(
        &dk.addr().to_string(),
        "team input",
        "  [inputs.pythond.tags]\n    env = 'launch'\n",
    );
    let mut p = launch(&file, "team input", &[]);
    assert!(
        dk.wait_until(Duration::from_secs(30), |_| {
            measurements(&dk.all_lines()).len() == 3
        }),
        "points of all three modules arrive at the DataKit of datakit.conf; got {:?}\npipe: {}\nlog: {}",
        measurements(&dk.all_lines()),
        p.pipe_text(),
        i.cli_log(&i.data_dir())
    );
    let lines = dk.all_lines();
    assert_eq!(measurements(&lines), vec!["deep", "single", "top"]);
    for l in &lines {
        assert!(
            parse_line(l)
                .tags
                .contains(&("env".into(), "launch".into())),
            "the block's tags apply: {l}"
        );
    }
    let top = lines.iter().find(|l| l.starts_with("top")).unwrap();
    assert_eq!(
        field(top, "utf8"),
        "b:true",
        "UTF-8 as python3 had it: {top}"
    );
    assert_eq!(field(top, "home_set"), "b:false", "{top}");
    assert_eq!(field(top, "path_set"), "b:false", "{top}");
    // Without HOME the logs are beside the spools, under DataKit's cache.
    let log = i.cli_log(&i.data_dir());
    assert!(log.contains("started by DataKit (launch mode)"), "{log}");
    assert!(log.contains("worker started"), "{log}");
    assert!(i
        .data_dir()
        .join("_datakit_pythond_framework_teaminput_.log")
        .is_file());
    assert!(i.data_dir().join("teaminput/lock").is_file(), "the spool");
    std::thread::sleep(Duration::from_millis(1500));
    let pipe = p.pipe_text();
    assert_eq!(pipe.lines().count(), 1, "one start line: {pipe:?}");
    assert!(
        pipe.starts_with("pythond ") && pipe.contains("input \"teaminput\" started (3 module(s)"),
        "{pipe}"
    );
    p.kill9();
}

#[test]
fn a_script_printing_100_lines_a_second_keeps_its_ticks_while_datakit_reads_1_kib_a_second() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    i.script("chatty", "python.d/chatty");
    i.block("chatty", &["chatty"], "");
    let file = i.render(&[i.path().join("python.d/chatty")], &["chatty"]);
    let mut p = launch(&file, "chatty", &[]);
    // 100 runs, one every 0.1 s: about 10 s.
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(40)),
        "all runs reported: {} lines\n{}",
        dk.all_lines().len(),
        i.cli_log(&i.data_dir())
    );
    let mut t: Vec<f64> = dk
        .all_lines()
        .iter()
        .map(|l| field(l, "t").trim_start_matches("f:").parse().unwrap())
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    let max_gap = gaps.iter().cloned().fold(0.0, f64::max);
    let span = t.last().unwrap() - t[0];
    eprintln!("chatty: 100 runs in {span:.2} s, largest gap {max_gap:.3} s (interval 0.1 s)");
    assert!(
        max_gap < 1.0,
        "no run waited on the pipe: largest gap {max_gap:.3} s for a 0.1 s interval"
    );
    assert!(span < 10.0 * 1.5, "100 runs took {span:.2} s");
    // The log goes through queues of its own: it may trail the points.
    eventually(20, "what the script printed, in the log", || {
        i.cli_log(&i.data_dir())
            .contains("chatty run 0099 line 9")
            .then_some(())
    });
    let pipe = p.pipe_text();
    assert!(
        pipe.len() < 1024 && !pipe.contains("chatty run"),
        "the pipe carries only the start line: {pipe:?}"
    );
    p.kill9();
}

#[test]
fn sigkill_of_pythond_leaves_no_process_of_ours_behind() {
    let dk = FakeDataKit::start();
    let (_i, file) = team_install(&dk.addr().to_string(), "killed", "");
    let mut p = launch(&file, "killed", &[]);
    assert!(dk.wait_for_lines(3, Duration::from_secs(30)));
    let took = p.kill9();
    eprintln!(
        "SIGKILL of pythond: every worker gone {} ms later",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_restart_replays_what_was_spooled_while_datakit_was_down() {
    let addr = FakeDataKit::reserve_port();
    let i = Install::new(&addr.to_string());
    i.script("counter", "python.d/counter");
    i.block("counter", &["counter"], "");
    let roots = [i.path().join("python.d/counter")];
    let mut first = launch(&i.render(&roots, &["counter"]), "counter", &[]);
    let spool = i.data_dir().join("counter");
    eventually(30, "points spooled while DataKit is down", || {
        (bytes_below(&spool) > 20_000).then_some(())
    });
    let worker = descendants(first.pid())[0];
    // DataKit stops (and, here, stays down while the worker spools on its way out).
    let took = first.kill9();
    eprintln!(
        "SIGKILL of pythond with DataKit down: worker gone {} ms later",
        took.as_millis()
    );
    let produced =
        std::fs::read_to_string(i.path().join(format!("python.d/counter/produced_{worker}")))
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap();
    let dk = FakeDataKit::start_on(addr);
    let _second = launch(&i.render(&roots, &["counter"]), "counter", &[]);
    let of_first = |dk: &FakeDataKit| -> Vec<i64> {
        dk.all_lines()
            .iter()
            .map(|l| parse_line(l))
            .filter(|p| p.tags.contains(&("pid".into(), worker.to_string())))
            .map(|p| p.fields[0].1.trim_start_matches("i:").parse().unwrap())
            .collect()
    };
    assert!(
        dk.wait_until(Duration::from_secs(30), |_| of_first(&dk).len() as i64
            >= produced),
        "the first worker's {produced} points are replayed; {} arrived\n{}",
        of_first(&dk).len(),
        i.cli_log(&i.data_dir())
    );
    let got = of_first(&dk);
    assert_eq!(
        got,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "in order, none twice"
    );
    eprintln!(
        "DataKit down, SIGKILL, restart: {produced} points produced by the first worker, {} arrived",
        got.len()
    );
    assert!(i
        .cli_log(&i.data_dir())
        .contains("spool holds undelivered data"));
}

#[test]
fn an_unrecognised_launch_file_is_a_clear_error_and_a_non_zero_exit() {
    let i = Install::new("127.0.0.1:9");
    let not_runner = i.path().join("tmp/pythond_1");
    let not_python = i.path().join("tmp/pythond_2");
    copy_data("launch/not_a_runner.py", &not_runner);
    copy_data("launch/not_python.bin", &not_python);
    let missing = i.path().join("tmp/pythond_3");
    for (file, what) in [
        (
            &not_runner,
            "no sys.path.append(\"<datakit>/python.d/core\") call",
        ),
        (&not_runner, "no main(\"module\", ...) call"),
        (&not_python, "is not Python source"),
        (&missing, "cannot read"),
    ] {
        let mut p = launch(file, "x", &[]);
        let status = p.exit_within(20).expect("pythond exits");
        assert_eq!(status.code(), Some(2), "{}", file.display());
        let pipe = p.pipe_after_exit();
        assert!(
            pipe.starts_with("pythond: error: ") && pipe.contains(&file.display().to_string()),
            "the error names the file: {pipe}"
        );
        assert!(pipe.contains(what), "{what}: {pipe}");
        assert_eq!(pipe.lines().count(), 1, "{pipe}");
    }
    // Without --logname, as the original refused too.
    let out = Command::new(env!("CARGO_BIN_EXE_pythond"))
        .arg(&not_runner)
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--logname"), "{}", stderr(&out));
}

#[test]
fn the_blocks_own_keys_come_from_conf_d_by_its_name_without_whitespace() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    i.script("keys", "python.d/keys");
    i.block(
        "keys test",
        &["keys"],
        "  timeout = \"0.5s\"\n  numbers_as_float = true\n  [inputs.pythond.tags]\n    team = 'ops'\n",
    );
    let file = i.render(&[i.path().join("python.d/keys")], &["keys"]);
    let mut p = launch(&file, "keys test", &[]);
    assert!(
        dk.wait_for_lines(1, Duration::from_secs(30)),
        "{}",
        i.cli_log(&i.data_dir())
    );
    let line = dk.all_lines()[0].clone();
    let elapsed: f64 = field(&line, "elapsed")
        .trim_start_matches("f:")
        .parse()
        .unwrap();
    assert!(
        elapsed < 5.0,
        "interrupted by the block's 0.5 s timeout, not the 120 s default: {elapsed}"
    );
    assert_eq!(field(&line, "n"), "f:1", "numbers_as_float: {line}");
    assert!(
        parse_line(&line)
            .tags
            .contains(&("team".into(), "ops".into())),
        "{line}"
    );
    p.kill9();
}

#[test]
fn pythond_python_of_another_version_is_one_clear_line_and_a_non_zero_exit() {
    let dk = FakeDataKit::start();
    let (i, file) = team_install(&dk.addr().to_string(), "other", "");
    copy_data(
        "launch/python_other/python3",
        &i.path().join("opt/python3.99/bin/python3"),
    );
    let python = i.path().join("opt/python3.99/bin/python3");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let home = i.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut p = launch(
        &file,
        "other",
        &[
            ("PYTHOND_PYTHON", python.display().to_string()),
            ("HOME", home.display().to_string()),
        ],
    );
    let status = p
        .exit_within(30)
        .expect("pythond exits instead of restarting");
    assert_eq!(status.code(), Some(78), "EX_CONFIG");
    let pipe = p.pipe_after_exit();
    let errors: Vec<&str> = pipe.lines().filter(|l| l.contains("Python 3.99")).collect();
    assert_eq!(errors.len(), 1, "one clear line: {pipe}");
    assert!(
        errors[0].contains("stopped: configuration error")
            && errors[0].contains("but pythond embeds Python 3.")
            && errors[0].contains("PYTHOND_PYTHON"),
        "{}",
        errors[0]
    );
    // With HOME, the log is there, as the original's was.
    let log = i.cli_log(&home);
    assert!(log.contains("Python 3.99"), "{log}");
    assert_eq!(
        log.matches("worker started").count(),
        1,
        "not restarted: {log}"
    );
    assert!(dk.all_lines().is_empty());
}

#[test]
fn the_scripts_import_from_the_venv_of_pythond_python_or_virtual_env() {
    let envs = tempfile::tempdir().unwrap();
    let venv = envs.path().join("venv");
    let out = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    let python = venv.join("bin/python3");
    let site = Command::new(&python)
        .args(["-c", "import site; print(site.getsitepackages()[0])"])
        .output()
        .unwrap();
    let site = PathBuf::from(stdout(&site).trim());
    copy_data(
        "launch/venv/launch_venv_probe.py",
        &site.join("launch_venv_probe.py"),
    );
    for env in [
        ("PYTHOND_PYTHON", python.display().to_string()),
        ("VIRTUAL_ENV", venv.display().to_string()),
    ] {
        let dk = FakeDataKit::start();
        let i = Install::new(&dk.addr().to_string());
        i.script("venv/venv_user.py", "python.d/v/venv_user.py");
        i.block("venv", &["v"], "");
        let file = i.render(&[i.path().join("python.d/v")], &["venv_user"]);
        let mut p = launch(&file, "venv", std::slice::from_ref(&env));
        assert!(
            dk.wait_for_lines(1, Duration::from_secs(30)),
            "{}: {}",
            env.0,
            i.cli_log(&i.data_dir())
        );
        let line = dk.all_lines()[0].clone();
        assert_eq!(
            field(&line, "message"),
            "s:from the venv",
            "{}: {line}",
            env.0
        );
        p.kill9();
    }
}

#[test]
fn standalone_run_refuses_blocks_datakit_runs_and_check_says_who_runs_each() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("t/t.py", &counter_script("T", "t", 0.5))],
        "[[inputs.pythond]]\n  name = 'by-python'\n  cmd = \"python3\"\n  dirs = [\"t\"]\n\n\
         [[inputs.pythond]]\n  name = 'by-pythond'\n  cmd = \"/usr/local/bin/pythond\"\n  dirs = [\"t\"]\n",
    );
    let conf = dir.path().join("conf.d");
    let conf_file = conf.join("pythond/pythond.conf");
    let out = pythond()
        .arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--datakit-dir")
        .arg(dir.path())
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let canon = conf_file.canonicalize().unwrap();
    for (line, name, who) in [
        (1, "by-python", "DataKit runs it with python3"),
        (6, "by-pythond", "DataKit runs it with pythond"),
    ] {
        let at = format!(
            "{}:{line}: [[inputs.pythond]] \"{name}\": skipped",
            canon.display()
        );
        let at_plain = format!(
            "{}:{line}: [[inputs.pythond]] \"{name}\": skipped",
            conf_file.display()
        );
        assert!(
            err.lines()
                .any(|l| (l.contains(&at) || l.contains(&at_plain)) && l.contains(who)),
            "{name}: {err}"
        );
    }
    assert!(err.contains("--run-datakit-blocks"), "{err}");
    assert!(
        err.contains("cmd = \\\"/usr/local/bin/pythond\\\"")
            || err.contains("cmd = \"/usr/local/bin/pythond\""),
        "{err}"
    );
    assert!(dk.all_lines().is_empty(), "nothing ran");

    let check = pythond()
        .args(["check", "--config"])
        .arg(&conf)
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stdout(&check);
    assert!(
        text.contains("who runs it: DataKit runs it with python3; pythond run skips it"),
        "{text}"
    );
    assert!(
        text.contains("who runs it: DataKit runs it with pythond (cmd \"/usr/local/bin/pythond\")"),
        "{text}"
    );
    assert_eq!(
        text.matches("name=\"T\"").count(),
        2,
        "both blocks' scripts are still checked: {text}"
    );

    // The repo's demo: a conf.d without datakit.conf is pythond run's own.
    let demo = pythond()
        .args(["check", "--config"])
        .arg(repo().join("conf.d"))
        .arg("--datakit-dir")
        .arg(repo())
        .output()
        .unwrap();
    assert!(
        stdout(&demo).contains("who runs it: pythond run runs it"),
        "{}",
        stdout(&demo)
    );

    // Told to, run runs them.
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(10, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
}

/// How many points a SIGKILL at a random moment loses at 1 000 points/s:
/// `cargo test --test tests launch::sigkill_loss -- --ignored --nocapture`
/// (`PYTHOND_KILL_TRIALS` trials of each case, default 5). One row per trial:
/// the points the killed worker's completed runs produced, and how many of
/// them DataKit had accepted once a restarted pythond replayed the spool.
#[test]
#[ignore = "a measurement (about 4 minutes); numbers in BENCHMARKS.md"]
fn sigkill_loss_at_1000_points_per_second() {
    let trials: usize = std::env::var("PYTHOND_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // (case, DataKit answers 503 from this long before the kill, the worker is killed too)
    let cases = [
        ("DataKit up, SIGKILL pythond", None, false),
        ("DataKit up, SIGKILL pythond and worker", None, true),
        (
            "DataKit stops (503) at the kill, SIGKILL pythond",
            Some(0),
            false,
        ),
        (
            "DataKit stops (503) at the kill, SIGKILL pythond and worker",
            Some(0),
            true,
        ),
        (
            "DataKit stopped (503) 0.25 s before, SIGKILL pythond",
            Some(250),
            false,
        ),
        (
            "DataKit stopped (503) 0.25 s before, SIGKILL pythond and worker",
            Some(250),
            true,
        ),
    ];
    for trial in 0..trials {
        for (case, datakit_stops, whole_group) in cases {
            let dk = FakeDataKit::start();
            let i = Install::new(&dk.addr().to_string());
            i.script("counter", "python.d/counter");
            i.block("counter", &["counter"], "");
            let roots = [i.path().join("python.d/counter")];
            let mut p = launch(&i.render(&roots, &["counter"]), "counter", &[]);
            assert!(dk.wait_for_lines(500, Duration::from_secs(30)));
            let worker = descendants(p.pid())[0];
            // A random moment 1 to 3 s later.
            let wait = 1000 + (fastrand_digits().parse::<u128>().unwrap() % 2000) as u64;
            std::thread::sleep(Duration::from_millis(wait));
            if let Some(lead) = datakit_stops {
                dk.respond_always(Some(503));
                std::thread::sleep(Duration::from_millis(lead));
            }
            if whole_group {
                // Both at once, as a kill of the whole process group would.
                // SAFETY: kill(2) of processes this test started.
                unsafe {
                    libc::kill(p.pid(), libc::SIGKILL);
                    libc::kill(worker, libc::SIGKILL);
                }
                let _ = p.child.wait();
                eventually(15, "worker gone", || (!alive(worker)).then_some(()));
            } else {
                p.kill9();
            }
            dk.respond_always(None);
            let produced: i64 = std::fs::read_to_string(
                i.path().join(format!("python.d/counter/produced_{worker}")),
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap();
            let _restarted = launch(&i.render(&roots, &["counter"]), "counter", &[]);
            let of_first = || -> Vec<i64> {
                let mut v: Vec<i64> = dk
                    .all_lines()
                    .iter()
                    .map(|l| parse_line(l))
                    .filter(|p| p.tags.contains(&("pid".into(), worker.to_string())))
                    .map(|p| p.fields[0].1.trim_start_matches("i:").parse().unwrap())
                    .collect();
                v.sort();
                v
            };
            // Whatever the restart replays arrives within a few seconds.
            std::thread::sleep(Duration::from_secs(5));
            let got = of_first();
            let mut distinct = got.clone();
            distinct.dedup();
            let lost = (0..produced)
                .filter(|s| distinct.binary_search(s).is_err())
                .count();
            eprintln!(
                "KILL | {case} | trial {trial} | killed {wait} ms in | produced {produced} | arrived {} | lost {lost} | duplicates {} |",
                distinct.len(),
                got.len() - distinct.len()
            );
        }
    }
}

#[test]
fn run_stops_an_input_whose_cmd_is_another_python_and_keeps_the_others() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("g/g.py", &counter_script("G", "g", 0.2))],
        "",
    );
    let python = dir.path().join("bin/python3");
    copy_data("launch/python_other/python3", &python);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        dir.path().join("conf.d/pythond/pythond.conf"),
        format!(
            "[[inputs.pythond]]\n  name = 'bad'\n  cmd = \"{}\"\n  dirs = [\"g\"]\n\n\
             [[inputs.pythond]]\n  name = 'good'\n  cmd = \"python3\"\n  dirs = [\"g\"]\n",
            python.display()
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(20, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    // Restarts would come after 0.2, 0.4, 0.8 s...: give them time to show.
    std::thread::sleep(Duration::from_secs(3));
    let (status, err) = d.stop();
    assert_eq!(status.code(), Some(78), "{err}");
    let starts = err
        .lines()
        .filter(|l| l.contains("worker started") && l.contains("input=bad"))
        .count();
    assert_eq!(starts, 1, "not restarted: {err}");
    assert!(
        err.lines().any(|l| l.contains("input=bad")
            && l.contains("configuration error")
            && l.contains("is Python 3.99")),
        "{err}"
    );
}

#[test]
fn an_edited_script_is_reloaded_without_restarting_datakit_or_pythond() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    copy_data("reload/v1.py", &i.path().join("python.d/edited/edited.py"));
    i.block("edited", &["edited"], "");
    let file = i.render(&[i.path().join("python.d/edited")], &["edited"]);
    let mut p = launch(&file, "edited", &[]);
    let version = |dk: &FakeDataKit| -> Vec<String> {
        dk.all_lines()
            .iter()
            .filter(|l| l.starts_with("version "))
            .map(|l| field(l, "v"))
            .collect()
    };
    assert!(
        dk.wait_until(Duration::from_secs(30), |dk| version(dk)
            .contains(&"i:1".to_owned())),
        "{}",
        i.cli_log(&i.data_dir())
    );
    let script = i.path().join("python.d/edited/edited.py");
    let tmp = script.with_extension("new");
    std::fs::copy(data("reload/v2.py"), &tmp).unwrap();
    std::fs::rename(&tmp, &script).unwrap();
    assert!(
        dk.wait_until(Duration::from_secs(30), |dk| version(dk)
            .contains(&"i:2".to_owned())),
        "the new version runs: {:?}\n{}",
        version(&dk),
        i.cli_log(&i.data_dir())
    );
    assert!(alive(p.child.id() as i32), "the same pythond");
    p.kill9();
}
