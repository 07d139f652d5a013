//! Finding an input's scripts from its `dirs` (`docs/compat.md#discovery`).
//!
//! - An entry is resolved against `python.d/`; with git repos enabled it is
//!   looked up first as `gitrepos/<repo>/python.d/<entry>` for each enabled
//!   repo, in order. Absolute entries are used as they are.
//! - A directory entry gives every `.py` file at most two levels down except
//!   `__init__.py`: `file.py` in the entry is module `file`, `sub/file.py` is
//!   module `sub.file`. The entry goes on `sys.path`.
//! - A file entry is imported by its stem, and its folder goes on `sys.path`
//!   (the original forgot that).
//! - Module names are de-duplicated (first wins, the other is reported).
//! - We differ: a relative entry may not leave `python.d` (or its git repo)
//!   through `..` or a symlink; a file whose stem is not a Python identifier
//!   cannot be imported by name and is reported, not silently skipped; an
//!   entry that does not exist is reported.

use std::path::{Component, Path, PathBuf};

/// One module to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// `file` or `subfolder.file`.
    pub name: String,
    pub path: PathBuf,
    /// The `dirs` entry it came from.
    pub entry: String,
}

/// What discovery found for one input.
#[derive(Debug, Default, PartialEq)]
pub struct Discovery {
    pub modules: Vec<ModuleSpec>,
    pub sys_path: Vec<PathBuf>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f == '_' || f.is_alphabetic())
        && c.all(|ch| ch == '_' || ch.is_alphanumeric())
}

