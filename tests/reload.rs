//! Hot reload and the memory limit, on a running daemon: an edit
//! restarts only its input, a broken edit keeps the old version running and
//! says why, blocks come and go, the other inputs keep their ticks, nothing
//! is lost; a leaking worker is restarted at its limit with its points
//! delivered.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

pub(crate) fn input<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["inputs"].as_array()?.iter().find(|i| i["name"] == name)
}

/// Versions (`v` field) of the `version` points, in arrival order.
pub(crate) fn versions(dk: &FakeDataKit) -> Vec<i64> {
    dk.all_lines()
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == "version")
        .map(|p| p.fields[0].1.trim_start_matches("i:").parse().unwrap())
        .collect()
}

/// Write `text` to `path` as an editor would: a new file renamed over it.
pub(crate) fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A DataKit dir with two inputs: `steady` (a counter every second) and
/// `edited` (tests/data/reload/v1.py).
pub(crate) fn two_inputs(dk: &FakeDataKit) -> DataKitDir {
    let conf = block("steady", &["steady"], "") + &block("edited", &["edited"], "");
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("reload/v1.py", "edited/edited.py")],
        &conf,
    );
    std::fs::create_dir_all(dir.path().join("python.d/steady")).unwrap();
    std::fs::write(
        dir.path().join("python.d/steady/steady.py"),
        counter_script("Steady", "steady", 1.0),
    )
    .unwrap();
    dir
}

/// The steady input kept its ticks (no gap over twice its 1 s interval,
/// with a half second of slack: reloads start interpreters on a loaded
/// 2-core machine) and every point it produced arrived, once, in order.
pub(crate) fn steady_unaffected(dk: &FakeDataKit, from: SystemTime, until: SystemTime) {
    let lines = dk.all_lines();
    assert_kept_ticking(
        &run_times(&lines, "steady"),
        from,
        until,
        Duration::from_millis(2500),
    );
    let got = seq_of(&lines, "steady");
    assert_eq!(
        got,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "the steady input was never restarted and lost nothing"
    );
}

