//! The Python environment a config block's `cmd` names.
//!
//! The original ran `cmd` as its interpreter. Embedded, we run it once only to
//! ask for its version, its `site-packages` and its `sys.executable`. The
//! site-packages then go on the embedded interpreter's `sys.path`, so scripts
//! see the packages installed for that Python, and `sys.executable` inside
//! scripts is that Python (what `subprocess.run([sys.executable, ...])`
//! starts). Its major.minor must equal the embedded CPython's: C extensions
//! built for another version would crash or fail to import.
//!
//! The probe runs `cmd` as the original ran it (not isolated, with the block's
//! `envs`), so `pip install --user` packages are visible exactly when they
//! were to the original: `cmd`'s `site.ENABLE_USER_SITE` decides (off in a
//! virtualenv, with `PYTHONNOUSERSITE`, or `-s`), and `PYTHONUSERBASE` is
//! honoured. Only the current directory is taken off its `sys.path`, so that
//! a `json.py` where pythond was started cannot break the probe.

use std::path::PathBuf;
use std::process::Command;

/// What `cmd` told us about itself.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PythonEnv {
    pub version: (u8, u8),
    pub prefix: PathBuf,
    pub site_dirs: Vec<PathBuf>,
    /// `cmd`'s `sys.executable`: `cmd` found on `PATH`, as a path.
    pub executable: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cmd {cmd:?}: cannot run it: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("cmd {cmd:?}: exited with {status}: {stderr}")]
    Failed {
        cmd: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cmd {cmd:?}: unexpected answer {answer:?}")]
    Answer { cmd: String, answer: String },
    #[error(
        "cmd {cmd:?} is Python {}.{}, but pythond embeds Python {}.{}; point cmd at a Python {}.{} (its site-packages are what scripts import from)",
        found.0, found.1, embedded.0, embedded.1, embedded.0, embedded.1
    )]
    Version {
        cmd: String,
        found: (u8, u8),
        embedded: (u8, u8),
    },
}

const PROBE: &str = r#"
import sys
if sys.path and sys.path[0] in ("", "."):
    del sys.path[0]
import json, site
dirs = list(getattr(site, "getsitepackages", lambda: [])())
if getattr(site, "ENABLE_USER_SITE", False):
    dirs.append(site.getusersitepackages())
print(json.dumps({"version": list(sys.version_info[:2]), "prefix": sys.prefix, "site_dirs": dirs,
                  "executable": sys.executable}))
"#;

/// Ask `cmd` for its version, site-packages and executable (with the current
/// process environment, i.e. the block's `envs` already applied by the
/// supervisor).
pub fn probe(cmd: &str) -> Result<PythonEnv, EnvError> {
    probe_with(cmd, &[])
}

fn probe_with(cmd: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Result<PythonEnv, EnvError> {
    let out = Command::new(cmd)
        .args(["-c", PROBE])
        .envs(envs.iter().copied())
        .output()
        .map_err(|source| EnvError::Spawn {
            cmd: cmd.to_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(EnvError::Failed {
            cmd: cmd.to_owned(),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    serde_json::from_str(&answer).map_err(|_| EnvError::Answer {
        cmd: cmd.to_owned(),
        answer,
    })
}

/// Probe `cmd` and check it matches the embedded `(major, minor)`.
pub fn resolve(cmd: &str, embedded: (u8, u8)) -> Result<PythonEnv, EnvError> {
    let env = probe(cmd)?;
    if env.version != embedded {
        return Err(EnvError::Version {
            cmd: cmd.to_owned(),
            found: env.version,
            embedded,
        });
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python3_on_path_reports_its_site_packages() {
        let env = probe("python3").expect("python3 runs");
        assert_eq!(env.version.0, 3);
        assert!(
            env.site_dirs.iter().any(|d| d.ends_with("site-packages")),
            "{env:?}"
        );
    }

    #[test]
    fn the_executable_is_cmd_as_a_path() {
        let env = probe("python3").expect("python3 runs");
        assert!(env.executable.is_absolute(), "{env:?}");
        let out = Command::new(&env.executable)
            .args(["-c", "import sys; print(sys.version_info[0])"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    }

    #[test]
    fn the_user_site_of_cmd_is_reported_as_the_original_saw_it() {
        let base = tempfile::tempdir().unwrap();
        let env = probe_with("python3", &[("PYTHONUSERBASE", base.path().as_os_str())])
            .expect("python3 runs");
        assert!(
            env.site_dirs.iter().any(|d| d.starts_with(base.path())),
            "the user site below PYTHONUSERBASE is visible: {env:?}"
        );
        let env = probe_with(
            "python3",
            &[
                ("PYTHONUSERBASE", base.path().as_os_str()),
                ("PYTHONNOUSERSITE", std::ffi::OsStr::new("1")),
            ],
        )
        .expect("python3 runs");
        assert!(
            !env.site_dirs.iter().any(|d| d.starts_with(base.path())),
            "PYTHONNOUSERSITE hides it, as it did from the original: {env:?}"
        );
    }

    #[test]
    fn a_json_py_in_the_current_folder_does_not_break_the_probe() {
        let cwd = tempfile::tempdir().unwrap();
        std::fs::write(cwd.path().join("json.py"), "raise SystemExit('shadowed')\n").unwrap();
        let out = Command::new("python3")
            .args(["-c", PROBE])
            .current_dir(cwd.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn missing_cmd_is_a_spawn_error_naming_it() {
        let e = probe("/nonexistent/python9").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cmd \"/nonexistent/python9\": cannot run it"),
            "{e}"
        );
    }

    #[test]
    fn other_minor_version_is_refused_with_advice() {
        let e = resolve("python3", (3, 2)).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("but pythond embeds Python 3.2"), "{msg}");
    }
}
