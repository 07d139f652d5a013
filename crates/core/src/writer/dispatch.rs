//! Batching: points arrive from any thread as whole calls and are appended to
//! the open batch of their [`Route`]; a batch is sealed when it reaches its
//! point or byte bound, when its oldest point has waited `batch_max_delay`, or
//! on a flush, and handed to that route's [`lane`](super::lane). A flush (a
//! script's run ended) seals at once unless the route sealed a batch less
//! than `flush_gap` ago; then the batch is sealed when that gap is over, so
//! that hundreds of scripts ending runs every second share requests (and
//! those flushes do not even wake the dispatcher: it takes them when it
//! wakes for the gap's end, see [`inbox`](super::inbox)). A
//! flush that waits ([`Writer::flush_and_wait`](super::Writer::flush_and_wait))
//! always seals at once. Routes idle for `lane_idle` are retired (checked
//! when a new route arrives, and on a timer every half `lane_idle`); at most
//! `max_routes` are held, points of one more are dropped and counted.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lane::{self, LaneMsg};
use super::spill::LaneState;
use super::{Batch, Fate, Msg, Shared, WriterConfig};
use crate::lineproto::Lines;
use crate::route::Route;

/// The open batch of one route, and the way to its lane.
struct OpenBatch {
    buf: Vec<u8>,
    points: u64,
    since: Instant,
    last_used: Instant,
    /// When a batch of this route was last sealed.
    last_seal: Option<Instant>,
    /// A flush asked for this batch while the route was within its
    /// `flush_gap`: sealed then.
    flush_due: Option<Instant>,
    tx: mpsc::Sender<LaneMsg>,
    route: Arc<Route>,
    lane: Arc<LaneState>,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let mut open: HashMap<Route, OpenBatch> = HashMap::new();
    let max_delay = shared.cfg.batch_max_delay;
    let mut retire_at = Instant::now() + retire_every(&shared.cfg);
    // After a flush sealed a batch: when the flushes that came within the
    // gap are taken (they did not wake the dispatcher, see `inbox`).
    let mut flush_tick: Option<Instant> = None;
    loop {
        // Points in order; the flushes among them once, after them (a
        // flush seals what has arrived when it is handled: points queued
        // behind it may join, and within the gap they must, or a flush
        // taken late would seal the first run's points alone).
        let mut flush = false;
        let mut waiters = Vec::new();
        for msg in shared.inbox.take() {
            match msg {
                Msg::Points(route, lines, since) => {
                    points(&shared, &mut open, &mut retire_at, route, lines, since).await
                }
                Msg::Flush(None) => flush = true,
                Msg::Flush(Some(w)) => waiters.push(w),
            }
        }
        if flush || !waiters.is_empty() {
            flush_all(&shared, &mut open, &mut flush_tick, waiters).await;
        }
        let now = Instant::now();
        for b in open.values_mut() {
            if b.points > 0 && b.due(max_delay) <= now {
                seal(&shared, b).await;
            }
        }
        if flush_tick.is_some_and(|t| t <= now) {
            flush_tick = None;
        }
        if !open.is_empty() && retire_at <= now {
            retire_idle(&shared, &mut open);
            retire_at = Instant::now() + retire_every(&shared.cfg);
        }
        shared
            .counters
            .routes_open
            .store(open.len() as u64, Relaxed);
        let next = open
            .values()
            .filter(|b| b.points > 0)
            .map(|b| b.due(max_delay))
            .chain(flush_tick)
            .chain((!open.is_empty()).then_some(retire_at))
            .min();
        shared.inbox.sleep(next).await;
    }
}

/// One call's (or stage's) points for `route`.
async fn points(
    shared: &Arc<Shared>,
    open: &mut HashMap<Route, OpenBatch>,
    retire_at: &mut Instant,
    route: Route,
    lines: Lines,
    since: Option<Instant>,
) {
    if !open.contains_key(&route) {
        retire_idle(shared, open);
        if open.len() >= shared.cfg.max_routes {
            let n = lines.len() as u64;
            if shared.counters.settle(n, lines.byte_len() as u64) {
                shared.counters.dropped_routes.fetch_add(n, Relaxed);
            }
            tracing::warn!(
                target: "pythond::writer",
                input = shared.input_for(&route),
                routes = open.len(),
                "too many distinct routes (input/version/target) in use: {n} points dropped"
            );
            return;
        }
    }
    if open.is_empty() {
        *retire_at = Instant::now() + retire_every(&shared.cfg);
    }
    let b = open.entry(route).or_insert_with_key(|route| {
        let (tx, lrx) = mpsc::channel(4);
        tokio::spawn(lane::run(shared.clone(), lrx));
        OpenBatch {
            buf: Vec::new(),
            points: 0,
            since: Instant::now(),
            last_used: Instant::now(),
            last_seal: None,
            flush_due: None,
            tx,
            route: Arc::new(route.clone()),
            lane: Arc::default(),
        }
    });
    let now = Instant::now();
    // A stage's lines count from when the oldest of them arrived.
    let arrived = since.unwrap_or(now).min(now);
    if b.points == 0 || arrived < b.since {
        b.since = arrived;
    }
    b.last_used = now;
    append(shared, b, lines).await;
}

