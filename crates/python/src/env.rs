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
//!
//! Running `cmd` costs a process start, and a pyenv shim is a chain of bash
//! scripts: ~0.1 s of every worker start, two thirds of the time to the
//! first point. [`resolve_cached`] keeps the answer in the input's data
//! folder, keyed by what decides it: `cmd`, the file it resolves to on
//! `PATH` (path, size, mtime, inode), the environment (but pythond's own
//! variables) and the current directory. On a hit the worker starts at once
//! and the probe still runs, beside the start: when its answer differs (a
//! shim whose pyenv version was switched: its file did not change), the
//! cache is rewritten and the worker exits as a failed start, so that the
//! supervisor starts it again with the environment `cmd` names now.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `cmd` told us about itself.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
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
    check_version(cmd, probe(cmd)?, embedded)
}

/// What a cached answer of the probe is valid for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
struct CacheKey {
    cmd: String,
    /// The file `cmd` runs (symlinks resolved), and its identity.
    resolved: PathBuf,
    size: u64,
    mtime_ns: i128,
    inode: u64,
    /// Every environment variable but pythond's own (`PYTHOND_*`, which
    /// carry the worker's spec), sorted.
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

#[derive(Debug, serde::Deserialize, serde::Serialize)]
struct Cached {
    key: CacheKey,
    env: PythonEnv,
}

impl CacheKey {
    /// The key for `cmd` now; `None` when `cmd` cannot be found (the probe
    /// then says why).
    fn now(cmd: &str) -> Option<CacheKey> {
        use std::os::unix::fs::MetadataExt;
        let cwd = std::env::current_dir().ok()?;
        let found = if cmd.contains('/') {
            Some(cwd.join(cmd))
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(cmd))
                    .find(|p| p.is_file())
            })
        }?;
        let resolved = std::fs::canonicalize(found).ok()?;
        let meta = std::fs::metadata(&resolved).ok()?;
        let mut env: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .filter(|(k, _)| !k.starts_with("PYTHOND_"))
            .collect();
        env.sort();
        Some(CacheKey {
            cmd: cmd.to_owned(),
            resolved,
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            env,
            cwd,
        })
    }
}

fn read_cache(file: &Path, key: &CacheKey) -> Option<PythonEnv> {
    let text = std::fs::read_to_string(file).ok()?;
    let cached: Cached = serde_json::from_str(&text).ok()?;
    (cached.key == *key && cached.env.executable.is_file()).then_some(cached.env)
}

fn write_cache(file: &Path, key: &CacheKey, env: &PythonEnv) {
    let text = match serde_json::to_string(&Cached {
        key: key.clone(),
        env: env.clone(),
    }) {
        Ok(t) => t,
        Err(_) => return,
    };
    // Whole or not at all: a worker killed while writing leaves no half file.
    let tmp = file.with_extension("tmp");
    let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, file));
    if let Err(e) = written {
        tracing::debug!("cannot cache the answer of cmd in {}: {e}", file.display());
    }
}

/// [`resolve`], with the answer cached in `cache` (a file; `None`: no
/// cache). On a hit the probe runs on a thread of its own and
/// `on_changed` is called with its error when its answer is not the cached
/// one (the cache is updated first); see the module docs.
pub fn resolve_cached(
    cmd: &str,
    embedded: (u8, u8),
    cache: Option<&Path>,
    on_changed: impl FnOnce(String) + Send + 'static,
) -> Result<PythonEnv, EnvError> {
    let (Some(file), Some(key)) = (cache, CacheKey::now(cmd)) else {
        return resolve(cmd, embedded);
    };
    if let Some(env) = read_cache(file, &key) {
        let (file, owned_cmd, cached) = (file.to_owned(), cmd.to_owned(), env.clone());
        let verify = std::thread::Builder::new()
            .name("pythond-env-check".into())
            .spawn(move || match probe(&owned_cmd) {
                Ok(fresh) if fresh == cached => {}
                Ok(fresh) => {
                    write_cache(&file, &key, &fresh);
                    on_changed(format!(
                        "cmd {owned_cmd:?} now names another Python environment than when it was \
                         cached ({} → {}): restarting with it",
                        cached.executable.display(),
                        fresh.executable.display()
                    ));
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&file);
                    on_changed(e.to_string());
                }
            });
        if verify.is_ok() {
            check_version(cmd, env, embedded)
        } else {
            resolve(cmd, embedded)
        }
    } else {
        let env = probe(cmd)?;
        write_cache(file, &key, &env);
        check_version(cmd, env, embedded)
    }
}

fn check_version(cmd: &str, env: PythonEnv, embedded: (u8, u8)) -> Result<PythonEnv, EnvError> {
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
    fn a_cached_answer_is_the_probe_s_and_is_checked_beside_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("python-env.json");
        let embedded = probe("python3").unwrap().version;
        let first = resolve_cached("python3", embedded, Some(&file), |e| panic!("{e}")).unwrap();
        assert!(file.is_file(), "the answer is cached");
        let (tx, rx) = std::sync::mpsc::channel();
        let second = resolve_cached("python3", embedded, Some(&file), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        assert_eq!(first, second);
        // The check beside the start agrees: nothing is reported.
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).is_err());
    }

    #[test]
    fn a_cached_answer_that_no_longer_holds_is_replaced_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("python-env.json");
        let real = probe("python3").unwrap();
        let key = CacheKey::now("python3").unwrap();
        let stale = PythonEnv {
            site_dirs: vec![dir.path().join("old-site-packages")],
            ..real.clone()
        };
        write_cache(&file, &key, &stale);
        let (tx, rx) = std::sync::mpsc::channel();
        let got = resolve_cached("python3", real.version, Some(&file), move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
        assert_eq!(got, stale, "the start uses the cached answer");
        let msg = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the difference is reported");
        assert!(msg.contains("restarting"), "{msg}");
        assert_eq!(
            read_cache(&file, &key),
            Some(real),
            "the cache now holds the fresh answer"
        );
    }

    #[test]
    fn another_environment_is_another_key() {
        let key = CacheKey::now("python3").unwrap();
        let mut other = key.clone();
        other.env.push(("PYTHONPATH".into(), "/x".into()));
        assert_ne!(key, other);
        assert!(CacheKey::now("/nonexistent/python9").is_none());
    }

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
