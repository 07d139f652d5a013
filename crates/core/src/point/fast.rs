//! The fast path of the data rules: points made only of the common scalar
//! types (str, int within i64, float, bool, None) checked and encoded straight
//! into line protocol, with no [`RawPoint`](super::RawPoint) or
//! [`Point`](super::Point) in between.
//!
//! The runtime reads what a script gave into [`RawPoints`] (a flat arena:
//! one byte buffer for every string, one vector of items, no allocation per
//! point once warm), then [`encode_fast`] applies the rules and writes the
//! line. This is what lets `report()` read a chunk of points while attached
//! to Python and check and encode it detached, with the interpreter free.
//!
//! The fast path is not a second definition of the rules: it only ever
//! *accepts*. Anything it does not handle the way [`RawPoint::into_point`]
//! would, every error included, is a [`Fallback`]: the caller then runs the
//! reference path on that point (which produces the error message, or the
//! point). The two are compared by a property test below: whenever the fast
//! path writes a line, it is the line the reference path writes.
//!
//! [`RawPoint::into_point`]: super::RawPoint::into_point

use super::rules::{check_chars, field_key_misread};
use super::{normalize_time, normalize_time_f64, ConvertOptions};
use crate::lineproto::{
    escape, write_f64, write_i64, write_str, Lines, KEY_ESCAPES, MEASUREMENT_ESCAPES,
};

/// Where a string is in [`RawPoints`]' byte buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

/// A scalar as a script gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Span),
}

#[derive(Debug, Clone)]
struct Rec {
    measurement: Span,
    /// `items[tags.0..fields_at]` are tags, `items[fields_at..end]` fields.
    tags_at: usize,
    fields_at: usize,
    end: usize,
    time: Val,
}

/// A position in [`RawPoints`] (see [`RawPoints::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    bytes: usize,
    items: usize,
    points: usize,
}

/// The fast path could not decide this point: run the reference path on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback;

/// Points as read from a script: strings copied into one buffer, items in
/// one vector. Reused from call to call ([`RawPoints::clear`]).
#[derive(Debug, Default)]
pub struct RawPoints {
    bytes: Vec<u8>,
    items: Vec<(Span, Val)>,
    points: Vec<Rec>,
    /// The point being read: `(measurement, tags_at, fields_at)`.
    open: Option<(Span, usize, Option<usize>)>,
}

impl RawPoints {
    pub fn new() -> RawPoints {
        RawPoints::default()
    }

    /// Forget every point, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
        self.points.clear();
        self.open = None;
    }

    /// Complete points read so far.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Bytes of string data held (to bound a chunk).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Copy a string in.
    #[inline]
    pub fn str(&mut self, s: &str) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(s.as_bytes());
        Span {
            start,
            end: self.bytes.len(),
        }
    }

    #[inline]
    fn get(&self, s: Span) -> &[u8] {
        &self.bytes[s.start..s.end]
    }

    #[inline]
    fn get_str(&self, s: Span) -> &str {
        // SAFETY: every span covers exactly the bytes of one `&str` copied
        // in by `RawPoints::str`.
        unsafe { std::str::from_utf8_unchecked(self.get(s)) }
    }

    /// Start a point: its tags come next, then [`RawPoints::fields`], then
    /// [`RawPoints::end_point`].
    #[inline]
    pub fn begin_point(&mut self, measurement: Span) {
        self.open = Some((measurement, self.items.len(), None));
    }

    /// Add a tag or field (tags before [`RawPoints::fields`]).
    #[inline]
    pub fn item(&mut self, key: Span, v: Val) {
        self.items.push((key, v));
    }

    /// Set tag `key` as `d[key] = v` would in the tags dict read so far:
    /// replaced where it is, or added last.
    pub fn set_tag(&mut self, key: &str, v: Val) {
        let (_, tags_at, _) = self.open.expect("inside a point");
        let found =
            (tags_at..self.items.len()).find(|&i| self.get(self.items[i].0) == key.as_bytes());
        match found {
            Some(i) => self.items[i].1 = v,
            None => {
                let k = self.str(key);
                self.items.push((k, v));
            }
        }
    }

    /// The tags are done; fields follow.
    #[inline]
    pub fn fields(&mut self) {
        if let Some(open) = &mut self.open {
            open.2 = Some(self.items.len());
        }
    }

    /// Add a field as `{**fields, **kwargs}` does: a key already among the
    /// fields keeps its place and takes the new value.
    pub fn merge_field(&mut self, key: Span, v: Val) {
        let fields_at = self.open.and_then(|o| o.2).expect("after fields()");
        let k = self.get(key);
        if let Some(i) = (fields_at..self.items.len()).find(|&i| self.get(self.items[i].0) == k) {
            self.items[i].1 = v;
        } else {
            self.items.push((key, v));
        }
    }

    /// The point is complete.
    #[inline]
    pub fn end_point(&mut self, time: Val) {
        let (measurement, tags_at, fields_at) = self.open.take().expect("inside a point");
        let end = self.items.len();
        self.points.push(Rec {
            measurement,
            tags_at,
            fields_at: fields_at.unwrap_or(end),
            end,
            time,
        });
    }

    /// Where the arena is now, to [`RawPoints::rollback`] to.
    pub fn mark(&self) -> Mark {
        Mark {
            bytes: self.bytes.len(),
            items: self.items.len(),
            points: self.points.len(),
        }
    }

    /// Forget everything read since `m` (a point the fast path cannot read).
    pub fn rollback(&mut self, m: Mark) {
        self.bytes.truncate(m.bytes);
        self.items.truncate(m.items);
        self.points.truncate(m.points);
        self.open = None;
    }
}

