//! The embedded CPython: every line of pyo3 in pythond lives in this crate.
//!
//! The worker calls plain synchronous functions that take and return Rust
//! data: [`init`] once per process, [`load`] to import script files and
//! instantiate their plugin classes, [`run`] to call one instance's `run()`,
//! [`interrupt`] to stop the run it names once it outlived its timeout. Callers run them on
//! threads of their own (never inside an async task), and nothing here waits on
//! the network while attached to Python.
//!
//! - `datakit_framework` (`python/datakit_framework.py`, embedded in the
//!   binary) is put in `sys.modules`, so scripts import it with no install
//!   step. Its class derives from the native `_pythond.DataKitFramework`
//!   ([`native`]), whose methods find the input's API object in that class:
//!   the API object owns the [`Context`] (the
//!   [`Sink`](pythond_core::sink::Sink) points go to), and no static holds
//!   it. Points leave Python as encoded lines, never as Python objects.
//! - `sys.stdout`/`sys.stderr` are replaced so that `print()` lines are logged
//!   with the name of the script that printed them.
//! - [`env`] asks the Python named by a block's `cmd` for its version and
//!   `site-packages`.
//! - [`read_launch_file`] parses the runner file DataKit renders for a block
//!   (launch mode) with Python's own `ast`.

mod convert;
mod current;
pub mod env;
mod interp;
mod launch_file;
mod native;
mod script;
mod tstate;

pub use current::current_script;
pub use interp::{init, wait_for_interpreter, InterpreterSetup, PythonError, EMBEDDED_VERSION};
pub use launch_file::{read_launch_file, LaunchFileError};
pub use native::Context;
pub use script::{interrupt, load, run, FailureKind, LoadFailure, Loaded, RunError, Script};
