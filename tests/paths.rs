//! Refuse what anyone else could have changed (world- or
//! group-writable scripts, folders and config files, `datakit.conf`,
//! scripts owned by another user); symlinks and `..` are in
//! `tests/symlinks.rs`. Real folders, real modes and owners (the tests run as
//! root, as DataKit does), one copy of `tests/data/paths/reporter.py` per
//! script.
//!
//! Wording of a refusal: the line naming the script (or config) file gives
//! the offending path as `file|folder PATH is <why> (owner O, group G, mode
//! 0666 -rw-rw-rw-); fix: chmod go-w PATH` (or `chown USER PATH`). A warning (with
//! `insecure_paths = true`) is a `WARN` line naming the file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `reporter.py` copied to `dst`; it reports the measurement `dst`'s stem.
pub(crate) fn reporter(dst: &Path) {
    copy_data("paths/reporter.py", dst);
}

pub(crate) fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Folders 0755 and files 0644 below `root` (whatever the umask): the
/// known-good state the tests then break on purpose.
pub(crate) fn tidy(root: &Path) {
    if root.is_dir() {
        chmod(root, 0o755);
        for e in std::fs::read_dir(root).unwrap().flatten() {
            if !e.file_type().unwrap().is_symlink() {
                tidy(&e.path());
            }
        }
    } else {
        chmod(root, 0o644);
    }
}

pub(crate) fn tidy_install(dk: &DataKitDir) {
    for sub in ["python.d", "conf.d"] {
        let p = dk.path().join(sub);
        std::fs::create_dir_all(&p).unwrap();
        tidy(&p);
    }
}

pub(crate) fn nobody() -> (u32, u32) {
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(!pw.is_null(), "a user named nobody");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

pub(crate) fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

pub(crate) fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests change owners: run them as root (as DataKit runs)"
    );
}

pub(crate) fn count(dk: &FakeDataKit, measurement: &str) -> usize {
    dk.all_lines()
        .iter()
        .filter(|l| parse_line(l).measurement == measurement)
        .count()
}

/// Run the daemon until `trusted` reported 4 times; returns its stderr.
pub(crate) fn run_until_reported(dir: &DataKitDir, dk: &FakeDataKit, trusted: &str) -> String {
    let d = Daemon::start(dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| count(dk, trusted) >= 4);
    let (_, err) = d.stop();
    assert!(ran, "{trusted} reports:\n{err}");
    err
}

/// The log lines that mention `needle`, joined.
pub(crate) fn lines_about(log: &str, needle: &str) -> String {
    log.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `text` says that `kind` (`file`, `folder`) `path` is writable by
/// others, with `owner_mode` (`(owner root, group root, mode 0666
/// -rw-rw-rw-)`), and gives the chmod for it: `go-w`, or `o-w` where the
/// group is its owner's private group (its write bit then harmless).
pub(crate) fn names_owner_mode_and_fix(
    text: &str,
    path: &Path,
    kind: &str,
    owner_mode: &str,
) -> bool {
    let p = canonical(path);
    let p = p.display();
    [
        format!("{kind} {p} is writable by others {owner_mode}; fix: chmod o-w {p}"),
        format!("{kind} {p} is writable by group root and writable by others {owner_mode}; fix: chmod go-w {p}"),
    ]
    .iter()
    .any(|m| text.contains(m))
}

pub(crate) fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

// ----------------------------------------------------- who may change a script

/// `python.d/s/` with `trusted.py` (0644) and, if asked, the three unsafe
/// cases: `open_to_all.py` (0666), `grp/in_group.py` in a 0775 folder,
/// `foreign.py` owned by nobody.
fn unsafe_scripts(dk: &FakeDataKit, extra_conf: &str) -> DataKitDir {
    require_root();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[],
        &block("mixed", &["s"], extra_conf),
    );
    let s = dir.path().join("python.d/s");
    reporter(&s.join("trusted.py"));
    reporter(&s.join("open_to_all.py"));
    reporter(&s.join("grp/in_group.py"));
    reporter(&s.join("foreign.py"));
    tidy_install(&dir);
    chmod(&s.join("open_to_all.py"), 0o666);
    chmod(&s.join("grp"), 0o775);
    // A group others share (not root's private group, whose write bit is
    // harmless): nobody's primary group.
    let (uid, gid) = nobody();
    chown(&s.join("grp"), 0, gid);
    chown(&s.join("foreign.py"), uid, gid);
    dir
}

