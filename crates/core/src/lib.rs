//! pythond's core, free of Python: everything from the configuration to the
//! bytes DataKit receives, except running the scripts themselves.
//!
//! Data flows one way:
//!
//! ```text
//! config ─▶ discover ─▶ (pythond-python: scripts) ─▶ point ─▶ lineproto ─▶ payload ─▶ sink ─▶ writer ─▶ DataKit
//!                              ▲ scheduler                                                       └▶ spool
//! ```
//!
//! - [`config`]: `[[inputs.pythond]]` blocks and `datakit.conf`.
//! - [`discover`]: a block's `dirs` → the modules to import; [`trust`]: who
//!   could have changed a script or config file.
//! - [`scheduler`]: fixed-rate ticks, timeouts, backoff, for any [`scheduler::Job`].
//! - [`point`]: the data rules; [`lineproto`]: DataKit's line protocol, and
//!   the fast path that checks and encodes a raw point in one pass.
//! - [`payload`]: one call's points, whole or encoded; [`sink`]: where the
//!   runtime hands them; [`writer`]: batching, retries, transport and the
//!   disk spool.
//! - [`target`], [`route`]: where a point goes and in which request.
//! - [`spec`]: what the supervisor tells a worker; [`logs`]: log files.
//! - [`seconds`]: intervals and timeouts users give, within bounds.
//! - [`clock`]: the wall clock points without a time are stamped with.
//! - [`script_stats`]: points each script handed over, per category.
//! - [`pageout`]: giving back the code pages start-up used.
//!
//! `docs/design.md` describes the process model and the writer's design;
//! `docs/compat.md` the compatibility contract the code follows.

pub mod clock;
pub mod config;
pub mod control;
pub mod discover;
pub mod lineproto;
pub mod logs;
pub mod names;
pub mod pageout;
pub mod payload;
pub mod point;
pub mod route;
pub mod scheduler;
pub mod script_stats;
pub mod seconds;
pub mod sink;
pub mod spec;
pub mod status;
pub mod target;
pub mod trust;
pub mod writer;

#[cfg(test)]
mod tests {
    /// The core crate is Python-free: its own test process does not map
    /// libpython at all (so it builds and runs where there is none).
    #[test]
    fn no_libpython_is_mapped_in_the_core_tests() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        assert!(
            !maps.contains("libpython"),
            "libpython mapped in core tests"
        );
    }
}
