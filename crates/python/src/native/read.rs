//! The fast reader: points made of exact built-in types (`dict` with `str`
//! keys; `str`, `int` within i64, `float`, `bool`, `None` values), each
//! string's UTF-8 borrowed from the `str` object instead of copied into a
//! `String`. A one-point call is read and written in one pass
//! ([`feed_line`]: each item goes straight to the core's [`LineWriter`]);
//! `report()`'s points, and a call whose `kwargs` or name tag change its
//! dicts as it is read, are copied into a [`RawPoints`] arena first.
//!
//! Only exact types are read here: their reading runs no Python code (no
//! `__index__`, no `__eq__` of a key, no dict resized under the iteration),
//! so the dicts can be walked with `PyDict_Next` and borrowed references.
//! Anything else (a subclass, a list value, bytes, a big int, a str with
//! lone surrogates) makes the reader answer `None`, and the caller takes
//! the reference path ([`crate::convert`] + the rules), which knows every
//! case and every error message.

use std::os::raw::c_int;

use pyo3::ffi;
use pyo3::prelude::*;

use pythond_core::lineproto::{Fallback, LineScratch, LineWriter, RawPoints, Scalar, Span, Val};
use pythond_core::point::ConvertOptions;

/// The UTF-8 of an exact `str` (cached by CPython in the object: no copy).
/// `None` for anything else, or a str that has no UTF-8 (lone surrogates).
///
/// # Safety
/// `o` is a live object and the GIL is held; the slice lives as long as `o`.
#[inline]
unsafe fn exact_str<'a>(o: *mut ffi::PyObject) -> Option<&'a str> {
    if ffi::PyUnicode_CheckExact(o) == 0 {
        return None;
    }
    if ffi::PyUnicode_IS_COMPACT_ASCII(o) != 0 {
        // ASCII is its own UTF-8: the characters right after the header.
        let p = ffi::PyUnicode_DATA(o) as *const u8;
        let len = ffi::PyUnicode_GET_LENGTH(o) as usize;
        // SAFETY: a compact ASCII str holds `len` ASCII bytes at `p`.
        return Some(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
            p, len,
        )));
    }
    let mut len: ffi::Py_ssize_t = 0;
    let p = ffi::PyUnicode_AsUTF8AndSize(o, &mut len);
    if p.is_null() {
        ffi::PyErr_Clear();
        return None;
    }
    // SAFETY: CPython's UTF-8 buffer of the str, `len` bytes, valid UTF-8.
    Some(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
        p as *const u8,
        len as usize,
    )))
}

/// Items in an exact dict (its `ma_used`, read in place).
///
/// # Safety
/// `d` is a live exact `dict` and the GIL is held.
#[inline]
unsafe fn dict_len(d: *mut ffi::PyObject) -> usize {
    (*(d as *mut ffi::PyDictObject)).ma_used as usize
}

/// How strings go into the arena.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Strings {
    /// Borrowed from the `str` objects: the point is encoded before the
    /// call returns, attached all along, while the call's arguments hold
    /// every object read (`feed_*`).
    Borrow,
    /// Borrowed, each `str` object held by a reference of our own in this
    /// [`Keep`] until the points are encoded: `report()` encodes them
    /// detached, while the script's other threads could change the dicts
    /// that held them.
    Keep(*mut Keep),
}

/// Strong references to the `str` objects a chunk's arena borrows from.
/// Released (attached: it is only dropped or cleared while attached) once
/// the chunk is encoded.
#[derive(Default)]
pub(super) struct Keep(Vec<*mut ffi::PyObject>);

impl Keep {
    /// Release every reference. Attached only.
    pub(super) fn release(&mut self) {
        for o in self.0.drain(..) {
            // SAFETY: a reference taken by `put`, released once, attached.
            unsafe { ffi::Py_DECREF(o) };
        }
    }
}

impl Drop for Keep {
    fn drop(&mut self) {
        self.release();
    }
}

/// An exact str into the arena; `None` for anything else.
///
/// # Safety
/// `o` is alive and the GIL is held. With [`Strings::Borrow`], `o`
/// outlives every use of the arena before its next `clear()`; with
/// [`Strings::Keep`], the `Keep` outlives those uses.
#[inline]
unsafe fn put(rp: &mut RawPoints, o: *mut ffi::PyObject, mode: Strings) -> Option<Span> {
    Some(put_str(rp, o, exact_str(o)?, mode))
}

