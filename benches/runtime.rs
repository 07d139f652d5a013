//! The daemon as a user runs it, measured end to end against a loopback fake
//! DataKit: `cargo bench --bench runtime` (prints a Markdown table).
//!
//! 1. one script calling `feed_metric` 20 000 times: points/s inside the loop,
//!    wall time until the last point arrived, worker CPU per 1k points;
//! 2. one `report()` of 100 000 points: points/s inside `report()`, and wall
//!    time from just before the call to the last point arriving;
//! 3. idle RSS of one input (supervisor + worker) running the seed demo;
//! 4. 200 scripts at 1 s, 10 points each, for 30 s: runs per script and the
//!    p99 delay between a tick and the run starting.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::FakeDataKit;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn daemon(root: &Path, dk: &FakeDataKit) -> Child {
    write(
        root,
        "conf.d/datakit.conf",
        &format!("[http_api]\nlisten = \"{}\"\n", dk.addr()),
    );
    Command::new(env!("CARGO_BIN_EXE_pythond"))
        .args(["run", "--config"])
        .arg(root.join("conf.d"))
        .arg("--datakit-dir")
        .arg(root)
        .arg("--log-dir")
        .arg(root.join("logs"))
        // A DataKit-shaped dir that no DataKit runs.
        .arg("--run-datakit-blocks")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join("stderr.txt")).unwrap())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) {
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let _ = c.wait();
}

fn conf(root: &Path, dirs: &str) {
    write(
        root,
        "conf.d/pythond/pythond.conf",
        &format!("[[inputs.pythond]]\nname = 'bench'\ncmd = 'python3'\ndirs = [{dirs}]\n"),
    );
}

/// Children of `pid` (the workers).
fn children(pid: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            v.extend(s.split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
        }
    }
    v
}

fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = &stat[stat.rfind(')').map(|i| i + 2).unwrap_or(0)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / ticks
}

