//! How many points a SIGKILL loses (a measurement, ignored by default).

use super::*;

/// Points a SIGKILL of pythond alone may lose: none. Its worker gets SIGTERM
/// from the kernel and delivers or spools everything (README, "Install into
/// DataKit").
const LOST_PYTHOND_ONLY: usize = 0;
/// Points a kill of the worker too may lose: what lived only in its memory,
/// the batch in flight and launch mode's 50 ms linger; at ~1 000 points/s,
/// well under half a second of points (README, "Install into DataKit").
const LOST_WITH_WORKER: usize = 500;
/// Duplicates after a kill: at-least-once delivery resends a batch DataKit
/// accepted but the worker did not mark consumed; one batch, far under a
/// second of points.
const DUPLICATES: usize = 1000;

/// How many points a SIGKILL at a random moment loses at 1 000 points/s:
/// `cargo test --test tests launch::kill::sigkill_loss -- --ignored --nocapture`
/// (`PYTHOND_KILL_TRIALS` trials of each case, default 5). One row per trial:
/// the points the killed worker produced, and how many of them DataKit had
/// accepted once a restarted pythond had replayed the spool; then the bounds
/// above are asserted for every trial.
#[test]
#[ignore = "a measurement (about 25 s a trial); numbers in BENCHMARKS.md"]
fn sigkill_loss_at_1000_points_per_second() {
    let trials: usize = std::env::var("PYTHOND_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // (case, script, DataKit answers 503 from this long before the kill, the
    // worker is killed too). `counter` hands 100 points over at the end of
    // each 0.1 s run; `feeder` feeds 10 points every 10 ms inside a 1.9 s
    // run, so its points wait for the writer's linger.
    let cases = [
        ("DataKit up, SIGKILL pythond", "counter", None, false),
        (
            "DataKit up, SIGKILL pythond and worker",
            "counter",
            None,
            true,
        ),
        (
            "DataKit stops (503) at the kill, SIGKILL pythond",
            "counter",
            Some(0),
            false,
        ),
        (
            "DataKit stops (503) at the kill, SIGKILL pythond and worker",
            "counter",
            Some(0),
            true,
        ),
        (
            "DataKit stopped (503) 0.25 s before, SIGKILL pythond",
            "counter",
            Some(250),
            false,
        ),
        (
            "DataKit stopped (503) 0.25 s before, SIGKILL pythond and worker",
            "counter",
            Some(250),
            true,
        ),
        (
            "long run, DataKit up, SIGKILL pythond",
            "feeder",
            None,
            false,
        ),
        (
            "long run, DataKit up, SIGKILL pythond and worker",
            "feeder",
            None,
            true,
        ),
    ];
    let mut broken = Vec::new();
    for trial in 0..trials {
        for (case, script, datakit_stops, whole_group) in cases {
            let dk = FakeDataKit::start();
            let i = Install::new(&dk.addr().to_string());
            i.script(script, &format!("python.d/{script}"));
            i.block(script, &[script], "");
            let roots = [i.path().join(format!("python.d/{script}"))];
            let mut p = launch(&i.render(&roots, &[script]), script, &[]);
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
                i.path()
                    .join(format!("python.d/{script}/produced_{worker}")),
            )
            .unwrap()
            .trim()
            .parse()
            .unwrap();
            let _restarted = launch(&i.render(&roots, &[script]), script, &[]);
            let pids = || -> Vec<(String, i64)> {
                dk.all_lines()
                    .iter()
                    .map(|l| parse_line(l))
                    .filter_map(|p| {
                        let pid = p.tags.iter().find(|(k, _)| k == "pid")?.1.clone();
                        let seq = p.fields[0].1.trim_start_matches("i:").parse().ok()?;
                        Some((pid, seq))
                    })
                    .collect()
            };
            // The spool is replayed before the new worker's own batches: once
            // one of those arrives, all of the killed worker's that will
            // ever arrive have.
            eventually(60, "the restarted worker's points", || {
                pids()
                    .iter()
                    .any(|(pid, _)| *pid != worker.to_string())
                    .then_some(())
            });
            let mut got: Vec<i64> = pids()
                .into_iter()
                .filter(|(pid, _)| *pid == worker.to_string())
                .map(|(_, s)| s)
                .collect();
            got.sort();
            let mut distinct = got.clone();
            distinct.dedup();
            let lost = (0..produced)
                .filter(|s| distinct.binary_search(s).is_err())
                .count();
            let duplicates = got.len() - distinct.len();
            eprintln!(
                "KILL | {case} | trial {trial} | killed {wait} ms in | produced {produced} | arrived {} | lost {lost} | duplicates {duplicates} |",
                distinct.len(),
            );
            let bound = if whole_group {
                LOST_WITH_WORKER
            } else {
                LOST_PYTHOND_ONLY
            };
            if lost > bound || duplicates > DUPLICATES {
                broken.push(format!(
                    "{case}, trial {trial}: lost {lost} (bound {bound}), duplicates {duplicates} (bound {DUPLICATES})"
                ));
            }
        }
    }
    assert!(broken.is_empty(), "past the documented bounds: {broken:#?}");
}
