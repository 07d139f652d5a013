//! The run timeout: interrupt a run that outlives it, declare the job hung
//! if the run still does not return.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::job::{Job, Scheduled};
use super::timeout::{timeout_message, RunTimeout};

/// Interrupt the run `generation` if it outlives `timeout`; declare the job
/// hung if it then outlives `hang_grace` too.
pub(super) async fn watchdog<J: Job>(
    s: Scheduled<J>,
    generation: u64,
    timeout: RunTimeout,
    hang_grace: Duration,
) {
    let same_run =
        |s: &Scheduled<J>| s.is_running() && s.generation.load(Ordering::Acquire) == generation;
    tokio::time::sleep(timeout.limit).await;
    if !same_run(&s) {
        return;
    }
    s.stats.record_timeout(generation);
    // The first line the author of a looping script reads: say what to change.
    tracing::error!(
        script = s.job.name(),
        timeout_secs = timeout.limit.as_secs_f64(),
        interval_secs = s.job.interval().as_secs_f64(),
        "{}",
        timeout_message(s.job.name(), &timeout, s.job.interval())
    );
    let job = s.job.clone();
    // Interrupting needs the interpreter; never block an async worker on it.
    // The run is named: if it ends before the interrupt gets there, the
    // interrupt does nothing (it must not hit the next run).
    tokio::task::spawn_blocking(move || job.interrupt(generation));
    tokio::time::sleep(hang_grace).await;
    if !same_run(&s) {
        return;
    }
    s.stats.hung.store(true, Ordering::Release);
    tracing::error!(
        script = s.job.name(),
        "run() did not stop after being interrupted (blocked outside Python?): \
         the script is hung and will not be scheduled again until the worker restarts"
    );
    let job = s.job.clone();
    tokio::task::spawn_blocking(move || job.hung());
}
