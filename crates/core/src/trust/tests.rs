//! The check on real files and folders, with the accounts injected where the
//! group write bit is at stake.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn owner_only_writable_paths_pass() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("a.py");
    std::fs::write(&f, "").unwrap();
    chmod(&f, 0o644);
    chmod(t.path(), 0o755);
    check(&f).unwrap();
    check(t.path()).unwrap();
}

/// The owner of the test's files (whoever runs the tests) with their group
/// as primary group, `shared` with another account or not: the group write
/// bit's meaning, whatever the machine's accounts.
struct Owner {
    uid: u32,
    gid: u32,
    shared: bool,
}

impl Owner {
    fn of(p: &Path, shared: bool) -> Owner {
        let m = std::fs::metadata(p).unwrap();
        Owner {
            uid: m.uid(),
            gid: m.gid(),
            shared,
        }
    }
}

impl Accounts for Owner {
    fn user(&self, uid: u32) -> Option<(String, u32)> {
        (uid == self.uid).then(|| ("owner".to_owned(), self.gid))
    }
    fn members(&self, gid: u32) -> Option<Vec<String>> {
        (gid == self.gid).then(|| {
            if self.shared {
                vec!["owner".to_owned(), "other".to_owned()]
            } else {
                Vec::new()
            }
        })
    }
    fn everyone(&self) -> Option<Vec<(String, u32)>> {
        Some(vec![("owner".to_owned(), self.gid)])
    }
}

/// A file `a.py` with `mode` in a new temp dir.
fn file_with(mode: u32) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("a.py");
    std::fs::write(&f, "").unwrap();
    chmod(&f, mode);
    (t, f)
}

#[test]
fn a_world_writable_file_names_its_mode_and_the_chmod() {
    let (_t, f) = file_with(0o666);
    let e = check_with(&Owner::of(&f, true), &f)
        .unwrap_err()
        .to_string();
    let me = user_name(unsafe { libc::geteuid() });
    assert!(
        e.starts_with(&format!(
            "file {} is writable by group {} and writable by others (owner {me}, ",
            f.display(),
            group_name(std::fs::metadata(&f).unwrap().gid())
        )),
        "{e}"
    );
    assert!(e.contains("mode 0666 -rw-rw-rw-"), "{e}");
    assert!(
        e.ends_with(&format!("fix: chmod go-w {}", f.display())),
        "{e}"
    );
    // With the owner's private group, only the others' bit counts.
    let e = check_with(&Owner::of(&f, false), &f)
        .unwrap_err()
        .to_string();
    assert!(e.contains(" is writable by others (owner "), "{e}");
    assert!(
        e.ends_with(&format!("fix: chmod o-w {}", f.display())),
        "{e}"
    );
}

#[test]
fn only_the_bits_that_are_set_are_removed() {
    let (_t, f) = file_with(0o646);
    let e = check_with(&Owner::of(&f, true), &f)
        .unwrap_err()
        .to_string();
    assert!(e.contains(" is writable by others (owner "), "{e}");
    assert!(
        e.ends_with(&format!("fix: chmod o-w {}", f.display())),
        "{e}"
    );
    chmod(&f, 0o664);
    let e = check_with(&Owner::of(&f, true), &f)
        .unwrap_err()
        .to_string();
    assert!(e.contains(" is writable by group "), "{e}");
    assert!(
        e.ends_with(&format!("fix: chmod g-w {}", f.display())),
        "{e}"
    );
}

#[test]
fn group_write_is_harmless_only_for_the_owners_private_group() {
    let (_t, f) = file_with(0o664);
    check_with(&Owner::of(&f, false), &f).expect("the owner's private group");
    let e = check_with(&Owner::of(&f, true), &f)
        .unwrap_err()
        .to_string();
    assert!(e.contains("writable by group"), "{e}");
}

