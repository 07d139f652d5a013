//! The status endpoint, `/metrics` and `pythond status`, against
//! a running daemon and a fake DataKit.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use openmetrics_parser::{prometheus::parse_prometheus, PrometheusValue};
use serde_json::Value;
use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `pythond status --json` for the daemon whose DataKit dir is `dk`.
fn status_json(dk: &Path) -> (std::process::ExitStatus, Value) {
    let out = pythond()
        .args(["status", "--json", "--datakit-dir"])
        .arg(dk)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status, v)
}

/// The script `class` of the first input, once `pred` holds for it.
fn script_when(dk: &Path, class: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    eventually(secs, &format!("status of {class}"), || {
        let (_, v) = status_json(dk);
        let s = v["inputs"][0]["scripts"]
            .as_array()?
            .iter()
            .find(|s| s["class"] == class || (s["class"].is_null() && s["module"] == class))?
            .clone();
        pred(&s).then_some(s)
    })
}

/// `GET path` on the daemon's status socket.
pub(crate) fn get(sock: &Path, path: &str) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: pythond\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn socket(dk: &DataKitDir) -> std::path::PathBuf {
    dk.path().join("cache/pythond/pythond.sock")
}

#[test]
fn status_shows_healthy_raising_timing_out_and_unloadable_scripts() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("status/raises.py", "s/raises.py"),
            ("status/loops.py", "s/loops.py"),
            ("status/broken.py", "s/broken.py"),
        ],
        &block("mixed", &["s"], ""),
    );
    std::fs::write(
        dir.path().join("python.d/s/ok.py"),
        counter_script("Ok", "ok", 0.25),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    let ok = script_when(dir.path(), "Counter", 30, |s| s["runs"].as_u64() >= Some(3));
    assert_eq!(ok["state"], "ok");
    assert_eq!(ok["module"], "ok");
    assert_eq!(ok["name"], "Ok");
    assert_eq!(ok["interval_secs"], 0.25);
    assert_eq!(ok["failures"], 0);
    assert!(ok["points"]["metric"].as_u64() >= Some(15), "{ok}");
    assert!(ok["duration_p50_ms"].as_f64().is_some() && ok["duration_p99_ms"].as_f64().is_some());
    assert!(ok["start_delay_p99_ms"].as_f64().is_some());
    assert!(ok["last_success_ms"].as_u64().is_some() && ok["last_run_start_ms"].as_u64().is_some());
    assert!(ok["durations"]["count"].as_u64() >= Some(3), "{ok}");

    let raises = script_when(dir.path(), "Raises", 30, |s| {
        s["failures"].as_u64() >= Some(2)
    });
    assert!(
        raises["state"] == "failing" || raises["state"] == "backing_off",
        "{raises}"
    );
    assert!(raises["consecutive_failures"].as_u64() >= Some(2));
    let tb = raises["last_error"]["message"].as_str().unwrap();
    assert!(
        tb.contains("Traceback") && tb.contains("RuntimeError: boom from the status test"),
        "{tb}"
    );

    let loops = script_when(dir.path(), "Loops", 30, |s| {
        s["timeouts"].as_u64() >= Some(1)
    });
    assert_eq!(loops["state"], "timed_out", "{loops}");
    assert!(loops["last_error"]["message"]
        .as_str()
        .unwrap()
        .contains("RunTimeout"));

    let broken = script_when(dir.path(), "broken", 30, |s| s["state"] == "not_loaded");
    assert!(
        broken["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("SyntaxError"),
        "{broken}"
    );

    let (code, v) = status_json(dir.path());
    let input = &v["inputs"][0];
    assert_eq!(input["name"], "mixed");
    assert!(input["pid"].as_u64().is_some() && input["uptime_secs"].as_f64().is_some());
    assert_eq!(input["restarts"], 0);
    assert!(input["rss_bytes"].as_u64() > Some(1 << 20));
    assert!(input["writer"]["points_sent"]["metric"].as_u64() >= Some(15));
    assert_eq!(
        code.code(),
        Some(1),
        "broken scripts make `pythond status` exit 1"
    );
    // The human table names each script with its state.
    let table = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stdout(&table);
    // Each script's row: its id, then its state (the second column).
    let state_in_table = |id: &str| -> Option<String> {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|cols| cols.first() == Some(&id))
            .and_then(|cols| cols.get(1).map(|s| s.to_string()))
    };
    for (id, states) in [
        ("ok.Counter", &["ok"][..]),
        ("raises.Raises", &["failing", "backing_off"][..]),
        ("loops.Loops", &["timed_out"][..]),
        ("broken", &["not_loaded"][..]),
    ] {
        let state = state_in_table(id);
        assert!(
            state.as_deref().is_some_and(|s| states.contains(&s)),
            "{id}: {state:?}, expected one of {states:?}:\n{text}"
        );
    }
    assert!(text.contains("problems:"), "{text}");
    drop(d);
}

