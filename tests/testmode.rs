//! `pythond test`: the seed demo's points, the script API, class selection,
//! and bad scripts reported without losing the good ones.

use std::process::ExitStatus;

use crate::util::*;

fn points_of(vals: &[serde_json::Value], script: &str) -> Vec<(String, Option<String>, Seen)> {
    vals.iter()
        .filter(|v| v["script"] == script && v.get("line").is_some())
        .map(|v| {
            (
                v["category"].as_str().unwrap().to_owned(),
                v["input"].as_str().map(str::to_owned),
                parse_line(v["line"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn seed_demo_report_variant_gives_two_metrics_with_input() {
    let (out, vals) = test_json(&[&repo().join("python.d/demo/demo.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "Demo");
    assert_eq!(pts.len(), 2, "{vals:?}");
    for ((cat, input, p), m) in pts.iter().zip(["abc", "def"]) {
        assert_eq!(cat, "metric");
        assert_eq!(input.as_deref(), Some("datakitpy"));
        assert_eq!(p.measurement, m);
        assert_eq!(p.tags, kv(&[("t1", "b"), ("t2", "d")]));
        assert_eq!(
            p.fields,
            kv(&[("f1", "i:123"), ("f2", "f:3.4"), ("f3", "s:strval")])
        );
        assert!(p.time.unwrap() > 1_600_000_000_000_000_000, "stamped in ns");
    }
}

#[test]
fn seed_demo_event_variant_gives_one_user_event_from_positional_args() {
    let (out, vals) = test_json(&[&repo().join("python.d/demo/demo_event.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "DemoEvent");
    assert_eq!(pts.len(), 1);
    let (cat, input, p) = &pts[0];
    assert_eq!(cat, "keyevent");
    assert_eq!(input, &None);
    assert_eq!(p.measurement, "measurement");
    assert_eq!(p.tags, kv(&[("tag1", "val1"), ("tag2", "val2")]));
    assert_eq!(
        p.fields,
        kv(&[
            ("df_date_range", "i:10"),
            ("df_source", "s:user"),
            ("df_user_id", "s:user_id"),
            ("df_status", "s:info"),
            ("df_event_id", "s:event_id"),
            ("df_title", "s:title"),
            ("df_message", "s:message"),
            ("custom_key1", "s:custom_value1"),
            ("custom_key2", "s:custom_value2"),
            ("custom_key3", "s:custom_value3"),
        ])
    );
}

#[test]
fn seed_demo_feed_variant_gives_one_metric_with_kwargs_as_fields() {
    let (out, vals) = test_json(&[&repo().join("python.d/demo/demo_feed.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "DemoFeed");
    assert_eq!(pts.len(), 1);
    let (cat, _, p) = &pts[0];
    assert_eq!(cat, "metric");
    assert_eq!(p.measurement, "mydata");
    assert_eq!(
        p.fields,
        kv(&[
            ("custom_field1", "s:val1"),
            ("custom_field2", "i:1000"),
            ("custom_key1", "s:custom_value1"),
            ("custom_key2", "s:custom_value2"),
            ("custom_key3", "s:custom_value3"),
        ])
    );
}

#[test]
fn human_format_groups_by_category_and_flags_what_datakit_rewrites() {
    let dir = tree(&[("s.py", &fixture("testmode/human_format.py"))]);
    let out = pythond()
        .arg("test")
        .arg(dir.path().join("s.py"))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(text.contains("== logging (1 point) =="), "{text}");
    assert!(text.contains("== metric (1 point) =="), "{text}");
    assert!(text.contains("== object (1 point) =="), "{text}");
    assert!(
        text.contains("key \"a.b\" will be renamed \"a_b\""),
        "{text}"
    );
    assert!(
        text.contains("no \"status\": DataKit will set status=unknown"),
        "{text}"
    );
    assert!(
        text.contains("no \"name\": DataKit will set name=default"),
        "{text}"
    );
    assert!(
        text.contains("string field \"s\" will be dropped"),
        "{text}"
    );
}

#[test]
fn types_are_kept_bool_before_int_and_big_ints_unsigned() {
    let dir = tree(&[("t.py", &fixture("testmode/types.py"))]);
    let (out, vals) = test_json(&[&dir.path().join("t.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let p = &points_of(&vals, "T")[0].2;
    assert_eq!(p.tags, kv(&[("n", "5"), ("flag", "true")]));
    assert_eq!(
        p.fields,
        kv(&[
            ("i", "i:7"),
            ("f", "f:1"),
            ("b", "b:false"),
            ("u", "u:18446744073709551615"),
            ("neg", "i:-3")
        ])
    );
}

#[test]
fn report_precision_converts_time_to_nanoseconds() {
    let dir = tree(&[("p.py", &fixture("testmode/precision.py"))]);
    let (out, vals) = test_json(&[&dir.path().join("p.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "P");
    assert_eq!(pts[0].2.time, Some(1_716_544_492_000_000_000));
    assert_eq!(
        pts[1].2.time,
        Some(1_716_544_492_000_000_000),
        "ms guessed from magnitude"
    );
}

#[test]
fn bad_point_raises_value_error_naming_index_and_key_and_queues_nothing_of_that_call() {
    let dir = tree(&[("v.py", &fixture("testmode/bad_point.py"))]);
    let (out, vals) = test_json(&[&dir.path().join("v.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "V");
    assert_eq!(
        pts.len(),
        1,
        "the good point of the failed call is not queued: {pts:?}"
    );
    assert_eq!(pts[0].2.measurement, "caught");
    let msg = &pts[0].2.fields[0].1;
    assert!(msg.contains("point 1"), "{msg}");
    assert!(msg.contains("\"x\""), "{msg}");
}

#[test]
fn event_methods_validate_required_arguments_and_status() {
    let dir = tree(&[("e.py", &fixture("testmode/event_args.py"))]);
    let (out, vals) = test_json(&[&dir.path().join("e.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pts = points_of(&vals, "E");
    assert_eq!(pts.len(), 2, "{pts:?}");
    assert_eq!(pts[0].0, "keyevent");
    assert_eq!(pts[0].2.tags, vec![], "tags=None means no tags");
    let errs = &pts[1].2.fields;
    assert_eq!(errs[0].1, "s:arguments missing \"df_user_id\"");
    assert!(
        errs[1]
            .1
            .starts_with("s:argument \"df_status\" must be one of ok, info"),
        "{errs:?}"
    );
    assert_eq!(errs[2].1, "s:arguments missing \"df_dimension_tags\"");
}

#[test]
fn only_classes_defined_in_the_module_that_override_run_are_instantiated() {
    let dir = fixture_tree("testmode/classes");
    let (out, vals) = test_json(&[dir.path()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let names: Vec<&str> = vals.iter().map(|v| v["script"].as_str().unwrap()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "Real").count(),
        1,
        "imported class not run twice: {names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "Child").count(),
        1,
        "{names:?}"
    );
    assert!(
        !names.contains(&"Base"),
        "base class without run() is not instantiated: {names:?}"
    );
}

#[test]
fn broken_scripts_fail_the_test_and_name_their_file_but_others_still_run() {
    let dir = fixture_tree("testmode/broken");
    let (out, vals) = test_json(&[dir.path()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("syntax.py") && err.contains("SyntaxError"),
        "{err}"
    );
    assert!(
        err.contains("missing.py")
            && err.contains("ModuleNotFoundError: No module named 'no_such_module_xyz'"),
        "{err}"
    );
    assert!(
        err.contains("RuntimeError: boom in run") && err.contains("Traceback"),
        "{err}"
    );
    assert_eq!(points_of(&vals, "G").len(), 1, "the good script still ran");
}

#[test]
fn times_runs_every_script_again_after_the_pause_so_deltas_show() {
    let dir = tree(&[("delta.py", &fixture("testmode/delta.py"))]);
    let out = pythond()
        .args([
            "test",
            "--format",
            "json",
            "--times",
            "3",
            "--pause-secs",
            "0.3",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let vals: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let deltas: Vec<f64> = points_of(&vals, "delta")
        .iter()
        .map(|(_, _, p)| p.fields[0].1.trim_start_matches("f:").parse().unwrap())
        .collect();
    assert_eq!(deltas.len(), 2, "runs 2 and 3 report a delta: {vals:?}");
    assert!(deltas.iter().all(|d| *d >= 0.3), "{deltas:?}");
    let status = vals
        .iter()
        .find_map(|v| v.get("script_status"))
        .expect("a status line per script");
    assert_eq!(status["runs"], 3);
    assert_eq!(status["state"], "ok");
    assert_eq!(status["points"]["metric"], 2);
}

#[test]
fn a_process_a_script_started_ends_with_pythond_test() {
    let dir = fixture_tree("testmode/starts_process");
    let out = pythond().arg("test").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: i32 = std::fs::read_to_string(dir.path().join("pid.txt"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !running(pid),
        "the script's `sleep` {pid} outlived pythond test"
    );
}

#[test]
fn the_status_block_shows_each_script_with_its_runs_points_and_error() {
    let dir = fixture_tree("testmode/broken");
    let out = pythond().arg("test").arg(dir.path()).output().unwrap();
    assert!(!out.status.success());
    let text = stdout(&out);
    let block = &text[text.find("== scripts ==").expect("a status block")..];
    assert!(
        block
            .lines()
            .any(|l| l.starts_with("good.") && l.contains(": ok, 1 run")),
        "{block}"
    );
    let raises = block
        .lines()
        .position(|l| l.starts_with("raises.") && l.contains("failing"))
        .unwrap_or_else(|| panic!("{block}"));
    let after: Vec<&str> = block.lines().skip(raises + 1).collect();
    assert!(
        after[0].trim_start().starts_with("Traceback"),
        "the traceback follows the failing script: {block}"
    );
}

#[test]
fn config_and_input_test_the_block_as_configured() {
    let dir = DataKitDir::new(
        "127.0.0.1:9",
        &[],
        "[[inputs.pythond]]\n  name = 'conf'\n  cmd = 'python3'\n  dirs = ['c']\n  envs = ['PYTHOND_TEST_FROM_ENVS=yes']\n  [inputs.pythond.tags]\n    from_block = 'tag'\n",
    );
    crate::fixtures::copy_data("testmode/configured", &dir.path().join("python.d/c"));
    let out = pythond()
        .args(["test", "--format", "json", "--config"])
        .arg(dir.path().join("conf.d"))
        .args(["--input", "conf", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let vals: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pts = points_of(&vals, "configured");
    assert_eq!(pts.len(), 1, "{vals:?}");
    let p = &pts[0].2;
    assert_eq!(
        p.tags,
        kv(&[("from_block", "tag")]),
        "the block's tags apply"
    );
    assert_eq!(
        p.fields,
        kv(&[("from_env", "s:yes")]),
        "the block's envs reach the script"
    );
    let missing = pythond()
        .args(["test", "--config"])
        .arg(dir.path().join("conf.d"))
        .args(["--input", "nope", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no [[inputs.pythond]] block named \"nope\""),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn an_edit_with_the_same_size_and_mtime_is_run_not_a_stale_bytecode_cache() {
    // CPython trusts a cached .pyc whose source has the same mtime (whole
    // seconds) and size: an edit saved within the second would run the old
    // code. Scripts are always compiled from source, and no __pycache__ is
    // written into their folders.
    let dir = tree(&[("edited.py", &fixture("reload/v1.py"))]);
    let script = dir.path().join("edited.py");
    let version = |dir: &std::path::Path| -> String {
        let (out, vals) = test_json(&[dir]);
        assert!(out.status.success(), "{}", stderr(&out));
        let seen = parse_line(vals[0]["line"].as_str().unwrap());
        seen.fields[0].1.clone()
    };
    assert_eq!(version(dir.path()), "i:1");
    assert!(
        !dir.path().join("__pycache__").exists(),
        "no bytecode cache written beside the script"
    );
    // A cache as the original's python3 leaves it (folders migrated from
    // the original have them).
    let compiled = std::process::Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(&script)
        .env_remove("PYTHONDONTWRITEBYTECODE")
        .status()
        .unwrap();
    assert!(compiled.success());
    assert!(dir.path().join("__pycache__").is_dir());
    let mtime = std::fs::metadata(&script).unwrap().modified().unwrap();
    let v2 = fixture("reload/v2.py");
    assert_eq!(v2.len(), fixture("reload/v1.py").len(), "same size");
    std::fs::write(&script, v2).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&script)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(version(dir.path()), "i:2", "the edit runs");
}

// ------------------------------------------------------------- timeouts

/// `pythond test` with `args`, bounded by `limit_secs`: (exit status,
/// stdout, stderr, seconds it took).
fn bounded_test(args: &[&std::ffi::OsStr], limit_secs: u64) -> (ExitStatus, String, String, f64) {
    let t = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (t.path().join("out"), t.path().join("err"));
    let child = pythond()
        .arg("test")
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut c = crate::fixtures::Bounded::new(child);
    let status = c.wait_for(limit_secs);
    let took = c.started.elapsed().as_secs_f64();
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("pythond test still running {limit_secs} s after start:\n{out}\n{err}")
    });
    (status, out, err, took)
}

/// A DataKit dir whose block `spin` runs `names/loop_no_timeout` (a run()
/// that loops, its class setting no timeout, and a normal script) with
/// `extra` block keys; the `pythond test --config --input spin` arguments.
fn looping_block(extra: &str) -> (DataKitDir, Vec<std::ffi::OsString>) {
    let dir = crate::fixtures::datakit_with(
        "127.0.0.1:9",
        &[("names/loop_no_timeout", "l")],
        &crate::fixtures::block("spin", &["l"], extra),
    );
    let args = vec![
        "--format".into(),
        "json".into(),
        "--config".into(),
        dir.path().join("conf.d").into_os_string(),
        "--input".into(),
        "spin".into(),
        "--datakit-dir".into(),
        dir.path().as_os_str().to_owned(),
    ];
    (dir, args)
}

fn os(v: &[std::ffi::OsString]) -> Vec<&std::ffi::OsStr> {
    v.iter().map(|s| s.as_os_str()).collect()
}

#[test]
fn test_with_config_applies_the_blocks_timeout_to_a_class_without_one() {
    let (_dir, args) = looping_block("  timeout = \"2s\"");
    // 2 s, then the interrupt; 20 s leaves room for a loaded machine, and is
    // well below the 30 s default that would apply without the block's.
    let (status, out, err, took) = bounded_test(&os(&args), 20);
    assert!(!status.success(), "a timed-out run fails the test:\n{err}");
    assert!(took < 25.0, "ended after {took:.1} s");
    assert!(
        out.contains("\"measurement\":\"normal\""),
        "the other script's points are printed:\n{out}"
    );
    assert!(
        err.contains(
            "error: script loops_on (loops_on.LoopsOn): run() did not return within its timeout \
             of 2 s (the input block's `timeout`) and was interrupted (run() is called every \
             interval and must return; if one run needs longer, raise the input block's \
             `timeout = \"60s\"`, or set the class attribute `timeout = <seconds>` for this \
             script alone):"
        ),
        "the block's timeout is named as the one that applied:\n{err}"
    );
    assert!(err.contains("RunTimeout"), "the traceback is shown:\n{err}");
}

#[test]
fn test_with_config_lets_the_class_timeout_win_over_the_blocks() {
    // The block says 60 s; the class's 2 s applies.
    let dir = crate::fixtures::datakit_with(
        "127.0.0.1:9",
        &[("names/loop", "l")],
        &crate::fixtures::block("spin", &["l"], "  timeout = \"60s\""),
    );
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        dir.path().join("conf.d").into_os_string(),
        "--input".into(),
        "spin".into(),
        "--datakit-dir".into(),
        dir.path().as_os_str().to_owned(),
    ];
    let (status, _, err, took) = bounded_test(&os(&args), 20);
    assert!(!status.success(), "{err}");
    assert!(
        took < 25.0,
        "ended after {took:.1} s, not after the block's 60 s"
    );
    assert!(
        err.contains(
            "run() did not return within its timeout of 2 s (the class attribute `timeout`)"
        ),
        "{err}"
    );
}

#[test]
fn test_applies_the_default_timeout_when_neither_class_nor_block_sets_one() {
    // Interval 10 s: the default is 30 s (twice the interval, at least 30 s).
    let (_dir, args) = looping_block("");
    let (status, out, err, took) = bounded_test(&os(&args), 75);
    assert!(!status.success(), "{err}");
    assert!(
        took >= 29.0,
        "not interrupted before the default 30 s: {took:.1} s"
    );
    assert!(
        out.contains("\"measurement\":\"normal\""),
        "the other script's points are printed:\n{out}"
    );
    assert!(
        err.contains(
            "error: script loops_on (loops_on.LoopsOn): run() did not return within its timeout \
             of 30 s (the default: twice the interval, at least 30s) and was interrupted (run() \
             is called every interval and must return; if one run needs longer, set the class \
             attribute `timeout = <seconds>` or the input block's `timeout = \"60s\"`):"
        ),
        "the default is named as the timeout that applied:\n{err}"
    );
}