#[test]
fn another_users_file_names_its_owner_and_the_chown() {
    // The message alone: no chown needed.
    let u = Untrusted {
        path: "/x/a.py".into(),
        is_dir: false,
        uid: 4242,
        gid: 4242,
        mode: 0o644,
        euid: 0,
        group_private: false,
    };
    assert_eq!(
        u.to_string(),
        format!(
            "file /x/a.py is owned by {}, not by root (the user pythond runs as) (owner {}, \
             group {}, mode 0644 -rw-r--r--); fix: chown root /x/a.py",
            user_name(4242),
            user_name(4242),
            group_name(4242)
        )
    );
    let u = Untrusted { euid: 1000, ..u };
    assert!(
        u.to_string().contains(&format!(
            "not by root or {} (the user pythond runs as)",
            user_name(1000)
        )),
        "{u}"
    );
}

#[test]
fn a_file_of_another_user_is_refused() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chown to another user needs root (the e2e tests run as root)");
        return;
    }
    let (_t, f) = file_with(0o644);
    std::os::unix::fs::chown(&f, Some(65534), None).unwrap();
    let e = check(&f).unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            " is owned by {}, not by root (the user pythond runs as) (owner ",
            user_name(65534)
        )),
        "{e}"
    );
    assert!(
        e.ends_with(&format!("fix: chown root {}", f.display())),
        "{e}"
    );
}

#[test]
fn a_group_several_accounts_share_counts_by_nss() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: chgrp to a group of others needs root (the e2e tests run as root)");
        return;
    }
    // nogroup: not root's primary group, and nobody's.
    let (_t, f) = file_with(0o664);
    std::os::unix::fs::chown(&f, Some(0), Some(65534)).unwrap();
    assert!(!private_group(0, 65534));
    let e = check(&f).unwrap_err().to_string();
    assert!(e.contains("writable by group"), "{e}");
}

#[test]
fn a_sticky_world_writable_folder_is_not_enough() {
    let t = tempfile::tempdir().unwrap();
    chmod(t.path(), 0o1777);
    let e = check_with(&Owner::of(t.path(), true), t.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("mode 1777 drwxrwxrwt"), "{e}");
    assert!(e.contains("writable by group") && e.contains("and writable by others"));
    assert!(
        e.ends_with(&format!("chmod go-w {}", t.path().display())),
        "{e}"
    );
}

