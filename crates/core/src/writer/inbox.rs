//! The queue from producers to the dispatcher, which wakes the dispatcher
//! only when a message cannot wait for its next wake-up anyway.
//!
//! With hundreds of scripts each ending a run every second, every run hands
//! over its points and asks for a flush; a channel that woke the dispatcher
//! for each would cost a thread wake-up per run, while the dispatcher seals
//! at most one batch per route every `flush_gap` anyway. So the dispatcher
//! publishes when it will wake by itself (a batch due, a flush deferred by the
//! gap), and a producer that queues a message wakes it only if the message
//! is needed before then: points by the time their batch is due (at once when
//! the queue holds a full batch's worth), a flush within `flush_gap`, a flush
//! that is waited for at once.
//!
//! The handshake that makes a skipped wake-up safe: the dispatcher publishes
//! its wake-up time, then looks at the queue once more before it sleeps; a
//! producer queues, then reads the wake-up time. Either the dispatcher's
//! last look finds the message, or the producer reads the time published
//! before that look (the queue's lock orders the two).

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::wake::WakeAt;
use super::Msg;

pub(super) struct Inbox {
    queue: Mutex<Queued>,
    cap: usize,
    /// Points and bytes queued, past which the dispatcher is woken at once.
    full_points: u64,
    full_bytes: u64,
    notify: Notify,
    /// When the dispatcher wakes by itself.
    wake_at: WakeAt,
}

#[derive(Default)]
struct Queued {
    msgs: VecDeque<Msg>,
    points: u64,
    bytes: u64,
}

/// The queue holds `cap` messages already.
#[derive(Debug)]
pub(super) struct Full;

impl Inbox {
    pub(super) fn new(cap: usize, full_points: usize, full_bytes: usize) -> Inbox {
        Inbox {
            queue: Mutex::default(),
            cap: cap.max(1),
            full_points: full_points.max(1) as u64,
            full_bytes: full_bytes.max(1) as u64,
            notify: Notify::new(),
            wake_at: WakeAt::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue `msg`, which must be handled by `need_by` (`None`: at once),
    /// counting `points` and `bytes` toward a full batch's worth.
    pub(super) fn push(
        &self,
        msg: Msg,
        need_by: Option<Instant>,
        points: u64,
        bytes: u64,
    ) -> Result<(), Full> {
        let full = {
            let mut q = self.lock();
            if q.msgs.len() >= self.cap {
                drop(q);
                self.notify.notify_one();
                return Err(Full);
            }
            q.msgs.push_back(msg);
            q.points += points;
            q.bytes += bytes;
            q.points >= self.full_points || q.bytes >= self.full_bytes
        };
        // Awake, the dispatcher looks at the queue before it sleeps again.
        let wake = match need_by {
            Some(by) if !full => self.wake_at.asleep_past(by),
            _ => !self.wake_at.is_awake(),
        };
        if wake {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Everything queued, oldest first (the dispatcher is awake).
    pub(super) fn take(&self) -> VecDeque<Msg> {
        let mut q = self.lock();
        q.points = 0;
        q.bytes = 0;
        std::mem::take(&mut q.msgs)
    }

    /// Sleep until `until` (`None`: until woken) or until a producer needs
    /// the dispatcher sooner; at once if something was queued meanwhile.
    pub(super) async fn sleep(&self, until: Option<Instant>) {
        let notified = self.notify.notified();
        self.wake_at.sleeping_until(until);
        if !self.lock().msgs.is_empty() {
            self.wake_at.awake();
            return;
        }
        match until {
            Some(t) => {
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep_until(t) => {}
                }
            }
            None => notified.await,
        }
        self.wake_at.awake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn flush() -> Msg {
        Msg::Flush(None)
    }

    /// How long `sleep(until)` took while `produce` ran beside it.
    async fn slept(
        inbox: &Arc<Inbox>,
        until: Option<Instant>,
        produce: impl FnOnce(&Inbox) + Send + 'static,
    ) -> Duration {
        let t = Instant::now();
        let i = inbox.clone();
        let p = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            produce(&i);
        });
        tokio::time::timeout(Duration::from_secs(20), inbox.sleep(until))
            .await
            .expect("the dispatcher was never woken");
        p.join().unwrap();
        t.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_needed_before_the_wake_up_wakes_the_dispatcher() {
        let inbox = Arc::new(Inbox::new(16, 1000, 1 << 20));
        let far = Some(Instant::now() + Duration::from_secs(10));
        let took = slept(&inbox, far, |i| i.push(flush(), None, 0, 0).unwrap()).await;
        assert!(took < Duration::from_secs(5), "slept {took:?}");
        assert_eq!(inbox.take().len(), 1);
        // Needed in 1 s, the dispatcher due in 10 s: woken.
        let took = slept(&inbox, far, |i| {
            let by = Instant::now() + Duration::from_secs(1);
            i.push(flush(), Some(by), 0, 0).unwrap()
        })
        .await;
        assert!(took < Duration::from_secs(5), "slept {took:?}");
        assert_eq!(inbox.take().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_that_can_wait_lets_the_dispatcher_sleep_on() {
        let inbox = Arc::new(Inbox::new(16, 1000, 1 << 20));
        let at = Instant::now() + Duration::from_millis(400);
        let took = slept(&inbox, Some(at), |i| {
            let by = Instant::now() + Duration::from_secs(60);
            i.push(flush(), Some(by), 10, 100).unwrap()
        })
        .await;
        assert!(took >= Duration::from_millis(400), "woken early: {took:?}");
        assert_eq!(inbox.take().len(), 1, "the message waited in the queue");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_batch_queued_wakes_the_dispatcher_whatever_its_deadline() {
        let inbox = Arc::new(Inbox::new(16, 1000, 1 << 20));
        let far = Some(Instant::now() + Duration::from_secs(10));
        let took = slept(&inbox, far, |i| {
            let by = Instant::now() + Duration::from_secs(60);
            i.push(flush(), Some(by), 600, 0).unwrap();
            i.push(flush(), Some(by), 600, 0).unwrap();
        })
        .await;
        assert!(took < Duration::from_secs(5), "slept {took:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_was_queued_before_the_sleep_is_never_slept_on() {
        let inbox = Inbox::new(16, 1000, 1 << 20);
        let by = Instant::now() + Duration::from_secs(60);
        // Queued while the dispatcher was awake (no wake-up sent).
        inbox.push(flush(), Some(by), 0, 0).unwrap();
        let t = Instant::now();
        inbox.sleep(None).await;
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(inbox.take().len(), 1);
    }

    #[test]
    fn a_full_queue_refuses_the_message() {
        let inbox = Inbox::new(2, 1000, 1 << 20);
        inbox.push(flush(), None, 0, 0).unwrap();
        inbox.push(flush(), None, 0, 0).unwrap();
        assert!(inbox.push(flush(), None, 0, 0).is_err());
        inbox.take();
        assert!(inbox.push(flush(), None, 0, 0).is_ok());
    }
}
