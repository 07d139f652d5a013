//! Floats as line protocol writes them: the shortest digits that read back
//! as the same `f64`, in `ryu`'s notation (`1.5`, `3.0`, `0.001`, `1e-7`,
//! `1e16`).
//!
//! `ryu` finds the shortest digits by computing 17 and removing the ones
//! that are not needed, one division at a time: ~800 instructions for a
//! value like `1.5`, more than the rest of a typical point's line. Most
//! metric values are short decimals, and for those the shortest digits can
//! be found directly: if `a × 10^k` is an integer `n` of at most 15 digits
//! and `n / 10^k` (both exact in an `f64`, the division correctly rounded)
//! is `a` again, then the decimal `n × 10^-k` reads back as `a`. Decimals of
//! at most 15 significant digits read back as distinct doubles (that is
//! what `f64::DIGITS` = 15 means), so no other decimal of at most that many
//! digits, and in particular not `ryu`'s shortest one, reads back as `a`:
//! they are the same number, written here in `ryu`'s notation. Everything
//! else goes to `ryu`. A property test compares the two on random values.

/// Exact powers of ten in an `f64`.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// Decimals with more places than this go to `ryu` (the search would cost
/// more than it saves).
const MAX_PLACES: usize = 9;

/// Write finite `v` as `ryu::Buffer::format_finite` does.
#[inline]
pub(crate) fn write_f64(out: &mut Vec<u8>, v: f64) {
    if !write_short(out, v) {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// `v` written if it is a short decimal in the range `ryu` writes without
/// an exponent; `false` (nothing written) otherwise.
#[inline]
fn write_short(out: &mut Vec<u8>, v: f64) -> bool {
    let a = v.abs();
    // Below 1e-5 ryu writes an exponent; from 1e15 on, 16 digits can be
    // needed (and from 1e16 an exponent). NaN fails both comparisons; zero
    // (and its sign) is left to ryu.
    if !(1e-5..1e15).contains(&a) {
        return false;
    }
    for (k, p) in POW10.iter().enumerate().take(MAX_PLACES + 1) {
        let s = a * p;
        if s >= 1e15 {
            return false;
        }
        let n = s as u64;
        if n as f64 != s {
            continue;
        }
        if n as f64 / p != a {
            return false;
        }
        if v < 0.0 {
            out.push(b'-');
        }
        let scale = *p as u64;
        let (int, mut frac) = (n / scale, n % scale);
        out.extend_from_slice(itoa::Buffer::new().format(int).as_bytes());
        out.push(b'.');
        if frac == 0 {
            out.push(b'0');
            return true;
        }
        // `k` places, zero-padded, trailing zeros dropped.
        let mut places = k;
        while frac % 10 == 0 {
            frac /= 10;
            places -= 1;
        }
        let mut digits = [b'0'; MAX_PLACES];
        for d in digits[..places].iter_mut().rev() {
            *d = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        out.extend_from_slice(&digits[..places]);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours(v: f64) -> String {
        let mut out = Vec::new();
        write_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn ryu(v: f64) -> String {
        ryu::Buffer::new().format_finite(v).to_owned()
    }

    #[test]
    fn short_decimals_are_written_as_ryu_writes_them() {
        for v in [
            1.5,
            -1.5,
            3.0,
            0.1,
            0.2,
            0.3,
            3.4,
            100.25,
            0.001,
            0.00001,
            0.0001234,
            123456.789,
            99999999999999.9,
            999999999999999.0,
            1e14,
            0.5,
            2.675,
            1.0000001,
            42.0,
            -0.75,
        ] {
            assert_eq!(ours(v), ryu(v), "{v:e}");
        }
    }

    #[test]
    fn what_the_fast_path_leaves_to_ryu_is_still_written_by_ryu() {
        for v in [
            0.0,
            -0.0,
            1e-6,
            9.99e-6,
            1e15,
            1e16,
            1e300,
            0.1 + 0.2,
            std::f64::consts::PI,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ] {
            assert_eq!(ours(v), ryu(v), "{v:e}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20000))]
        #[test]
        fn any_float_is_written_as_ryu_writes_it(v in any::<f64>().prop_filter("finite", |v| v.is_finite())) {
            prop_assert_eq!(ours(v), ryu(v));
        }

        #[test]
        fn any_short_decimal_is_written_as_ryu_writes_it(n in 0u64..2_000_000_000_000_000, k in 0u32..18, neg in any::<bool>()) {
            let v = n as f64 / 10f64.powi(k as i32);
            let v = if neg { -v } else { v };
            prop_assert_eq!(ours(v), ryu(v));
        }

        #[test]
        fn any_integer_valued_float_is_written_as_ryu_writes_it(n in any::<i64>()) {
            prop_assert_eq!(ours(n as f64), ryu(n as f64));
        }
    }
}
