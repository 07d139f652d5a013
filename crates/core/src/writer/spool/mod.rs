//! The disk spool: one input's undelivered batches, in order, on disk.
//!
//! The format and its invariants in short: `docs/design.md`, "Spool"; in full
//! below.
//!
//! When DataKit cannot take data (down, hung, 5xx, 429) or memory is full,
//! the writer appends encoded batches here and replays them, oldest first,
//! once DataKit answers again — also after pythond restarts. Delivery is
//! at-least-once: a batch acknowledged by DataKit but not yet marked consumed
//! when the process died is sent again.
//!
//! # On-disk format
//!
//! A spool is a directory (mode 0700) of segment files `NNNNNNNNNNNNNNNNNNNN.seg`
//! (20-digit sequence numbers, mode 0600), a `cursor` file and a `lock` file.
//! A segment is a sequence of records ([`segment`]):
//!
//! ```text
//! magic u32 LE (0x5059_4431, "PYD1") | len u32 LE | crc32(payload) u32 LE | payload (len bytes)
//! ```
//!
//! Records are only appended, to the newest segment; a segment past
//! `segment_bytes` is closed (fsynced) and a new one started. `cursor` holds
//! `"<segment seq> <offset>\n"`: everything before it has been consumed. It is
//! replaced atomically (temp file, rename) after each consumed record.
//!
//! # Invariants and recovery
//!
//! - Records are read in the order they were appended. Each has a
//!   [`RecordId`] (segment, offset): [`Spool::pop`] consumes the record it
//!   names, never another one, so a record deleted by the size bound while it
//!   was being sent cannot make a later, unsent record disappear.
//! - One process at a time: [`Spool::open`] takes an exclusive `flock` on
//!   `lock` (waiting a few seconds, for a previous worker that is still
//!   shutting down).
//! - On open every segment is scanned. A record whose header or checksum does
//!   not hold (a write torn by `kill -9`, a truncated file) ends that segment:
//!   the rest of it is skipped and counted, and, for the newest segment, the
//!   file is truncated there so that new records follow valid ones.
//! - The spool never holds more than `max_bytes` of segments (plus the one
//!   being written): past it, the oldest segments are deleted whole, their
//!   records counted as dropped and logged. Never silently.
//! - Data reaches the OS on every append (one `write`); it is fsynced when a
//!   segment is closed and on [`Spool::sync`]. A crash of the process loses
//!   nothing written; a crash of the machine may lose the newest records.
//!
//! All operations block on disk I/O: the writer runs them on a thread of
//! their own (`writer/spooler.rs`), never on its async runtime. File operations go through [`io::SpoolIo`], so tests inject faults.

pub mod io;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use io::{FsIo, SegmentFile, SpoolIo};
pub use segment::MAX_RECORD;
use segment::{frame, scan, seg_path, seg_seq, HEADER};

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool {path} is in use by another process (lock held after {waited_secs}s)")]
    Locked { path: PathBuf, waited_secs: u64 },
    #[error("spool record of {0} bytes is larger than the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Sizes of a spool.
#[derive(Debug, Clone, Copy)]
pub struct SpoolLimits {
    pub max_bytes: u64,
    pub segment_bytes: u64,
    /// How long [`Spool::open`] waits for another process to release the spool.
    pub lock_wait: Duration,
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: 512 << 20,
            segment_bytes: 8 << 20,
            lock_wait: Duration::from_secs(10),
        }
    }
}

/// Counters of a spool's life since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpoolStats {
    pub records: u64,
    pub bytes: u64,
    pub appended: u64,
    pub consumed: u64,
    /// Records deleted because the spool reached `max_bytes`.
    pub dropped_records: u64,
    pub dropped_bytes: u64,
    /// Torn or corrupt records skipped at open.
    pub corrupt_skipped: u64,
    /// The sum of the weights of the records held (for the writer: points).
    pub weight: u64,
    /// The weight of the records the size bound dropped.
    pub dropped_weight: u64,
}

/// Where a record is: its segment and offset. Orders as the records do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    seq: u64,
    offset: u64,
}