/// [`put`] of `s`, the UTF-8 [`exact_str`] read from `o`.
///
/// # Safety
/// As [`put`].
#[inline]
unsafe fn put_str(rp: &mut RawPoints, o: *mut ffi::PyObject, s: &str, mode: Strings) -> Span {
    match mode {
        Strings::Borrow => rp.str_borrowed(s),
        Strings::Keep(keep) => {
            ffi::Py_INCREF(o);
            (*keep).0.push(o);
            rp.str_borrowed(s)
        }
    }
}

/// One value of an exact scalar type, its string borrowed from the `str`
/// object; `None` for anything else.
///
/// # Safety
/// `o` is a live object and the GIL is held; the string lives as long as `o`.
#[inline]
unsafe fn scalar_ref<'a>(o: *mut ffi::PyObject) -> Option<Scalar<'a>> {
    if o == ffi::Py_None() {
        return Some(Scalar::None);
    }
    if let Some(s) = exact_str(o) {
        return Some(Scalar::Str(s));
    }
    if ffi::PyLong_CheckExact(o) != 0 {
        let mut overflow: c_int = 0;
        let v = ffi::PyLong_AsLongLongAndOverflow(o, &mut overflow);
        if overflow != 0 || (v == -1 && !ffi::PyErr_Occurred().is_null()) {
            ffi::PyErr_Clear();
            return None;
        }
        return Some(Scalar::Int(v));
    }
    if ffi::PyFloat_CheckExact(o) != 0 {
        return Some(Scalar::Float(ffi::PyFloat_AS_DOUBLE(o)));
    }
    if o == ffi::Py_True() {
        return Some(Scalar::Bool(true));
    }
    if o == ffi::Py_False() {
        return Some(Scalar::Bool(false));
    }
    None
}

/// One value of an exact scalar type into the arena.
///
/// # Safety
/// `o` is a live object and the GIL is held; see [`put`] for `mode`.
#[inline]
unsafe fn scalar(rp: &mut RawPoints, o: *mut ffi::PyObject, mode: Strings) -> Option<Val> {
    Some(match scalar_ref(o)? {
        Scalar::None => Val::None,
        Scalar::Bool(b) => Val::Bool(b),
        Scalar::Int(i) => Val::Int(i),
        Scalar::Float(f) => Val::Float(f),
        Scalar::Str(s) => Val::Str(put_str(rp, o, s, mode)),
    })
}

/// Each item of an exact dict, as borrowed `(key, value)` objects, until
/// `f` answers `None` (then so does this).
///
/// # Safety
/// `d` is a live exact `dict` and the GIL is held; `f` runs no Python code
/// (the dict is walked with borrowed references, so it must not change
/// during the walk).
#[inline]
unsafe fn walk(
    d: *mut ffi::PyObject,
    mut f: impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject) -> Option<()>,
) -> Option<()> {
    let mut pos: ffi::Py_ssize_t = 0;
    let mut k: *mut ffi::PyObject = std::ptr::null_mut();
    let mut v: *mut ffi::PyObject = std::ptr::null_mut();
    // As many steps as the dict has items: the call that would only say
    // "no more" is saved (the dict cannot change during the walk).
    for _ in 0..dict_len(d) {
        if ffi::PyDict_Next(d, &mut pos, &mut k, &mut v) == 0 {
            break;
        }
        f(k, v)?;
    }
    Some(())
}

/// How the items of a dict are added to the point being read.
#[derive(Clone, Copy)]
enum Add {
    Item,
    Merge,
}

/// Every item of a tags/fields argument: `None` is empty, an exact dict
/// with str keys and scalar values is read; anything else is `None`.
///
/// # Safety
/// See [`put`] for `mode`.
unsafe fn map(
    rp: &mut RawPoints,
    v: Option<&Bound<'_, PyAny>>,
    add: Add,
    mode: Strings,
) -> Option<()> {
    let Some(v) = v else { return Some(()) };
    let d = v.as_ptr();
    // SAFETY: `d` is alive (borrowed from the caller) and the GIL is held.
    // The dict is walked with borrowed references; nothing below runs
    // Python code, so it cannot change during the walk.
    unsafe {
        if d == ffi::Py_None() {
            return Some(());
        }
        if ffi::PyDict_CheckExact(d) == 0 {
            return None;
        }
        walk(d, |k, v| {
            let key = put(rp, k, mode)?;
            let val = scalar(rp, v, mode)?;
            match add {
                Add::Item => rp.item(key, val),
                Add::Merge => rp.merge_field(key, val),
            }
            Some(())
        })
    }
}

