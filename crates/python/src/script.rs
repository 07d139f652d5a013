//! Script modules and plugin instances: import, instantiate, run, interrupt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::prelude::*;

use pythond_core::script_stats::ScriptCounters;
use pythond_core::seconds;

use crate::current::{self, Current};
use crate::interp::{format_err, loader};
use crate::native;

/// A `run()` that did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{traceback}")]
pub struct RunError {
    /// The formatted traceback (what `traceback.format_exception` prints).
    pub traceback: String,
    /// The exception was the `RunTimeout` raised by [`interrupt`].
    pub timed_out: bool,
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
    /// Points this script handed over, per category (counted as its calls
    /// are accepted; read by status and logs).
    pub counters: Arc<ScriptCounters>,
    /// What the native methods find about the script running on their thread.
    current: Arc<Current>,
    obj: Py<PyAny>,
    /// The run inside `run()` right now, if any. Set and cleared by [`run`]
    /// while attached, and held by [`interrupt`] while it raises, so an
    /// interrupt can only reach the run it names, and only before that
    /// run's `run()` returned.
    running: Mutex<Option<Running>>,
}

/// A run in progress: which one, on which Python thread.
#[derive(Debug, Clone, Copy)]
struct Running {
    run_id: u64,
    thread: u64,
}

impl Script {
    /// Points this instance handed over so far, by category.
    pub fn points(&self) -> BTreeMap<String, u64> {
        self.counters.by_name()
    }

    /// The counters behind [`Script::points`], to read them from elsewhere.
    pub fn counters(&self) -> Arc<ScriptCounters> {
        self.counters.clone()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    pub kind: FailureKind,
    /// The Python traceback ([`FailureKind::Import`],
    /// [`FailureKind::Instantiate`]), or a one-line message naming the file
    /// or the class and saying what to change (the other kinds).
    pub error: String,
}

/// Why a module or class is not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The module raised while being imported.
    Import,
    /// Not imported: its name is a standard-library module's or an installed
    /// package's, which it would replace for every other module.
    NameTaken,
    /// The class raised when instantiated, or its attributes could not be read.
    Instantiate,
    /// The class's `interval` or `timeout` is out of bounds.
    Attribute,
}

impl LoadFailure {
    /// Whether `error` is a traceback (else a one-line message).
    pub fn is_traceback(&self) -> bool {
        matches!(self.kind, FailureKind::Import | FailureKind::Instantiate)
    }
}