/// The oldest record, as [`Spool::front`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: RecordId,
    pub payload: Vec<u8>,
}

/// What [`Spool::pop`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// The record was consumed.
    Consumed,
    /// The record was no longer there: the size bound had deleted it (and
    /// counted it as dropped) while it was being sent.
    Gone,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Offsets and lengths (whole record, header included) of its valid records.
    records: VecDeque<(u64, u64)>,
    /// The weight of each record, in the same order.
    weights: VecDeque<u64>,
    bytes: u64,
}

struct Inner {
    limits: SpoolLimits,
    /// Oldest first. Consumed records are popped from the front one.
    segments: VecDeque<Segment>,
    writer: Option<(u64, Box<dyn SegmentFile>)>,
    /// Sequence numbers are never reused: the cursor may name a deleted one.
    next_seq: u64,
    stats: SpoolStats,
}

/// How much a record counts (the writer: its points), read back from the
/// record itself when the spool is reopened.
pub type Weigh = Box<dyn Fn(&[u8]) -> u64 + Send + Sync>;

/// A durable FIFO of byte records. Thread-safe; operations block on disk I/O.
pub struct Spool {
    dir: PathBuf,
    io: Arc<dyn SpoolIo>,
    weigh: Weigh,
    inner: Mutex<Inner>,
    _lock: Box<dyn Send + Sync>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

impl Spool {
    /// Open (or create) the spool in `dir`, recovering what is there.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        Spool::open_with(Arc::new(FsIo), dir, limits)
    }

    /// [`Spool::open`], each record weighing what `weigh` says (see
    /// [`SpoolStats::weight`]).
    pub fn open_weighed(
        dir: &Path,
        limits: SpoolLimits,
        weigh: Weigh,
    ) -> Result<Spool, SpoolError> {
        Spool::open_weighed_with(Arc::new(FsIo), dir, limits, weigh)
    }

    /// [`Spool::open`] through `io`.
    pub fn open_with(
        io: Arc<dyn SpoolIo>,
        dir: &Path,
        limits: SpoolLimits,
    ) -> Result<Spool, SpoolError> {
        Spool::open_weighed_with(io, dir, limits, Box::new(|_| 1))
    }

