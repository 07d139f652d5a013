//! `report(data)`: a dict of category lists, checked and encoded point by
//! point, handed over all-or-nothing. In run mode the points are read in
//! chunks while attached to Python and checked and encoded detached from it
//! (see [`encode_list`]).

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use pyo3::sync::PyOnceLock;

use super::encode::Helper;
use super::read::{self, Keep, PointKeys};
use super::{finish, hand_over_direct, now_ns, Api, Context};
use crate::convert::{raw_point, short_repr, type_name};
use pythond_core::lineproto::Lines;
use pythond_core::lineproto::RawPoints;
use pythond_core::point::{Category, ConvertOptions, Point, Precision};
use pythond_core::route::{Route, WriteQuery};
use pythond_core::sink::Payload;
use pythond_core::target::Target;

fn opt_str(v: Option<Bound<'_, PyAny>>, what: &str) -> PyResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => {
                let s = s.to_str()?;
                pythond_core::route::check_query_value(s)
                    .map_err(|e| PyValueError::new_err(format!("report(): {what} {e}")))?;
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
        short_repr(&v)?
    )))
}

/// Points read per chunk while attached, before checking and encoding them
/// detached (and bytes of strings, so a chunk of huge strings stays small).
const CHUNK_POINTS: usize = 2048;
const CHUNK_BYTES: usize = 1 << 20;

/// `report(data)`: every category list of `data`, all-or-nothing.
pub(super) fn report(api: &Api, target: Option<Target>, data: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = data.py();
    let ctx = api.ctx();
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
    let mut batches = Vec::new();
    for (key, name) in Category::REPORT_KEYS.iter().zip(report_keys(py)) {
        let Some(list) = data.get_item(name)? else {
            continue;
        };
        if list.is_none() {
            continue;
        }
        let what = format!("report(): {key:?}");
        // A snapshot of the list: describing a point may run script code
        // (`__index__`) that changes it, and while points are encoded
        // detached the script's other threads may.
        let items: Bound<'_, PyTuple> = if let Ok(l) = list.cast::<PyList>() {
            l.to_tuple()
        } else if let Ok(t) = list.cast::<PyTuple>() {
            t.clone()
        } else {
            return Err(PyValueError::new_err(format!(
                "{what} must be a list of points, got {}",
                type_name(&list)
            )));
        };
        let points = if api.lines() {
            Payload::Lines(encode_list(ctx, &items, &opts, &what)?)
        } else {
            // Test mode: whole points, through the reference path.
            let mut points = ctx.sink.payload();
            for (i, item) in items.iter().enumerate() {
                points.push(reference_point(ctx, &item, i, &opts, &what)?);
            }
            points
        };
        let category = Category::from_report_key(key).expect("REPORT_KEYS are categories");
        batches.push((category, points));
    }
    if batches.iter().any(|(_, p)| !p.is_empty()) {
        crate::current::with_current(|cur| {
            if let Some(cur) = cur {
                cur.counters.call();
            }
        });
    }
    for (category, points) in batches {
        let route = Route {
            target: target.clone(),
            category,
            query: query.clone(),
        };
        hand_over_direct(ctx, route, points);
    }
    Ok(())
}

/// Point `i` of a list through the reference path: its error, or its point.
fn reference_point(
    ctx: &Context,
    item: &Bound<'_, PyAny>,
    i: usize,
    opts: &ConvertOptions,
    what: &str,
) -> PyResult<Point> {
    let raw = raw_point(item).map_err(|e| e.into_pyerr(|e| format!("{what}: point {i}: {e}")))?;
    finish(ctx, raw, i, opts, what)
}

/// Check and encode every point of `items`: chunks of points are read
/// while attached (only what reads Python objects), then checked and
/// encoded detached, so the worker's other scripts run meanwhile; a list
/// of more than one chunk is encoded on two threads ([`Helper`]). A point
/// the fast path does not take goes through the reference path, attached,
/// in its place: the lines, their order and the first error are those of
/// the reference path alone.
fn encode_list(
    ctx: &Context,
    items: &Bound<'_, PyTuple>,
    opts: &ConvertOptions,
    what: &str,
) -> PyResult<Lines> {
    let input_tags = ctx.input_tags.as_slice();
    if items.len() <= CHUNK_POINTS {
        return encode_chunks(ctx, items, opts, what, None);
    }
    std::thread::scope(|scope| {
        let mut helper = Helper::spawn(scope, opts, input_tags);
        encode_chunks(ctx, items, opts, what, helper.as_mut())
    })
}

fn encode_chunks(
    ctx: &Context,
    items: &Bound<'_, PyTuple>,
    opts: &ConvertOptions,
    what: &str,
    mut helper: Option<&mut Helper>,
) -> PyResult<Lines> {
    let py = items.py();
    let keys = point_keys(py);
    let input_tags = ctx.input_tags.as_slice();
    let n = items.len();
    let mut lines = Lines::new();
    let mut raw = RawPoints::new();
    // The strings `raw` borrows, held until their chunk is encoded.
    let mut keep = Keep::default();
    let mut i = 0;
    while i < n {
        raw.clear();
        keep.release();
        let chunk_start = i;
        let mut slow = None;
        while i < n && raw.len() < CHUNK_POINTS && raw.byte_len() < CHUNK_BYTES {
            let item = items.get_borrowed_item(i)?;
            if read::report_point(py, &mut raw, &item, keys, &mut keep).is_none() {
                slow = Some(i);
                break;
            }
            i += 1;
        }
        // `raw` holds points chunk_start..i (then `slow`, if any).
        let mut from = 0;
        loop {
            let h = helper.as_deref_mut();
            let failed = py.detach(|| Helper::encode(h, &raw, from, opts, input_tags, &mut lines));
            let Err(j) = failed else { break };
            let item = items.get_borrowed_item(chunk_start + j)?;
            lines.push(&reference_point(ctx, &item, chunk_start + j, opts, what)?);
            from = j + 1;
        }
        if let Some(k) = slow {
            let item = items.get_borrowed_item(k)?;
            lines.push(&reference_point(ctx, &item, k, opts, what)?);
            i = k + 1;
        }
    }
    Ok(lines)
}

/// [`Category::REPORT_KEYS`] as Python strings, made once.
fn report_keys(py: Python<'_>) -> &[Py<PyString>] {
    static KEYS: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();
    KEYS.get_or_init(py, || {
        Category::REPORT_KEYS
            .iter()
            .map(|k| PyString::intern(py, k).unbind())
            .collect()
    })
}

fn point_keys(py: Python<'_>) -> &PointKeys {
    static KEYS: PyOnceLock<PointKeys> = PyOnceLock::new();
    KEYS.get_or_init(py, || PointKeys {
        measurement: intern!(py, "measurement").clone().into_any().unbind(),
        tags: intern!(py, "tags").clone().into_any().unbind(),
        fields: intern!(py, "fields").clone().into_any().unbind(),
        time: intern!(py, "time").clone().into_any().unbind(),
    })
}
