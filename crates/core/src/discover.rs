//! Finding an input's scripts from its `dirs` (`docs/compat.md#discovery`),
//! and deciding which of them may be imported ([`crate::trust`]).
//!
//! - An entry is resolved against `python.d/`; with git repos enabled it is
//!   looked up first as `gitrepos/<repo>/python.d/<entry>` for each enabled
//!   repo, in order. Absolute entries are used as they are. Symlinks and `..`
//!   are followed, as the original followed them (it stats the path and lists
//!   it): whoever can put a symlink in `python.d` or edit the config can as
//!   well put a script there. Where each entry resolved is kept
//!   ([`Discovery::resolved`]) for `pythond check` and the logs.
//! - A directory entry gives every `.py` file at most two levels down except
//!   `__init__.py`: `file.py` in the entry is module `file`, `sub/file.py` is
//!   module `sub.file`. The entry (resolved) goes on `sys.path`.
//! - A file entry is imported by its stem, and its folder goes on `sys.path`
//!   (the original forgot that).
//! - Module names are de-duplicated (first wins, the other is reported).
//! - Before a module is listed, the file and every folder from it up to its
//!   entry, and the lookup root with the folders between it and the entry,
//!   must be owned by root or pythond's user and not writable by group or
//!   others; through a symlink or `..` out of the lookup root, the path it
//!   leads to with every folder above it up to `/` ([`trust::guarded_paths`],
//!   [`trust::check`]). A file failing that
//!   is refused ([`DiscoverError::Untrusted`]), or with
//!   [`PathPolicy::Warn`] listed with a warning.
//! - We differ: a file whose stem is not a Python identifier cannot be
//!   imported by name and is reported, not silently skipped; an entry that
//!   does not exist is reported.

use std::path::{Path, PathBuf};

use crate::trust::{self, TrustError};

/// One module to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// `file` or `subfolder.file`.
    pub name: String,
    pub path: PathBuf,
    /// The `dirs` entry it came from.
    pub entry: String,
}

/// Where a `dirs` entry resolved: the real path, symlinks and `..` resolved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resolved {
    pub entry: String,
    pub path: PathBuf,
}

/// What to do with a script that someone other than root and pythond's user
/// could have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathPolicy {
    /// Do not import it (an error).
    #[default]
    Refuse,
    /// Import it with a warning that gives this reason.
    Warn(&'static str),
}

impl PathPolicy {
    /// The block's `insecure_paths` key.
    pub fn for_block(insecure_paths: bool) -> PathPolicy {
        if insecure_paths {
            PathPolicy::Warn("insecure_paths = true")
        } else {
            PathPolicy::Refuse
        }
    }
}

/// A `dirs` entry or a script that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("dirs entry {entry:?} does not exist")]
    Missing { entry: String },
    #[error(
        "dirs entry {entry:?} not found in {}{}",
        .python_d.display(),
        if *.in_git_repos { " or the enabled git repos" } else { "" }
    )]
    NotFound {
        entry: String,
        python_d: PathBuf,
        in_git_repos: bool,
    },
    #[error("dirs entry {entry:?} ({}) cannot be resolved: {source}", .path.display())]
    Unresolvable {
        entry: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("dirs entry {entry:?} is neither a folder nor a .py file")]
    NotScript { entry: String },
    #[error(
        "{}: not imported: someone other than root and the user pythond runs as could change it: {} \
         (or set insecure_paths = true in the block to import it anyway, with a warning)",
        .file.display(),
        join(.problems)
    )]
    Untrusted {
        file: PathBuf,
        problems: Vec<TrustError>,
    },
    #[error("no Python module found in dirs {entries:?} (looked in {})", .python_d.display())]
    NoModules {
        entries: Vec<String>,
        python_d: PathBuf,
    },
}