/// The arguments of one `feed_*` call.
pub(super) struct FeedPoint<'a, 'py> {
    pub measurement: &'a Bound<'py, PyAny>,
    pub tags: Option<&'a Bound<'py, PyAny>>,
    /// `feed_object`'s `name`: set as tag `name` (`tags["name"] = name`).
    pub name_tag: Option<&'a Bound<'py, PyAny>>,
    /// The `fields` argument (not read by [`feed_message`]).
    pub fields: Option<&'a Bound<'py, PyAny>>,
    pub kwargs: Option<&'a Bound<'py, PyAny>>,
    pub time: Option<&'a Bound<'py, PyAny>>,
}

/// Read one `feed_*` point into `rp` (emptied first); `None`: take the
/// reference path.
pub(super) fn feed_point(rp: &mut RawPoints, p: &FeedPoint<'_, '_>) -> Option<()> {
    // SAFETY: the call's arguments hold every object read while `rp` is
    // used (the caller encodes before it returns and clears `rp` first).
    feed_with(rp, p, |rp| unsafe {
        map(rp, p.fields, Add::Item, Strings::Borrow)
    })
}

/// `feed_logging`'s point: its fields are `{"message": message}`.
pub(super) fn feed_message(
    rp: &mut RawPoints,
    p: &FeedPoint<'_, '_>,
    message: &Bound<'_, PyAny>,
) -> Option<()> {
    feed_with(rp, p, |rp| {
        let k = rp.str("message");
        // SAFETY: a live object borrowed from the call, GIL held, which
        // holds it while `rp` is used.
        let v = unsafe { scalar(rp, message.as_ptr(), Strings::Borrow)? };
        rp.item(k, v);
        Some(())
    })
}

/// One `feed_*` point without `kwargs` and without `feed_object`'s name
/// tag, read and written in one pass: each tag and field goes from the
/// script's dicts straight into the line at the end of `out`
/// ([`LineWriter`]). `message` is `feed_logging`'s (its fields are
/// `{"message": message}`; `p.fields` is not read then). `Err`: a value of
/// another type, or a point the fast path cannot decide: the caller
/// discards what was written and takes the reference path.
pub(super) fn feed_line(
    out: &mut Vec<u8>,
    scratch: &mut LineScratch,
    p: &FeedPoint<'_, '_>,
    message: Option<&Bound<'_, PyAny>>,
    opts: &ConvertOptions,
    input_tags: &[(String, String)],
) -> Result<(), Fallback> {
    debug_assert!(p.kwargs.is_none() && p.name_tag.is_none());
    // SAFETY: live objects borrowed from the call, GIL held. The call's
    // arguments hold every object read (the dicts hold their keys and
    // values) until it returns, and nothing here runs Python code: the
    // strings borrowed stay alive and unchanged while the line is written.
    unsafe {
        let m = exact_str(p.measurement.as_ptr()).ok_or(Fallback)?;
        let mut w = LineWriter::begin(out, scratch, opts, m)?;
        if let Some(d) = exact_dict(p.tags)? {
            walk(d, |k, v| w.tag(exact_str(k)?, scalar_ref(v)?).ok()).ok_or(Fallback)?;
        }
        w.fields();
        match message {
            Some(m) => w.field("message", scalar_ref(m.as_ptr()).ok_or(Fallback)?)?,
            None => {
                if let Some(d) = exact_dict(p.fields)? {
                    walk(d, |k, v| w.field(exact_str(k)?, scalar_ref(v)?).ok()).ok_or(Fallback)?;
                }
            }
        }
        let t = match p.time {
            None => Scalar::None,
            Some(t) => scalar_ref(t.as_ptr()).ok_or(Fallback)?,
        };
        w.finish(t, opts, input_tags)
    }
}

/// A tags/fields argument: `None` (no items), an exact dict, or `Err`
/// (anything else: the reference path).
///
/// # Safety
/// The GIL is held.
#[inline]
unsafe fn exact_dict(v: Option<&Bound<'_, PyAny>>) -> Result<Option<*mut ffi::PyObject>, Fallback> {
    let Some(v) = v else { return Ok(None) };
    let d = v.as_ptr();
    if d == ffi::Py_None() {
        return Ok(None);
    }
    if ffi::PyDict_CheckExact(d) == 0 {
        return Err(Fallback);
    }
    Ok(Some(d))
}