#[test]
fn an_edit_restarts_only_its_input_and_a_broken_one_keeps_the_old_version() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    let d = Daemon::start(&dir, &[]);
    eventually(30, "both inputs report", || {
        (versions(&dk).contains(&1) && !seq_of(&dk.all_lines(), "steady").is_empty()).then_some(())
    });
    let from = SystemTime::now();
    let steady_pid = |v: &Value| input(v, "steady").and_then(|i| i["pid"].as_u64());
    let edited_pid = |v: &Value| input(v, "edited").and_then(|i| i["pid"].as_u64());
    let pid_before = steady_pid(&status(dir.path())).unwrap();
    let edited_before = edited_pid(&status(dir.path())).unwrap();
    let script = dir.path().join("python.d/edited/edited.py");

    // A broken edit: the old version goes on, the error is shown.
    save(&script, &fixture("reload/broken.py"));
    let err = eventually(30, "the reload error in status", || {
        let v = status(dir.path());
        input(&v, "edited")?["reload_error"]["message"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(
        err.contains("refused") && err.contains("SyntaxError"),
        "{err}"
    );
    let n = versions(&dk).len();
    eventually(10, "v1 still reporting after the broken edit", || {
        (versions(&dk).len() > n + 2).then_some(())
    });
    let v = status(dir.path());
    assert_eq!(
        edited_pid(&v),
        Some(edited_before),
        "the worker of the version that runs was left alone"
    );
    assert_eq!(input(&v, "edited").unwrap()["restarts"], 0, "{v}");
    // Sent (and logged) after the status shows it: waited for.
    assert!(
        lasterror_has(&dk, "edited", "SyntaxError"),
        "the refusal reached DataKit's lasterror"
    );
    eventually(10, "the refusal in the log", || {
        d.cli_log()
            .contains("reload of input \"edited\" refused")
            .then_some(())
    });

    // The fix: v2 runs, the error is gone.
    save(&script, &fixture("reload/v2.py"));
    eventually(30, "v2 reporting", || {
        versions(&dk).contains(&2).then_some(())
    });
    eventually(10, "the reload error cleared", || {
        let v = status(dir.path());
        input(&v, "edited")?["reload_error"].is_null().then_some(())
    });
    let v = versions(&dk);
    let first_v2 = v.iter().position(|x| *x == 2).unwrap();
    assert!(
        v[first_v2..].iter().all(|x| *x == 2),
        "once v2 runs, v1 is gone: {v:?}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let until = SystemTime::now();
    assert_eq!(
        steady_pid(&status(dir.path())),
        Some(pid_before),
        "the other input's worker was not restarted"
    );
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    steady_unaffected(&dk, from, until);
}

#[test]
fn a_module_starting_a_process_at_import_reloads_and_the_dry_loads_process_ends() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    let d = Daemon::start(&dir, &[]);
    eventually(30, "v1 reporting", || {
        versions(&dk).contains(&1).then_some(())
    });
    let script = dir.path().join("python.d/edited/edited.py");
    // The dry load imports it first (its `sleep` holds the dry load's pipes
    // open after it exits), then the new worker.
    save(&script, &fixture("reload/v2_starts_a_process.py"));
    eventually(30, "v2 reporting", || {
        versions(&dk).contains(&2).then_some(())
    });
    let v = status(dir.path());
    assert!(
        input(&v, "edited").unwrap()["reload_error"].is_null(),
        "{v}"
    );
    let pids: Vec<i32> = std::fs::read_to_string(dir.path().join("pids.txt"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(
        pids.len(),
        2,
        "the dry load's import, the worker's: {pids:?}"
    );
    eventually(5, "the dry load's process ended with it", || {
        (!running(pids[0])).then_some(())
    });
    assert!(
        running(pids[1]),
        "the running worker's process lives with it"
    );
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    eventually(5, "the worker's process ended with it", || {
        (!running(pids[1])).then_some(())
    });
}

#[test]
fn adding_and_removing_a_block_starts_and_stops_just_that_input() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    let d = Daemon::start(&dir, &[]);
    eventually(30, "both inputs report", || {
        (versions(&dk).contains(&1) && !seq_of(&dk.all_lines(), "steady").is_empty()).then_some(())
    });
    let from = SystemTime::now();
    // A new block in a new file.
    std::fs::create_dir_all(dir.path().join("python.d/added")).unwrap();
    std::fs::write(
        dir.path().join("python.d/added/added.py"),
        counter_script("Added", "added", 0.3),
    )
    .unwrap();
    let conf = dir.path().join("conf.d/pythond/added.conf");
    save(&conf, &block("added", &["added"], ""));
    eventually(30, "the new input reports", || {
        (!seq_of(&dk.all_lines(), "added").is_empty()).then_some(())
    });
    eventually(10, "the new input in status", || {
        input(&status(dir.path()), "added").map(|_| ())
    });
    // ... and removed again.
    std::fs::remove_file(&conf).unwrap();
    eventually(30, "the input stopped", || {
        let gone = input(&status(dir.path()), "added").is_none()
            && !workers(d.pid()).iter().any(|(_, n)| n == "added");
        gone.then_some(())
    });
    let produced_added = produced(&dir, "added", "Added");
    let arrived = seq_of(&dk.all_lines(), "added");
    assert_eq!(
        arrived,
        (0..produced_added as i64).collect::<Vec<_>>(),
        "everything the removed input produced arrived before it stopped"
    );
    std::thread::sleep(Duration::from_millis(1000));
    let until = SystemTime::now();
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    steady_unaffected(&dk, from, until);
}

#[test]
fn sighup_reloads_an_edited_block() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    // No file watching: only the signal can tell pythond.
    let d = Daemon::start(&dir, &["--no-watch"]);
    eventually(30, "edited reports", || {
        versions(&dk).contains(&1).then_some(())
    });
    let conf = dir.path().join("conf.d/pythond/pythond.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let edited = text.replace(
        "name = 'edited'\n  cmd = \"python3\"\n  dirs = [\"edited\"]\n",
        "name = 'edited'\n  cmd = \"python3\"\n  dirs = [\"edited\"]\n  [inputs.pythond.tags]\n  reloaded = \"yes\"\n",
    );
    assert_ne!(text, edited);
    save(&conf, &edited);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !dk.all_lines()
            .iter()
            .any(|l| l.starts_with("version,reloaded=yes")),
        "not reloaded before the signal"
    );
    unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    eventually(30, "points with the new tag", || {
        dk.all_lines()
            .iter()
            .any(|l| l.starts_with("version,reloaded=yes"))
            .then_some(())
    });
    // With nothing changed, SIGHUP still restarts every input (a script may
    // read a data file of its own at import).
    let pid = |name: &str| input(&status(dir.path()), name).and_then(|i| i["pid"].as_u64());
    let before = eventually(10, "a pid", || pid("steady"));
    unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    eventually(30, "a new worker after SIGHUP", || {
        pid("steady").filter(|p| *p != before).map(|_| ())
    });
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
}

#[test]
fn a_leaking_worker_is_restarted_at_max_rss_and_nothing_is_lost() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/leak.py", "leak/leak.py")],
        &block("leak", &["leak"], "  max_rss = \"80MiB\""),
    );
    let d = Daemon::start(&dir, &[]);
    let v = eventually(60, "a restart at the memory limit", || {
        let v = status(dir.path());
        (input(&v, "leak")?["rss_restarts"].as_u64() >= Some(1)).then_some(v)
    });
    let i = input(&v, "leak").unwrap();
    assert_eq!(i["max_rss_bytes"], 80 << 20);
    assert!(
        i["last_exit"]["message"]
            .as_str()
            .unwrap()
            .contains("max_rss"),
        "{i}"
    );
    // The restarted worker goes on reporting, from another process.
    eventually(30, "points from a second worker", || {
        let pids: std::collections::BTreeSet<String> = dk
            .all_lines()
            .iter()
            .map(|l| parse_line(l))
            .filter_map(|p| {
                p.fields
                    .iter()
                    .find(|(k, _)| k == "pid")
                    .map(|(_, v)| v.clone())
            })
            .collect();
        (pids.len() >= 2).then_some(())
    });
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    let produced: i64 = std::fs::read_to_string(dir.path().join("python.d/leak/leak_seq"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut got = seq_of(&dk.all_lines(), "leak");
    got.sort();
    got.dedup();
    assert_eq!(
        got,
        (0..produced).collect::<Vec<_>>(),
        "every point produced, before and after the restart, arrived"
    );
    assert!(d_log_mentions(&dir, "passed max_rss"));
}

fn d_log_mentions(dir: &DataKitDir, what: &str) -> bool {
    std::fs::read_to_string(dir.path().join("logs/_datakit_pythond_cli.log"))
        .unwrap_or_default()
        .contains(what)
}
