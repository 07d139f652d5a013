//! Where `pythond-worker` is: beside this executable (both are built and
//! installed together), or `PYTHOND_WORKER_EXE`.

use std::path::PathBuf;

use anyhow::{bail, Context as _};

/// The environment variable that overrides the worker's path.
pub const WORKER_EXE_ENV: &str = "PYTHOND_WORKER_EXE";

/// The `pythond-worker` executable to start.
pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(WORKER_EXE_ENV) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("cannot find pythond's own executable")?;
    let worker = me.with_file_name("pythond-worker");
    if !worker.is_file() {
        bail!(
            "{} not found: pythond-worker is installed beside pythond (`cargo build --release` \
             builds both into target/release/; copy both), or set {WORKER_EXE_ENV}",
            worker.display()
        );
    }
    Ok(worker)
}
