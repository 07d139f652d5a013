//! Shutdown and data loss: SIGTERM while
//! DataKit is frozen, the writer's deadline, what the exit code says about
//! points lost in any worker's life. Real processes, real script files from
//! `tests/data/promises/`, a real loopback DataKit (testkit) that can be
//! frozen.

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

// --------------------------------------------- SIGTERM while DataKit is frozen

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

/// SIGTERM `after` into a DataKit freeze with `--grace-secs grace`, then a
/// restart with DataKit back: (points produced, seqs missing, first exit).
fn sigterm_during_a_freeze(after: Duration, grace: &str) -> (usize, Vec<i64>, String) {
    let dk = FakeDataKit::start();
    let (dir, mut args) = steady_input(&dk.addr().to_string());
    args.extend(["--grace-secs".to_owned(), grace.to_owned()]);
    let d = Daemon::start(&dir, &strs(&args));
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "the daemon delivers before the freeze: {}",
        d.stderr()
    );
    dk.freeze(true);
    std::thread::sleep(after);
    let (status, err1) = d.stop();
    let made = steady_produced(&dir);
    assert!(
        status.success(),
        "nothing was lost, so the exit status is 0: {status:?}\n{err1}"
    );
    dk.freeze(false);
    let d2 = Daemon::start(&dir, &strs(&args));
    let _ = dk.wait_until(Duration::from_secs(45), |dk| {
        missing_below(dk, made).is_empty()
    });
    let missing = missing_below(&dk, made);
    let _ = d2.stop();
    (made, missing, err1)
}

#[test]
fn sigterm_half_a_second_into_a_freeze_cancels_the_requests_and_spools_them() {
    // Well before the 2 s after which a hung request's batch is spooled
    // anyway: only the cancel at the writer's deadline saves these points.
    let (made, missing, err) = sigterm_during_a_freeze(Duration::from_millis(500), "1");
    assert!(
        missing.is_empty(),
        "every point produced before SIGTERM arrives after the restart: {} of {made}\n{err}",
        summary(&missing)
    );
    crate::util::report_outcome(
        "DataKit frozen at ~500 points/s, SIGTERM 0.5 s into the freeze with `--grace-secs 1`, then restart with DataKit back",
        "the requests in flight were cancelled at the writer's deadline and their batches spooled; exit 0; the restart replayed them all",
        made,
        made - missing.len(),
    );
}

#[test]
fn grace_0_still_leaves_the_writer_time_to_spool_what_a_frozen_datakit_holds() {
    let (made, missing, err) = sigterm_during_a_freeze(Duration::from_millis(500), "0");
    assert!(
        missing.is_empty(),
        "with --grace-secs 0, every point produced before SIGTERM arrives after the restart: {} of {made}\n{err}",
        summary(&missing)
    );
    crate::util::report_outcome(
        "DataKit frozen at ~500 points/s, SIGTERM 0.5 s into the freeze with `--grace-secs 0`, then restart with DataKit back",
        "the writer still kept its 1 s: requests cancelled, batches spooled; exit 0; the restart replayed them all",
        made,
        made - missing.len(),
    );
}

#[test]
fn what_a_frozen_datakit_holds_without_a_spool_is_counted_lost_even_with_grace_0() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/steady", "steady")],
        &block("nospool", &["steady"], ""),
    );
    let d = Daemon::start(
        &dir,
        &["--data-dir", "/dev/null/spool", "--grace-secs", "0"],
    );
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    dk.freeze(true);
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = d.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "points held for a frozen DataKit, nowhere to spool them: lost, and the exit status says so\n{err}"
    );
    assert!(err.contains("input stopped uncleanly"), "{err}");
}

#[test]
fn points_lost_in_an_earlier_life_of_a_worker_make_the_exit_code_non_zero() {
    // DataKit down, no spool: the worker's first life ends (SIGHUP restarts
    // it) with points it could not deliver; its second life delivers all.
    let addr = FakeDataKit::reserve_port();
    let dir = datakit_with(
        &addr.to_string(),
        &[("promises/steady", "steady")],
        &block("lossy", &["steady"], ""),
    );
    let d = Daemon::start(&dir, &["--data-dir", "/dev/null/spool"]);
    eventually(30, "points produced", || {
        (steady_produced(&dir) >= 200).then_some(())
    });
    unsafe { libc::kill(d.pid(), libc::SIGHUP) };
    eventually(60, "the worker restarted", || {
        d.stderr()
            .contains("worker restarted: reload")
            .then_some(())
    });
    let dk = FakeDataKit::start_on(addr);
    assert!(
        dk.wait_for_lines(100, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    let (status, err) = d.stop();
    assert!(
        err.contains("points were dropped"),
        "the first life lost points: {err}"
    );
    assert_eq!(
        status.code(),
        Some(1),
        "the last worker stopped cleanly, but an earlier one lost points\n{err}"
    );
}

// ------------------------------------------------- a hung DataKit is an outage

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

// -------------------------------------------------- the last lines of a worker

/// Passes today: no end-to-end way was found to make the supervisor lose a
/// worker's last `--output -` lines (the pipe reader drains before the exit
/// is seen). Kept as a guard: the final batch is printed completely.
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
