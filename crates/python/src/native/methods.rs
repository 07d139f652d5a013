//! The `feed_*` methods of the native base class as plain CPython
//! `METH_FASTCALL | METH_KEYWORDS` method descriptors.
//!
//! pyo3 gives a method with `**kwargs` the tuple-and-dict calling convention:
//! every call would build a dict of its keyword arguments, then a second one
//! for `**kwargs`. A `self.feed_metric(measurement=..., tags=..., fields=...)`
//! made that way spent more time in those dicts than in its point. Here the
//! arguments are bound straight from the vectorcall array: keywords are
//! matched to parameters by their (interned) names, and a `kwargs` dict is
//! built only when a keyword is not a parameter.
//!
//! The binding follows CPython's for the framework's former Python methods,
//! messages included: a keyword naming a parameter already given
//! positionally is `got multiple values for argument 'x'` (checked first),
//! then too many positional arguments is `takes from 1 to 6 positional
//! arguments but 7 were given` (counting `self`).

use std::os::raw::c_int;

use pyo3::exceptions::PyTypeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::Framework;

/// A bound argument: `None` when not given or given as `None`.
type Arg<'a, 'py> = Option<Borrowed<'a, 'py, PyAny>>;

/// Bind `args`/`kwnames` of a fastcall to the parameters `names` (after
/// `self`); keywords that name none of them go to the returned dict.
///
/// # Safety
/// The arguments are a vectorcall's: `args` holds `nargs` positional
/// arguments then one value per name of the tuple `kwnames` (or null).
unsafe fn bind<'a, 'py, const N: usize>(
    py: Python<'py>,
    method: &str,
    names: &[&Bound<'py, PyString>; N],
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<([Arg<'a, 'py>; N], Option<Bound<'py, PyDict>>)> {
    let mut out: [Arg<'a, 'py>; N] = [None; N];
    let mut given = [false; N];
    let nargs = nargs as usize;
    let none = ffi::Py_None();
    let arg = |p: *mut ffi::PyObject| -> Arg<'a, 'py> {
        // SAFETY: `p` is an argument of the call, alive for its duration.
        (p != none).then(|| unsafe { Borrowed::from_ptr(py, p) })
    };
    for i in 0..nargs.min(N) {
        out[i] = arg(*args.add(i));
        given[i] = true;
    }
    let mut kwargs: Option<Bound<'py, PyDict>> = None;
    if !kwnames.is_null() {
        let nkw = ffi::PyTuple_GET_SIZE(kwnames) as usize;
        for k in 0..nkw {
            let name = ffi::PyTuple_GET_ITEM(kwnames, k as ffi::Py_ssize_t);
            let value = *args.add(nargs + k);
            // Interned names compare by pointer; others by value.
            let mut slot = names.iter().position(|n| n.as_ptr() == name);
            let name = Borrowed::from_ptr(py, name);
            if slot.is_none() {
                slot = names
                    .iter()
                    .position(|n| n.as_any().eq(&*name).unwrap_or(false));
            }
            match slot {
                Some(i) if given[i] => return Err(multiple(method, &name)),
                Some(i) => {
                    out[i] = arg(value);
                    given[i] = true;
                }
                None if name.eq(pyo3::intern!(py, "self")).unwrap_or(false) => {
                    return Err(multiple(method, &name))
                }
                None => {
                    let d = kwargs.get_or_insert_with(|| PyDict::new(py));
                    d.set_item(&*name, Borrowed::from_ptr(py, value))?;
                }
            }
        }
    }
    if nargs > N {
        return Err(PyTypeError::new_err(format!(
            "DataKitFramework.{method}() takes from 1 to {} positional arguments but {} were given",
            N + 1,
            nargs + 1
        )));
    }
    Ok((out, kwargs))
}

fn multiple(method: &str, name: &Borrowed<'_, '_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "DataKitFramework.{method}() got multiple values for argument '{}'",
        name.str().map(|s| s.to_string()).unwrap_or_default()
    ))
}

