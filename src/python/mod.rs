//! The embedded CPython: the only place that touches pyo3.
//!
//! The rest of the daemon calls plain synchronous functions that return Rust
//! data: [`init`] once per process, [`load`] to import script files and
//! instantiate their plugin classes, [`run`] to call one instance's `run()`.
//! Callers run them on blocking threads (never inside an async task), and
//! nothing here waits on the network while attached to Python.
//!
//! - `datakit_framework` is built from `python.d/core/datakit_framework.py`
//!   (embedded in the binary) and put in `sys.modules`, so scripts import it
//!   with no install step.
//! - `_pythond` (in [`native`]) is the Rust module that backs it.
//! - `sys.stdout`/`sys.stderr` are replaced so that `print()` lines are logged
//!   with the name of the script that printed them.

mod convert;
mod native;

use std::cell::RefCell;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyModule};

pub use native::{set_context, Context};

const FRAMEWORK_SRC: &str = include_str!("../../python.d/core/datakit_framework.py");
const LOADER_SRC: &str = include_str!("loader.py");

static LOADER: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// Errors of the interpreter as a whole (not of one script).
#[derive(Debug, thiserror::Error)]
pub enum PythonError {
    #[error("embedded Python failed to start: {0}")]
    Init(String),
}

/// What the interpreter needs before scripts are loaded.
#[derive(Debug, Clone, Default)]
pub struct InterpreterSetup {
    /// `site-packages` folders of the Python named by `cmd` (added with
    /// `site.addsitedir`, so `.pth` files work).
    pub site_dirs: Vec<PathBuf>,
    /// Script folders, put first on `sys.path`.
    pub sys_path: Vec<PathBuf>,
}

/// The `(major, minor)` of the CPython this binary was built for and embeds.
pub const EMBEDDED_VERSION: (u8, u8) = (
    parse_u8(env!("PYTHOND_PY_MAJOR")),
    parse_u8(env!("PYTHOND_PY_MINOR")),
);

const fn parse_u8(s: &str) -> u8 {
    match u8::from_str_radix(s, 10) {
        Ok(v) => v,
        Err(_) => panic!("build.rs emits numeric Python versions"),
    }
}

/// Start the interpreter and install `datakit_framework`. Call once.
pub fn init(setup: &InterpreterSetup) -> Result<(), PythonError> {
    pyo3::append_to_inittab!(pythond_module);
    Python::initialize();
    Python::attach(|py| init_attached(py, setup).map_err(|e| PythonError::Init(format_err(py, &e))))
}

use native::pythond_module;

fn init_attached(py: Python<'_>, setup: &InterpreterSetup) -> PyResult<()> {
    let sys = py.import("sys")?;
    let site = py.import("site")?;
    for dir in &setup.site_dirs {
        site.call_method1("addsitedir", (dir.to_string_lossy().as_ref(),))?;
    }
    let path = sys.getattr("path")?.cast_into::<PyList>()?;
    for (i, dir) in setup.sys_path.iter().enumerate() {
        path.insert(i, dir.to_string_lossy().as_ref())?;
    }
    let modules = sys.getattr("modules")?;
    let code = CString::new(FRAMEWORK_SRC).expect("no NUL in framework source");
    let framework = PyModule::from_code(py, &code, c"datakit_framework.py", c"datakit_framework")?;
    modules.set_item("datakit_framework", &framework)?;
    let code = CString::new(LOADER_SRC).expect("no NUL in loader source");
    let loader = PyModule::from_code(py, &code, c"pythond_loader.py", c"_pythond_loader")?;
    let out_cls = loader.getattr("ScriptOutput")?;
    sys.setattr("stdout", out_cls.call1((0,))?)?;
    sys.setattr("stderr", out_cls.call1((1,))?)?;
    let _ = LOADER.set(py, loader.unbind());
    Ok(())
}

fn loader(py: Python<'_>) -> &Bound<'_, PyModule> {
    LOADER
        .get(py)
        .expect("python::init ran before any script was loaded")
        .bind(py)
}

/// A `PyErr` as text with its traceback, taken while still attached (a raw
/// `PyErr` must not cross threads).
fn format_err(py: Python<'_>, err: &PyErr) -> String {
    if let Some(loader) = LOADER.get(py) {
        if let Ok(s) = loader
            .bind(py)
            .call_method1("format_exception", (err.value(py),))
            .and_then(|s| s.extract::<String>())
        {
            return s.trim_end().to_owned();
        }
    }
    err.to_string()
}

/// One instantiated plugin class, ready to run.
pub struct Script {
    /// The class's `name` attribute (class name when missing): logs and lasterror.
    pub name: Arc<str>,
    pub module: String,
    pub class: String,
    pub path: PathBuf,
    pub interval: Duration,
    /// The class's optional `timeout` attribute.
    pub timeout: Option<Duration>,
    obj: Py<PyAny>,
    /// Python thread ident of the thread running `run()`, 0 when idle.
    /// Written and read only while attached, so an interrupt can never reach
    /// a thread that has moved on.
    running_thread: AtomicU64,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Script")
            .field("name", &self.name)
            .field("module", &self.module)
            .field("class", &self.class)
            .field("interval", &self.interval)
            .finish()
    }
}

