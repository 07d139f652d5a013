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
}
