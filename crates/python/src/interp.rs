//! Starting the interpreter: `site-packages` of the block's `cmd` (and its
//! user site exactly when `cmd` has one: the interpreter's own is taken
//! off), the script folders on `sys.path`, `datakit_framework` and the
//! loader installed.
//!
//! The script folders go at the END of `sys.path`, as the original put them:
//! the standard library and installed packages always win, so a script file
//! named `json.py` cannot replace `json` for the framework and every other
//! script. Such a file is not imported at all (see `script::load`); the
//! loader learns what it must not shadow from `sys.path` and `sys.modules` as
//! they are when it is created, before the script folders are added.

use std::ffi::CString;
use std::path::PathBuf;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;

use crate::native::{self, Context};

const FRAMEWORK_SRC: &str = include_str!("../python/datakit_framework.py");
const LOADER_SRC: &str = include_str!("../python/loader.py");

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
    /// Script folders, put last on `sys.path`.
    pub sys_path: Vec<PathBuf>,
    /// `sys.executable` inside scripts: the block's `cmd` as a path (what
    /// `subprocess.run([sys.executable, ...])` should start). `None` keeps
    /// the embedded interpreter's own guess.
    pub executable: Option<PathBuf>,
}

/// The `(major, minor)` of the CPython this crate was built for and embeds.
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

/// Start the interpreter and install `datakit_framework`, whose methods hand
/// their points to `ctx`. Call once per process.
pub fn init(setup: &InterpreterSetup, ctx: Context) -> Result<(), PythonError> {
    pyo3::append_to_inittab!(pythond_module);
    Python::initialize();
    Python::attach(|py| {
        init_attached(py, setup, ctx).map_err(|e| PythonError::Init(format_err(py, &e)))
    })
}

use native::pythond_module;

fn init_attached(py: Python<'_>, setup: &InterpreterSetup, ctx: Context) -> PyResult<()> {
    let sys = py.import("sys")?;
    let site = py.import("site")?;
    if setup.executable.is_some() {
        drop_own_user_site(&sys, &site, &setup.site_dirs)?;
    }
    for dir in &setup.site_dirs {
        site.call_method1("addsitedir", (dir.to_string_lossy().as_ref(),))?;
    }
    if let Some(exe) = &setup.executable {
        sys.setattr("executable", exe.to_string_lossy().as_ref())?;
    }
    native::install_api(py, ctx)?;
    let modules = sys.getattr("modules")?;
    let code = CString::new(FRAMEWORK_SRC).expect("no NUL in framework source");
    let framework = PyModule::from_code(py, &code, c"datakit_framework.py", c"datakit_framework")?;
    modules.set_item("datakit_framework", &framework)?;
    native::framework_installed(&framework)?;
    // Before the script folders are on sys.path: the loader notes what is
    // there without them (see the module docs).
    let code = CString::new(LOADER_SRC).expect("no NUL in loader source");
    let loader = PyModule::from_code(py, &code, c"pythond_loader.py", c"_pythond_loader")?;
    let dirs: Vec<String> = setup
        .sys_path
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    loader.call_method1("add_script_folders", (dirs,))?;
    let out_cls = loader.getattr("ScriptOutput")?;
    sys.setattr("stdout", out_cls.call1((0,))?)?;
    sys.setattr("stderr", out_cls.call1((1,))?)?;
    let _ = LOADER.set(py, loader.unbind());
    Ok(())
}

/// The embedded interpreter's own `site` added its user site (`pip install
/// --user` packages) to `sys.path` when it started; whether scripts see
/// one is `cmd`'s to say (its probe lists its user site only when `cmd`
/// itself would use it: not in a virtualenv, not with `PYTHONNOUSERSITE`).
/// So ours goes unless `cmd` listed the same folder.
fn drop_own_user_site(
    sys: &Bound<'_, PyModule>,
    site: &Bound<'_, PyModule>,
    cmd_dirs: &[PathBuf],
) -> PyResult<()> {
    if !site.getattr("ENABLE_USER_SITE")?.is_truthy()? {
        return Ok(());
    }
    let own: String = site.call_method0("getusersitepackages")?.extract()?;
    if cmd_dirs.iter().any(|d| d.as_os_str() == own.as_str()) {
        return Ok(());
    }
    let path = sys.getattr("path")?;
    while path.contains(&own)? {
        path.call_method1("remove", (&own,))?;
    }
    site.setattr("ENABLE_USER_SITE", false)?;
    Ok(())
}

pub(crate) fn loader(py: Python<'_>) -> &Bound<'_, PyModule> {
    LOADER
        .get(py)
        .expect("init ran before any script was loaded")
        .bind(py)
}

/// A `PyErr` as text with its traceback, taken while still attached (a raw
/// `PyErr` must not cross threads).
pub(crate) fn format_err(py: Python<'_>, err: &PyErr) -> String {
    if let Some(loader) = LOADER.get(py) {
        // Before 3.12 the traceback is not on the exception object until
        // something sets it: pass the one pyo3 fetched with the error.
        if let Ok(s) = loader
            .bind(py)
            .call_method1("format_exception", (err.value(py), err.traceback(py)))
            .and_then(|s| s.extract::<String>())
        {
            return s.trim_end().to_owned();
        }
    }
    err.to_string()
}

/// Block until this thread can enter the interpreter: returns at once unless
/// some thread holds the GIL (C code that never releases it wedges every
/// script of the worker, which the heartbeat must reveal).
pub fn wait_for_interpreter() {
    crate::tstate::keep();
    Python::attach(|_| ());
}
