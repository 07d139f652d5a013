//! The runners' alarm clock: one `timerfd`, waited on by every idle runner
//! through one shared `epoll` instance.
//!
//! Why not a condvar with a timeout: the runner that takes a due job would
//! first have to wake another to wait for the next deadline (a context
//! switch per run, two with the wake-up of the run itself). A timerfd can be
//! re-armed by any thread without waking anyone, and the kernel wakes
//! exactly one of the threads blocked in `epoll_wait` on a shared epoll
//! instance (they wait exclusively; the timer is edge-triggered, so an
//! expiry is delivered once): when the alarm goes off, one idle runner wakes,
//! and that is the only wake-up a run costs.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

pub(super) struct Alarm {
    timer: OwnedFd,
    epoll: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Alarm {
    pub(super) fn new() -> io::Result<Alarm> {
        // SAFETY: plain syscalls; the fds are owned from here on.
        unsafe {
            let timer = OwnedFd::from_raw_fd(check(libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            ))?);
            let epoll = OwnedFd::from_raw_fd(check(libc::epoll_create1(libc::EPOLL_CLOEXEC))?);
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLET) as u32,
                u64: 0,
            };
            check(libc::epoll_ctl(
                epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                timer.as_raw_fd(),
                &mut ev,
            ))?;
            Ok(Alarm { timer, epoll })
        }
    }

    /// Go off at `at` (at once if it has passed), or never (`None`),
    /// replacing any earlier setting. Wakes no one.
    pub(super) fn set(&self, at: Option<Instant>) {
        let value = match at {
            // Zero disarms: a deadline that has passed is 1 ns from now.
            Some(at) => at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1)),
            None => Duration::ZERO,
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: value.as_secs() as libc::time_t,
                tv_nsec: value.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: a valid timerfd and itimerspec.
        let r = unsafe {
            libc::timerfd_settime(self.timer.as_raw_fd(), 0, &spec, std::ptr::null_mut())
        };
        // Only EINVAL/EBADF are possible, both bugs.
        debug_assert_eq!(r, 0, "timerfd_settime: {}", io::Error::last_os_error());
    }

    /// Block until the alarm goes off (or, rarely, spuriously).
    pub(super) fn wait(&self) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: a valid epoll fd and room for one event.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), &mut ev, 1, -1) };
        if n > 0 {
            // Reset the expiry count (not needed for the edge-triggered
            // wake-ups, but keeps the fd's state simple to reason about).
            let mut count = 0u64;
            // SAFETY: reading 8 bytes into a u64 from a non-blocking timerfd.
            unsafe {
                libc::read(
                    self.timer.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn goes_off_at_its_time_and_wakes_one_waiter_per_expiry() {
        let alarm = Arc::new(Alarm::new().unwrap());
        let woken = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (a, w) = (alarm.clone(), woken.clone());
            std::thread::spawn(move || loop {
                a.wait();
                w.fetch_add(1, Ordering::SeqCst);
            });
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(woken.load(Ordering::SeqCst), 0, "woke with no alarm set");
        let t = Instant::now();
        alarm.set(Some(t + Duration::from_millis(100)));
        while woken.load(Ordering::SeqCst) == 0 {
            assert!(t.elapsed() < Duration::from_secs(10), "never went off");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(t.elapsed() >= Duration::from_millis(100), "went off early");
        // One expiry, one waiter woken (give the others time to wake wrongly).
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        // Re-armed before it goes off: only the later time counts.
        alarm.set(Some(Instant::now() + Duration::from_millis(50)));
        alarm.set(None);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(woken.load(Ordering::SeqCst), 1, "a disarmed alarm went off");
        // A time that has passed goes off at once.
        alarm.set(Some(Instant::now() - Duration::from_secs(1)));
        let t = Instant::now();
        while woken.load(Ordering::SeqCst) == 1 {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "a past time never went off"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
