//! `_pythond`: the native module behind `datakit_framework`.
//!
//! The methods' contract (arguments, defaults, errors): `docs/compat.md`,
//! "Script API" and "Data rules".
//!
//! - [`Framework`] (`_pythond.DataKitFramework`) is the native base class of
//!   the Python `DataKitFramework`: `report` and the one-point `feed_metric`,
//!   `feed_logging`, `feed_object` are its methods, so a script's
//!   `self.feed_metric(...)` is one vectorcall into Rust, with no Python
//!   frame in between. The Python subclass keeps everything else
//!   (`__init__(ip=, port=)`, the event methods, `checkArgEmpty`,
//!   `construct_url`, `http_post_*`, `set_lasterror`).
//! - [`Api`] (`_pythond.api`) serves the Python methods: events, lasterror,
//!   the blocking posts. It owns the input's [`Context`] (where points go):
//!   [`install_api`] puts the one `Api` object in `_pythond.api` and in a
//!   process-wide cell, where each native method reads it ([`api`]); a
//!   worker's one interpreter serves one input.
//! - A script's own target (`__init__(ip=, port=)`) is a [`PyTarget`] in the
//!   instance's `_pythond_target`: the typed [`Target`], never re-parsed.
//!
//! Each call converts its arguments, applies the point rules, encodes the
//! points and hands them over (to the script's stage, or the [`Sink`]); none
//! waits on the network while attached to Python. Points made of the common
//! built-in types take a fast path (`read.rs` + the core's `LineWriter`,
//! straight into the stage for a one-point call);
//! everything else, every error included, takes the reference path
//! (`convert.rs` + `RawPoint::into_point`), so both give the same lines and
//! the same messages. Module functions: `target` (a script's `ip`/`port`),
//! `output`/`output_flush` (`print()`).

mod api;
mod encode;
mod feed;
mod methods;
mod output;
mod read;
mod report;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use pythond_core::lineproto::Lines;
use pythond_core::point::{ConvertOptions, Point, RawPoint, RawValue};
use pythond_core::route::Route;
use pythond_core::sink::Payload;

pub use api::Context;
pub(crate) use api::{api, install_api, stage, Api};
use api::{instance_target, PyTarget};
pub use output::flush_output;

/// `DataKitFramework.checkArgEmpty` as the framework defines it: a script
/// class that overrides it gets its own called, as the Python methods did.
static CHECK_ARG_EMPTY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The native base of `datakit_framework.DataKitFramework`. No instance
/// data of its own (instances are laid out as plain objects, so script
/// classes may mix it with any other base as before); the target a script
/// chose lives in its `_pythond_target` attribute, the input's [`Api`] in
/// the class.
#[pyclass(subclass, frozen, module = "_pythond", name = "DataKitFramework")]
pub struct Framework;

#[pymethods]
impl Framework {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Framework
    }

    /// `report(data)`: every category list of `data`, all-or-nothing.
    #[pyo3(signature = (data, *args), text_signature = "($self, data)")]
    fn report<'py>(
        slf: &Bound<'py, Self>,
        data: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
    ) -> PyResult<Bound<'py, PyString>> {
        too_many(args, "report", "takes 2 positional arguments", 2)?;
        let api = api(slf.py())?;
        let target = instance_target(slf, api)?;
        report::report(api, target, data)?;
        Ok(empty(slf.py()))
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn feed_metric<'py>(
    slf: &Bound<'py, Framework>,
    input: Option<&Bound<'py, PyAny>>,
    measurement: Option<&Bound<'py, PyAny>>,
    tags: Option<&Bound<'py, PyAny>>,
    fields: Option<&Bound<'py, PyAny>>,
    time: Option<&Bound<'py, PyAny>>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    check_arg_empty(slf, "measurement", measurement)?;
    let kwargs = kwargs.filter(|k| !k.is_empty());
    if !truthy(fields)? && kwargs.is_none() {
        return Err(PyValueError::new_err("arguments missing \"fields\""));
    }
    let measurement = measurement.expect("checked non-empty");
    let api = api(slf.py())?;
    feed::feed(
        api,
        instance_target(slf, api)?,
        "M",
        feed::FeedArgs {
            input,
            measurement,
            tags,
            name_tag: None,
            fields: feed::Fields::Map(fields),
            time,
            kwargs: kwargs.as_ref().map(|k| k.as_any()),
        },
    )?;
    Ok(empty(slf.py()).into_any())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn feed_logging<'py>(
    slf: &Bound<'py, Framework>,
    input: Option<&Bound<'py, PyAny>>,
    source: Option<&Bound<'py, PyAny>>,
    tags: Option<&Bound<'py, PyAny>>,
    message: Option<&Bound<'py, PyAny>>,
    time: Option<&Bound<'py, PyAny>>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    check_arg_empty(slf, "source", source)?;
    let py = slf.py();
    let none = py.None().into_bound(py);
    let kwargs = kwargs.filter(|k| !k.is_empty());
    let api = api(py)?;
    feed::feed(
        api,
        instance_target(slf, api)?,
        "L",
        feed::FeedArgs {
            input,
            measurement: source.expect("checked non-empty"),
            tags,
            name_tag: None,
            fields: feed::Fields::Message(message.unwrap_or(&none)),
            time,
            kwargs: kwargs.as_ref().map(|k| k.as_any()),
        },
    )?;
    Ok(empty(py).into_any())
}

