//! Seconds that users give (a block's `timeout`, a class's `interval` and
//! `timeout`) turned into a [`Duration`], within bounds.
//!
//! `Duration::from_secs_f64` panics on infinity, NaN and anything beyond
//! `u64::MAX` seconds, and the scheduler cannot tick at a zero interval. So
//! every such number goes through [`to_duration`]: from 1 ms to 365 days,
//! anything else is a clear error naming the value. A year is far beyond any
//! collector's period (daily and weekly ones exist) and keeps every sum the
//! scheduler makes with it (twice the interval as the default timeout, a
//! backoff, a deadline from now) far from overflowing.

use std::time::Duration;

/// The shortest interval or timeout: 1 ms.
pub const MIN_SECS: f64 = 0.001;
/// The longest interval or timeout: 365 days.
pub const MAX_SECS: f64 = 365.0 * 86_400.0;

/// A number of seconds outside [`MIN_SECS`]..=[`MAX_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SecondsError {
    #[error("{0:?} is not a finite number of seconds; {RANGE}")]
    NotFinite(f64),
    #[error("{0:?} s is too long; {RANGE}")]
    TooLong(f64),
    #[error("{0:?} s is too short; {RANGE}")]
    TooShort(f64),
}

const RANGE: &str = "use 0.001 to 31536000 seconds (365 days)";

/// `secs` as a [`Duration`], if within bounds.
pub fn to_duration(secs: f64) -> Result<Duration, SecondsError> {
    if !secs.is_finite() {
        return Err(SecondsError::NotFinite(secs));
    }
    if secs > MAX_SECS {
        return Err(SecondsError::TooLong(secs));
    }
    if secs < MIN_SECS {
        return Err(SecondsError::TooShort(secs));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A command-line number of seconds that cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("{0:?} is not a number of seconds")]
    NotANumber(String),
    #[error("{0} is out of range: use 0 to {MAX_SECS} seconds")]
    OutOfRange(String),
}

/// A command-line number of seconds (`--grace-secs 5`): finite, from 0 to
/// [`MAX_SECS`] (0 is allowed: no grace). For clap's `value_parser`.
pub fn parse_arg(s: &str) -> Result<f64, ArgError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| ArgError::NotANumber(s.to_owned()))?;
    if !v.is_finite() || !(0.0..=MAX_SECS).contains(&v) {
        return Err(ArgError::OutOfRange(s.to_owned()));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_seconds_are_finite_and_bounded() {
        assert_eq!(parse_arg("5"), Ok(5.0));
        assert_eq!(parse_arg("0"), Ok(0.0));
        for v in ["inf", "1e300", "-1", "nan"] {
            let e = parse_arg(v).unwrap_err();
            assert_eq!(e, ArgError::OutOfRange(v.into()));
            assert!(e.to_string().contains("out of range"), "{e}");
        }
        let e = parse_arg("soon").unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
    }

    #[test]
    fn values_within_bounds_convert() {
        assert_eq!(to_duration(0.25), Ok(Duration::from_millis(250)));
        assert_eq!(to_duration(MAX_SECS), Ok(Duration::from_secs(31_536_000)));
        assert_eq!(to_duration(MIN_SECS), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn infinite_huge_and_tiny_values_are_errors_not_panics() {
        assert_eq!(
            to_duration(f64::INFINITY).unwrap_err().to_string(),
            "inf is not a finite number of seconds; use 0.001 to 31536000 seconds (365 days)"
        );
        assert!(matches!(
            to_duration(f64::NAN),
            Err(SecondsError::NotFinite(_))
        ));
        assert_eq!(
            to_duration(1e300).unwrap_err().to_string(),
            "1e300 s is too long; use 0.001 to 31536000 seconds (365 days)"
        );
        assert!(matches!(to_duration(1e20), Err(SecondsError::TooLong(_))));
        assert!(matches!(
            to_duration(1e-300),
            Err(SecondsError::TooShort(_))
        ));
    }
}
