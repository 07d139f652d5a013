//! Counters of a writer, shared by its tasks and read by status/benchmarks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (atomics).
#[derive(Debug, Default)]
pub struct Counters {
    pub points_sent: AtomicU64,
    /// Body bytes sent, before compression.
    pub bytes_sent: AtomicU64,
    /// Bytes on the wire (after compression).
    pub wire_bytes_sent: AtomicU64,
    pub requests_sent: AtomicU64,
    pub requests_retried: AtomicU64,
    pub batches_rejected: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_rejected: AtomicU64,
    pub dropped_retries_exhausted: AtomicU64,
    pub dropped_shutdown: AtomicU64,
    /// Points of a route beyond `max_routes`.
    pub dropped_routes: AtomicU64,
    /// `set_lasterror` messages dropped (more distinct inputs pending than kept).
    pub lasterror_dropped: AtomicU64,
    pub points_spooled: AtomicU64,
    pub points_replayed: AtomicU64,
    /// Points accepted and not yet delivered or dropped (queue depth).
    pub held_points: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub points_sent: u64,
    pub bytes_sent: u64,
    pub wire_bytes_sent: u64,
    pub requests_sent: u64,
    pub requests_retried: u64,
    pub batches_rejected: u64,
    pub dropped_queue_full: u64,
    pub dropped_rejected: u64,
    pub dropped_retries_exhausted: u64,
    pub dropped_shutdown: u64,
    pub dropped_routes: u64,
    pub lasterror_dropped: u64,
    pub points_spooled: u64,
    pub points_replayed: u64,
    pub held_points: u64,
}

impl Stats {
    /// Every point dropped, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_rejected + self.lost()
    }

    /// Points pythond itself lost (not counting batches DataKit refused as
    /// bad data, which are DataKit's verdict): the daemon exits non-zero when
    /// this is not zero. Spool-bound drops are in the spool's own stats.
    pub fn lost(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_retries_exhausted
            + self.dropped_shutdown
            + self.dropped_routes
    }
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        Stats {
            points_sent: self.points_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            wire_bytes_sent: self.wire_bytes_sent.load(Relaxed),
            requests_sent: self.requests_sent.load(Relaxed),
            requests_retried: self.requests_retried.load(Relaxed),
            batches_rejected: self.batches_rejected.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_rejected: self.dropped_rejected.load(Relaxed),
            dropped_retries_exhausted: self.dropped_retries_exhausted.load(Relaxed),
            dropped_shutdown: self.dropped_shutdown.load(Relaxed),
            dropped_routes: self.dropped_routes.load(Relaxed),
            lasterror_dropped: self.lasterror_dropped.load(Relaxed),
            points_spooled: self.points_spooled.load(Relaxed),
            points_replayed: self.points_replayed.load(Relaxed),
            held_points: self.held_points.load(Relaxed),
        }
    }
}
