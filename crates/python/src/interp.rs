//! Starting the interpreter: `site-packages` of the block's `cmd`, the
//! script folders on `sys.path`, `datakit_framework` and the loader
//! installed.
//!
//! Which paths scripts see, and why: `docs/compat.md`, "Discovery".
//!
//! The interpreter starts without `site` (as `python3 -S` would): the
//! packages scripts see are `cmd`'s, and only `cmd`'s. `cmd`'s probe
//! (`env`) lists its site-packages (and its user site exactly when `cmd`
//! would use one: not in a virtualenv, not with `PYTHONNOUSERSITE`); each is
//! added with `site.addsitedir`, so `.pth` files work, then `sitecustomize`
//! runs, as it would in `cmd`. So a virtualenv's `cmd` sees its own packages
//! and not those of the Python pythond embeds, whose `.pth` files never
//! run. Without a `cmd` (launch mode with neither `PYTHOND_PYTHON` nor
//! `VIRTUAL_ENV`, `pythond test` on files) `site.main()` runs: the embedded
//! interpreter's own packages, as `python3` would have them.
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

use crate::env::PythonEnv;
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
    /// The Python named by `cmd`, as its probe answered: its site-packages
    /// are what scripts import from, its `sys.executable` and `sys.prefix`
    /// are theirs. `None`: the embedded interpreter's own (`site.main()`).
    pub cmd: Option<PythonEnv>,
    /// Script folders, put last on `sys.path`.
    pub sys_path: Vec<PathBuf>,
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
    start_without_site()?;
    // A no-op now that the interpreter runs; pyo3 notes it.
    Python::initialize();
    Python::attach(|py| {
        init_attached(py, setup, ctx).map_err(|e| PythonError::Init(format_err(py, &e)))
    })
}

use native::pythond_module;

/// Start CPython as `python3 -S` would start: no `site` (see the module
/// docs), with the rest of a command-line Python's configuration (the
/// environment's `PYTHON*` variables, PEP 538/540 in a C locale), but no
/// signal handlers (the worker owns SIGTERM) and no arguments parsed. Then
/// release the interpreter, as pyo3's own start does.
fn start_without_site() -> Result<(), PythonError> {
    use pyo3::ffi;
    // SAFETY: the documented PyConfig sequence, before any other use of the
    // C API, on the only thread that touches Python now.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let mut config = config.assume_init();
        config.site_import = 0;
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            let msg = if status.err_msg.is_null() {
                "unknown error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(PythonError::Init(msg));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn init_attached(py: Python<'_>, setup: &InterpreterSetup, ctx: Context) -> PyResult<()> {
    let sys = py.import("sys")?;
    site_packages(py, &sys, setup.cmd.as_ref())?;
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

/// What `site` does when `python3` starts, for `cmd`'s packages (or the
/// embedded interpreter's own when there is no `cmd`).
fn site_packages(
    py: Python<'_>,
    sys: &Bound<'_, PyModule>,
    cmd: Option<&PythonEnv>,
) -> PyResult<()> {
    let site = py.import("site")?;
    let flags = sys.getattr("flags")?;
    if flags.getattr("no_site")?.extract::<i64>()? == 0 {
        // A Python that ignored the flag has run its own `site` already:
        // cmd's folders are added after its own.
        tracing::debug!("the embedded interpreter imported site at start");
    } else if cmd.is_none() {
        return site.call_method0("main").map(drop);
    }
    let Some(cmd) = cmd else { return Ok(()) };
    let user_site = site.call_method0("getusersitepackages")?;
    let user_site: String = user_site.extract()?;
    let cmd_has_user_site = cmd
        .site_dirs
        .iter()
        .any(|d| d.as_os_str() == user_site.as_str());
    site.setattr("ENABLE_USER_SITE", cmd_has_user_site)?;
    for dir in &cmd.site_dirs {
        site.call_method1("addsitedir", (dir.to_string_lossy().as_ref(),))?;
    }
    // The rest of `site.main()`: `exit()`/`quit()`/`help()` as builtins,
    // then the customize hooks found on the path just made.
    for f in ["setquit", "setcopyright", "sethelper", "execsitecustomize"] {
        site.call_method0(f)?;
    }
    if cmd_has_user_site {
        site.call_method0("execusercustomize")?;
    }
    let prefix = cmd.prefix.to_string_lossy();
    sys.setattr("prefix", prefix.as_ref())?;
    sys.setattr("exec_prefix", prefix.as_ref())?;
    sys.setattr("executable", cmd.executable.to_string_lossy().as_ref())?;
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
