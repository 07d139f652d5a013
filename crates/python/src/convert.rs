//! Python objects → [`RawPoint`]s. Only describes what the script gave; every
//! rule about what is valid lives in [`crate::point`].

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use pyo3::exceptions::{PyException, PyValueError};

use pythond_core::point::{RawPoint, RawValue};

/// Why a value could not be described.
pub enum ConvertError {
    /// What the script gave is wrong; becomes a `ValueError` with this text
    /// (prefixed with the method and argument).
    Invalid(String),
    /// Python raised something that is not the value's fault and must reach
    /// the script as it is: `RunTimeout` (the run's timeout firing inside a
    /// script-defined `__index__`), `KeyboardInterrupt`, `SystemExit`.
    Raised(PyErr),
}

impl From<String> for ConvertError {
    fn from(s: String) -> Self {
        ConvertError::Invalid(s)
    }
}

impl ConvertError {
    /// A Python exception: `ValueError(prefix(msg))`, or what was raised.
    pub fn into_pyerr(self, prefix: impl FnOnce(String) -> String) -> PyErr {
        match self {
            ConvertError::Invalid(msg) => PyValueError::new_err(prefix(msg)),
            ConvertError::Raised(e) => e,
        }
    }

    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            ConvertError::Invalid(msg) => ConvertError::Invalid(f(msg)),
            raised => raised,
        }
    }
}

/// The outcome of script code the converter ran (`__index__`, `__float__`,
/// `hasattr`): an `Exception` only means "not that kind of value" and is
/// `None`; anything else (`RunTimeout`, ...) is passed on.
fn tolerate<T>(py: Python<'_>, r: PyResult<T>) -> Result<Option<T>, ConvertError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_instance_of::<PyException>(py) => Ok(None),
        Err(e) => Err(ConvertError::Raised(e)),
    }
}

/// A lookup in a dict the script gave: an `Exception` (a key's `__eq__`)
/// is a bad value, anything else is passed on.
fn lookup<T>(py: Python<'_>, r: PyResult<T>) -> Result<T, ConvertError> {
    r.map_err(|e| {
        if e.is_instance_of::<PyException>(py) {
            ConvertError::Invalid(e.to_string())
        } else {
            ConvertError::Raised(e)
        }
    })
}

/// The Python type name of `v`, for error messages.
pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// Describe one value. What cannot be described becomes `RawValue::Other`
/// and the rules name it; the only error is what script code run here
/// (`__index__`, `__float__`) raised that is not an `Exception`.
///
/// A list or tuple is read one level deep: a container inside it becomes
/// [`RawValue::Nested`] without being read (arrays hold only scalars, so it
/// is refused anyway). No path here recurses, so a list that contains itself
/// or nesting deeper than the stack costs one level, never the worker.
pub fn raw_value(v: &Bound<'_, PyAny>) -> Result<RawValue, ConvertError> {
    if let Ok(l) = v.cast::<PyList>() {
        // Index by index: an element's `__index__`/`__float__` may run
        // script code that resizes the list.
        let mut items = Vec::with_capacity(l.len());
        let mut i = 0;
        while let Ok(x) = l.get_item(i) {
            items.push(raw_element(&x)?);
            i += 1;
        }
        return Ok(RawValue::List(items));
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        let mut items = Vec::with_capacity(t.len());
        for x in t.iter() {
            items.push(raw_element(&x)?);
        }
        return Ok(RawValue::List(items));
    }
    raw_scalar(v)
}

/// An element of a list: containers are named, not read.
fn raw_element(v: &Bound<'_, PyAny>) -> Result<RawValue, ConvertError> {
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyDict>()
    {
        return Ok(RawValue::Nested(type_name(v)));
    }
    Ok(match raw_scalar(v)? {
        RawValue::Map => RawValue::Nested(type_name(v)),
        other => other,
    })
}

