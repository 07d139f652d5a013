//! Checking and encoding a chunk of `report()` points, detached from
//! Python, on two threads: the calling one and, for a big list, a helper
//! that lives for that `report()` call. Each takes half of the chunk; the
//! halves are joined in order, so the lines and the first point that needs
//! the reference path are those of one thread encoding alone.
//!
//! Only plain Rust data crosses: the chunk's [`RawPoints`] (whose strings
//! the caller holds alive until the chunk is encoded, see `read::Keep`),
//! the options and the input's tags. The caller waits for the helper's half
//! before it returns, so the chunk it lent is never used after.

use std::sync::mpsc;

use pythond_core::lineproto::Lines;
use pythond_core::lineproto::{encode_fast, RawPoints};
use pythond_core::point::ConvertOptions;

/// Chunks at least this big are split between the two threads.
const SPLIT_POINTS: usize = 512;

/// Encode points `from..to` of `raw` into `lines`; `Err(j)`: point `j`
/// needs the reference path (the points before it are in `lines`).
fn encode_range(
    raw: &RawPoints,
    from: usize,
    to: usize,
    opts: &ConvertOptions,
    input_tags: &[(String, String)],
    lines: &mut Lines,
) -> Result<(), usize> {
    for j in from..to {
        encode_fast(raw, j, opts, input_tags, lines).map_err(|_| j)?;
    }
    Ok(())
}

/// A half chunk for the helper: the arena (lent, see the module docs), its
/// range, and lines to fill.
struct Job {
    raw: Lent,
    from: usize,
    to: usize,
    lines: Lines,
}

/// The arena lent to the helper for one job.
struct Lent(*const RawPoints);

// SAFETY: `RawPoints` is plain data (offsets, lengths, the addresses of
// strings kept alive by the lender); the lender does not touch it and
// waits for the job's answer before it lends, changes or drops it again
// (`Helper::encode`).
unsafe impl Send for Lent {}

/// The helper thread of one `report()` call.
pub(super) struct Helper {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<(Lines, Result<(), usize>)>,
    /// Lines handed back by the helper, reused for its next job.
    spare: Option<Lines>,
    /// The helper's half of the chunk being encoded, kept while the caller
    /// takes a point of the first half through the reference path: its
    /// start, its lines and its result.
    pending: Option<(usize, Lines, Result<(), usize>)>,
}

