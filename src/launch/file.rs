//! The runner file DataKit renders for a block: read it, say what it means
//! (where DataKit is, the script folders, the module names), and find each
//! module's file.
//!
//! The file is Python source whose exact text varies between DataKit
//! versions. `pythond` has no interpreter, so `pythond-worker parse-launch`
//! parses it with the embedded Python's `ast` and hands back the string
//! arguments of three calls; this module decides what they mean:
//!
//! - `sys.path.append("<datakit>/python.d/core")`: DataKit's directory is the
//!   parent of `python.d`;
//! - `sys.path.extend(['<root>', ...])` (and any other `sys.path` append):
//!   the folders DataKit resolved from the block's `dirs`;
//! - `main("mod", "sub.mod", ...)`: the modules, `mod` being `<root>/mod.py`
//!   and `sub.mod` `<root>/sub/mod.py` in the first root holding it. A file
//!   entry of `dirs` is a module whose folder DataKit does not put on
//!   `sys.path`; it is found through the block's `dirs` in `conf.d`.
//!
//! A module file found in a root passes the same ownership and permission
//! check as `pythond run`'s discovery (`pythond_core::trust`): the file, its
//! folders up to the root, and the folders from the root up to DataKit's
//! `python.d` (or the git repo's) it lies in.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

use pythond_core::discover::{DiscoverError, DiscoverWarning, ModuleSpec, PathPolicy};
use pythond_core::spec::LaunchFileCalls;
use pythond_core::trust;

/// What a runner file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchFile {
    pub path: PathBuf,
    /// `<datakit>` of `<datakit>/python.d/core`.
    pub datakit_dir: PathBuf,
    /// The script folders, in order.
    pub roots: Vec<PathBuf>,
    /// The module names, in order, each once.
    pub modules: Vec<String>,
}

/// Why a file given as DataKit's runner file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum RunnerFileError {
    /// Calls every runner DataKit renders makes are not in it.
    #[error(
        "{}: not the runner file DataKit renders for an [[inputs.pythond]] block: {}. \
         pythond takes that file when it is the block's cmd (README: \"Install into DataKit\"); \
         to run scripts yourself, use `pythond run` or `pythond test`",
        .path.display(),
        .missing.join(", and ")
    )]
    NotARunner { path: PathBuf, missing: Vec<String> },
    /// DataKit renders `main("")` when the block's dirs hold no script.
    #[error(
        "{}: DataKit's runner file for the block, with no script to run: its main() call \
         names no module, so DataKit found no .py script in the block's dirs (check `dirs` \
         and the scripts in <datakit>/python.d or the git repos' python.d)",
        .path.display()
    )]
    NoScript { path: PathBuf },
}

/// Read and interpret the runner file at `path`.
pub fn read(path: &Path) -> anyhow::Result<LaunchFile> {
    let calls = parse_with_worker(path)?;
    Ok(interpret(path, calls)?)
}

