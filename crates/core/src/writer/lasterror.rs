//! `set_lasterror` calls, coalesced: the latest message per (target, input)
//! waits here and one task posts them, so a script calling it in a loop
//! costs a map entry, not a task or a request per call.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::{Shared, Writer};
use crate::target::Target;

/// Distinct (target, input) keys kept waiting; past it the oldest is dropped.
const MAX_PENDING: usize = 64;

type Key = (Option<Target>, String);

#[derive(Default)]
pub(super) struct Pending {
    queue: Mutex<VecDeque<(Key, String)>>,
    wake: Notify,
}

impl Writer {
    /// Queue a `POST /v1/lasterror` for `input`; a newer message for the
    /// same input replaces one not yet sent. Never blocks.
    pub fn lasterror(&self, target: Option<Target>, input: &str, message: &str) {
        let p = &self.shared.lasterror;
        let mut q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
        let key = (target, input.to_owned());
        if let Some(slot) = q.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = message.to_owned();
        } else {
            if q.len() >= MAX_PENDING {
                q.pop_front();
                self.shared.counters.lasterror_dropped.fetch_add(1, Relaxed);
            }
            q.push_back((key, message.to_owned()));
        }
        drop(q);
        p.wake.notify_one();
    }
}

pub(super) async fn run(shared: Arc<Shared>) {
    let writer_for = |sh: &Arc<Shared>| sh.clone();
    loop {
        tokio::select! {
            _ = shared.lasterror.wake.notified() => {}
            _ = shared.aborted() => return,
        }
        loop {
            let next = shared
                .lasterror
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(((target, input), message)) = next else {
                break;
            };
            let sh = writer_for(&shared);
            if let Err(e) =
                super::requests::post_lasterror(&sh, target.as_ref(), &input, &message).await
            {
                tracing::warn!(target: "pythond::writer", input = %input, "POST /v1/lasterror failed: {e}");
            }
        }
    }
}
