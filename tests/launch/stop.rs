//! Stopping as DataKit stops pythond (SIGKILL), and what the next start
//! finds.

use super::*;

#[test]
fn sigkill_of_pythond_leaves_no_process_of_ours_behind() {
    let dk = FakeDataKit::start();
    let (_i, file) = team_install(&dk.addr().to_string(), "killed", "");
    let mut p = launch(&file, "killed", &[]);
    assert!(dk.wait_for_lines(3, Duration::from_secs(30)));
    let took = p.kill9();
    eprintln!(
        "SIGKILL of pythond: every worker gone {} ms later",
        took.as_millis()
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_restart_replays_what_was_spooled_while_datakit_was_down() {
    let addr = FakeDataKit::reserve_port();
    let i = Install::new(&addr.to_string());
    i.script("counter", "python.d/counter");
    i.block("counter", &["counter"], "");
    let roots = [i.path().join("python.d/counter")];
    let mut first = launch(&i.render(&roots, &["counter"]), "counter", &[]);
    let spool = i.data_dir().join("counter");
    eventually(30, "points spooled while DataKit is down", || {
        (bytes_below(&spool) > 20_000).then_some(())
    });
    let worker = descendants(first.pid())[0];
    // DataKit stops (and, here, stays down while the worker spools on its way out).
    let took = first.kill9();
    eprintln!(
        "SIGKILL of pythond with DataKit down: worker gone {} ms later",
        took.as_millis()
    );
    let produced =
        std::fs::read_to_string(i.path().join(format!("python.d/counter/produced_{worker}")))
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap();
    let dk = FakeDataKit::start_on(addr);
    let _second = launch(&i.render(&roots, &["counter"]), "counter", &[]);
    let of_first = |dk: &FakeDataKit| -> Vec<i64> {
        dk.all_lines()
            .iter()
            .map(|l| parse_line(l))
            .filter(|p| p.tags.contains(&("pid".into(), worker.to_string())))
            .map(|p| p.fields[0].1.trim_start_matches("i:").parse().unwrap())
            .collect()
    };
    assert!(
        dk.wait_until(Duration::from_secs(30), |_| of_first(&dk).len() as i64
            >= produced),
        "the first worker's {produced} points are replayed; {} arrived\n{}",
        of_first(&dk).len(),
        i.cli_log(&i.data_dir())
    );
    let got = of_first(&dk);
    assert_eq!(
        got,
        (0..got.len() as i64).collect::<Vec<_>>(),
        "in order, none twice"
    );
    eprintln!(
        "DataKit down, SIGKILL, restart: {produced} points produced by the first worker, {} arrived",
        got.len()
    );
    assert!(i
        .cli_log(&i.data_dir())
        .contains("spool holds undelivered data"));
}