#[test]
fn a_world_writable_script_is_refused_and_the_others_run() {
    let dk = FakeDataKit::start();
    let dir = unsafe_scripts(&dk, "");
    let file = dir.path().join("python.d/s/open_to_all.py");
    let err = run_until_reported(&dir, &dk, "trusted");
    assert_eq!(
        count(&dk, "open_to_all"),
        0,
        "the world-writable script did not run"
    );
    let about = lines_about(&err, "open_to_all.py");
    assert!(
        names_owner_mode_and_fix(
            &about,
            &file,
            "file",
            "(owner root, group root, mode 0666 -rw-rw-rw-)"
        ),
        "the refusal names the file, its owner and mode and the chmod that fixes it:\n{err}"
    );
}

#[test]
fn a_script_in_a_group_writable_folder_is_refused_and_the_others_run() {
    let dk = FakeDataKit::start();
    let dir = unsafe_scripts(&dk, "");
    let folder = dir.path().join("python.d/s/grp");
    let err = run_until_reported(&dir, &dk, "trusted");
    assert_eq!(
        count(&dk, "in_group"),
        0,
        "the script below a group-writable folder did not run"
    );
    let about = lines_about(&err, "in_group.py");
    let group = pythond_core::trust::group_name(nobody().1);
    let folder = canonical(&folder);
    assert!(
        about.contains(&format!(
            "folder {} is writable by group {group} (owner root, group {group}, mode 0775 drwxrwxr-x); fix: chmod g-w {}",
            folder.display(),
            folder.display()
        )),
        "the refusal names the file, the folder, its owner and mode and the chmod that fixes it:\n{err}"
    );
}

#[test]
fn a_script_owned_by_another_user_is_refused_and_the_others_run() {
    let dk = FakeDataKit::start();
    let dir = unsafe_scripts(&dk, "");
    let file = dir.path().join("python.d/s/foreign.py");
    let (uid, _) = nobody();
    let err = run_until_reported(&dir, &dk, "trusted");
    assert_eq!(
        count(&dk, "foreign"),
        0,
        "the script owned by nobody did not run"
    );
    let about = lines_about(&err, "foreign.py");
    let owner = pythond_core::trust::user_name(uid);
    let file = canonical(&file);
    assert!(
        about.contains(&format!(
            "file {} is owned by {owner}, not by root (the user pythond runs as) (owner {owner}, ",
            file.display()
        )) && about.contains(&format!("fix: chown root {}", file.display())),
        "the refusal names the file, its owner and the chown that fixes it:\n{err}"
    );
}

#[test]
fn insecure_paths_runs_unsafe_scripts_with_a_warning() {
    let dk = FakeDataKit::start();
    let dir = unsafe_scripts(&dk, "  insecure_paths = true");
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| {
        ["trusted", "open_to_all", "in_group", "foreign"]
            .iter()
            .all(|m| count(dk, m) >= 2)
    });
    let (_, err) = d.stop();
    assert!(ran, "with insecure_paths = true every script runs:\n{err}");
    for file in ["open_to_all.py", "in_group.py", "foreign.py"] {
        assert!(
            err.lines().any(|l| l.contains(file) && l.contains("WARN")),
            "a warning names {file}:\n{err}"
        );
    }
    assert!(
        !err.lines()
            .any(|l| l.contains("trusted.py") && l.contains("WARN")),
        "no warning for the safe script:\n{err}"
    );
    assert!(
        !err.contains("unknown key \"insecure_paths\""),
        "insecure_paths is a known key:\n{err}"
    );
}

