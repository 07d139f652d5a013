//! `_pythond`: the native module behind `datakit_framework`. Each function
//! converts its arguments, applies the point rules and hands the result to the
//! [`Sink`]; none waits on the network while attached to Python.

use std::cell::RefCell;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::convert::{optional_map, raw_point, type_name};
use crate::lineproto::Precision;
use crate::point::{Category, ConvertOptions, Point, RawPoint, RawValue};
use crate::sink::{Payload, Sink};
use crate::writer::{Route, Target, WriteQuery};

/// What the native functions need to know about the input they serve.
pub struct Context {
    pub sink: Arc<dyn Sink>,
    /// The config block's `tags`, added to every point that lacks the key.
    pub input_tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
}

static CONTEXT: RwLock<Option<Arc<Context>>> = RwLock::new(None);

/// Install the context scripts report into. Replaces any previous one.
pub fn set_context(ctx: Context) {
    *CONTEXT.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(ctx));
}

fn context() -> PyResult<Arc<Context>> {
    CONTEXT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or_else(|| PyRuntimeError::new_err("datakit_framework is only usable inside pythond"))
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn route_target(target: Option<String>) -> Option<Target> {
    target.map(Target::Http)
}

/// `(ip, port)` given to `DataKitFramework.__init__` → the target key, or
/// `None` when it names the default address (then the configured DataKit wins,
/// which may be a Unix socket or another port from datakit.conf).
#[pyfunction]
fn target(host: &Bound<'_, PyAny>, port: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let host = host.str()?.to_string();
    let port = port.str()?.to_string();
    if (host == "127.0.0.1" || host == "localhost") && port == "9529" {
        return Ok(None);
    }
    Ok(Some(format!("http://{host}:{port}")))
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

fn submit(ctx: &Context, route: Route, points: Payload) {
    if points.is_empty() {
        return;
    }
    if let Err(e) = ctx.sink.submit(route, points) {
        tracing::warn!(target: "pythond::writer", script = %super::current_script(), "{e}");
    }
}

fn opt_str(v: Option<Bound<'_, PyAny>>, what: &str) -> PyResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => {
                let s = s.to_str()?;
                Ok((!s.is_empty()).then(|| s.to_owned()))
            }
            Err(_) => Err(PyValueError::new_err(format!(
                "report(): {what} must be a str, got {}",
                type_name(&v)
            ))),
        },
    }
}

fn opt_bool(v: Option<Bound<'_, PyAny>>, what: &str) -> PyResult<Option<bool>> {
    let Some(v) = v else { return Ok(None) };
    if v.is_none() {
        return Ok(None);
    }
    if let Ok(b) = v.extract::<bool>() {
        return Ok(Some(b));
    }
    if let Ok(s) = v.cast::<PyString>() {
        match s.to_str()?.to_ascii_lowercase().as_str() {
            "" => return Ok(None),
            "true" | "t" | "1" => return Ok(Some(true)),
            "false" | "f" | "0" => return Ok(Some(false)),
            _ => {}
        }
    }
    Err(PyValueError::new_err(format!(
        "report(): {what} must be a bool (or \"true\"/\"false\"), got {}",
        v.repr()?
    )))
}

/// `report(data)`: every category list of `data`, all-or-nothing.
#[pyfunction]
fn report(target: Option<String>, data: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = data.py();
    let ctx = context()?;
    let data = data.cast::<PyDict>().map_err(|_| {
        PyValueError::new_err(format!(
            "report(): argument \"data\" must be a dict like {{'M': [points], 'input': 'name'}}, got {}",
            type_name(data)
        ))
    })?;
    let query = WriteQuery {
        input: opt_str(data.get_item(intern!(py, "input"))?, "\"input\"")?,
        ignore_global_tags: opt_bool(
            data.get_item(intern!(py, "ignore_global_tags"))?,
            "\"ignore_global_tags\"",
        )?,
        ignore_global_host_tags: opt_bool(
            data.get_item(intern!(py, "ignore_global_host_tags"))?,
            "\"ignore_global_host_tags\"",
        )?,
        version: opt_str(data.get_item(intern!(py, "version"))?, "\"version\"")?,
    };
    let precision = match opt_str(data.get_item(intern!(py, "precision"))?, "\"precision\"")? {
        None => None,
        Some(p) => Some(Precision::parse(&p).ok_or_else(|| {
            PyValueError::new_err(format!(
                "report(): \"precision\" must be one of n, u, ms, s, m, h, got {p:?}"
            ))
        })?),
    };
    let opts = ConvertOptions {
        numbers_as_float: ctx.numbers_as_float,
        precision,
        now_ns: now_ns(),
    };
    let target = route_target(target);
    let mut batches = Vec::new();
    for key in Category::REPORT_KEYS {
        let Some(list) = data.get_item(key)? else {
            continue;
        };
        if list.is_none() {
            continue;
        }
        let what = format!("report(): {key:?}");
        let items: Vec<Bound<'_, PyAny>> = if let Ok(l) = list.cast::<PyList>() {
            l.iter().collect()
        } else if let Ok(t) = list.cast::<PyTuple>() {
            t.iter().collect()
        } else {
            return Err(PyValueError::new_err(format!(
                "{what} must be a list of points, got {}",
                type_name(&list)
            )));
        };
        // Describe, check and encode each point while its dict is hot in
        // cache; nothing is handed over until every list is valid.
        let mut points = ctx.sink.payload();
        for (i, item) in items.iter().enumerate() {
            let raw = raw_point(item)
                .map_err(|e| PyValueError::new_err(format!("{what}: point {i}: {e}")))?;
            points.push(finish(&ctx, raw, i, &opts, &what)?);
        }
        let category = Category::from_report_key(key).expect("REPORT_KEYS are categories");
        batches.push((category, points));
    }
    for (category, points) in batches {
        let route = Route {
            target: target.clone(),
            category,
            query: query.clone(),
        };
        submit(&ctx, route, points);
    }
    Ok(String::new())
}

