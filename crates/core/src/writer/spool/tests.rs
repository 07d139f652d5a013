//! The spool against the real file system, with faults injected through
//! [`SpoolIo`] (a torn append, a corrupted byte) instead of bytes written by
//! hand into segment files.

use super::*;
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

fn limits(max: u64, seg: u64) -> SpoolLimits {
    SpoolLimits {
        max_bytes: max,
        segment_bytes: seg,
        lock_wait: Duration::from_millis(200),
    }
}

fn drain(s: &Spool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(r) = s.front().unwrap() {
        out.push(r.payload);
        assert_eq!(s.pop(r.id).unwrap(), Popped::Consumed);
    }
    out
}

fn recs(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("record-{i:04}").into_bytes())
        .collect()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// The real file system, with a fault armed for the next append.
#[derive(Default)]
struct FaultyIo {
    /// The next append writes only this many bytes, then fails (a crash or
    /// a full disk in the middle of `write`).
    tear_next_append: AtomicUsize,
    /// The next append lands with its last byte flipped (bit rot).
    corrupt_next_append: AtomicBool,
}

struct FaultySegment<'a> {
    inner: Box<dyn SegmentFile>,
    io: &'a FaultyIo,
}

impl SegmentFile for FaultySegment<'static> {
    fn append(&mut self, data: &[u8]) -> std::io::Result<()> {
        let tear = self.io.tear_next_append.swap(0, Ordering::SeqCst);
        if tear > 0 {
            self.inner.append(&data[..tear.min(data.len())])?;
            return Err(std::io::Error::other("torn write (injected)"));
        }
        if self.io.corrupt_next_append.swap(false, Ordering::SeqCst) {
            let mut d = data.to_vec();
            *d.last_mut().unwrap() ^= 0xff;
            return self.inner.append(&d);
        }
        self.inner.append(data)
    }
    fn end(&mut self) -> std::io::Result<u64> {
        self.inner.end()
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

impl SpoolIo for &'static FaultyIo {
    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        FsIo.create_dir(dir)
    }
    fn lock(&self, dir: &Path, wait: Duration) -> std::io::Result<Box<dyn Send + Sync>> {
        FsIo.lock(dir, wait)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        FsIo.list(dir)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        FsIo.read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        FsIo.read_at(path, offset, len)
    }
    fn open_append(&self, path: &Path) -> std::io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(FaultySegment {
            inner: FsIo.open_append(path)?,
            io: self,
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> std::io::Result<()> {
        FsIo.truncate(path, len)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        FsIo.remove(path)
    }
    fn write_atomic(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        FsIo.write_atomic(path, data)
    }
}

fn faulty() -> &'static FaultyIo {
    Box::leak(Box::default())
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
            let id = s.front().unwrap().unwrap().id;
            s.pop(id).unwrap();
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
fn a_torn_append_is_skipped_at_reopen_and_new_records_follow_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let io = faulty();
    {
        let s = Spool::open_with(Arc::new(io), dir.path(), limits(1 << 20, 1 << 20)).unwrap();
        for r in recs(3) {
            s.push(&r).unwrap();
        }
        // kill -9 in the middle of write(): 20 bytes of the record land.
        io.tear_next_append.store(20, Ordering::SeqCst);
        assert!(s.push(b"this record is torn").is_err());
    }
    let s = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap();
    assert_eq!(s.stats().corrupt_skipped, 1);
    assert_eq!(s.stats().records, 3);
    s.push(b"new").unwrap();
    let mut want = recs(3);
    want.push(b"new".to_vec());
    assert_eq!(drain(&s), want);
}

#[test]
fn a_torn_append_in_a_live_spool_costs_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let io = faulty();
    let s = Spool::open_with(Arc::new(io), dir.path(), limits(1 << 20, 1 << 20)).unwrap();
    s.push(b"before").unwrap();
    io.tear_next_append.store(7, Ordering::SeqCst);
    assert!(s.push(b"torn").is_err());
    s.push(b"after").unwrap();
    assert_eq!(drain(&s), vec![b"before".to_vec(), b"after".to_vec()]);
    drop(s);
    let s = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap();
    assert!(s.is_empty(), "consumed records stay consumed after reopen");
}

#[test]
fn checksum_mismatch_ends_that_segment_only() {
    let dir = tempfile::tempdir().unwrap();
    let io = faulty();
    {
        let s = Spool::open_with(Arc::new(io), dir.path(), limits(1 << 20, 60)).unwrap();
        for (i, r) in recs(8).iter().enumerate() {
            // The second record (end of the first segment) rots on disk.
            io.corrupt_next_append.store(i == 1, Ordering::SeqCst);
            s.push(r).unwrap();
        }
    }
    let s = Spool::open(dir.path(), limits(1 << 20, 60)).unwrap();
    assert_eq!(s.stats().corrupt_skipped, 1);
    let got = drain(&s);
    let mut want = recs(8);
    want.remove(1);
    assert_eq!(got, want, "one record lost, the others kept in order");
}