/// `pythond-worker parse-launch FILE`.
fn parse_with_worker(path: &Path) -> anyhow::Result<LaunchFileCalls> {
    use std::os::unix::process::CommandExt as _;
    let exe = crate::worker_exe::path()?;
    let mut cmd = Command::new(&exe);
    cmd.arg("parse-launch")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe prctl between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        bail!(
            "{}",
            err.strip_prefix("pythond-worker: error: ").unwrap_or(err)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "unexpected answer of {} parse-launch: {:?}",
            exe.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `<datakit>/python.d/core`, absolute.
fn is_core(p: &str) -> bool {
    let p = Path::new(p.trim_end_matches('/'));
    p.is_absolute()
        && p.file_name().is_some_and(|n| n == "core")
        && p.parent()
            .and_then(Path::file_name)
            .is_some_and(|n| n == "python.d")
}

/// What the calls found in `path` mean; the error says what was not found.
pub fn interpret(path: &Path, calls: LaunchFileCalls) -> Result<LaunchFile, RunnerFileError> {
    let core = calls.path_appends.iter().find(|p| is_core(p));
    let mut missing = Vec::new();
    if core.is_none() {
        missing.push(if calls.path_appends.is_empty() {
            "no sys.path.append(\"<datakit>/python.d/core\") call".to_owned()
        } else {
            format!(
                "no sys.path.append of DataKit's <datakit>/python.d/core folder (it appends {:?})",
                calls.path_appends
            )
        });
    }
    let modules: Vec<String> = {
        let mut v: Vec<String> = Vec::new();
        for m in calls.main_args.iter().flatten() {
            let m = m.trim();
            if !m.is_empty() && !v.iter().any(|x| x == m) {
                v.push(m.to_owned());
            }
        }
        v
    };
    if calls.main_args.is_none() {
        missing.push("no main(\"module\", ...) call naming the scripts' modules".to_owned());
    }
    let Some(core) = core.filter(|_| missing.is_empty()) else {
        return Err(RunnerFileError::NotARunner {
            path: path.to_owned(),
            missing,
        });
    };
    if modules.is_empty() {
        return Err(RunnerFileError::NoScript {
            path: path.to_owned(),
        });
    }
    let core = Path::new(core.trim_end_matches('/'));
    let datakit_dir = core
        .parent()
        .and_then(Path::parent)
        .expect("is_core: two components")
        .to_owned();
    let mut roots: Vec<PathBuf> = Vec::new();
    for r in calls
        .path_extends
        .iter()
        .chain(calls.path_appends.iter().filter(|p| !is_core(p)))
    {
        let r = PathBuf::from(r);
        if !r.as_os_str().is_empty() && !roots.contains(&r) {
            roots.push(r);
        }
    }
    Ok(LaunchFile {
        path: path.to_owned(),
        datakit_dir,
        roots,
        modules,
    })
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f == '_' || f.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}

/// Where the modules of a runner file are.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// `(module, file)`, in the file's order.
    pub modules: Vec<(String, PathBuf)>,
    /// The roots, then the folders of modules found through the block.
    pub sys_path: Vec<PathBuf>,
    /// One line per module not found or refused.
    pub missing: Vec<String>,
    /// Modules imported although `insecure_paths` let them through.
    pub warnings: Vec<String>,
}

/// The ownership and permission check of a module found in `root`, as
/// discovery does it: the file up to the root, and the root up to the
/// `python.d` among `lookup_roots` it lies in.
fn trust_problems(file: &Path, root: &Path, lookup_roots: &[PathBuf]) -> Vec<trust::TrustError> {
    let mut guarded = trust::guarded_paths(file, root);
    if let Some(l) = lookup_roots.iter().find(|l| root.starts_with(l)) {
        for g in trust::guarded_paths(root, l) {
            if !guarded.contains(&g) {
                guarded.push(g);
            }
        }
    }
    trust::check_all(&guarded)
}

/// Find each module of `lf` in its roots, else among `block` (what
/// discovery finds for the block's `dirs`, with `policy` applied: file
/// entries; `None` when the block was not found in `conf.d`). `lookup_roots`
/// are DataKit's `python.d` folders (its own and the git repos').
pub fn find_modules(
    lf: &LaunchFile,
    block: Option<&[ModuleSpec]>,
    policy: PathPolicy,
    lookup_roots: &[PathBuf],
) -> Found {
    let mut found = Found {
        sys_path: lf.roots.clone(),
        ..Found::default()
    };
    for m in &lf.modules {
        if !m.split('.').all(is_identifier) {
            found
                .missing
                .push(format!("{m:?} is not a Python module name; skipped"));
            continue;
        }
        let mut rel: PathBuf = m.split('.').collect();
        rel.set_extension("py");
        if let Some((root, file)) = lf
            .roots
            .iter()
            .map(|r| (r, r.join(&rel)))
            .find(|(_, p)| p.is_file())
        {
            let problems = trust_problems(&file, root, lookup_roots);
            if !problems.is_empty() {
                match policy {
                    PathPolicy::Refuse => {
                        found
                            .missing
                            .push(DiscoverError::Untrusted { file, problems }.to_string());
                        continue;
                    }
                    PathPolicy::Warn(reason) => found.warnings.push(
                        DiscoverWarning::Insecure {
                            file: file.clone(),
                            reason,
                            problems,
                        }
                        .to_string(),
                    ),
                }
            }
            found.modules.push((m.clone(), file));
            continue;
        }
        if let Some(spec) = block.into_iter().flatten().find(|s| s.name == *m) {
            if let Some(dir) = spec.path.parent() {
                if !found.sys_path.iter().any(|p| p == dir) {
                    found.sys_path.push(dir.to_owned());
                }
            }
            found.modules.push((m.clone(), spec.path.clone()));
            continue;
        }
        let roots: Vec<String> = lf.roots.iter().map(|r| r.display().to_string()).collect();
        found.missing.push(format!(
            "module {m:?}: no {} in the script folders [{}]{}; skipped",
            rel.display(),
            roots.join(", "),
            match block {
                Some(_) => " nor among the block's dirs",
                None => {
                    " (a file entry of dirs is found through the [[inputs.pythond]] block in conf.d, which was not found)"
                }
            }
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(appends: &[&str], extends: &[&str], main: Option<&[&str]>) -> LaunchFileCalls {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        LaunchFileCalls {
            path_appends: v(appends),
            path_extends: v(extends),
            main_args: main.map(v),
        }
    }

    #[test]
    fn the_core_path_gives_datakits_directory_and_extend_the_roots() {
        let lf = interpret(
            Path::new("/tmp/pythond_1"),
            calls(
                &["/usr/local/datakit/python.d/core"],
                &[
                    "/usr/local/datakit/gitrepos/conf/python.d/team",
                    "/usr/local/datakit/python.d/mine",
                ],
                Some(&["top", "sub.deep", "top"]),
            ),
        )
        .unwrap();
        assert_eq!(lf.datakit_dir, Path::new("/usr/local/datakit"));
        assert_eq!(
            lf.roots,
            vec![
                PathBuf::from("/usr/local/datakit/gitrepos/conf/python.d/team"),
                PathBuf::from("/usr/local/datakit/python.d/mine")
            ]
        );
        assert_eq!(lf.modules, vec!["top", "sub.deep"], "each once, in order");
    }

    #[test]
    fn what_is_missing_is_named_with_the_file() {
        let e = interpret(Path::new("/tmp/x.py"), calls(&[], &[], None)).unwrap_err();
        assert!(matches!(&e, RunnerFileError::NotARunner { missing, .. } if missing.len() == 2));
        let e = e.to_string();
        assert!(
            e.starts_with("/tmp/x.py: not the runner file DataKit renders"),
            "{e}"
        );
        assert!(
            e.contains("no sys.path.append(\"<datakit>/python.d/core\") call"),
            "{e}"
        );
        assert!(e.contains("no main(\"module\", ...) call"), "{e}");
        let e = interpret(Path::new("/tmp/y"), calls(&["/opt/lib"], &[], Some(&["m"])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(it appends [\"/opt/lib\"])"), "{e}");
        assert!(!e.contains("main("), "{e}");
        for main in [&[][..], &[""]] {
            let e = interpret(
                Path::new("/tmp/z"),
                calls(&["/dk/python.d/core/"], &[], Some(main)),
            )
            .unwrap_err();
            assert!(matches!(e, RunnerFileError::NoScript { .. }), "{e}");
            let e = e.to_string();
            assert!(
                e.starts_with("/tmp/z: DataKit's runner file for the block, with no script to run"),
                "{e}"
            );
            assert!(e.contains("names no module"), "{e}");
            assert!(!e.contains("not the runner file"), "{e}");
        }
    }

    fn tree(files: &[&str]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
        }
        // Whatever the umask: owner-writable only, as the trust check wants.
        for e in walk(d.path()) {
            let mode = if e.is_dir() { 0o755 } else { 0o644 };
            std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        d
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = vec![dir.to_owned()];
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn a_module_others_can_write_is_refused_like_discovery_refuses_it() {
        use std::os::unix::fs::PermissionsExt;
        let t = tree(&["python.d/a/top.py", "python.d/a/ok.py"]);
        let top = t.path().join("python.d/a/top.py");
        std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o666)).unwrap();
        let lf = LaunchFile {
            path: "/tmp/f".into(),
            datakit_dir: t.path().into(),
            roots: vec![t.path().join("python.d/a")],
            modules: vec!["top".into(), "ok".into()],
        };
        let lookup = [t.path().join("python.d")];
        let f = find_modules(&lf, None, PathPolicy::Refuse, &lookup);
        assert_eq!(f.modules.len(), 1, "{f:?}");
        assert_eq!(f.modules[0].0, "ok");
        assert!(f.missing[0].contains("top.py"), "{:?}", f.missing);
        let f = find_modules(
            &lf,
            None,
            PathPolicy::Warn("insecure_paths = true"),
            &lookup,
        );
        assert_eq!(f.modules.len(), 2);
        assert!(f.warnings[0].contains("top.py"), "{:?}", f.warnings);
    }

    #[test]
    fn modules_are_found_in_the_first_root_holding_them() {
        let t = tree(&["a/top.py", "b/top.py", "b/sub/deep.py"]);
        let lf = LaunchFile {
            path: "/tmp/f".into(),
            datakit_dir: t.path().into(),
            roots: vec![t.path().join("a"), t.path().join("b")],
            modules: vec![
                "top".into(),
                "sub.deep".into(),
                "gone".into(),
                "bad-name".into(),
            ],
        };
        let f = find_modules(&lf, None, PathPolicy::Refuse, &[]);
        assert_eq!(
            f.modules,
            vec![
                ("top".to_string(), t.path().join("a/top.py")),
                ("sub.deep".to_string(), t.path().join("b/sub/deep.py")),
            ]
        );
        assert_eq!(f.sys_path, lf.roots);
        assert_eq!(f.missing.len(), 2, "{:?}", f.missing);
        assert!(f.missing[0].starts_with("module \"gone\": no gone.py in the script folders"));
        assert!(f.missing[0].contains("which was not found"));
        assert!(f.missing[1].contains("\"bad-name\" is not a Python module name"));
    }

    #[test]
    fn a_file_entry_is_found_through_the_block_with_its_folder_on_sys_path() {
        let t = tree(&["a/top.py", "extra/single.py"]);
        let lf = LaunchFile {
            path: "/tmp/f".into(),
            datakit_dir: t.path().into(),
            roots: vec![t.path().join("a")],
            modules: vec!["single".into(), "top".into()],
        };
        let block = vec![ModuleSpec {
            name: "single".into(),
            path: t.path().join("extra/single.py"),
            entry: "extra/single.py".into(),
        }];
        let f = find_modules(&lf, Some(&block), PathPolicy::Refuse, &[]);
        assert_eq!(
            f.modules[0],
            ("single".to_string(), t.path().join("extra/single.py"))
        );
        assert_eq!(f.sys_path, vec![t.path().join("a"), t.path().join("extra")]);
        assert!(f.missing.is_empty());
    }
}
