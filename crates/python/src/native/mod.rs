//! `_pythond`: the native module behind `datakit_framework`.
//!
//! Its [`Api`] object (`_pythond.api`, installed at init) carries the input's
//! [`Context`]: each method converts its arguments, applies the point rules,
//! encodes the points and hands them to the [`Sink`]; none waits on the
//! network while attached to Python. Module functions: `target` (a script's
//! `ip`/`port`), `output`/`output_flush` (`print()`).

mod feed;
mod output;
mod report;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use pythond_core::point::{ConvertOptions, Point, RawPoint, RawValue};
use pythond_core::route::Route;
use pythond_core::sink::{Payload, Sink};
use pythond_core::target::Target;

pub use output::flush_output;

/// What the native methods need to know about the input they serve.
pub struct Context {
    pub sink: Arc<dyn Sink>,
    /// The config block's `tags`, added to every point that lacks the key.
    pub input_tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
}

/// The object `datakit_framework` calls (`_pythond.api`).
#[pyclass(frozen, module = "_pythond", name = "Api")]
pub struct Api {
    ctx: Context,
}

#[pymethods]
impl Api {
    /// `report(data)`: every category list of `data`, all-or-nothing.
    fn report(&self, target: Option<String>, data: &Bound<'_, PyAny>) -> PyResult<String> {
        report::report(self, target, data)
    }

    /// The one-point `feed_*` methods: fields = `fields` then `kwargs`.
    #[pyo3(signature = (target, key, input, measurement, tags, fields, time, kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &self,
        target: Option<String>,
        key: &str,
        input: Option<Bound<'_, PyAny>>,
        measurement: &Bound<'_, PyAny>,
        tags: Option<Bound<'_, PyAny>>,
        fields: Option<Bound<'_, PyAny>>,
        time: Option<Bound<'_, PyAny>>,
        kwargs: Option<Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        feed::feed(
            self,
            target,
            key,
            feed::FeedArgs {
                input,
                measurement,
                tags,
                fields,
                time,
                kwargs,
            },
        )
    }

    /// `set_lasterror(input, message)`: queued, answered with "".
    fn lasterror(
        &self,
        target: Option<String>,
        input: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        feed::lasterror(self, target, input, message)
    }

    /// `http_post_json` / `http_post_raw`: the response body, "" on failure.
    fn post(&self, py: Python<'_>, url: String, body: String, json: bool) -> String {
        feed::post(self, py, url, body, json)
    }
}

/// Put the API object for `ctx` where `datakit_framework` finds it.
pub(crate) fn install_api(py: Python<'_>, ctx: Context) -> PyResult<()> {
    let module = py.import("_pythond")?;
    module.setattr("api", Bound::new(py, Api { ctx })?)
}

/// `(ip, port)` given to `DataKitFramework.__init__` → the target URL, or
/// `None` when it names the default address (then the configured DataKit
/// wins, which may be a Unix socket or another port from datakit.conf).
#[pyfunction]
fn target(host: &Bound<'_, PyAny>, port: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let host = host.str()?.to_string();
    let port = port.str()?.to_string();
    Ok(Target::from_ip_port(&host, &port).map(|t| t.to_string()))
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
    crate::script::count_points(&route.category, points.len() as u64);
    if let Err(e) = ctx.sink.submit(route, points) {
        tracing::warn!(target: "pythond::writer", script = %crate::current_script(), "{e}");
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The target a script's instance gave (see [`target`]) back into a [`Target`].
fn route_target(target: Option<String>) -> Option<Target> {
    target.map(|t| Target::from_listen(&t))
}

#[pymodule]
#[pyo3(name = "_pythond")]
pub fn pythond_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Api>()?;
    m.add_function(wrap_pyfunction!(target, m)?)?;
    m.add_function(wrap_pyfunction!(output::output, m)?)?;
    m.add_function(wrap_pyfunction!(output::output_flush, m)?)?;
    Ok(())
}
