//! Counters of a writer, shared by its tasks and read by status/benchmarks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::point::Category;
use crate::status::{unix_ms, ErrorAt, WriterStatus};

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
    /// Points accepted and not yet delivered, spooled or dropped (queue
    /// depth); [`FINAL`] is set in it once shutdown counted what was left.
    pub held_points: AtomicU64,
    /// The encoded bytes of those points.
    pub held_bytes: AtomicU64,
    /// Routes (lanes) open now.
    pub routes_open: AtomicU64,
    /// Attempts that failed (and were retried, spooled or dropped after).
    pub requests_failed: AtomicU64,
    /// Points delivered, by [`Category::index`].
    pub sent_by_category: [AtomicU64; Category::ALL.len()],
    /// The last failed attempt or refusal, and when.
    pub last_error: Mutex<Option<(SystemTime, String)>>,
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
    pub held_bytes: u64,
    pub routes_open: u64,
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

/// What [`Counters::hold`] found held, the caller's points included.
pub(super) struct Hold {
    pub points: u64,
    pub bytes: u64,
    /// Shutdown's final count had run already.
    pub after_final: bool,
}

/// The bit of [`Counters::held_points`] that shutdown's final count sets.
pub(super) const FINAL: u64 = 1 << 63;

impl Counters {
    /// Take `points` (of `bytes`) held in memory out of it, for the caller
    /// to count where they went. False once shutdown's final count
    /// ([`Counters::finish`]) counted them as lost: the caller counts
    /// nothing, so no point is counted twice.
    pub(super) fn settle(&self, points: u64, bytes: u64) -> bool {
        let taken = self
            .held_points
            .fetch_update(Relaxed, Relaxed, |h| {
                (h & FINAL == 0).then(|| h.saturating_sub(points))
            })
            .is_ok();
        if taken {
            let _ = self
                .held_bytes
                .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(bytes)));
        }
        taken
    }

    /// Hold `points` (of `bytes`) in memory: what is held now, counting
    /// them, for the caller to check against the bounds.
    pub(super) fn hold(&self, points: u64, bytes: u64) -> Hold {
        let before = self.held_points.fetch_add(points, Relaxed);
        Hold {
            points: (before & !FINAL) + points,
            bytes: self.held_bytes.fetch_add(bytes, Relaxed) + bytes,
            after_final: before & FINAL != 0,
        }
    }

    /// Undo a [`Counters::hold`] whose points were refused: true when the
    /// caller counts them as dropped, false when shutdown's final count ran
    /// in between and counted them as lost already (so no point is counted
    /// twice).
    pub(super) fn take_back(&self, hold: &Hold, points: u64, bytes: u64) -> bool {
        let _ = self
            .held_bytes
            .fetch_update(Relaxed, Relaxed, |b| Some(b.saturating_sub(bytes)));
        if hold.after_final {
            // The final count ran before the hold: it never saw them.
            return true;
        }
        self.held_points
            .fetch_update(Relaxed, Relaxed, |h| {
                (h & FINAL == 0).then(|| h.saturating_sub(points))
            })
            .is_ok()
    }

    /// Shutdown's final count: every point still held is lost, counted as
    /// dropped at shutdown; returns how many.
    pub(super) fn finish(&self) -> u64 {
        let held = self.held_points.swap(FINAL, Relaxed) & !FINAL;
        self.held_bytes.store(0, Relaxed);
        self.dropped_shutdown.fetch_add(held, Relaxed);
        held
    }

    pub fn note_error(&self, message: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((SystemTime::now(), message.to_owned()));
    }

    /// The writer part of `GET /status`, with the spool's numbers.
    pub fn status(&self, spool: Option<crate::writer::spool::SpoolStats>) -> WriterStatus {
        let st = self.snapshot();
        let spool = spool.unwrap_or_default();
        let mut dropped = BTreeMap::new();
        for (reason, n) in [
            ("rejected", st.dropped_rejected),
            ("queue_full", st.dropped_queue_full),
            ("retries_exhausted", st.dropped_retries_exhausted),
            ("shutdown", st.dropped_shutdown),
            ("routes", st.dropped_routes),
            ("spool_full", spool.dropped_weight),
        ] {
            dropped.insert(reason.to_owned(), n);
        }
        WriterStatus {
            queue_points: st.held_points,
            spool_bytes: spool.bytes,
            spool_records: spool.records,
            spool_points: spool.weight,
            requests_sent: st.requests_sent,
            requests_retried: st.requests_retried,
            requests_failed: self.requests_failed.load(Relaxed),
            points_sent: Category::ALL
                .iter()
                .zip(&self.sent_by_category)
                .filter(|(_, n)| n.load(Relaxed) > 0)
                .map(|(c, n)| (c.as_str().to_owned(), n.load(Relaxed)))
                .collect(),
            points_spooled: st.points_spooled,
            points_replayed: st.points_replayed,
            dropped,
            last_delivery_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|(t, m)| ErrorAt {
                    at_ms: unix_ms(*t),
                    message: m.clone(),
                }),
        }
    }

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
            held_points: self.held_points.load(Relaxed) & !FINAL,
            held_bytes: self.held_bytes.load(Relaxed),
            routes_open: self.routes_open.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_hold_is_taken_back_and_counted_by_the_caller() {
        let c = Counters::default();
        c.hold(5, 50);
        let h = c.hold(3, 30);
        assert_eq!((h.points, h.bytes, h.after_final), (8, 80, false));
        assert!(c.take_back(&h, 3, 30));
        assert_eq!(c.snapshot().held_points, 5);
        assert_eq!(c.snapshot().held_bytes, 50);
    }

    /// Shutdown's final count between a hold and its take-back counted the
    /// points as lost: the caller must not count them again.
    #[test]
    fn the_final_count_between_hold_and_take_back_counts_the_points_once() {
        let c = Counters::default();
        let h = c.hold(3, 30);
        assert_eq!(c.finish(), 3);
        assert!(!c.take_back(&h, 3, 30));
        assert_eq!(c.snapshot().dropped_shutdown, 3);
    }

    /// A hold after the final count was never counted by it: the caller
    /// counts it.
    #[test]
    fn a_hold_after_the_final_count_is_the_callers_to_count() {
        let c = Counters::default();
        c.hold(2, 20);
        assert_eq!(c.finish(), 2);
        let h = c.hold(3, 30);
        assert!(h.after_final);
        assert_eq!(h.points, 3);
        assert!(c.take_back(&h, 3, 30));
        // And a batch settled after the final count is not counted either.
        assert!(!c.settle(2, 20));
    }
}
