//! The writer's shutdown and spool under faults, against a real HTTP server
//! on 127.0.0.1 (testkit's fake DataKit) and a real spool on disk: what is
//! left in memory at the deadline, draining the spool at shutdown, probing a
//! hung DataKit, and a disk whose `fsync` takes seconds.

mod common;

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pythond_core::point::{Category, FieldValue};
use pythond_core::route::Route;
use pythond_core::target::Target;
use pythond_core::writer::spool::io::{FsIo, SegmentFile, SpoolIo};
use pythond_core::writer::spool::SpoolLimits;
use pythond_core::writer::{open_spool, open_spool_with, Writer, WriterConfig};
use testkit::FakeDataKit;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_still_in_memory_at_the_deadline_is_counted_as_lost_once() {
    for with_spool in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let dk = start_datakit().await;
        dk.freeze(true);
        let spool =
            with_spool.then(|| open_spool(&dir.path().join("s"), SpoolLimits::default()).unwrap());
        let w = Writer::spawn_with_spool(cfg(Target::Http(dk.url())), spool);
        w.submit(route(Category::Metric, None), pts("m", 250))
            .unwrap();
        w.flush();
        assert!(until(5, || dk.unanswered() >= 1).await);
        // No time left at all: nothing can be delivered, and what is not
        // spooled by the deadline is lost.
        let report = w.shutdown(tokio::time::Instant::now()).await;
        let st = report.stats;
        assert_eq!(
            report.lost() + st.points_spooled,
            250,
            "every point is lost or spooled (spool: {with_spool}): {report:?}"
        );
        if !with_spool {
            assert_eq!(report.lost(), 250, "{report:?}");
        }
        assert_eq!(st.held_points, 0, "{report:?}");
        assert_eq!(
            report.spool.map_or(0, |s| s.weight),
            st.points_spooled,
            "what is counted spooled is on disk: {report:?}"
        );
        // The lanes, aborted, end after the count: nothing is counted twice.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let later = w.stats();
        assert_eq!(later.lost(), st.lost(), "{later:?}");
        assert_eq!(later.points_spooled, st.points_spooled, "{later:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_the_spool_to_a_datakit_that_answers_again() {
    let dir = tempfile::tempdir().unwrap();
    let addr = FakeDataKit::reserve_port();
    let spool = open_spool(&dir.path().join("spool"), SpoolLimits::default()).unwrap();
    // The replayer backs off a whole second between probes.
    let w = Writer::spawn_with_spool(
        WriterConfig {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(1),
            ..cfg(Target::Http(format!("http://{addr}")))
        },
        Some(spool),
    );
    for i in 0..5 {
        let mut p = pts("m", 20);
        for (j, pt) in p.iter_mut().enumerate() {
            pt.fields[0].1 = FieldValue::I64((i * 20 + j) as i64);
        }
        w.submit(route(Category::Metric, None), p).unwrap();
        w.flush_and_wait().await;
    }
    assert_eq!(w.stats().points_spooled, 100, "{:?}", w.stats());
    // DataKit is back just as the input stops.
    let dk = tokio::task::spawn_blocking(move || FakeDataKit::start_on(addr))
        .await
        .unwrap();
    let report = w
        .shutdown(tokio::time::Instant::now() + Duration::from_secs(4))
        .await;
    assert!(report.drained, "{report:?}");
    assert_eq!(report.spool.unwrap().records, 0, "{report:?}");
    assert_eq!(
        seqs(&dk.lines("/v1/write/metric")),
        (0..100).collect::<Vec<_>>()
    );
}

/// A writer with a spool in `dir` whose 10 points, submitted to `dk` while
/// it is frozen, have been spooled behind the attempt that hangs (with a
/// request timeout far longer than the tests' windows): the replayer is
/// probing.
async fn spooled_behind_a_hung_datakit(dir: &Path, dk: &FakeDataKit) -> Writer {
    let spool = open_spool(&dir.join("spool"), SpoolLimits::default()).unwrap();
    let w = Writer::spawn_with_spool(
        WriterConfig {
            spill_after: Duration::from_millis(200),
            request_timeout: Duration::from_secs(8),
            ..cfg(Target::Http(dk.url()))
        },
        Some(spool),
    );
    dk.freeze(true);
    w.submit(route(Category::Metric, None), pts("m", 10))
        .unwrap();
    w.flush();
    assert!(until(5, || w.stats().points_spooled == 10).await);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replayer_probes_a_hung_datakit_every_second() {
    let dir = tempfile::tempdir().unwrap();
    let dk = start_datakit().await;
    let _w = spooled_behind_a_hung_datakit(dir.path(), &dk).await;
    let before = dk.unanswered();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let probes = dk.unanswered() - before;
    assert!(
        probes >= 3,
        "{probes} probes during 4.5 s of a hung DataKit"
    );
    dk.freeze(false);
    let t = Instant::now();
    assert!(until(5, || dk.all_lines().len() == 10).await);
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "noticed {:?} after the hang ended",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datakit_slower_than_the_probe_takes_each_spooled_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let dk = start_datakit().await;
    let w = spooled_behind_a_hung_datakit(dir.path(), &dk).await;
    // Back, but answering each write 1.5 s after taking it: longer than
    // the probe's second.
    dk.take_then_answer_after(Some(Duration::from_millis(1500)));
    dk.freeze(false);
    assert!(until(10, || w.stats().points_replayed == 10).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        seqs(&dk.all_lines()),
        (0..10).collect::<Vec<_>>(),
        "each point once"
    );
}

/// The real file system, whose segment `fsync` takes `delay` while `slow`.
struct SlowSync {
    slow: Arc<AtomicBool>,
    delay: Duration,
}

struct SlowSegment {
    inner: Box<dyn SegmentFile>,
    slow: Arc<AtomicBool>,
    delay: Duration,
}

impl SegmentFile for SlowSegment {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.append(data)
    }
    fn end(&mut self) -> io::Result<u64> {
        self.inner.end()
    }
    fn sync(&mut self) -> io::Result<()> {
        if self.slow.load(Relaxed) {
            std::thread::sleep(self.delay);
        }
        self.inner.sync()
    }
}

impl SpoolIo for SlowSync {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        FsIo.create_dir(dir)
    }
    fn lock(&self, dir: &Path, wait: Duration) -> io::Result<Box<dyn Send + Sync>> {
        FsIo.lock(dir, wait)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        FsIo.list(dir)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        FsIo.read(path)
    }
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        FsIo.read_at(path, offset, len)
    }
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        Ok(Box::new(SlowSegment {
            inner: FsIo.open_append(path)?,
            slow: self.slow.clone(),
            delay: self.delay,
        }))
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        FsIo.truncate(path, len)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        FsIo.remove(path)
    }
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        FsIo.write_atomic(path, data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fsync_delays_neither_another_route_nor_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let dk = start_datakit().await;
    let slow = Arc::new(AtomicBool::new(false));
    let io = Arc::new(SlowSync {
        slow: slow.clone(),
        delay: Duration::from_secs(2),
    });
    // One record per segment: every append after the first closes, and so
    // fsyncs, the segment before it.
    let limits = SpoolLimits {
        segment_bytes: 1,
        ..SpoolLimits::default()
    };
    let spool = open_spool_with(io, &dir.path().join("spool"), limits).unwrap();
    let w = Writer::spawn_with_spool(
        WriterConfig {
            spool_after_attempts: 1,
            ..cfg(Target::Http(dk.url()))
        },
        Some(spool),
    );
    // Route a goes to a DataKit that is down (a script's own `ip`/`port`):
    // its first batch is spooled, and stays there.
    let down = FakeDataKit::reserve_port();
    let a = Route {
        target: Some(Target::Http(format!("http://{down}"))),
        ..route(Category::Metric, Some("a"))
    };
    w.submit(a.clone(), pts("a", 1)).unwrap();
    w.flush_and_wait().await;
    assert_eq!(w.stats().points_spooled, 1, "{:?}", w.stats());
    // Its next batch follows the first to disk, and closes the first
    // segment: an fsync of 2 s.
    slow.store(true, Relaxed);
    w.submit(a.clone(), pts("a", 1)).unwrap();
    w.flush();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Meanwhile, a timer on the runtime, and two other routes.
    let ticker = tokio::spawn(async {
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            worst = worst.max(last.elapsed());
            last = Instant::now();
        }
        worst
    });
    let t = Instant::now();
    w.submit(route(Category::Logging, Some("b")), pts("b", 1))
        .unwrap();
    w.submit(route(Category::Object, Some("c")), pts("c", 1))
        .unwrap();
    w.flush();
    let status_took = {
        let t = Instant::now();
        let _ = w.status();
        t.elapsed()
    };
    let others = until(10, || dk.all_lines().len() >= 2).await;
    let took = t.elapsed();
    let worst = ticker.await.unwrap();
    assert!(others, "routes b and c delivered");
    assert!(
        took < Duration::from_secs(1),
        "the other routes waited {took:?} for the disk"
    );
    // Slack for a loaded machine: waiting on the disk would be ~2 s.
    assert!(
        worst < Duration::from_secs(1),
        "the runtime's timers stalled for {worst:?}"
    );
    assert!(
        status_took < Duration::from_millis(500),
        "status waited {status_took:?} for the disk"
    );
    // Route a's batch is spooled once the fsync is over.
    assert!(until(10, || w.stats().points_spooled == 2).await);
    assert_eq!(
        dk.all_lines().len(),
        2,
        "route a was never sent to this DataKit"
    );
}
