//! The writer's side of the spool: how a batch becomes a spool record and
//! back, and spilling a batch (through the spool thread, [`super::spooler`]).
//! Once a batch of a route is spooled the route is "spooling": its new
//! batches queue behind its data already on disk until the spool has been
//! drained, so order is kept across an outage. Other routes go on sending
//! (behind data recovered at open, every route queues).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::spool::{io::SpoolIo, RecordId, Spool, SpoolError, SpoolLimits};
use super::{Batch, Shared};
use crate::point::Category;
use crate::route::{Route, WriteQuery};
use crate::target::Target;

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
pub fn open_spool(dir: &std::path::Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
    open_spool_with(Arc::new(super::spool::io::FsIo), dir, limits)
}

/// [`open_spool`] through `io` (tests inject slow or failing disks).
pub fn open_spool_with(
    io: Arc<dyn SpoolIo>,
    dir: &std::path::Path,
    limits: SpoolLimits,
) -> Result<Spool, SpoolError> {
    Spool::open_weighed_with(
        io,
        dir,
        limits,
        Box::new(|rec| decode_record(rec).map(|(_, p, _)| p).unwrap_or(0)),
    )
}

impl Shared {
    /// Put a batch in the spool: its record, or `None` if there is no spool
    /// or the write failed (logged) or the spool is closed. A batch written
    /// is counted spooled right there, on the spool thread (its fate is then
    /// [`Fate::Spooled`](super::Fate::Spooled), which counts nothing more);
    /// otherwise its points are still the caller's to settle.
    pub(super) async fn spill(&self, b: &Batch) -> Option<RecordId> {
        let s = self.spool.as_ref()?;
        let rec = encode_record(&b.route, b.points, &b.body);
        let (c, points, bytes) = (self.counters.clone(), b.points, b.body.len() as u64);
        let counted = move || {
            if c.settle(points, bytes) {
                c.points_spooled.fetch_add(points, Relaxed);
            }
        };
        match s.push(rec, b.points, counted).await {
            Ok((id, epoch)) => {
                b.lane.spooled_in.store(epoch, Relaxed);
                Some(id)
            }
            Err(super::spooler::SpoolOpError::Closed) => None,
            Err(e) => {
                tracing::error!(target: "pythond::writer", input = self.input_for(&b.route), "spool: {e}");
                None
            }
        }
    }

    /// Spool the batch, or (no spool, or the spool failed) drop it: its fate.
    pub(super) async fn spill_or_drop(&self, b: &Batch) -> super::Fate {
        match self.spill(b).await {
            Some(_) => super::Fate::Spooled,
            None => super::Fate::DroppedShutdown,
        }
    }

    /// While data of the lane's route waits on disk, its new batches queue
    /// behind it there.
    pub(super) fn spooling(&self, lane: &LaneState) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| s.spooling(lane.spooled()))
    }
}

/// What a lane's route has done with the spool, shared by the dispatcher
/// (which keeps a spooling route's lane) and the lane.
#[derive(Debug)]
pub(super) struct LaneState {
    /// The spool epoch of the route's last append ([`NEVER`]: none).
    spooled_in: AtomicU64,
    /// Batches handed to the lane and not yet done with.
    pub queued: AtomicU64,
}

const NEVER: u64 = u64::MAX;

impl Default for LaneState {
    fn default() -> Self {
        LaneState {
            spooled_in: AtomicU64::new(NEVER),
            queued: AtomicU64::new(0),
        }
    }
}

impl LaneState {
    fn spooled(&self) -> Option<u64> {
        Some(self.spooled_in.load(Relaxed)).filter(|e| *e != NEVER)
    }
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