/// Trailing backslashes would be stripped by the rules: left to the
/// reference path (which also knows what a stripped key collides with).
#[inline]
fn plain_key(s: &str) -> Result<&str, Fallback> {
    if s.is_empty() || s.ends_with('\\') {
        return Err(Fallback);
    }
    Ok(s)
}

/// Write `,key=value` for one tag; `false` when the tag is dropped.
#[inline]
fn write_tag(out: &mut Vec<u8>, key: &str, v: Val, rp: &RawPoints) -> Result<bool, Fallback> {
    check_chars(key, "tag key").map_err(|_| Fallback)?;
    match v {
        Val::None => return Ok(false),
        Val::Str(s) => {
            let s = rp.get_str(s);
            check_chars(s, "tag value").map_err(|_| Fallback)?;
            let s = s.trim_end_matches('\\');
            if s.is_empty() {
                return Ok(false);
            }
            out.push(b',');
            escape(out, key, KEY_ESCAPES);
            out.push(b'=');
            escape(out, s, KEY_ESCAPES);
        }
        Val::Bool(b) => {
            out.push(b',');
            escape(out, key, KEY_ESCAPES);
            out.extend_from_slice(if b { b"=true" } else { b"=false" });
        }
        Val::Int(i) => {
            out.push(b',');
            escape(out, key, KEY_ESCAPES);
            out.push(b'=');
            write_i64(out, i);
        }
        Val::Float(f) => {
            if !f.is_finite() {
                return Err(Fallback);
            }
            out.push(b',');
            escape(out, key, KEY_ESCAPES);
            out.push(b'=');
            write_f64(out, f);
        }
    }
    Ok(true)
}

