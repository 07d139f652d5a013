//! Draining the spool: the oldest record is sent whenever DataKit takes
//! data, and consumed (by its [`RecordId`](super::spool::RecordId)) only once
//! DataKit answered it: success, or a definitive refusal.
//!
//! While DataKit is not known to take data (at start, and after any failed
//! attempt) each attempt is a probe: it waits at most `probe_timeout` (1 s)
//! for an answer, and the next one starts at most a second later, so DataKit
//! coming back, even from a hang, is noticed within about a second. Every
//! tenth probe in a row waits the full `request_timeout` instead, so that a
//! DataKit that is only slow still takes a large record. Once an attempt
//! succeeds, records follow one another with the normal request timeout.
//! Spool I/O runs on the spool's thread.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use super::retry::{self, Verdict};
use super::spill::decode_record;
use super::spool::{Popped, RecordId};
use super::spooler::{SpoolOpError, SpoolState};
use super::Shared;

/// One probe in this many waits the full request timeout.
const LONG_PROBE_EVERY: u32 = 10;

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
        let body = bytes::Bytes::copy_from_slice(body);
        let len = body.len();
        let wait_for = if probing && attempt % LONG_PROBE_EVERY != LONG_PROBE_EVERY - 1 {
            cfg.probe_timeout.min(cfg.request_timeout)
        } else {
            cfg.request_timeout
        };
        let this = s.attempts.fetch_add(1, Relaxed) + 1;
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
                // A probe that timed out has waited already; otherwise back
                // off, at most a second: data waits on disk, and DataKit
                // coming back should be noticed quickly.
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
        }
    }
}
