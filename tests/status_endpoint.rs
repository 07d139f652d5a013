//! The parts of the status endpoint `tests/status.rs` does not
//! reach: the loopback TCP listener and its refusal of other addresses,
//! `pythond status --watch`, the `hung` and `quarantined` states, the run
//! duration histogram's buckets and the `reason` label in `/metrics`, and
//! `pythond test --config … --input …` running the block's `cmd`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use openmetrics_parser::{prometheus::parse_prometheus, PrometheusValue};
use serde_json::Value;
use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `GET path` over `stream`: the status line's code and the body.
fn get_over(mut s: impl Read + Write, path: &str) -> (u16, String) {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: pythond\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

/// `GET path` on the daemon's socket, once it answers.
fn get_unix(dir: &DataKitDir, path: &str) -> String {
    let sock = dir.path().join("cache/pythond/pythond.sock");
    let s = eventually(30, "the status socket", || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    let (code, body) = get_over(s, path);
    assert_eq!(code, 200, "{body}");
    body
}

fn status_of(dir: &DataKitDir) -> Value {
    serde_json::from_str(&get_unix(dir, "/status")).unwrap()
}

/// The script `id` (`module.Class`) of input `input` in a status.
fn script<'a>(v: &'a Value, input: &str, id: &str) -> Option<&'a Value> {
    let i = v["inputs"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == input)?;
    i["scripts"].as_array()?.iter().find(|s| {
        let sid = match s["class"].as_str() {
            Some(c) => format!("{}.{c}", s["module"].as_str().unwrap_or("")),
            None => s["module"].as_str().unwrap_or("").to_owned(),
        };
        sid == id
    })
}

/// The address `--status-listen` bound, from the daemon's log.
fn bound_addr(d: &Daemon) -> std::net::SocketAddr {
    eventually(30, "the status listener's address in the log", || {
        let err = d.stderr();
        let at = err.find("status endpoint listening addr=")?;
        let rest = &err[at + "status endpoint listening addr=".len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[test]
fn status_listen_serves_loopback_tcp_with_port_0() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    let d = Daemon::start(&dir, &["--status-listen", "127.0.0.1:0"]);
    let addr = bound_addr(&d);
    assert_ne!(
        addr.port(),
        0,
        "the port bound is logged, not the one asked"
    );
    assert!(addr.ip().is_loopback());
    let v: Value = eventually(30, "the input's status over TCP", || {
        let s = std::net::TcpStream::connect(addr).ok()?;
        let (code, body) = get_over(s, "/status");
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["inputs"][0]["writer"]["points_sent"]["metric"] == 7).then_some(v)
    });
    assert_eq!(v["inputs"][0]["name"], "m");
    let (code, metrics) = get_over(std::net::TcpStream::connect(addr).unwrap(), "/metrics");
    assert_eq!(code, 200);
    assert!(parse_prometheus(&metrics).is_ok(), "{metrics}");
    let (code, _) = get_over(std::net::TcpStream::connect(addr).unwrap(), "/nothing");
    assert_eq!(code, 404);
    // `pythond status --url` reads the same endpoint.
    let out = pythond()
        .args(["status", "--json", "--url"])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let via: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(via["inputs"][0]["name"], "m");
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
}

#[test]
fn a_non_loopback_status_address_is_refused_unless_asked_for() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    let mut refused = Bounded::new(spawn_run(
        &dir,
        &["--status-listen", "0.0.0.0:0"],
        Stdio::null(),
        Stdio::piped(),
    ));
    let code = refused.wait_for(30).expect("pythond exits at once");
    let mut err = String::new();
    refused
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code.code(), Some(2), "{err}");
    assert!(
        err.contains("--status-listen 0.0.0.0:0 is not a loopback address")
            && err.contains("--status-listen-any"),
        "the error says why and what to do: {err}"
    );
    assert!(dk.requests().is_empty(), "no worker ran before the refusal");
    // Asked for: it listens on every address, loopback included.
    let d = Daemon::start(
        &dir,
        &["--status-listen", "0.0.0.0:0", "--status-listen-any"],
    );
    let addr = bound_addr(&d);
    assert!(addr.ip().is_unspecified(), "{addr}");
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()));
    let (code, body) = get_over(std::net::TcpStream::connect(local).unwrap(), "/status");
    assert_eq!(code, 200, "{body}");
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
}