fn method_name(key: &str) -> &'static str {
    match key {
        "M" => "feed_metric()",
        "L" => "feed_logging()",
        "O" => "feed_object()",
        "E" => "feed_event()",
        _ => "feed()",
    }
}

/// The one-point `feed_*` methods: fields = `fields` then `kwargs`.
#[pyfunction]
#[pyo3(signature = (target, key, input, measurement, tags, fields, time, kwargs))]
#[allow(clippy::too_many_arguments)]
fn feed(
    target: Option<String>,
    key: &str,
    input: Option<Bound<'_, PyAny>>,
    measurement: &Bound<'_, PyAny>,
    tags: Option<Bound<'_, PyAny>>,
    fields: Option<Bound<'_, PyAny>>,
    time: Option<Bound<'_, PyAny>>,
    kwargs: Option<Bound<'_, PyAny>>,
) -> PyResult<String> {
    let ctx = context()?;
    let what = method_name(key);
    let category = Category::from_report_key(key)
        .ok_or_else(|| PyValueError::new_err(format!("unknown category key {key:?}")))?;
    let err = |e: String| PyValueError::new_err(format!("{what}: {e}"));
    let mut raw = RawPoint {
        measurement: super::convert::raw_value(measurement),
        ..RawPoint::default()
    };
    optional_map(tags.as_ref(), "argument \"tags\"", &mut raw.tags).map_err(err)?;
    optional_map(fields.as_ref(), "argument \"fields\"", &mut raw.fields).map_err(err)?;
    let mut extra = Vec::new();
    optional_map(kwargs.as_ref(), "keyword arguments", &mut extra).map_err(err)?;
    for (k, v) in extra {
        // Python's {**fields, **kwargs}: a keyword replaces a field of the same name.
        if let Some(slot) = raw.fields.iter_mut().find(|(f, _)| *f == k) {
            slot.1 = v;
        } else {
            raw.fields.push((k, v));
        }
    }
    if let Some(t) = &time {
        raw.time = super::convert::raw_value(t);
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
    let opts = ConvertOptions {
        numbers_as_float: ctx.numbers_as_float,
        precision: None,
        now_ns: now_ns(),
    };
    let mut points = ctx.sink.payload();
    points.push(finish(&ctx, raw, 0, &opts, what)?);
    let route = Route {
        target: route_target(target),
        category,
        query: WriteQuery {
            input,
            ..WriteQuery::default()
        },
    };
    submit(&ctx, route, points);
    Ok(String::new())
}

/// `set_lasterror(input, message)`: queued, answered with "".
#[pyfunction]
fn lasterror(
    target: Option<String>,
    input: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let ctx = context()?;
    let input = input.str()?.to_string();
    let message = message.str()?.to_string();
    ctx.sink.lasterror(route_target(target), &input, &message);
    Ok(String::new())
}

/// `http_post_json` / `http_post_raw`: blocks the calling script (not the
/// others: detached from Python) and returns the body, "" on failure as the
/// original did.
#[pyfunction]
fn post(py: Python<'_>, url: String, body: String, json: bool) -> PyResult<String> {
    let ctx = context()?;
    let script = super::current_script();
    let result = py.detach(|| ctx.sink.post(&url, body, json));
    Ok(result.unwrap_or_else(|e| {
        tracing::warn!(target: "pythond::writer", script = %script, "POST {url} failed: {e}");
        String::new()
    }))
}

thread_local! {
    static PARTIAL: RefCell<[String; 2]> = const { RefCell::new([String::new(), String::new()]) };
}

fn log_line(stream: usize, line: &str) {
    let script = super::current_script();
    if stream == 1 {
        tracing::warn!(target: "pythond::script", script = %script, stream = "stderr", "{line}");
    } else {
        tracing::info!(target: "pythond::script", script = %script, stream = "stdout", "{line}");
    }
}

/// `print()` from a script: whole lines are logged with the script's name.
#[pyfunction]
fn output(stream: usize, s: &str) {
    let stream = stream.min(1);
    PARTIAL.with(|p| {
        let mut p = p.borrow_mut();
        let buf = &mut p[stream];
        buf.push_str(s);
        while let Some(nl) = buf.find('\n') {
            let line: String = buf.drain(..=nl).collect();
            log_line(stream, line.trim_end_matches(['\n', '\r']));
        }
        // A script printing without newlines must not grow memory forever.
        if buf.len() > 64 * 1024 {
            let line = std::mem::take(buf);
            log_line(stream, &line);
        }
    });
}

#[pyfunction]
fn output_flush(stream: usize) {
    flush_output_stream(stream.min(1));
}

fn flush_output_stream(stream: usize) {
    PARTIAL.with(|p| {
        let line = std::mem::take(&mut p.borrow_mut()[stream]);
        if !line.is_empty() {
            log_line(stream, &line);
        }
    });
}

/// Log what this thread printed without a final newline (a run ended).
pub fn flush_output() {
    flush_output_stream(0);
    flush_output_stream(1);
}

#[pymodule]
#[pyo3(name = "_pythond")]
pub fn pythond_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(target, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(feed, m)?)?;
    m.add_function(wrap_pyfunction!(lasterror, m)?)?;
    m.add_function(wrap_pyfunction!(post, m)?)?;
    m.add_function(wrap_pyfunction!(output, m)?)?;
    m.add_function(wrap_pyfunction!(output_flush, m)?)?;
    Ok(())
}
