//! Our stdout and stderr in launch mode: one pipe DataKit reads 1 KiB a
//! second into its debug log, and stops reading when it stops the input.
//!
//! Only a few lines go there (the start line, fatal errors); everything else
//! goes to the log files. So that even those can never block pythond, the
//! pipe is made non-blocking and a line that does not fit is dropped and
//! counted. A terminal or a file is left as it is (making a terminal
//! non-blocking would break the shell sharing it). The count goes to the
//! log file when it changes (at most every [`LOG_EVERY`], [`log_drops`]) and
//! to the status (`pipe_lines_dropped`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Longest line written, below `PIPE_BUF`, so a write is all or nothing.
const MAX_LINE: usize = 4000;

/// Make fds 1 and 2 non-blocking when they are pipes or sockets.
pub fn init() {
    for fd in [1, 2] {
        // SAFETY: fstat and fcntl on our own standard fds, with a zeroed,
        // properly sized stat buffer.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                continue;
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
                continue;
            }
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            }
        }
    }
}

/// Write `line` and a newline to stderr without ever blocking; `false` (and
/// counted) when the pipe is full or closed.
pub fn say(line: &str) -> bool {
    say_to(2, line)
}

/// Lines [`say`] dropped.
pub fn dropped() -> u64 {
    DROPPED.load(Relaxed)
}

/// How often at most the drop count is logged.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// When a changed count is logged: at once the first time, then at most
/// every [`LOG_EVERY`].
#[derive(Default)]
struct Throttle {
    logged: u64,
    at: Option<Instant>,
}

impl Throttle {
    /// Whether `count` is to be logged `now` (and then it counts as logged).
    fn due(&mut self, count: u64, now: Instant) -> bool {
        if count == self.logged || self.at.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return false;
        }
        self.logged = count;
        self.at = Some(now);
        true
    }
}

/// Log the drop count to the log files whenever it has changed, checked
/// every second, at most every [`LOG_EVERY`]: a pythond killed with
/// SIGKILL has no last word to say it in.
pub fn log_drops() {
    let spawned = std::thread::Builder::new()
        .name("pipe-drops".into())
        .spawn(|| {
            let mut t = Throttle::default();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let n = dropped();
                if t.due(n, Instant::now()) {
                    tracing::warn!(
                        lines = n,
                        "lines for DataKit's pipe dropped so far: it was full (DataKit reads it 1 KiB a second, only at its debug level); they are in this log"
                    );
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the thread logging the pipe's drops: {e}");
    }
}

fn say_to(fd: i32, line: &str) -> bool {
    let mut end = line.len().min(MAX_LINE);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut buf = Vec::with_capacity(end + 1);
    buf.extend_from_slice(&line.as_bytes()[..end]);
    buf.push(b'\n');
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: writing from a live buffer to one of our own fds.
        let n = unsafe { libc::write(fd, buf[off..].as_ptr().cast(), buf.len() - off) };
        if n > 0 {
            off += n as usize;
            continue;
        }
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        DROPPED.fetch_add(1, Relaxed);
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    #[test]
    fn a_full_pipe_drops_the_line_instead_of_blocking() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe2 fills the array with two new fds, owned below.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) },
            0
        );
        // SAFETY: fresh fds owned by nothing else.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let line = "x".repeat(1000);
        let before = dropped();
        let mut written = 0;
        // Nobody reads: a 64 KiB pipe takes about 65 lines, then refuses.
        for _ in 0..200 {
            if say_to(w.as_raw_fd(), &line) {
                written += 1;
            }
        }
        assert!((30..200).contains(&written), "{written}");
        assert_eq!(dropped() - before, 200 - written);
        let mut buf = vec![0u8; 2000];
        // SAFETY: reading into a live buffer from our own fd.
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), 1001) };
        assert_eq!(n, 1001, "whole lines, newline included");
        assert_eq!(buf[1000], b'\n');
    }

    #[test]
    fn a_changed_count_is_logged_at_once_then_at_most_every_ten_seconds() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        assert!(!t.due(0, t0), "nothing dropped: nothing said");
        assert!(t.due(1, t0));
        assert!(!t.due(1, t0 + LOG_EVERY * 2), "unchanged");
        let t1 = t0 + LOG_EVERY * 2;
        assert!(t.due(5, t1));
        assert!(!t.due(9, t1 + Duration::from_secs(1)), "too soon");
        assert!(t.due(9, t1 + LOG_EVERY));
    }

    #[test]
    fn long_lines_are_cut_at_a_char_boundary() {
        let mut fds = [0i32; 2];
        // SAFETY: as above.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: as above.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        assert!(say_to(w.as_raw_fd(), &"é".repeat(3000)));
        let mut buf = vec![0u8; 8192];
        // SAFETY: as above.
        let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } as usize;
        assert!(n <= MAX_LINE + 1, "{n}");
        assert!(std::str::from_utf8(&buf[..n]).is_ok());
    }
}