#[test]
fn status_watch_refreshes_and_refuses_a_nan_period() {
    // A NaN period is refused by the argument parser (it used to panic).
    let empty = tempfile::tempdir().unwrap();
    let mut nan = Bounded::new(
        pythond()
            .args(["status", "--watch", "nan", "--datakit-dir"])
            .arg(empty.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let code = nan.wait_for(10).expect("refused at once");
    let mut err = String::new();
    nan.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_no_panic(&err);
    assert_eq!(code.code(), Some(2), "{err}");
    assert!(err.contains("'nan'") && err.contains("--watch"), "{err}");

    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    eventually(30, "the script in the status", || {
        script(&status_of(&dir), "m", "once.Once").map(|_| ())
    });
    let mut watch = Bounded::new(
        pythond()
            .args(["status", "--watch", "1", "--datakit-dir"])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = watch.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    // Frames are separated by "clear the screen": three frames, two seconds.
    const CLEAR: &str = "\x1b[2J\x1b[H";
    let mut text = String::new();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while text.matches(CLEAR).count() < 3 && std::time::Instant::now() < end {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        watch.child.try_wait().unwrap().is_none(),
        "--watch keeps running"
    );
    drop(watch);
    let frames: Vec<&str> = text.split(CLEAR).take(3).collect();
    assert_eq!(frames.len(), 3, "three frames in 30 s: {text:?}");
    for f in &frames {
        assert!(
            f.contains("input \"m\"") && f.contains("once.Once"),
            "{f:?}"
        );
    }
    assert_ne!(
        frames[0], frames[2],
        "the frames are fresh reads (the uptime moved on)"
    );
    drop(d);
}

#[test]
fn hung_and_quarantined_scripts_show_in_status_and_metrics() {
    let dk = FakeDataKit::start();
    let conf = block("sleepy", &["sleepy"], "") + &block("crashy", &["crashy"], "");
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("faults/sleeper.py", "sleepy/sleeper.py"),
            ("promises/crashloop/quitter.py", "crashy/quitter.py"),
        ],
        &conf,
    );
    let d = Daemon::start(&dir, &["--hang-grace-secs", "0.5"]);
    let v = eventually(60, "hung and quarantined in /status", || {
        let v = status_of(&dir);
        let hung = script(&v, "sleepy", "sleeper.Sleeper")?["state"] == "hung";
        let q = script(&v, "crashy", "quitter.Quitter")?["state"] == "quarantined";
        (hung && q).then_some(v)
    });
    let sleeper = script(&v, "sleepy", "sleeper.Sleeper").unwrap();
    assert_eq!(sleeper["timeouts"], 1, "{sleeper}");
    let quitter = script(&v, "crashy", "quitter.Quitter").unwrap();
    let why = &quitter["last_error"];
    assert!(
        why["message"]
            .as_str()
            .unwrap()
            .contains("died 3 times in a row"),
        "{quitter}"
    );
    // The quarantine's time is when it happened, not when it is asked.
    let at = why["at_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let again = status_of(&dir);
    assert_eq!(
        script(&again, "crashy", "quitter.Quitter").unwrap()["last_error"]["at_ms"],
        at,
        "asked twice, one time"
    );
    let started = v["started_ms"].as_u64().unwrap();
    assert!(at >= started, "after the daemon started: {at} < {started}");
    // The same states in /metrics, read by the independent parser.
    let text = get_unix(&dir, "/metrics");
    let exp = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let state = |input: &str, id: &str, st: &str| -> f64 {
        let fam = exp.families.get("pythond_script_state").unwrap();
        let s = fam
            .iter_samples()
            .find(|s| {
                let ls = s.get_labelset().unwrap();
                ls.get_label_value("input") == Some(input)
                    && ls.get_label_value("script") == Some(id)
                    && ls.get_label_value("state") == Some(st)
            })
            .unwrap_or_else(|| panic!("no state {st} of {id} in\n{text}"));
        match &s.value {
            PrometheusValue::Gauge(g) | PrometheusValue::Unknown(g) => g.as_f64(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(state("sleepy", "sleeper.Sleeper", "hung"), 1.0);
    assert_eq!(state("sleepy", "sleeper.Sleeper", "ok"), 0.0);
    assert_eq!(state("crashy", "quitter.Quitter", "quarantined"), 1.0);
    assert_eq!(state("crashy", "quitter.Quitter", "ok"), 0.0);
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let table = stdout(&out);
    assert!(
        table.contains("script sleeper.Sleeper is hung")
            && table.contains("script quitter.Quitter is quarantined"),
        "{table}"
    );
    drop(d);
}

#[test]
fn metrics_histogram_buckets_and_drop_reasons_match_the_status() {
    let dk = FakeDataKit::start();
    // DataKit refuses the logging batch (its two points): dropped, reason
    // `rejected`.
    dk.reject_bodies_containing("once_log");
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("status/once.py", "m/once.py")],
        &block("m", &["m"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    let v = eventually(30, "the refusal counted in /status", || {
        let v = status_of(&dir);
        (v["inputs"][0]["writer"]["dropped"]["rejected"] == 2).then_some(v)
    });
    let once = script(&v, "m", "once.Once").unwrap().clone();
    let text = get_unix(&dir, "/metrics");
    let exp = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let sample = |family: &str, labels: &[(&str, &str)]| {
        exp.families
            .get(family)
            .unwrap_or_else(|| panic!("no {family} in\n{text}"))
            .iter_samples()
            .find(|s| {
                let ls = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| ls.get_label_value(k) == Some(*v))
            })
            .unwrap_or_else(|| panic!("no {family}{labels:?} in\n{text}"))
            .value
            .clone()
    };
    match sample(
        "pythond_points_dropped_total",
        &[("input", "m"), ("reason", "rejected")],
    ) {
        PrometheusValue::Counter(c) => assert_eq!(c.value.as_f64(), 2.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        dk.lines("/v1/write/logging").len(),
        0,
        "refused, not stored"
    );
    let PrometheusValue::Histogram(h) = sample(
        "pythond_script_run_duration_seconds",
        &[("input", "m"), ("script", "once.Once")],
    ) else {
        panic!("not a histogram")
    };
    // The one run, in every bucket from the first bound at or above its
    // duration: the cumulative form of the status's counts.
    let took = once["last_run_duration_ms"].as_f64().unwrap() / 1e3;
    let bounds: Vec<f64> = once["durations"]["bounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_f64().unwrap())
        .collect();
    assert_eq!(h.buckets.len(), bounds.len() + 1, "{h:?}");
    let mut cumulative = 0;
    for (i, b) in h.buckets.iter().enumerate() {
        cumulative += once["durations"]["counts"][i].as_u64().unwrap();
        let bound = bounds.get(i).copied().unwrap_or(f64::INFINITY);
        assert_eq!(b.upper_bound, bound);
        assert_eq!(b.count.as_f64(), cumulative as f64, "le={bound}: {h:?}");
        assert_eq!(
            b.count.as_f64(),
            if took <= bound { 1.0 } else { 0.0 },
            "a run of {took}s in le={bound}"
        );
    }
    assert_eq!(h.count, Some(1));
    let sum = h.sum.unwrap().as_f64();
    assert!((sum - took).abs() < 1e-3, "sum {sum} vs the run's {took}");
    let (code, err) = d.stop();
    assert!(
        code.success(),
        "DataKit's refusals are not pythond's losses: {err}"
    );
}

/// A venv of the `python3` on PATH, without pip.
fn venv(at: &Path) -> std::path::PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(at)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    at.join("bin/python3")
}

#[test]
fn test_command_with_config_and_input_runs_the_blocks_cmd() {
    let envs = tempfile::tempdir().unwrap();
    let venv_dir = envs.path().join("venv");
    let python = venv(&venv_dir);
    let conf = format!(
        "[[inputs.pythond]]\n  name = 'venv'\n  cmd = {:?}\n  dirs = [\"w\"]\n",
        python.display().to_string()
    );
    let dir = datakit_with("127.0.0.1:9", &[("promises/sys_executable", "w")], &conf);
    let out = pythond()
        .args(["test", "--format", "json", "--config"])
        .arg(dir.path().join("conf.d"))
        .args(["--input", "venv", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let point: Value = stdout(&out)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("line").is_some())
        .unwrap_or_else(|| panic!("no point: {}", stdout(&out)));
    let line = point["line"].as_str().unwrap();
    assert!(
        line.contains(&format!("executable=\"{}\"", python.display())),
        "sys.executable is the block's cmd: {line}"
    );
    assert!(
        line.contains(&format!("child_prefix=\"{}\"", venv_dir.display())),
        "subprocess.run([sys.executable, ...]) starts cmd's Python: {line}"
    );
}

#[test]
fn metrics_counters_go_on_from_where_they_were_when_a_worker_restarts() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(&dk.addr().to_string(), &[], &block("c", &["c"], ""));
    std::fs::create_dir_all(dir.path().join("python.d/c")).unwrap();
    std::fs::write(
        dir.path().join("python.d/c/c.py"),
        counter_script("Counter", "counted", 0.2),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    let counters = || -> Option<(f64, f64, Option<u64>)> {
        let text = get_unix(&dir, "/metrics");
        let exp = parse_prometheus(&text).ok()?;
        let value = |family: &str, labels: &[(&str, &str)]| -> Option<f64> {
            let s = exp.families.get(family)?.iter_samples().find(|s| {
                let ls = s.get_labelset().unwrap();
                labels
                    .iter()
                    .all(|(k, v)| ls.get_label_value(k) == Some(*v))
            })?;
            match &s.value {
                PrometheusValue::Counter(c) => Some(c.value.as_f64()),
                _ => None,
            }
        };
        let runs = value(
            "pythond_script_runs_total",
            &[("input", "c"), ("script", "c.Counter")],
        )?;
        let sent = value(
            "pythond_points_sent_total",
            &[("input", "c"), ("category", "metric")],
        )?;
        let pid = status_of(&dir)["inputs"][0]["pid"].as_u64();
        Some((runs, sent, pid))
    };
    let (runs, sent, pid) = eventually(30, "ten runs counted", || {
        counters().filter(|(r, s, p)| *r >= 10.0 && *s >= 50.0 && p.is_some())
    });
    // The worker dies (kill -9): pythond starts another.
    unsafe { libc::kill(pid.unwrap() as i32, libc::SIGKILL) };
    let mut seen = Vec::new();
    let after = eventually(30, "the new worker's counts", || {
        let c = counters()?;
        seen.push(c);
        (c.2.is_some() && c.2 != pid && c.0 > runs + 3.0).then_some(c)
    });
    for (r, s, _) in &seen {
        assert!(
            *r >= runs && *s >= sent,
            "counters never go down across the restart: {runs}/{sent} then {seen:?}"
        );
    }
    assert!(after.1 > sent, "{after:?}");
    let v = status_of(&dir);
    assert_eq!(v["inputs"][0]["restarts"], 1, "{v}");
    drop(d);
}
