//! Draining the spool: the oldest record is sent whenever DataKit takes
//! data, and marked consumed only once DataKit answered it (success, or a
//! definitive refusal). DataKit is probed at least once a second while data
//! waits on disk.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::retry::{self, Verdict};
use super::spill::decode_record;
use super::Shared;

pub(super) async fn run(shared: Arc<Shared>) {
    let s = shared.spool.as_ref().expect("replay runs with a spool");
    let cfg = &shared.cfg;
    let mut attempt: u32 = 0;
    loop {
        if shared.abort.load(Relaxed) {
            return;
        }
        let rec = match s.spool.front() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "pythond::writer", "spool: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(rec) = rec else {
            {
                let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
                if s.spool.is_empty() {
                    *active = false;
                }
            }
            tokio::select! {
                _ = s.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shared.abort_notify.notified() => {}
            }
            continue;
        };
        let Some((route, points, body)) = decode_record(&rec) else {
            tracing::error!(target: "pythond::writer", "spool: unreadable record skipped");
            let _ = s.spool.pop();
            continue;
        };
        match shared.attempt(&route, body).await {
            Verdict::Success => {
                attempt = 0;
                shared.counters.points_replayed.fetch_add(points, Relaxed);
                shared.delivered(points, body.len());
                if let Err(e) = s.spool.pop() {
                    tracing::error!(target: "pythond::writer", "spool: {e}");
                }
            }
            Verdict::Reject(msg) => {
                attempt = 0;
                shared.rejected(&route, points, &msg);
                let _ = s.spool.pop();
            }
            Verdict::Retry(reason) => {
                attempt = attempt.saturating_add(1);
                shared.replay_ok.store(false, Relaxed);
                shared.counters.requests_retried.fetch_add(1, Relaxed);
                tracing::debug!(target: "pythond::writer", "spool replay waiting for DataKit: {reason}");
                // Probe at least once a second: data waits on disk, and
                // DataKit coming back should be noticed quickly.
                let wait = retry::backoff(
                    attempt.min(30),
                    cfg.retry_initial,
                    cfg.retry_max.min(Duration::from_secs(1)),
                )
                .max(cfg.retry_initial);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.abort_notify.notified() => {}
                }
            }
        }
    }
}