/// Anything but a list or tuple.
fn raw_scalar(v: &Bound<'_, PyAny>) -> Result<RawValue, ConvertError> {
    if v.is_none() {
        return Ok(RawValue::None);
    }
    if let Ok(s) = v.cast::<PyString>() {
        return Ok(match s.to_str() {
            Ok(s) => RawValue::Str(s.to_owned()),
            Err(_) => RawValue::Other("str with lone surrogates".to_owned()),
        });
    }
    // bool before int: bool is an int subclass.
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(RawValue::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        return Ok(raw_int(v));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(RawValue::Float(f.value()));
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return Ok(RawValue::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return Ok(RawValue::Bytes(b.to_vec()));
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        return Ok(RawValue::Nested(type_name(v)));
    }
    if v.is_instance_of::<PyDict>() {
        return Ok(RawValue::Map);
    }
    // numpy scalars and other number-likes: integers through __index__,
    // reals through __float__. Whatever these run is the script's own code;
    // an exception from it only means "not a number".
    let py = v.py();
    if tolerate(py, v.hasattr(intern!(py, "__index__")))? == Some(true) {
        if let Some(i) = tolerate(py, v.call_method0(intern!(py, "__index__")))? {
            if i.is_instance_of::<PyInt>() {
                return Ok(raw_int(&i));
            }
        }
    }
    if tolerate(py, v.hasattr(intern!(py, "__float__")))? == Some(true) {
        if let Some(f) = tolerate(py, v.extract::<f64>())? {
            return Ok(RawValue::Float(f));
        }
    }
    if tolerate(py, v.hasattr(intern!(py, "keys")))? == Some(true) {
        return Ok(RawValue::Map);
    }
    Ok(RawValue::Other(type_name(v)))
}

/// `repr(v)` for an error message: bounded in length, and not an error of
/// its own when it fails with an `Exception` (a `__repr__` that raises,
/// recursion in a deep container); anything else is passed on.
pub fn short_repr(v: &Bound<'_, PyAny>) -> PyResult<String> {
    const MAX: usize = 80;
    let r = match v.repr() {
        Ok(r) => r,
        Err(e) if e.is_instance_of::<PyException>(v.py()) => {
            return Ok(format!("<{}>", type_name(v)))
        }
        Err(e) => return Err(e),
    };
    let r = r.to_string_lossy();
    if r.chars().count() <= MAX {
        return Ok(r.into_owned());
    }
    let mut cut: String = r.chars().take(MAX).collect();
    cut.push_str("...");
    Ok(cut)
}

fn raw_int(v: &Bound<'_, PyAny>) -> RawValue {
    if let Ok(i) = v.extract::<i64>() {
        return RawValue::Int(i as i128);
    }
    match v.extract::<i128>() {
        Ok(i) => RawValue::Int(i),
        Err(_) => RawValue::BigInt,
    }
}

/// A dict's items as (key, value) pairs. A non-str key is an error naming it.
pub fn raw_map(
    d: &Bound<'_, PyDict>,
    out: &mut Vec<(String, RawValue)>,
) -> Result<(), ConvertError> {
    // A snapshot of the items: describing a value may run script code
    // (`__index__`, `__float__`) that changes the dict, which would end an
    // iteration over the dict itself with a panic.
    let items = d.items();
    out.reserve(items.len());
    for item in items.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = lookup(d.py(), item.extract())?;
        let key = match k.cast::<PyString>() {
            Ok(s) => s
                .to_str()
                .map_err(|_| "a key is a str with lone surrogates".to_owned())?
                .to_owned(),
            Err(_) => {
                let repr = short_repr(&k).map_err(ConvertError::Raised)?;
                return Err(format!("keys must be str, got {} {repr}", type_name(&k)).into());
            }
        };
        out.push((key, raw_value(&v)?));
    }
    Ok(())
}

/// A tags or fields argument: `None` is empty, a dict is read, anything else
/// is an error naming `what`.
pub fn optional_map(
    v: Option<&Bound<'_, PyAny>>,
    what: &str,
    out: &mut Vec<(String, RawValue)>,
) -> Result<(), ConvertError> {
    match v {
        None => Ok(()),
        Some(v) if v.is_none() => Ok(()),
        Some(v) => match v.cast::<PyDict>() {
            Ok(d) => raw_map(d, out).map_err(|e| e.map(|e| format!("{what}: {e}"))),
            Err(_) => Err(format!("{what} must be a dict, got {}", type_name(v)).into()),
        },
    }
}

/// One element of a `report()` list: `{"measurement", "tags", "fields", "time"}`.
pub fn raw_point(v: &Bound<'_, PyAny>) -> Result<RawPoint, ConvertError> {
    let py = v.py();
    let d = v.cast::<PyDict>().map_err(|_| {
        format!(
            "must be a dict with \"measurement\", \"tags\", \"fields\", got {}",
            type_name(v)
        )
    })?;
    let mut p = RawPoint::default();
    if let Some(m) = lookup(py, d.get_item(intern!(py, "measurement")))? {
        p.measurement = raw_value(&m)?;
    }
    let tags = lookup(py, d.get_item(intern!(py, "tags")))?;
    optional_map(tags.as_ref(), "\"tags\"", &mut p.tags)?;
    let fields = lookup(py, d.get_item(intern!(py, "fields")))?;
    optional_map(fields.as_ref(), "\"fields\"", &mut p.fields)?;
    if let Some(t) = lookup(py, d.get_item(intern!(py, "time")))? {
        p.time = raw_value(&t)?;
    }
    Ok(p)
}
