//! Python objects → [`RawPoint`]s. Only describes what the script gave; every
//! rule about what is valid lives in [`crate::point`].

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

use pythond_core::point::{RawPoint, RawValue};

/// The Python type name of `v`, for error messages.
pub fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// Describe one value. Never fails: what cannot be described becomes
/// `RawValue::Other` and the rules name it.
///
/// A list or tuple is read one level deep: a container inside it becomes
/// [`RawValue::Nested`] without being read (arrays hold only scalars, so it
/// is refused anyway). No path here recurses, so a list that contains itself
/// or nesting deeper than the stack costs one level, never the worker.
pub fn raw_value(v: &Bound<'_, PyAny>) -> RawValue {
    if let Ok(l) = v.cast::<PyList>() {
        // Index by index: an element's `__index__`/`__float__` may run
        // script code that resizes the list.
        let mut items = Vec::with_capacity(l.len());
        let mut i = 0;
        while let Ok(x) = l.get_item(i) {
            items.push(raw_element(&x));
            i += 1;
        }
        return RawValue::List(items);
    }
    if let Ok(t) = v.cast::<PyTuple>() {
        return RawValue::List(t.iter().map(|x| raw_element(&x)).collect());
    }
    raw_scalar(v)
}

/// An element of a list: containers are named, not read.
fn raw_element(v: &Bound<'_, PyAny>) -> RawValue {
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() || v.is_instance_of::<PyDict>()
    {
        return RawValue::Nested(type_name(v));
    }
    match raw_scalar(v) {
        RawValue::Map => RawValue::Nested(type_name(v)),
        other => other,
    }
}

/// Anything but a list or tuple.
fn raw_scalar(v: &Bound<'_, PyAny>) -> RawValue {
    if v.is_none() {
        return RawValue::None;
    }
    if let Ok(s) = v.cast::<PyString>() {
        return match s.to_str() {
            Ok(s) => RawValue::Str(s.to_owned()),
            Err(_) => RawValue::Other("str with lone surrogates".to_owned()),
        };
    }
    // bool before int: bool is an int subclass.
    if let Ok(b) = v.cast::<PyBool>() {
        return RawValue::Bool(b.is_true());
    }
    if v.is_instance_of::<PyInt>() {
        return raw_int(v);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return RawValue::Float(f.value());
    }
    if let Ok(b) = v.cast::<PyBytes>() {
        return RawValue::Bytes(b.as_bytes().to_vec());
    }
    if let Ok(b) = v.cast::<PyByteArray>() {
        return RawValue::Bytes(b.to_vec());
    }
    if v.is_instance_of::<PyList>() || v.is_instance_of::<PyTuple>() {
        return RawValue::Nested(type_name(v));
    }
    if v.is_instance_of::<PyDict>() {
        return RawValue::Map;
    }
    // numpy scalars and other number-likes: integers through __index__,
    // reals through __float__. Whatever these run is the script's own code;
    // an exception from it only means "not a number".
    let py = v.py();
    if v.hasattr(intern!(py, "__index__")).unwrap_or(false) {
        if let Ok(i) = v.call_method0(intern!(py, "__index__")) {
            if i.is_instance_of::<PyInt>() {
                return raw_int(&i);
            }
        }
    }
    if v.hasattr(intern!(py, "__float__")).unwrap_or(false) {
        if let Ok(f) = v.extract::<f64>() {
            return RawValue::Float(f);
        }
    }
    if v.hasattr(intern!(py, "keys")).unwrap_or(false) {
        return RawValue::Map;
    }
    RawValue::Other(type_name(v))
}

/// `repr(v)` for an error message: bounded in length, and never an error of
/// its own (a `__repr__` that raises, or recursion in a deep container).
pub fn short_repr(v: &Bound<'_, PyAny>) -> String {
    const MAX: usize = 80;
    let Ok(r) = v.repr() else {
        return format!("<{}>", type_name(v));
    };
    let r = r.to_string_lossy();
    if r.chars().count() <= MAX {
        return r.into_owned();
    }
    let mut cut: String = r.chars().take(MAX).collect();
    cut.push_str("...");
    cut
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
pub fn raw_map(d: &Bound<'_, PyDict>, out: &mut Vec<(String, RawValue)>) -> Result<(), String> {
    // A snapshot of the items: describing a value may run script code
    // (`__index__`, `__float__`) that changes the dict, which would end an
    // iteration over the dict itself with a panic.
    let items = d.items();
    out.reserve(items.len());
    for item in items.iter() {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
            item.extract().map_err(|e: PyErr| e.to_string())?;
        let key = match k.cast::<PyString>() {
            Ok(s) => s
                .to_str()
                .map_err(|_| "a key is a str with lone surrogates".to_owned())?
                .to_owned(),
            Err(_) => {
                return Err(format!(
                    "keys must be str, got {} {}",
                    type_name(&k),
                    short_repr(&k)
                ));
            }
        };
        out.push((key, raw_value(&v)));
    }
    Ok(())
}

/// A tags or fields argument: `None` is empty, a dict is read, anything else
/// is an error naming `what`.
pub fn optional_map(
    v: Option<&Bound<'_, PyAny>>,
    what: &str,
    out: &mut Vec<(String, RawValue)>,
) -> Result<(), String> {
    match v {
        None => Ok(()),
        Some(v) if v.is_none() => Ok(()),
        Some(v) => match v.cast::<PyDict>() {
            Ok(d) => raw_map(d, out).map_err(|e| format!("{what}: {e}")),
            Err(_) => Err(format!("{what} must be a dict, got {}", type_name(v))),
        },
    }
}

/// One element of a `report()` list: `{"measurement", "tags", "fields", "time"}`.
pub fn raw_point(v: &Bound<'_, PyAny>) -> Result<RawPoint, String> {
    let py = v.py();
    let d = v.cast::<PyDict>().map_err(|_| {
        format!(
            "must be a dict with \"measurement\", \"tags\", \"fields\", got {}",
            type_name(v)
        )
    })?;
    let mut p = RawPoint::default();
    if let Some(m) = d
        .get_item(intern!(py, "measurement"))
        .map_err(|e| e.to_string())?
    {
        p.measurement = raw_value(&m);
    }
    let tags = d.get_item(intern!(py, "tags")).map_err(|e| e.to_string())?;
    optional_map(tags.as_ref(), "\"tags\"", &mut p.tags)?;
    let fields = d
        .get_item(intern!(py, "fields"))
        .map_err(|e| e.to_string())?;
    optional_map(fields.as_ref(), "\"fields\"", &mut p.fields)?;
    if let Some(t) = d.get_item(intern!(py, "time")).map_err(|e| e.to_string())? {
        p.time = raw_value(&t);
    }
    Ok(p)
}