fn feed_with(
    rp: &mut RawPoints,
    p: &FeedPoint<'_, '_>,
    fields: impl FnOnce(&mut RawPoints) -> Option<()>,
) -> Option<()> {
    rp.clear();
    let mode = Strings::Borrow;
    // SAFETY: live objects borrowed from the call, GIL held; the call's
    // arguments hold every object read while `rp` is used.
    unsafe {
        let m = put(rp, p.measurement.as_ptr(), mode)?;
        rp.begin_point(m);
        map(rp, p.tags, Add::Item, mode)?;
        if let Some(n) = p.name_tag {
            let v = scalar(rp, n.as_ptr(), mode)?;
            rp.set_tag("name", v);
        }
        rp.fields();
        fields(rp)?;
        map(rp, p.kwargs, Add::Merge, mode)?;
        let t = match p.time {
            None => Val::None,
            Some(t) => scalar(rp, t.as_ptr(), mode)?,
        };
        if matches!(t, Val::Str(_) | Val::Bool(_)) {
            return None;
        }
        rp.end_point(t);
    }
    Some(())
}

/// Keys of a `report()` point, interned once.
pub(super) struct PointKeys {
    pub measurement: Py<PyAny>,
    pub tags: Py<PyAny>,
    pub fields: Py<PyAny>,
    pub time: Py<PyAny>,
}

/// Read one element of a `report()` list into `rp` (appended); `None`:
/// nothing of it is kept, take the reference path for it.
pub(super) fn report_point(
    py: Python<'_>,
    rp: &mut RawPoints,
    item: &Bound<'_, PyAny>,
    keys: &PointKeys,
    keep: &mut Keep,
) -> Option<()> {
    let mark = rp.mark();
    // SAFETY: `item` is alive (borrowed from the caller), GIL held; the
    // strings read are held by `keep` (the caller keeps it until `rp` is
    // encoded).
    let r = unsafe { report_point_inner(py, rp, item.as_ptr(), keys, Strings::Keep(keep)) };
    if r.is_none() {
        rp.rollback(mark);
    }
    r
}

unsafe fn report_point_inner(
    py: Python<'_>,
    rp: &mut RawPoints,
    item: *mut ffi::PyObject,
    keys: &PointKeys,
    mode: Strings,
) -> Option<()> {
    if ffi::PyDict_CheckExact(item) == 0 {
        return None;
    }
    let get = |k: &Py<PyAny>| -> Option<*mut ffi::PyObject> {
        // Exact str keys into a dict: a lookup that finds a non-str key of
        // the same hash would compare with `__eq__`; that is what the
        // reference path's `get_item` does too. An error: reference path.
        let v = ffi::PyDict_GetItemWithError(item, k.as_ptr());
        if v.is_null() && !ffi::PyErr_Occurred().is_null() {
            ffi::PyErr_Clear();
            return None;
        }
        Some(v)
    };
    // The point's keys matched by identity with the interned names (keys
    // written as literals are interned): one walk of the dict instead of
    // four lookups. A key that is not one of those objects (an equal str
    // built at run time, another key) sends this point to the lookups,
    // which compare by value.
    let null = std::ptr::null_mut();
    let (mut m, mut tags, mut fields, mut time) = (null, null, null, null);
    let len = dict_len(item);
    let mut walked = len <= 4;
    if walked {
        let mut pos: ffi::Py_ssize_t = 0;
        let mut k: *mut ffi::PyObject = null;
        let mut v: *mut ffi::PyObject = null;
        for _ in 0..len {
            if ffi::PyDict_Next(item, &mut pos, &mut k, &mut v) == 0 {
                break;
            }
            let slot = if k == keys.measurement.as_ptr() {
                &mut m
            } else if k == keys.tags.as_ptr() {
                &mut tags
            } else if k == keys.fields.as_ptr() {
                &mut fields
            } else if k == keys.time.as_ptr() {
                &mut time
            } else {
                walked = false;
                break;
            };
            *slot = v;
        }
    }
    if !walked {
        m = get(&keys.measurement)?;
        tags = get(&keys.tags)?;
        fields = get(&keys.fields)?;
        time = get(&keys.time)?;
    }
    if m.is_null() {
        return None;
    }
    let m = put(rp, m, mode)?;
    rp.begin_point(m);
    if !tags.is_null() {
        map(rp, Some(Bound::ref_from_ptr(py, &tags)), Add::Item, mode)?;
    }
    rp.fields();
    if !fields.is_null() {
        map(rp, Some(Bound::ref_from_ptr(py, &fields)), Add::Item, mode)?;
    }
    let t = if time.is_null() {
        Val::None
    } else {
        scalar(rp, time, mode)?
    };
    if matches!(t, Val::Str(_) | Val::Bool(_)) {
        return None;
    }
    rp.end_point(t);
    Some(())
}
