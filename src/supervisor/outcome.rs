//! How an input ended, over all its workers' lives: what `pythond run`'s
//! exit code is made of (points lost in any life, workers that died
//! uncleanly).

use std::process::ExitStatus;

use pythond_core::spec::exit;

/// How one input ended (at shutdown, on a configuration error, or when its
/// block was removed), over all its workers' lives.
#[derive(Debug, Default)]
pub struct Outcome {
    pub input: String,
    /// The last worker's exit status.
    pub status: Option<ExitStatus>,
    /// The last worker did not stop within the grace period.
    pub killed: bool,
    /// The input was stopped for this configuration error (not restarted).
    pub config_error: Option<String>,
    /// Points its workers reported lost, all lives together.
    pub lost_points: u64,
    /// A worker exited saying it lost points (also when its last report
    /// did not make it to the supervisor).
    pub data_lost: bool,
    /// Workers that died uncleanly (see [`died_uncleanly`]), all lives
    /// together: whatever they held only in memory is gone, uncounted.
    pub unclean_exits: u32,
}

impl Outcome {
    /// Every worker of the input stopped cleanly, in time, with nothing
    /// lost (or it never started).
    pub fn clean(&self) -> bool {
        !self.killed && !self.data_lost && self.lost_points == 0 && self.unclean_exits == 0
    }

    /// Account for one worker's life that ended with `status`, having
    /// reported `lost` points lost; `stopped`: the supervisor sent it
    /// SIGTERM, `killed`: then SIGKILL (or it was killed for a stall).
    pub(super) fn add_life(
        &mut self,
        status: Option<ExitStatus>,
        lost: u64,
        stopped: bool,
        killed: bool,
    ) {
        self.lost_points += lost;
        self.data_lost |= status.and_then(|s| s.code()) == Some(exit::DATA_LOST);
        if killed || died_uncleanly(status, stopped) {
            self.unclean_exits += 1;
        }
    }
}

/// Whether a worker that ended with `status` died uncleanly: by a signal
/// (a crash, a kill for a stall or past the grace), a panic (101), or an
/// exit code of its own (`os._exit(1)` in a script); not when it stopped
/// cleanly, counted its lost points (`DATA_LOST`), could not start, or
/// stopped on a configuration error. A worker `stopped` by the supervisor's
/// SIGTERM that died of it had not installed its handler yet, which it does
/// before its first `run()`: it held no run's points.
pub fn died_uncleanly(status: Option<ExitStatus>, stopped: bool) -> bool {
    use std::os::unix::process::ExitStatusExt;
    if stopped && status.and_then(|s| s.signal()) == Some(libc::SIGTERM) {
        return false;
    }
    !matches!(
        status.and_then(|s| s.code()),
        Some(exit::OK | exit::DATA_LOST | exit::START_FAILED | exit::NO_SCRIPTS | exit::CONFIG)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn code(c: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(c << 8))
    }

    fn signal(s: i32) -> Option<ExitStatus> {
        Some(ExitStatus::from_raw(s))
    }

    #[test]
    fn a_panic_a_signal_or_a_scripts_own_exit_code_is_an_unclean_death() {
        for s in [
            code(101),
            code(1),
            signal(libc::SIGKILL),
            signal(libc::SIGSEGV),
            None,
        ] {
            assert!(died_uncleanly(s, true), "{s:?}");
        }
        for s in [
            code(exit::OK),
            code(exit::DATA_LOST),
            code(exit::START_FAILED),
            code(exit::NO_SCRIPTS),
            code(exit::CONFIG),
        ] {
            assert!(!died_uncleanly(s, false), "{s:?}");
        }
    }

    #[test]
    fn what_an_earlier_life_lost_or_how_it_died_is_not_forgotten() {
        let mut o = Outcome::default();
        o.add_life(code(exit::OK), 0, true, false);
        assert!(o.clean());
        // A life that lost points, then a clean one.
        o.add_life(code(exit::DATA_LOST), 250, true, false);
        o.add_life(code(exit::OK), 0, true, false);
        assert!(!o.clean() && o.lost_points == 250 && o.data_lost, "{o:?}");
        // A worker that crashed, then a clean one.
        let mut o = Outcome::default();
        o.add_life(signal(libc::SIGSEGV), 0, false, false);
        o.add_life(code(exit::OK), 0, true, false);
        assert!(!o.clean() && o.unclean_exits == 1, "{o:?}");
        // One killed past its grace, whatever its status says.
        let mut o = Outcome::default();
        o.add_life(code(exit::OK), 0, true, true);
        assert!(!o.clean(), "{o:?}");
        // DATA_LOST without a report that made it: still lost.
        let mut o = Outcome::default();
        o.add_life(code(exit::DATA_LOST), 0, true, false);
        assert!(!o.clean(), "{o:?}");
    }
}
