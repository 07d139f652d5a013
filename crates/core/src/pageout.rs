//! Giving back what start-up used of this program's own code.
//!
//! A binary's pages that are in the page cache are mapped around every fault
//! (the kernel's fault-around, 64 KiB), so a process that has run its
//! start-up — parsing arguments and configuration, discovering scripts,
//! importing them — keeps nearly all of its code resident, though an idle
//! daemon runs a small part of it: ~2.4 of the supervisor's 2.7 MB of code,
//! idle. [`own_code`] asks the kernel to page out the executable's read-only
//! segments (`MADV_PAGEOUT`, Linux 5.4+): their pages are unmapped and, where
//! no other process maps them, dropped from the page cache. What runs
//! afterwards faults its pages back from the file (BENCHMARKS.md, "Idle
//! memory": 1.1–1.3 MiB less for the supervisor, 0.3–0.4 MiB for a worker).
//!
//! Only the executable's segments that are never written are advised: code,
//! constants and unwind tables. Its writable segments (including RELRO,
//! written at load) hold anonymous pages that would go to swap. The kernel
//! pages out file pages only for a process that owns the file or may write
//! it (root, for the usual install); for anyone else the call changes
//! nothing. `PYTHOND_PAGEOUT=off` in the environment turns it off.

use std::ops::Range;

/// The environment variable that turns [`own_code`] off (`off`).
pub const ENV: &str = "PYTHOND_PAGEOUT";

/// Page out this executable's read-only segments; returns how many bytes
/// were advised (0 when turned off by [`ENV`]).
pub fn own_code() -> std::io::Result<usize> {
    if std::env::var_os(ENV).is_some_and(|v| v == "off") {
        return Ok(0);
    }
    let mut advised = 0;
    for r in read_only_segments() {
        // SAFETY: `r` is a whole-page part of a read-only segment mapped
        // for the program's life; paging it out changes no content.
        let rc =
            unsafe { libc::madvise(r.start as *mut libc::c_void, r.len(), libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += r.len();
    }
    Ok(advised)
}

/// The executable's loaded segments without write permission, shrunk to
/// whole pages (a page a segment shares with its writable neighbour is left
/// alone).
pub fn read_only_segments() -> Vec<Range<usize>> {
    unsafe extern "C" fn first_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader hands a valid `info` for the duration of the
        // call; `data` is the `Vec` passed below.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<Range<usize>>)) };
        let page = page_size();
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        for h in headers {
            if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = info.dlpi_addr as usize + h.p_vaddr as usize;
            let end = start + h.p_memsz as usize;
            let (start, end) = (start.next_multiple_of(page), end / page * page);
            if start < end {
                out.push(start..end);
            }
        }
        // The first object is the program itself: stop there.
        1
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    // SAFETY: the callback only reads what the loader passes and writes
    // `out`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(first_object), &mut out as *mut _ as *mut libc::c_void) };
    out
}

fn page_size() -> usize {
    // SAFETY: plain libc call.
    match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    /// Spans whole pages of the writable segment (not only one it may share
    /// with a read-only neighbour).
    static WRITTEN: [AtomicU8; 16384] = [const { AtomicU8::new(1) }; 16384];
    static TEXT: &str = "a constant of the test binary";

    fn within(segments: &[Range<usize>], addr: usize) -> bool {
        segments.iter().any(|r| r.contains(&addr))
    }

    #[test]
    fn the_segments_hold_our_code_and_constants_and_no_writable_data() {
        let s = read_only_segments();
        let code =
            the_segments_hold_our_code_and_constants_and_no_writable_data as *const () as usize;
        assert!(within(&s, code), "code at {code:#x} not in {s:x?}");
        assert!(within(&s, TEXT.as_ptr() as usize), "constant not in {s:x?}");
        WRITTEN[8192].fetch_add(1, Ordering::Relaxed);
        let data = &WRITTEN[8192] as *const AtomicU8 as usize;
        assert!(!within(&s, data), "writable static at {data:#x} in {s:x?}");
        // Not a shared library's code: libc's `getpid`.
        assert!(!within(&s, libc::getpid as *const () as usize));
        assert!(s
            .iter()
            .all(|r| r.start % page_size() == 0 && r.end % page_size() == 0));
    }

    #[test]
    fn paging_out_our_code_keeps_it_running() {
        // Before and after: the same result from code and constants the
        // kernel had to read back.
        let before = format!("{TEXT} {}", lineproto_sample());
        let advised = own_code().expect("madvise(MADV_PAGEOUT)");
        let code: usize = read_only_segments().iter().map(|r| r.len()).sum();
        assert_eq!(advised, code);
        assert_eq!(format!("{TEXT} {}", lineproto_sample()), before);
    }

    fn lineproto_sample() -> String {
        let mut v: Vec<u64> = (1..200).map(|i| i * 7919 % 211).collect();
        v.sort_unstable();
        format!("{:?}", &v[..5])
    }
}
