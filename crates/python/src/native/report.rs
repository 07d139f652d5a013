//! `report(data)`: a dict of category lists, checked and encoded point by
//! point, handed over all-or-nothing.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use super::{finish, now_ns, route_target, submit, Api};
use crate::convert::{raw_point, short_repr, type_name};
use pythond_core::point::{Category, ConvertOptions, Precision};
use pythond_core::route::{Route, WriteQuery};

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

/// `report(data)`: every category list of `data`, all-or-nothing.
pub(super) fn report(
    api: &Api,
    target: Option<String>,
    data: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let py = data.py();
    let ctx = &api.ctx;
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
            let raw =
                raw_point(item).map_err(|e| e.into_pyerr(|e| format!("{what}: point {i}: {e}")))?;
            points.push(finish(ctx, raw, i, &opts, &what)?);
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
        submit(ctx, route, points);
    }
    Ok(String::new())
}
