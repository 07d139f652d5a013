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
//! target), [`spill`] (batch ↔ spool record), [`stats`] (counters),
//! [`requests`] (one-off posts: lasterror and the script helpers). The
//! design, with the spool's format and invariants, is in `docs/design.md`.
//!
//! - Producers never wait on the network: [`Writer::submit`] only counts the
//!   points and queues them. When the points held in memory pass
//!   `queue_max_points`, a writer without a spool refuses the call
//!   ([`SubmitError::QueueFull`], counted as `dropped_queue_full`); with a spool
//!   the batches go to disk instead.
//! - Batches are per [`Route`] and close on `batch_max_points`,
//!   `batch_max_bytes`, `batch_max_delay` or an explicit [`Writer::flush`].
//! - Each lane sends one request at a time, so a retried batch is never
//!   overtaken. A 4xx other than 408/429 drops that batch alone, with
//!   DataKit's message logged and counted.
//! - With a spool, a batch that fails with a retryable error goes to disk after
//!   `spool_after_attempts` tries, or as soon as an attempt has waited
//!   `spill_after` without an answer (a hung DataKit is an outage too), and
//!   from then on every new batch of the input follows it there until the
//!   replayer has drained the spool in order: at-least-once delivery that
//!   survives DataKit outages and restarts.
//! - [`Writer::shutdown`] has one deadline: it delivers what it can, then
//!   cancels attempts in flight and spools everything not yet acknowledged
//!   before the deadline passes.
//! - Blocking work (spool I/O, gzip, local files) runs on tokio's blocking
//!   pool, never on the runtime's workers.

mod config;
mod delivery;
mod dispatch;
mod lane;
mod lasterror;
mod replay;
mod requests;
pub mod retry;
mod spill;
pub mod spool;
mod stage;
pub mod stats;
pub mod transport;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::time::Instant;

use crate::route::Route;
use crate::sink::Payload;
pub use config::WriterConfig;
pub use requests::WriteError;
pub use spill::open_spool;
use spill::SpoolState;
use spool::Spool;
pub use stage::{Stage, STAGE_MAX_BYTES, STAGE_MAX_POINTS};
use stats::Counters;
pub use stats::Stats;
use transport::Transport;

/// Why [`Writer::submit`] refused points (they are counted as dropped).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("in-memory queue full ({held} points held, limit {limit}): points dropped")]
    QueueFull { held: u64, limit: usize },
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
        self.stats.lost() + self.spool.map(|s| s.dropped_records).unwrap_or(0)
    }
}

enum Msg {
    /// A call's (or a stage's) points, and when the oldest of them arrived.
    Points(Route, Payload, Option<Instant>),
    Flush(Option<oneshot::Sender<()>>),
}

/// A sealed batch: one request's body.
struct Batch {
    route: Arc<Route>,
    body: Bytes,
    points: u64,
}

/// What every stage of one writer shares.
struct Shared {
    cfg: WriterConfig,
    counters: Counters,
    transport: Transport,
    spool: Option<Arc<SpoolState>>,
    closed: AtomicBool,
    /// Turns true when shutdown stops delivering: attempts in flight are
    /// cancelled and every batch left goes to the spool.
    abort: watch::Sender<bool>,
    /// The replayer's last attempt succeeded: the spool is draining.
    replay_ok: AtomicBool,
    lasterror: lasterror::Pending,
    /// Every [`Stage`] handed out (see `stage.rs`), and the timer's wake-up.
    stages: Mutex<Vec<Weak<stage::StageInner>>>,
    stage_notify: Notify,
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

    fn release(&self, points: u64) {
        self.counters.held_points.fetch_sub(points, Relaxed);
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
    tx: mpsc::UnboundedSender<Msg>,
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
        let shared = Arc::new(Shared {
            cfg,
            counters: Counters::default(),
            transport,
            spool: spool.map(|s| Arc::new(SpoolState::new(s))),
            closed: AtomicBool::new(false),
            abort: watch::Sender::new(false),
            replay_ok: AtomicBool::new(false),
            lasterror: lasterror::Pending::default(),
            stages: Mutex::new(Vec::new()),
            stage_notify: Notify::new(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch::run(shared.clone(), rx));
        tokio::spawn(lasterror::run(shared.clone()));
        if shared.spool.is_some() {
            tokio::spawn(replay::run(shared.clone()));
        }
        let writer = Writer { shared, tx };
        tokio::spawn(stage::run(writer.clone()));
        writer
    }

    /// Queue points for `route`. Never blocks. Memory is bounded: without a
    /// spool past `queue_max_points` held, with one past twice that (the
    /// dispatcher spills to disk beyond the bound, unless producers outrun it).
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
        let n = points.len() as u64;
        let c = &self.shared.counters;
        if self.shared.closed.load(Relaxed) {
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        let limit = self.shared.cfg.queue_max_points;
        let hard = if self.shared.spool.is_some() {
            limit.saturating_mul(2)
        } else {
            limit
        };
        let held = c.held_points.fetch_add(n, Relaxed) + n;
        if held > hard as u64 {
            c.held_points.fetch_sub(n, Relaxed);
            c.dropped_queue_full.fetch_add(n, Relaxed);
            return Err(SubmitError::QueueFull { held, limit: hard });
        }
        if self.tx.send(Msg::Points(route, points, since)).is_err() {
            c.held_points.fetch_sub(n, Relaxed);
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        Ok(())
    }

    /// Send what is batched now, without waiting.
    pub fn flush(&self) {
        let _ = self.tx.send(Msg::Flush(None));
    }

    /// Resolves once everything submitted before the call is delivered,
    /// spooled, or definitively dropped.
    pub async fn flush_and_wait(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(Some(tx))).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stop taking points; deliver what can be delivered, then, shortly
    /// before `deadline`, cancel attempts in flight and spool (without a
    /// spool: drop and count) everything not yet acknowledged. Returns before
    /// `deadline` unless the disk itself is slower.
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
        // While DataKit takes the spooled data, let it drain.
        if let Some(s) = &sh.spool {
            while !s.spool.is_empty() && sh.replay_ok.load(Relaxed) && Instant::now() < abort_at {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drained &= s.spool.is_empty();
        }
        sh.abort.send_replace(true);
        // Lanes now spool (or drop) what they hold, without attempts.
        let _ = tokio::time::timeout_at(deadline, self.flush_and_wait()).await;
        let spool = match &sh.spool {
            Some(s) => {
                let s = s.clone();
                let r = tokio::task::spawn_blocking(move || {
                    if let Err(e) = s.spool.sync() {
                        tracing::error!(target: "pythond::writer", "{e}");
                    }
                    s.spool.stats()
                })
                .await
                .ok();
                r
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
            drained: drained && stats.held_points == 0,
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

    /// Spool counters, when the writer has a spool.
    pub fn spool_stats(&self) -> Option<spool::SpoolStats> {
        self.shared.spool.as_ref().map(|s| s.spool.stats())
    }
}
