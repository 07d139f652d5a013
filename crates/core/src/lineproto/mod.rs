//! Line-protocol encoding with DataKit's escaping and types.
//!
//! `measurement[,tag=value...] field=value[,field=value...] timestamp_ns\n`
//!
//! Escapes are DataKit's (its parser is influxdb1 `models`, as forked by
//! GuanceCloud; `docs/compat.md#data-rules`): the measurement escapes comma
//! and space; tag keys, tag values and field keys escape comma, equals and
//! space; string field values escape double quote and backslash. **A
//! backslash in a name is written as it is**: that parser unescapes only
//! `\,` `\ ` `\=` in names, so `\\` would arrive doubled (a tag value
//! `C:\dir` arrives as `C:\dir`). What no escape can express there (a
//! trailing backslash, a misread field key) is handled by [`crate::point`].
//! Newlines are written raw inside string fields.
//!
//! Tests parse our output with influxdata's `influxdb-line-protocol` crate, an
//! independent parser. It agrees with DataKit everywhere except a backslash
//! right before `\` `,` `=` or space in a name (it reads `\\` as one
//! backslash); those cases are pinned by exact bytes, following DataKit's
//! parser, and left out of the property tests.
//!
//! The encoder trusts its input: [`crate::point`] has already refused newlines
//! in names, non-finite floats and mixed arrays.

mod fast;
mod float;

pub use fast::{
    encode_fast, encode_with, Fallback, LineScratch, LineWriter, Mark, RawPoints, Scalar, Span, Val,
};

use base64::Engine as _;

use crate::point::{ArrayValue, FieldValue, Point};

const MEASUREMENT_ESCAPES: &Escapes = &escapes(b", ");
const KEY_ESCAPES: &Escapes = &escapes(b",= ");
const STRING_ESCAPES: &Escapes = &escapes(b"\"\\");

/// Which bytes an escape set escapes, by byte value.
type Escapes = [bool; 256];

const fn escapes(set: &[u8]) -> Escapes {
    let mut t = [false; 256];
    let mut i = 0;
    while i < set.len() {
        t[set[i] as usize] = true;
        i += 1;
    }
    t
}

#[inline]
fn escape(out: &mut Vec<u8>, s: &str, set: &Escapes) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if set[c as usize] {
            out.extend_from_slice(&b[start..i]);
            out.push(b'\\');
            out.push(c);
            start = i + 1;
        }
    }
    out.extend_from_slice(&b[start..]);
}

#[inline]
pub(crate) fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

#[inline]
fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

pub(crate) use float::write_f64;

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
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

/// Points already encoded, one line each, with where each line ends.
///
/// The runtime encodes a script's points as it converts them, so a
/// `report()` of 100 000 points holds ~10 MB of lines instead of ~100 MB of
/// [`Point`]s, and the allocations of each point are reused for the next.
/// Line ends are kept because a string field may hold a raw newline: the
/// writer cuts batches only at real line boundaries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lines {
    body: Vec<u8>,
    ends: Vec<usize>,
}

impl Lines {
    pub fn new() -> Lines {
        Lines::default()
    }

    /// Empty, with room for `lines` lines of `bytes` bytes in all.
    pub fn with_capacity(lines: usize, bytes: usize) -> Lines {
        Lines {
            body: Vec::with_capacity(bytes),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Room for lines and bytes without reallocating: `(lines, bytes)`.
    pub fn capacity(&self) -> (usize, usize) {
        (self.ends.capacity(), self.body.capacity())
    }

    pub fn push(&mut self, p: &Point) {
        encode_point(p, &mut self.body);
        self.ends.push(self.body.len());
    }

    /// Append one line that `write` encodes straight into the body (it must
    /// end the line with `\n`). On `Err` nothing of it is kept.
    #[inline]
    pub fn push_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.body.len();
        match write(&mut self.body) {
            Ok(()) => {
                self.ends.push(self.body.len());
                Ok(())
            }
            Err(e) => {
                self.body.truncate(start);
                Err(e)
            }
        }
    }

    /// Keep the first `n` lines only (a call that failed half-way takes
    /// back what it had added).
    pub fn truncate(&mut self, n: usize) {
        if n < self.ends.len() {
            self.body.truncate(self.start(n));
            self.ends.truncate(n);
        }
    }

    /// Append every line of `other`.
    pub fn append(&mut self, other: &Lines) {
        let base = self.body.len();
        self.body.extend_from_slice(&other.body);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }

    /// Bytes of the encoded lines.
    pub fn byte_len(&self) -> usize {
        self.body.len()
    }

    /// Empty, keeping the allocations.
    pub fn clear(&mut self) {
        self.body.clear();
        self.ends.clear();
    }

    /// Number of lines (points).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All lines, each ending in `\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Where line `i` ends in [`Lines::as_bytes`] (exclusive).
    pub fn end(&self, i: usize) -> usize {
        self.ends[i]
    }

    /// Every line's end, in order.
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }

