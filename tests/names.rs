//! Script files named like Python's own modules or installed
//! packages must not shadow them, and `pythond test` must end even when a
//! run() never returns. Real script folders from `tests/data/names/`.
//!
//! Assumed wording for the name collisions: a message that names the file
//! (`json.py`) and says to rename it (contains "rename"), e.g.
//! `json.py: module "json" collides with the standard library's json; rename the file`.

use std::process::Stdio;
use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `tests/data/names/<folder>` copied into a new temp dir as `s/`.
fn folder(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let s = t.path().join("s");
    copy_data(&format!("names/{name}"), &s);
    (t, s)
}

/// The string field `key` of a point (without the `s:` type prefix).
fn field(p: &Seen, key: &str) -> Option<String> {
    p.fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.split_once(':').map(|(_, v)| v).unwrap_or(v).to_owned())
}

fn points_named(vals: &[serde_json::Value], measurement: &str) -> Vec<Seen> {
    vals.iter()
        .filter(|v| v["measurement"] == measurement)
        .map(|v| parse_line(v["line"].as_str().unwrap()))
        .collect()
}

// --------------------------------------------- script files named like modules

#[test]
fn test_command_runs_the_other_scripts_beside_json_py_and_says_to_rename_it() {
    let (_t, s) = folder("json_collision");
    let (out, vals) = test_json(&[&s]);
    let err = stderr(&out);
    let user = points_named(&vals, "user");
    assert_eq!(user.len(), 1, "user.py ran beside json.py: {vals:?}\n{err}");
    let json_file = field(&user[0], "json_file").unwrap();
    assert!(
        !json_file.starts_with(&s.display().to_string()),
        "user.py got the standard json, not the script: {json_file}"
    );
    assert!(
        mentions_all(&err, &["json.py", "rename"]),
        "a message names json.py and says to rename it:\n{err}"
    );
}

#[test]
fn daemon_keeps_the_input_running_beside_json_py_and_says_to_rename_it() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("names/json_collision", "s")],
        &block("collide", &["s"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| {
        dk.all_lines()
            .iter()
            .filter(|l| parse_line(l).measurement == "user")
            .count()
            >= 2
    });
    let (_, err) = d.stop();
    assert!(ran, "user.py's points arrive beside json.py:\n{err}");
    assert!(
        mentions_all(&err, &["json.py", "rename"]),
        "the log names json.py and says to rename it:\n{err}"
    );
}

#[test]
fn cmd_py_does_not_replace_the_standard_cmd_module_that_pdb_uses() {
    let (_t, s) = folder("cmd_collision");
    let (out, vals) = test_json(&[&s]);
    let err = stderr(&out);
    let used = points_named(&vals, "uses_pdb");
    assert_eq!(
        used.len(),
        1,
        "uses_pdb.py ran beside cmd.py: {vals:?}\n{err}"
    );
    let cmd_file = field(&used[0], "cmd_file").unwrap();
    assert!(
        !cmd_file.starts_with(&s.display().to_string()),
        "the standard cmd module, not the script: {cmd_file}"
    );
    assert_eq!(field(&used[0], "pdb_is_a_cmd").as_deref(), Some("true"));
    assert!(
        mentions_all(&err, &["cmd.py", "rename"]),
        "a message names cmd.py and says to rename it:\n{err}"
    );
}

/// A venv of the `python3` on PATH (no pip, no network) with a stand-in
/// `requests` package in its site-packages: (its python, its site-packages).
fn venv_with_requests(at: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let venv = at.join("venv");
    let out = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    let python = venv.join("bin/python3");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let site = std::path::PathBuf::from(stdout(&out).trim());
    copy_data("names/site/requests", &site.join("requests"));
    (python, site)
}

/// A DataKit dir whose block `collide` runs `python.d/s` with `cmd` the
/// venv's python: its `requests` is an installed package.
fn block_with_venv(scripts: &[(&str, &str)]) -> (DataKitDir, std::path::PathBuf) {
    let dir = DataKitDir::new("127.0.0.1:9", &[], "");
    let (python, site) = venv_with_requests(dir.path());
    for (src, dst) in scripts {
        copy_data(src, &dir.path().join("python.d").join(dst));
    }
    std::fs::write(
        dir.path().join("conf.d/pythond/pythond.conf"),
        format!(
            "[[inputs.pythond]]\n  name = 'collide'\n  cmd = {:?}\n  dirs = ['s']\n",
            python.display().to_string()
        ),
    )
    .unwrap();
    (dir, site)
}