fn has_dotdot(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// Resolve one entry to an existing path, checking it stays inside its root.
fn resolve(entry: &str, python_d: &Path, gitrepos: &[PathBuf]) -> Result<PathBuf, String> {
    let e = Path::new(entry);
    if e.is_absolute() {
        return if e.exists() {
            Ok(e.to_owned())
        } else {
            Err(format!("dirs entry {entry:?} does not exist"))
        };
    }
    if has_dotdot(e) {
        return Err(format!(
            "dirs entry {entry:?} contains \"..\"; relative entries must stay inside python.d (use an absolute path to go elsewhere)"
        ));
    }
    let roots: Vec<PathBuf> = gitrepos
        .iter()
        .map(|r| r.join("python.d"))
        .chain(std::iter::once(python_d.to_owned()))
        .collect();
    for root in roots {
        let p = root.join(e);
        if !p.exists() {
            continue;
        }
        let (Ok(real), Ok(real_root)) = (p.canonicalize(), root.canonicalize()) else {
            continue;
        };
        if !real.starts_with(&real_root) {
            return Err(format!(
                "dirs entry {entry:?} resolves to {} through a symlink, outside {}; use an absolute path if that is intended",
                real.display(),
                real_root.display()
            ));
        }
        return Ok(p);
    }
    Err(format!(
        "dirs entry {entry:?} not found in {}{}",
        python_d.display(),
        if gitrepos.is_empty() {
            ""
        } else {
            " or the enabled git repos"
        }
    ))
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

/// Find the modules of an input's `dirs`.
pub fn discover(entries: &[String], python_d: &Path, gitrepos: &[PathBuf]) -> Discovery {
    let mut d = Discovery::default();
    for entry in entries {
        let path = match resolve(entry, python_d, gitrepos) {
            Ok(p) => p,
            Err(e) => {
                d.errors.push(e);
                continue;
            }
        };
        let mut found = Vec::new();
        if path.is_dir() {
            push_path(&mut d.sys_path, &path);
            for f in py_files(&path) {
                found.push((stem(&f), f));
            }
            for sub in subdirs(&path) {
                let sub_name = sub.file_name().unwrap().to_string_lossy().into_owned();
                if !is_identifier(&sub_name) {
                    let n = py_files(&sub).len();
                    if n > 0 {
                        d.warnings.push(format!(
                            "{}: folder name is not a Python identifier; its {n} .py file(s) cannot be imported as {sub_name}.<file> and are skipped",
                            sub.display()
                        ));
                    }
                    continue;
                }
                for f in py_files(&sub) {
                    found.push((format!("{sub_name}.{}", stem(&f)), f));
                }
            }
        } else if path.extension().is_some_and(|x| x == "py") {
            push_path(&mut d.sys_path, path.parent().unwrap_or(Path::new(".")));
            found.push((stem(&path), path.clone()));
        } else {
            d.errors.push(format!(
                "dirs entry {entry:?} is neither a folder nor a .py file"
            ));
            continue;
        }
        for (name, file) in found {
            if !name.split('.').all(is_identifier) {
                d.warnings.push(format!(
                    "{}: {name:?} is not a valid module name (rename the file to a Python identifier); skipped",
                    file.display()
                ));
                continue;
            }
            if let Some(first) = d.modules.iter().find(|m| m.name == name) {
                d.warnings.push(format!(
                    "{}: module {name:?} already comes from {}; skipped",
                    file.display(),
                    first.path.display()
                ));
                continue;
            }
            d.modules.push(ModuleSpec {
                name,
                path: file,
                entry: entry.clone(),
            });
        }
    }
    if d.modules.is_empty() {
        d.errors.push(format!(
            "no Python module found in dirs {entries:?} (looked in {})",
            python_d.display()
        ));
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

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        d
    }

    fn names(d: &Discovery) -> Vec<&str> {
        d.modules.iter().map(|m| m.name.as_str()).collect()
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
        let d = discover(&["mytest".into()], &pd, &[]);
        assert_eq!(names(&d), vec!["a", "sub.b"]);
        assert_eq!(d.sys_path, vec![pd.join("mytest")]);
        assert!(d.errors.is_empty());
    }

    #[test]
    fn file_entry_is_its_stem_with_its_folder_on_sys_path() {
        let t = tree(&["python.d/x/one.py"]);
        let pd = t.path().join("python.d");
        let d = discover(&["x/one.py".into()], &pd, &[]);
        assert_eq!(names(&d), vec!["one"]);
        assert_eq!(d.sys_path, vec![pd.join("x")]);
    }

    #[test]
    fn dotdot_entries_are_refused() {
        let t = tree(&["python.d/a/x.py", "outside/y.py"]);
        let d = discover(
            &["../outside".into(), "a".into()],
            &t.path().join("python.d"),
            &[],
        );
        assert_eq!(names(&d), vec!["x"]);
        assert!(d.errors[0].contains("contains \"..\""), "{:?}", d.errors);
    }

    #[test]
    fn symlink_escaping_python_d_is_refused_but_absolute_paths_are_trusted() {
        let t = tree(&["python.d/ok/x.py", "outside/y.py"]);
        std::os::unix::fs::symlink(t.path().join("outside"), t.path().join("python.d/link"))
            .unwrap();
        let pd = t.path().join("python.d");
        let d = discover(&["link".into()], &pd, &[]);
        assert!(d.errors[0].contains("through a symlink"), "{:?}", d.errors);
        let abs = t.path().join("outside").to_string_lossy().into_owned();
        let d = discover(&[abs], &pd, &[]);
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
        );
        assert_eq!(names(&d), vec!["from_git"]);
    }

    #[test]
    fn duplicate_module_names_keep_the_first_and_warn() {
        let t = tree(&["python.d/a/m.py", "python.d/b/m.py"]);
        let d = discover(&["a".into(), "b".into()], &t.path().join("python.d"), &[]);
        assert_eq!(names(&d), vec!["m"]);
        assert!(
            d.warnings[0].contains("already comes from"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn unimportable_file_names_are_reported() {
        let t = tree(&["python.d/a/my-script.py", "python.d/a/good.py"]);
        let d = discover(&["a".into()], &t.path().join("python.d"), &[]);
        assert_eq!(names(&d), vec!["good"]);
        assert!(
            d.warnings[0].contains("\"my-script\" is not a valid module name"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn nothing_found_is_an_error_and_missing_entries_are_named() {
        let t = tree(&["python.d/empty/readme.txt"]);
        let d = discover(
            &["empty".into(), "nope".into()],
            &t.path().join("python.d"),
            &[],
        );
        assert!(
            d.errors.iter().any(|e| e.contains("\"nope\" not found")),
            "{:?}",
            d.errors
        );
        assert!(
            d.errors
                .iter()
                .any(|e| e.starts_with("no Python module found")),
            "{:?}",
            d.errors
        );
    }
}
