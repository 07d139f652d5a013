//! `pythond run` end to end: real supervisor and worker processes, real
//! embedded CPython on real script files, a real HTTP server on 127.0.0.1.

use std::collections::HashMap;
use std::time::Duration;

use testkit::FakeDataKit;

use crate::util::*;

const DEMO: &[&str] = &["demo.py", "demo_event.py", "demo_feed.py"];

fn demo_scripts() -> Vec<(String, String)> {
    DEMO.iter()
        .map(|f| {
            (
                format!("demo/{f}"),
                std::fs::read_to_string(repo().join("python.d/demo").join(f)).unwrap(),
            )
        })
        .collect()
}

fn conf(blocks: &[(&str, &str)]) -> String {
    blocks
        .iter()
        .map(|(name, dirs)| {
            format!(
                "[[inputs.pythond]]\n  name = '{name}'\n  cmd = \"python3\"\n  dirs = [{dirs}]\n\n"
            )
        })
        .collect()
}

fn measurement_of(line: &str) -> String {
    parse_line(line).measurement
}

#[test]
fn seed_demo_arrives_at_datakit_with_paths_and_input_and_stops_cleanly_on_sigterm() {
    let dk = FakeDataKit::start();
    let scripts = demo_scripts();
    let refs: Vec<(&str, &str)> = scripts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &refs,
        &conf(&[("some-python-inputs", "\"demo\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(4, Duration::from_secs(20)),
        "stderr: {}",
        d.stderr()
    );
    let reqs = dk.accepted();
    let with_input: Vec<String> = reqs
        .iter()
        .filter(|r| r.path == "/v1/write/metric" && r.query_value("input") == Some("datakitpy"))
        .flat_map(|r| r.lines())
        .map(|l| measurement_of(&l))
        .collect();
    assert_eq!(with_input, vec!["abc", "def"]);
    let feed: Vec<String> = reqs
        .iter()
        .filter(|r| r.path == "/v1/write/metric" && r.query_value("input").is_none())
        .flat_map(|r| r.lines())
        .map(|l| measurement_of(&l))
        .collect();
    assert_eq!(feed, vec!["mydata"]);
    let events: Vec<String> = dk.lines("/v1/write/keyevent");
    assert_eq!(events.len(), 1);
    assert!(events[0].contains("df_source=\"user\""), "{}", events[0]);
    assert!(reqs.iter().all(|r| r.query_value("precision") == Some("n")));
    let (status, _) = d.stop();
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}");
}

#[test]
fn print_output_is_logged_with_the_script_name() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("p/talk.py", &fixture("run/talk.py"))],
        &conf(&[("in", "\"p\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(dk.wait_for_lines(1, Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    let log = d.cli_log();
    let line = log
        .lines()
        .find(|l| l.contains("hello from the script"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("script=talker"), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains("to stderr") && l.contains("script=talker")),
        "{log}"
    );
    assert!(d.stop().0.success());
}

#[test]
fn two_inputs_with_the_same_module_name_stay_apart() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[
            ("a/same.py", &fixture("run/same_module/a/same.py")),
            ("b/same.py", &fixture("run/same_module/b/same.py")),
        ],
        &conf(&[("input-a", "\"a\""), ("input-b", "\"b\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(2, Duration::from_secs(20)),
        "{}",
        d.stderr()
    );
    let mut got: Vec<String> = dk.all_lines().iter().map(|l| measurement_of(l)).collect();
    got.sort();
    assert_eq!(got, vec!["from_a", "from_b"]);
    assert!(d.stop().0.success());
}

#[test]
fn broken_scripts_do_not_stop_the_others_and_errors_reach_lasterror() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[
            ("s/good.py", &fixture("run/broken/good.py")),
            ("s/raises.py", &fixture("run/broken/raises.py")),
            ("s/syntax.py", &fixture("run/broken/syntax.py")),
            ("s/missing.py", &fixture("run/broken/missing.py")),
        ],
        &conf(&[("mixed", "\"s\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(1, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    std::thread::sleep(Duration::from_millis(2600));
    // Interval 0.5 s: a few runs, never more often than the interval allows
    // (the upper bound holds under any load).
    let good_runs = dk.lines("/v1/write/metric").len();
    assert!(
        (3..=8).contains(&good_runs),
        "good script kept its schedule: {good_runs} runs"
    );
    let lasterrors: Vec<serde_json::Value> = dk
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/lasterror")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(lasterrors.len() >= 2, "{lasterrors:?}");
    assert_eq!(lasterrors[0]["input"], "bad");
    assert!(lasterrors[0]["err_content"]
        .as_str()
        .unwrap()
        .contains("RuntimeError: boom every run"));
    let (status, err) = d.stop();
    assert!(status.success());
    assert!(
        err.contains("syntax.py") && err.contains("SyntaxError"),
        "{err}"
    );
    assert!(
        err.contains("No module named 'no_such_module_anywhere'"),
        "{err}"
    );
    assert!(
        err.contains("script=bad") && err.contains("Traceback"),
        "{err}"
    );
}

#[test]
fn a_bad_point_costs_only_its_call_in_run_mode_and_names_arrive_as_datakit_reads_them() {
    // run mode hands the writer encoded lines (test mode keeps Points): the
    // all-or-nothing rule and the name rules must hold on that path too.
    let dk = FakeDataKit::start();
    let script = fixture("run/mixed.py");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("m/mixed.py", &script)],
        &conf(&[("mixed", "\"m\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(2, Duration::from_secs(20)),
        "{}",
        d.stderr()
    );
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    let lines = dk.all_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let disk = parse_line(&lines[0]);
    assert_eq!(disk.measurement, "disk");
    assert_eq!(disk.tags, vec![("path".to_owned(), "C:\\dir".to_owned())]);
    assert!(
        lines[0].starts_with("disk,path=C:\\dir used=1i "),
        "{}",
        lines[0]
    );
    let e = parse_line(&lines[1]);
    assert_eq!(e.measurement, "err");
    assert_eq!(
        e.fields[0].1,
        "s:report(): \"M\": point 3 key \"v\": NaN and infinities cannot be written"
    );
}

#[test]
fn fifty_instances_at_one_second_keep_their_ticks_without_overlap() {
    let dk = FakeDataKit::start();
    let src = fixture("run/many.py");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("many/many.py", &src)],
        &conf(&[("many", "\"many\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    // Wait for the first run of all 50, then count over 10 s from there.
    assert!(
        dk.wait_for_lines(50, Duration::from_secs(20)),
        "{}",
        d.stderr()
    );
    let from = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(9_600));
    let until = std::time::SystemTime::now();
    let (status, _) = d.stop();
    assert!(status.success());
    let mut per: HashMap<String, Vec<std::time::SystemTime>> = HashMap::new();
    for l in dk.lines("/v1/write/metric") {
        let p = parse_line(&l);
        assert_eq!(
            p.fields[0].1, "i:0",
            "a run overlapped the previous one: {l}"
        );
        let t = std::time::UNIX_EPOCH + Duration::from_nanos(p.time.unwrap() as u64);
        per.entry(p.tags[0].1.clone()).or_default().push(t);
    }
    assert_eq!(per.len(), 50);
    for (s, times) in &mut per {
        times.sort();
        // Interval 1 s: fixed-rate ticks, at most one missed under load.
        assert!(times.len() <= 12, "{s} ran {} times in ~10 s", times.len());
        if let Err(e) = kept_ticking(times, from, until, Duration::from_millis(2_200)) {
            panic!("script {s} missed ticks: {e}");
        }
    }
}

#[test]
fn config_errors_name_file_line_and_key() {
    umask_022();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.conf");
    std::fs::write(&f, "[[inputs.cpu]]\n\n[[inputs.pythond]]\n  name = 'x'\n  cmd = 'python3'\n  dirs = 'not-a-list'\n").unwrap();
    let out = pythond()
        .args(["check", "--config"])
        .arg(&f)
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:6: [[inputs.pythond]] #1 (\"x\"): key \"dirs\": expected an array of strings, got string", f.display())),
        "{err}"
    );
}

#[test]
fn check_lists_inputs_modules_classes_and_intervals() {
    let out = pythond()
        .args(["check", "--config"])
        .arg(repo().join("conf.d"))
        .arg("--datakit-dir")
        .arg(repo())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("input \"demo\""), "{text}");
    for (m, c) in [
        ("demo", "Demo"),
        ("demo_event", "DemoEvent"),
        ("demo_feed", "DemoFeed"),
    ] {
        assert!(
            text.contains(&format!("{m}.{c}  name=\"{c}\"  interval=10s")),
            "{text}"
        );
    }
}

#[test]
fn ip_and_port_given_to_init_route_that_instance_and_envs_reach_the_interpreter() {
    let main_dk = FakeDataKit::start();
    let other_dk = FakeDataKit::start();
    let routed = fixture_with(
        "run/routed.py",
        &format!("{{'port': {}}}", other_dk.addr().port()),
    );
    let plain = fixture("run/plain.py");
    let conf = "[[inputs.pythond]]\n  name = 'r'\n  cmd = \"python3\"\n  dirs = [\"r\"]\n  envs = ['PYTHOND_TEST_ENV=from-envs:$HOME']\n";
    let dir = DataKitDir::new(
        &main_dk.addr().to_string(),
        &[("r/routed.py", &routed), ("r/plain.py", &plain)],
        conf,
    );
    let d = Daemon::start(&dir, &[]);
    let lasterror = |dk: &FakeDataKit| lasterrors(dk).len();
    assert!(
        other_dk.wait_until(Duration::from_secs(20), |dk| dk.all_lines().len() >= 3
            && lasterror(dk) >= 1),
        "{}",
        d.stderr()
    );
    assert!(main_dk.wait_for_lines(1, Duration::from_secs(20)));
    let routed = other_dk.all_lines();
    assert_eq!(routed.len(), 3, "{routed:?}");
    let names: Vec<String> = routed.iter().map(|l| measurement_of(l)).collect();
    assert!(
        names.contains(&"routed".to_owned()) && names.contains(&"routed_report".to_owned()),
        "{routed:?}"
    );
    assert!(
        routed
            .iter()
            .any(|l| l.contains("df_title=\"routed_event\"")),
        "{routed:?}"
    );
    let routed: Vec<&String> = routed.iter().filter(|l| l.starts_with("routed ")).collect();
    let p = parse_line(routed[0]);
    assert_eq!(p.measurement, "routed");
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(p.fields[0].1, format!("s:from-envs:{home}"));
    let main: Vec<String> = main_dk
        .all_lines()
        .iter()
        .map(|l| measurement_of(l))
        .collect();
    assert_eq!(main, vec!["plain"]);
    assert_eq!(lasterror(&main_dk), 0);
    assert!(d.stop().0.success());
}

#[test]
fn durations_on_the_command_line_are_checked_not_a_panic() {
    for (flag, value) in [("--grace-secs", "inf"), ("--stall-timeout-secs", "1e300")] {
        let out = pythond()
            .args(["run", "--config", "conf.d", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag}"))
                && err.contains("out of range"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn another_script_runs_while_a_big_report_is_encoded() {
    // report() reads points while attached to Python and checks and encodes
    // them detached: the input's other scripts are not held up by it.
    let dk = FakeDataKit::start();
    let big = fixture("run/gil/big.py");
    let other = fixture("run/gil/other.py");
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[
            ("gil/big.py", big.as_str()),
            ("gil/other.py", other.as_str()),
        ],
        &conf(&[("gil", "\"gil\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    let line = eventually(120, "the gil point", || {
        dk.lines("/v1/write/metric")
            .into_iter()
            .find(|l| l.starts_with("gil "))
    });
    let (_, _) = d.stop();
    assert!(
        line.contains("free=true"),
        "the other script's runs did not get inside any of 20 report() calls: {line}"
    );
}

#[test]
fn report_reads_keys_by_value_and_keeps_the_order_of_a_big_list() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("k/keys.py", &fixture("run/keys.py"))],
        &conf(&[("k", "\"k\"")]),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(20_003, Duration::from_secs(30)),
        "{} lines; stderr: {}",
        dk.line_count(),
        d.stderr()
    );
    let lines = dk.all_lines();
    assert_eq!(lines.len(), 20_003);
    for l in &lines[..3] {
        assert_eq!(l, "k,t=a v=1i 1700000000000000000", "{:?}", &lines[..3]);
    }
    for (i, l) in lines[3..].iter().enumerate() {
        let p = parse_line(l);
        assert_eq!(p.measurement, "big");
        assert_eq!(p.fields[0], ("i".to_owned(), format!("i:{i}")), "{l}");
    }
    // The big int is written unsigned by the reference path, in its place.
    assert!(
        lines[3 + 7777].contains("x=9223372036854775808u"),
        "{}",
        lines[3 + 7777]
    );
    assert!(d.stop().0.success());
}

#[test]
fn feed_calls_written_in_one_pass_give_the_lines_and_errors_of_the_reference_path() {
    // Each case is fed with plain dicts (read and written in one pass, or
    // through the arena for kwargs and feed_object's name) and then with
    // dict subclasses (the reference path); the script compares the errors,
    // this side the lines of each pair (adjacent within their request path
    // and input: one route).
    let dk = FakeDataKit::start();
    let script = fixture("run/one_pass.py");
    let conf = "[[inputs.pythond]]\n  name = 'one_pass'\n  cmd = \"python3\"\n  dirs = [\"p\"]\n  [inputs.pythond.tags]\n    from_block = 'tag'\n    other = 'o'\n";
    let dir = DataKitDir::new(&dk.addr().to_string(), &[("p/one_pass.py", &script)], conf);
    let d = Daemon::start(&dir, &[]);
    let summary = eventually(60, "the summary point", || {
        dk.lines("/v1/write/metric")
            .into_iter()
            .find(|l| l.starts_with("one_pass_summary"))
    });
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
    let s = parse_line(&summary);
    let field = |k: &str| s.fields.iter().find(|(f, _)| f == k).unwrap().1.clone();
    assert_eq!(field("differ"), "s:", "errors differ:\n{summary}");
    let queued: usize = field("queued").trim_start_matches("i:").parse().unwrap();
    let calls: usize = field("calls").trim_start_matches("i:").parse().unwrap();
    assert!(queued > 100 && queued < calls, "{queued} of {calls}");
    let mut routes: HashMap<(String, Option<String>), Vec<String>> = HashMap::new();
    for r in dk.accepted() {
        let key = (r.path.clone(), r.query_value("input").map(str::to_owned));
        routes.entry(key).or_default().extend(
            r.lines()
                .into_iter()
                .filter(|l| !l.starts_with("one_pass_summary")),
        );
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut pairs = 0;
    for (route, lines) in &routes {
        assert!(lines.len() % 2 == 0, "{route:?}: {lines:#?}");
        for pair in lines.chunks(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a != b {
                // Only the time may differ, and only when both were stamped now.
                let (ra, ta) = a.rsplit_once(' ').unwrap();
                let (rb, tb) = b.rsplit_once(' ').unwrap();
                let near = |t: &str| (t.parse::<i64>().unwrap() - now).abs() < 600_000_000_000;
                assert!(ra == rb && near(ta) && near(tb), "{route:?}:\n{a}\n{b}");
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, queued);
}
