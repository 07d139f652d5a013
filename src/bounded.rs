//! A child's output within a time limit, for the short-lived workers the
//! CLI and the supervisor start to load scripts (`pythond check`, a
//! reload's dry load): both pipes drained on threads of their own so a
//! chatty child cannot block on them, the child killed at the limit, and
//! what its pipes carried taken even when a process it started keeps them
//! open.

use std::time::Duration;

/// The child's output, and whether it finished within `limit` (if not, it
/// is killed and its output so far returned).
pub fn wait_bounded(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::io::Result<(std::process::Output, bool)> {
    // Drain both pipes on threads so a chatty child cannot block on them.
    let t_out = Drain::start(child.stdout.take().expect("piped"));
    let t_err = Drain::start(child.stderr.take().expect("piped"));
    let end = std::time::Instant::now() + limit;
    let (status, finished) = loop {
        if let Some(s) = child.try_wait()? {
            break (s, true);
        }
        if std::time::Instant::now() >= end {
            let _ = child.kill();
            break (child.wait()?, false);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A grandchild (started by a script at import) may hold the pipes open
    // long after the worker exited: take what came within a moment, and
    // leave the readers behind rather than wait for it.
    let grace = std::time::Instant::now() + PIPE_GRACE;
    let out = std::process::Output {
        status,
        stdout: t_out.take(grace),
        stderr: t_err.take(grace),
    };
    Ok((out, finished))
}

/// How long the pipes may stay open once the worker has exited.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// A pipe read to its end on a thread of its own; what it read so far can
/// be taken at any time.
struct Drain {
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Drain {
    fn start(mut r: impl std::io::Read + Send + 'static) -> Drain {
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let b = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => b
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(());
        });
        Drain { buf, done }
    }

    /// What was read, once the pipe ended or at `deadline`.
    fn take(self, deadline: std::time::Instant) -> Vec<u8> {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = self.done.recv_timeout(left);
        std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
