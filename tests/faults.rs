//! Fault injection: DataKit down or failing, processes killed, scripts that
//! hang, spin or crash. Real processes, a real loopback server, bounded time;
//! every test counts exactly what arrived.

use std::time::{Duration, Instant};

use testkit::FakeDataKit;

use crate::util::*;

fn conf_block(name: &str, dirs: &str, extra: &str) -> String {
    format!(
        "[[inputs.pythond]]\n  name = '{name}'\n  cmd = \"python3\"\n  dirs = [{dirs}]\n{extra}\n"
    )
}

fn spool_args(dir: &DataKitDir) -> Vec<String> {
    vec![
        "--data-dir".into(),
        dir.path().join("spool").display().to_string(),
    ]
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn datakit_down_then_up_every_point_arrives_in_order_once() {
    let addr = FakeDataKit::reserve_port();
    let script = counter_script("Down", "down", 0.2);
    let dir = DataKitDir::new(
        &addr.to_string(),
        &[("c/c.py", &script)],
        &conf_block("c", "\"c\"", ""),
    );
    let d = Daemon::start(&dir, &args(&spool_args(&dir)));
    std::thread::sleep(Duration::from_millis(2000));
    eventually(30, "a run while DataKit is down", || {
        (produced(&dir, "c", "Down") >= 5).then_some(())
    });
    let while_down = produced(&dir, "c", "Down");
    let dk = FakeDataKit::start_on(addr);
    std::thread::sleep(Duration::from_millis(2000));
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    let got = seq_of(&dk.all_lines(), "down");
    assert!(
        got.len() >= while_down,
        "the {while_down} points produced while DataKit was down arrived: {}",
        got.len()
    );
    assert_eq!(
        got,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "every point, in order, once"
    );
    let made = produced(&dir, "c", "Down");
    assert_eq!(got.len(), made, "every point produced arrived");
    report_outcome(
        "DataKit down for 2 s, then up",
        "spooled, replayed in order, none twice",
        made,
        got.len(),
    );
}

#[test]
fn answers_503_for_a_while_then_200_nothing_lost() {
    let dk = FakeDataKit::start();
    dk.respond_always(Some(503));
    let script = counter_script("Flaky", "flaky", 0.2);
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("c/c.py", &script)],
        &conf_block("c", "\"c\"", ""),
    );
    let d = Daemon::start(&dir, &args(&spool_args(&dir)));
    std::thread::sleep(Duration::from_millis(1500));
    dk.respond_always(None);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, _) = d.stop();
    assert!(status.success());
    assert!(dk.requests().iter().any(|r| r.status == 503));
    let got = seq_of(&dk.all_lines(), "flaky");
    let made = produced(&dir, "c", "Flaky");
    assert!(got.len() >= 10, "{}", got.len());
    assert_eq!(got, (0..made as i64).collect::<Vec<_>>());
    report_outcome(
        "DataKit answers 503 for 1.5 s, then 200",
        "retried, then spooled and replayed in order",
        made,
        got.len(),
    );
}

#[test]
fn a_400_drops_one_batch_only_and_logs_datakits_message() {
    let dk = FakeDataKit::start();
    dk.reject_bodies_containing("poison");
    let good = counter_script("Good", "good", 0.3);
    let bad = fixture("faults/poison.py");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("c/good.py", &good), ("c/bad.py", &bad)],
        &conf_block("c", "\"c\"", ""),
    );
    let d = Daemon::start(&dir, &args(&spool_args(&dir)));
    std::thread::sleep(Duration::from_millis(1500));
    let log_dir = d.log_dir.clone();
    assert!(d.stop().0.success());
    assert_eq!(dk.requests().iter().filter(|r| r.status == 400).count(), 1);
    let got = seq_of(&dk.all_lines(), "good");
    let made = produced(&dir, "c", "Good");
    assert_eq!(got, (0..made as i64).collect::<Vec<_>>());
    assert!(got.len() >= 5, "{}", got.len());
    report_outcome("DataKit answers 400 to one batch", "that batch (1 point) dropped and logged with DataKit's message; the other script's points all arrive", made + 1, got.len());
    let fw = std::fs::read_to_string(log_dir.join("_datakit_pythond_framework_c_.log")).unwrap();
    assert!(
        fw.contains("rejected by test marker") && fw.contains("input=\"badin\""),
        "{fw}"
    );
}

