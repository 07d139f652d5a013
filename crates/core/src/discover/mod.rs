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

use std::collections::HashSet;
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
    // Paths that passed the trust check in this discovery: the folders
    // above a root's scripts are the same for every one of them (and a
    // group-writable one may walk every account to be judged).
    let mut trusted: HashSet<PathBuf> = HashSet::new();
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
            let mut problems = Vec::new();
            for g in guarded {
                if trusted.contains(&g) {
                    continue;
                }
                match trust::check(&g) {
                    Ok(()) => {
                        trusted.insert(g);
                    }
                    Err(e) => problems.push(e),
                }
            }
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
mod tests;
