//! The writer: takes points from many producers and delivers them to DataKit.
//!
//! ```text
//! submit() ──▶ dispatch ──▶ lane (one per Route) ──▶ delivery ──▶ transport ──▶ DataKit
//!  (any thread)  batches     sends one batch at a     retry         HTTP/TCP, HTTP/Unix,
//!                per route   time, in order           verdicts      local file/stdout
//!                                   │ 5xx/429/down, or memory full
//!                                   ▼
//!                                 spill ──▶ spool (disk) ──▶ replay ──▶ transport
//! ```
//!
//! One file per stage: [`dispatch`] (batching), [`lane`] (in-order sending per
//! route), [`delivery`] (attempts, retries, spilling), [`replay`] (draining the
//! spool), [`retry`] (what an answer means), [`transport`] (bytes to a
//! target), [`spill`] (batch ↔ spool record), [`spooler`] (the spool's
//! thread), [`stats`] (counters),
//! [`requests`] (one-off posts: lasterror and the script helpers). The
//! design, with the spool's format and invariants, is in `docs/design.md`.
//!
//! - Producers never wait on the network: [`Writer::submit`] only counts the
//!   points and queues them. When the points or bytes held in memory pass
//!   `queue_max_points`/`queue_max_bytes`, a writer without a spool refuses
//!   the call ([`SubmitError::QueueFull`], counted as `dropped_queue_full`);
//!   with a spool the batches go to disk instead, and calls are refused only
//!   past twice the bounds. The queue to the dispatcher holds at most
//!   `queue_max_messages` calls.
//! - Batches are per [`Route`] and close on `batch_max_points`,
//!   `batch_max_bytes`, `batch_max_delay` or an explicit [`Writer::flush`].
//! - Each lane sends one request at a time, so a retried batch is never
//!   overtaken. A 4xx other than 408/429 drops that batch alone, with
//!   DataKit's message logged and counted.
//! - With a spool, a batch that fails with a retryable error goes to disk after
//!   `spool_after_attempts` tries, or as soon as an attempt has waited
//!   `spill_after` without an answer (a hung DataKit is an outage too), and
//!   from then on every new batch of that route follows it there until the
//!   replayer has drained the spool in order (other routes go on sending;
//!   behind data recovered at start, every route queues): at-least-once
//!   delivery that survives DataKit outages and restarts.
//! - [`Writer::shutdown`] has one deadline: it delivers what it can, then
//!   cancels attempts in flight and spools everything not yet acknowledged
//!   before the deadline passes. Whatever is still only in memory then is
//!   counted as lost, exactly once (see [`stats::Counters::settle`]).
//! - Blocking work never runs on the runtime's workers: spool I/O on the
//!   spool's own thread ([`spooler`]), gzip and local files on tokio's
//!   blocking pool.

mod config;
mod delivery;
mod dispatch;
mod inbox;
mod lane;
mod lasterror;
mod replay;
mod requests;
pub mod retry;
mod spill;
pub mod spool;
mod spooler;
mod stage;
pub mod stats;
pub mod transport;
mod wake;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch, Notify};
use tokio::time::Instant;

use crate::lineproto::Lines;
use crate::payload::Payload;
use crate::route::Route;
pub use config::WriterConfig;
pub use requests::WriteError;
pub use spill::{open_spool, open_spool_with};
use spool::Spool;
use spooler::SpoolState;
pub use stage::{Stage, STAGE_MAX_BYTES, STAGE_MAX_POINTS};
use stats::Counters;
pub use stats::Stats;

/// How long [`Writer::shutdown`] waits for the spool's final `fsync` after
/// its deadline.
pub const SYNC_WAIT: Duration = Duration::from_millis(300);
use transport::Transport;

/// Why [`Writer::submit`] refused points (they are counted as dropped).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("in-memory queue full ({held} {unit} held, limit {limit}): points dropped")]
    QueueFull {
        held: u64,
        limit: usize,
        unit: &'static str,
    },
    #[error("the writer is behind ({limit} calls queued): points dropped")]
    Busy { limit: usize },
    #[error("the writer is shut down: points dropped")]
    Closed,
}

