//! Delivering one batch: attempts through the [`transport`](super::transport),
//! the [`retry`](super::retry) verdict on each answer, and where the batch
//! ends: sent, refused by DataKit (dropped alone, counted), spilled to the
//! spool, or dropped after its attempts (counted) when there is no spool.
//!
//! An attempt runs as its own task. If it has no answer after `spill_after`
//! and there is a spool, the batch is spilled while the attempt goes on: a
//! hung DataKit is an outage, and what the process holds only in memory stays
//! small. Should the attempt succeed after all, its spooled copy is marked
//! delivered and the replayer skips it.

use std::io::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;

use super::retry::{self, Verdict};
use super::transport::{Body, TransportError};
use super::{Batch, Fate, Shared};
use crate::route::Route;
use crate::target::Target;

/// Send with retries, spool, or drop: where the batch ended (the caller
/// counts it).
pub(super) async fn deliver(shared: &Arc<Shared>, b: &Batch) -> Fate {
    let cfg = &shared.cfg;
    // A local output (stdout, a file) cannot hang the way DataKit can, and a
    // write cut short would leave half a line: it is never aborted, only
    // bounded by the shutdown deadline of the whole writer.
    let local = !shared.target_for(&b.route).is_remote();
    let mut attempt: u32 = 0;
    loop {
        if shared.aborting() && !local {
            return shared.spill_or_drop(b).await;
        }
        if shared.spooling(&b.lane) && shared.spill(b).await.is_some() {
            return Fate::Spooled;
        }
        let sh = shared.clone();
        let (route, body) = (b.route.clone(), b.body.clone());
        let mut task = tokio::spawn(async move { sh.attempt(&route, body).await });
        let verdict = tokio::select! {
            v = &mut task => v.unwrap_or_else(|e| Verdict::Retry(e.to_string())),
            _ = tokio::time::sleep(cfg.spill_after), if shared.spool.is_some() => {
                // DataKit has not answered: treat it as down.
                match shared.spill(b).await {
                    Some(id) => {
                        tracing::warn!(
                            target: "pythond::writer",
                            input = shared.input_for(&b.route),
                            "DataKit has not answered for {:?}; batch spooled to disk",
                            cfg.spill_after
                        );
                        let (sh, points, len) = (shared.clone(), b.points, b.body.len());
                        let route = b.route.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                v = task => {
                                    if let Ok(Verdict::Success) = v {
                                        sh.delivered(&route, points, len);
                                        if let Some(s) = &sh.spool {
                                            s.mark_delivered(id);
                                        }
                                    }
                                }
                                _ = sh.aborted() => {}
                            }
                        });
                        return Fate::Spooled;
                    }
                    None => tokio::select! {
                        v = &mut task => v.unwrap_or_else(|e| Verdict::Retry(e.to_string())),
                        _ = shared.aborted(), if !local => {
                            task.abort();
                            return shared.spill_or_drop(b).await;
                        }
                    },
                }
            }
            _ = shared.aborted(), if !local => {
                task.abort();
                return shared.spill_or_drop(b).await;
            }
        };
        match verdict {
            Verdict::Success => return Fate::Sent,
            Verdict::Reject(msg) => return Fate::Rejected(msg),
            Verdict::Retry(reason) => {
                attempt += 1;
                if shared.spool.is_some()
                    && attempt >= cfg.spool_after_attempts
                    && shared.spill(b).await.is_some()
                {
                    tracing::warn!(
                        target: "pythond::writer",
                        input = shared.input_for(&b.route),
                        "DataKit unavailable ({reason}); batch spooled to disk"
                    );
                    return Fate::Spooled;
                }
                if attempt >= cfg.retry_max_attempts {
                    tracing::error!(
                        target: "pythond::writer",
                        input = shared.input_for(&b.route),
                        points = b.points,
                        "batch dropped after {attempt} attempts: {reason}"
                    );
                    return Fate::DroppedRetries;
                }
                shared.counters.requests_retried.fetch_add(1, Relaxed);
                tracing::debug!(target: "pythond::writer", attempt, "retrying: {reason}");
                let wait = retry::backoff(attempt, cfg.retry_initial, cfg.retry_max);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.aborted() => {}
                }
            }
        }
    }
}

impl Shared {
    pub(super) fn target_for<'a>(&'a self, route: &'a Route) -> &'a Target {
        self.cfg
            .force_target
            .as_ref()
            .or(route.target.as_ref())
            .unwrap_or(&self.cfg.target)
    }

    /// The request body: gzip-compressed (on the blocking pool) when large
    /// and going over the network.
    async fn body(&self, raw: Bytes, target: &Target) -> Body {
        // The local sinks write text: compressing for them is wasted work.
        if target.is_remote() && raw.len() >= self.cfg.gzip_min_bytes {
            let raw2 = raw.clone();
            let gz = tokio::task::spawn_blocking(move || {
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(raw2.len() / 4),
                    flate2::Compression::fast(),
                );
                enc.write_all(&raw2).ok()?;
                enc.finish().ok()
            })
            .await;
            if let Ok(Some(bytes)) = gz {
                return Body {
                    bytes: bytes.into(),
                    gzip: true,
                    content_type: "text/plain; charset=utf-8",
                };
            }
        }
        Body {
            bytes: raw,
            gzip: false,
            content_type: "text/plain; charset=utf-8",
        }
    }

    /// Whether DataKit answers a `GET /v1/ping` for `route`'s target
    /// (the error says why not).
    pub(super) async fn ping(&self, route: &Route) -> Result<(), String> {
        self.transport
            .ping(self.target_for(route))
            .await
            .map_err(|e| e.to_string())
    }

    /// One attempt of a `/v1/write` request.
    pub(super) async fn attempt(&self, route: &Route, raw: Bytes) -> Verdict {
        let target = self.target_for(route);
        let body = self.body(raw, target).await;
        let wire = body.bytes.len() as u64;
        let r = self
            .transport
            .post(target, &route.path_and_query(), body)
            .await;
        self.counters.requests_sent.fetch_add(1, Relaxed);
        let v = match r {
            Ok(a) => {
                let v = retry::classify(a.status, &a.body);
                if v == Verdict::Success {
                    self.counters.wire_bytes_sent.fetch_add(wire, Relaxed);
                }
                v
            }
            // A request that cannot be built never will be: dropped alone.
            Err(e @ TransportError::Invalid(_)) => Verdict::Reject(e.to_string()),
            Err(e) => Verdict::Retry(e.to_string()),
        };
        if let Verdict::Retry(reason) = &v {
            self.counters.requests_failed.fetch_add(1, Relaxed);
            self.counters.note_error(reason);
        }
        v
    }

    pub(super) fn delivered(&self, route: &Route, points: u64, body_bytes: usize) {
        self.counters.points_sent.fetch_add(points, Relaxed);
        self.counters.sent_by_category[route.category.index()].fetch_add(points, Relaxed);
        self.counters
            .bytes_sent
            .fetch_add(body_bytes as u64, Relaxed);
    }

    pub(super) fn rejected(&self, route: &Route, points: u64, message: &str) {
        self.counters.batches_rejected.fetch_add(1, Relaxed);
        self.counters.dropped_rejected.fetch_add(points, Relaxed);
        self.counters.note_error(&format!(
            "DataKit refused a batch of {points} points: {message}"
        ));
        tracing::warn!(
            target: "pythond::writer",
            input = self.input_for(route),
            category = %route.category,
            points,
            "DataKit refused a batch, dropped: {message}"
        );
    }
}