/// Flushes: with `waiters`, seal every route at once and answer each once
/// its lane has sent what was sealed; without, seal each route unless it
/// sealed within the gap (then when the gap is over).
async fn flush_all(
    shared: &Arc<Shared>,
    open: &mut HashMap<Route, OpenBatch>,
    flush_tick: &mut Option<Instant>,
    waiters: Vec<oneshot::Sender<()>>,
) {
    let mut acks = Vec::new();
    let now = Instant::now();
    let gap = shared.cfg.flush_gap;
    let waited = !waiters.is_empty();
    for b in open.values_mut() {
        match b.last_seal {
            Some(t) if !waited && b.points > 0 && now < t + gap => {
                b.flush_due = Some(t + gap);
                continue;
            }
            _ => {
                if !waited && b.points > 0 {
                    *flush_tick = Some(now + gap);
                }
                seal(shared, b).await
            }
        }
        if waited {
            let (tx, rx) = oneshot::channel();
            if b.tx.send(LaneMsg::Marker(tx)).await.is_ok() {
                acks.push(rx);
            }
        }
    }
    if waited {
        tokio::spawn(async move {
            for a in acks {
                let _ = a.await;
            }
            for w in waiters {
                let _ = w.send(());
            }
        });
    }
}

/// How often idle routes are looked for.
fn retire_every(cfg: &WriterConfig) -> std::time::Duration {
    (cfg.lane_idle / 2).max(std::time::Duration::from_millis(1))
}

/// Drop the routes with nothing open or in their lane, no use for
/// `lane_idle` and nothing of theirs waiting on disk: their lane task ends.
/// (A route with a batch still being sent, or spooling, keeps its lane: a
/// new lane would overtake that batch, or would not know it must queue
/// behind the route's data on disk.)
fn retire_idle(shared: &Shared, open: &mut HashMap<Route, OpenBatch>) {
    let now = Instant::now();
    let idle = shared.cfg.lane_idle;
    open.retain(|_, b| {
        b.points > 0
            || now.duration_since(b.last_used) < idle
            || b.lane.queued.load(Relaxed) > 0
            || shared.spooling(&b.lane)
    });
}

/// Append one call's lines, sealing whenever the batch fills.
async fn append(shared: &Arc<Shared>, b: &mut OpenBatch, lines: Lines) {
    let mut i = 0;
    while i < lines.len() {
        let next = b.take_lines(&lines, i, &shared.cfg);
        if next == i || b.full(&shared.cfg) {
            seal(shared, b).await;
            b.since = Instant::now();
        }
        i = next;
    }
}

impl OpenBatch {
    /// When this batch must be sealed at the latest (it holds points).
    fn due(&self, max_delay: std::time::Duration) -> Instant {
        let by_delay = self.since + max_delay;
        self.flush_due.map_or(by_delay, |f| f.min(by_delay))
    }

    fn full(&self, cfg: &WriterConfig) -> bool {
        self.points as usize >= cfg.batch_max_points || self.buf.len() >= cfg.batch_max_bytes
    }

    /// Append lines from `from` on, as many as the batch bounds allow, with
    /// one copy. Returns the index of the first line left: `from` when none
    /// fits (seal, then call again; an empty batch always takes one line, so a
    /// line bigger than the bound still goes, alone).
    fn take_lines(&mut self, lines: &Lines, from: usize, cfg: &WriterConfig) -> usize {
        let room_points = cfg.batch_max_points.saturating_sub(self.points as usize);
        let room_bytes = cfg.batch_max_bytes.saturating_sub(self.buf.len());
        let start = lines.start(from);
        let mut end_line = (from + room_points).min(lines.len());
        if end_line > from && lines.end(end_line - 1) - start > room_bytes {
            end_line =
                from + lines.ends()[from..end_line].partition_point(|&e| e - start <= room_bytes);
        }
        if end_line == from {
            if self.points > 0 {
                return from;
            }
            end_line = from + 1;
        }
        self.buf
            .extend_from_slice(&lines.as_bytes()[start..lines.end(end_line - 1)]);
        self.points += (end_line - from) as u64;
        end_line
    }
}

/// Close the route's open batch and hand it to its lane.
async fn seal(shared: &Arc<Shared>, b: &mut OpenBatch) {
    b.flush_due = None;
    if b.points == 0 {
        return;
    }
    b.last_seal = Some(Instant::now());
    let batch = Batch {
        route: b.route.clone(),
        body: std::mem::take(&mut b.buf).into(),
        points: std::mem::take(&mut b.points),
        lane: b.lane.clone(),
    };
    // Memory over its bound: straight to disk when there is a spool.
    let c = &shared.counters;
    let over = c.held_points.load(Relaxed) & !super::stats::FINAL
        > shared.cfg.queue_max_points as u64
        || c.held_bytes.load(Relaxed) > shared.cfg.queue_max_bytes as u64;
    // (Only when the lane holds nothing of the route: its batches must not
    // be overtaken.)
    if over && b.lane.queued.load(Relaxed) == 0 && shared.spill(&batch).await.is_some() {
        shared.settle(&batch, Fate::Spooled);
        return;
    }
    b.lane.queued.fetch_add(1, Relaxed);
    if let Err(mpsc::error::SendError(LaneMsg::Batch(b))) = b.tx.send(LaneMsg::Batch(batch)).await {
        b.lane.queued.fetch_sub(1, Relaxed);
        shared.settle(&b, Fate::DroppedShutdown);
    }
}
