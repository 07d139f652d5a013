//! Ports held for a fake DataKit that starts "late": a TCP socket bound to
//! 127.0.0.1 but not listening refuses connections (DataKit down) and keeps
//! the port from being handed to anyone else until it is made to listen.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;

static HELD: Mutex<Option<HashMap<SocketAddr, OwnedFd>>> = Mutex::new(None);

fn check(r: libc::c_int, what: &str) {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
}

/// Bind a socket to an ephemeral port on 127.0.0.1 without listening.
pub fn reserve() -> SocketAddr {
    // SAFETY: plain socket calls on a fresh fd we own; the sockaddr structs
    // are fully initialised and passed with their sizes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        check(fd, "socket");
        let owned = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        sa.sin_port = 0;
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        check(
            libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), len),
            "bind",
        );
        let mut got: libc::sockaddr_in = std::mem::zeroed();
        let mut glen = len;
        check(
            libc::getsockname(fd, (&mut got as *mut libc::sockaddr_in).cast(), &mut glen),
            "getsockname",
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], u16::from_be(got.sin_port)));
        HELD.lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(addr, owned);
        addr
    }
}

/// The held socket of `addr`, now listening (non-blocking), if it was reserved.
pub fn take(addr: SocketAddr) -> Option<TcpListener> {
    let fd = HELD.lock().unwrap().as_mut()?.remove(&addr)?;
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), 1024) }, "listen");
    let l = TcpListener::from(fd);
    l.set_nonblocking(true).expect("non-blocking listener");
    Some(l)
}
