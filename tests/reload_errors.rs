//! Hot reload, what `tests/reload.rs` does not reach: every kind
//! of broken edit (an import error, an invalid value in the block, a block
//! whose name cannot be read) keeps the version that runs and says why, and
//! the error goes once the edit is undone; a new block that does not load
//! is reported until it is fixed or removed; the spool survives a reload
//! while DataKit is down; the edited input loses nothing across its own
//! restart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::reload::{input, save, steady_unaffected, two_inputs, versions};
use crate::util::*;

fn pid_of(dir: &Path, name: &str) -> Option<u64> {
    input(&status(dir), name).and_then(|i| i["pid"].as_u64())
}

/// The reload error of input `name`, once there is one.
fn reload_error(dir: &Path, name: &str) -> String {
    eventually(30, &format!("a reload error for {name}"), || {
        input(&status(dir), name)?["reload_error"]["message"]
            .as_str()
            .map(str::to_owned)
    })
}

fn reload_error_cleared(dir: &Path, name: &str) {
    eventually(30, &format!("the reload error of {name} cleared"), || {
        input(&status(dir), name)?["reload_error"]
            .is_null()
            .then_some(())
    });
}

/// v1 is still what runs: more of its points arrive.
fn v1_goes_on(dk: &FakeDataKit) {
    let n = versions(dk).len();
    eventually(10, "v1 still reporting", || {
        (versions(dk).len() > n + 2).then_some(())
    });
    assert!(versions(dk).iter().all(|v| *v == 1), "{:?}", versions(dk));
}

#[test]
fn broken_edits_of_every_kind_keep_the_version_that_runs_until_undone() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    let d = Daemon::start(&dir, &[]);
    eventually(30, "both inputs report", || {
        (versions(&dk).contains(&1) && !seq_of(&dk.all_lines(), "steady").is_empty()).then_some(())
    });
    let from = SystemTime::now();
    let edited = eventually(10, "a pid", || pid_of(dir.path(), "edited"));
    let steady = pid_of(dir.path(), "steady").unwrap();
    let script = dir.path().join("python.d/edited/edited.py");
    let conf = dir.path().join("conf.d/pythond/pythond.conf");
    let good_conf = std::fs::read_to_string(&conf).unwrap();

    // An import error.
    save(&script, &fixture("reload/import_error.py"));
    let err = reload_error(dir.path(), "edited");
    assert!(
        err.contains("refused") && err.contains("ModuleNotFoundError"),
        "{err}"
    );
    assert!(lasterror_has(&dk, "edited", "ModuleNotFoundError"));
    v1_goes_on(&dk);
    // Undone: what runs is what the file says again; no restart needed.
    save(&script, &fixture("reload/v1.py"));
    reload_error_cleared(dir.path(), "edited");

    // An invalid value in the block: the block does not parse.
    let bad = good_conf.replace(
        "name = 'edited'\n  cmd = \"python3\"\n",
        "name = 'edited'\n  cmd = \"python3\"\n  timeout = 'soon'\n",
    );
    assert_ne!(bad, good_conf);
    save(&conf, &bad);
    let err = reload_error(dir.path(), "edited");
    assert!(
        err.contains("key \"timeout\"")
            && err.contains("\"soon\" is not a duration")
            && err.contains("keeps running as it is"),
        "{err}"
    );
    assert!(lasterror_has(&dk, "edited", "is not a duration"));
    eventually(10, "the refusal in the log", || {
        d.cli_log().contains("its block is invalid").then_some(())
    });
    v1_goes_on(&dk);
    save(&conf, &good_conf);
    reload_error_cleared(dir.path(), "edited");

    // A block whose name cannot be read: every input of that file that is
    // missing now keeps running.
    save(&conf, &good_conf.replace("name = 'edited'", "name = 5"));
    let err = reload_error(dir.path(), "edited");
    assert!(
        err.contains("key \"name\": expected a string, got integer"),
        "{err}"
    );
    v1_goes_on(&dk);
    save(&conf, &good_conf);
    reload_error_cleared(dir.path(), "edited");

    std::thread::sleep(Duration::from_millis(1500));
    let until = SystemTime::now();
    let v = status(dir.path());
    assert_eq!(
        (pid_of(dir.path(), "edited"), pid_of(dir.path(), "steady")),
        (Some(edited), Some(steady)),
        "no worker was restarted: {v}"
    );
    assert_eq!(input(&v, "edited").unwrap()["restarts"], 0, "{v}");
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "all clear again: {}", stdout(&out));
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    steady_unaffected(&dk, from, until);
}