/// What [`load`] found in the modules it imported.
#[derive(Debug, Default)]
pub struct Loaded {
    pub scripts: Vec<Script>,
    pub failures: Vec<LoadFailure>,
    /// Modules that imported fine but define no class to run.
    pub empty_modules: Vec<(String, PathBuf)>,
    /// Files left out on purpose that are no error (a copy of
    /// `datakit_framework.py` among the scripts), as messages.
    pub notes: Vec<String>,
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
    let fail = |class: Option<String>, kind: FailureKind, err: &PyErr| LoadFailure {
        module: name.to_owned(),
        path: path.to_owned(),
        class,
        kind,
        error: format_err(py, err),
    };
    let taken = loader
        .call_method1("name_taken", (name,))
        .and_then(|t| t.extract::<Option<(String, String)>>());
    match taken {
        Ok(None) => {}
        Ok(Some((kind, what))) => {
            match name_taken_message(name, path, &kind, &what) {
                NameTaken::Note(note) => out.notes.push(note),
                NameTaken::Refused(error) => out.failures.push(LoadFailure {
                    module: name.to_owned(),
                    path: path.to_owned(),
                    class: None,
                    kind: FailureKind::NameTaken,
                    error,
                }),
            }
            return;
        }
        Err(e) => {
            out.failures.push(fail(None, FailureKind::Import, &e));
            return;
        }
    }
    let module = match loader.call_method1("load_module", (name, path.to_string_lossy().as_ref())) {
        Ok(m) => m,
        Err(e) => {
            out.failures.push(fail(None, FailureKind::Import, &e));
            return;
        }
    };
    let classes = match loader
        .call_method1("plugin_classes", (&module,))
        .and_then(|c| c.extract::<Vec<Bound<'_, PyAny>>>())
    {
        Ok(c) => c,
        Err(e) => {
            out.failures.push(fail(None, FailureKind::Import, &e));
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
        let (obj, sname, interval, timeout) = match described {
            Ok(d) => d,
            Err(e) => {
                out.failures
                    .push(fail(Some(class), FailureKind::Instantiate, &e));
                continue;
            }
        };
        let bounded = |attr: &str, secs: f64| {
            seconds::to_duration(secs).map_err(|e| LoadFailure {
                module: name.to_owned(),
                path: path.to_owned(),
                class: Some(class.clone()),
                kind: FailureKind::Attribute,
                error: format!(
                    "{name}.{class} ({}): class attribute `{attr}`: {e}; the class is not run",
                    path.display()
                ),
            })
        };
        let interval = match bounded("interval", interval) {
            Ok(d) => d,
            Err(f) => {
                out.failures.push(f);
                continue;
            }
        };
        let timeout = match timeout.map(|t| bounded("timeout", t)).transpose() {
            Ok(t) => t,
            Err(f) => {
                out.failures.push(f);
                continue;
            }
        };
        let sname: Arc<str> = sname.into();
        let counters = Arc::new(ScriptCounters::new());
        let current = Arc::new(Current {
            name: sname.clone(),
            counters: counters.clone(),
            stage: native::stage(py, sname.clone()),
        });
        out.scripts.push(Script {
            name: sname,
            counters,
            current,
            module: name.to_owned(),
            class,
            path: path.to_owned(),
            interval,
            timeout,
            obj: obj.unbind(),
            running: Mutex::new(None),
        });
    }
}

/// What becomes of a script file whose module name is taken.
enum NameTaken {
    /// Left out with a note (a copy of the framework among the scripts).
    Note(String),
    /// Refused, with the error saying what to do.
    Refused(String),
}

/// What to tell about a script file whose module name is taken (see the
/// loader's `name_taken`).
fn name_taken_message(name: &str, path: &Path, kind: &str, what: &str) -> NameTaken {
    let file = path.display();
    let whose = match kind {
        "framework" => {
            return NameTaken::Note(format!(
            "{file}: not imported: pythond provides datakit_framework itself (scripts import it \
                 with no install step); this copy is not used"
        ))
        }
        "stdlib" => format!("the standard library's module {what}"),
        _ => format!("the installed package {what}"),
    };
    let rename = if name.contains('.') {
        "rename the file or its folder"
    } else {
        "rename the file"
    };
    NameTaken::Refused(format!(
        "{file}: not imported: its module name {name:?} is {whose}, which this file would \
         replace for the framework and every other script (the original never ran such a file \
         either: the standard library and installed packages come first); {rename} \
         (e.g. {}_collector.py)",
        name.rsplit('.').next().unwrap_or(name)
    ))
}

/// Call `script.run()` on this thread as run `run_id`, the number
/// [`interrupt`] names to stop this run and no other (the scheduler's run
/// generation; unique per script).
pub fn run(script: &Script, run_id: u64) -> Result<(), RunError> {
    crate::tstate::keep();
    current::set(Some(script.current.clone()));
    let result = Python::attach(|py| {
        // SAFETY: plain query of the current thread's ident.
        let thread = unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64;
        *script.lock_running() = Some(Running { run_id, thread });
        let r = script.obj.bind(py).call_method0(pyo3::intern!(py, "run"));
        // run() has returned, and no Python code has run on this thread since
        // (the GIL is not released between the call's return and here). Close
        // the run to interrupts first, then drop what was pending: whatever
        // this thread runs next (dropping the result, formatting the
        // traceback, the next script) can no longer get this run's
        // `RunTimeout`. `interrupt` sets the exception holding the same lock,
        // so one that won the race is dropped here, and one that lost it
        // finds the run closed.
        {
            let mut running = script.lock_running();
            *running = None;
            // SAFETY: clearing this thread's own pending async exception.
            unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(thread as _, std::ptr::null_mut()) };
        }
        // What the run's one-point calls gathered goes before the job's
        // flush of the writer (and before anything of the next run).
        if let Some(stage) = &script.current.stage {
            stage.flush();
        }
        let r = r.map(drop).map_err(|e| RunError {
            timed_out: loader(py)
                .getattr("RunTimeout")
                .is_ok_and(|t| e.get_type(py).is_subclass(&t).unwrap_or(false)),
            traceback: format_err(py, &e),
        });
        native::flush_output();
        r
    });
    current::set(None);
    result
}

/// Raise `RunTimeout` inside run `run_id` of `script`, if that run is still
/// inside `run()`; `false` (and nothing happens) when it has returned or
/// another run is in progress, so an interrupt meant for a run that just
/// ended can never hit the next one, nor the code that follows a run. It
/// takes effect at the next bytecode the run executes; code blocked in C (a
/// `sleep`, a socket read) is not reached until it returns.
pub fn interrupt(script: &Script, run_id: u64) -> bool {
    crate::tstate::keep();
    Python::attach(|py| {
        let Ok(exc) = loader(py).getattr("RunTimeout") else {
            return false;
        };
        // Held while the exception is set: `run` closes the run under this
        // lock, then clears what is pending.
        let running = script.lock_running();
        match *running {
            Some(r) if r.run_id == run_id => {
                // SAFETY: `exc` is a live exception type; `r.thread` is a live
                // Python thread still inside this run: `run` takes this lock
                // before it clears the record and what is pending.
                let n =
                    unsafe { pyo3::ffi::PyThreadState_SetAsyncExc(r.thread as _, exc.as_ptr()) };
                n == 1
            }
            _ => false,
        }
    })
}
