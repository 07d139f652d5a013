//! Producer-side batching: a script's one-point calls gathered before they
//! reach the dispatcher.
//!
//! A `feed_metric()` loop hands over one point per call. Sent one message
//! each, every point would cost a channel send, a wake-up of the dispatcher
//! and a route lookup on its side. A [`Stage`] (one per script) gathers the
//! encoded lines of consecutive calls for one route and hands them to the
//! dispatcher as one submit when:
//! - the next call is for another route (so order within a route is kept);
//! - it holds [`STAGE_MAX_POINTS`] points or [`STAGE_MAX_BYTES`] bytes;
//! - the script's `run()` returned ([`Stage::flush`]), or it calls
//!   `report()`;
//! - its oldest line has waited `batch_max_delay` (a timer task watches every
//!   stage, so a `run()` that feeds one point and then sleeps never holds it
//!   longer), and the dispatcher seals the batch counting from that line's
//!   arrival: a point is never held longer than `batch_max_delay` in all.
//!   The timer is woken by a stage's first line only when it would not look
//!   by the time that line is due (most runs hand their lines over when they
//!   end, long before);
//! - the writer shuts down ([`Writer::shutdown`] flushes every stage first).
//!
//! Each call's lines are appended whole, checked as they are written (a line
//! the checks refuse is taken back): a call is still all-or-nothing. A stage
//! is locked only while one call's lines are written into it (never while
//! Python code runs), and hands its lines over while locked, so two flushes
//! of one stage cannot overtake each other.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::time::Instant;

use super::{Shared, Writer};
use crate::lineproto::Lines;
use crate::payload::Payload;
use crate::route::Route;

/// A stage hands its lines over once it holds this many points...
pub const STAGE_MAX_POINTS: usize = 1024;
/// ... or this many bytes.
pub const STAGE_MAX_BYTES: usize = 256 << 10;

/// One producer's gathered lines (see the module docs).
pub struct Stage {
    inner: Arc<StageInner>,
    writer: Writer,
}

pub(super) struct StageInner {
    /// Whose lines (logs).
    label: Arc<str>,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    route: Option<Route>,
    lines: Lines,
    /// When the oldest line held arrived.
    since: Option<Instant>,
}

impl StageInner {
    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand what is held to the dispatcher (called with the lock held).
    fn send(&self, writer: &Writer, open: &mut Open) {
        if open.lines.is_empty() {
            return;
        }
        // A stage that filled up is likely to fill up again (a feed loop):
        // its next lines get the same room at once instead of growing to it
        // by copies; any other starts empty (most scripts hand over a few
        // points a run, and there may be thousands of stages).
        let full = open.lines.len() >= STAGE_MAX_POINTS || open.lines.byte_len() >= STAGE_MAX_BYTES;
        let next = if full {
            let (l, b) = open.lines.capacity();
            Lines::with_capacity(l, b)
        } else {
            Lines::new()
        };
        let lines = std::mem::replace(&mut open.lines, next);
        let since = open.since.take();
        let Some(route) = open.route.clone() else {
            return;
        };
        if let Err(e) = writer.submit_since(route, Payload::Lines(lines), since) {
            tracing::warn!(target: "pythond::writer", script = %self.label, "points refused: {e}");
        }
    }
}

impl Writer {
    /// A stage for one producer (a script), labelled `label` in logs.
    pub fn stage(&self, label: Arc<str>) -> Stage {
        let inner = Arc::new(StageInner {
            label,
            open: Mutex::new(Open::default()),
        });
        let mut stages = self.shared.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages.retain(|s| s.strong_count() > 0);
        stages.push(Arc::downgrade(&inner));
        Stage {
            inner,
            writer: self.clone(),
        }
    }

    /// Hand every stage's lines over now.
    pub(super) fn flush_stages(&self) {
        for s in self.shared.live_stages() {
            let mut open = s.lock();
            s.send(self, &mut open);
        }
    }
}

impl Shared {
    fn live_stages(&self) -> Vec<Arc<StageInner>> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Stage {
    /// One call's `lines` for `route` (all of them valid: the call was
    /// checked). Never blocks on the network.
    pub fn push(&self, route: &Route, lines: &Lines) {
        if lines.is_empty() {
            return;
        }
        let _ = self.push_with(route, |staged| {
            staged.append(lines);
            Ok::<(), ()>(())
        });
    }

    /// One call's lines for `route`, encoded by `write` straight into the
    /// stage (no copy). `write` runs with the stage locked: it must not run
    /// a script's code (which could call back into this stage) nor wait on
    /// anything, and it adds whole lines or, on `Err`, none.
    pub fn push_with<E>(
        &self,
        route: &Route,
        write: impl FnOnce(&mut Lines) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut open = self.inner.lock();
        if open.route.as_ref() != Some(route) {
            self.inner.send(&self.writer, &mut open);
            open.route = Some(route.clone());
        }
        let first = open.lines.is_empty();
        write(&mut open.lines)?;
        if open.lines.is_empty() {
            return Ok(());
        }
        if first {
            open.since = Some(Instant::now());
        }
        if open.lines.len() >= STAGE_MAX_POINTS || open.lines.byte_len() >= STAGE_MAX_BYTES {
            self.inner.send(&self.writer, &mut open);
        } else if first {
            drop(open);
            // The timer needs waking only if it would not look at this
            // stage by the time its first line is due (awake, it may have
            // looked already).
            let sh = &self.writer.shared;
            let due = Instant::now() + sh.cfg.batch_max_delay;
            if sh.stage_timer_at.is_awake() || sh.stage_timer_at.asleep_past(due) {
                sh.stage_notify.notify_one();
            }
        }
        Ok(())
    }

    /// Hand what is held to the dispatcher now (the script's run ended, or
    /// a call that must come after these points is about to be submitted).
    pub fn flush(&self) {
        let mut open = self.inner.lock();
        self.inner.send(&self.writer, &mut open);
    }
}

/// The timer: hands over the lines of every stage whose oldest line has
/// waited `batch_max_delay`. Sleeps while every stage is empty.
pub(super) async fn run(writer: Writer) {
    let delay = writer.shared.cfg.batch_max_delay;
    let wake_at = &writer.shared.stage_timer_at;
    loop {
        wake_at.awake();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for s in writer.shared.live_stages() {
            let mut open = s.lock();
            let Some(since) = open.since else { continue };
            let due = since + delay;
            if due <= now {
                s.send(&writer, &mut open);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        let notified = writer.shared.stage_notify.notified();
        wake_at.sleeping_until(next);
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = notified => {}
                }
            }
            None => notified.await,
        }
    }
}