/// A module or class that could not be loaded; the others still are.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub module: String,
    pub path: PathBuf,
    /// `None` when the module itself failed to import.
    pub class: Option<String>,
    /// The Python traceback.
    pub error: String,
}

/// What [`load`] found in the modules it imported.
#[derive(Debug, Default)]
pub struct Loaded {
    pub scripts: Vec<Script>,
    pub failures: Vec<LoadFailure>,
    /// Modules that imported fine but define no class to run.
    pub empty_modules: Vec<(String, PathBuf)>,
}

/// Import each `(module name, file)` and instantiate its plugin classes
/// (defined in that module, subclassing `DataKitFramework`, overriding `run`).
pub fn load<'a>(modules: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Loaded {
    Python::attach(|py| {
        let mut out = Loaded::default();
        for (name, path) in modules {
            load_one(py, name, path, &mut out);
        }
        out
    })
}

fn load_one(py: Python<'_>, name: &str, path: &Path, out: &mut Loaded) {
    let loader = loader(py);
    let fail = |class: Option<String>, err: &PyErr| LoadFailure {
        module: name.to_owned(),
        path: path.to_owned(),
        class,
        error: format_err(py, err),
    };
    let module = match loader.call_method1("load_module", (name, path.to_string_lossy().as_ref())) {
        Ok(m) => m,
        Err(e) => {
            out.failures.push(fail(None, &e));
            return;
        }
    };
    let classes = match loader
        .call_method1("plugin_classes", (&module,))
        .and_then(|c| c.extract::<Vec<Bound<'_, PyAny>>>())
    {
        Ok(c) => c,
        Err(e) => {
            out.failures.push(fail(None, &e));
            return;
        }
    };
    if classes.is_empty() {
        out.empty_modules.push((name.to_owned(), path.to_owned()));
    }
    for cls in classes {
        let class = cls
            .getattr("__name__")
            .and_then(|n| n.extract::<String>())
            .unwrap_or_else(|_| "?".into());
        let described = cls.call0().and_then(|obj| {
            let (sname, interval, timeout) =
                loader
                    .call_method1("describe", (&obj,))?
                    .extract::<(String, f64, Option<f64>)>()?;
            Ok((obj, sname, interval, timeout))
        });
        match described {
            Ok((obj, sname, interval, timeout)) => out.scripts.push(Script {
                name: sname.into(),
                module: name.to_owned(),
                class,
                path: path.to_owned(),
                interval: Duration::from_secs_f64(interval),
                timeout: timeout.map(Duration::from_secs_f64),
                obj: obj.unbind(),
                running_thread: AtomicU64::new(0),
            }),
            Err(e) => out.failures.push(fail(Some(class), &e)),
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The script whose `run()` this thread is executing ("pythond" otherwise).
pub fn current_script() -> Arc<str> {
    CURRENT.with(|c| c.borrow().clone().unwrap_or_else(|| Arc::from("pythond")))
}

/// Call `script.run()` on this thread. `Err` holds the formatted traceback.
pub fn run(script: &Script) -> Result<(), String> {
    CURRENT.with(|c| *c.borrow_mut() = Some(script.name.clone()));
    let result = Python::attach(|py| {
        // SAFETY: plain query of the current thread's ident.
        let tid = unsafe { pyo3::ffi::PyThread_get_thread_ident() };
        script.running_thread.store(tid as u64, Ordering::Release);
        let r = script
            .obj
            .bind(py)
            .call_method0(pyo3::intern!(py, "run"))
            .map(drop)
            .map_err(|e| format_err(py, &e));
        script.running_thread.store(0, Ordering::Release);
        // An interrupt that arrived after the last bytecode must not fire in
        // whatever this thread runs next.
        // SAFETY: clearing this thread's own pending async exception.
        unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(tid as _, std::ptr::null_mut()) };
        native::flush_output();
        r
    });
    CURRENT.with(|c| *c.borrow_mut() = None);
    result
}

/// Raise `RunTimeout` inside the thread running `script.run()`, if any. It
/// takes effect at the next bytecode that thread executes; code blocked in C
/// (a `sleep`, a socket read) is not reached until it returns.
pub fn interrupt(script: &Script) -> bool {
    Python::attach(|py| {
        let tid = script.running_thread.load(Ordering::Acquire);
        if tid == 0 {
            return false;
        }
        let Ok(exc) = loader(py).getattr("RunTimeout") else {
            return false;
        };
        // SAFETY: `exc` is a live exception type; `tid` is a thread that is
        // inside run() (checked under the GIL, see `running_thread`).
        let n = unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(tid as _, exc.as_ptr()) };
        n == 1
    })
}