#[test]
fn a_world_writable_config_file_is_refused_and_the_other_files_run() {
    require_root();
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(&dk.addr().to_string(), &[], &block("good", &["g"], ""));
    reporter(&dir.path().join("python.d/g/from_good_conf.py"));
    reporter(&dir.path().join("python.d/b/from_open_conf.py"));
    let bad = dir.path().join("conf.d/pythond/open.conf");
    std::fs::write(&bad, block("open", &["b"], "")).unwrap();
    tidy_install(&dir);
    chmod(&bad, 0o666);
    let err = run_until_reported(&dir, &dk, "from_good_conf");
    assert_eq!(
        count(&dk, "from_open_conf"),
        0,
        "the block of the world-writable config file did not run"
    );
    let about = lines_about(&err, "open.conf");
    assert!(
        names_owner_mode_and_fix(
            &about,
            &bad,
            "file",
            "(owner root, group root, mode 0666 -rw-rw-rw-)"
        ),
        "the refusal names the file, its owner and mode and the chmod that fixes it:\n{err}"
    );
}

// ------------------------------------- check, python.d, config files, datakit.conf

pub(crate) fn check(dir: &DataKitDir) -> std::process::Output {
    pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap()
}

#[test]
fn check_lists_refused_scripts_with_their_fix_and_fails() {
    let dk = FakeDataKit::start();
    let dir = unsafe_scripts(&dk, "");
    let out = check(&dir);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("trusted.Reporter"), "{text}");
    // `open_to_all.py` is root:root 0666: `go-w`, or only `o-w` where
    // root's group is its private group (its write bit is then harmless).
    for (file, fix) in [
        ("open_to_all.py", "-w "),
        ("in_group.py", "chmod g-w"),
        ("foreign.py", "chown root"),
    ] {
        assert!(
            text.lines().any(|l| l.contains("error: ")
                && l.contains(file)
                && l.contains("not imported")
                && l.contains(fix)),
            "{file} is listed as refused with `{fix}`:\n{text}"
        );
    }
}

#[test]
fn python_d_writable_by_others_refuses_every_script_below_it() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(&dk.addr().to_string(), &[], &block("all", &["s"], ""));
    reporter(&dir.path().join("python.d/s/below.py"));
    tidy_install(&dir);
    chmod(&dir.path().join("python.d"), 0o777);
    let out = check(&dir);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}");
    let folder = canonical(&dir.path().join("python.d"));
    assert!(
        text.contains(&format!(
            "folder {} is writable by group root and writable by others",
            folder.display()
        )) || text.contains(&format!(
            "folder {} is writable by others",
            folder.display()
        )),
        "{text}"
    );
    assert!(!text.contains("below.Reporter"), "{text}");
}

#[test]
fn insecure_paths_cannot_vouch_for_the_config_file_it_is_written_in() {
    require_root();
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(&dk.addr().to_string(), &[], &block("good", &["g"], ""));
    reporter(&dir.path().join("python.d/g/from_good_conf.py"));
    reporter(&dir.path().join("python.d/b/from_open_conf.py"));
    let bad = dir.path().join("conf.d/pythond/open.conf");
    std::fs::write(&bad, block("open", &["b"], "  insecure_paths = true")).unwrap();
    tidy_install(&dir);
    chmod(&bad, 0o666);
    let err = run_until_reported(&dir, &dk, "from_good_conf");
    assert_eq!(count(&dk, "from_open_conf"), 0, "{err}");
    assert!(lines_about(&err, "open.conf").contains("not read"), "{err}");
}

#[test]
fn test_command_runs_a_file_others_can_write_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("open_script.py");
    reporter(&f);
    chmod(&f, 0o666);
    let (out, vals) = test_json(&[&f]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(vals.len(), 1, "{vals:?}");
    assert!(
        err.lines().any(|l| l.starts_with("warning: ")
            && l.contains("open_script.py")
            && l.contains("pythond test runs the files it is given")
            && (l.contains("chmod go-w") || l.contains("chmod o-w"))),
        "{err}"
    );
}

