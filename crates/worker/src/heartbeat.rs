//! Every second, prove to the supervisor that the interpreter can still be
//! entered (no C code holds the GIL forever) by writing a byte to its pipe.
//! The supervisor restarts a worker whose heartbeats stop.

use std::time::Duration;

use pythond_core::spec::HEARTBEAT_FD_ENV;

/// Start the heartbeat thread, if the supervisor gave us a pipe.
pub fn start() {
    let Some(fd) = std::env::var(HEARTBEAT_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            pythond_python::wait_for_interpreter();
            // SAFETY: writing one byte from a live buffer to our own fd.
            let n = unsafe { libc::write(fd, b"h".as_ptr().cast(), 1) };
            if n < 0 {
                return; // supervisor gone
            }
            std::thread::sleep(Duration::from_secs(1));
        })
        .expect("spawn heartbeat thread");
}
