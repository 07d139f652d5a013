//! The README's promises (at-least-once delivery, crash containment,
//! bad data costs only itself) where an independent review found they do not
//! hold. Real processes, real script files from `tests/data/promises/`, a real
//! loopback DataKit (testkit) that can be frozen.
//!
//! Each test fails against the code it was written for and is ignored until
//! the fix lands.

use std::process::Stdio;
use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

// -------------------------------------------------------- seconds out of range
//
// Assumed wording: the error names the script (its file `forever.py`, its
// module or its `name`, all `forever`) and the attribute (`interval`,
// `timeout`) on one line; for the config, the block's name and the key
// `timeout` on one line, like the other config errors.

const INVALID: [(&str, &str); 3] = [
    ("forever", "interval"), // interval = float('inf')
    ("eons", "interval"),    // interval = 1e300
    ("patient", "timeout"),  // timeout = 1e300
];

fn names_each_invalid_script(text: &str) -> bool {
    INVALID.iter().all(|(script, attr)| {
        text.lines()
            .any(|l| l.contains(script) && l.to_ascii_lowercase().contains(attr))
    })
}

#[test]
fn test_command_reports_infinite_and_huge_intervals_and_timeouts_without_panicking() {
    let t = tempfile::tempdir().unwrap();
    copy_data("promises/invalid_numbers", &t.path().join("s"));
    let (out, vals) = test_json(&[&t.path().join("s")]);
    let err = stderr(&out);
    assert_no_panic(&err);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a load error, not a crash: {err}"
    );
    assert!(
        names_each_invalid_script(&err),
        "each bad script is named with its attribute:\n{err}"
    );
    assert!(
        vals.iter().any(|v| v["measurement"] == "healthy"),
        "the healthy script still ran: {vals:?}"
    );
}

#[test]
fn check_reports_a_huge_config_timeout_naming_the_block_without_panicking() {
    let dir = datakit_with(
        "127.0.0.1:9",
        &[
            ("promises/healthy", "healthy"),
            ("promises/healthy/healthy.py", "other/fine.py"),
        ],
        &(block("huge", &["healthy"], "  timeout = \"1e20s\"") + &block("fine", &["other"], "")),
    );
    let out = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_no_panic(&text);
    assert!(
        text.lines()
            .any(|l| l.contains("\"huge\"") && l.contains("timeout")),
        "the error names the block and the key:\n{text}"
    );
    assert!(
        text.contains("input \"fine\"") && text.contains("fine.Healthy"),
        "the other block is still listed:\n{text}"
    );
}

#[test]
fn check_reports_infinite_and_huge_class_values_naming_the_scripts_without_panicking() {
    let dir = datakit_with(
        "127.0.0.1:9",
        &[("promises/invalid_numbers", "numbers")],
        &block("numbers", &["numbers"], ""),
    );
    let out = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_no_panic(&text);
    assert!(
        names_each_invalid_script(&text),
        "each bad script is named with its attribute:\n{text}"
    );
    assert!(
        text.contains("healthy.Healthy"),
        "the healthy script is listed:\n{text}"
    );
}

#[test]
fn run_reports_a_huge_config_timeout_and_runs_the_other_blocks() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("promises/healthy", "healthy"),
            ("promises/healthy/healthy.py", "fine/fine.py"),
        ],
        &(block("huge", &["healthy"], "  timeout = \"1e20s\"") + &block("fine", &["fine"], "")),
    );
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| {
        seqs(&dk.all_lines(), "fine").len() >= 4
    });
    let err = d.stderr();
    assert_no_panic(&err);
    assert!(ran, "the other block's script reports:\n{err}");
    let (_, err) = d.stop();
    assert!(
        err.lines()
            .any(|l| l.contains("\"huge\"") && l.contains("timeout")),
        "the error names the block and the key:\n{err}"
    );
}

#[test]
fn run_keeps_the_other_scripts_going_beside_infinite_and_huge_class_values() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/invalid_numbers", "numbers")],
        &block("numbers", &["numbers"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| {
        seqs(&dk.all_lines(), "healthy").len() >= 8
    });
    let err = d.stderr();
    assert_no_panic(&err);
    assert!(ran, "the healthy script reports:\n{err}");
    let (_, err) = d.stop();
    assert!(
        !err.contains("worker exited; restarting"),
        "the worker never died:\n{err}"
    );
    assert!(
        names_each_invalid_script(&err),
        "each bad script is named with its attribute:\n{err}"
    );
}

// --------------------------------------------------------------------- nesting

#[test]
fn a_self_referencing_list_raises_value_error_and_the_worker_survives() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("promises/selfref/selfref.py", "s/selfref.py"),
            ("promises/healthy/healthy.py", "s/healthy.py"),
        ],
        &block("selfref", &["s"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    let outcome = dk.wait_until(Duration::from_secs(20), |dk| {
        dk.all_lines()
            .iter()
            .filter(|l| parse_line(l).measurement == "selfref_outcome")
            .count()
            >= 3
    });
    let healthy = seqs(&dk.all_lines(), "healthy");
    let (_, err) = d.stop();
    assert!(
        outcome,
        "the script's own except clause reports three runs (the worker survived its calls): {}\n{err}",
        dk.all_lines().len()
    );
    let outcomes: Vec<String> = dk
        .all_lines()
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == "selfref_outcome")
        .map(|p| p.fields[0].1.clone())
        .collect();
    assert!(
        outcomes.iter().all(|o| o.starts_with("s:ValueError")),
        "{outcomes:?}"
    );
    assert!(
        !err.contains("worker exited; restarting"),
        "the worker never died:\n{err}"
    );
    assert_eq!(
        healthy,
        (0..healthy.len() as i64).collect::<Vec<_>>(),
        "the other script was never restarted from 0"
    );
}

