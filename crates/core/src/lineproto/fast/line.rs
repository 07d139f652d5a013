//! One line checked and written in the order its parts are read:
//! [`LineWriter`].
//!
//! A one-point call (`feed_metric`) need not gather its point anywhere
//! before writing it: the runtime walks the script's dicts and hands each
//! tag and field to the writer as it meets it, and the writer checks it and
//! writes it into the line at once. What the rules decide about the point
//! as a whole (at least one field kept, no key both a kept tag and a field,
//! which of the input's tags the point leaves free) is decided at
//! [`LineWriter::finish`], from the keys it noted on the way in a
//! [`LineScratch`] the caller reuses from line to line.
//!
//! [`encode_fast`](super::encode_fast) (points read into an arena first, as
//! `report()` does) replays each point through this same writer: there is
//! one definition of what the fast path accepts and how it writes it, and
//! the property test against the reference path covers both.

use std::marker::PhantomData;

use super::super::{write_f64, write_i64, write_str};
use super::Fallback;
use crate::point::{normalize_time, normalize_time_f64, ConvertOptions};

/// A scalar as a script gave it, its string borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

/// A noted key is a tag's (else a field's).
const TAG: u8 = 1;
/// A noted key's value is kept (a tag with a non-empty value, a field that
/// is not `None`).
const KEPT: u8 = 2;

/// What one thread reuses from one line to the next: the keys of the line
/// being written, and the digits of the last timestamp written.
#[derive(Debug)]
pub struct LineScratch {
    /// `(address, length, TAG | KEPT)` of each key of the line being
    /// written, borrowed for as long as the [`LineWriter`] lives.
    keys: Vec<(usize, usize, u8)>,
    /// The last timestamp written, and its digits.
    last_time: i64,
    digits: [u8; 20],
    ndigits: u8,
}

impl Default for LineScratch {
    fn default() -> LineScratch {
        LineScratch {
            keys: Vec::new(),
            last_time: i64::MIN,
            digits: [0; 20],
            ndigits: 0,
        }
    }
}

impl LineScratch {
    pub fn new() -> LineScratch {
        LineScratch::default()
    }

    #[inline]
    fn note(&mut self, key: &str, kind: u8) {
        self.keys.push((key.as_ptr() as usize, key.len(), kind));
    }

