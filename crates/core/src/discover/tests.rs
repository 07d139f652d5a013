//! Discovery on real folders: what is listed, refused and reported.

use super::*;
use std::os::unix::fs::PermissionsExt;

/// Files under a new temp dir, folders 0755 and files 0644 whatever the
/// umask: the state the permission check accepts.
fn tree(files: &[&str]) -> tempfile::TempDir {
    tree_in(tempfile::tempdir().unwrap(), files)
}

/// `files` written into `d`, as [`tree`] says.
fn tree_in(d: tempfile::TempDir, files: &[&str]) -> tempfile::TempDir {
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
        eprintln!(
            "skipped: the folder's group is its owner's private group (its write bit is \
             harmless) and only root can give it another; the e2e tests run as root"
        );
        return;
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
    tree_in(crate::trust::testing::trusted_tempdir(), files)
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
    std::os::unix::fs::symlink(t.path().join("lib/deep/z_target.py"), pd.join("s/z.py")).unwrap();
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