// ------------------------------------------------------------ datakit.conf

/// A DataKit dir whose `conf.d/datakit.conf` names the address `listen` and
/// enables the git repo `myconf`, whose `python.d/s/from_git.py` would then
/// be used instead of `python.d/s/local_script.py`.
fn datakit_conf_with_git_repo(listen: &str) -> DataKitDir {
    require_root();
    let dir = DataKitDir::new(listen, &[], &block("b", &["s"], ""));
    std::fs::write(
        dir.path().join("conf.d/datakit.conf"),
        format!(
            "[http_api]\n  listen = \"{listen}\"\n[git_repos]\n  [[git_repos.repo]]\n    enable = true\n    url = \"http://example.com/conf/myconf.git\"\n"
        ),
    )
    .unwrap();
    reporter(&dir.path().join("python.d/s/local_script.py"));
    reporter(&dir.path().join("gitrepos/myconf/python.d/s/from_git.py"));
    tidy_install(&dir);
    tidy(&dir.path().join("gitrepos"));
    dir
}

#[test]
fn a_trusted_datakit_conf_gives_the_address_and_the_git_repos() {
    let dir = datakit_conf_with_git_repo("127.0.0.1:7777");
    let out = check(&dir);
    let text = stdout(&out);
    let conf = dir.path().join("conf.d/datakit.conf");
    assert!(
        text.contains(&format!(
            "DataKit: http://127.0.0.1:7777 (from {})",
            conf.display()
        )),
        "{text}"
    );
    assert!(text.contains("from_git.Reporter"), "{text}");
}

#[test]
fn a_datakit_conf_others_can_change_is_not_used() {
    let dir = datakit_conf_with_git_repo("127.0.0.1:7777");
    let conf = dir.path().join("conf.d/datakit.conf");
    chmod(&conf, 0o646);
    let out = check(&dir);
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{text}\n{err}");
    assert!(
        text.contains(&format!(
            "DataKit: http://127.0.0.1:9529 (from defaults: {} not read",
            conf.display()
        )),
        "the default address, not the file's:\n{text}"
    );
    assert!(!text.contains("7777"), "{text}");
    assert!(
        text.contains("local_script.Reporter") && !text.contains("from_git"),
        "the file's git repo is not searched:\n{text}"
    );
    let real = canonical(&conf);
    assert!(
        err.lines().any(|l| l.contains(&format!("{}:0: not read: ", conf.display()))
            && l.contains(&format!(
                "file {} is writable by others (owner root, group root, mode 0646 -rw-r--rw-); fix: chmod o-w {}",
                real.display(),
                real.display()
            ))
            && l.contains("DataKit's address and git repos are the defaults")),
        "the error names the file, its owner and mode, and the fix:\n{err}"
    );
}

#[test]
fn an_older_datakit_conf_beside_conf_d_gets_the_same_check() {
    let dir = datakit_conf_with_git_repo("127.0.0.1:7777");
    let old = dir.path().join("datakit.conf");
    std::fs::rename(dir.path().join("conf.d/datakit.conf"), &old).unwrap();
    let out = check(&dir);
    assert!(
        stdout(&out).contains(&format!(
            "DataKit: http://127.0.0.1:7777 (from {})",
            old.display()
        )),
        "{}",
        stdout(&out)
    );
    chmod(&old, 0o666);
    let out = check(&dir);
    let text = stdout(&out);
    assert!(
        text.contains("DataKit: http://127.0.0.1:9529 (from defaults: ")
            && !text.contains("from_git"),
        "{text}"
    );
    assert!(
        stderr(&out).contains(&format!("{}:0: not read: ", old.display())),
        "{}",
        stderr(&out)
    );
}
