//! The processes scripts start end with their worker: after DataKit's
//! SIGKILL of pythond, after `pythond run`'s SIGTERM, after a crash; and the
//! worker, which adopts the orphans among them, reaps them without taking a
//! child's status from Python.

use super::*;

/// The pids `spawner.py` wrote: a plain child, a setsid child, a
/// double-forked daemon.
fn spawned(dir: &Path) -> Vec<i32> {
    let pids = eventually(30, "the spawner's pids", || {
        std::fs::read_to_string(dir.join("pids")).ok()
    });
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
    for p in &pids {
        assert!(alive(*p), "{p} runs before the stop");
    }
    pids
}

fn all_gone(pids: &[i32], after: &str) {
    let end = Instant::now() + Duration::from_secs(15);
    while pids.iter().any(|p| alive(*p)) {
        if Instant::now() >= end {
            let left: Vec<String> = pids
                .iter()
                .filter(|p| alive(**p))
                .map(|p| {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    format!("{p} ({})", String::from_utf8_lossy(&cmd).replace('\0', " "))
                })
                .collect();
            for p in pids {
                // SAFETY: kill(2) of processes this test's scripts started.
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
            panic!("still running 15 s {after}: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn no_process_a_script_started_survives_datakits_sigkill_of_pythond() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    i.script("spawner", "python.d/spawner");
    i.block("spawner", &["spawner"], "");
    let file = i.render(&[i.path().join("python.d/spawner")], &["spawner"]);
    let mut p = launch(&file, "spawner", &[]);
    let pids = spawned(&i.path().join("python.d/spawner"));
    // DataKit's stop: SIGKILL to pythond's pid alone.
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(p.pid(), libc::SIGKILL) };
    let _ = p.child.wait();
    all_gone(&pids, "after SIGKILL of pythond");
}

#[test]
fn no_process_a_script_started_survives_sigterm_or_ctrl_c_of_pythond_run() {
    // Ctrl-C: the terminal signals its foreground process group, which
    // holds pythond but no longer its workers (each leads a group of its
    // own); pythond must stop them.
    for (sig, what) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "Ctrl-C (SIGINT)"),
    ] {
        let dk = FakeDataKit::start();
        let dir = crate::fixtures::datakit_with(
            &dk.addr().to_string(),
            &[("launch/spawner/spawner.py", "spawner/spawner.py")],
            &crate::fixtures::block("spawner", &["spawner"], ""),
        );
        let mut d = Daemon::start(&dir, &[]);
        let pids = spawned(&dir.path().join("python.d/spawner"));
        // SAFETY: kill(2) of the pythond this test started.
        unsafe { libc::kill(d.pid(), sig) };
        let status = eventually(20, &format!("pythond's exit on {what}"), || {
            d.child.try_wait().unwrap()
        });
        let err = d.stderr();
        assert!(status.success(), "{what}: {err}");
        all_gone(&pids, &format!("after {what} of pythond run"));
        assert!(
            err.contains("ending the processes the scripts started"),
            "{what}: the worker says so: {err}"
        );
    }
}

#[test]
fn a_crashed_worker_is_restarted_its_points_go_on_and_its_child_is_killed() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    i.script("crash", "python.d/crash");
    i.block("crash", &["crash"], "");
    let dir = i.path().join("python.d/crash");
    let mut p = launch(
        &i.render(std::slice::from_ref(&dir), &["crash"]),
        "crash",
        &[],
    );
    let first: i32 = eventually(30, "the first worker crashed", || {
        std::fs::read_to_string(dir.join("crashed")).ok()
    })
    .trim()
    .parse()
    .unwrap();
    let child: i32 = std::fs::read_to_string(dir.join("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid_of = |l: &String| {
        parse_line(l)
            .tags
            .into_iter()
            .find(|(k, _)| k == "pid")
            .map(|(_, v)| v)
            .unwrap_or_default()
    };
    assert!(
        dk.wait_until(Duration::from_secs(30), |dk| {
            dk.all_lines()
                .iter()
                .filter(|l| pid_of(l) != first.to_string())
                .count()
                >= 5
        }),
        "a restarted worker's points arrive: {:?}\n{}",
        dk.all_lines(),
        i.cli_log(&i.data_dir())
    );
    let log = i.cli_log(&i.data_dir());
    assert!(
        log.contains("worker exited; restarting") && log.contains("exit status: 3"),
        "{log}"
    );
    assert_eq!(
        log.matches("worker started").count(),
        2,
        "one crash, one restart: {log}"
    );
    all_gone(&[child], "after the worker that started it crashed");
    assert!(alive(p.pid()), "pythond itself runs on");
    p.kill9();
}

/// Zombie children of `pid` now.
fn zombies_of(pid: i32) -> usize {
    let kids =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    kids.split_whitespace()
        .filter(|k| {
            std::fs::read_to_string(format!("/proc/{k}/stat"))
                .map(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn the_worker_reaps_the_orphans_it_adopts_and_leaves_pythons_children_to_python() {
    let dir = crate::fixtures::datakit_with(
        "127.0.0.1:9",
        &[
            ("launch/orphans/orphans.py", "orphans/orphans.py"),
            ("launch/waited/waited.py", "waited/waited.py"),
        ],
        &format!(
            "{}\n{}",
            crate::fixtures::block("orphans", &["orphans"], ""),
            crate::fixtures::block("waited", &["waited"], "")
        ),
    );
    // Points to a file: no spool, whose replay loop would keep the runtime's
    // blocking thread busy, so the thread of `waited`'s first run ends.
    let out = dir.path().join("points.lp");
    let d = Daemon::start(&dir, &["--output", out.to_str().unwrap()]);
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let orphans = eventually(30, "the orphans worker", || {
        workers(d.pid())
            .into_iter()
            .find(|(_, n)| n == "orphans")
            .map(|(p, _)| p)
    });
    // One orphan every 0.5 s, each a zombie 0.2 s later: without reaping
    // there would be 40 by the time `waited` reports; reaped after 5 s, about
    // 10 at a time.
    let mut most = 0;
    let waited = eventually(60, "the waited child's status", || {
        most = most.max(zombies_of(orphans));
        lines().into_iter().find(|l| l.starts_with("waited"))
    });
    assert_eq!(
        field(&waited, "returncode"),
        "i:7",
        "Python gets its child's status, 20 s after it exited: {waited}"
    );
    assert!(
        lines().iter().filter(|l| l.starts_with("orphans")).count() >= 20,
        "{}",
        d.stderr()
    );
    assert!(
        most <= 25,
        "adopted orphans are reaped: at most {most} zombies at once"
    );
    let (status, err) = d.stop();
    assert!(status.success(), "{err}");
}