/// A tree under a trusted temp dir (see [`testing::trusted_tempdir`]):
/// `dirs` folders and `files` (empty) below it.
fn trusted_tree(dirs: &[&str], files: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = super::testing::trusted_tempdir();
    let base = t.path().canonicalize().unwrap();
    for d in dirs {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    for f in files {
        std::fs::write(base.join(f), "").unwrap();
    }
    (t, base)
}

fn set(v: Vec<PathBuf>) -> std::collections::BTreeSet<PathBuf> {
    let n = v.len();
    let s: std::collections::BTreeSet<PathBuf> = v.into_iter().collect();
    assert_eq!(s.len(), n, "no path twice");
    s
}

fn up_to_root(p: &Path) -> Vec<PathBuf> {
    p.ancestors().map(Path::to_owned).collect()
}

#[test]
fn without_symlinks_guarded_paths_stop_at_the_anchor() {
    let (_t, b) = trusted_tree(&["python.d/s/sub"], &["python.d/s/sub/x.py"]);
    let pd = b.join("python.d");
    assert_eq!(
        set(guarded_paths(&pd.join("s/sub/x.py"), &pd)),
        set(vec![
            pd.clone(),
            pd.join("s"),
            pd.join("s/sub"),
            pd.join("s/sub/x.py")
        ])
    );
}

#[test]
fn a_symlinked_folder_guards_its_target_and_every_folder_above_it() {
    let (_t, b) = trusted_tree(&["python.d", "x/outside/team"], &["x/outside/team/a.py"]);
    let pd = b.join("python.d");
    std::os::unix::fs::symlink(b.join("x/outside/team"), pd.join("team")).unwrap();
    let mut want = vec![pd.clone()];
    want.extend(up_to_root(&b.join("x/outside/team/a.py")));
    assert_eq!(set(guarded_paths(&pd.join("team/a.py"), &pd)), set(want));
    // Whoever can write x/outside could swap team/: refused by `check`.
    assert!(guarded_paths(&pd.join("team/a.py"), &pd).contains(&b.join("x/outside")));
    assert!(guarded_paths(&pd.join("team/a.py"), &pd).contains(&PathBuf::from("/")));
}

#[test]
fn a_symlinked_file_guards_its_target_and_every_folder_above_it() {
    let (_t, b) = trusted_tree(&["python.d/s", "lib/deep"], &["lib/deep/z.py"]);
    let pd = b.join("python.d");
    std::os::unix::fs::symlink(b.join("lib/deep/z.py"), pd.join("s/z.py")).unwrap();
    let mut want = vec![pd.clone(), pd.join("s")];
    want.extend(up_to_root(&b.join("lib/deep/z.py")));
    assert_eq!(set(guarded_paths(&pd.join("s/z.py"), &pd)), set(want));
}

#[test]
fn a_symlink_that_stays_below_the_anchor_is_guarded_up_to_the_anchor() {
    let (_t, b) = trusted_tree(&["python.d/s", "python.d/lib"], &["python.d/lib/real.py"]);
    let pd = b.join("python.d");
    std::os::unix::fs::symlink(pd.join("lib/real.py"), pd.join("s/alias.py")).unwrap();
    assert_eq!(
        set(guarded_paths(&pd.join("s/alias.py"), &pd)),
        set(vec![
            pd.clone(),
            pd.join("s"),
            pd.join("lib"),
            pd.join("lib/real.py")
        ])
    );
}

#[test]
fn a_dotdot_out_of_the_anchor_is_guarded_up_to_the_root() {
    let (_t, b) = trusted_tree(&["python.d", "sib"], &["sib/a.py"]);
    let pd = b.join("python.d");
    let mut want = vec![pd.clone()];
    want.extend(up_to_root(&b.join("sib/a.py")));
    assert_eq!(set(guarded_paths(&pd.join("../sib/a.py"), &pd)), set(want));
}

#[test]
fn a_symlinked_anchor_is_guarded_up_to_the_root_but_not_a_folder_above_it() {
    let (_t, b) = trusted_tree(&["real/scripts", "elsewhere"], &["real/scripts/a.py"]);
    std::os::unix::fs::symlink(b.join("real/scripts"), b.join("elsewhere/scripts")).unwrap();
    let linked = b.join("elsewhere/scripts");
    assert_eq!(
        set(guarded_paths(&linked.join("a.py"), &linked)),
        set(up_to_root(&b.join("real/scripts/a.py")))
    );
    // A symlink above the anchor (the administrator's): not followed up.
    std::os::unix::fs::symlink(b.join("real"), b.join("above")).unwrap();
    let anchor = b.join("above/scripts");
    assert_eq!(
        set(guarded_paths(&anchor.join("a.py"), &anchor)),
        set(vec![b.join("real/scripts"), b.join("real/scripts/a.py")])
    );
}

#[test]
fn a_path_that_does_not_exist_is_kept_for_check_to_report() {
    let (_t, b) = trusted_tree(&["python.d"], &[]);
    let pd = b.join("python.d");
    let got = guarded_paths(&pd.join("gone.py"), &pd);
    assert_eq!(got, vec![pd.clone(), pd.join("gone.py")]);
    let e = check_all(&got);
    assert_eq!(e.len(), 1);
    assert!(e[0]
        .to_string()
        .starts_with(&format!("cannot check {}: ", pd.join("gone.py").display())));
}

#[test]
fn commands_quote_odd_paths() {
    assert_eq!(shell_quote("/a b/it's"), r"'/a b/it'\''s'");
    assert_eq!(shell_quote("/usr/local/datakit"), "/usr/local/datakit");
}