    /// The keys noted, with their kinds.
    ///
    /// # Safety
    /// Only while the strings noted are alive: inside [`LineWriter`], whose
    /// lifetime `'k` covers them.
    #[inline]
    unsafe fn keys(&self) -> impl Iterator<Item = (&[u8], u8)> + '_ {
        self.keys
            .iter()
            .map(|&(p, n, kind)| (std::slice::from_raw_parts(p as *const u8, n), kind))
    }

    /// Write a timestamp. Calls a moment apart share the second, whose
    /// digits are kept (only the last nine, the nanoseconds, are written
    /// again), and the points of one call share the time they were stamped
    /// with, written from the kept digits.
    #[inline]
    pub(super) fn write_time(&mut self, out: &mut Vec<u8>, t: i64) {
        const NS: i64 = 1_000_000_000;
        let (lt, n) = (self.last_time, self.ndigits as usize);
        if lt == t {
            out.extend_from_slice(&self.digits[..n]);
            return;
        }
        if t >= NS && lt >= NS && t / NS == lt / NS {
            // Same second, and at least ten digits: the first ones stay.
            let mut ns = (t % NS) as u32;
            for d in self.digits[n - 9..n].iter_mut().rev() {
                *d = b'0' + (ns % 10) as u8;
                ns /= 10;
            }
            self.last_time = t;
            out.extend_from_slice(&self.digits[..n]);
            return;
        }
        let mut buf = itoa::Buffer::new();
        let s = buf.format(t).as_bytes();
        out.extend_from_slice(s);
        self.digits[..s.len()].copy_from_slice(s);
        self.ndigits = s.len() as u8;
        self.last_time = t;
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
fn write_tag(out: &mut Vec<u8>, key: &str, v: Scalar<'_>) -> Result<bool, Fallback> {
    match v {
        Scalar::None | Scalar::Str("") => {
            check_name(key)?;
            return Ok(false);
        }
        Scalar::Str(s) => {
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.push(b'=');
            write_name(out, s, KEY_ESC)?;
        }
        Scalar::Bool(b) => {
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.extend_from_slice(if b { b"=true" } else { b"=false" });
        }
        Scalar::Int(i) => {
            out.push(b',');
            write_name(out, key, KEY_ESC)?;
            out.push(b'=');
            write_i64(out, i);
        }
        Scalar::Float(f) => {
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

/// One line being written into the end of a buffer: [`LineWriter::begin`]
/// with the measurement, [`LineWriter::tag`] for each tag,
/// [`LineWriter::fields`], [`LineWriter::field`] for each field, then
/// [`LineWriter::finish`] with the time. Any step may answer [`Fallback`]:
/// the fast path cannot decide this point, and the caller discards what was
/// written of the line ([`Lines::push_with`](super::super::Lines::push_with)
/// does) and runs the reference path on the point.
///
/// The keys and values given live as long as `'k`, the writer's life.
pub struct LineWriter<'w, 'k> {
    out: &'w mut Vec<u8>,
    scratch: &'w mut LineScratch,
    numbers_as_float: bool,
    /// Where the tags end (the input's tags go there).
    tags_end: usize,
    kept_tags: usize,
    kept_fields: usize,
    _keys: PhantomData<&'k str>,
}

impl<'w, 'k> LineWriter<'w, 'k> {
    /// Start a line of `measurement` at the end of `out`.
    #[inline]
    pub fn begin(
        out: &'w mut Vec<u8>,
        scratch: &'w mut LineScratch,
        opts: &ConvertOptions,
        measurement: &'k str,
    ) -> Result<LineWriter<'w, 'k>, Fallback> {
        if measurement.starts_with('#') {
            return Err(Fallback);
        }
        write_name(out, measurement, MEASUREMENT_ESC)?;
        scratch.keys.clear();
        Ok(LineWriter {
            out,
            scratch,
            numbers_as_float: opts.numbers_as_float,
            tags_end: usize::MAX,
            kept_tags: 0,
            kept_fields: 0,
            _keys: PhantomData,
        })
    }

    /// One tag (before [`LineWriter::fields`]).
    #[inline]
    pub fn tag(&mut self, key: &'k str, v: Scalar<'k>) -> Result<(), Fallback> {
        debug_assert_eq!(self.tags_end, usize::MAX, "a tag after fields()");
        let kept = write_tag(self.out, key, v)?;
        self.kept_tags += kept as usize;
        self.scratch.note(key, if kept { TAG | KEPT } else { TAG });
        Ok(())
    }

    /// The tags are done; fields follow.
    #[inline]
    pub fn fields(&mut self) {
        self.tags_end = self.out.len();
        self.out.push(b' ');
    }

    /// One field (after [`LineWriter::fields`]).
    #[inline]
    pub fn field(&mut self, key: &'k str, v: Scalar<'k>) -> Result<(), Fallback> {
        debug_assert_ne!(self.tags_end, usize::MAX, "a field before fields()");
        let out = &mut *self.out;
        if matches!(v, Scalar::None) {
            check_name(key)?;
            self.scratch.note(key, 0);
            return Ok(());
        }
        if self.kept_fields > 0 {
            out.push(b',');
        }
        write_name(out, key, KEY_ESC)?;
        out.push(b'=');
        match v {
            Scalar::None => unreachable!(),
            Scalar::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Scalar::Int(i) if self.numbers_as_float => write_f64(out, i as f64),
            Scalar::Int(i) => {
                write_i64(out, i);
                out.push(b'i');
            }
            Scalar::Float(f) if f.is_finite() => write_f64(out, f),
            Scalar::Float(_) => return Err(Fallback),
            Scalar::Str(s) => write_str(out, s),
        }
        self.kept_fields += 1;
        self.scratch.note(key, KEPT);
        Ok(())
    }

    /// The point is complete: the checks on the whole point, the input's
    /// tags (for the keys the point does not use), the time (`None`: the
    /// call's `now_ns`), and the line's end.
    #[inline]
    pub fn finish(
        self,
        time: Scalar<'_>,
        opts: &ConvertOptions,
        input_tags: &[(String, String)],
    ) -> Result<(), Fallback> {
        debug_assert_ne!(self.tags_end, usize::MAX, "finish() before fields()");
        if self.kept_fields == 0 {
            return Err(Fallback);
        }
        // SAFETY: the keys noted live for `'k`, longer than `self`.
        let keys = || unsafe { self.scratch.keys() };
        // A key both tag and field is an error: the reference path names it.
        if self.kept_tags > 0 {
            if self.kept_tags * self.kept_fields > 256 {
                return Err(Fallback);
            }
            // The lengths of the kept tags' keys, as bits: a field key of
            // another length is no tag's (most are not), without a look.
            let lens = keys()
                .filter(|&(_, kind)| kind == TAG | KEPT)
                .fold(0u64, |m, (k, _)| m | 1 << (k.len() & 63));
            for (fk, kind) in keys() {
                if kind != KEPT || lens & (1 << (fk.len() & 63)) == 0 {
                    continue;
                }
                // Lengths first: most keys differ there, without a memcmp.
                if keys().any(|(tk, kind)| kind == TAG | KEPT && tk.len() == fk.len() && tk == fk) {
                    return Err(Fallback);
                }
            }
        }
        let out = self.out;
        // The input's tags, for the keys the point does not use (as a tag
        // or a field, even one whose value is dropped), after its own tags:
        // written at the end, then rotated into place.
        if !input_tags.is_empty() {
            let at = out.len();
            for (k, v) in input_tags {
                if keys().any(|(t, _)| t == k.as_bytes()) {
                    continue;
                }
                if v.is_empty() {
                    check_name(k)?;
                    continue;
                }
                out.push(b',');
                write_name(out, k, KEY_ESC)?;
                out.push(b'=');
                write_name(out, v, KEY_ESC)?;
            }
            let extra = out.len() - at;
            if extra > 0 {
                out[self.tags_end..].rotate_right(extra);
            }
        }
        let t = match time {
            Scalar::None => opts.now_ns,
            Scalar::Int(t) => normalize_time(t, opts.precision).ok_or(Fallback)?,
            Scalar::Float(f) if f.is_finite() => {
                normalize_time_f64(f, opts.precision).ok_or(Fallback)?
            }
            _ => return Err(Fallback),
        };
        out.push(b' ');
        self.scratch.write_time(out, t);
        out.push(b'\n');
        Ok(())
    }
}
