//! Reading the runner file DataKit renders for an `[[inputs.pythond]]`
//! block (`pythond <file> --logname=<name>`), with the embedded
//! interpreter's `ast` module: what the file means is what Python makes of
//! it, whatever its quoting, escapes or layout. Nothing in it is run.

use std::ffi::CString;
use std::path::Path;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyModule};

use pythond_core::spec::LaunchFileCalls;

const SRC: &str = include_str!("../python/launch_file.py");

/// Why a launch file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LaunchFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not Python source: {message}")]
    NotPython { path: String, message: String },
}

/// The calls of `path` that say where DataKit is and what to run. Starts the
/// interpreter (plainly: no `datakit_framework`); call once per process.
pub fn read_launch_file(path: &Path) -> Result<LaunchFileCalls, LaunchFileError> {
    let shown = path.display().to_string();
    let source = std::fs::read(path).map_err(|source| LaunchFileError::Read {
        path: shown.clone(),
        source,
    })?;
    Python::initialize();
    Python::attach(|py| {
        let code = CString::new(SRC).expect("no NUL in launch_file.py");
        let parsed = PyModule::from_code(
            py,
            &code,
            c"pythond_launch_file.py",
            c"_pythond_launch_file",
        )
        .and_then(|m| {
            m.getattr("read")?
                .call1((PyBytes::new(py, &source), shown.as_str()))?
                .extract::<(Vec<String>, Vec<String>, Option<Vec<String>>)>()
        });
        match parsed {
            Ok((path_appends, path_extends, main_args)) => Ok(LaunchFileCalls {
                path_appends,
                path_extends,
                main_args,
            }),
            Err(e) => Err(LaunchFileError::NotPython {
                path: shown.clone(),
                message: e
                    .value(py)
                    .str()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|_| e.to_string()),
            }),
        }
    })
}
