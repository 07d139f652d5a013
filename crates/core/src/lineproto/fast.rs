//! The fast path of the data rules: points made only of the common scalar
//! types (str, int within i64, float, bool, None) checked and encoded straight
//! into line protocol, with no [`RawPoint`](crate::point::RawPoint) or
//! [`Point`](crate::point::Point) in between.
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
//! [`RawPoint::into_point`]: crate::point::RawPoint::into_point

use std::cell::RefCell;

use super::Lines;
use crate::point::ConvertOptions;

mod line;

pub use line::{LineScratch, LineWriter, Scalar};

/// Where a string is: in [`RawPoints`]' byte buffer, or (see
/// [`RawPoints::str_borrowed`]) outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// An offset into the buffer, or the address of a borrowed string.
    start: usize,
    len: usize,
    borrowed: bool,
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
    /// Bytes of the strings borrowed so far.
    borrowed_bytes: usize,
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
        self.borrowed_bytes = 0;
    }

    /// Complete points read so far.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Bytes of string data held or borrowed (to bound a chunk).
    pub fn byte_len(&self) -> usize {
        self.bytes.len() + self.borrowed_bytes
    }

    /// Copy a string in.
    #[inline]
    pub fn str(&mut self, s: &str) -> Span {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(s.as_bytes());
        Span {
            start,
            len: s.len(),
            borrowed: false,
        }
    }

    /// Refer to a string without copying it (a one-point call, encoded
    /// while the caller still holds the string).
    ///
    /// # Safety
    /// `s` must stay alive and unchanged until this arena is cleared
    /// ([`RawPoints::clear`]); nothing may read the span after that.
    #[inline]
    pub unsafe fn str_borrowed(&mut self, s: &str) -> Span {
        self.borrowed_bytes += s.len();
        Span {
            start: s.as_ptr() as usize,
            len: s.len(),
            borrowed: true,
        }
    }

    #[inline]
    fn get(&self, s: Span) -> &[u8] {
        if s.borrowed {
            // SAFETY: the contract of `str_borrowed`: the string is alive
            // while the arena holds the span.
            unsafe { std::slice::from_raw_parts(s.start as *const u8, s.len) }
        } else {
            &self.bytes[s.start..s.start + s.len]
        }
    }

    #[inline]
    fn get_str(&self, s: Span) -> &str {
        // SAFETY: every span covers exactly the bytes of one `&str`, copied
        // in by `RawPoints::str` or borrowed by `RawPoints::str_borrowed`.
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
    thread_local! {
        static SCRATCH: RefCell<LineScratch> = RefCell::new(LineScratch::new());
    }
    SCRATCH.with(|s| {
        // Nothing below calls out: the scratch is never borrowed twice.
        let mut s = s.borrow_mut();
        encode_with(rp, i, opts, input_tags, &mut s, out)
    })
}

/// [`encode_fast`] with the caller's scratch.
pub fn encode_with(
    rp: &RawPoints,
    i: usize,
    opts: &ConvertOptions,
    input_tags: &[(String, String)],
    scratch: &mut LineScratch,
    out: &mut Lines,
) -> Result<(), Fallback> {
    let p = &rp.points[i];
    let scalar = |v: Val| match v {
        Val::None => Scalar::None,
        Val::Bool(b) => Scalar::Bool(b),
        Val::Int(i) => Scalar::Int(i),
        Val::Float(f) => Scalar::Float(f),
        Val::Str(s) => Scalar::Str(rp.get_str(s)),
    };
    out.push_with(|out| {
        let mut w = LineWriter::begin(out, scratch, opts, rp.get_str(p.measurement))?;
        for &(k, v) in &rp.items[p.tags_at..p.fields_at] {
            w.tag(rp.get_str(k), scalar(v))?;
        }
        w.fields();
        for &(k, v) in &rp.items[p.fields_at..p.end] {
            w.field(rp.get_str(k), scalar(v))?;
        }
        w.finish(scalar(p.time), opts, input_tags)
    })
}

#[cfg(test)]
mod tests;
