//! A log destination written by its own thread through a bounded, lossy
//! queue: [`Lossy::write`] never blocks (a script printing while it holds
//! the GIL, the supervisor's only runtime thread), however slowly the
//! destination is read; lines past the bound are dropped and counted.
//!
//! The queue is bounded by a count of lines, not by preallocated room: it
//! is a linked channel that holds only what is queued. (tracing-appender's
//! bounded channel allocated and wrote its 8 Ki slots up front, 256 KiB of
//! resident memory per destination, four in an idle supervisor, two in each
//! worker, whether or not anything was logged.)

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

enum Msg {
    Line(Vec<u8>),
    /// Write what came before, flush, and acknowledge.
    Shutdown(mpsc::Sender<()>),
}

/// The writing end; cheap to clone (one per event, as `MakeWriter` wants).
#[derive(Clone)]
pub struct Lossy {
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    limit: usize,
}

/// Stops the thread (writing what is queued first, for up to a second)
/// when dropped.
pub struct Guard {
    tx: mpsc::Sender<Msg>,
}

impl Lossy {
    /// A thread named `name` writing to `out`; at most `limit` lines queued.
    pub fn spawn(out: Box<dyn Write + Send>, name: &str, limit: usize) -> (Lossy, Guard) {
        let (tx, rx) = mpsc::channel::<Msg>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q = queued.clone();
        let mut out = out;
        let spawned = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Line(l) => {
                            q.fetch_sub(1, Relaxed);
                            let _ = out.write_all(&l);
                        }
                        Msg::Shutdown(ack) => {
                            let _ = out.flush();
                            let _ = ack.send(());
                            return;
                        }
                    }
                }
                let _ = out.flush();
            });
        if let Err(e) = spawned {
            // Without its thread the destination gets nothing (every line
            // counted as dropped); the process goes on.
            eprintln!("pythond: cannot start the log thread {name}: {e}");
        }
        (
            Lossy {
                tx: tx.clone(),
                queued,
                dropped: Arc::default(),
                limit,
            },
            Guard { tx },
        )
    }

    /// Lines dropped because the destination could not keep up.
    pub fn dropped(&self) -> Arc<AtomicUsize> {
        self.dropped.clone()
    }
}

impl Write for Lossy {
    /// Queue `buf` as one line (tracing writes each event in one call).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.queued.fetch_add(1, Relaxed) >= self.limit {
            self.queued.fetch_sub(1, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
            return Ok(buf.len());
        }
        if self.tx.send(Msg::Line(buf.to_vec())).is_err() {
            self.queued.fetch_sub(1, Relaxed);
            self.dropped.fetch_add(1, Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lossy {
    type Writer = Lossy;

    fn make_writer(&'a self) -> Lossy {
        self.clone()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let (ack, done) = mpsc::channel();
        if self.tx.send(Msg::Shutdown(ack)).is_ok() {
            let _ = done.recv_timeout(Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A destination that blocks until released, collecting what it gets.
    #[derive(Clone, Default)]
    struct Slow {
        got: Arc<Mutex<Vec<u8>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Slow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _g = self.gate.lock().unwrap();
            self.got.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_destination_never_blocks_the_writer_and_drops_are_counted() {
        let slow = Slow::default();
        let gate = slow.gate.lock().unwrap();
        let (mut w, guard) = Lossy::spawn(Box::new(slow.clone()), "test-log", 10);
        let t = std::time::Instant::now();
        for i in 0..1000 {
            w.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(1));
        // At most the bound queued, plus the one the thread holds.
        let dropped = w.dropped().load(Relaxed);
        assert!((989..=990).contains(&dropped), "{dropped}");
        drop(gate);
        drop(guard);
        let got = String::from_utf8(slow.got.lock().unwrap().clone()).unwrap();
        assert_eq!(got.lines().count(), 1000 - dropped);
        assert!(got.starts_with("line 0\n"), "{got}");
    }

    #[test]
    fn dropping_the_guard_writes_what_is_queued() {
        let slow = Slow::default();
        let (mut w, guard) = Lossy::spawn(Box::new(slow.clone()), "test-log", 100);
        for i in 0..50 {
            w.write_all(format!("{i}\n").as_bytes()).unwrap();
        }
        drop(guard);
        assert_eq!(slow.got.lock().unwrap().split(|b| *b == b'\n').count(), 51);
        assert_eq!(w.dropped().load(Relaxed), 0);
    }
}
