//! The disk spool: one input's undelivered batches, in order, on disk.
//!
//! When DataKit cannot take data (down, 5xx, 429) or memory is full, the
//! writer appends encoded batches here and replays them, oldest first, once
//! DataKit answers again — also after the daemon restarts. Delivery is
//! at-least-once: a batch acknowledged by DataKit but not yet marked consumed
//! when the process died is sent again.
//!
//! # On-disk format
//!
//! A spool is a directory (mode 0700) of segment files `NNNNNNNNNNNNNNNNNNNN.seg`
//! (20-digit sequence numbers, mode 0600) and a `cursor` file. A segment is a
//! sequence of records:
//!
//! ```text
//! magic u32 LE (0x5059_4431, "PYD1") | len u32 LE | crc32(payload) u32 LE | payload (len bytes)
//! ```
//!
//! Records are only appended, to the newest segment; a segment past
//! `segment_bytes` is closed and a new one started. `cursor` holds
//! `"<segment seq> <offset>\n"`: everything before it has been consumed. It is
//! rewritten (write to a temp file, rename) after each consumed record.
//!
//! # Invariants and recovery
//!
//! - Records are read in the order they were appended.
//! - On open every segment is scanned. A record whose header or checksum does
//!   not hold (a write torn by `kill -9`, a truncated file) ends that segment:
//!   the rest of it is skipped and counted, and, for the newest segment, the
//!   file is truncated there so that new records follow valid ones.
//! - The spool never holds more than `max_bytes` of segments (plus the one
//!   record being appended): past it, the oldest segments are deleted whole,
//!   their records counted as dropped and logged. Never silently.
//! - Data reaches the OS on every append (one `write`); it is fsynced when a
//!   segment is closed. A crash of the process loses nothing written; a crash
//!   of the machine may lose the newest records.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: u32 = 0x5059_4431;
const HEADER: usize = 12;
/// A single record larger than this is refused (a corrupt length field would
/// otherwise make recovery allocate gigabytes).
pub const MAX_RECORD: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool record of {0} bytes is larger than the {MAX_RECORD}-byte limit")]
    TooLarge(usize),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
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
}

impl Default for SpoolLimits {
    fn default() -> Self {
        SpoolLimits {
            max_bytes: 512 << 20,
            segment_bytes: 8 << 20,
        }
    }
}

/// Counters of a spool's life since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// Offsets and lengths (whole record, header included) of its valid records.
    records: VecDeque<(u64, u64)>,
    bytes: u64,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    limits: SpoolLimits,
    /// Oldest first. Consumed records are popped from the front one.
    segments: VecDeque<Segment>,
    writer: Option<(u64, File)>,
    /// Sequence numbers are never reused: the cursor may name a deleted one.
    next_seq: u64,
    stats: SpoolStats,
}

/// A durable FIFO of byte records. Thread-safe; operations block on disk I/O.
#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn private_file(path: &Path, append: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).mode(0o600);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.open(path)
}

/// A scanned segment: its valid records (offset, length), the offset where
/// validity ends, and the number of bytes after it.
type Scan = (VecDeque<(u64, u64)>, u64, u64);

fn scan(path: &Path) -> io::Result<Scan> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut records = VecDeque::new();
    let mut off = 0usize;
    while off + HEADER <= data.len() {
        let word = |i: usize| u32::from_le_bytes(data[off + i..off + i + 4].try_into().unwrap());
        let (magic, len, crc) = (word(0), word(4) as usize, word(8));
        if magic != MAGIC || len > MAX_RECORD || off + HEADER + len > data.len() {
            break;
        }
        let payload = &data[off + HEADER..off + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        records.push_back((off as u64, (HEADER + len) as u64));
        off += HEADER + len;
    }
    Ok((records, off as u64, (data.len() - off) as u64))
}