#[test]
fn metrics_parse_with_an_independent_parser_and_match_what_arrived() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(9, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    let arrived_metric = dk.lines("/v1/write/metric").len() as f64;
    let arrived_logging = dk.lines("/v1/write/logging").len() as f64;
    assert_eq!((arrived_metric, arrived_logging), (7.0, 2.0));
    // The worker reports every second: wait until it has counted them all.
    let text = eventually(20, "the counts in /metrics", || {
        let t = get(&socket(&dir), "/metrics");
        t.contains("pythond_points_sent_total{input=\"m\",category=\"logging\"} 2")
            .then_some(t)
    });
    let exp = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let value = |family: &str, labels: &[(&str, &str)]| -> f64 {
        let fam = exp
            .families
            .get(family)
            .unwrap_or_else(|| panic!("no {family} in\n{text}"));
        let s = fam
            .iter_samples()
            .find(|s| {
                let ls = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| ls.get_label_value(k) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {family}{labels:?}"));
        match &s.value {
            PrometheusValue::Counter(c) => c.value.as_f64(),
            PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => g.as_f64(),
            PrometheusValue::Histogram(h) => h.count.unwrap_or_default() as f64,
            PrometheusValue::Summary(_) => f64::NAN,
        }
    };
    let i = ("input", "m");
    let script = ("script", "once.Once");
    assert_eq!(
        value("pythond_points_sent_total", &[i, ("category", "metric")]),
        arrived_metric
    );
    assert_eq!(
        value("pythond_points_sent_total", &[i, ("category", "logging")]),
        arrived_logging
    );
    assert_eq!(
        value(
            "pythond_script_points_total",
            &[i, script, ("category", "metric")]
        ),
        7.0
    );
    assert_eq!(value("pythond_script_runs_total", &[i, script]), 1.0);
    assert_eq!(value("pythond_script_failures_total", &[i, script]), 0.0);
    assert_eq!(
        value("pythond_script_state", &[i, script, ("state", "ok")]),
        1.0
    );
    assert_eq!(
        value("pythond_script_state", &[i, script, ("state", "failing")]),
        0.0
    );
    assert_eq!(
        value("pythond_script_run_duration_seconds", &[i, script]),
        1.0,
        "one run in the histogram"
    );
    assert_eq!(value("pythond_input_up", &[i]), 1.0);
    assert_eq!(value("pythond_input_restarts_total", &[i]), 0.0);
    assert!(value("pythond_input_rss_bytes", &[i]) > 1e6);
    assert_eq!(value("pythond_requests_failed_total", &[i]), 0.0);
    // All well: `pythond status` exits 0.
    let (code, _) = status_json(dir.path());
    assert!(code.success());
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
}

#[test]
fn pythond_status_exits_2_when_no_daemon_answers_and_1_when_points_were_dropped() {
    let empty = tempfile::tempdir().unwrap();
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no running pythond"),
        "{}",
        stderr(&out)
    );
    // Points dropped by pythond (here: the spool bound passed while DataKit
    // is down) make it exit 1.
    let addr = FakeDataKit::reserve_port();
    let dir = datakit_with(
        &addr.to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    std::fs::write(
        dir.path().join("python.d/m/big.py"),
        fixture("faults/big.py"),
    )
    .unwrap();
    let d = Daemon::start(&dir, &["--spool-max-bytes", "65536"]);
    let (code, v) = eventually(30, "points dropped by the spool bound", || {
        let (code, v) = status_json(dir.path());
        (v["inputs"][0]["lost_points"].as_u64() > Some(0)).then_some((code, v))
    });
    assert_eq!(code.code(), Some(1), "{v}");
    assert!(v["inputs"][0]["writer"]["dropped"]["spool_full"].as_u64() > Some(0));
    drop(d);
}
