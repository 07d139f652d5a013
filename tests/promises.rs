//! Issue 9: the README's promises (at-least-once delivery, crash containment,
//! bad data costs only itself) where an independent review found they do not
//! hold. Real processes, real script files from `tests/data/promises/`, a real
//! loopback DataKit (testkit) that can be frozen.
//!
//! Each test fails against the code it was written for and is ignored until
//! the fix lands.

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `steady.py` (about 500 points a second) as input `frozen`, spool in
/// `<dir>/spool`.
fn steady_input(listen: &str) -> (DataKitDir, Vec<String>) {
    let dir = datakit_with(
        listen,
        &[("promises/steady", "steady")],
        &block("frozen", &["steady"], ""),
    );
    let args = vec![
        "--data-dir".to_owned(),
        dir.path().join("spool").display().to_string(),
    ];
    (dir, args)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// What `steady.py` says it handed to report() so far.
fn steady_produced(dir: &DataKitDir) -> usize {
    number_in(&dir.path().join("python.d/steady/produced_steady"))
}

/// Seqs in `0..n` that never arrived.
fn missing_below(dk: &FakeDataKit, n: usize) -> Vec<i64> {
    let got: HashSet<i64> = seqs(&dk.all_lines(), "steady").into_iter().collect();
    (0..n as i64).filter(|s| !got.contains(s)).collect()
}

fn summary(missing: &[i64]) -> String {
    match (missing.first(), missing.last()) {
        (Some(a), Some(b)) => format!("{} missing (seq {a}..={b})", missing.len()),
        _ => "none missing".into(),
    }
}

// ---------------------------------------------------------------- item 1

#[test]
fn sigterm_while_datakit_is_frozen_loses_no_point_once_restarted() {
    let dk = FakeDataKit::start();
    let (dir, args) = steady_input(&dk.addr().to_string());
    let d = Daemon::start(&dir, &strs(&args));
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "the daemon delivers before the freeze: {}",
        d.stderr()
    );
    // DataKit hangs for 12 s: connections are accepted, requests never
    // answered.
    dk.freeze(true);
    std::thread::sleep(Duration::from_secs(12));
    let (status, err1) = d.stop();
    let made = steady_produced(&dir);
    assert!(
        made >= 1000,
        "the script produced through the freeze: {made}"
    );
    // DataKit is back (the hung process restarted); so is pythond, on the
    // same data dir.
    dk.freeze(false);
    let d2 = Daemon::start(&dir, &strs(&args));
    let all_arrived = dk.wait_until(Duration::from_secs(45), |dk| {
        missing_below(dk, made).is_empty()
    });
    let missing = missing_below(&dk, made);
    let _ = d2.stop();
    assert!(
        all_arrived,
        "every point produced before SIGTERM arrives after the restart: {} of {made}; \
         first daemon exited with {status:?}\n{err1}",
        summary(&missing)
    );
    crate::util::report_outcome(
        "DataKit frozen (accepts, never answers) for 12 s at ~500 points/s, then SIGTERM, then restart with DataKit back",
        "batches spooled 2 s into the freeze; SIGTERM spooled the rest within the grace; the restart replayed them all",
        made,
        made - missing.len(),
    );
}

#[test]
fn exit_code_is_non_zero_when_points_were_dropped() {
    // Nothing listens on DataKit's port and the spool cannot be created (its
    // folder would be below a regular file): every point is undeliverable
    // and has nowhere to go, so stopping the daemon drops them.
    let addr = FakeDataKit::reserve_port();
    let dir = datakit_with(
        &addr.to_string(),
        &[("promises/steady", "steady")],
        &block("nospool", &["steady"], ""),
    );
    let d = Daemon::start(&dir, &["--data-dir", "/dev/null/spool"]);
    eventually(30, "points produced", || {
        (steady_produced(&dir) >= 500).then_some(())
    });
    let (status, err) = d.stop();
    assert!(steady_produced(&dir) >= 500);
    assert!(
        !status.success(),
        "points were dropped (DataKit down, no spool), yet the exit status is {status:?}\n{err}"
    );
}

// ---------------------------------------------------------------- item 2

#[test]
fn frozen_datakit_makes_the_writer_spill_to_the_spool_within_seconds() {
    let dk = FakeDataKit::start();
    let (dir, args) = steady_input(&dk.addr().to_string());
    let spool = dir.path().join("spool");
    let d = Daemon::start(&dir, &strs(&args));
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    dk.freeze(true);
    let frozen_at = Instant::now();
    let before = bytes_below(&spool);
    // "No answer within a short deadline" is an outage: 6 s is generous for
    // a loaded machine, and far less than the 12 s freezes seen in the field.
    let mut spilled = bytes_below(&spool);
    while spilled < before + 4096 && frozen_at.elapsed() < Duration::from_secs(6) {
        std::thread::sleep(Duration::from_millis(100));
        spilled = bytes_below(&spool);
    }
    assert!(
        spilled >= before + 4096,
        "6 s into a DataKit freeze, the spool grew by {} bytes only (data held in memory)\n{}",
        spilled.saturating_sub(before),
        d.stderr()
    );
    // And it keeps spilling while the freeze lasts.
    std::thread::sleep(Duration::from_secs(2));
    let later = bytes_below(&spool);
    assert!(
        later > spilled,
        "the spool keeps growing during the freeze: {spilled} → {later} bytes"
    );
    // The freeze ends; what was spooled is delivered.
    dk.freeze(false);
    let made = steady_produced(&dir);
    let arrived = dk.wait_until(Duration::from_secs(45), |dk| {
        missing_below(dk, made).is_empty()
    });
    let missing = missing_below(&dk, made);
    let _ = d.stop();
    assert!(arrived, "after the freeze: {} of {made}", summary(&missing));
}