#[test]
fn requests_py_does_not_shadow_the_installed_requests_package() {
    let (dir, site) = block_with_venv(&[("names/package_collision", "s")]);
    let out = pythond()
        .args(["test", "--format", "json", "--config"])
        .arg(dir.path().join("conf.d"))
        .args(["--input", "collide", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let err = stderr(&out);
    let vals: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("script_status").is_none())
        .collect();
    let used = points_named(&vals, "uses_requests");
    assert_eq!(
        used.len(),
        1,
        "uses_requests.py ran beside requests.py: {vals:?}\n{err}"
    );
    // The venv's stand-in (the packages scripts see are cmd's only): the
    // installed package, not the script.
    let file = std::path::PathBuf::from(field(&used[0], "requests_file").unwrap());
    assert_eq!(
        file,
        site.join("requests/__init__.py"),
        "the venv's installed requests, not the script"
    );
    assert_eq!(field(&used[0], "has_session").as_deref(), Some("true"));
    assert!(
        err.lines().any(|l| l.contains(
            "requests.py: not imported: its module name \"requests\" is the installed package requests ("
        ) && l.contains("rename the file")),
        "a message names requests.py and says to rename it:\n{err}"
    );
}

#[test]
fn check_lists_script_files_named_like_standard_or_installed_modules() {
    let (dir, _) = block_with_venv(&[
        ("names/json_collision", "s"),
        ("names/package_collision/requests.py", "s/requests.py"),
    ]);
    let out = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("user.User"),
        "the other script is listed:\n{text}"
    );
    for file in ["json.py", "requests.py"] {
        assert!(
            text.lines()
                .any(|l| l.contains(file) && l.to_ascii_lowercase().contains("rename")),
            "{file} is listed with the advice to rename it:\n{text}"
        );
    }
}

#[test]
fn a_script_in_a_subfolder_named_like_a_standard_module_runs_and_shadows_nothing() {
    let (_t, s) = folder("subfolder");
    let (out, vals) = test_json(&[&s]);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "sub/json.py is module sub.json:\n{err}"
    );
    let p = points_named(&vals, "sub_json");
    assert_eq!(p.len(), 1, "{vals:?}\n{err}");
    let json_file = field(&p[0], "json_file").unwrap();
    assert!(
        !json_file.starts_with(&s.display().to_string()),
        "the script's own `import json` got the standard json: {json_file}"
    );
}

#[test]
fn a_copy_of_datakit_framework_among_the_scripts_is_a_note_not_the_framework() {
    let (_t, s) = folder("framework_copy");
    let (out, vals) = test_json(&[&s]);
    let err = stderr(&out);
    assert!(out.status.success(), "a note, not a failure:\n{err}");
    assert_eq!(points_named(&vals, "user").len(), 1, "{vals:?}\n{err}");
    assert!(
        err.lines().any(|l| l.starts_with("note: ")
            && l.contains("datakit_framework.py")
            && l.contains("pythond provides datakit_framework itself")),
        "{err}"
    );
}

#[test]
fn a_helper_module_a_script_imports_by_name_is_executed_once() {
    let (_t, s) = folder("helper_once");
    let (out, vals) = test_json(&[&s]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let p = points_named(&vals, "collector");
    assert_eq!(p.len(), 1, "{vals:?}\n{err}");
    let get = |k: &str| {
        p[0].fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("helper_loads").as_deref(), Some("i:1"), "{:?}", p[0]);
    assert_eq!(get("same_module").as_deref(), Some("b:true"), "{:?}", p[0]);
}

// ----------------------------------------------------------- pythond test ends

#[test]
fn test_command_ends_on_a_run_that_loops_past_its_timeout() {
    let (t, s) = folder("loop");
    let out_path = t.path().join("out");
    let err_path = t.path().join("err");
    let child = pythond()
        .args(["test", "--format", "json"])
        .arg(&s)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut c = Bounded::new(child);
    // timeout = 2 in the class; 15 s leaves room for a loaded machine.
    let status = c.wait_for(15);
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("pythond test still running 15 s after start (timeout = 2):\n{out}\n{err}")
    });
    assert!(!status.success(), "a timed-out run fails the test:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("\"measurement\":\"normal\"")),
        "the other script's points are printed:\n{out}"
    );
    assert!(
        err.contains("Traceback") && err.contains("RunTimeout") && err.contains("loops.py"),
        "the traceback at the interruption point is shown:\n{err}"
    );
    assert!(
        err.contains(
            "error: script loops (loops.Loops): run() did not return within its timeout of 2 s \
             (the class attribute `timeout`) and was interrupted (run() is called every interval \
             and must return; if one run needs longer, raise the class attribute `timeout = \
             <seconds>` (the input block's `timeout` does not apply to a class that sets its \
             own)):"
        ),
        "the class attribute is named as the timeout's source and knob:\n{err}"
    );
}