#[test]
fn kill_9_of_the_daemon_then_restart_replays_the_spool_and_skips_a_torn_tail() {
    let addr = FakeDataKit::reserve_port();
    let script = counter_script("K", "k", 0.1);
    let dir = DataKitDir::new(
        &addr.to_string(),
        &[("c/c.py", &script)],
        &conf_block("c", "\"c\"", ""),
    );
    let spool_dir = dir.path().join("spool/c");
    let mut d = Daemon::start(&dir, &args(&spool_args(&dir)));
    // Wait until batches are on disk, then kill -9 the whole daemon.
    eventually(20, "spooled data", || {
        let n: u64 = std::fs::read_dir(&spool_dir)
            .ok()?
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        (n > 2000).then_some(())
    });
    let workers_before = workers(d.pid());
    unsafe { libc::kill(d.pid(), libc::SIGKILL) };
    let _ = d.child.wait();
    for (pid, _) in &workers_before {
        // The worker follows its supervisor (PR_SET_PDEATHSIG).
        eventually(10, "worker exit", || {
            (unsafe { libc::kill(*pid, 0) } != 0).then_some(())
        });
    }
    // A record torn by a crash mid-write: the newest segment loses the last
    // bytes of its last record (whatever the format, that record is cut).
    let mut segs: Vec<_> = std::fs::read_dir(&spool_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    let newest = segs.last().unwrap();
    let len = std::fs::metadata(newest).unwrap().len();
    assert!(len > 100, "the newest segment holds a record ({len} bytes)");
    std::fs::OpenOptions::new()
        .write(true)
        .open(newest)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let dk = FakeDataKit::start_on(addr);
    let d2 = Daemon::start(&dir, &args(&spool_args(&dir)));
    assert!(
        dk.wait_for_lines(40, Duration::from_secs(20)),
        "{}",
        d2.stderr()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, err) = d2.stop();
    assert!(status.success());
    assert!(err.contains("torn or corrupt record skipped"), "{err}");
    let got = seq_of(&dk.all_lines(), "k");
    // The spooled points come first, in order, starting at 0; the restarted
    // script counts from 0 again after them.
    let restart = got
        .iter()
        .skip(1)
        .position(|s| *s == 0)
        .map(|p| p + 1)
        .unwrap_or(got.len());
    assert!(restart >= 20, "spooled points replayed: {got:?}");
    assert_eq!(got[..restart], (0..restart as i64).collect::<Vec<_>>()[..]);
    report_outcome(
        "kill -9 of the whole daemon while DataKit is down, the spool's last record torn, restart with DataKit up",
        "spooled points replayed in order from seq 0; the torn record skipped and logged; points still only in memory at the kill are lost (produced = spooled here)",
        restart,
        restart,
    );
}

#[test]
fn kill_9_of_one_worker_restarts_it_and_the_other_input_keeps_its_ticks() {
    let dk = FakeDataKit::start();
    let a = counter_script("A", "a", 0.2);
    let b = counter_script("B", "b", 0.2);
    let conf = conf_block("ina", "\"a\"", "") + &conf_block("inb", "\"b\"", "");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("a/a.py", &a), ("b/b.py", &b)],
        &conf,
    );
    let d = Daemon::start(&dir, &args(&spool_args(&dir)));
    let wa = eventually(20, "two workers", || {
        let w = workers(d.pid());
        (w.len() == 2).then_some(w)
    });
    assert!(dk.wait_for_lines(20, Duration::from_secs(20)));
    let victim = wa.iter().find(|(_, n)| n == "ina").unwrap().0;
    let killed_at = Instant::now();
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let restarted = eventually(15, "worker ina restarted", || {
        workers(d.pid())
            .into_iter()
            .find(|(p, n)| n == "ina" && *p != victim)
    });
    assert!(killed_at.elapsed() < Duration::from_secs(10));
    let before = seq_of(&dk.all_lines(), "a").len();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        seq_of(&dk.all_lines(), "a").len() > before,
        "restarted worker {} reports again",
        restarted.0
    );
    let (status, err) = d.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "a worker died by a signal (what it held in memory is gone): not a clean exit\n{err}"
    );
    assert!(err.contains("input stopped uncleanly"), "{err}");
    assert!(err.contains("worker exited; restarting"), "{err}");
    // Input b: 5 points per run every 0.2 s, never interrupted.
    let reqs = dk.accepted();
    let mut times: Vec<i64> = reqs
        .iter()
        .flat_map(|r| r.lines())
        .map(|l| parse_line(&l))
        .filter(|p| p.measurement == "b")
        .map(|p| p.time.unwrap())
        .collect();
    times.sort();
    times.dedup();
    let max_gap = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(
        max_gap < 350_000_000,
        "input b's ticks were interrupted: max gap {max_gap} ns"
    );
    let b_made = produced(&dir, "b", "B");
    let b_got = seq_of(&dk.all_lines(), "b").len();
    assert_eq!(b_got, b_made);
    report_outcome(
        &format!("kill -9 of input a's worker; input b measured (largest gap between b's ticks: {} ms at a 200 ms interval)", max_gap / 1_000_000),
        "a restarted and reports again; b never missed a tick; `pythond run` exits 1 (a worker died)",
        b_made,
        b_got,
    );
}

