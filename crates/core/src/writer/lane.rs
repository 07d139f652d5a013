//! A lane: the sender task of one route. It takes sealed batches in order and
//! delivers one at a time, so a batch being retried is never overtaken by a
//! later one of the same route. It ends when the dispatcher retires the
//! route (drops its sender) and the queue is empty.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{delivery, Batch, Shared};

pub(super) enum LaneMsg {
    Batch(Batch),
    /// Answered once every batch queued before it is done (flush_and_wait).
    Marker(oneshot::Sender<()>),
}

pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<LaneMsg>) {
    while let Some(m) = rx.recv().await {
        match m {
            LaneMsg::Marker(tx) => {
                let _ = tx.send(());
            }
            LaneMsg::Batch(b) => {
                let fate = delivery::deliver(&shared, &b).await;
                shared.settle(&b, fate);
                b.lane.queued.fetch_sub(1, Relaxed);
            }
        }
    }
}
