//! Starting as DataKit starts pythond: what it finds, where it logs, what
//! it says on DataKit's pipe.

use super::*;

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
fn an_unrecognised_launch_file_is_a_clear_error_and_a_non_zero_exit() {
    let i = Install::new("127.0.0.1:9");
    let not_runner = i.path().join("tmp/pythond_1");
    let not_python = i.path().join("tmp/pythond_2");
    copy_data("launch/not_a_runner.py", &not_runner);
    copy_data("launch/not_python.bin", &not_python);
    let missing = i.path().join("tmp/pythond_3");
    // DataKit's own file for a block whose dirs hold no script: `main("")`.
    let no_scripts = i.render(&[], &[]);
    for (file, what) in [
        (
            &not_runner,
            "no sys.path.append(\"<datakit>/python.d/core\") call",
        ),
        (&not_runner, "no main(\"module\", ...) call"),
        (&not_runner, "not the runner file DataKit renders"),
        (&not_python, "is not Python source"),
        (&missing, "cannot read"),
        (
            &no_scripts,
            "DataKit's runner file for the block, with no script to run: its main() call names no module",
        ),
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

#[test]
fn lines_a_full_pipe_could_not_take_are_counted_in_the_log_and_the_status() {
    let dk = FakeDataKit::start();
    let (i, file) = team_install(&dk.addr().to_string(), "full", "");
    // DataKit stopped reading: not even the start line fits.
    let mut p = launch_with(&file, &["--logname=full"], &[], Pipe::Full);
    assert!(
        dk.wait_for_lines(3, Duration::from_secs(30)),
        "a full pipe blocks nothing: {}",
        i.cli_log(&i.data_dir())
    );
    // While pythond runs (it may never get to say it at exit: SIGKILL).
    eventually(20, "the drop in the log", || {
        let log = i.cli_log(&i.data_dir());
        (log.contains("lines for DataKit's pipe dropped so far") && log.contains("lines=1"))
            .then_some(())
    });
    let status = eventually(20, "the drop in the status", || {
        let out = pythond()
            .args(["status", "--json", "--datakit-dir"])
            .arg(i.path())
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (v["inputs"][0]["pipe_lines_dropped"] == 1).then_some(v)
    });
    assert_eq!(status["inputs"][0]["name"], "full", "{status}");
    // The table and /metrics say it too.
    let table = pythond()
        .args(["status", "--datakit-dir"])
        .arg(i.path())
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("1 lines not written to DataKit's pipe (full)"),
        "{table}"
    );
    let sock = i.data_dir().join("pythond-full.sock");
    let metrics = crate::status::get(&sock, "/metrics");
    assert!(
        metrics.contains("pythond_input_pipe_lines_dropped_total{input=\"full\"} 1"),
        "{metrics}"
    );
    p.kill9();
}