#[test]
fn a_new_block_that_does_not_load_is_reported_until_fixed_or_removed() {
    let dk = FakeDataKit::start();
    let dir = two_inputs(&dk);
    let d = Daemon::start(&dir, &[]);
    eventually(30, "edited reports", || {
        versions(&dk).contains(&1).then_some(())
    });
    let added = dir.path().join("python.d/added/added.py");
    std::fs::create_dir_all(added.parent().unwrap()).unwrap();
    std::fs::write(&added, fixture("reload/broken.py")).unwrap();
    let conf = dir.path().join("conf.d/pythond/added.conf");

    // Added broken, then removed: it leaves the status.
    save(&conf, &block("added", &["added"], ""));
    let err = reload_error(dir.path(), "added");
    assert!(
        err.contains("not started") && err.contains("SyntaxError"),
        "{err}"
    );
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    std::fs::remove_file(&conf).unwrap();
    eventually(30, "the refused block gone from the status", || {
        input(&status(dir.path()), "added").is_none().then_some(())
    });
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));

    // Added broken again, then its script fixed: it starts, the error goes.
    save(&conf, &block("added", &["added"], ""));
    reload_error(dir.path(), "added");
    save(&added, &counter_script("Added", "added", 0.3));
    eventually(30, "the fixed new input reports", || {
        (!seq_of(&dk.all_lines(), "added").is_empty()).then_some(())
    });
    reload_error_cleared(dir.path(), "added");
    assert!(pid_of(dir.path(), "added").is_some());
    let out = pythond()
        .args(["status", "--datakit-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
}

/// `edited` as a counter (`Before`, every 0.2 s); returns the DataKit dir.
fn counting_input(listen: &str) -> DataKitDir {
    let dir = datakit_with(listen, &[], &block("edited", &["edited"], ""));
    let script = dir.path().join("python.d/edited/edited.py");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, counter_script("Before", "before", 0.2)).unwrap();
    dir
}

/// Every seq of `measurement` in `0..produced` arrived (duplicates
/// allowed: delivery is at least once).
fn all_arrived(dk: &FakeDataKit, measurement: &str, produced: usize) -> Result<(), String> {
    let mut got = seq_of(&dk.all_lines(), measurement);
    got.sort();
    got.dedup();
    let want: Vec<i64> = (0..produced as i64).collect();
    if got == want {
        Ok(())
    } else {
        let missing: Vec<&i64> = want.iter().filter(|s| !got.contains(s)).collect();
        Err(format!(
            "{measurement}: {} of {produced} arrived, missing {missing:?}",
            got.len()
        ))
    }
}

fn edit_to_after(dir: &DataKitDir) {
    save(
        &dir.path().join("python.d/edited/edited.py"),
        &counter_script("After", "after", 0.2),
    );
}

#[test]
fn the_edited_input_loses_nothing_across_its_own_restart() {
    let dk = FakeDataKit::start();
    let dir = counting_input(&dk.addr().to_string());
    let d = Daemon::start(&dir, &[]);
    eventually(30, "before reporting", || {
        (seq_of(&dk.all_lines(), "before").len() >= 10).then_some(())
    });
    edit_to_after(&dir);
    let ok = dk.wait_until(Duration::from_secs(30), |dk| {
        seq_of(&dk.all_lines(), "after").len() >= 10
    });
    assert!(ok, "after reporting:\n{}", d.stderr());
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    let before = produced(&dir, "edited", "Before");
    let after = produced(&dir, "edited", "After");
    assert!(before >= 10 && after >= 10, "{before} {after}");
    all_arrived(&dk, "before", before).unwrap();
    all_arrived(&dk, "after", after).unwrap();
}

#[test]
fn the_spool_survives_a_reload_while_datakit_is_down() {
    let addr = FakeDataKit::reserve_port();
    let dir = counting_input(&addr.to_string());
    let d = Daemon::start(&dir, &[]);
    eventually(30, "before producing", || {
        (produced(&dir, "edited", "Before") >= 20).then_some(())
    });
    let old = eventually(10, "a pid", || pid_of(dir.path(), "edited"));
    edit_to_after(&dir);
    eventually(30, "the new version running", || {
        (pid_of(dir.path(), "edited").is_some_and(|p| p != old)
            && produced(&dir, "edited", "After") >= 10)
            .then_some(())
    });
    let v: Value = status(dir.path());
    assert!(
        input(&v, "edited").unwrap()["writer"]["spool_points"].as_u64() > Some(0),
        "DataKit is down: the points wait in the spool: {v}"
    );
    // DataKit comes back: what both versions produced arrives.
    let dk = FakeDataKit::start_on(addr);
    let ok = dk.wait_until(Duration::from_secs(60), |dk| {
        all_arrived(dk, "before", produced(&dir, "edited", "Before")).is_ok()
            && !seq_of(&dk.all_lines(), "after").is_empty()
    });
    let (code, err) = d.stop();
    assert!(code.success(), "{err}");
    let before = produced(&dir, "edited", "Before");
    let after = produced(&dir, "edited", "After");
    assert!(ok, "{:?}", all_arrived(&dk, "before", before));
    all_arrived(&dk, "before", before).unwrap();
    all_arrived(&dk, "after", after).unwrap();
}