/// Check and encode point `i` of `rp` as one line appended to `out`, with
/// the input's `input_tags` added where the point has no such key. On
/// [`Fallback`] nothing is appended.
pub fn encode_fast(
    rp: &RawPoints,
    i: usize,
    opts: &ConvertOptions,
    input_tags: &[(String, String)],
    out: &mut Lines,
) -> Result<(), Fallback> {
    let p = &rp.points[i];
    out.push_with(|out| {
        let m = rp.get_str(p.measurement);
        if m.is_empty() || m.ends_with('\\') || m.starts_with('#') {
            return Err(Fallback);
        }
        check_chars(m, "measurement").map_err(|_| Fallback)?;
        escape(out, m, MEASUREMENT_ESCAPES);
        let tags = &rp.items[p.tags_at..p.fields_at];
        let fields = &rp.items[p.fields_at..p.end];
        let mut kept_tags = 0usize;
        for &(k, v) in tags {
            let key = plain_key(rp.get_str(k))?;
            if write_tag(out, key, v, rp)? {
                kept_tags += 1;
            }
        }
        let tags_end = out.len();
        out.push(b' ');
        let mut kept_fields = 0usize;
        for &(k, v) in fields {
            let key = plain_key(rp.get_str(k))?;
            check_chars(key, "field key").map_err(|_| Fallback)?;
            if field_key_misread(key) {
                return Err(Fallback);
            }
            if matches!(v, Val::None) {
                continue;
            }
            if kept_fields > 0 {
                out.push(b',');
            }
            escape(out, key, KEY_ESCAPES);
            out.push(b'=');
            match v {
                Val::None => unreachable!(),
                Val::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
                Val::Int(i) if opts.numbers_as_float => write_f64(out, i as f64),
                Val::Int(i) => {
                    write_i64(out, i);
                    out.push(b'i');
                }
                Val::Float(f) if f.is_finite() => write_f64(out, f),
                Val::Float(_) => return Err(Fallback),
                Val::Str(s) => write_str(out, rp.get_str(s)),
            }
            kept_fields += 1;
        }
        if kept_fields == 0 {
            return Err(Fallback);
        }
        // A key both tag and field is an error: the reference path names it.
        if kept_tags > 0 {
            if kept_tags * kept_fields > 256 {
                return Err(Fallback);
            }
            let kept_tag = |v: &Val| match v {
                Val::None => false,
                Val::Str(s) => !rp.get_str(*s).trim_end_matches('\\').is_empty(),
                _ => true,
            };
            for (fk, fv) in fields {
                if matches!(fv, Val::None) {
                    continue;
                }
                let fk = rp.get(*fk);
                if tags
                    .iter()
                    .any(|(tk, tv)| rp.get(*tk) == fk && kept_tag(tv))
                {
                    return Err(Fallback);
                }
            }
        }
        // The input's tags, for the keys the point does not use (as a tag
        // or a field, even one whose value is dropped), after its own tags.
        if !input_tags.is_empty() {
            let mut extra = Vec::new();
            for (k, v) in input_tags {
                let taken = tags
                    .iter()
                    .chain(fields)
                    .any(|(t, _)| rp.get(*t) == k.as_bytes());
                if taken {
                    continue;
                }
                let key = plain_key(k)?;
                check_chars(v, "tag value").map_err(|_| Fallback)?;
                let v = v.trim_end_matches('\\');
                check_chars(key, "tag key").map_err(|_| Fallback)?;
                if v.is_empty() {
                    continue;
                }
                extra.push(b',');
                escape(&mut extra, key, KEY_ESCAPES);
                extra.push(b'=');
                escape(&mut extra, v, KEY_ESCAPES);
            }
            if !extra.is_empty() {
                out.splice(tags_end..tags_end, extra);
            }
        }
        let t = match p.time {
            Val::None => opts.now_ns,
            Val::Int(t) => normalize_time(t, opts.precision).ok_or(Fallback)?,
            Val::Float(f) if f.is_finite() => {
                normalize_time_f64(f, opts.precision).ok_or(Fallback)?
            }
            _ => return Err(Fallback),
        };
        out.push(b' ');
        write_i64(out, t);
        out.push(b'\n');
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    //! The fast path against the reference path (`into_point` + `encode_point`).
    use super::*;
    use crate::lineproto::encode_point;
    use crate::point::{Precision, RawPoint, RawValue};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum V {
        None,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
    }

    fn raw(v: &V) -> RawValue {
        match v {
            V::None => RawValue::None,
            V::Bool(b) => RawValue::Bool(*b),
            V::Int(i) => RawValue::Int(*i as i128),
            V::Float(f) => RawValue::Float(*f),
            V::Str(s) => RawValue::Str(s.clone()),
        }
    }

    fn val(rp: &mut RawPoints, v: &V) -> Val {
        match v {
            V::None => Val::None,
            V::Bool(b) => Val::Bool(*b),
            V::Int(i) => Val::Int(*i),
            V::Float(f) => Val::Float(*f),
            V::Str(s) => Val::Str(rp.str(s)),
        }
    }

    type Case = (String, Vec<(String, V)>, Vec<(String, V)>, V);

    /// The reference: what `finish()` in the runtime does (input tags, then the rules).
    fn slow(c: &Case, opts: &ConvertOptions, input_tags: &[(String, String)]) -> Option<Vec<u8>> {
        let mut p = RawPoint {
            measurement: RawValue::Str(c.0.clone()),
            tags: c.1.iter().map(|(k, v)| (k.clone(), raw(v))).collect(),
            fields: c.2.iter().map(|(k, v)| (k.clone(), raw(v))).collect(),
            time: raw(&c.3),
        };
        for (k, v) in input_tags {
            let taken = p.tags.iter().any(|(t, _)| t == k) || p.fields.iter().any(|(f, _)| f == k);
            if !taken {
                p.tags.push((k.clone(), RawValue::Str(v.clone())));
            }
        }
        let p = p.into_point(0, opts).ok()?;
        let mut out = Vec::new();
        encode_point(&p, &mut out);
        Some(out)
    }

    fn fast(c: &Case, opts: &ConvertOptions, input_tags: &[(String, String)]) -> Option<Vec<u8>> {
        let mut rp = RawPoints::new();
        let m = rp.str(&c.0);
        rp.begin_point(m);
        for (k, v) in &c.1 {
            let k = rp.str(k);
            let v = val(&mut rp, v);
            rp.item(k, v);
        }
        rp.fields();
        for (k, v) in &c.2 {
            let k = rp.str(k);
            let v = val(&mut rp, v);
            rp.item(k, v);
        }
        let t = val(&mut rp, &c.3);
        rp.end_point(t);
        let mut lines = Lines::new();
        encode_fast(&rp, 0, opts, input_tags, &mut lines).ok()?;
        Some(lines.as_bytes().to_vec())
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a-z]{1,4}",
            1 => "[a-c ,=\\\\\"#\n\t\0]{0,4}",
            1 => Just(String::new()),
        ]
    }

    fn value() -> impl Strategy<Value = V> {
        prop_oneof![
            Just(V::None),
            any::<bool>().prop_map(V::Bool),
            any::<i64>().prop_map(V::Int),
            prop_oneof![
                Just(1e300),
                Just(-0.0),
                Just(f64::NAN),
                Just(f64::INFINITY),
                any::<f64>()
            ]
            .prop_map(V::Float),
            name().prop_map(V::Str),
        ]
    }

    fn time() -> impl Strategy<Value = V> {
        prop_oneof![
            Just(V::None),
            any::<i64>().prop_map(V::Int),
            (0i64..2_000_000_000_000_000_000).prop_map(V::Int),
            prop_oneof![Just(1.5e9), Just(f64::NAN), any::<f64>()].prop_map(V::Float),
            Just(V::Str("x".into())),
        ]
    }

    fn keys() -> impl Strategy<Value = Vec<(String, V)>> {
        // Distinct keys, as in a dict.
        proptest::collection::btree_map(name(), value(), 0..5).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn whatever_the_fast_path_writes_is_what_the_rules_write(
            m in name(),
            tags in keys(),
            fields in keys(),
            t in time(),
            as_float in any::<bool>(),
            precision in prop_oneof![Just(None), Just(Some(Precision::Seconds)), Just(Some(Precision::Nanos))],
            input_tags in proptest::collection::btree_map(name(), name(), 0..3),
        ) {
            let opts = ConvertOptions { numbers_as_float: as_float, precision, now_ns: 1_700_000_000_000_000_000 };
            let input_tags: Vec<(String, String)> = input_tags.into_iter().collect();
            let case = (m, tags, fields, t);
            let s = slow(&case, &opts, &input_tags);
            if let Some(f) = fast(&case, &opts, &input_tags) {
                prop_assert_eq!(Some(f), s);
            }
        }
    }

    #[test]
    fn the_common_point_takes_the_fast_path() {
        let opts = ConvertOptions {
            numbers_as_float: false,
            precision: None,
            now_ns: 7,
        };
        let case: Case = (
            "m".into(),
            vec![("host".into(), V::Str("h1".into())), ("n".into(), V::None)],
            vec![
                ("i".into(), V::Int(3)),
                ("f".into(), V::Float(1.5)),
                ("s".into(), V::Str("x y".into())),
                ("b".into(), V::Bool(true)),
            ],
            V::None,
        );
        let tags = vec![
            ("region".to_owned(), "eu".to_owned()),
            ("n".to_owned(), "x".to_owned()),
        ];
        let f = fast(&case, &opts, &tags).expect("fast path");
        assert_eq!(Some(f.clone()), slow(&case, &opts, &tags));
        assert_eq!(
            String::from_utf8(f).unwrap(),
            "m,host=h1,region=eu i=3i,f=1.5,s=\"x y\",b=true 7\n"
        );
    }

    #[test]
    fn merge_field_replaces_in_place_and_set_tag_appends() {
        let mut rp = RawPoints::new();
        let m = rp.str("m");
        rp.begin_point(m);
        let k = rp.str("a");
        let v = rp.str("1");
        rp.item(k, Val::Str(v));
        rp.set_tag("name", Val::Int(5));
        rp.set_tag("a", Val::Int(2));
        rp.fields();
        let k = rp.str("x");
        rp.item(k, Val::Int(1));
        let k = rp.str("y");
        rp.item(k, Val::Int(2));
        let k = rp.str("x");
        rp.merge_field(k, Val::Int(9));
        rp.end_point(Val::Int(1));
        let mut lines = Lines::new();
        let opts = ConvertOptions {
            numbers_as_float: false,
            precision: Some(Precision::Nanos),
            now_ns: 0,
        };
        encode_fast(&rp, 0, &opts, &[], &mut lines).unwrap();
        assert_eq!(lines.as_bytes(), b"m,a=2,name=5 x=9i,y=2i 1\n");
    }
}