/// What [`Writer::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything was delivered (or definitively refused by DataKit); nothing
    /// waits in the spool.
    pub drained: bool,
    pub stats: Stats,
    pub spool: Option<spool::SpoolStats>,
}

impl ShutdownReport {
    /// Points lost by pythond during its life (see [`Stats::lost`]), spool
    /// bound drops included.
    pub fn lost(&self) -> u64 {
        self.stats.lost() + self.spool.map(|s| s.dropped_weight).unwrap_or(0)
    }
}

enum Msg {
    /// A call's (or a stage's) points, and when the oldest of them arrived.
    Points(Route, Lines, Option<Instant>),
    Flush(Option<oneshot::Sender<()>>),
}

/// How a batch held in memory ended.
enum Fate {
    Sent,
    /// DataKit refused it (4xx), with its message.
    Rejected(String),
    Spooled,
    DroppedShutdown,
    DroppedRetries,
}

/// A sealed batch: one request's body.
struct Batch {
    route: Arc<Route>,
    body: Bytes,
    points: u64,
    /// Its route's lane.
    lane: Arc<spill::LaneState>,
}

/// What every stage of one writer shares.
struct Shared {
    cfg: WriterConfig,
    /// Shared with the spool thread, which counts a batch spooled the
    /// moment it is on disk (see `spill`).
    counters: Arc<Counters>,
    transport: Transport,
    spool: Option<Arc<SpoolState>>,
    closed: AtomicBool,
    /// Turns true when shutdown stops delivering: attempts in flight are
    /// cancelled and every batch left goes to the spool.
    abort: watch::Sender<bool>,
    lasterror: lasterror::Pending,
    /// Every [`Stage`] handed out (see `stage.rs`), and the timer's wake-up.
    stages: Mutex<Vec<Weak<stage::StageInner>>>,
    stage_notify: Notify,
    /// When the stages' timer wakes by itself (see `stage.rs`).
    stage_timer_at: wake::WakeAt,
    /// Calls and flushes on their way to the dispatcher.
    inbox: inbox::Inbox,
}

impl Shared {
    fn input_for<'a>(&'a self, route: &'a Route) -> &'a str {
        route
            .query
            .input
            .as_deref()
            .or(self.cfg.input.as_deref())
            .unwrap_or("-")
    }

    /// A batch held in memory ended so: counted, unless shutdown's final
    /// count already counted it as lost.
    fn settle(&self, b: &Batch, fate: Fate) {
        // A spooled batch was counted by the spool thread as it was written
        // (see `spill`): in order with the spool's close, so that shutdown's
        // final count never counts a batch that is on disk as lost.
        if matches!(fate, Fate::Spooled) {
            return;
        }
        if !self.counters.settle(b.points, b.body.len() as u64) {
            return;
        }
        let c = &self.counters;
        match fate {
            Fate::Sent => self.delivered(&b.route, b.points, b.body.len()),
            Fate::Rejected(msg) => self.rejected(&b.route, b.points, &msg),
            Fate::Spooled => {}
            Fate::DroppedShutdown => {
                c.dropped_shutdown.fetch_add(b.points, Relaxed);
            }
            Fate::DroppedRetries => {
                c.dropped_retries_exhausted.fetch_add(b.points, Relaxed);
            }
        }
    }

    fn aborting(&self) -> bool {
        *self.abort.borrow()
    }

    /// Resolves once shutdown aborts delivery.
    async fn aborted(&self) {
        let mut rx = self.abort.subscribe();
        let _ = rx.wait_for(|a| *a).await;
    }
}

/// Handle to a running writer. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

impl Writer {
    /// Start a writer on the current tokio runtime.
    pub fn spawn(cfg: WriterConfig) -> Writer {
        Writer::spawn_with_spool(cfg, None)
    }

