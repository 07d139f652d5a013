//! The wall clock a point is stamped with when it has no time of its own.
//!
//! Every one-point call reads the clock, so its cost is part of the cost of
//! a point: `clock_gettime(CLOCK_REALTIME)` through the vDSO takes ~40 ns on
//! the project's VM, a tenth of the whole call. Where the kernel itself
//! keeps time with the CPU's time-stamp counter (clocksource `tsc`, x86-64),
//! [`now_ns`] reads the counter instead (~10 ns) and turns it into wall time
//! from a per-thread anchor: a (counter, `CLOCK_REALTIME`) pair taken at most
//! [`REFRESH_NS`] ago. So the result never strays from the system clock by
//! more than the rate error over that window (nanoseconds), and a clock step
//! or NTP slew is followed within it. The counter's rate is measured once,
//! against `CLOCK_REALTIME`, over the first [`CALIBRATION_NS`] of use; until
//! then, wherever the counter is not the kernel's clocksource, and with
//! `PYTHOND_CLOCK=system` in the environment, the system clock is read
//! every time.

use std::sync::OnceLock;

/// How old a thread's anchor may get before it is taken again.
pub const REFRESH_NS: i64 = 1_000_000;

/// How long the counter is measured against the system clock before it is
/// used: long enough that the two readings' uncertainty (tens of ns) is a
/// few parts per million of it.
pub const CALIBRATION_NS: i64 = 50_000_000;

/// Nanoseconds since the Unix epoch, `CLOCK_REALTIME` (see the module doc).
pub fn now_ns() -> i64 {
    #[cfg(target_arch = "x86_64")]
    if let Some(ns) = tsc::now_ns() {
        return ns;
    }
    realtime_ns()
}

/// Which clock [`now_ns`] reads at the moment: `"tsc"` or `"system"`.
pub fn source() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if tsc::calibrated().is_some() {
        return "tsc";
    }
    "system"
}

/// `clock_gettime(CLOCK_REALTIME)` in nanoseconds since the Unix epoch.
pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    // time_t and c_long are 32 bits on some targets.
    #[allow(clippy::unnecessary_cast)]
    let ns = ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64;
    ns
}

/// A counter reading and the wall time read between two counter readings.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pair {
    ticks: u64,
    ns: i64,
}

/// The counter's rate against the wall clock.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rate {
    /// Nanoseconds per tick, in units of 2^-32.
    ns_per_tick_q32: u64,
    /// Ticks in [`REFRESH_NS`].
    refresh_ticks: u64,
}

impl Rate {
    /// The rate from two pairs, or `None` if the counter ran at a frequency
    /// no CPU has (the wall clock was stepped in between, say).
    fn between(a: Pair, b: Pair) -> Option<Rate> {
        let ticks = b.ticks.checked_sub(a.ticks)?;
        let ns = u64::try_from(b.ns.checked_sub(a.ns)?).ok()?;
        if ticks == 0 || ns == 0 {
            return None;
        }
        // 100 MHz to 20 GHz.
        let hz = ticks as u128 * 1_000_000_000 / ns as u128;
        if !(100_000_000..=20_000_000_000).contains(&hz) {
            return None;
        }
        Some(Rate {
            ns_per_tick_q32: u64::try_from(((ns as u128) << 32) / ticks as u128).ok()?,
            refresh_ticks: u64::try_from(ticks as u128 * REFRESH_NS as u128 / ns as u128).ok()?,
        })
    }

    /// The wall time `ticks` after `anchor`, if the anchor is fresh enough
    /// for it (`ticks` below the refresh window; a counter that went back
    /// wraps to a huge distance and is refused too).
    fn since(self, anchor: Pair, ticks: u64) -> Option<i64> {
        let d = ticks.wrapping_sub(anchor.ticks);
        (d < self.refresh_ticks)
            .then(|| anchor.ns + ((d as u128 * self.ns_per_tick_q32 as u128) >> 32) as i64)
    }
}

/// The counter as a clock, where the kernel trusts it.
#[cfg(target_arch = "x86_64")]
mod tsc {
    use std::cell::Cell;

    use super::{realtime_ns, OnceLock, Pair, Rate, CALIBRATION_NS};

    /// The first pair taken, or `None` where the counter is not used.
    static START: OnceLock<Option<Pair>> = OnceLock::new();
    /// The measured rate, or `None` when the measurement was refused.
    static RATE: OnceLock<Option<Rate>> = OnceLock::new();

    thread_local! {
        static ANCHOR: Cell<Option<Pair>> = const { Cell::new(None) };
    }

