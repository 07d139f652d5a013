//! Batching: points arrive from any thread as whole calls and are appended to
//! the open batch of their [`Route`]; a batch is sealed when it reaches its
//! point or byte bound, when its oldest point has waited `batch_max_delay`, or
//! on a flush, and handed to that route's [`lane`](super::lane). A flush (a
//! script's run ended) seals at once unless the route sealed a batch less
//! than `flush_gap` ago; then the batch is sealed when that gap is over, so
//! that hundreds of scripts ending runs every second share requests. A
//! flush that waits ([`Writer::flush_and_wait`](super::Writer::flush_and_wait))
//! always seals at once. Routes idle for `lane_idle` are retired; at most
//! `max_routes` are held.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::lane::{self, LaneMsg};
use super::{Batch, Msg, Shared, WriterConfig};
use crate::lineproto::{encode_point, Lines};
use crate::route::Route;
use crate::sink::Payload;

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
}

pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut open: HashMap<Route, OpenBatch> = HashMap::new();
    let max_delay = shared.cfg.batch_max_delay;
    loop {
        let next = open
            .values()
            .filter(|b| b.points > 0)
            .map(|b| b.due(max_delay))
            .min();
        let msg = match next {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(at) => {
                    let now = Instant::now();
                    for b in open.values_mut() {
                        if b.points > 0 && b.due(max_delay) <= now {
                            seal(&shared, b).await;
                        }
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(msg) = msg else { break };
        match msg {
            Msg::Points(route, points, since) => {
                if !open.contains_key(&route) {
                    retire_idle(&shared.cfg, &mut open);
                    if open.len() >= shared.cfg.max_routes {
                        let n = points.len() as u64;
                        shared.counters.dropped_routes.fetch_add(n, Relaxed);
                        shared.release(n);
                        tracing::warn!(
                            target: "pythond::writer",
                            input = shared.input_for(&route),
                            routes = open.len(),
                            "too many distinct routes (input/version/target) in use: {n} points dropped"
                        );
                        continue;
                    }
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
                    }
                });
                let now = Instant::now();
                // A stage's lines count from when the oldest of them arrived.
                let arrived = since.unwrap_or(now).min(now);
                if b.points == 0 || arrived < b.since {
                    b.since = arrived;
                }
                b.last_used = now;
                append(&shared, b, points).await;
            }
            Msg::Flush(waiter) => {
                let mut acks = Vec::new();
                let now = Instant::now();
                let gap = shared.cfg.flush_gap;
                for b in open.values_mut() {
                    match b.last_seal {
                        Some(t) if waiter.is_none() && b.points > 0 && now < t + gap => {
                            b.flush_due = Some(t + gap);
                            continue;
                        }
                        _ => seal(&shared, b).await,
                    }
                    if waiter.is_some() {
                        let (tx, rx) = oneshot::channel();
                        if b.tx.send(LaneMsg::Marker(tx)).await.is_ok() {
                            acks.push(rx);
                        }
                    }
                }
                if let Some(w) = waiter {
                    tokio::spawn(async move {
                        for a in acks {
                            let _ = a.await;
                        }
                        let _ = w.send(());
                    });
                }
            }
        }
    }
}

/// Drop the routes with nothing open and no use for `lane_idle`: their lane
/// finishes what it holds and ends.
fn retire_idle(cfg: &WriterConfig, open: &mut HashMap<Route, OpenBatch>) {
    let now = Instant::now();
    open.retain(|_, b| b.points > 0 || now.duration_since(b.last_used) < cfg.lane_idle);
}

/// Append one call's points, sealing whenever the batch fills.
async fn append(shared: &Arc<Shared>, b: &mut OpenBatch, points: Payload) {
    match points {
        Payload::Points(points) => {
            for p in &points {
                encode_point(p, &mut b.buf);
                b.points += 1;
                if b.full(&shared.cfg) {
                    seal(shared, b).await;
                    b.since = Instant::now();
                }
            }
        }
        Payload::Lines(lines) => {
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
    };
    // Memory over its bound: straight to disk when there is a spool.
    let over = shared.counters.held_points.load(Relaxed) > shared.cfg.queue_max_points as u64;
    if over && shared.spill(&batch).await.is_some() {
        shared.release(batch.points);
        return;
    }
    if let Err(mpsc::error::SendError(LaneMsg::Batch(b))) = b.tx.send(LaneMsg::Batch(batch)).await {
        shared
            .counters
            .dropped_shutdown
            .fetch_add(b.points, Relaxed);
        shared.release(b.points);
    }
}
