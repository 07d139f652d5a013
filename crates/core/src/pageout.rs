//! Giving back what start-up used of the code a process maps.
//!
//! A binary's pages that are in the page cache are mapped around every fault
//! (the kernel's fault-around, 64 KiB), so a process that has run its
//! start-up — parsing arguments and configuration, discovering scripts,
//! starting an interpreter and importing them — keeps nearly all of the code
//! it touched resident, though an idle daemon runs a small part of it: ~2.4
//! of the supervisor's 2.7 MB of code, idle, and most of libpython's 4 MB in
//! a worker. [`code`] asks the kernel to page out the read-only segments of
//! the program and of the shared objects the loader mapped for it
//! (`MADV_PAGEOUT`, Linux 5.4+): their pages are unmapped, and dropped from
//! the page cache where the kernel can. What runs afterwards faults its
//! pages back (BENCHMARKS.md, "Idle memory").
//!
//! The kernel pages out only pages no other process maps (libc, or a
//! libpython another Python is running, stay as they are), and only for a
//! process that owns the file or may write it (root, for the usual install);
//! for anyone else the call changes nothing. Only segments that are never
//! written are advised: code, constants and unwind tables; writable segments
//! (including RELRO, written at load) hold anonymous pages that would go to
//! swap. `PYTHOND_PAGEOUT=off` in the environment turns it off.

use std::ops::Range;

/// The environment variable that turns [`code`] off (`off`).
pub const ENV: &str = "PYTHOND_PAGEOUT";

/// How long [`soon`] waits: for the supervisor, long enough for its
/// workers' start and the folder watcher's first sync; for a worker, for its
/// first runs, so that the first points never wait for code to come back.
pub const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// [`code`] on a blocking thread once [`SETTLE`] has passed (start-up or a
/// reload is over); the outcome is logged at debug. Needs a tokio runtime.
pub fn soon() {
    tokio::spawn(async {
        tokio::time::sleep(SETTLE).await;
        let _ = tokio::task::spawn_blocking(|| match code() {
            Ok(n) => tracing::debug!(kib = n >> 10, "code paged out"),
            Err(e) => tracing::debug!("code not (all) paged out: {e}"),
        })
        .await;
    });
}

/// Page out the read-only segments of this program and of the shared objects
/// it loaded; returns how many bytes were advised (0 when turned off by
/// [`ENV`]). Every segment is tried; the first refusal is the error.
pub fn code() -> std::io::Result<usize> {
    if std::env::var_os(ENV).is_some_and(|v| v == "off") {
        return Ok(0);
    }
    let mut advised = 0;
    let mut refused = None;
    // Advised from inside the loader's walk, which holds its lock: no
    // segment is unmapped (a `dlclose`) between being found and advised.
    each_read_only_segment(&mut |r| {
        // SAFETY: `r` is a whole-page part of a read-only segment the loader
        // has mapped; paging it out changes no content.
        let rc =
            unsafe { libc::madvise(r.start as *mut libc::c_void, r.len(), libc::MADV_PAGEOUT) };
        if rc == 0 {
            advised += r.len();
        } else if refused.is_none() {
            refused = Some(std::io::Error::last_os_error());
        }
    });
    match refused {
        Some(e) => Err(e),
        None => Ok(advised),
    }
}

/// The segments [`each_read_only_segment`] finds, collected (for the tests).
#[cfg(test)]
fn read_only_segments() -> Vec<Range<usize>> {
    let mut out = Vec::new();
    each_read_only_segment(&mut |r| out.push(r));
    out
}

/// The loaded segments without write permission of the program and of the
/// shared objects mapped from files (not the vDSO), shrunk to whole pages (a
/// page a segment shares with its writable neighbour is left alone), each
/// handed to `f` while the loader's walk is on.
fn each_read_only_segment(f: &mut dyn FnMut(Range<usize>)) {
    unsafe extern "C" fn each_object(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader hands a valid `info` for the duration of the
        // call; `data` is the `Found` passed below.
        let (info, found) = unsafe { (&*info, &mut *(data as *mut Found)) };
        let first = std::mem::replace(&mut found.first, false);
        // The program itself comes first, unnamed; the others by path. What
        // has no path (the vDSO) is not a file's pages.
        // SAFETY: a non-null `dlpi_name` is a C string.
        let from_file =
            !info.dlpi_name.is_null() && unsafe { *info.dlpi_name } == b'/' as libc::c_char;
        if !first && !from_file {
            return 0;
        }
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
                (found.f)(start..end);
            }
        }
        0
    }
    struct Found<'a> {
        first: bool,
        f: &'a mut dyn FnMut(Range<usize>),
    }
    let mut found = Found { first: true, f };
    // SAFETY: the callback only reads what the loader passes and writes
    // `found`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(each_object), &mut found as *mut _ as *mut libc::c_void) };
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
        let ours =
            the_segments_hold_our_code_and_constants_and_no_writable_data as *const () as usize;
        assert!(within(&s, ours), "code at {ours:#x} not in {s:x?}");
        assert!(within(&s, TEXT.as_ptr() as usize), "constant not in {s:x?}");
        WRITTEN[8192].fetch_add(1, Ordering::Relaxed);
        let data = &WRITTEN[8192] as *const AtomicU8 as usize;
        assert!(!within(&s, data), "writable static at {data:#x} in {s:x?}");
        // The libraries' code too: libc's `getpid`.
        assert!(within(&s, libc::getpid as *const () as usize));
        // Not the vDSO, which is no file's pages.
        // SAFETY: plain libc call.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        assert!(
            vdso != 0 && !within(&s, vdso),
            "vDSO at {vdso:#x} in {s:x?}"
        );
        assert!(s
            .iter()
            .all(|r| r.start % page_size() == 0 && r.end % page_size() == 0));
    }

    #[test]
    fn paging_out_our_code_keeps_it_running() {
        // Before and after: the same result from code and constants the
        // kernel had to read back.
        let before = format!("{TEXT} {}", lineproto_sample());
        let advised = code().expect("madvise(MADV_PAGEOUT)");
        let segments: usize = read_only_segments().iter().map(|r| r.len()).sum();
        assert_eq!(advised, segments);
        assert_eq!(format!("{TEXT} {}", lineproto_sample()), before);
    }

    fn lineproto_sample() -> String {
        let mut v: Vec<u64> = (1..200).map(|i| i * 7919 % 211).collect();
        v.sort_unstable();
        format!("{:?}", &v[..5])
    }
}
