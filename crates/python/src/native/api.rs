//! The input's API object ([`Api`], `_pythond.api`): it owns the
//! [`Context`] and serves the framework's Python methods; the native
//! methods find it in a process-wide cell ([`api`]).
//! And the typed target of a script's instance ([`PyTarget`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use pythond_core::sink::{Payload, Sink};
use pythond_core::target::Target;

use super::{feed, report, Framework};

/// What the native methods need to know about the input they serve.
pub struct Context {
    pub sink: Arc<dyn Sink>,
    /// The config block's `tags`, added to every point that lacks the key.
    pub input_tags: Vec<(String, String)>,
    pub numbers_as_float: bool,
}

/// The input's [`Api`] (see [`install_api`]). A worker's one interpreter
/// serves one input, so the object lives as long as the process: the
/// native methods read it from here on every call, without a lookup.
static API: OnceLock<Py<Api>> = OnceLock::new();

/// The input's [`Api`], once [`install_api`] put it in place.
pub(crate) fn api(_py: Python<'_>) -> PyResult<&'static Api> {
    match API.get() {
        Some(api) => Ok(api.get()),
        None => Err(PyRuntimeError::new_err(
            "pythond's API object is not installed",
        )),
    }
}

/// A stage for the script `label`'s one-point calls (run mode), once the
/// interpreter serves an input.
pub(crate) fn stage(py: Python<'_>, label: Arc<str>) -> Option<pythond_core::writer::Stage> {
    api(py).ok()?.ctx.sink.stage(label)
}

/// The target the instance chose (`ip`/`port` given to `__init__`).
pub(super) fn instance_target(slf: &Bound<'_, Framework>, api: &Api) -> PyResult<Option<Target>> {
    // Until an instance chooses one, every instance's `_pythond_target` is
    // the class's `None`: not looked up on every call. (`_pythond_target`
    // is pythond's own attribute, set by `DataKitFramework.__init__` only.)
    if !api.any_target.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let py = slf.py();
    let t = slf.getattr(pyo3::intern!(py, "_pythond_target"))?;
    typed_target(t.cast::<PyAny>().ok())
}

/// A `_pythond_target` value: `None`, or a [`PyTarget`].
fn typed_target(t: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Target>> {
    match t {
        None => Ok(None),
        Some(t) if t.is_none() => Ok(None),
        Some(t) => Ok(Some(t.cast::<PyTarget>()?.get().0.clone())),
    }
}

/// Where a script's instance sends its data (`_pythond.target(ip, port)`):
/// the typed [`Target`], kept as it is.
#[pyclass(frozen, module = "_pythond", name = "Target")]
pub struct PyTarget(Target);

#[pymethods]
impl PyTarget {
    fn __repr__(&self) -> String {
        format!("<pythond target {}>", self.0)
    }
}

/// The object `datakit_framework`'s Python methods call (`_pythond.api`):
/// it owns the input's [`Context`].
#[pyclass(frozen, module = "_pythond", name = "Api")]
pub struct Api {
    ctx: Context,
    /// The sink takes encoded lines (run mode), not whole points (test mode).
    lines: bool,
    /// Whether any instance chose a target of its own (see [`target`]).
    any_target: AtomicBool,
}

impl Api {
    pub(crate) fn ctx(&self) -> &Context {
        &self.ctx
    }

    pub(crate) fn lines(&self) -> bool {
        self.lines
    }
}

#[pymethods]
impl Api {
    /// `report(data)` for callers of the former API object.
    fn report(
        &self,
        target: Option<Bound<'_, PyAny>>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        report::report(self, typed_target(target.as_ref())?, data)?;
        Ok(String::new())
    }

    /// The event methods' point: fields = `fields` then `kwargs`.
    #[pyo3(signature = (target, key, input, measurement, tags, fields, time, kwargs))]
    #[allow(clippy::too_many_arguments)]
    fn feed(
        &self,
        target: Option<Bound<'_, PyAny>>,
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
            typed_target(target.as_ref())?,
            key,
            feed::FeedArgs {
                input: input.as_ref(),
                measurement,
                tags: tags.as_ref(),
                name_tag: None,
                fields: feed::Fields::Map(fields.as_ref()),
                time: time.as_ref(),
                kwargs: kwargs.as_ref(),
            },
        )?;
        Ok(String::new())
    }

    /// `set_lasterror(input, message)`: queued, answered with "".
    fn lasterror(
        &self,
        target: Option<Bound<'_, PyAny>>,
        input: &Bound<'_, PyAny>,
        message: &Bound<'_, PyAny>,
    ) -> PyResult<String> {
        feed::lasterror(self, typed_target(target.as_ref())?, input, message)
    }

    /// `http_post_json` / `http_post_raw`: the response body, "" on failure.
    fn post(&self, py: Python<'_>, url: String, body: String, json: bool) -> String {
        feed::post(self, py, url, body, json)
    }
}

/// Put the API object for `ctx` where `datakit_framework` finds it
/// (`_pythond.api`) and where the native methods do (the native class).
pub(crate) fn install_api(py: Python<'_>, ctx: Context) -> PyResult<()> {
    if API.get().is_some() {
        return Err(PyRuntimeError::new_err(
            "the interpreter of a worker serves one input",
        ));
    }
    let lines = matches!(ctx.sink.payload(), Payload::Lines(_));
    let api = Bound::new(
        py,
        Api {
            ctx,
            lines,
            any_target: AtomicBool::new(false),
        },
    )?;
    py.import("_pythond")?.setattr("api", &api)?;
    API.set(api.unbind())
        .map_err(|_| PyRuntimeError::new_err("the interpreter of a worker serves one input"))
}

/// `(ip, port)` given to `DataKitFramework.__init__` → its [`Target`], or
/// `None` when it names the default address (then the configured DataKit
/// wins, which may be a Unix socket or another port from datakit.conf).
#[pyfunction]
pub(super) fn target(
    py: Python<'_>,
    host: &Bound<'_, PyAny>,
    port: &Bound<'_, PyAny>,
) -> PyResult<Option<PyTarget>> {
    let host = host.str()?.to_string();
    let port = port.str()?.to_string();
    let Some(t) = Target::from_ip_port(&host, &port) else {
        return Ok(None);
    };
    api(py)?.any_target.store(true, Ordering::Relaxed);
    Ok(Some(PyTarget(t)))
}
