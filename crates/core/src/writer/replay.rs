//! Draining the spool: the oldest record is sent whenever DataKit takes
//! data, and consumed (by its [`RecordId`](super::spool::RecordId)) only once
//! DataKit answered it: success, or a definitive refusal.
//!
//! While DataKit is not known to take data (at start, and after any failed
//! attempt) a record is sent only after a `GET /v1/ping` was answered
//! within `probe_timeout` (1 s), and the next ping starts at most a second
//! after a failed one, so DataKit coming back, even from a hang, is noticed
//! within about a second. The record itself always gets the full
//! `request_timeout`: a record sent to find out whether DataKit is back,
//! and given up after a second, would be taken (and sent again) by a
//! DataKit that is alive but slower than that. Spool I/O runs on the
//! spool's thread.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::retry::{self, Verdict};
use super::spill::decode_record;
use super::spool::{Popped, RecordId};
use super::spooler::{SpoolOpError, SpoolState};
use super::Shared;

async fn pop(s: &SpoolState, id: RecordId) -> Option<Popped> {
    match s.pop(id).await {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(target: "pythond::writer", "spool: {e}");
            None
        }
    }
}

pub(super) async fn run(shared: Arc<Shared>) {
    let s = shared.spool.clone().expect("replay runs with a spool");
    let cfg = &shared.cfg;
    // Failed attempts in a row.
    let mut attempt: u32 = 0;
    // DataKit is not known to take data: attempts are probes.
    let mut probing = true;
    loop {
        if shared.aborting() {
            return;
        }
        let rec = match s.front().await {
            Ok(r) => r,
            Err(SpoolOpError::Gone) => return,
            Err(e) => {
                tracing::error!(target: "pythond::writer", "spool: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = shared.aborted() => {}
                }
                continue;
            }
        };
        let Some(rec) = rec else {
            // Empty: new batches go straight to DataKit again (unless one
            // was appended meanwhile).
            if !s.settle().await {
                continue;
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
            pop(&s, rec.id).await;
            continue;
        }
        let Some((route, points, body)) = decode_record(&rec.payload) else {
            tracing::error!(target: "pythond::writer", "spool: unreadable record skipped");
            pop(&s, rec.id).await;
            continue;
        };
        let this = s.attempts.fetch_add(1, Relaxed) + 1;
        if probing {
            let wait_for = cfg.probe_timeout.min(cfg.request_timeout);
            let unanswered = tokio::select! {
                v = tokio::time::timeout(wait_for, shared.ping(&route)) => match v {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some((format!("ping: {e}"), false)),
                    Err(_) => Some((format!("no answer to a ping within {wait_for:?}"), true)),
                },
                _ = shared.aborted() => return,
            };
            if let Some((reason, timed_out)) = unanswered {
                // DataKit does not answer: the record stays where it is.
                shared.counters.note_error(&reason);
                attempt = attempt.saturating_add(1);
                s.last_failed.store(this, Relaxed);
                wait_to_retry(&shared, &s, attempt, timed_out).await;
                continue;
            }
        }
        let body = bytes::Bytes::copy_from_slice(body);
        let len = body.len();
        let wait_for = cfg.request_timeout;
        let (verdict, timed_out) = tokio::select! {
            v = tokio::time::timeout(wait_for, shared.attempt(&route, body)) => match v {
                Ok(v) => (v, false),
                Err(_) => {
                    let reason = format!("no answer within {wait_for:?}");
                    shared.counters.requests_failed.fetch_add(1, Relaxed);
                    shared.counters.note_error(&reason);
                    (Verdict::Retry(reason), true)
                }
            },
            _ = shared.aborted() => return,
        };
        match verdict {
            Verdict::Success => {
                attempt = 0;
                probing = false;
                shared.counters.points_replayed.fetch_add(points, Relaxed);
                shared.delivered(&route, points, len);
                if pop(&s, rec.id).await == Some(Popped::Gone) {
                    tracing::debug!(target: "pythond::writer", "spool: the record sent had been dropped by the size bound meanwhile");
                }
            }
            Verdict::Reject(msg) => {
                attempt = 0;
                probing = false;
                shared.rejected(&route, points, &msg);
                pop(&s, rec.id).await;
            }
            Verdict::Retry(reason) => {
                attempt = attempt.saturating_add(1);
                probing = true;
                s.last_failed.store(this, Relaxed);
                shared.counters.requests_retried.fetch_add(1, Relaxed);
                tracing::debug!(target: "pythond::writer", "spool replay waiting for DataKit: {reason}");
                wait_to_retry(&shared, &s, attempt, timed_out).await;
            }
        }
    }
}

/// The pause after the `attempt`-th failure in a row: none after a wait
/// that timed out (it has waited already), else a backoff of at most a
/// second (data waits on disk, and DataKit coming back should be noticed
/// quickly); cut short by shutdown wanting the spool drained.
async fn wait_to_retry(shared: &Shared, s: &SpoolState, attempt: u32, timed_out: bool) {
    let cfg = &shared.cfg;
    let wait = if timed_out {
        Duration::ZERO
    } else {
        retry::backoff(
            attempt.min(30),
            cfg.retry_initial,
            cfg.retry_max.min(Duration::from_secs(1)),
        )
        .max(cfg.retry_initial)
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = s.probe_now.notified() => {}
        _ = shared.aborted() => {}
    }
}
