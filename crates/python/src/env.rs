//! The Python environment a config block's `cmd` names.
//!
//! The original ran `cmd` as its interpreter. Embedded, we run it once only to
//! ask for its version and its `site-packages`, which then go on the embedded
//! interpreter's `sys.path`, so scripts see the packages installed for that
//! Python. Its major.minor must equal the embedded CPython's: C extensions
//! built for another version would crash or fail to import.

use std::path::PathBuf;
use std::process::Command;

/// What `cmd` told us about itself.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct PythonEnv {
    pub version: (u8, u8),
    pub prefix: PathBuf,
    pub site_dirs: Vec<PathBuf>,
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
import json, site, sys
dirs = list(getattr(site, "getsitepackages", lambda: [])())
if getattr(site, "ENABLE_USER_SITE", False):
    dirs.append(site.getusersitepackages())
print(json.dumps({"version": list(sys.version_info[:2]), "prefix": sys.prefix, "site_dirs": dirs}))
"#;

/// Ask `cmd` for its version and site-packages (with the current process
/// environment, i.e. the block's `envs` already applied by the supervisor).
pub fn probe(cmd: &str) -> Result<PythonEnv, EnvError> {
    let out = Command::new(cmd)
        .args(["-I", "-c", PROBE])
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