impl Spool {
    /// Open (or create) the spool in `dir`, recovering what is there.
    pub fn open(dir: &Path, limits: SpoolLimits) -> Result<Spool, SpoolError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err(dir))?;
        let mut seqs: Vec<u64> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        let (cur_seq, cur_off) = read_cursor(dir);
        let mut stats = SpoolStats::default();
        let mut segments = VecDeque::new();
        let newest = seqs.last().copied();
        let next_seq = newest.unwrap_or(0).max(cur_seq) + 1;
        for seq in seqs {
            let path = seg_path(dir, seq);
            if seq < cur_seq {
                let _ = fs::remove_file(&path);
                continue;
            }
            let (mut records, valid_end, torn) = scan(&path).map_err(io_err(&path))?;
            if torn > 0 {
                stats.corrupt_skipped += 1;
                tracing::warn!(
                    segment = %path.display(),
                    offset = valid_end,
                    skipped_bytes = torn,
                    "spool: torn or corrupt record skipped"
                );
                if Some(seq) == newest {
                    OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|f| f.set_len(valid_end))
                        .map_err(io_err(&path))?;
                }
            }
            if seq == cur_seq {
                while records.front().is_some_and(|(o, _)| *o < cur_off) {
                    records.pop_front();
                }
            }
            let bytes = records.iter().map(|(_, l)| l).sum();
            stats.records += records.len() as u64;
            stats.bytes += bytes;
            segments.push_back(Segment {
                seq,
                records,
                bytes,
            });
        }
        Ok(Spool {
            inner: Mutex::new(Inner {
                dir: dir.to_owned(),
                limits,
                segments,
                writer: None,
                next_seq,
                stats,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append one record at the back.
    pub fn push(&self, payload: &[u8]) -> Result<(), SpoolError> {
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
            if let Some((_, f)) = inner.writer.take() {
                let _ = f.sync_all();
            }
            let seq = match inner.segments.back() {
                Some(last) if fresh && !full(last) => last.seq,
                _ => {
                    let seq = inner.next_seq;
                    inner.next_seq += 1;
                    inner.segments.push_back(Segment {
                        seq,
                        records: VecDeque::new(),
                        bytes: 0,
                    });
                    seq
                }
            };
            let path = seg_path(&inner.dir, seq);
            let f = private_file(&path, true).map_err(io_err(&path))?;
            inner.writer = Some((seq, f));
        }
        let (seq, file) = inner.writer.as_mut().expect("writer opened above");
        let path = seg_path(&inner.dir, *seq);
        let offset = file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
        let mut buf = Vec::with_capacity(HEADER + payload.len());
        buf.extend_from_slice(&MAGIC.to_le_bytes());
        buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        buf.extend_from_slice(payload);
        file.write_all(&buf).map_err(io_err(&path))?;
        let seg = inner.segments.back_mut().expect("segment pushed above");
        seg.records.push_back((offset, rec_len));
        seg.bytes += rec_len;
        inner.stats.records += 1;
        inner.stats.bytes += rec_len;
        inner.stats.appended += 1;
        enforce_bound(inner);
        Ok(())
    }

    /// The oldest record, if any (not removed: see [`Spool::pop`]).
    pub fn front(&self) -> Result<Option<Vec<u8>>, SpoolError> {
        let g = self.lock();
        let Some(seg) = g.segments.iter().find(|s| !s.records.is_empty()) else {
            return Ok(None);
        };
        let (off, len) = *seg.records.front().expect("non-empty");
        let path = seg_path(&g.dir, seg.seq);
        let mut f = File::open(&path).map_err(io_err(&path))?;
        f.seek(SeekFrom::Start(off + HEADER as u64))
            .map_err(io_err(&path))?;
        let mut payload = vec![0u8; len as usize - HEADER];
        f.read_exact(&mut payload).map_err(io_err(&path))?;
        Ok(Some(payload))
    }

    /// Mark the oldest record consumed.
    pub fn pop(&self) -> Result<(), SpoolError> {
        let mut g = self.lock();
        let inner = &mut *g;
        while inner.segments.front().is_some_and(|s| {
            s.records.is_empty() && Some(s.seq) != inner.writer.as_ref().map(|w| w.0)
        }) {
            let s = inner.segments.pop_front().expect("checked");
            let _ = fs::remove_file(seg_path(&inner.dir, s.seq));
        }
        let Some(seg) = inner.segments.iter_mut().find(|s| !s.records.is_empty()) else {
            return Ok(());
        };
        let (off, len) = seg.records.pop_front().expect("non-empty");
        seg.bytes -= len;
        let (seq, next) = (seg.seq, off + len);
        inner.stats.records -= 1;
        inner.stats.bytes -= len;
        inner.stats.consumed += 1;
        write_cursor(&inner.dir, seq, next)?;
        // A fully consumed segment that is not being written is deleted.
        if seg_is_done(inner, seq) {
            let idx = inner
                .segments
                .iter()
                .position(|s| s.seq == seq)
                .expect("present");
            inner.segments.remove(idx);
            let _ = fs::remove_file(seg_path(&inner.dir, seq));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().stats.records == 0
    }

    pub fn stats(&self) -> SpoolStats {
        self.lock().stats
    }

    /// Flush the segment being written to disk.
    pub fn sync(&self) -> Result<(), SpoolError> {
        let g = self.lock();
        if let Some((seq, f)) = &g.writer {
            f.sync_all().map_err(io_err(&seg_path(&g.dir, *seq)))?;
        }
        Ok(())
    }
}

fn seg_is_done(inner: &Inner, seq: u64) -> bool {
    let writing = inner.writer.as_ref().is_some_and(|w| w.0 == seq);
    !writing
        && inner
            .segments
            .iter()
            .find(|s| s.seq == seq)
            .is_some_and(|s| s.records.is_empty())
}

/// Delete oldest segments while the spool is over its bound, keeping at
/// least the segment being written.
fn enforce_bound(inner: &mut Inner) {
    while inner.stats.bytes > inner.limits.max_bytes && inner.segments.len() > 1 {
        let s = inner.segments.pop_front().expect("len > 1");
        let n = s.records.len() as u64;
        inner.stats.records -= n;
        inner.stats.bytes -= s.bytes;
        inner.stats.dropped_records += n;
        inner.stats.dropped_bytes += s.bytes;
        let _ = fs::remove_file(seg_path(&inner.dir, s.seq));
        tracing::error!(
            target: "pythond::writer",
            dropped_records = n,
            dropped_bytes = s.bytes,
            max_bytes = inner.limits.max_bytes,
            "spool full: oldest undelivered data dropped"
        );
    }
}

fn read_cursor(dir: &Path) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(dir.join("cursor")) else {
        return (0, 0);
    };
    let mut it = text.split_whitespace().map(|w| w.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(seq)), Some(Ok(off))) => (seq, off),
        _ => (0, 0),
    }
}