    /// [`Spool::open_weighed`] through `io`.
    pub fn open_weighed_with(
        io: Arc<dyn SpoolIo>,
        dir: &Path,
        limits: SpoolLimits,
        weigh: Weigh,
    ) -> Result<Spool, SpoolError> {
        io.create_dir(dir).map_err(io_err(dir))?;
        let lock = io.lock(dir, limits.lock_wait).map_err(|e| {
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                SpoolError::Locked {
                    path: dir.to_owned(),
                    waited_secs: limits.lock_wait.as_secs(),
                }
            } else {
                io_err(dir)(e)
            }
        })?;
        let mut seqs: Vec<u64> = io
            .list(dir)
            .map_err(io_err(dir))?
            .iter()
            .filter_map(|n| seg_seq(n))
            .collect();
        seqs.sort_unstable();
        let (cur_seq, cur_off) = read_cursor(io.as_ref(), dir);
        let mut stats = SpoolStats::default();
        let mut segments = VecDeque::new();
        let newest = seqs.last().copied();
        let next_seq = newest.unwrap_or(0).max(cur_seq) + 1;
        for seq in seqs {
            let path = seg_path(dir, seq);
            if seq < cur_seq {
                let _ = io.remove(&path);
                continue;
            }
            let data = io.read(&path).map_err(io_err(&path))?;
            let mut s = scan(&data);
            if s.torn > 0 {
                stats.corrupt_skipped += 1;
                tracing::warn!(
                    segment = %path.display(),
                    offset = s.valid_end,
                    skipped_bytes = s.torn,
                    "spool: torn or corrupt record skipped"
                );
                if Some(seq) == newest {
                    io.truncate(&path, s.valid_end).map_err(io_err(&path))?;
                }
            }
            if seq == cur_seq {
                while s.records.front().is_some_and(|(o, _)| *o < cur_off) {
                    s.records.pop_front();
                }
            }
            let bytes = s.records.iter().map(|(_, l)| l).sum();
            let weights: VecDeque<u64> = s
                .records
                .iter()
                .map(|(o, l)| weigh(&data[(*o as usize + HEADER)..(*o + *l) as usize]))
                .collect();
            stats.records += s.records.len() as u64;
            stats.bytes += bytes;
            stats.weight += weights.iter().sum::<u64>();
            segments.push_back(Segment {
                seq,
                records: s.records,
                weights,
                bytes,
            });
        }
        Ok(Spool {
            dir: dir.to_owned(),
            io,
            weigh,
            inner: Mutex::new(Inner {
                limits,
                segments,
                writer: None,
                next_seq,
                stats,
            }),
            _lock: lock,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory this spool lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one record at the back, weighing what the spool's weigher says
    /// of it.
    pub fn push(&self, payload: &[u8]) -> Result<RecordId, SpoolError> {
        self.push_weighed(payload, (self.weigh)(payload))
    }

    /// Append one record at the back with a known weight (which must be what
    /// the weigher would say, for reopening).
    pub fn push_weighed(&self, payload: &[u8], weight: u64) -> Result<RecordId, SpoolError> {
        if payload.len() > MAX_RECORD {
            return Err(SpoolError::TooLarge(payload.len()));
        }
        let mut g = self.lock();
        let inner = &mut *g;
        let rec_len = (HEADER + payload.len()) as u64;
        let seg_limit = inner.limits.segment_bytes;
        let full = |seg: &Segment| seg.bytes > 0 && seg.bytes + rec_len > seg_limit;
        let rotate = match (&inner.writer, inner.segments.back()) {
            (Some(_), Some(last)) => full(last),
            (Some(_), None) => true,
            // Just opened: continue the newest segment if it has room.
            (None, _) => true,
        };
        if rotate {
            let fresh = inner.writer.is_none();
            if let Some((_, mut f)) = inner.writer.take() {
                let _ = f.sync();
            }
            let seq = match inner.segments.back() {
                Some(last) if fresh && !full(last) => last.seq,
                _ => {
                    let seq = inner.next_seq;
                    inner.next_seq += 1;
                    inner.segments.push_back(Segment {
                        seq,
                        records: VecDeque::new(),
                        weights: VecDeque::new(),
                        bytes: 0,
                    });
                    seq
                }
            };
            let path = seg_path(&self.dir, seq);
            let f = self.io.open_append(&path).map_err(io_err(&path))?;
            inner.writer = Some((seq, f));
        }
        let (seq, file) = inner.writer.as_mut().expect("writer opened above");
        let path = seg_path(&self.dir, *seq);
        let offset = file.end().map_err(io_err(&path))?;
        if let Err(e) = file.append(&frame(payload)) {
            // What reached the file may be a prefix of the record: a new
            // segment is started for the next one, and open() skips the tail.
            inner.writer = None;
            return Err(io_err(&path)(e));
        }
        let seg = inner.segments.back_mut().expect("segment pushed above");
        seg.records.push_back((offset, rec_len));
        seg.weights.push_back(weight);
        seg.bytes += rec_len;
        inner.stats.weight += weight;
        inner.stats.records += 1;
        inner.stats.bytes += rec_len;
        inner.stats.appended += 1;
        let id = RecordId { seq: *seq, offset };
        self.enforce_bound(inner);
        Ok(id)
    }

    /// The oldest record, if any (not removed: see [`Spool::pop`]).
    pub fn front(&self) -> Result<Option<Record>, SpoolError> {
        let g = self.lock();
        let Some(seg) = g.segments.iter().find(|s| !s.records.is_empty()) else {
            return Ok(None);
        };
        let (off, len) = *seg.records.front().expect("non-empty");
        let path = seg_path(&self.dir, seg.seq);
        let payload = self
            .io
            .read_at(&path, off + HEADER as u64, len as usize - HEADER)
            .map_err(io_err(&path))?;
        Ok(Some(Record {
            id: RecordId {
                seq: seg.seq,
                offset: off,
            },
            payload,
        }))
    }

    /// Mark the record `id` (from [`Spool::front`]) consumed.
    pub fn pop(&self, id: RecordId) -> Result<Popped, SpoolError> {
        let mut g = self.lock();
        let inner = &mut *g;
        let writing = inner.writer.as_ref().map(|w| w.0);
        let Some(seg) = inner.segments.iter_mut().find(|s| !s.records.is_empty()) else {
            return Ok(Popped::Gone);
        };
        let (off, len) = *seg.records.front().expect("non-empty");
        if (RecordId {
            seq: seg.seq,
            offset: off,
        }) != id
        {
            // Records are never reordered: a front other than `id` means
            // `id` was deleted by the bound.
            debug_assert!(
                id < RecordId {
                    seq: seg.seq,
                    offset: off
                },
                "pop of a record not yet at the front"
            );
            return Ok(Popped::Gone);
        }
        seg.records.pop_front();
        let weight = seg.weights.pop_front().unwrap_or(0);
        seg.bytes -= len;
        inner.stats.weight -= weight;
        let done = seg.records.is_empty() && Some(seg.seq) != writing;
        inner.stats.records -= 1;
        inner.stats.bytes -= len;
        inner.stats.consumed += 1;
        write_cursor(self.io.as_ref(), &self.dir, id.seq, off + len)?;
        if done {
            // A fully consumed segment that is not being written is deleted,
            // with any empty ones before it.
            while inner
                .segments
                .front()
                .is_some_and(|s| s.records.is_empty() && Some(s.seq) != writing)
            {
                let s = inner.segments.pop_front().expect("checked");
                let _ = self.io.remove(&seg_path(&self.dir, s.seq));
            }
        }
        Ok(Popped::Consumed)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().stats.records == 0
    }

    pub fn stats(&self) -> SpoolStats {
        self.lock().stats
    }

    /// Flush the segment being written to disk.
    pub fn sync(&self) -> Result<(), SpoolError> {
        let mut g = self.lock();
        if let Some((seq, f)) = g.writer.as_mut() {
            let seq = *seq;
            f.sync().map_err(io_err(&seg_path(&self.dir, seq)))?;
        }
        Ok(())
    }

    /// Delete oldest segments while the spool is over its bound, keeping at
    /// least the segment being written.
    fn enforce_bound(&self, inner: &mut Inner) {
        while inner.stats.bytes > inner.limits.max_bytes && inner.segments.len() > 1 {
            let s = inner.segments.pop_front().expect("len > 1");
            let n = s.records.len() as u64;
            let w: u64 = s.weights.iter().sum();
            inner.stats.weight -= w;
            inner.stats.dropped_weight += w;
            inner.stats.records -= n;
            inner.stats.bytes -= s.bytes;
            inner.stats.dropped_records += n;
            inner.stats.dropped_bytes += s.bytes;
            let _ = self.io.remove(&seg_path(&self.dir, s.seq));
            tracing::error!(
                target: "pythond::writer",
                dropped_records = n,
                dropped_bytes = s.bytes,
                // The weight: points, in the writer's spool.
                dropped_points = w,
                max_bytes = inner.limits.max_bytes,
                "spool full: oldest undelivered data dropped"
            );
        }
    }
}

fn read_cursor(io: &dyn SpoolIo, dir: &Path) -> (u64, u64) {
    let Ok(data) = io.read(&dir.join("cursor")) else {
        return (0, 0);
    };
    let text = String::from_utf8_lossy(&data);
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(seq)), Some(Ok(off))) => (seq, off),
        _ => (0, 0),
    }
}

fn write_cursor(io: &dyn SpoolIo, dir: &Path, seq: u64, offset: u64) -> Result<(), SpoolError> {
    let path = dir.join("cursor");
    io.write_atomic(&path, format!("{seq} {offset}\n").as_bytes())
        .map_err(io_err(&path))
}