#[test]
fn past_the_bound_oldest_segments_are_dropped_counted_and_the_rest_has_no_gap() {
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
    let first_kept: usize = String::from_utf8_lossy(&got[0])[7..].parse().unwrap();
    assert_eq!(
        got,
        recs(40)[first_kept..].to_vec(),
        "a contiguous newest run is kept: no gap, newest last"
    );
}

#[test]
fn pop_consumes_the_record_it_names_even_when_the_bound_deleted_it_meanwhile() {
    // The replayer reads the front record and sends it; meanwhile new
    // batches arrive and push the spool past its bound, deleting the segment
    // holding the record in flight. Popping must not consume the next
    // record, which was never sent.
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), limits(200, 50)).unwrap();
    for r in recs(5) {
        s.push(&r).unwrap();
    }
    let in_flight = s.front().unwrap().unwrap();
    assert_eq!(in_flight.payload, recs(5)[0]);
    for r in &recs(40)[5..] {
        s.push(r).unwrap();
    }
    let dropped = s.stats().dropped_records;
    assert!(dropped > 1, "the bound deleted the oldest segments");
    let next = s.front().unwrap().unwrap();
    assert_eq!(s.pop(in_flight.id).unwrap(), Popped::Gone);
    assert_eq!(
        s.front().unwrap().unwrap(),
        next,
        "the record after the gap is still there, unsent"
    );
    let got = drain(&s);
    let first: usize = String::from_utf8_lossy(&got[0])[7..].parse().unwrap();
    assert_eq!(
        first as u64, dropped,
        "nothing consumed beyond what the bound dropped"
    );
    assert_eq!(got, recs(40)[first..].to_vec());
}

#[test]
fn weights_are_summed_kept_across_reopen_and_counted_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    // A record's weight is its first byte (the writer weighs its points).
    let weigh = || -> Weigh { Box::new(|r: &[u8]| u64::from(r[0])) };
    {
        let s = Spool::open_weighed(dir.path(), limits(1 << 20, 1 << 20), weigh()).unwrap();
        s.push(&[3, 0]).unwrap();
        s.push_weighed(&[5, 0], 5).unwrap();
        assert_eq!(s.stats().weight, 8);
        let id = s.front().unwrap().unwrap().id;
        s.pop(id).unwrap();
        assert_eq!(s.stats().weight, 5);
    }
    let s = Spool::open_weighed(dir.path(), limits(40, 20), weigh()).unwrap();
    assert_eq!(s.stats().weight, 5, "read back from the records");
    for _ in 0..10 {
        s.push(&[2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    }
    let st = s.stats();
    assert!(st.dropped_weight >= 5, "{st:?}");
    assert_eq!(st.weight + st.dropped_weight, 25, "{st:?}");
}

#[test]
fn a_second_process_cannot_open_a_spool_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap();
    // flock is per open file description: a second open in this process
    // conflicts the same way another process would.
    let err = Spool::open(dir.path(), limits(1 << 20, 1 << 20)).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    drop(s);
    Spool::open(dir.path(), limits(1 << 20, 1 << 20)).expect("free once the first closed");
}

#[test]
fn files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let sp = dir.path().join("spool");
    let s = Spool::open(&sp, SpoolLimits::default()).unwrap();
    s.push(b"x").unwrap();
    let id = s.front().unwrap().unwrap().id;
    s.pop(id).unwrap();
    s.push(b"y").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sp), 0o700);
    for p in segments(&sp) {
        assert_eq!(mode(&p), 0o600);
    }
    assert_eq!(mode(&sp.join("cursor")), 0o600);
    assert_eq!(mode(&sp.join("lock")), 0o600);
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
                    let front = s.front().unwrap();
                    prop_assert_eq!(front.as_ref().map(|r| r.payload.clone()), model.front().cloned());
                    if let Some(r) = front {
                        prop_assert_eq!(s.pop(r.id).unwrap(), Popped::Consumed);
                        model.pop_front();
                    }
                }
                Op::Reopen => { drop(s); s = Spool::open(dir.path(), lim).unwrap(); }
            }
            prop_assert_eq!(s.stats().records as usize, model.len());
        }
        prop_assert_eq!(drain(&s), Vec::from(model));
    }
}
