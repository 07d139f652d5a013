//! Crash loops. A script that takes its worker down again
//! and again is quarantined (the worker runs without it, the others report
//! on), a script merely running beside it is not, the quarantine is in the
//! log, `/v1/lasterror`, the status and `pythond check`, it survives a
//! restart of pythond, and it ends when the script's file changes. Real
//! processes, real scripts (`tests/data/crashes/`, `tests/data/promises/`),
//! a loopback DataKit.

use std::time::Duration;

use serde_json::Value;
use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// The state of script `class` of input `input`, if it is listed.
fn state_of(v: &Value, input: &str, class: &str) -> Option<String> {
    let i = v["inputs"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == input)?;
    let s = i["scripts"]
        .as_array()?
        .iter()
        .find(|s| s["class"] == class)?;
    s["state"].as_str().map(str::to_owned)
}

/// The log's quarantine lines (`quarantined: ...`, with the id).
fn quarantine_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("quarantined: the worker died"))
        .collect()
}

fn check(dir: &DataKitDir) -> String {
    let out = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    stdout(&out)
}

#[test]
fn a_script_that_crashes_its_worker_every_run_is_set_aside_and_the_others_keep_reporting() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("promises/crashloop/quitter.py", "c/quitter.py"),
            ("promises/healthy/healthy.py", "c/healthy.py"),
        ],
        &block("crashy", &["c"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    // After 3 crashes the worker runs without the crasher: the healthy script
    // (every 0.25 s) then reports for 5 s with no gap over 1 s.
    let steady = dk.wait_until(Duration::from_secs(45), |dk| {
        steady_for(
            &times_of(&dk.all_lines(), "healthy"),
            Duration::from_secs(5),
            Duration::from_secs(1),
        )
    });
    let times = times_of(&dk.all_lines(), "healthy");
    let (_, err) = d.stop();
    let restarts = err.matches("worker exited; restarting").count();
    assert!(
        steady,
        "the healthy script never reported steadily for 5 s in 45 s ({} runs, largest gap {} ms, {restarts} worker restarts)",
        times.len(),
        max_gap(&times) / 1_000_000
    );
    let le = lasterrors(&dk);
    assert!(
        le.iter()
            .any(|t| t.contains("run:quitter.Quitter") && t.contains("died 3 times in a row")),
        "the crasher is reported to lasterror: {le:?}"
    );
    // The log names the crasher in its quarantine line (every line of the
    // input says `crashy`: that is not enough).
    let q = quarantine_lines(&err);
    assert_eq!(q.len(), 1, "one quarantine:\n{err}");
    assert!(q[0].contains("run:quitter.Quitter"), "{}", q[0]);
    assert!(
        restarts >= 3,
        "three crashes before the quarantine: {restarts}"
    );
    crate::util::report_outcome(
        "a script calling `os._exit(1)` at every run, beside a healthy script of the same input",
        &format!("after 3 crashes in a row it was quarantined ({restarts} worker restarts in all): the worker runs without it, the healthy script reports steadily; the crasher is named in the log and lasterror"),
        times.len(),
        times.len(),
    );
}

#[test]
fn a_long_run_going_when_another_script_crashes_the_worker_is_not_quarantined() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("crashes/patient.py", "c/patient.py"),
            ("crashes/late.py", "c/late.py"),
        ],
        &block("mixed", &["c"], ""),
    );
    let d = Daemon::start(&dir, &[]);
    let v = eventually(60, "late.Late quarantined", || {
        let v = status(dir.path());
        (state_of(&v, "mixed", "Late")? == "quarantined").then_some(v)
    });
    assert_ne!(
        state_of(&v, "mixed", "Patient").as_deref(),
        Some("quarantined"),
        "{v}"
    );
    // Patient runs on in the worker without late.py: new points for 5 s.
    let n = seq_of(&dk.all_lines(), "patient").len();
    eventually(20, "patient reporting after the quarantine", || {
        (seq_of(&dk.all_lines(), "patient").len() >= n + 2).then_some(())
    });
    let v = status(dir.path());
    assert_eq!(
        state_of(&v, "mixed", "Patient").as_deref(),
        Some("ok"),
        "{v}"
    );
    let (_, err) = d.stop();
    let q = quarantine_lines(&err);
    assert_eq!(
        q.len(),
        1,
        "only the crasher is quarantined:\n{}",
        q.join("\n")
    );
    assert!(
        q[0].contains("run:late.Late") && q[0].contains("the last of 2 running to start"),
        "{}",
        q[0]
    );
    let crashes = err.matches("worker exited; restarting").count();
    assert!(
        err.lines()
            .filter(|l| l.contains("worker exited; restarting"))
            .all(|l| l.contains("run:patient.Patient")),
        "patient was running in every one of the {crashes} crashes:\n{err}"
    );
}

#[test]
fn a_quarantine_is_listed_by_check_survives_a_restart_and_ends_when_its_file_changes() {
    let dk = FakeDataKit::start();
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[
            ("promises/crashloop/quitter.py", "c/quitter.py"),
            ("promises/healthy/healthy.py", "c/healthy.py"),
        ],
        &block("crashy", &["c"], ""),
    );
    assert!(!check(&dir).contains("quarantined"), "nothing yet");
    let d = Daemon::start(&dir, &[]);
    let at = eventually(60, "quitter quarantined", || {
        let v = status(dir.path());
        (state_of(&v, "crashy", "Quitter")? == "quarantined").then_some(())?;
        let s = v["inputs"][0]["scripts"]
            .as_array()?
            .iter()
            .find(|s| s["class"] == "Quitter")?
            .clone();
        s["last_error"]["at_ms"].as_u64()
    });
    let text = check(&dir);
    let line = text
        .lines()
        .find(|l| l.contains("quarantined:"))
        .unwrap_or_else(|| panic!("check lists the quarantine:\n{text}"));
    assert!(
        line.contains("run:quitter.Quitter")
            && line.contains("tried again in")
            && line.contains("quitter.py changes"),
        "{line}"
    );
    let (_, err) = d.stop();
    assert!(err.contains("worker exited; restarting"), "{err}");

    // A new pythond starts the input without it at once: no crash at all.
    let d = Daemon::start(&dir, &[]);
    let n = seq_of(&dk.all_lines(), "healthy").len();
    eventually(30, "healthy reporting in the new pythond", || {
        (seq_of(&dk.all_lines(), "healthy").len() >= n + 8).then_some(())
    });
    let v = status(dir.path());
    assert_eq!(
        state_of(&v, "crashy", "Quitter").as_deref(),
        Some("quarantined")
    );
    let s = v["inputs"][0]["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["class"] == "Quitter")
        .unwrap();
    assert_eq!(
        s["last_error"]["at_ms"], at,
        "since when: kept across the restart"
    );
    assert!(
        !d.stderr().contains("worker exited; restarting"),
        "the crasher never ran:\n{}",
        d.stderr()
    );
    // The author fixes the script: the quarantine is over, in check too.
    std::fs::write(
        dir.path().join("python.d/c/quitter.py"),
        "from datakit_framework import DataKitFramework\n\n\nclass Quitter(DataKitFramework):\n    \
         interval = 0.5\n\n    def run(self):\n        self.feed_metric(measurement='fixed', fields={'v': 1})\n",
    )
    .unwrap();
    eventually(60, "the fixed script reporting", || {
        dk.all_lines()
            .iter()
            .any(|l| l.starts_with("fixed "))
            .then_some(())
    });
    let text = check(&dir);
    assert!(!text.contains("quarantined"), "{text}");
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
}