#[test]
fn spinning_script_is_interrupted_at_its_timeout_and_runs_again() {
    let dk = FakeDataKit::start();
    let spin = fixture("faults/spin.py");
    let other = counter_script("Other", "other", 0.25);
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("s/spin.py", &spin), ("s/other.py", &other)],
        &conf_block("s", "\"s\"", ""),
    );
    let d = Daemon::start(&dir, &[]);
    // From the healthy script's first run on (the worker has started).
    dk.wait_for_lines(5, Duration::from_secs(30));
    let from = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(2700));
    let until = std::time::SystemTime::now();
    let (status, err) = d.stop();
    assert!(status.success());
    let lines = dk.all_lines();
    let starts = lines.iter().filter(|l| l.starts_with("spin_start")).count();
    assert!(starts >= 2, "interrupted each time and run again: {starts}");
    assert!(
        !lines.iter().any(|l| l.starts_with("swallowed")),
        "RunTimeout is not an Exception"
    );
    assert!(err.contains("exceeded its timeout"), "{err}");
    let le = lasterrors(&dk);
    assert!(
        le.iter()
            .any(|t| t.contains("RunTimeout") && t.contains("\"input\":\"spin\"")),
        "{le:?}"
    );
    // Interval 0.25 s; a spinning neighbour must not make it miss more than
    // a tick or two even on a loaded machine.
    assert_kept_ticking(
        &run_times(&lines, "other"),
        from,
        until,
        Duration::from_millis(1250),
    );
    report_outcome(
        "`while True: pass` with timeout 0.5 s, every second, beside a healthy script",
        "RunTimeout raised in the loop at 0.5 s (a BaseException: `except Exception` cannot swallow it), traceback to lasterror, ran again next tick; the healthy script kept its ticks",
        produced(&dir, "s", "Other"),
        seq_of(&lines, "other").len(),
    );
}

#[test]
fn scripts_blocked_in_c_are_declared_hung_and_the_others_keep_their_ticks() {
    let dk = FakeDataKit::start();
    let sleeper = fixture("faults/sleeper.py");
    let socket = fixture("faults/sock.py");
    let other = counter_script("Other", "other", 0.25);
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[
            ("s/sleeper.py", &sleeper),
            ("s/sock.py", &socket),
            ("s/other.py", &other),
        ],
        &conf_block("s", "\"s\"", ""),
    );
    let d = Daemon::start(&dir, &["--hang-grace-secs", "0.5", "--grace-secs", "1"]);
    dk.wait_for_lines(5, Duration::from_secs(30));
    let from = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(2600));
    let until = std::time::SystemTime::now();
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("script=sleeper") && err.contains("is hung"),
        "{err}"
    );
    assert!(
        err.contains("script=sock") && err.contains("is hung"),
        "{err}"
    );
    let le = lasterrors(&dk);
    assert!(
        le.iter()
            .any(|t| t.contains("\"input\":\"sleeper\"") && t.contains("no longer scheduled")),
        "{le:?}"
    );
    assert_kept_ticking(
        &run_times(&dk.all_lines(), "other"),
        from,
        until,
        Duration::from_millis(1250),
    );
    report_outcome(
        "`time.sleep(10**6)` and a socket `recv()` that never answers, timeout 0.3 s",
        "the interrupt cannot reach code blocked in C: both declared hung 0.5 s later, reported to lasterror, no longer scheduled; the healthy script kept its ticks; SIGTERM still exits 0",
        produced(&dir, "s", "Other"),
        seq_of(&dk.all_lines(), "other").len(),
    );
}

#[test]
fn os_exit_and_segfault_take_down_only_their_own_worker() {
    let dk = FakeDataKit::start();
    let exit = fixture("faults/exit.py");
    let segv = fixture("faults/segv.py");
    let other = counter_script("Other", "other", 0.25);
    let conf = conf_block("exit", "\"e\"", "")
        + &conf_block("segv", "\"v\"", "")
        + &conf_block("fine", "\"f\"", "");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[
            ("e/exit.py", &exit),
            ("v/segv.py", &segv),
            ("f/other.py", &other),
        ],
        &conf,
    );
    let d = Daemon::start(&dir, &[]);
    dk.wait_for_lines(5, Duration::from_secs(30));
    let from = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(3000));
    let until = std::time::SystemTime::now();
    let (status, err) = d.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "workers crashed (what they held in memory is gone): not a clean exit\n{err}"
    );
    assert!(
        err.contains("input=exit") && err.contains("worker exited; restarting"),
        "{err}"
    );
    assert!(
        err.contains("input=segv") && err.contains("signal: 11"),
        "{err}"
    );
    // Points a crashing run queued in the instant before its process died
    // are lost with that process (they were only in its memory); what is
    // checked here is that the crash stays in its own worker.
    assert_kept_ticking(
        &run_times(&dk.all_lines(), "other"),
        from,
        until,
        Duration::from_millis(1250),
    );
    report_outcome(
        "`os._exit(1)` and a segfault through ctypes, each in its own input, every second",
        "only their own worker died, restarted with backoff each time; the healthy input kept its ticks; `pythond run` exits 1 (workers died)",
        produced(&dir, "f", "Other"),
        seq_of(&dk.all_lines(), "other").len(),
    );
}

