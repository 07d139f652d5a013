//! collectd's Python plugin (`Values.dispatch()`), the reference for
//! `feed_metric` per call, when `collectd` is installed (Debian's
//! `collectd-core`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::proc::stop;

/// collectd (with its Python plugin) running a read callback that calls
/// `Values.dispatch()` N times and writes the rate to a file; `None` when
/// collectd is not installed.
pub fn collectd_dispatch_rate() -> Option<f64> {
    let collectd = ["/usr/sbin/collectd", "/usr/bin/collectd"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rate.txt");
    let module = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data/collectd_dispatch.py"),
    )
    .unwrap()
    .replace("@OUT@", &out.display().to_string());
    std::fs::write(dir.path().join("bench_dispatch.py"), module).unwrap();
    let conf = format!(
        "Interval 1\nWriteQueueLimitHigh 1000000\nWriteQueueLimitLow 1000000\n\
         LoadPlugin csv\n<Plugin csv>\n  DataDir \"{d}/csv\"\n</Plugin>\n\
         <LoadPlugin python>\n  Globals true\n</LoadPlugin>\n\
         <Plugin python>\n  ModulePath \"{d}\"\n  Import \"bench_dispatch\"\n</Plugin>\n",
        d = dir.path().display()
    );
    let conf_path = dir.path().join("collectd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let c = Command::new(collectd)
        .args(["-f", "-C"])
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let end = Instant::now() + Duration::from_secs(120);
    let rate = loop {
        if let Ok(s) = std::fs::read_to_string(&out) {
            if let Ok(r) = s.trim().parse::<f64>() {
                break Some(r);
            }
        }
        if Instant::now() > end {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stop(c);
    rate
}
