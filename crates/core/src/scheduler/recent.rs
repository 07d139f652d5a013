//! Quantiles of a job's latest runs (start delays, durations) without
//! keeping the samples.
//!
//! The status report asks every job for its p50/p99 every second. Sorting a
//! ring of the latest 1 024 samples for that cost 2 000 scripts ~100 k
//! instructions each per second once their rings were full. Here each
//! sample is counted in a log-linear bucket when it is recorded (16 buckets
//! per power of two of microseconds, so a bucket spans at most 1/16 of its
//! lower bound; exact below 32 µs), and a quantile is one walk over the few
//! buckets in use. The estimate is the middle of the bucket holding the
//! sample of that rank, clipped to the smallest and largest sample seen:
//! within ±3.2 % of the sample itself.
//!
//! "Latest" is two windows of [`WINDOW`] samples: when the current one is
//! full it becomes the previous one, so a quantile covers the latest
//! `WINDOW..2 × WINDOW` samples, as the ring covered the latest 1 024.

/// Sub-buckets per power of two (`1 << SUB_BITS`).
const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Samples up to 2^34 µs (4.7 hours) get their own bucket; larger ones
/// share the last.
const MAX_MSB: u32 = 33;
const BUCKETS: usize = (MAX_MSB - SUB_BITS + 2) as usize * SUB;

/// Samples per window.
pub const WINDOW: u16 = 512;

/// The bucket of a sample of `us` microseconds.
#[inline]
fn bucket(us: u64) -> usize {
    if us < 2 * SUB as u64 {
        return us as usize;
    }
    let msb = (63 - us.leading_zeros()).min(MAX_MSB);
    let shift = msb - SUB_BITS;
    let sub = ((us >> shift) as usize).min(2 * SUB - 1) - SUB;
    ((shift + 1) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The samples bucket `i` holds: `[low, high)` microseconds.
fn range(i: usize) -> (u64, u64) {
    if i < 2 * SUB {
        return (i as u64, i as u64 + 1);
    }
    let shift = (i / SUB - 1) as u32;
    let sub = (i % SUB) as u64;
    let low = (SUB as u64 + sub) << shift;
    (low, low + (1 << shift))
}

/// One window's counts.
#[derive(Debug, Clone)]
struct Window {
    counts: Box<[u16; BUCKETS]>,
    n: u16,
    /// Lowest and highest bucket in use, smallest and largest sample.
    lo: usize,
    hi: usize,
    min: u64,
    max: u64,
}

impl Default for Window {
    fn default() -> Window {
        Window {
            counts: Box::new([0; BUCKETS]),
            n: 0,
            lo: BUCKETS,
            hi: 0,
            min: u64::MAX,
            max: 0,
        }
    }
}

impl Window {
    fn clear(&mut self) {
        if self.n > 0 {
            self.counts[self.lo..=self.hi].fill(0);
        }
        self.n = 0;
        self.lo = BUCKETS;
        self.hi = 0;
        self.min = u64::MAX;
        self.max = 0;
    }
}

/// The latest samples of one quantity, bucketed (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Recent {
    cur: Window,
    prev: Window,
}

impl Recent {
    /// Count one sample of `us` microseconds.
    pub fn record(&mut self, us: u64) {
        if self.cur.n == WINDOW {
            std::mem::swap(&mut self.cur, &mut self.prev);
            self.cur.clear();
        }
        let w = &mut self.cur;
        let i = bucket(us);
        w.counts[i] += 1;
        w.n += 1;
        w.lo = w.lo.min(i);
        w.hi = w.hi.max(i);
        w.min = w.min.min(us);
        w.max = w.max.max(us);
    }

    /// Samples covered.
    pub fn len(&self) -> usize {
        self.cur.n as usize + self.prev.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The largest sample covered (µs), `None` when empty.
    pub fn max_us(&self) -> Option<u64> {
        (!self.is_empty()).then(|| self.cur.max.max(self.prev.max))
    }

    /// The `q` quantile (0..=1) by nearest rank, in microseconds: the
    /// sample at index `round((n - 1) × q)` of the sorted samples, within
    /// its bucket's precision. `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let rank = ((n - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        let (a, b) = (&self.cur, &self.prev);
        let lo = a.lo.min(b.lo);
        let hi = a.hi.max(b.hi);
        let min = a.min.min(b.min) as f64;
        let max = a.max.max(b.max) as f64;
        let mut seen = 0usize;
        for i in lo..=hi {
            seen += a.counts[i] as usize + b.counts[i] as usize;
            if seen > rank {
                let (low, high) = range(i);
                let mid = (low + high - 1) as f64 / 2.0;
                return Some(mid.clamp(min, max));
            }
        }
        Some(max)
    }

    /// [`Recent::quantile_us`] in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile_us(q).map(|us| us / 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn buckets_cover_every_value_once_and_in_order() {
        let mut last = (0, 0);
        for i in 0..BUCKETS {
            let (low, high) = range(i);
            assert!(low < high, "{i}");
            if i > 0 {
                assert_eq!(low, last.1, "bucket {i} starts where {} ends", i - 1);
            }
            assert_eq!(bucket(low), i);
            assert_eq!(bucket(high - 1), i);
            if low >= 2 * SUB as u64 {
                assert!((high - low) * SUB as u64 <= low, "{i}: {low}..{high}");
            }
            last = (low, high);
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn small_samples_are_exact() {
        let mut r = Recent::default();
        for us in [3, 1, 2, 30, 7] {
            r.record(us);
        }
        assert_eq!(r.quantile_us(0.0), Some(1.0));
        assert_eq!(r.quantile_us(0.5), Some(3.0));
        assert_eq!(r.quantile_us(1.0), Some(30.0));
        assert_eq!(r.max_us(), Some(30));
        assert_eq!(Recent::default().quantile_us(0.5), None);
    }

    #[test]
    fn only_the_latest_windows_count() {
        let mut r = Recent::default();
        for _ in 0..WINDOW {
            r.record(1_000_000);
        }
        for _ in 0..2 * WINDOW as usize {
            r.record(100);
        }
        assert_eq!(r.len(), 2 * WINDOW as usize);
        assert_eq!(r.quantile_us(1.0), Some(100.0));
        assert_eq!(r.max_us(), Some(100));
    }

    proptest! {
        #[test]
        fn a_quantile_is_within_its_bucket_of_the_exact_one(
            samples in proptest::collection::vec(0u64..50_000_000, 1..1500),
            q in 0.0f64..=1.0,
        ) {
            let mut r = Recent::default();
            for &s in &samples {
                r.record(s);
            }
            // What the windows cover: the latest ones.
            let (s, w) = (samples.len(), WINDOW as usize);
            let keep = if s <= w { s } else { w + (s - 1) % w + 1 };
            let mut latest = samples[samples.len() - keep..].to_vec();
            latest.sort_unstable();
            prop_assert_eq!(r.len(), latest.len());
            let exact = latest[((latest.len() - 1) as f64 * q).round() as usize] as f64;
            let est = r.quantile_us(q).unwrap();
            prop_assert!((est - exact).abs() <= exact / 31.0 + 0.5, "{} vs {}", est, exact);
        }
    }
}
