//! The spool's own thread: every spool operation (append, read, consume,
//! sync) runs there, one after the other, and the async side waits for its
//! answer without holding anything. A slow disk (an `fsync` at a segment
//! rotation, a full device) then delays only what needs the disk; the
//! runtime's threads, its timers and the routes that are not spooling never
//! wait on it.
//!
//! What the async side reads without asking the thread is published by it:
//! the spool's counters, and what decides whether a route is spooling (its
//! new batches must follow its data already on disk): the spool's *epoch*,
//! which moves on each time the spool is found empty, and whether data
//! recovered at open still waits. An append answers with the epoch it
//! happened in; a route whose last append is of the current epoch may still
//! have records on disk. Both change only on the thread, in order with the
//! appends and consumes, so a route never stops spooling while one of its
//! records waits.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use super::spool::{Popped, Record, RecordId, Spool, SpoolError, SpoolStats};

/// What the spool thread publishes.
#[derive(Default)]
struct Published {
    /// Data found at open still waits: every route queues behind it.
    recovered: AtomicBool,
    /// Moves on each time the spool is found empty.
    epoch: AtomicU64,
    stats: Mutex<SpoolStats>,
    /// Past the shutdown deadline: appends are refused.
    closed: AtomicBool,
}

type Job = Box<dyn FnOnce(&Spool, &Published) + Send>;

/// Why a spool operation did not happen.
#[derive(Debug, thiserror::Error)]
pub(super) enum SpoolOpError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error("the spool is closed (shutdown deadline passed)")]
    Closed,
    #[error("the spool thread is gone")]
    Gone,
}

/// The writer's handle on its spool thread.
pub(super) struct SpoolState {
    jobs: mpsc::Sender<Job>,
    published: Arc<Published>,
    /// Wakes the replayer: a record was appended.
    pub wake: Notify,
    /// Wakes the replayer out of its wait between probes (shutdown wants
    /// the spool drained if DataKit takes it).
    pub probe_now: Notify,
    /// Replay attempts started so far, and the number of the last one that
    /// failed: shutdown waits for the spool to drain until an attempt
    /// started after it began has failed.
    pub attempts: AtomicU64,
    pub last_failed: AtomicU64,
    /// Spooled records DataKit took anyway (a late answer to the attempt
    /// that was still going when the batch was spilled): not sent again.
    delivered: Mutex<HashSet<RecordId>>,
}

impl SpoolState {
    /// Start the thread that owns `spool`. It ends when this handle is
    /// dropped (and so releases the spool's lock).
    pub fn start(spool: Spool) -> std::io::Result<SpoolState> {
        let published = Arc::new(Published::default());
        published.recovered.store(!spool.is_empty(), Relaxed);
        *published.stats.lock().unwrap_or_else(|e| e.into_inner()) = spool.stats();
        let (tx, rx) = mpsc::channel::<Job>();
        let p = published.clone();
        std::thread::Builder::new()
            .name("pythond-spool".into())
            .spawn(move || {
                for job in rx {
                    job(&spool, &p);
                    *p.stats.lock().unwrap_or_else(|e| e.into_inner()) = spool.stats();
                }
            })?;
        Ok(SpoolState {
            jobs: tx,
            published,
            wake: Notify::new(),
            probe_now: Notify::new(),
            attempts: AtomicU64::new(0),
            last_failed: AtomicU64::new(0),
            delivered: Mutex::new(HashSet::new()),
        })
    }

    /// Run `f` on the spool thread; its answer, or `Gone`.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Spool, &Published) -> Result<T, SpoolOpError> + Send + 'static,
    ) -> Result<T, SpoolOpError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |s, p| {
            let _ = tx.send(f(s, p));
        });
        self.jobs.send(job).map_err(|_| SpoolOpError::Gone)?;
        rx.await.unwrap_or(Err(SpoolOpError::Gone))
    }

    /// Append a record (of `weight` points): where, and in which epoch.
    /// `written` runs on the spool thread once the record is written, before
    /// anything after it (a [`SpoolState::close`] included). Refused once
    /// `close` ran.
    pub async fn push(
        &self,
        rec: Vec<u8>,
        weight: u64,
        written: impl FnOnce() + Send + 'static,
    ) -> Result<(RecordId, u64), SpoolOpError> {
        let r = self
            .call(move |s, p| {
                if p.closed.load(Relaxed) {
                    return Err(SpoolOpError::Closed);
                }
                let id = s.push_weighed(&rec, weight)?;
                written();
                Ok((id, p.epoch.load(Relaxed)))
            })
            .await;
        if r.is_ok() {
            self.wake.notify_one();
        }
        r
    }

    /// The oldest record, if any.
    pub async fn front(&self) -> Result<Option<Record>, SpoolOpError> {
        self.call(|s, _| Ok(s.front()?)).await
    }

    /// Consume the record `id` (see [`Spool::pop`]).
    pub async fn pop(&self, id: RecordId) -> Result<Popped, SpoolOpError> {
        let r = self.call(move |s, _| Ok(s.pop(id)?)).await;
        // Marks of records at or before this one can no longer match.
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| *d > id);
        r
    }

    /// If the spool is empty, start a new epoch: no route is spooling any
    /// more. Whether it was empty (in order with the appends: a record
    /// appended meanwhile keeps its route spooling).
    pub async fn settle(&self) -> bool {
        self.call(|s, p| {
            let empty = s.is_empty();
            if empty {
                p.recovered.store(false, Relaxed);
                p.epoch.fetch_add(1, Relaxed);
            }
            Ok(empty)
        })
        .await
        .unwrap_or(false)
    }

    /// Flush the segment being written to disk (after the appends queued
    /// before it).
    pub async fn sync(&self) -> Result<(), SpoolOpError> {
        self.call(|s, _| Ok(s.sync()?)).await
    }

    /// Refuse appends from now on, in order with them: once this returns,
    /// every append asked for before is on disk (and counted), and every
    /// later one is refused; what is not on disk counts as lost.
    pub async fn close(&self) {
        let _ = self
            .call(|_, p| {
                p.closed.store(true, Relaxed);
                Ok(())
            })
            .await;
        // Also when the thread is gone.
        self.close_now();
    }

    /// Refuse appends that have not started yet, without waiting for the
    /// ones in progress.
    pub fn close_now(&self) {
        self.published.closed.store(true, Relaxed);
    }

    /// Whether a route whose last append was in epoch `appended` (if any)
    /// must send its new batches to disk, behind its data there.
    pub fn spooling(&self, appended: Option<u64>) -> bool {
        self.published.recovered.load(Relaxed)
            || appended == Some(self.published.epoch.load(Relaxed))
    }

    /// The spool's counters as of its last operation.
    pub fn stats(&self) -> SpoolStats {
        *self
            .published
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_empty(&self) -> bool {
        self.stats().records == 0
    }

    pub fn mark_delivered(&self, id: RecordId) {
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        self.wake.notify_one();
    }

    /// Whether `id` was delivered already (and forget it).
    pub fn take_delivered(&self, id: RecordId) -> bool {
        self.delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
    }
}