/// Something skipped or doubtful; the rest of the input is fine.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverWarning {
    #[error(
        "{}: folder name is not a Python identifier; its {count} .py file(s) cannot be imported as {name}.<file> and are skipped",
        .folder.display()
    )]
    FolderName {
        folder: PathBuf,
        name: String,
        count: usize,
    },
    #[error(
        "{}: {name:?} is not a valid module name (rename the file to a Python identifier); skipped",
        .file.display()
    )]
    ModuleName { file: PathBuf, name: String },
    #[error("{}: module {name:?} already comes from {}; skipped", .file.display(), .first.display())]
    Duplicate {
        file: PathBuf,
        name: String,
        first: PathBuf,
    },
    #[error(
        "{}: imported although someone other than root and the user pythond runs as could change it ({reason}): {}",
        .file.display(),
        join(.problems)
    )]
    Insecure {
        file: PathBuf,
        reason: &'static str,
        problems: Vec<TrustError>,
    },
}

fn join(problems: &[TrustError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What discovery found for one input.
#[derive(Debug, Default)]
pub struct Discovery {
    pub modules: Vec<ModuleSpec>,
    pub sys_path: Vec<PathBuf>,
    /// Where each entry that exists resolved, in `dirs` order.
    pub resolved: Vec<Resolved>,
    pub warnings: Vec<DiscoverWarning>,
    pub errors: Vec<DiscoverError>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f == '_' || f.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}

/// An entry that exists.
struct Found {
    /// Symlinks and `..` resolved.
    real: PathBuf,
    /// Paths checked for every module of the entry besides those from the
    /// module up to the entry: how the entry is reached from its anchor
    /// ([`trust::guarded_paths`]).
    guard: Vec<PathBuf>,
}

/// Resolve one entry to an existing path.
fn resolve(entry: &str, python_d: &Path, gitrepos: &[PathBuf]) -> Result<Found, DiscoverError> {
    let e = Path::new(entry);
    let unresolvable = |path: &Path, source| DiscoverError::Unresolvable {
        entry: entry.to_owned(),
        path: path.to_owned(),
        source,
    };
    if e.is_absolute() {
        if !e.exists() {
            return Err(DiscoverError::Missing {
                entry: entry.to_owned(),
            });
        }
        let real = e.canonicalize().map_err(|s| unresolvable(e, s))?;
        // The entry is its own anchor: if it is a symlink, its target is
        // checked with every folder above it.
        return Ok(Found {
            real,
            guard: trust::guarded_paths(e, e),
        });
    }
    let roots = gitrepos
        .iter()
        .map(|r| r.join("python.d"))
        .chain(std::iter::once(python_d.to_owned()));
    for root in roots {
        let p = root.join(e);
        if !p.exists() {
            continue;
        }
        let real = p.canonicalize().map_err(|s| unresolvable(&p, s))?;
        // The lookup root, the folders the entry passes through and the
        // entry, each where it really is: through a symlink or `..` out of
        // the root, with every folder above it.
        return Ok(Found {
            real,
            guard: trust::guarded_paths(&p, &root),
        });
    }
    Err(DiscoverError::NotFound {
        entry: entry.to_owned(),
        python_d: python_d.to_owned(),
        in_git_repos: !gitrepos.is_empty(),
    })
}

fn py_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.extension().is_some_and(|x| x == "py"));
    v.retain(|p| p.file_name().is_some_and(|n| n != "__init__.py"));
    v.sort();
    v
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.is_dir()
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n != "__pycache__")
    });
    v.sort();
    v
}

