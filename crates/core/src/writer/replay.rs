//! Draining the spool: the oldest record is sent whenever DataKit takes
//! data, and consumed (by its [`RecordId`](super::spool::RecordId)) only once
//! DataKit answered it: success, or a definitive refusal. DataKit is probed at
//! least once a second while data waits on disk. Spool I/O runs on the
//! blocking pool.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::retry::{self, Verdict};
use super::spill::{blocking, decode_record};
use super::spool::{Popped, RecordId};
use super::Shared;

pub(super) async fn run(shared: Arc<Shared>) {
    let s = shared.spool.clone().expect("replay runs with a spool");
    let cfg = &shared.cfg;
    let mut attempt: u32 = 0;
    let pop = |id: RecordId| {
        let s = s.clone();
        async move {
            let r = blocking(&s, move |s| s.spool.pop(id)).await;
            // Marks of records at or before this one can no longer match.
            s.delivered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|d| *d > id);
            match r {
                Some(Ok(p)) => Some(p),
                Some(Err(e)) => {
                    tracing::error!(target: "pythond::writer", "spool: {e}");
                    None
                }
                None => None,
            }
        }
    };
    loop {
        if shared.aborting() {
            return;
        }
        let rec = match blocking(&s, |s| s.spool.front()).await {
            Some(Ok(r)) => r,
            Some(Err(e)) => {
                tracing::error!(target: "pythond::writer", "spool: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            None => return,
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
                _ = shared.aborted() => {}
            }
            continue;
        };
        if s.take_delivered(rec.id) {
            // Its late attempt succeeded after the batch was spilled.
            pop(rec.id).await;
            continue;
        }
        let Some((route, points, body)) = decode_record(&rec.payload) else {
            tracing::error!(target: "pythond::writer", "spool: unreadable record skipped");
            pop(rec.id).await;
            continue;
        };
        let body = bytes::Bytes::copy_from_slice(body);
        let len = body.len();
        let verdict = tokio::select! {
            v = shared.attempt(&route, body) => v,
            _ = shared.aborted() => return,
        };
        match verdict {
            Verdict::Success => {
                attempt = 0;
                shared.replay_ok.store(true, Relaxed);
                shared.counters.points_replayed.fetch_add(points, Relaxed);
                shared.delivered(&route, points, len);
                if pop(rec.id).await == Some(Popped::Gone) {
                    tracing::debug!(target: "pythond::writer", "spool: the record sent had been dropped by the size bound meanwhile");
                }
            }
            Verdict::Reject(msg) => {
                attempt = 0;
                shared.rejected(&route, points, &msg);
                pop(rec.id).await;
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
                    _ = shared.aborted() => {}
                }
            }
        }
    }
}
