//! Our stdout and stderr in launch mode: one pipe DataKit reads 1 KiB a
//! second into its debug log, and stops reading when it stops the input.
//!
//! Only a few lines go there (the start line, fatal errors); everything else
//! goes to the log files. So that even those can never block pythond, the
//! pipe is made non-blocking and a line that does not fit is dropped and
//! counted. A terminal or a file is left as it is (making a terminal
//! non-blocking would break the shell sharing it).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