/// A fastcall method: `body` with the GIL's token and Rust panics trapped.
///
/// # Safety
/// Called by CPython as a `PyCFunctionFastWithKeywords`.
unsafe fn trampoline(
    body: impl for<'py> FnOnce(Python<'py>) -> PyResult<Bound<'py, PyAny>>,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls methods attached to the interpreter.
    let py = Python::assume_attached();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(py)));
    let r = r.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(pyo3::panic::PanicException::new_err(msg))
    });
    match r {
        Ok(v) => v.into_ptr(),
        Err(e) => {
            e.restore(py);
            std::ptr::null_mut()
        }
    }
}

macro_rules! names {
    ($py:ident, $($n:literal),*) => {
        [$(pyo3::intern!($py, $n)),*]
    };
}

unsafe extern "C" fn feed_metric(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let names = names!(py, "input", "measurement", "tags", "fields", "time");
        let ([input, measurement, tags, fields, time], kwargs) =
            bind(py, "feed_metric", &names, args, nargs, kwnames)?;
        let slf = Borrowed::from_ptr(py, slf);
        let slf = slf.cast::<Framework>()?;
        super::feed_metric(
            &slf,
            input.as_deref(),
            measurement.as_deref(),
            tags.as_deref(),
            fields.as_deref(),
            time.as_deref(),
            kwargs,
        )
    })
}

unsafe extern "C" fn feed_logging(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let names = names!(py, "input", "source", "tags", "message", "time");
        let ([input, source, tags, message, time], kwargs) =
            bind(py, "feed_logging", &names, args, nargs, kwnames)?;
        let slf = Borrowed::from_ptr(py, slf);
        let slf = slf.cast::<Framework>()?;
        super::feed_logging(
            &slf,
            input.as_deref(),
            source.as_deref(),
            tags.as_deref(),
            message.as_deref(),
            time.as_deref(),
            kwargs,
        )
    })
}

unsafe extern "C" fn feed_object(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    trampoline(|py| {
        let names = names!(py, "input", "cls", "name", "tags", "fields", "time");
        let ([input, cls, name, tags, fields, time], kwargs) =
            bind(py, "feed_object", &names, args, nargs, kwnames)?;
        let slf = Borrowed::from_ptr(py, slf);
        let slf = slf.cast::<Framework>()?;
        super::feed_object(
            &slf,
            input.as_deref(),
            cls.as_deref(),
            name.as_deref(),
            tags.as_deref(),
            fields.as_deref(),
            time.as_deref(),
            kwargs,
        )
    })
}

/// Put the `feed_*` method descriptors on the native class.
pub(super) fn install(class: &Bound<'_, pyo3::types::PyType>) -> PyResult<()> {
    type Fast = ffi::PyCFunctionFastWithKeywords;
    let defs: [(&'static std::ffi::CStr, Fast, &'static std::ffi::CStr); 3] = [
        (
            c"feed_metric",
            feed_metric,
            c"feed_metric($self, input=None, measurement=None, tags=None, fields=None, time=None, **kwargs)\n--\n\nOne metric point; kwargs are added to the fields.",
        ),
        (
            c"feed_logging",
            feed_logging,
            c"feed_logging($self, input=None, source=None, tags=None, message=None, time=None, **kwargs)\n--\n\nOne logging point: source is the measurement, the fields are {\"message\": message, **kwargs}.",
        ),
        (
            c"feed_object",
            feed_object,
            c"feed_object($self, input=None, cls=None, name=None, tags=None, fields=None, time=None, **kwargs)\n--\n\nOne object point of class cls; name becomes tag \"name\".",
        ),
    ];
    for (name, f, doc) in defs {
        // CPython keeps a pointer to the definition for the life of the
        // descriptor, i.e. of the process: leaked once per method.
        let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
            ml_name: name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer {
                PyCFunctionFastWithKeywords: f,
            },
            ml_flags: (ffi::METH_FASTCALL | ffi::METH_KEYWORDS) as c_int,
            ml_doc: doc.as_ptr(),
        }));
        // SAFETY: a live type object and a 'static method definition.
        let descr = unsafe {
            Bound::from_owned_ptr_or_err(
                class.py(),
                ffi::PyDescr_NewMethod(class.as_ptr() as *mut ffi::PyTypeObject, def),
            )?
        };
        class.setattr(name.to_str().expect("ASCII"), descr)?;
    }
    Ok(())
}