fn status_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size: shared pages (the same binary and libpython
/// mapped in supervisor and worker) are split between the processes instead
/// of counted in each.
fn pss_kib(pid: u32) -> u64 {
    status_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

/// Fields of the `bench_result` point the script reported.
fn result_field(dk: &FakeDataKit, key: &str) -> f64 {
    for r in dk.accepted() {
        for l in r.lines() {
            if l.starts_with("bench_result") {
                let fields = l.split(' ').nth(1).unwrap();
                for kv in fields.split(',') {
                    let (k, v) = kv.split_once('=').unwrap();
                    if k == key {
                        return v.trim_end_matches('i').parse().unwrap();
                    }
                }
            }
        }
    }
    panic!("no bench_result.{key}");
}

fn wait_lines(dk: &FakeDataKit, n: usize, secs: u64) -> Instant {
    assert!(
        dk.wait_until(Duration::from_secs(secs), |d| d.line_count() >= n),
        "only {} of {n} points arrived",
        dk.line_count()
    );
    Instant::now()
}

/// The text of the bench script `benches/data/<name>`.
fn script(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent; do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let mut rows = Vec::new();
    // PYTHOND_BENCH=2 runs scenario 2 only, etc.
    let only: Option<u32> = std::env::var("PYTHOND_BENCH")
        .ok()
        .and_then(|v| v.parse().ok());
    let on = |n: u32| only.is_none_or(|o| o == n);

    // 1. feed_metric x 20000
    if on(1) {
        let dk = FakeDataKit::start();
        dk.drop_bodies(false);
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "python.d/b/feed.py", &script("feed.py"));
        conf(root.path(), "'b'");
        let d = daemon(root.path(), &dk);
        std::thread::sleep(Duration::from_millis(900));
        let worker = children(d.id())[0];
        let cpu0 = cpu_secs(worker);
        wait_lines(&dk, 20_001, 60);
        let arrived = unix_now();
        let cpu = cpu_secs(worker) - cpu0;
        let loop_s = result_field(&dk, "loop_s");
        let start = result_field(&dk, "start_unix");
        stop(d);
        rows.push(format!(
            "| feed_metric ×20 000 | {:.0} points/s in the loop | {:.0} points/s start → last point arrived ({:.3} s) | {:.2} ms CPU per 1k points (worker, whole run) |",
            20_000.0 / loop_s,
            20_000.0 / (arrived - start),
            arrived - start,
            cpu * 1000.0 / 20.0
        ));
    }

    // 2. one report() of 100 000 points
    if on(2) {
        let dk = FakeDataKit::start();
        dk.drop_bodies(false);
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "python.d/b/report.py", &script("report.py"));
        conf(root.path(), "'b'");
        let d = daemon(root.path(), &dk);
        std::thread::sleep(Duration::from_millis(900));
        let worker = children(d.id())[0];
        let cpu0 = cpu_secs(worker);
        wait_lines(&dk, 100_001, 60);
        let arrived = unix_now();
        let cpu = cpu_secs(worker) - cpu0;
        let report_s = result_field(&dk, "report_s");
        let start = result_field(&dk, "start_unix");
        stop(d);
        rows.push(format!(
            "| report() of 100 000 points | {:.0} points/s inside report() | {:.0} points/s start → last point arrived ({:.3} s) | {:.2} ms CPU per 1k points (worker, incl. building the list) |",
            100_000.0 / report_s,
            100_000.0 / (arrived - start),
            arrived - start,
            cpu * 1000.0 / 100.0
        ));
    }

    // 3. idle RSS, the seed demo
    if on(3) {
        let dk = FakeDataKit::start();
        let root = tempfile::tempdir().unwrap();
        for f in ["demo.py", "demo_event.py", "demo_feed.py"] {
            let src = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("python.d/demo")
                    .join(f),
            )
            .unwrap();
            write(root.path(), &format!("python.d/demo/{f}"), &src);
        }
        conf(root.path(), "'demo'");
        let d = daemon(root.path(), &dk);
        std::thread::sleep(Duration::from_secs(12));
        let sup = rss_kib(d.id());
        let workers: Vec<u32> = children(d.id());
        let w: u64 = workers.iter().map(|p| rss_kib(*p)).sum();
        let pss: u64 = pss_kib(d.id()) + workers.iter().map(|p| pss_kib(*p)).sum::<u64>();
        stop(d);
        rows.push(format!(
            "| idle memory, one input (seed demo), after 12 s | RSS: supervisor {:.1} MiB + worker {:.1} MiB = {:.1} MiB (shared pages counted twice) | **PSS of the process tree: {:.1} MiB** | |",
            sup as f64 / 1024.0,
            w as f64 / 1024.0,
            (sup + w) as f64 / 1024.0,
            pss as f64 / 1024.0
        ));
    }

    // 4. 200 scripts at 1 s, 10 points each, 30 s
    if on(4) {
        let dk = FakeDataKit::start();
        dk.drop_bodies(true);
        let root = tempfile::tempdir().unwrap();
        write(root.path(), "python.d/many/many.py", &script("many.py"));
        conf(root.path(), "'many'");
        let d = daemon(root.path(), &dk);
        // first runs of all 200, then 30 s from there
        wait_lines(&dk, 2000, 30);
        std::thread::sleep(Duration::from_millis(29_500));
        let stderr_path = root.path().join("stderr.txt");
        stop(d);
        let text = std::fs::read_to_string(stderr_path).unwrap();
        let mut runs = Vec::new();
        let mut p99s = Vec::new();
        for l in text.lines().filter(|l| l.contains("script summary")) {
            let get = |k: &str| -> u64 {
                l.split_whitespace()
                    .find_map(|t| t.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            runs.push(get("runs"));
            p99s.push(get("jitter_p99_us"));
        }
        runs.sort();
        p99s.sort();
        let worst_p99 = p99s.last().copied().unwrap_or(0);
        rows.push(format!(
            "| 200 scripts × 1 s × 10 points, 30 s | runs per script: min {} / max {} (of 30–31 ticks) | p99 tick→start delay: worst script {:.2} ms, median script {:.2} ms | {} points arrived |",
            runs.first().unwrap_or(&0),
            runs.last().unwrap_or(&0),
            worst_p99 as f64 / 1000.0,
            p99s.get(p99s.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
            dk.line_count()
        ));
    }

    println!("| scenario | inside the script | end to end | cost |");
    println!("| --- | --- | --- | --- |");
    for r in rows {
        println!("{r}");
    }
}
