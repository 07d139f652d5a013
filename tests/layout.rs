//! The shape docs/design.md describes, checked on the built binaries: the
//! supervisor never links or maps libpython; only the worker does.

use std::process::Command;

fn ldd(exe: &str) -> String {
    let out = Command::new("ldd").arg(exe).output().expect("ldd runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pythond_does_not_link_libpython_and_the_worker_does() {
    let sup = ldd(env!("CARGO_BIN_EXE_pythond"));
    assert!(
        !sup.contains("libpython"),
        "pythond links libpython:\n{sup}"
    );
    let worker = ldd(env!("CARGO_BIN_EXE_pythond-worker"));
    assert!(
        worker.contains("libpython"),
        "pythond-worker embeds CPython:\n{worker}"
    );
}

#[test]
fn the_worker_loads_the_libpython_it_was_built_for() {
    // The rpath (build.rs) wins over the loader's default path, where
    // another libpython3.x may live (Debian's, on this machine).
    let worker = ldd(env!("CARGO_BIN_EXE_pythond-worker"));
    let line = worker
        .lines()
        .find(|l| l.contains("libpython"))
        .expect("a libpython line");
    let libdir = Command::new(std::env::var("PYO3_PYTHON").unwrap_or("python3".into()))
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))",
        ])
        .output()
        .expect("the build's python3 runs");
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_owned();
    assert!(
        line.contains(&libdir),
        "loaded from {line:?}, built for {libdir}"
    );
}