#[allow(clippy::too_many_arguments)]
pub(super) fn feed_object<'py>(
    slf: &Bound<'py, Framework>,
    input: Option<&Bound<'py, PyAny>>,
    cls: Option<&Bound<'py, PyAny>>,
    name: Option<&Bound<'py, PyAny>>,
    tags: Option<&Bound<'py, PyAny>>,
    fields: Option<&Bound<'py, PyAny>>,
    time: Option<&Bound<'py, PyAny>>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    check_arg_empty(slf, "cls", cls)?;
    let kwargs = kwargs.filter(|k| !k.is_empty());
    if !truthy(fields)? && kwargs.is_none() {
        return Err(PyValueError::new_err("arguments missing \"fields\""));
    }
    let py = slf.py();
    // `tags = dict(tags) if tags else {}; tags["name"] = name`, as the
    // framework did; read in place when `tags` is already a plain dict.
    let mut tags_dict = None;
    let name_tag = match name {
        Some(n) => {
            let plain = tags.is_none_or(|t| t.is_exact_instance_of::<PyDict>());
            if !plain {
                let d = if truthy(tags)? {
                    py.get_type::<PyDict>()
                        .call1((tags.expect("truthy"),))?
                        .cast_into::<PyDict>()?
                } else {
                    PyDict::new(py)
                };
                d.set_item("name", n)?;
                tags_dict = Some(d.into_any());
                None
            } else {
                Some(n)
            }
        }
        None => None,
    };
    let tags = match &tags_dict {
        Some(d) => Some(d),
        None => tags,
    };
    let api = api(py)?;
    feed::feed(
        api,
        instance_target(slf, api)?,
        "O",
        feed::FeedArgs {
            input,
            measurement: cls.expect("checked non-empty"),
            tags,
            name_tag,
            fields: feed::Fields::Map(fields),
            time,
            kwargs: kwargs.as_ref().map(|k| k.as_any()),
        },
    )?;
    Ok(empty(py).into_any())
}

/// `""`, the answer of every queueing call (the original returned DataKit's
/// response body).
fn empty(py: Python<'_>) -> Bound<'_, PyString> {
    pyo3::intern!(py, "").clone()
}

/// Extra positional arguments: the `TypeError` CPython gives for the
/// framework's Python methods (`self` counted).
fn too_many(args: &Bound<'_, PyTuple>, method: &str, takes: &str, max: usize) -> PyResult<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(PyTypeError::new_err(format!(
        "DataKitFramework.{method}() {takes} but {} were given",
        max + args.len()
    )))
}

/// Python's `not v` negated (`None`: false); what `__bool__`/`__len__` raise is passed on.
fn truthy(v: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
    let Some(v) = v else { return Ok(false) };
    let o = v.as_ptr();
    // The arguments of nearly every call: an exact str or dict, whose truth
    // is its length, read in place (no `__bool__`/`__len__` to call).
    // SAFETY: a live object, attached; plain reads of exact built-ins.
    unsafe {
        if pyo3::ffi::PyUnicode_CheckExact(o) != 0 {
            return Ok(pyo3::ffi::PyUnicode_GET_LENGTH(o) != 0);
        }
        if pyo3::ffi::PyDict_CheckExact(o) != 0 {
            return Ok((*(o as *mut pyo3::ffi::PyDictObject)).ma_used != 0);
        }
    }
    v.is_truthy()
}

/// `self.checkArgEmpty(name, value)`: the framework's check, or the
/// script class's own when it overrides it.
fn check_arg_empty(
    slf: &Bound<'_, Framework>,
    name: &str,
    value: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let py = slf.py();
    if let Some(base) = CHECK_ARG_EMPTY.get(py) {
        if overrides_check(slf, base)? {
            let none = py.None().into_bound(py);
            slf.call_method1(
                pyo3::intern!(py, "checkArgEmpty"),
                (name, value.unwrap_or(&none)),
            )?;
            return Ok(());
        }
    }
    if !truthy(value)? {
        return Err(PyValueError::new_err(format!(
            "arguments missing \"{name}\""
        )));
    }
    Ok(())
}

