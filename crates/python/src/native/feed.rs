//! The one-point methods (`feed_metric`, `feed_logging`, `feed_object`, the
//! events), `set_lasterror` and the blocking `http_post_*` helpers.

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::{finish, now_ns, route_target, submit, Api};
use crate::convert::{optional_map, raw_value, type_name, ConvertError};
use pythond_core::point::{Category, ConvertOptions, RawPoint};
use pythond_core::route::{Route, WriteQuery};

fn method_name(key: &str) -> &'static str {
    match key {
        "M" => "feed_metric()",
        "L" => "feed_logging()",
        "O" => "feed_object()",
        "E" => "feed_event()",
        _ => "feed()",
    }
}

/// The arguments of one `feed_*` call, as the framework passes them.
pub(super) struct FeedArgs<'a, 'py> {
    pub input: Option<Bound<'py, PyAny>>,
    pub measurement: &'a Bound<'py, PyAny>,
    pub tags: Option<Bound<'py, PyAny>>,
    pub fields: Option<Bound<'py, PyAny>>,
    pub time: Option<Bound<'py, PyAny>>,
    pub kwargs: Option<Bound<'py, PyAny>>,
}

/// One point of category `key`: fields = `fields` then `kwargs`.
pub(super) fn feed(
    api: &Api,
    target: Option<String>,
    key: &str,
    args: FeedArgs<'_, '_>,
) -> PyResult<String> {
    let FeedArgs {
        input,
        measurement,
        tags,
        fields,
        time,
        kwargs,
    } = args;
    let ctx = &api.ctx;
    let what = method_name(key);
    let category = Category::from_report_key(key)
        .ok_or_else(|| PyValueError::new_err(format!("unknown category key {key:?}")))?;
    let err = |e: String| PyValueError::new_err(format!("{what}: {e}"));
    let conv = |e: ConvertError| e.into_pyerr(|e| format!("{what}: {e}"));
    let mut raw = RawPoint {
        measurement: raw_value(measurement).map_err(conv)?,
        ..RawPoint::default()
    };
    optional_map(tags.as_ref(), "argument \"tags\"", &mut raw.tags).map_err(conv)?;
    optional_map(fields.as_ref(), "argument \"fields\"", &mut raw.fields).map_err(conv)?;
    let mut extra = Vec::new();
    optional_map(kwargs.as_ref(), "keyword arguments", &mut extra).map_err(conv)?;
    for (k, v) in extra {
        // Python's {**fields, **kwargs}: a keyword replaces a field of the same name.
        if let Some(slot) = raw.fields.iter_mut().find(|(f, _)| *f == k) {
            slot.1 = v;
        } else {
            raw.fields.push((k, v));
        }
    }
    if let Some(t) = &time {
        raw.time = raw_value(t).map_err(conv)?;
    }
    let input = match input {
        Some(v) if !v.is_none() => Some(
            v.cast::<PyString>()
                .map_err(|_| {
                    err(format!(
                        "argument \"input\" must be a str, got {}",
                        type_name(&v)
                    ))
                })?
                .to_str()?
                .to_owned(),
        )
        .filter(|s| !s.is_empty()),
        _ => None,
    };
    if let Some(i) = &input {
        pythond_core::route::check_query_value(i)
            .map_err(|e| err(format!("argument \"input\" {e}")))?;
    }
    let opts = ConvertOptions {
        numbers_as_float: ctx.numbers_as_float,
        precision: None,
        now_ns: now_ns(),
    };
    let mut points = ctx.sink.payload();
    points.push(finish(ctx, raw, 0, &opts, what)?);
    let route = Route {
        target: route_target(target),
        category,
        query: WriteQuery {
            input,
            ..WriteQuery::default()
        },
    };
    submit(ctx, route, points);
    Ok(String::new())
}

/// `set_lasterror(input, message)`: queued, answered with "".
pub(super) fn lasterror(
    api: &Api,
    target: Option<String>,
    input: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let ctx = &api.ctx;
    let input = text_arg(input, "input_name")?;
    let message = text_arg(message, "err_msg")?;
    ctx.sink.lasterror(route_target(target), &input, &message);
    Ok(String::new())
}

/// A `set_lasterror` argument as text: a str as it is, anything else through
/// `str()`, as the original's JSON body would have carried it. A `str()`
/// that fails (a list nested past the recursion limit, a raising `__str__`)
/// is a `ValueError` naming the argument, with the failure as its cause;
/// what is not an `Exception` (`RunTimeout`) is passed on.
fn text_arg(v: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let py = v.py();
    let s = match v.cast::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => match v.str() {
            Ok(s) => s,
            Err(e) if e.is_instance_of::<PyException>(py) => {
                let err = PyValueError::new_err(format!(
                    "set_lasterror(): argument \"{what}\" ({}) cannot be converted to str: {e}",
                    type_name(v)
                ));
                err.set_cause(py, Some(e));
                return Err(err);
            }
            Err(e) => return Err(e),
        },
    };
    Ok(s.to_str()?.to_owned())
}

/// `http_post_json` / `http_post_raw`: blocks the calling script (not the
/// others: detached from Python) and returns the body, "" on failure as the
/// original did.
pub(super) fn post(api: &Api, py: Python<'_>, url: String, body: String, json: bool) -> String {
    let ctx = &api.ctx;
    let script = crate::current_script();
    let result = py.detach(|| ctx.sink.post(&url, body, json));
    result.unwrap_or_else(|e| {
        tracing::warn!(target: "pythond::writer", script = %script, "POST {url} failed: {e}");
        String::new()
    })
}