impl Helper {
    /// Start the helper inside `scope`; `None` when no thread can be had
    /// (then one thread encodes everything).
    pub(super) fn spawn<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        opts: &'env ConvertOptions,
        input_tags: &'env [(String, String)],
    ) -> Option<Helper> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name("report-encode".into())
            .spawn_scoped(scope, move || {
                while let Ok(mut job) = rx.recv() {
                    // SAFETY: see `Lent`: the arena is alive and unchanged
                    // until this job is answered.
                    let raw = unsafe { &*job.raw.0 };
                    job.lines.clear();
                    let r = encode_range(raw, job.from, job.to, opts, input_tags, &mut job.lines);
                    if tx.send((job.lines, r)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs,
            done,
            spare: Some(Lines::new()),
            pending: None,
        })
    }

    /// Encode points `from..` of `raw` into `lines`, the second half on the
    /// helper when the range is big enough; `Err(j)` as [`encode_range`].
    ///
    /// After `Err(j)` the caller takes point `j` through the reference path
    /// and calls again from `j + 1` with the same `raw`, until `Ok`: a
    /// point of the first half that fails keeps the helper's half for the
    /// next call, which encodes the rest of the first half and appends it,
    /// instead of encoding it again (a chunk with a few such points cost up
    /// to one half-chunk each, waited for).
    pub(super) fn encode(
        mut helper: Option<&mut Helper>,
        raw: &RawPoints,
        from: usize,
        opts: &ConvertOptions,
        input_tags: &[(String, String)],
        lines: &mut Lines,
    ) -> Result<(), usize> {
        let to = raw.len();
        if let Some(h) = helper.as_deref_mut() {
            if let Some((mid, part, r)) = h.pending.take() {
                debug_assert!(from <= mid, "the same chunk, before the helper's half");
                if let Err(j) = encode_range(raw, from, mid, opts, input_tags, lines) {
                    h.pending = Some((mid, part, r));
                    return Err(j);
                }
                lines.append(&part);
                h.spare = Some(part);
                return r;
            }
        }
        let Some(h) = helper.filter(|_| to.saturating_sub(from) >= SPLIT_POINTS) else {
            return encode_range(raw, from, to, opts, input_tags, lines);
        };
        let mid = from + (to - from) / 2;
        let job = Job {
            raw: Lent(raw),
            from: mid,
            to,
            lines: h.spare.take().unwrap_or_default(),
        };
        let sent = h.jobs.send(job).is_ok();
        let first = encode_range(raw, from, mid, opts, input_tags, lines);
        // Always wait for the helper's answer: it reads `raw`.
        let second = if sent { h.done.recv().ok() } else { None };
        match (first, second) {
            (Ok(()), Some((part, r))) => {
                lines.append(&part);
                h.spare = Some(part);
                r
            }
            (Err(j), Some((part, r))) => {
                h.pending = Some((mid, part, r));
                Err(j)
            }
            (Err(j), None) => Err(j),
            // The helper is gone (it panicked): this thread does its half.
            (Ok(()), None) => encode_range(raw, mid, to, opts, input_tags, lines),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(n: usize, bad: Option<usize>) -> RawPoints {
        arena_bad(n, bad.as_slice())
    }

    /// `n` points, those at `bad` with an empty measurement (the fast path
    /// refuses them).
    fn arena_bad(n: usize, bad: &[usize]) -> RawPoints {
        let mut rp = RawPoints::new();
        for i in 0..n {
            let m = rp.str(if bad.contains(&i) { "" } else { "m" });
            rp.begin_point(m);
            rp.fields();
            let k = rp.str("i");
            rp.item(k, pythond_core::lineproto::Val::Int(i as i64));
            rp.end_point(pythond_core::lineproto::Val::Int(1));
        }
        rp
    }

    const OPTS: ConvertOptions = ConvertOptions {
        numbers_as_float: false,
        precision: Some(pythond_core::point::Precision::Nanos),
        now_ns: 0,
    };

    /// What `encode_chunks` does with a chunk: encode, and after `Err(j)`
    /// put a marker line for the reference path's point and go on.
    fn drive(mut helper: Option<&mut Helper>, raw: &RawPoints) -> (Lines, Vec<usize>) {
        let mut lines = Lines::new();
        let mut fell_back = Vec::new();
        let mut from = 0;
        while let Err(j) = Helper::encode(helper.as_deref_mut(), raw, from, &OPTS, &[], &mut lines)
        {
            fell_back.push(j);
            let marker = arena(1, None);
            let _ = encode_range(&marker, 0, 1, &OPTS, &[], &mut lines);
            from = j + 1;
        }
        (lines, fell_back)
    }

    #[test]
    fn points_that_fall_back_in_either_half_keep_one_threads_order() {
        std::thread::scope(|s| {
            let mut h = Helper::spawn(s, &OPTS, &[]).expect("a thread");
            for bad in [
                vec![],
                vec![3, 10, 2000],
                vec![2600, 4000],
                vec![1, 2501, 2502, 4999],
            ] {
                let raw = arena_bad(5000, &bad);
                let two = drive(Some(&mut h), &raw);
                let one = drive(None, &raw);
                assert_eq!(two.1, bad, "every bad point, in order");
                assert_eq!(two, one, "{bad:?}");
                assert!(h.pending.is_none(), "nothing left over after the chunk");
            }
        });
    }

    fn alone(raw: &RawPoints, from: usize) -> (Lines, Result<(), usize>) {
        let mut lines = Lines::new();
        let r = encode_range(raw, from, raw.len(), &OPTS, &[], &mut lines);
        (lines, r)
    }

    #[test]
    fn two_threads_give_the_lines_and_the_first_fallback_of_one() {
        std::thread::scope(|s| {
            for (n, bad, from) in [
                (5000, None, 0),
                (5000, Some(4000), 0),
                (5000, Some(10), 0),
                (5000, Some(2600), 2601),
                (100, Some(50), 0),
            ] {
                // One helper per case: after an `Err` the caller owes it the
                // rest of the chunk (see `points_that_fall_back_...`).
                let mut h = Helper::spawn(s, &OPTS, &[]).expect("a thread");
                let raw = arena(n, bad);
                let mut lines = Lines::new();
                let r = Helper::encode(Some(&mut h), &raw, from, &OPTS, &[], &mut lines);
                let (want, want_r) = alone(&raw, from);
                assert_eq!(r, want_r, "{n} {bad:?} {from}");
                assert_eq!(lines, want, "{n} {bad:?} {from}");
            }
        });
    }
}