    /// Start a writer whose undeliverable batches go to `spool`.
    pub fn spawn_with_spool(cfg: WriterConfig, spool: Option<Spool>) -> Writer {
        let transport = Transport::new(cfg.request_timeout, &cfg.user_agent)
            .expect("an HTTP client without TLS always builds");
        let spool = spool.and_then(|s| match SpoolState::start(s) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                tracing::error!(target: "pythond::writer", "cannot start the spool thread: {e}; running without a spool");
                None
            }
        });
        let inbox = inbox::Inbox::new(
            cfg.queue_max_messages,
            cfg.batch_max_points,
            cfg.batch_max_bytes,
        );
        let shared = Arc::new(Shared {
            cfg,
            counters: Arc::new(Counters::default()),
            transport,
            spool,
            closed: AtomicBool::new(false),
            abort: watch::Sender::new(false),
            lasterror: lasterror::Pending::default(),
            stages: Mutex::new(Vec::new()),
            stage_notify: Notify::new(),
            stage_timer_at: wake::WakeAt::default(),
            inbox,
        });
        tokio::spawn(dispatch::run(shared.clone()));
        tokio::spawn(lasterror::run(shared.clone()));
        if shared.spool.is_some() {
            tokio::spawn(replay::run(shared.clone()));
        }
        let writer = Writer { shared };
        tokio::spawn(stage::run(writer.clone()));
        writer
    }

    /// Queue points for `route`. Never blocks. Memory is bounded: without a
    /// spool past `queue_max_points` (or `queue_max_bytes`) held, with one
    /// past twice that (the dispatcher spills to disk beyond the bound,
    /// unless producers outrun it), and past `queue_max_messages` calls
    /// waiting for the dispatcher. Whole points are encoded here, in the
    /// caller's thread.
    pub fn submit(&self, route: Route, points: impl Into<Payload>) -> Result<(), SubmitError> {
        self.submit_since(route, points.into(), None)
    }

    /// [`Writer::submit`] of points the oldest of which arrived at `since`
    /// (a [`Stage`]'s): the batch they join is sealed counting from then.
    fn submit_since(
        &self,
        route: Route,
        points: Payload,
        since: Option<Instant>,
    ) -> Result<(), SubmitError> {
        let lines = match points {
            Payload::Lines(l) => l,
            Payload::Points(v) => {
                let mut l = Lines::new();
                for p in &v {
                    l.push(p);
                }
                l
            }
        };
        let n = lines.len() as u64;
        let bytes = lines.byte_len() as u64;
        let c = &self.shared.counters;
        if self.shared.closed.load(Relaxed) {
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        let cfg = &self.shared.cfg;
        let twice = |l: usize| {
            if self.shared.spool.is_some() {
                l.saturating_mul(2)
            } else {
                l
            }
        };
        let (hard_points, hard_bytes) = (twice(cfg.queue_max_points), twice(cfg.queue_max_bytes));
        let held = c.hold(n, bytes);
        let refused = if held.after_final {
            // Shutdown's final count ran: nothing held is delivered now.
            Some(SubmitError::Closed)
        } else if held.points > hard_points as u64 {
            Some(SubmitError::QueueFull {
                held: held.points,
                limit: hard_points,
                unit: "points",
            })
        } else if held.bytes > hard_bytes as u64 {
            Some(SubmitError::QueueFull {
                held: held.bytes,
                limit: hard_bytes,
                unit: "bytes",
            })
        } else {
            // Needed when its batch is due by delay (or at once when the
            // queue holds a full batch: see `inbox`).
            let due = since.unwrap_or_else(Instant::now) + cfg.batch_max_delay;
            let msg = Msg::Points(route, lines, since);
            match self.shared.inbox.push(msg, Some(due), n, bytes) {
                Ok(()) => None,
                Err(inbox::Full) => Some(SubmitError::Busy {
                    limit: cfg.queue_max_messages,
                }),
            }
        };
        let Some(e) = refused else { return Ok(()) };
        // Shutdown's final count may have run since the hold, counting
        // these points as lost already.
        if !c.take_back(&held, n, bytes) {
            return Err(e);
        }
        match e {
            SubmitError::Closed => c.dropped_shutdown.fetch_add(n, Relaxed),
            _ => c.dropped_queue_full.fetch_add(n, Relaxed),
        };
        Err(e)
    }

    /// Send what is batched now, without waiting.
    pub fn flush(&self) {
        // The dispatcher seals a route at most once per `flush_gap`: a flush
        // may wait for it that long (see `inbox`). A full queue will be
        // batched anyway (by size or linger).
        let by = Instant::now() + self.shared.cfg.flush_gap;
        let _ = self.shared.inbox.push(Msg::Flush(None), Some(by), 0, 0);
    }

    /// Resolves once everything submitted before the call is delivered,
    /// spooled, or definitively dropped.
    pub async fn flush_and_wait(&self) {
        loop {
            let (tx, rx) = oneshot::channel();
            if self
                .shared
                .inbox
                .push(Msg::Flush(Some(tx)), None, 0, 0)
                .is_ok()
            {
                let _ = rx.await;
                return;
            }
            // A full queue drains on its own (the dispatcher has been woken).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stop taking points; deliver what can be delivered (the spool too,
    /// while DataKit takes it), then, shortly before `deadline`, cancel
    /// attempts in flight and spool (without a spool: drop and count)
    /// everything not yet acknowledged. What is still only in memory at
    /// `deadline` is counted as lost. Returns by `deadline` plus at most
    /// [`SYNC_WAIT`] for the final `fsync`.
    pub async fn shutdown(&self, deadline: Instant) -> ShutdownReport {
        let sh = &self.shared;
        // What scripts' stages hold goes first: it was handed over before
        // the shutdown began.
        self.flush_stages();
        sh.closed.store(true, Relaxed);
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        // Time kept to spool what is still in memory once delivery stops.
        let reserve = (left / 4).min(Duration::from_secs(1));
        let abort_at = deadline - reserve;
        let mut drained = tokio::time::timeout_at(abort_at, self.flush_and_wait())
            .await
            .is_ok();
        if let Some(s) = &sh.spool {
            // While DataKit takes the spooled data, let it drain: the
            // replayer probes now rather than after its backoff, and the
            // wait ends once an attempt started from now on fails.
            let from = s.attempts.load(Relaxed);
            s.probe_now.notify_one();
            while !s.is_empty() && s.last_failed.load(Relaxed) <= from && Instant::now() < abort_at
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drained &= s.is_empty();
        }
        sh.abort.send_replace(true);
        // Lanes now spool (or drop) what they hold, without attempts.
        let _ = tokio::time::timeout_at(deadline, self.flush_and_wait()).await;
        // The deadline: the spool takes nothing more, and what is still in
        // memory is lost, counted once.
        if let Some(s) = &sh.spool {
            // Behind the appends asked for before it; a disk too slow to let
            // it through in time leaves those counted lost (they may still
            // reach the disk: then they are replayed, never lost unseen).
            if tokio::time::timeout(SYNC_WAIT, s.close()).await.is_err() {
                s.close_now();
            }
        }
        let in_memory = sh.counters.finish();
        if in_memory > 0 {
            tracing::error!(
                target: "pythond::writer",
                input = sh.cfg.input.as_deref().unwrap_or("-"),
                points = in_memory,
                "points still in memory at the shutdown deadline (neither delivered nor spooled): lost"
            );
        }
        let spool = match &sh.spool {
            Some(s) => {
                // Appends are with the OS already (a process crash loses
                // none); the fsync guards against a machine crash, and is
                // not worth being killed for.
                match tokio::time::timeout(SYNC_WAIT, s.sync()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!(target: "pythond::writer", "spool: {e}"),
                    Err(_) => tracing::warn!(
                        target: "pythond::writer",
                        "spool fsync still running at exit: the newest records are with the OS, not yet on disk"
                    ),
                }
                Some(s.stats())
            }
            None => None,
        };
        let stats = self.stats();
        if stats.lost() > 0 {
            tracing::error!(
                target: "pythond::writer",
                input = sh.cfg.input.as_deref().unwrap_or("-"),
                lost = stats.lost(),
                ?stats,
                "points were dropped"
            );
        }
        ShutdownReport {
            drained: drained && in_memory == 0,
            stats,
            spool,
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// The writer part of `GET /status`.
    pub fn status(&self) -> crate::status::WriterStatus {
        self.shared.counters.status(self.spool_stats())
    }

    /// Spool counters, when the writer has a spool (as of its last
    /// operation: never waits on the disk).
    pub fn spool_stats(&self) -> Option<spool::SpoolStats> {
        self.shared.spool.as_ref().map(|s| s.stats())
    }
}