fn write_cursor(dir: &Path, seq: u64, offset: u64) -> Result<(), SpoolError> {
    let tmp = dir.join("cursor.tmp");
    let mut f = private_file(&tmp, false).map_err(io_err(&tmp))?;
    writeln!(f, "{seq} {offset}").map_err(io_err(&tmp))?;
    drop(f);
    let dst = dir.join("cursor");
    fs::rename(&tmp, &dst).map_err(io_err(&dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;

    fn limits(max: u64, seg: u64) -> SpoolLimits {
        SpoolLimits {
            max_bytes: max,
            segment_bytes: seg,
        }
    }

    fn drain(s: &Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = s.front().unwrap() {
            out.push(r);
            s.pop().unwrap();
        }
        out
    }

    fn recs(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("record-{i:04}").into_bytes())
            .collect()
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn records_come_back_in_order_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), limits(1 << 20, 64)).unwrap();
        for r in recs(20) {
            s.push(&r).unwrap();
        }
        assert!(segments(dir.path()).len() > 3, "small segments rotate");
        assert_eq!(drain(&s), recs(20));
        assert!(s.is_empty());
        assert!(
            segments(dir.path()).len() <= 1,
            "consumed segments are deleted"
        );
    }

    #[test]
    fn reopen_replays_what_was_not_consumed_and_not_what_was() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), limits(1 << 20, 100)).unwrap();
            for r in recs(10) {
                s.push(&r).unwrap();
            }
            for _ in 0..4 {
                s.pop().unwrap();
            }
        }
        let s = Spool::open(dir.path(), limits(1 << 20, 100)).unwrap();
        assert_eq!(s.stats().records, 6);
        s.push(b"after-restart").unwrap();
        let mut want = recs(10)[4..].to_vec();
        want.push(b"after-restart".to_vec());
        assert_eq!(drain(&s), want);
    }

    #[test]
    fn torn_tail_is_skipped_and_new_records_follow_valid_ones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap();
            for r in recs(3) {
                s.push(&r).unwrap();
            }
        }
        // A record cut short, as kill -9 in the middle of write() leaves it.
        let seg = segments(dir.path()).pop().unwrap();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&MAGIC.to_le_bytes()).unwrap();
        f.write_all(&100u32.to_le_bytes()).unwrap();
        f.write_all(b"\0\0\0\0partial").unwrap();
        drop(f);
        let s = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap();
        assert_eq!(s.stats().corrupt_skipped, 1);
        assert_eq!(s.stats().records, 3);
        s.push(b"new").unwrap();
        let mut want = recs(3);
        want.push(b"new".to_vec());
        assert_eq!(drain(&s), want);
    }

    #[test]
    fn checksum_mismatch_ends_that_segment_only() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(dir.path(), limits(1 << 20, 60)).unwrap();
            for r in recs(8) {
                s.push(&r).unwrap();
            }
        }
        let first = segments(dir.path()).remove(0);
        let mut data = fs::read(&first).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff; // flip a payload byte of the segment's last record
        fs::write(&first, &data).unwrap();
        let s = Spool::open(dir.path(), limits(1 << 20, 60)).unwrap();
        assert_eq!(s.stats().corrupt_skipped, 1);
        let got = drain(&s);
        assert_eq!(got.len(), 7, "one record lost, the rest kept: {got:?}");
        let lost = (0..8).find(|i| !got.contains(&recs(8)[*i])).unwrap();
        let mut want = recs(8);
        want.remove(lost);
        assert_eq!(got, want, "the others keep their order");
    }

    #[test]
    fn past_the_bound_oldest_segments_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(dir.path(), limits(200, 50)).unwrap();
        for r in recs(40) {
            s.push(&r).unwrap();
        }
        let st = s.stats();
        assert!(st.dropped_records > 0);
        assert!(st.bytes <= 200 + 50, "{st:?}");
        assert_eq!(st.records + st.dropped_records, 40);
        let got = drain(&s);
        assert_eq!(got.last().unwrap(), &recs(40)[39], "newest kept");
        let first_kept: usize = String::from_utf8_lossy(&got[0])[7..].parse().unwrap();
        assert_eq!(
            got,
            recs(40)[first_kept..].to_vec(),
            "a contiguous newest run is kept"
        );
    }

    #[test]
    fn files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let sp = dir.path().join("spool");
        let s = Spool::open(&sp, SpoolLimits::default()).unwrap();
        s.push(b"x").unwrap();
        s.pop().unwrap();
        s.push(b"y").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&sp), 0o700);
        for p in segments(&sp) {
            assert_eq!(mode(&p), 0o600);
        }
        assert_eq!(mode(&sp.join("cursor")), 0o600);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u8>),
        Pop,
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Push),
            3 => Just(Op::Pop),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The spool behaves as a FIFO queue across pops, rotations and reopens.
        #[test]
        fn behaves_like_a_queue(ops in proptest::collection::vec(op(), 1..60)) {
            let dir = tempfile::tempdir().unwrap();
            let lim = limits(1 << 30, 80);
            let mut s = Spool::open(dir.path(), lim).unwrap();
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            for op in ops {
                match op {
                    Op::Push(p) => { s.push(&p).unwrap(); model.push_back(p); }
                    Op::Pop => {
                        prop_assert_eq!(s.front().unwrap(), model.front().cloned());
                        s.pop().unwrap();
                        model.pop_front();
                    }
                    Op::Reopen => { drop(s); s = Spool::open(dir.path(), lim).unwrap(); }
                }
                prop_assert_eq!(s.stats().records as usize, model.len());
            }
            prop_assert_eq!(drain(&s), Vec::from(model));
        }
    }
}
