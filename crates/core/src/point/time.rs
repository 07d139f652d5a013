//! Timestamps: the precision a script may give with `report()`, and how a
//! timestamp without one is read (DataKit guesses the unit by magnitude).

/// Timestamp precision a script may give with `report(..., precision=...)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    Nanos,
    Micros,
    Millis,
    Seconds,
    Minutes,
    Hours,
}

impl Precision {
    /// Parse `n`, `u`, `ms`, `s`, `m`, `h`.
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "n" | "ns" => Precision::Nanos,
            "u" | "us" => Precision::Micros,
            "ms" => Precision::Millis,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }

    fn nanos(self) -> i64 {
        match self {
            Precision::Nanos => 1,
            Precision::Micros => 1_000,
            Precision::Millis => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// Convert a timestamp to nanoseconds: with a precision, multiply; without,
/// guess the unit from the magnitude as DataKit does. `None` on overflow.
pub fn normalize_time(t: i64, precision: Option<Precision>) -> Option<i64> {
    let p = match precision {
        Some(p) => p,
        None => guess_precision(t),
    };
    t.checked_mul(p.nanos())
}

/// A float timestamp to nanoseconds, keeping its fraction: `1.5` with
/// precision `s` is 1_500_000_000 ns. Without a precision the unit is guessed
/// from the magnitude of its integer part, as for an int. The whole and the
/// fractional parts are scaled separately, so the result is the float's exact
/// value rounded to the nearest nanosecond (the resolution of line protocol),
/// not the product's rounding error. `None` when it is not finite or does not
/// fit an i64 of nanoseconds.
pub fn normalize_time_f64(t: f64, precision: Option<Precision>) -> Option<i64> {
    if !t.is_finite() || t.abs() >= 9.3e18 {
        return None;
    }
    let whole = t.trunc();
    // Exact: `t - trunc(t)` loses no bits for any finite f64.
    let frac = t - whole;
    let whole = whole as i64;
    let p = match precision {
        Some(p) => p,
        None => guess_precision(whole),
    };
    let nanos = i128::from(p.nanos());
    let frac_ns = (frac * p.nanos() as f64).round() as i128;
    let ns = i128::from(whole).checked_mul(nanos)? + frac_ns;
    i64::try_from(ns).ok()
}

/// DataKit's guess for a timestamp without precision, by number of digits.
fn guess_precision(t: i64) -> Precision {
    let a = t.unsigned_abs();
    if a < 10_000_000_000 {
        Precision::Seconds
    } else if a < 10_000_000_000_000 {
        Precision::Millis
    } else if a < 10_000_000_000_000_000 {
        Precision::Micros
    } else {
        Precision::Nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_guessed_by_magnitude_or_converted() {
        assert_eq!(
            normalize_time(1_716_544_492, None),
            Some(1_716_544_492_000_000_000)
        );
        assert_eq!(
            normalize_time(1_716_544_492_000, None),
            Some(1_716_544_492_000_000_000)
        );
        assert_eq!(
            normalize_time(1_716_544_492_000_000, None),
            Some(1_716_544_492_000_000_000)
        );
        assert_eq!(
            normalize_time(1_716_544_492_000_000_000, None),
            Some(1_716_544_492_000_000_000)
        );
        assert_eq!(
            normalize_time(2, Some(Precision::Hours)),
            Some(7_200_000_000_000)
        );
        assert_eq!(
            normalize_time(i64::MAX / 10, Some(Precision::Seconds)),
            None
        );
        assert_eq!(Precision::parse("ms"), Some(Precision::Millis));
        assert_eq!(Precision::parse("x"), None);
    }

    #[test]
    fn float_timestamps_keep_their_fraction_scaled_to_the_precision() {
        let s = Some(Precision::Seconds);
        assert_eq!(normalize_time_f64(1.5, s), Some(1_500_000_000));
        assert_eq!(normalize_time_f64(-1.5, s), Some(-1_500_000_000));
        assert_eq!(
            normalize_time_f64(1_716_544_492.5, s),
            Some(1_716_544_492_500_000_000)
        );
        assert_eq!(
            normalize_time_f64(1.25, Some(Precision::Minutes)),
            Some(75_000_000_000)
        );
        assert_eq!(
            normalize_time_f64(1_716_544_492_123.5, Some(Precision::Millis)),
            Some(1_716_544_492_123_500_000)
        );
        // Below a nanosecond: rounded to the nearest one.
        assert_eq!(normalize_time_f64(2.5, Some(Precision::Nanos)), Some(3));
        assert_eq!(normalize_time_f64(0.4, Some(Precision::Nanos)), Some(0));
    }

    #[test]
    fn float_timestamps_without_precision_are_guessed_by_their_integer_part() {
        assert_eq!(
            normalize_time_f64(1_716_544_492.25, None),
            Some(1_716_544_492_250_000_000)
        );
        assert_eq!(
            normalize_time_f64(1_716_544_492_123.5, None),
            Some(1_716_544_492_123_500_000)
        );
        assert_eq!(
            normalize_time_f64(1_716_544_492_123_456.5, None),
            Some(1_716_544_492_123_456_500)
        );
        // Integral floats mean what the same int means.
        for t in [1_716_544_492i64, 1_716_544_492_123, 17_165_444_921_234_560] {
            assert_eq!(normalize_time_f64(t as f64, None), normalize_time(t, None));
        }
    }

    #[test]
    fn float_timestamps_out_of_range_or_not_finite_are_refused() {
        let s = Some(Precision::Seconds);
        assert_eq!(normalize_time_f64(f64::NAN, s), None);
        assert_eq!(normalize_time_f64(f64::INFINITY, None), None);
        assert_eq!(normalize_time_f64(1e12, s), None);
        assert_eq!(normalize_time_f64(1e19, None), None);
        assert_eq!(normalize_time_f64(-1e300, None), None);
    }
}
