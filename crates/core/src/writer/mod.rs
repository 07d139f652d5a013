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
//!   `spool_after_attempts` tries, and from then on every new batch of the
//!   input follows it there until the replayer has drained the spool in order:
//!   at-least-once delivery that survives DataKit outages and restarts.

mod config;
mod delivery;
mod dispatch;
mod lane;
mod replay;
mod requests;
pub mod retry;
mod spill;
pub mod spool;
pub mod stats;
pub mod transport;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::route::Route;
use crate::sink::Payload;
pub use config::WriterConfig;
pub use requests::WriteError;
use spill::SpoolState;
use spool::Spool;
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

/// What [`Writer::shutdown`] could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything was delivered (or definitively refused by DataKit).
    pub drained: bool,
    pub stats: Stats,
}

enum Msg {
    Points(Route, Payload),
    Flush(Option<oneshot::Sender<()>>),
}

/// A sealed batch: one request's body.
struct Batch {
    route: Arc<Route>,
    body: Vec<u8>,
    points: u64,
}

/// What every stage of one writer shares.
struct Shared {
    cfg: WriterConfig,
    counters: Counters,
    transport: Transport,
    spool: Option<SpoolState>,
    closed: AtomicBool,
    abort: AtomicBool,
    abort_notify: Notify,
    /// The replayer's last attempt succeeded: the spool is draining.
    replay_ok: AtomicBool,
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
            spool: spool.map(SpoolState::new),
            closed: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            abort_notify: Notify::new(),
            replay_ok: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch::run(shared.clone(), rx));
        if shared.spool.is_some() {
            tokio::spawn(replay::run(shared.clone()));
        }
        Writer { shared, tx }
    }

    /// Queue points for `route`. Never blocks.
    pub fn submit(&self, route: Route, points: impl Into<Payload>) -> Result<(), SubmitError> {
        let points = points.into();
        let n = points.len() as u64;
        let c = &self.shared.counters;
        if self.shared.closed.load(Relaxed) {
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        let limit = self.shared.cfg.queue_max_points;
        let held = c.held_points.fetch_add(n, Relaxed) + n;
        if held > limit as u64 && self.shared.spool.is_none() {
            c.held_points.fetch_sub(n, Relaxed);
            c.dropped_queue_full.fetch_add(n, Relaxed);
            return Err(SubmitError::QueueFull { held, limit });
        }
        if self.tx.send(Msg::Points(route, points)).is_err() {
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

    /// Stop taking points, deliver what can be delivered within `deadline`,
    /// spool (or, without a spool, drop and count) the rest.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.shared.closed.store(true, Relaxed);
        let end = Instant::now() + deadline;
        let mut drained = tokio::time::timeout(deadline, self.flush_and_wait())
            .await
            .is_ok();
        // While DataKit takes the spooled data, let it drain within the deadline.
        if let Some(s) = &self.shared.spool {
            while !s.spool.is_empty() && self.shared.replay_ok.load(Relaxed) && Instant::now() < end
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drained &= s.spool.is_empty();
        }
        if !drained {
            self.shared.abort.store(true, Relaxed);
            self.shared.abort_notify.notify_waiters();
            // Lanes now spool or drop what they hold; give them a moment.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.flush_and_wait()).await;
        }
        self.shared.abort.store(true, Relaxed);
        self.shared.abort_notify.notify_waiters();
        if let Some(s) = &self.shared.spool {
            if let Err(e) = s.spool.sync() {
                tracing::error!(target: "pythond::writer", "{e}");
            }
        }
        ShutdownReport {
            drained,
            stats: self.stats(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Spool counters, when the writer has a spool.
    pub fn spool_stats(&self) -> Option<spool::SpoolStats> {
        self.shared.spool.as_ref().map(|s| s.spool.stats())
    }
}
