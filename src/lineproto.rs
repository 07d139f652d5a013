//! Line-protocol encoding with DataKit's escaping and types.
//!
//! `measurement[,tag=value...] field=value[,field=value...] timestamp_ns\n`
//!
//! Escape sets follow influxdata's line-protocol crate: the measurement escapes
//! comma and space; tag keys, tag values and field keys escape comma, equals and
//! space; string field values escape double quote. A backslash is escaped
//! everywhere so that a value ending in `\` cannot swallow the next separator.
//! The encoder trusts its input: [`crate::point`] has already refused newlines
//! in names, non-finite floats and mixed arrays.

use base64::Engine as _;

use crate::point::{ArrayValue, FieldValue, Point};

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

const MEASUREMENT_ESCAPES: &[u8] = b", \\";
const KEY_ESCAPES: &[u8] = b",= \\";
const STRING_ESCAPES: &[u8] = b"\"\\";

#[inline]
fn escape(out: &mut Vec<u8>, s: &str, set: &[u8]) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, c) in b.iter().enumerate() {
        if set.contains(c) {
            out.extend_from_slice(&b[start..i]);
            out.push(b'\\');
            out.push(*c);
            start = i + 1;
        }
    }
    out.extend_from_slice(&b[start..]);
}

#[inline]
fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
fn write_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape(out, s, STRING_ESCAPES);
    out.push(b'"');
}

fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    let start = out.len();
    let n = base64::encoded_len(b.len(), true).unwrap_or(0);
    out.resize(start + n, 0);
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(b, &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.extend_from_slice(b"\"b");
}

fn write_list<T>(out: &mut Vec<u8>, items: &[T], mut f: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f(out, it);
    }
    out.push(b']');
}

fn write_value(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::I64(i) => {
            write_i64(out, *i);
            out.push(b'i');
        }
        FieldValue::U64(u) => {
            write_u64(out, *u);
            out.push(b'u');
        }
        FieldValue::F64(f) => write_f64(out, *f),
        FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        FieldValue::Str(s) => write_str(out, s),
        FieldValue::Bytes(b) => write_bytes(out, b),
        FieldValue::Array(a) => match a {
            ArrayValue::I64(v) => write_list(out, v, |o, x| {
                write_i64(o, *x);
                o.push(b'i')
            }),
            ArrayValue::U64(v) => write_list(out, v, |o, x| {
                write_u64(o, *x);
                o.push(b'u')
            }),
            ArrayValue::F64(v) => write_list(out, v, |o, x| write_f64(o, *x)),
            ArrayValue::Bool(v) => write_list(out, v, |o, x| {
                o.extend_from_slice(if *x { b"true" } else { b"false" })
            }),
            ArrayValue::Str(v) => write_list(out, v, |o, x| write_str(o, x)),
            ArrayValue::Bytes(v) => write_list(out, v, |o, x| write_bytes(o, x)),
        },
    }
}

/// Append one point as a line (with trailing `\n`) to `out`.
pub fn encode_point(p: &Point, out: &mut Vec<u8>) {
    escape(out, &p.measurement, MEASUREMENT_ESCAPES);
    for (k, v) in &p.tags {
        out.push(b',');
        escape(out, k, KEY_ESCAPES);
        out.push(b'=');
        escape(out, v, KEY_ESCAPES);
    }
    out.push(b' ');
    for (i, (k, v)) in p.fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        escape(out, k, KEY_ESCAPES);
        out.push(b'=');
        write_value(out, v);
    }
    out.push(b' ');
    write_i64(out, p.time_ns);
    out.push(b'\n');
}
