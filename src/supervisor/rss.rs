//! A worker's resident memory, from `/proc/<pid>/statm`.
//!
//! Read on the supervisor's runtime thread, once a second per input: procfs
//! is generated in memory by the kernel (no disk, no lock a worker could
//! hold), so the read is bounded; every other file the supervisor touches
//! is read on the blocking pool (`off_runtime`).

/// Resident bytes of `pid`, or `None` if it is gone.
pub fn of(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(1) as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_rss_is_some_megabytes() {
        let rss = super::of(std::process::id()).unwrap();
        assert!(rss > 1 << 20 && rss < 1 << 34, "{rss}");
        assert_eq!(super::of(u32::MAX - 1), None);
    }
}