    /// Where line `i` starts.
    pub fn start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.ends[i - 1]
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every line we write is read back by influxdata's `influxdb-line-protocol`
    //! parser (an independent implementation) and compared value by value.
    //! That parser does not know DataKit's arrays and `"..."b` binary fields:
    //! those are checked byte for byte against DataKit's documented form, and
    //! the rest of such a line still goes through the parser.
    use super::*;
    use crate::point::{ArrayValue, FieldValue, Point};
    use influxdb_line_protocol::{parse_lines, FieldValue as PF};
    use proptest::prelude::*;

    fn point(m: &str, tags: &[(&str, &str)], fields: Vec<(&str, FieldValue)>) -> Point {
        Point {
            measurement: m.into(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            time_ns: 1_700_000_000_123_456_789,
        }
    }

    fn line(p: &Point) -> String {
        let mut out = Vec::new();
        encode_point(p, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        String::from_utf8(out).unwrap()
    }

    /// Parse with the independent parser and compare with the point.
    fn roundtrip(p: &Point) {
        let text = line(p);
        let parsed: Vec<_> = parse_lines(&text).collect();
        assert_eq!(parsed.len(), 1, "{text:?}");
        let l = parsed
            .into_iter()
            .next()
            .unwrap()
            .unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(l.series.measurement.to_string(), p.measurement, "{text:?}");
        let tags: Vec<(String, String)> = l
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(tags, p.tags, "{text:?}");
        assert_eq!(l.field_set.len(), p.fields.len(), "{text:?}");
        for ((k, v), (pk, pv)) in l.field_set.iter().zip(&p.fields) {
            assert_eq!(&k.to_string(), pk, "{text:?}");
            match (v, pv) {
                (PF::I64(a), FieldValue::I64(b)) => assert_eq!(a, b),
                (PF::U64(a), FieldValue::U64(b)) => assert_eq!(a, b),
                (PF::F64(a), FieldValue::F64(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits(), "{text:?}")
                }
                (PF::Boolean(a), FieldValue::Bool(b)) => assert_eq!(a, b),
                (PF::String(a), FieldValue::Str(b)) => assert_eq!(&a.to_string(), b, "{text:?}"),
                (a, b) => panic!("type changed: {a:?} vs {b:?} in {text:?}"),
            }
        }
        assert_eq!(l.timestamp, Some(p.time_ns));
    }

    #[test]
    fn typical_point_roundtrips_with_types() {
        roundtrip(&point(
            "cpu",
            &[("host", "h1"), ("region", "eu")],
            vec![
                ("i", FieldValue::I64(-42)),
                ("u", FieldValue::U64(u64::MAX)),
                ("f", FieldValue::F64(3.25)),
                ("b", FieldValue::Bool(true)),
                ("s", FieldValue::Str("text".into())),
            ],
        ));
    }

    #[test]
    fn integral_float_stays_a_float() {
        let p = point("m", &[], vec![("f", FieldValue::F64(3.0))]);
        assert!(line(&p).contains("f=3.0 "), "{}", line(&p));
        roundtrip(&p);
    }

    #[test]
    fn measurement_escapes_comma_and_space() {
        let p = point("a,b c", &[], vec![("f", FieldValue::I64(1))]);
        assert!(line(&p).starts_with("a\\,b\\ c "));
        roundtrip(&p);
    }

    #[test]
    fn tag_key_and_value_escape_comma_equals_and_space() {
        let p = point(
            "m",
            &[("k,=k y", "v,=v w")],
            vec![("f", FieldValue::I64(1))],
        );
        assert!(
            line(&p).starts_with("m,k\\,\\=k\\ y=v\\,\\=v\\ w "),
            "{}",
            line(&p)
        );
        roundtrip(&p);
    }

    #[test]
    fn field_key_escapes_comma_equals_and_space() {
        roundtrip(&point("m", &[], vec![("a b,c=d", FieldValue::I64(1))]));
    }

    #[test]
    fn string_field_escapes_quote_and_backslash_and_keeps_newlines() {
        let p = point(
            "m",
            &[],
            vec![("s", FieldValue::Str("say \"hi\"\\ \nnext, x=y".into()))],
        );
        assert!(line(&p).contains(r#"s="say \"hi\"\\ "#), "{}", line(&p));
        roundtrip(&p);
    }

    #[test]
    fn backslashes_inside_names_are_kept() {
        roundtrip(&point(
            "m\\x",
            &[("a\\b", "C:\\dir\\x"), ("b", "y")],
            vec![("f\\g", FieldValue::I64(1))],
        ));
    }

    #[test]
    fn backslashes_in_names_are_written_as_datakit_reads_them() {
        // DataKit's parser escapes a separator by the byte before it and
        // unescapes only `\,` `\ ` `\=`: these bytes arrive as `x\,y\ z`,
        // `C:\dir` and `a\\b`. (The independent parser would read `\\` as one
        // backslash: exact bytes here.)
        let p = point(
            "m\\x",
            &[("a", "x\\,y\\ z"), ("p", "C:\\dir"), ("d", "a\\\\b")],
            vec![("f", FieldValue::I64(1))],
        );
        assert_eq!(
            line(&p),
            "m\\x,a=x\\\\,y\\\\ z,p=C:\\dir,d=a\\\\b f=1i 1700000000123456789\n"
        );
    }

    #[test]
    fn binary_is_base64_with_b_suffix() {
        let p = point(
            "m",
            &[],
            vec![
                ("bin", FieldValue::Bytes(b"\x00\xffhi".to_vec())),
                ("f", FieldValue::I64(1)),
            ],
        );
        assert_eq!(line(&p), "m bin=\"AP9oaQ==\"b,f=1i 1700000000123456789\n");
    }

    #[test]
    fn arrays_are_bracketed_with_typed_elements() {
        let p = point(
            "m",
            &[],
            vec![
                ("i", FieldValue::Array(ArrayValue::I64(vec![1, -2]))),
                ("u", FieldValue::Array(ArrayValue::U64(vec![3]))),
                ("f", FieldValue::Array(ArrayValue::F64(vec![1.5, 2.0]))),
                ("b", FieldValue::Array(ArrayValue::Bool(vec![true, false]))),
                (
                    "s",
                    FieldValue::Array(ArrayValue::Str(vec!["a\"".into(), "b".into()])),
                ),
            ],
        );
        assert_eq!(
            line(&p),
            "m i=[1i,-2i],u=[3u],f=[1.5,2.0],b=[true,false],s=[\"a\\\"\",\"b\"] 1700000000123456789\n"
        );
    }

    fn name() -> impl Strategy<Value = String> {
        // Any unicode but C0 controls (the point rules refuse \n \r \t; the
        // independent parser also refuses NUL in a measurement), non-empty,
        // not ending in a backslash: what the point rules let through.
        // Backslashes only before characters where DataKit's parser and the
        // independent one agree (see the module docs).
        "[^\x00-\x1f]{1,12}".prop_filter("valid name", |s| {
            !s.starts_with('#')
                && !s.ends_with('\\')
                && !s
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'\\' && matches!(w[1], b'\\' | b',' | b'=' | b' '))
        })
    }

    fn scalar() -> impl Strategy<Value = FieldValue> {
        prop_oneof![
            any::<i64>().prop_map(FieldValue::I64),
            (i64::MAX as u64..=u64::MAX).prop_map(FieldValue::U64),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(FieldValue::F64),
            any::<bool>().prop_map(FieldValue::Bool),
            ".{0,20}".prop_map(FieldValue::Str),
            "[\"\\\\,= \n]{0,8}".prop_map(FieldValue::Str),
        ]
    }

    proptest! {
        #[test]
        fn any_point_roundtrips_through_the_independent_parser(
            m in name(),
            tags in proptest::collection::btree_map(name(), name(), 0..4),
            fields in proptest::collection::btree_map(name(), scalar(), 1..5),
        ) {
            // Trailing/leading whitespace is trimmed by some parsers only in
            // keys starting a line; measurement never starts with space here.
            prop_assume!(!m.starts_with(' '));
            let p = Point {
                measurement: m,
                tags: tags.into_iter().collect(),
                fields: fields.into_iter().collect(),
                time_ns: 1_700_000_000_000_000_000,
            };
            roundtrip(&p);
        }
    }
}