#[test]
fn test_command_ends_on_a_run_blocked_in_c_after_the_hang_grace() {
    let (t, s) = folder("blocked_in_c");
    let out_path = t.path().join("out");
    let err_path = t.path().join("err");
    let child = pythond()
        .args(["test", "--format", "json"])
        .arg(&s)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = Bounded::new(child);
    // timeout = 1 in the class, then the hang grace (5 s by default).
    let status = c.wait_for(30);
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("pythond test still running 30 s after start (timeout = 1):\n{out}\n{err}")
    });
    assert!(!status.success(), "a hung run fails the test:\n{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("\"measurement\":\"normal\"")),
        "the other script's points are printed:\n{out}"
    );
    // Assumed wording: names the script and says it is hung (as the daemon
    // says "is hung"), or blocked / cannot be interrupted.
    let lower = err.to_ascii_lowercase();
    assert!(
        err.contains("sleeps_in_c")
            && (lower.contains("hung")
                || lower.contains("blocked")
                || lower.contains("cannot be interrupted")),
        "it says the run was hung:\n{err}"
    );
}

#[test]
fn test_command_ends_when_a_hung_run_holds_the_interpreter() {
    let (t, s) = folder("wedged");
    let out_path = t.path().join("out");
    let err_path = t.path().join("err");
    let child = pythond()
        .args(["test", "--format", "json"])
        .arg(&s)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = Bounded::new(child);
    // timeout = 1, the hang grace (5 s), then as long again to see that the
    // interpreter stays held.
    let status = c.wait_for(40);
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status
        .unwrap_or_else(|| panic!("pythond test still running 40 s after start:\n{out}\n{err}"));
    assert!(!status.success(), "{err}");
    assert!(
        out.contains("\"measurement\":\"holds_the_gil_started\""),
        "what the hung run reported before it hung is printed:\n{out}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("holds_the_gil") && l.contains("hung")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.contains("script normal")
            && l.contains("not run: the hung run of holds_the_gil holds the interpreter")),
        "{err}"
    );
}

// --------------------------------------------------------- the timeout message
//
// The timeout line names the script, says run() is called every interval
// and must return, and names the setting that gave the timeout and the one
// to raise: the class's `timeout` wins over the block's, so raising the
// block's would change nothing for a class that sets its own.

/// The daemon on `fixture` (of `tests/data/`) copied to `python.d/<dest>`,
/// as input `spin` with `extra` block keys; its stderr once a run timed out.
fn daemon_until_a_timeout(fixture: &str, dest: &str, extra: &str) -> String {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[(fixture, dest)],
        &block("spin", &["l"], extra),
    );
    let d = Daemon::start(&dir, &[]);
    let le = dk.wait_until(Duration::from_secs(30), |dk| {
        dk.requests().iter().any(|r| r.path == "/v1/lasterror")
    });
    let (_, err) = d.stop();
    assert!(le, "the run timed out and was reported:\n{err}");
    err
}

#[test]
fn daemon_timeout_message_names_the_class_attribute_that_set_the_timeout() {
    // The block's timeout is longer: the class's 2 s applies.
    let err = daemon_until_a_timeout("names/loop/loops.py", "l/loops.py", "  timeout = \"60s\"");
    assert!(
        err.lines().any(|l| l.contains(
            "run() of loops exceeded its timeout (2s, the class attribute `timeout`) and is \
             interrupted: run() is called every interval (10s) and must return each time, not \
             loop; if one run needs longer, raise the class attribute `timeout = <seconds>` \
             (the input block's `timeout` does not apply to a class that sets its own)"
        )),
        "the line tells the author to raise the class attribute:\n{err}"
    );
}

#[test]
fn daemon_timeout_message_names_the_blocks_timeout_when_it_applied() {
    let err = daemon_until_a_timeout("names/loop_no_timeout", "l", "  timeout = \"1s\"");
    assert!(
        err.lines().any(|l| l.contains(
            "run() of loops_on exceeded its timeout (1s, the input block's `timeout`) and is \
             interrupted: run() is called every interval (10s) and must return each time, not \
             loop; if one run needs longer, raise the input block's `timeout = \"60s\"`, or \
             set the class attribute `timeout = <seconds>` for this script alone"
        )),
        "the line tells the author to raise the block's timeout:\n{err}"
    );
}