// Item 8 (crash loops): tests/crashes.rs.

// --------------------------------------------------- print() and a slow reader

#[test]
fn a_stderr_nobody_reads_does_not_stop_the_other_scripts() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("promises/chatter/chatter.py", "p/chatter.py"),
            ("promises/healthy/healthy.py", "p/healthy.py"),
        ],
        &block("chatty", &["p"], ""),
    );
    // stderr is a pipe this test never reads: it fills after 64 KiB, i.e.
    // during the chatter's first printing run, 2 s after the scripts loaded.
    let child = spawn_run(&dir, &[], Stdio::null(), Stdio::piped());
    let _d = Bounded::new(child);
    assert!(
        dk.wait_until(Duration::from_secs(30), |dk| seqs(
            &dk.all_lines(),
            "healthy"
        )
        .len()
            >= 3),
        "the healthy script reports before the chatter starts printing"
    );
    // The healthy script (every 0.25 s) keeps reporting with no gap over 1 s
    // for 5 s, which reaches past the moment the chatter filled the pipe.
    let steady = dk.wait_until(Duration::from_secs(30), |dk| {
        steady_for(
            &times_of(&dk.all_lines(), "healthy"),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
    });
    let times = times_of(&dk.all_lines(), "healthy");
    assert!(
        steady,
        "the healthy script stopped once stderr filled: {} runs in all, over {} ms",
        times.len(),
        (times.last().unwrap_or(&0) - times.first().unwrap_or(&0)) / 1_000_000
    );
}

// Item 14: `sigterm_prints_the_final_output_batch_completely_before_exit` is in
// tests/shutdown.rs, `check_ends_when_a_script_blocks_while_being_imported` in
// tests/check.rs.

// ----------------------------------------------------------------- --log-level

#[test]
fn log_level_warn_silences_the_workers_info_lines() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/healthy", "healthy")],
        &block("quiet", &["healthy"], ""),
    );
    let d = Daemon::start(&dir, &["--log-level", "warn"]);
    assert!(
        dk.wait_for_lines(3, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    let info: Vec<&str> = err.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(
        info.is_empty(),
        "INFO lines with --log-level warn: {info:#?}"
    );
}

// ------------------------------------------------------ pythond test exit code

#[test]
fn test_command_treats_helper_modules_and_base_classes_as_notes() {
    let t = tempfile::tempdir().unwrap();
    copy_data("promises/helpers", &t.path().join("h"));
    let (out, vals) = test_json(&[&t.path().join("h")]);
    let err = stderr(&out);
    assert!(
        out.status.success(),
        "a collector beside a helper module and a base-class module passes: {:?}\n{err}",
        out.status
    );
    assert!(
        vals.iter()
            .any(|v| v["measurement"] == "collector"
                && v["line"].as_str().unwrap().contains("v=42i")),
        "{vals:?}"
    );
    // Nothing runnable at all is still a failure.
    let only = tempfile::tempdir().unwrap();
    copy_data("promises/helpers/helper.py", &only.path().join("helper.py"));
    copy_data("promises/helpers/base.py", &only.path().join("base.py"));
    let (out, _) = test_json(&[only.path()]);
    assert!(
        !out.status.success(),
        "a folder with no collector at all fails: {}",
        stderr(&out)
    );
}

// Item 17 (sys.executable, the user site of cmd): tests/python_env.rs.

// ----------------------------------------------------------------- float times

#[test]
fn a_float_time_is_kept_or_refused_never_truncated() {
    let t = tempfile::tempdir().unwrap();
    copy_data(
        "promises/float_time/float_time.py",
        &t.path().join("float_time.py"),
    );
    let (out, vals) = test_json(&[&t.path().join("float_time.py")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept: Vec<Option<i64>> = vals
        .iter()
        .filter(|v| v["measurement"] == "float_time")
        .map(|v| parse_line(v["line"].as_str().unwrap()).time)
        .collect();
    let refused = vals
        .iter()
        .any(|v| v["measurement"] == "float_time_refused");
    assert!(
        kept == vec![Some(1_500_000_000)] || (kept.is_empty() && refused),
        "time=1.5 s is either 1500000000 ns or a ValueError; got times {kept:?}, refused: {refused}"
    );
}

#[test]
fn an_input_longer_than_a_url_can_carry_is_a_value_error() {
    let dir = crate::util::tree(&[(
        "long_input.py",
        &crate::util::fixture("promises/long_input.py"),
    )]);
    let (out, vals) = crate::util::test_json(&[dir.path()]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    let refused: Vec<String> = vals
        .iter()
        .filter_map(|v| v["line"].as_str())
        .filter(|l| l.starts_with("refused "))
        .map(str::to_owned)
        .collect();
    assert_eq!(refused.len(), 2, "{vals:?}");
    assert!(
        refused[0].contains("is 70000 bytes long; at most 1024"),
        "{refused:?}"
    );
    assert!(
        refused[1].contains("argument \\\"input\\\" is 70000 bytes long"),
        "{refused:?}"
    );
}