/// Find the modules of an input's `dirs`; `policy` says what to do with a
/// script others could have changed.
pub fn discover(
    entries: &[String],
    python_d: &Path,
    gitrepos: &[PathBuf],
    policy: PathPolicy,
) -> Discovery {
    let mut d = Discovery::default();
    // Every name listed or refused: a refused module keeps its name, so a
    // later file of that name is not imported in its place.
    let mut taken: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let found = match resolve(entry, python_d, gitrepos) {
            Ok(f) => f,
            Err(e) => {
                d.errors.push(e);
                continue;
            }
        };
        d.resolved.push(Resolved {
            entry: entry.clone(),
            path: found.real.clone(),
        });
        // (module name, file, the folder its checks stop at)
        let mut listed: Vec<(String, PathBuf, PathBuf)> = Vec::new();
        let path = &found.real;
        if path.is_dir() {
            push_path(&mut d.sys_path, path);
            for f in py_files(path) {
                listed.push((stem(&f), f, path.clone()));
            }
            for sub in subdirs(path) {
                let sub_name = sub.file_name().unwrap().to_string_lossy().into_owned();
                if !is_identifier(&sub_name) {
                    let count = py_files(&sub).len();
                    if count > 0 {
                        d.warnings.push(DiscoverWarning::FolderName {
                            folder: sub,
                            name: sub_name,
                            count,
                        });
                    }
                    continue;
                }
                for f in py_files(&sub) {
                    listed.push((format!("{sub_name}.{}", stem(&f)), f, path.clone()));
                }
            }
        } else if path.extension().is_some_and(|x| x == "py") {
            let folder = path.parent().unwrap_or(Path::new("/")).to_owned();
            push_path(&mut d.sys_path, &folder);
            // Named as written: a symlinked file keeps its link's name.
            let name = Path::new(entry)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| stem(path));
            listed.push((name, path.clone(), folder));
        } else {
            d.errors.push(DiscoverError::NotScript {
                entry: entry.clone(),
            });
            continue;
        }
        for (name, file, stop) in listed {
            if !name.split('.').all(is_identifier) {
                d.warnings.push(DiscoverWarning::ModuleName { file, name });
                continue;
            }
            if let Some((_, first)) = taken.iter().find(|(n, _)| *n == name) {
                d.warnings.push(DiscoverWarning::Duplicate {
                    file,
                    name,
                    first: first.clone(),
                });
                continue;
            }
            taken.push((name.clone(), file.clone()));
            let mut guarded = trust::guarded_paths(&file, &stop);
            for g in &found.guard {
                if !guarded.contains(g) {
                    guarded.push(g.clone());
                }
            }
            let problems = trust::check_all(&guarded);
            if !problems.is_empty() {
                match policy {
                    PathPolicy::Refuse => {
                        d.errors.push(DiscoverError::Untrusted { file, problems });
                        continue;
                    }
                    PathPolicy::Warn(reason) => d.warnings.push(DiscoverWarning::Insecure {
                        file: file.clone(),
                        reason,
                        problems,
                    }),
                }
            }
            d.modules.push(ModuleSpec {
                name,
                path: file,
                entry: entry.clone(),
            });
        }
    }
    if d.modules.is_empty() {
        d.errors.push(DiscoverError::NoModules {
            entries: entries.to_vec(),
            python_d: python_d.to_owned(),
        });
    }
    d
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn push_path(v: &mut Vec<PathBuf>, p: &Path) {
    if !v.iter().any(|x| x == p) {
        v.push(p.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Files under a new temp dir, folders 0755 and files 0644 whatever the
    /// umask: the state the permission check accepts.
    fn tree(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
            chmod(&p, 0o644);
            for a in p
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(d.path()))
            {
                chmod(a, 0o755);
            }
        }
        d
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn names(d: &Discovery) -> Vec<&str> {
        d.modules.iter().map(|m| m.name.as_str()).collect()
    }

    fn errors(d: &Discovery) -> Vec<String> {
        d.errors.iter().map(ToString::to_string).collect()
    }

    fn warnings(d: &Discovery) -> Vec<String> {
        d.warnings.iter().map(ToString::to_string).collect()
    }

    fn find(entries: &[&str], pd: &Path) -> Discovery {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        discover(&entries, pd, &[], PathPolicy::Refuse)
    }

    #[test]
    fn directory_entry_gives_root_files_and_one_level_of_subfolders() {
        let t = tree(&[
            "python.d/mytest/a.py",
            "python.d/mytest/__init__.py",
            "python.d/mytest/sub/b.py",
            "python.d/mytest/sub/__init__.py",
            "python.d/mytest/sub/deeper/c.py",
            "python.d/mytest/notes.txt",
        ]);
        let pd = t.path().join("python.d");
        let d = find(&["mytest"], &pd);
        assert_eq!(names(&d), vec!["a", "sub.b"]);
        let real = pd.join("mytest").canonicalize().unwrap();
        assert_eq!(d.sys_path, vec![real.clone()]);
        assert_eq!(
            d.resolved,
            vec![Resolved {
                entry: "mytest".into(),
                path: real
            }]
        );
        assert!(d.errors.is_empty(), "{:?}", errors(&d));
    }

    #[test]
    fn file_entry_is_its_stem_with_its_folder_on_sys_path() {
        let t = tree(&["python.d/x/one.py"]);
        let pd = t.path().join("python.d");
        let d = find(&["x/one.py"], &pd);
        assert_eq!(names(&d), vec!["one"]);
        assert_eq!(d.sys_path, vec![pd.join("x").canonicalize().unwrap()]);
    }

    #[test]
    fn a_relative_entry_with_dotdot_is_resolved_and_used() {
        let t = trusted_tree(&["python.d/a/x.py", "outside/y.py"]);
        let d = find(&["../outside", "a"], &t.path().join("python.d"));
        assert_eq!(names(&d), vec!["y", "x"]);
        let real = t.path().join("outside").canonicalize().unwrap();
        assert_eq!(d.resolved[0].path, real);
        assert_eq!(d.sys_path[0], real);
        assert!(d.errors.is_empty(), "{:?}", errors(&d));
    }

    #[test]
    fn a_symlinked_folder_and_a_symlinked_file_are_resolved_and_used() {
        let t = trusted_tree(&["python.d/ok/x.py", "outside/y.py", "lib/z_target.py"]);
        let pd = t.path().join("python.d");
        std::os::unix::fs::symlink(t.path().join("outside"), pd.join("link")).unwrap();
        std::os::unix::fs::symlink(t.path().join("lib/z_target.py"), pd.join("ok/z.py")).unwrap();
        let d = find(&["link", "ok"], &pd);
        assert!(d.errors.is_empty(), "{:?}", errors(&d));
        assert_eq!(names(&d), vec!["y", "x", "z"]);
        assert_eq!(
            d.resolved[0].path,
            t.path().join("outside").canonicalize().unwrap()
        );
        let abs = t.path().join("outside").to_string_lossy().into_owned();
        let d = find(&[&abs], &pd);
        assert_eq!(names(&d), vec!["y"]);
    }

    #[test]
    fn git_repos_are_looked_up_first() {
        let t = tree(&[
            "gitrepos/myconf/python.d/mytest/from_git.py",
            "python.d/mytest/local.py",
        ]);
        let d = discover(
            &["mytest".into()],
            &t.path().join("python.d"),
            &[t.path().join("gitrepos/myconf")],
            PathPolicy::Refuse,
        );
        assert_eq!(names(&d), vec!["from_git"]);
    }

    #[test]
    fn duplicate_module_names_keep_the_first_and_warn() {
        let t = tree(&["python.d/a/m.py", "python.d/b/m.py"]);
        let d = find(&["a", "b"], &t.path().join("python.d"));
        assert_eq!(names(&d), vec!["m"]);
        assert!(
            warnings(&d)[0].contains("already comes from"),
            "{:?}",
            warnings(&d)
        );
    }

    #[test]
    fn unimportable_file_names_are_reported() {
        let t = tree(&["python.d/a/my-script.py", "python.d/a/good.py"]);
        let d = find(&["a"], &t.path().join("python.d"));
        assert_eq!(names(&d), vec!["good"]);
        assert!(
            warnings(&d)[0].contains("\"my-script\" is not a valid module name"),
            "{:?}",
            warnings(&d)
        );
    }

    #[test]
    fn nothing_found_is_an_error_and_missing_entries_are_named() {
        let t = tree(&["python.d/empty/readme.txt"]);
        let d = find(&["empty", "nope"], &t.path().join("python.d"));
        let e = errors(&d);
        assert!(e.iter().any(|e| e.contains("\"nope\" not found")), "{e:?}");
        assert!(
            e.iter().any(|e| e.starts_with("no Python module found")),
            "{e:?}"
        );
    }

    #[test]
    fn a_world_writable_script_is_refused_with_the_fix_and_the_others_listed() {
        let t = tree(&["python.d/s/good.py", "python.d/s/open.py"]);
        let open = t.path().join("python.d/s/open.py");
        chmod(&open, 0o666);
        let fix = crate::trust::testing::go_w(&open);
        let d = find(&["s"], &t.path().join("python.d"));
        assert_eq!(names(&d), vec!["good"]);
        let e = errors(&d);
        let real = open.canonicalize().unwrap();
        assert!(
            e[0].starts_with(&format!("{}: not imported: ", real.display())),
            "{e:?}"
        );
        assert!(
            e[0].contains("mode 0666") && e[0].contains(&format!("{fix} {}", real.display())),
            "{e:?}"
        );
    }

    #[test]
    fn a_group_writable_subfolder_or_python_d_refuses_what_is_below() {
        let t = tree(&["python.d/s/good.py", "python.d/s/grp/in_group.py"]);
        let pd = t.path().join("python.d");
        chmod(&pd.join("s/grp"), 0o775);
        if !crate::trust::testing::share_group(&pd.join("s/grp")) {
            return; // the group is the owner's private group: harmless
        }
        let d = find(&["s"], &pd);
        assert_eq!(names(&d), vec!["good"]);
        assert!(
            errors(&d)[0].contains(&format!(
                "folder {} is writable by group",
                pd.join("s/grp").canonicalize().unwrap().display()
            )),
            "{:?}",
            errors(&d)
        );
        // python.d itself: whoever can write it can replace the entry.
        chmod(&pd.join("s/grp"), 0o755);
        chmod(&pd, 0o777);
        let d = find(&["s"], &pd);
        assert!(d.modules.is_empty(), "{:?}", names(&d));
        assert!(
            errors(&d)[0].contains("writable by others"),
            "{:?}",
            errors(&d)
        );
    }

    #[test]
    fn a_symlinked_entry_checks_its_real_folder_too() {
        let t = trusted_tree(&["python.d/keep.txt", "outside/y.py"]);
        let pd = t.path().join("python.d");
        std::os::unix::fs::symlink(t.path().join("outside"), pd.join("link")).unwrap();
        chmod(&t.path().join("outside"), 0o757);
        let d = find(&["link"], &pd);
        assert!(d.modules.is_empty());
        assert!(
            errors(&d)[0].contains(&format!(
                "folder {} is writable by others",
                t.path().join("outside").canonicalize().unwrap().display()
            )),
            "{:?}",
            errors(&d)
        );
    }

    /// [`tree`] under a trusted temp dir, for trees a symlink or `..` leads
    /// out of (those are checked up to `/`).
    fn trusted_tree(files: &[&str]) -> tempfile::TempDir {
        let d = crate::trust::testing::trusted_tempdir();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "").unwrap();
            chmod(&p, 0o644);
            for a in p
                .ancestors()
                .skip(1)
                .take_while(|a| a.starts_with(d.path()))
            {
                chmod(a, 0o755);
            }
        }
        d
    }

    /// The one error of `d`, which must name `folder` as writable by others.
    fn refused_for(d: &Discovery, folder: &Path) {
        let e = errors(d);
        let folder = folder.canonicalize().unwrap();
        assert!(
            e.iter().any(|e| e.contains("not imported")
                && e.contains(&format!(
                    "folder {} is writable by others",
                    folder.display()
                ))),
            "{e:?}"
        );
    }

    #[test]
    fn a_symlinked_entry_is_refused_when_a_folder_above_its_target_is_open() {
        let t = trusted_tree(&["python.d/keep.txt", "x/outside/team/y.py"]);
        let pd = t.path().join("python.d");
        std::os::unix::fs::symlink(t.path().join("x/outside/team"), pd.join("team")).unwrap();
        assert_eq!(names(&find(&["team"], &pd)), vec!["y"]);
        // Whoever can write x/outside can swap team/ for a folder of theirs.
        chmod(&t.path().join("x/outside"), 0o757);
        let d = find(&["team"], &pd);
        assert!(d.modules.is_empty(), "{:?}", names(&d));
        refused_for(&d, &t.path().join("x/outside"));
    }

    #[test]
    fn a_symlink_to_a_folder_in_a_sticky_world_writable_folder_is_refused() {
        // Like /tmp: the sticky bit keeps others from renaming team/, but
        // anyone may create the name before it exists or once it is removed,
        // and the link then leads to theirs.
        let t = trusted_tree(&["python.d/keep.txt", "shared/team/y.py"]);
        let pd = t.path().join("python.d");
        std::os::unix::fs::symlink(t.path().join("shared/team"), pd.join("team")).unwrap();
        chmod(&t.path().join("shared"), 0o1777);
        let d = find(&["team"], &pd);
        assert!(d.modules.is_empty(), "{:?}", names(&d));
        let e = errors(&d);
        let shared = t.path().join("shared").canonicalize().unwrap();
        assert!(
            e[0].contains(&format!("folder {} is writable by ", shared.display()))
                && e[0].contains("mode 1777 drwxrwxrwt"),
            "{e:?}"
        );
    }

    #[test]
    fn a_symlinked_file_is_refused_when_a_folder_above_its_target_is_open() {
        let t = trusted_tree(&["python.d/s/good.py", "lib/deep/z_target.py"]);
        let pd = t.path().join("python.d");
        std::os::unix::fs::symlink(t.path().join("lib/deep/z_target.py"), pd.join("s/z.py"))
            .unwrap();
        assert_eq!(names(&find(&["s"], &pd)), vec!["good", "z"]);
        chmod(&t.path().join("lib"), 0o757);
        let d = find(&["s"], &pd);
        assert_eq!(names(&d), vec!["good"]);
        refused_for(&d, &t.path().join("lib"));
    }

    #[test]
    fn a_dotdot_entry_is_refused_when_the_folder_it_leads_to_is_open() {
        let t = trusted_tree(&["python.d/keep.txt", "sib/y.py"]);
        let pd = t.path().join("python.d");
        assert_eq!(names(&find(&["../sib"], &pd)), vec!["y"]);
        // `..` leads to the DataKit dir: whoever can write it can swap sib/.
        chmod(t.path(), 0o757);
        let d = find(&["../sib"], &pd);
        assert!(d.modules.is_empty(), "{:?}", names(&d));
        refused_for(&d, t.path());
    }

    #[test]
    fn the_warn_policy_lists_unsafe_scripts_with_a_warning() {
        let t = tree(&["python.d/s/open.py"]);
        chmod(&t.path().join("python.d/s/open.py"), 0o666);
        let d = discover(
            &["s".into()],
            &t.path().join("python.d"),
            &[],
            PathPolicy::for_block(true),
        );
        assert_eq!(names(&d), vec!["open"]);
        assert!(d.errors.is_empty(), "{:?}", errors(&d));
        let w = warnings(&d);
        assert!(
            w[0].contains("imported although") && w[0].contains("(insecure_paths = true)"),
            "{w:?}"
        );
    }
}