/// Whether the class of `slf` has a `checkArgEmpty` other than the
/// framework's. Remembered per class while the class is unchanged
/// (CPython's version tag of the type, which any change to it or to a base
/// invalidates), so the attribute is not looked up on every call.
fn overrides_check(slf: &Bound<'_, Framework>, base: &Py<PyAny>) -> PyResult<bool> {
    thread_local! {
        /// (type, its version tag, overrides).
        static LAST: std::cell::Cell<(usize, u32, bool)> = const { std::cell::Cell::new((0, 0, false)) };
    }
    let ty = slf.get_type();
    let tp = ty.as_type_ptr();
    // SAFETY: a live type object; plain reads of its fields.
    let (tag, valid) = unsafe {
        (
            (*tp).tp_version_tag,
            (*tp).tp_flags & pyo3::ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0,
        )
    };
    if valid {
        let (t, v, over) = LAST.with(|c| c.get());
        if t == tp as usize && v == tag {
            return Ok(over);
        }
    }
    let over = !ty
        .getattr(pyo3::intern!(slf.py(), "checkArgEmpty"))?
        .is(base);
    // The lookup above gives the type a valid tag if it had none.
    // SAFETY: as above.
    let (tag, valid) = unsafe {
        (
            (*tp).tp_version_tag,
            (*tp).tp_flags & pyo3::ffi::Py_TPFLAGS_VALID_VERSION_TAG != 0,
        )
    };
    if valid {
        LAST.with(|c| c.set((tp as usize, tag, over)));
    }
    Ok(over)
}

/// Note the framework's own `checkArgEmpty` (after `datakit_framework` ran).
pub(crate) fn framework_installed(framework: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = framework.py();
    let f = framework
        .getattr("DataKitFramework")?
        .getattr("checkArgEmpty")?;
    let _ = CHECK_ARG_EMPTY.set(py, f.unbind());
    Ok(())
}

/// Add the input's tags, apply the point rules; an error is a `ValueError`
/// prefixed with `what` (the method and list it came from).
fn finish(
    ctx: &Context,
    mut raw: RawPoint,
    index: usize,
    opts: &ConvertOptions,
    what: &str,
) -> PyResult<Point> {
    for (k, v) in &ctx.input_tags {
        let taken = raw.tags.iter().any(|(t, _)| t == k) || raw.fields.iter().any(|(f, _)| f == k);
        if !taken {
            raw.tags.push((k.clone(), RawValue::Str(v.clone())));
        }
    }
    raw.into_point(index, opts)
        .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Hand one call's points to the sink (logged when it refuses them).
fn submit(ctx: &Context, route: Route, points: Payload) {
    if points.is_empty() {
        return;
    }
    if let Err(e) = ctx.sink.submit(route, points) {
        tracing::warn!(target: "pythond::writer", script = %crate::current_script(), "{e}");
    }
}

/// One checked call's lines for `route`: into the running script's stage
/// (gathered with its other calls, see `pythond_core::writer::Stage`), or
/// straight to the sink outside a run; counted for the script.
fn hand_over(ctx: &Context, route: &Route, lines: &mut Lines) {
    let n = lines.len() as u64;
    if n == 0 {
        return;
    }
    let staged = crate::current::with_current(|cur| {
        let cur = cur?;
        cur.counters.add(&route.category, n);
        cur.counters.call();
        let stage = cur.stage.as_ref()?;
        stage.push(route, lines);
        Some(())
    });
    if staged.is_none() {
        submit(ctx, route.clone(), Payload::Lines(std::mem::take(lines)));
    }
}

/// [`hand_over`] of the one line `write` encodes: straight into the running
/// script's stage, else into `scratch` and to the sink. On `Err` nothing is
/// handed over (and nothing counted).
fn hand_over_with<E>(
    ctx: &Context,
    route: &Route,
    scratch: &mut Lines,
    write: impl FnOnce(&mut Lines) -> Result<(), E>,
) -> Result<(), E> {
    let mut write = Some(write);
    let staged = crate::current::with_current(|cur| {
        let cur = cur?;
        let stage = cur.stage.as_ref()?;
        let w = write.take().expect("once");
        Some(stage.push_with(route, w).map(|()| {
            cur.counters.add(&route.category, 1);
            cur.counters.call();
        }))
    });
    match staged {
        Some(r) => r,
        None => {
            scratch.clear();
            (write.take().expect("not used"))(scratch)?;
            hand_over(ctx, route, scratch);
            Ok(())
        }
    }
}

/// A call's points submitted directly (test mode's whole points, and
/// `report()`): the script's stage goes first, so that its points of the
/// same route keep their order; counted for the script.
fn hand_over_direct(ctx: &Context, route: Route, points: Payload) {
    if points.is_empty() {
        return;
    }
    crate::current::with_current(|cur| {
        if let Some(cur) = cur {
            cur.counters.add(&route.category, points.len() as u64);
            if let Some(stage) = &cur.stage {
                stage.flush();
            }
        }
    });
    submit(ctx, route, points);
}

fn now_ns() -> i64 {
    pythond_core::clock::now_ns()
}

#[pymodule]
#[pyo3(name = "_pythond")]
pub fn pythond_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Api>()?;
    m.add_class::<Framework>()?;
    m.add_class::<PyTarget>()?;
    methods::install(&m.py().get_type::<Framework>())?;
    m.add_function(wrap_pyfunction!(api::target, m)?)?;
    m.add_function(wrap_pyfunction!(output::output, m)?)?;
    m.add_function(wrap_pyfunction!(output::output_flush, m)?)?;
    Ok(())
}