#[test]
fn kill_9_during_a_freeze_loses_at_most_about_a_second_of_points() {
    let dk = FakeDataKit::start();
    let (dir, args) = steady_input(&dk.addr().to_string());
    let mut d = Daemon::start(&dir, &strs(&args));
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    dk.freeze(true);
    std::thread::sleep(Duration::from_secs(5));
    kill_9_all(&mut d);
    let err1 = d.stderr();
    drop(d);
    let made = steady_produced(&dir);
    assert!(
        made >= 2000,
        "the script produced through the freeze: {made}"
    );
    dk.freeze(false);
    let d2 = Daemon::start(&dir, &strs(&args));
    // The restarted script continues at seq `made`; new batches queue behind
    // the spool, so once 1 s of new points is in, the replay is over.
    let _ = dk.wait_until(Duration::from_secs(45), |dk| {
        seqs(&dk.all_lines(), "steady")
            .iter()
            .filter(|s| **s >= made as i64)
            .count()
            >= 500
    });
    std::thread::sleep(Duration::from_secs(1));
    let missing = missing_below(&dk, made);
    let _ = d2.stop();
    // About 1 s at 500 points/s, with half a second of slack for a loaded
    // machine: 750 points. (Before the fix: everything since the freeze.)
    assert!(
        missing.len() <= 750,
        "kill -9 5 s into a DataKit freeze lost more than ~1 s of points: {} of {made}\n{err1}",
        summary(&missing)
    );
    crate::util::report_outcome(
        "kill -9 of daemon and worker 5 s into a DataKit freeze (~500 points/s), restart with DataKit back",
        "what had waited 2 s without an answer was spooled and replayed; only the last instants in memory were lost",
        made,
        made - missing.len(),
    );
}

// ---------------------------------------------------------------- item 6
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

// ---------------------------------------------------------------- item 7

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

// ---------------------------------------------------------------- item 10

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

// ---------------------------------------------------------------- item 14

/// Passes today: no end-to-end way was found to make the supervisor lose a
/// worker's last `--output -` lines (the pipe reader drains before the exit
/// is seen). Kept as a guard for the "final batch printed completely" half
/// of item 14 while the supervisor is reworked.
#[test]
fn sigterm_prints_the_final_output_batch_completely_before_exit() {
    let dir = datakit_with(
        "127.0.0.1:9",
        &[("promises/final", "final")],
        &block("final", &["final"], ""),
    );
    let stderr_file = std::fs::File::create(dir.path().join("stderr.txt")).unwrap();
    let mut child = spawn_run(
        &dir,
        &["--output", "-"],
        Stdio::piped(),
        Stdio::from(stderr_file),
    );
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut s);
        s
    });
    let mut d = Bounded::new(child);
    let started = dir.path().join("python.d/final/started");
    eventually(30, "the script's run started", || {
        started.exists().then_some(())
    });
    // SIGTERM in the middle of the run: its last points go out with the
    // worker's final flush.
    std::thread::sleep(Duration::from_millis(300));
    unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) };
    let status = d.wait_for(30).expect("pythond exits after SIGTERM");
    let text = reader.join().unwrap();
    let reported = number_in(&dir.path().join("python.d/final/reported"));
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let got: HashSet<i64> = seqs(&lines, "final").into_iter().collect();
    assert!(reported >= 2500, "{reported}");
    assert_eq!(
        got.len(),
        reported,
        "every point reported before the worker stopped is printed (exit {status:?})"
    );
}

// `check_ends_when_a_script_blocks_while_being_imported`: tests/check.rs.

// ---------------------------------------------------------------- item 15

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

// ---------------------------------------------------------------- item 16

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

// ---------------------------------------------------------------- item 18

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

// ---------------------------------------------------------------- testkit

/// The fake DataKit's freeze, which the tests above rely on: a request is
/// read but never answered while frozen, dropped unanswered when the freeze
/// ends, and never counted as accepted.
#[test]
fn testkit_freeze_holds_requests_unanswered_then_drops_them() {
    use std::io::{Read, Write};
    let dk = FakeDataKit::start();
    dk.freeze(true);
    let post = b"POST /v1/write/metric HTTP/1.1\r\nhost: x\r\ncontent-length: 8\r\n\r\nm v=1i\n\n";
    let mut s = std::net::TcpStream::connect(dk.addr()).unwrap();
    s.write_all(post).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 512];
    let r = s.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "no answer while frozen: {r:?}"
    );
    assert!(dk.wait_until(Duration::from_secs(5), |dk| dk.unanswered() == 1));
    dk.freeze(false);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n,
        0,
        "dropped without an answer: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut s = std::net::TcpStream::connect(dk.addr()).unwrap();
    s.write_all(post).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert_eq!(dk.accepted().len(), 1, "the held request is not accepted");
    assert_eq!(dk.unanswered(), 1);
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
