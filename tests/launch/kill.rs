//! How many points a SIGKILL loses (a measurement, ignored by default).

use super::*;

/// How many points a SIGKILL at a random moment loses at 1 000 points/s:
/// `cargo test --test tests launch::kill::sigkill_loss -- --ignored --nocapture`
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