    fn ticks() -> u64 {
        // SAFETY: rdtsc exists on every x86-64 CPU and reads no memory.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// The kernel keeps time with the counter only when it found it
    /// invariant and in step across CPUs; it switches away (and this file
    /// says so) when its watchdog finds otherwise.
    fn kernel_uses_tsc() -> bool {
        if std::env::var_os("PYTHOND_CLOCK").is_some_and(|v| v == "system") {
            return false;
        }
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .is_ok_and(|s| s.trim() == "tsc")
    }

    /// A pair whose wall reading sits between two counter readings close
    /// together: a thread preempted in between would tie a stale counter
    /// value to the wall time, so such a pair is taken again.
    fn pair() -> Pair {
        const CLOSE: u64 = 1 << 14;
        let mut best: Option<(u64, Pair)> = None;
        for _ in 0..4 {
            let a = ticks();
            let ns = realtime_ns();
            let b = ticks();
            let gap = b.wrapping_sub(a);
            let p = Pair {
                ticks: a.wrapping_add(gap / 2),
                ns,
            };
            if gap < CLOSE {
                return p;
            }
            if best.is_none_or(|(g, _)| gap < g) {
                best = Some((gap, p));
            }
        }
        best.expect("four tries").1
    }

    /// The rate once measured; while it is being measured, `None`.
    pub(super) fn calibrated() -> Option<Rate> {
        if let Some(rate) = RATE.get() {
            return *rate;
        }
        let Some(start) = *START.get_or_init(|| kernel_uses_tsc().then(pair)) else {
            let _ = RATE.set(None);
            return None;
        };
        let now = pair();
        if now.ns.saturating_sub(start.ns) < CALIBRATION_NS {
            return None;
        }
        *RATE.get_or_init(|| Rate::between(start, now))
    }

    pub(super) fn now_ns() -> Option<i64> {
        let rate = calibrated()?;
        ANCHOR.with(|anchor| {
            let t = ticks();
            if let Some(ns) = anchor.get().and_then(|a| rate.since(a, t)) {
                return Some(ns);
            }
            let p = pair();
            anchor.set(Some(p));
            Some(p.ns)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GHZ3: Pair = Pair {
        ticks: 3_000_000_000,
        ns: 1_000_000_000,
    };

    #[test]
    fn the_rate_turns_ticks_into_nanoseconds() {
        let start = Pair { ticks: 0, ns: 0 };
        let rate = Rate::between(start, GHZ3).unwrap();
        assert_eq!(rate.refresh_ticks, 3_000_000);
        let anchor = Pair {
            ticks: 10_000,
            ns: 1_700_000_000_000_000_000,
        };
        assert_eq!(rate.since(anchor, 10_000), Some(anchor.ns));
        // 3 000 ticks at 3 GHz: 1 µs (less one ns of rounding at most).
        let got = rate.since(anchor, 13_000).unwrap() - anchor.ns;
        assert!((999..=1000).contains(&got), "{got}");
        let got = rate.since(anchor, 10_000 + 2_999_999).unwrap() - anchor.ns;
        assert!((999_999..=1_000_000).contains(&got), "{got}");
    }

    #[test]
    fn a_stale_anchor_or_a_counter_that_went_back_is_refused() {
        let rate = Rate::between(Pair { ticks: 0, ns: 0 }, GHZ3).unwrap();
        let anchor = Pair {
            ticks: 1_000_000,
            ns: 5,
        };
        assert_eq!(rate.since(anchor, 1_000_000 + 3_000_000), None);
        assert_eq!(rate.since(anchor, 999_999), None);
    }

    #[test]
    fn rates_no_cpu_has_are_refused() {
        let start = Pair { ticks: 0, ns: 0 };
        // 50 GHz, 10 MHz, a wall clock that went back, a counter that did.
        for end in [
            Pair {
                ticks: 50_000_000_000,
                ns: 1_000_000_000,
            },
            Pair {
                ticks: 10_000_000,
                ns: 1_000_000_000,
            },
            Pair {
                ticks: 3_000_000_000,
                ns: -1_000_000_000,
            },
        ] {
            assert_eq!(Rate::between(start, end), None, "{end:?}");
        }
        assert_eq!(Rate::between(GHZ3, start), None);
        assert_eq!(Rate::between(start, start), None);
    }

    /// `now_ns` between two reads of the system clock, on several threads,
    /// through calibration and many re-anchorings; never back by more than
    /// rounding on one thread.
    #[test]
    fn now_follows_the_system_clock_on_every_thread() {
        let threads: Vec<_> = (0..3)
            .map(|_| {
                std::thread::spawn(|| {
                    let end = realtime_ns() + 3 * CALIBRATION_NS;
                    let mut last = i64::MIN;
                    let mut calls = 0u64;
                    loop {
                        let before = realtime_ns();
                        let t = now_ns();
                        let after = realtime_ns();
                        // 20 µs: the rate's error over one refresh window
                        // is nanoseconds; this is room for a pair taken
                        // across a preemption on a loaded machine.
                        let slack = 20_000;
                        assert!(
                            t >= before - slack && t <= after + slack,
                            "{before} <= {t} <= {after} ({})",
                            source()
                        );
                        assert!(t >= last.saturating_sub(1_000), "went back: {last} -> {t}");
                        last = t;
                        calls += 1;
                        if after > end {
                            return calls;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap() > 1000);
        }
    }

    /// Where the kernel keeps time with the counter, so does `now_ns` once
    /// calibrated; elsewhere, or when told not to, it reads the system clock.
    #[test]
    fn the_counter_is_used_where_the_kernel_uses_it() {
        let kernel = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
        let end = realtime_ns() + 2 * CALIBRATION_NS;
        while realtime_ns() < end {
            now_ns();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let asked_system = std::env::var_os("PYTHOND_CLOCK").is_some_and(|v| v == "system");
        let expected = if cfg!(target_arch = "x86_64") && kernel == "tsc" && !asked_system {
            "tsc"
        } else {
            "system"
        };
        assert_eq!(source(), expected, "kernel clocksource {kernel:?}");
    }
}
