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

use super::{write_f64, write_i64, write_str, Lines};
use crate::point::{normalize_time, normalize_time_f64, ConvertOptions};

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

/// What a byte of a name means to the fast path (bit set).
const CTRL: u8 = 1; // `\n` `\r` `\t` NUL: refused in names
const BACKSLASH: u8 = 2; // stripped at the end, escapes some bytes: left to the reference path
const MEASUREMENT_ESC: u8 = 4; // `,` space
const KEY_ESC: u8 = 8; // `,` `=` space

const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'\n' as usize] = CTRL;
    t[b'\r' as usize] = CTRL;
    t[b'\t' as usize] = CTRL;
    t[0] = CTRL;
    t[b'\\' as usize] = BACKSLASH;
    t[b',' as usize] = MEASUREMENT_ESC | KEY_ESC;
    t[b' ' as usize] = MEASUREMENT_ESC | KEY_ESC;
    t[b'=' as usize] = KEY_ESC;
    t
};

/// Check a name (measurement, key, tag value) and write it escaped, in one
/// pass. Empty, or holding a control character or a backslash: the
/// reference path decides (it strips trailing backslashes, names errors).
#[inline]
fn write_name(out: &mut Vec<u8>, s: &str, esc: u8) -> Result<(), Fallback> {
    let b = s.as_bytes();
    if b.is_empty() {
        return Err(Fallback);
    }
    // Byte by byte into reserved room: names are short, and a copy call per
    // name costs more than the loop.
    out.reserve(2 * b.len());
    let mut len = out.len();
    let dst = out.as_mut_ptr();
    for &c in b {
        let k = CLASS[c as usize];
        if k & (CTRL | BACKSLASH) != 0 {
            return Err(Fallback);
        }
        // SAFETY: at most two bytes per input byte, `2 * b.len()` reserved.
        unsafe {
            if k & esc != 0 {
                *dst.add(len) = b'\\';
                len += 1;
            }
            *dst.add(len) = c;
        }
        len += 1;
    }
    // SAFETY: the bytes up to `len` were written above.
    unsafe { out.set_len(len) };
    Ok(())
}

/// Write a timestamp. A call's points share the time they were stamped
/// with: its digits are kept from one point to the next; and one-point
/// calls a moment apart share the second, whose digits are kept too (only
/// the last nine, the nanoseconds, are written again).
#[inline]
fn write_time(out: &mut Vec<u8>, t: i64) {
    const NS: i64 = 1_000_000_000;
    thread_local! {
        static LAST: std::cell::Cell<(i64, [u8; 20], u8)> = const { std::cell::Cell::new((i64::MIN, [0; 20], 0)) };
    }
    LAST.with(|last| {
        let (lt, mut digits, n) = last.get();
        if lt == t {
            out.extend_from_slice(&digits[..n as usize]);
            return;
        }
        if t >= NS && lt >= NS && t / NS == lt / NS {
            // Same second, and at least ten digits: the first ones stay.
            let mut ns = (t % NS) as u32;
            for d in digits[n as usize - 9..n as usize].iter_mut().rev() {
                *d = b'0' + (ns % 10) as u8;
                ns /= 10;
            }
            out.extend_from_slice(&digits[..n as usize]);
            last.set((t, digits, n));
            return;
        }
        let mut buf = itoa::Buffer::new();
        let s = buf.format(t).as_bytes();
        out.extend_from_slice(s);
        let mut d = [0u8; 20];
        d[..s.len()].copy_from_slice(s);
        last.set((t, d, s.len() as u8));
    });
}

/// [`write_name`]'s checks alone (a key whose value is dropped is still
/// checked, as the rules do).
#[inline]
fn check_name(s: &str) -> Result<(), Fallback> {
    if s.is_empty()
        || s.bytes()
            .any(|c| CLASS[c as usize] & (CTRL | BACKSLASH) != 0)
    {
        return Err(Fallback);
    }
    Ok(())
}

/// Write `,key=value` for one tag; `false` when the tag is dropped.
#[inline]
fn write_tag(out: &mut Vec<u8>, key: &str, v: Val, rp: &RawPoints) -> Result<bool, Fallback> {
    match v {
        Val::None => {
            check_name(key)?;
            return Ok(false);
        }
        Val::Str(s) => {
            let s = rp.get_str(s);
            if s.is_empty() {
                check_name(key)?;
                return Ok(false);
            }
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.push(b'=');
            write_name(out, s, KEY_ESC)?;
        }
        Val::Bool(b) => {
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.extend_from_slice(if b { b"=true" } else { b"=false" });
        }
        Val::Int(i) => {
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.push(b'=');
            write_i64(out, i);
        }
        Val::Float(f) => {
            if !f.is_finite() {
                return Err(Fallback);
            }
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
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
        if m.starts_with('#') {
            return Err(Fallback);
        }
        write_name(out, m, MEASUREMENT_ESC)?;
        let tags = &rp.items[p.tags_at..p.fields_at];
        let fields = &rp.items[p.fields_at..p.end];
        let mut kept_tags = 0usize;
        for &(k, v) in tags {
            if write_tag(out, rp.get_str(k), v, rp)? {
                kept_tags += 1;
            }
        }
        let tags_end = out.len();
        out.push(b' ');
        let mut kept_fields = 0usize;
        for &(k, v) in fields {
            let key = rp.get_str(k);
            if matches!(v, Val::None) {
                check_name(key)?;
                continue;
            }
            if kept_fields > 0 {
                out.push(b',');
            }
            write_name(out, key, KEY_ESC)?;
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
                Val::Str(s) => s.len > 0,
                _ => true,
            };
            // The lengths of the kept tags' keys, as bits: a field key of
            // another length is no tag's (most are not), without a look.
            let lens = tags
                .iter()
                .filter(|(_, tv)| kept_tag(tv))
                .fold(0u64, |m, (tk, _)| m | 1 << (tk.len & 63));
            for (fk, fv) in fields {
                if matches!(fv, Val::None) || lens & (1 << (fk.len & 63)) == 0 {
                    continue;
                }
                let fk = rp.get(*fk);
                // Lengths first: most keys differ there, without a memcmp.
                if tags
                    .iter()
                    .any(|(tk, tv)| tk.len == fk.len() && rp.get(*tk) == fk && kept_tag(tv))
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
                if v.is_empty() {
                    check_name(k)?;
                    continue;
                }
                extra.push(b',');
                write_name(&mut extra, k, KEY_ESC)?;
                extra.push(b'=');
                write_name(&mut extra, v, KEY_ESC)?;
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
        write_time(out, t);
        out.push(b'\n');
        Ok(())
    })
}

#[cfg(test)]
mod tests;