#[test]
fn spool_bound_drops_the_oldest_and_says_so() {
    let addr = FakeDataKit::reserve_port();
    let script = fixture("faults/big.py");
    let dir = DataKitDir::new(
        &addr.to_string(),
        &[("b/b.py", &script)],
        &conf_block("b", "\"b\"", ""),
    );
    let mut a = spool_args(&dir);
    a.extend(["--spool-max-bytes".to_string(), "65536".to_string()]);
    let d = Daemon::start(&dir, &args(&a));
    std::thread::sleep(Duration::from_millis(2500));
    let log_dir = d.log_dir.clone();
    let dk = FakeDataKit::start_on(addr);
    std::thread::sleep(Duration::from_millis(1500));
    let (status, err) = d.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "data was dropped: not a clean exit\n{err}"
    );
    assert!(err.contains("input stopped uncleanly"), "{err}");
    let fw = std::fs::read_to_string(log_dir.join("_datakit_pythond_framework_b_.log")).unwrap();
    assert!(
        fw.contains("spool full: oldest undelivered data dropped"),
        "{fw}"
    );
    let got = seq_of(&dk.all_lines(), "big");
    assert!(
        !got.is_empty() && got[0] > 0,
        "the oldest points were dropped: first seq {:?}",
        got.first()
    );
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "what is kept stays in order"
    );
    let made = *got.last().unwrap() as usize + 1;
    // What the bound dropped, as the log counts it.
    let dropped: usize = fw
        .lines()
        .filter(|l| l.contains("spool full"))
        .filter_map(|l| {
            let v = l.split("dropped_points=").nth(1)?;
            v.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    let kept: std::collections::HashSet<i64> = got.iter().copied().collect();
    let missing: Vec<i64> = (0..made as i64).filter(|s| !kept.contains(s)).collect();
    assert!(!missing.is_empty(), "the bound dropped points");
    // Whole segments, the oldest: the missing points are one run from the
    // start. A record consumed without being sent would show as a later gap.
    let (first, last) = (missing[0], *missing.last().unwrap());
    assert_eq!(
        missing.len() as i64,
        last - first + 1,
        "the missing points are one run (seq {first}..={last}), no gap after it: {got:?}"
    );
    // At most the record being sent when its segment was dropped may have
    // arrived (two runs' points at most), counted dropped all the same.
    assert!(
        first <= 100,
        "the oldest are the ones missing: first missing seq {first}"
    );
    // Every point missing is counted; the count is not more than what is
    // missing, but for that one record.
    assert!(
        missing.len() <= dropped && dropped - missing.len() <= 100,
        "{} points missing, {dropped} counted dropped by the spool bound",
        missing.len()
    );
    report_outcome(
        "spool bound (64 KiB) passed during a 2.5 s outage",
        "oldest segments dropped with a \"spool full\" log line and counts; the newest data replayed in order; the points missing are one run from the oldest, each counted as dropped; `pythond run` exits 1",
        made,
        got.len(),
    );
}

#[test]
fn a_worker_whose_interpreter_is_wedged_is_killed_and_restarted() {
    let dk = FakeDataKit::start();
    // libc sleep() called through PyDLL keeps the GIL: nothing else in that
    // interpreter can run, not even the heartbeat.
    let wedge = fixture("faults/wedge.py");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("w/w.py", &wedge)],
        &conf_block("w", "\"w\"", ""),
    );
    let d = Daemon::start(&dir, &["--stall-timeout-secs", "2"]);
    // Two starts, from two different processes: the first was killed.
    let pids = eventually(30, "a restart after the stall", || {
        let mut pids: Vec<String> = seq_pids(&dk.all_lines());
        pids.dedup();
        (pids.len() >= 2).then_some(pids)
    });
    assert_ne!(pids[0], pids[1]);
    let (status, err) = d.stop();
    assert_eq!(
        status.code(),
        Some(1),
        "a worker had to be killed: not a clean exit\n{err}"
    );
    assert!(
        err.contains("stopped making progress (no heartbeat)"),
        "{err}"
    );
}

fn seq_pids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| parse_line(l))
        .filter(|p| p.measurement == "wedge_start")
        .map(|p| p.fields[0].1.clone())
        .collect()
}
