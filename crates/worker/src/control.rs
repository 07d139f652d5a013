//! The worker's end of the control channel to the supervisor
//! (`pythond_core::control`): heartbeats, and markers around everything that
//! could take the process down, so that a crash is attributed to the script
//! that caused it.
//!
//! The fd is non-blocking: if the supervisor ever stops reading, messages are
//! dropped rather than blocking a script.

use std::sync::OnceLock;
use std::time::Duration;

use pythond_core::control::Event;
use pythond_core::spec::HEARTBEAT_FD_ENV;

static FD: OnceLock<i32> = OnceLock::new();

fn fd_from_env() -> Option<i32> {
    std::env::var(HEARTBEAT_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
}

/// Tell the supervisor that this worker cannot start because of its
/// configuration (it exits with `exit::CONFIG` next, and is not restarted).
/// Works before [`start`].
pub fn config_error(message: &str) {
    let Some(fd) = FD.get().copied().or_else(fd_from_env) else {
        return;
    };
    let line = Event::ConfigError(message.to_owned()).encode();
    // SAFETY: writing from a live buffer to the fd the supervisor gave us.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}

/// Take the channel from the environment (absent when run by hand) and start
/// the heartbeat thread.
pub fn start() {
    let Some(fd) = fd_from_env() else {
        return;
    };
    // SAFETY: fcntl on an fd the supervisor handed us.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    let _ = FD.set(fd);
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(|| loop {
            pythond_python::wait_for_interpreter();
            if !send(&Event::Beat) {
                return; // supervisor gone
            }
            std::thread::sleep(Duration::from_secs(1));
        })
        .expect("spawn heartbeat thread");
}

/// Write one message; `false` when the channel is closed.
pub fn send(e: &Event) -> bool {
    let Some(&fd) = FD.get() else { return true };
    let line = e.encode();
    // SAFETY: writing from a live buffer to our own fd.
    let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
    n >= 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN)
}

/// `s <what>` now, `e <what>` when dropped.
pub struct Marker(String);

impl Marker {
    pub fn new(what: String) -> Marker {
        send(&Event::Start(what.clone()));
        Marker(what)
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        send(&Event::End(std::mem::take(&mut self.0)));
    }
}
