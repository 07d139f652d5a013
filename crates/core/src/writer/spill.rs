//! The writer's side of the spool: how a batch becomes a spool record and
//! back, the "spooling" state that makes new batches queue behind data
//! already on disk (so order is kept across an outage), and the records
//! whose copy in the spool must be skipped because their late attempt
//! succeeded after all.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::spool::{RecordId, Spool};
use super::{Batch, Shared};
use crate::point::Category;
use crate::route::{Route, WriteQuery};
use crate::target::Target;

/// The spool and whether the input currently routes through it.
pub(super) struct SpoolState {
    pub spool: Spool,
    /// True while spooled data waits: new batches must queue behind it.
    /// Changed only together with the spool's content (under this lock).
    pub active: Mutex<bool>,
    pub wake: Notify,
    /// Spooled records DataKit took anyway (a late answer to the attempt
    /// that was still going when the batch was spilled): not sent again.
    pub delivered: Mutex<HashSet<RecordId>>,
}

impl SpoolState {
    pub fn new(spool: Spool) -> SpoolState {
        SpoolState {
            active: Mutex::new(!spool.is_empty()),
            spool,
            wake: Notify::new(),
            delivered: Mutex::new(HashSet::new()),
        }
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

/// The JSON line in front of every spooled body. Its form is on disk: keep
/// it readable by older versions' fields.
#[derive(serde::Serialize, serde::Deserialize)]
struct SpoolHeader {
    target: Option<Target>,
    category: String,
    query: WriteQuery,
    points: u64,
}

/// A batch as a spool record: header line, then the body.
pub(super) fn encode_record(route: &Route, points: u64, body: &[u8]) -> Vec<u8> {
    let header = SpoolHeader {
        target: route.target.clone(),
        category: route.category.as_str().to_owned(),
        query: route.query.clone(),
        points,
    };
    let mut rec = serde_json::to_vec(&header).expect("header serializes");
    rec.push(b'\n');
    rec.extend_from_slice(body);
    rec
}

/// A spool record back into its route, point count and body; `None` if the
/// record cannot be read (it is then skipped and logged).
pub(super) fn decode_record(rec: &[u8]) -> Option<(Route, u64, &[u8])> {
    let split = rec.iter().position(|b| *b == b'\n')?;
    let header: SpoolHeader = serde_json::from_slice(&rec[..split]).ok()?;
    let category = Category::from_name(&header.category)?;
    let route = Route {
        target: header.target,
        category,
        query: header.query,
    };
    Some((route, header.points, &rec[split + 1..]))
}

/// Open the spool of a writer: its records weigh their points, so the
/// spool's stats count points waiting and points dropped.
pub fn open_spool(
    dir: &std::path::Path,
    limits: super::spool::SpoolLimits,
) -> Result<Spool, super::spool::SpoolError> {
    Spool::open_weighed(
        dir,
        limits,
        Box::new(|rec| decode_record(rec).map(|(_, p, _)| p).unwrap_or(0)),
    )
}

impl Shared {
    /// Put a batch in the spool (on the blocking pool): its record, or
    /// `None` if there is no spool or the write failed (logged).
    pub(super) async fn spill(&self, b: &Batch) -> Option<RecordId> {
        let s = self.spool.clone()?;
        let rec = encode_record(&b.route, b.points, &b.body);
        let points = b.points;
        let s2 = s.clone();
        let pushed = tokio::task::spawn_blocking(move || {
            let mut active = s2.active.lock().unwrap_or_else(|e| e.into_inner());
            let r = s2.spool.push_weighed(&rec, points);
            if r.is_ok() {
                *active = true;
            }
            r
        })
        .await;
        match pushed {
            Ok(Ok(id)) => {
                self.counters.points_spooled.fetch_add(b.points, Relaxed);
                s.wake.notify_one();
                Some(id)
            }
            Ok(Err(e)) => {
                tracing::error!(target: "pythond::writer", input = self.input_for(&b.route), "spool: {e}");
                None
            }
            Err(e) => {
                tracing::error!(target: "pythond::writer", "spool task failed: {e}");
                None
            }
        }
    }

    /// Spool the batch, or (no spool, or the spool failed) count it dropped.
    pub(super) async fn spill_or_drop(&self, b: &Batch) {
        if self.spill(b).await.is_none() {
            self.counters.dropped_shutdown.fetch_add(b.points, Relaxed);
        }
    }

    /// While spooled data waits, new batches queue behind it on disk.
    pub(super) fn spooling(&self) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| *s.active.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Spool operations for the async side, each on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    s: &Arc<SpoolState>,
    f: impl FnOnce(&SpoolState) -> T + Send + 'static,
) -> Option<T> {
    let s = s.clone();
    tokio::task::spawn_blocking(move || f(&s)).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_to_the_route_count_and_body_it_was_made_of() {
        let route = Route {
            target: Some(Target::Unix("/run/dk.sock".into())),
            category: Category::Logging,
            query: WriteQuery {
                input: Some("in put".into()),
                ..WriteQuery::default()
            },
        };
        let rec = encode_record(&route, 3, b"a x=1i 1\nb x=2i 2\n");
        let (r, n, body) = decode_record(&rec).unwrap();
        assert_eq!((r, n, body), (route, 3, &b"a x=1i 1\nb x=2i 2\n"[..]));
        assert!(decode_record(b"not json\nbody").is_none());
    }
}
