//! `pythond check` always ends: a module that blocks at import, or a process
//! a module started that holds the worker's pipes after it exited, cannot
//! keep it waiting.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fixtures::*;
use crate::util::*;

#[test]
fn check_ends_when_a_script_blocks_while_being_imported() {
    let dir = datakit_with(
        "127.0.0.1:9",
        &[
            ("promises/hang_on_import/hangs.py", "h/hangs.py"),
            ("promises/healthy/healthy.py", "h/healthy.py"),
        ],
        &block("hangs", &["h"], ""),
    );
    let out_path = dir.path().join("check.out");
    let child = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut c = Bounded::new(child);
    // Assumed: the load of an input is given well under a minute.
    let status = c.wait_for(60);
    if status.is_none() {
        // Do not leave `worker --list` sleeping for ever.
        for (pid, _) in workers(c.child.id() as i32) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let status =
        status.unwrap_or_else(|| panic!("pythond check still running after 60 s:\n{text}"));
    assert!(!status.success(), "{text}");
    assert!(
        text.contains("hangs"),
        "the module that hung is named:\n{text}"
    );
}

#[test]
fn check_ends_when_a_process_started_at_import_holds_the_pipes() {
    let dir = datakit_with(
        "127.0.0.1:9",
        &[("crashes/grandchild.py", "g/grandchild.py")],
        &block("grand", &["g"], ""),
    );
    let started = Instant::now();
    let mut c = Bounded::new(
        pythond()
            .args(["check", "--config"])
            .arg(dir.path().join("conf.d"))
            .arg("--datakit-dir")
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = c.child.stdout.take().unwrap();
    let status = c.wait_for(25);
    let pid_file = dir.path().join("python.d/g/grandchild.pid");
    let grandchild: Option<i32> = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|p| p.trim().parse().ok());
    if let Some(pid) = grandchild {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(grandchild.is_some(), "the module started its process");
    let status = status.expect("pythond check ended though the pipes stayed open");
    let took = started.elapsed();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut out, &mut text).unwrap();
    assert!(status.success(), "{text}");
    assert!(
        text.contains("grandchild.Grandparent"),
        "what the worker said before it exited is shown:\n{text}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}
