//! Issue 14: trust what the administrator placed (symlinked script folders,
//! `..` entries), refuse what anyone else could have changed (world- or
//! group-writable scripts, folders and config files, scripts owned by
//! another user). Real folders, real modes and owners (the tests run as
//! root, as DataKit does), one copy of `tests/data/paths/reporter.py` per
//! script.
//!
//! Assumed wording of a refusal: the lines naming the script (or config)
//! file also give the offending path, its owner (`root`, `nobody` or the uid)
//! and mode (octal like `666` or `ls` style like `rw-rw-rw-`), and the
//! command that fixes it (`chmod` / `chown`). A warning (with
//! `insecure_paths = true`) is a `WARN` line naming the file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// `reporter.py` copied to `dst`; it reports the measurement `dst`'s stem.
fn reporter(dst: &Path) {
    copy_data("paths/reporter.py", dst);
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Folders 0755 and files 0644 below `root` (whatever the umask): the
/// known-good state the tests then break on purpose.
fn tidy(root: &Path) {
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

fn tidy_install(dk: &DataKitDir) {
    for sub in ["python.d", "conf.d"] {
        let p = dk.path().join(sub);
        std::fs::create_dir_all(&p).unwrap();
        tidy(&p);
    }
}

fn nobody() -> (u32, u32) {
    let pw = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(!pw.is_null(), "a user named nobody");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

fn require_root() {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests change owners: run them as root (as DataKit runs)"
    );
}

fn count(dk: &FakeDataKit, measurement: &str) -> usize {
    dk.all_lines()
        .iter()
        .filter(|l| parse_line(l).measurement == measurement)
        .count()
}

/// Run the daemon until `trusted` reported 4 times; returns its stderr.
fn run_until_reported(dir: &DataKitDir, dk: &FakeDataKit, trusted: &str) -> String {
    let d = Daemon::start(dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| count(dk, trusted) >= 4);
    let (_, err) = d.stop();
    assert!(ran, "{trusted} reports:\n{err}");
    err
}

/// The log lines that mention `needle`, joined.
fn lines_about(log: &str, needle: &str) -> String {
    log.lines()
        .filter(|l| l.contains(needle))
        .collect::<Vec<_>>()
        .join("\n")
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

// ---------------------------------------------------------------- item 1

/// `python.d/team` → `<datakit>/outside/team-scripts` (outside python.d).
fn symlinked_team(dk: &FakeDataKit) -> (DataKitDir, PathBuf) {
    let dir = DataKitDir::new_trusted(&dk.addr().to_string(), &[], &block("team", &["team"], ""));
    let outside = dir.path().join("outside/team-scripts");
    reporter(&outside.join("team_script.py"));
    std::fs::create_dir_all(dir.path().join("python.d")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("python.d/team")).unwrap();
    tidy_install(&dir);
    tidy(&dir.path().join("outside"));
    (dir, outside)
}

#[test]
fn a_dirs_entry_symlinked_to_a_folder_outside_python_d_runs() {
    let dk = FakeDataKit::start();
    let (dir, _) = symlinked_team(&dk);
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| count(dk, "team_script") >= 2);
    let (_, err) = d.stop();
    assert!(ran, "the symlinked folder's script reports:\n{err}");
}

#[test]
fn check_shows_where_a_symlinked_dirs_entry_resolved() {
    let dk = FakeDataKit::start();
    let (dir, outside) = symlinked_team(&dk);
    let out = pythond()
        .args(["check", "--config"])
        .arg(dir.path().join("conf.d"))
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("team_script.Reporter"),
        "the module is listed:\n{text}"
    );
    assert!(
        text.contains(&canonical(&outside).display().to_string()),
        "where the entry resolved ({}) is shown:\n{text}",
        canonical(&outside).display()
    );
}

#[test]
fn a_symlinked_dirs_entry_is_refused_when_a_folder_above_its_target_is_open() {
    let dk = FakeDataKit::start();
    let (dir, outside) = symlinked_team(&dk);
    // Whoever can write outside/ can swap team-scripts/ for their own.
    let above = outside.parent().unwrap().to_owned();
    chmod(&above, 0o757);
    let out = check(&dir);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("team_script.Reporter"), "{text}");
    assert!(
        text.lines().any(|l| l.contains("error: ")
            && l.contains("team_script.py: not imported")
            && l.contains(&format!(
                "folder {} is writable by others (owner root, group root, mode 0757 drwxr-xrwx); fix: chmod o-w {}",
                canonical(&above).display(),
                canonical(&above).display()
            ))),
        "{text}"
    );
}

#[test]
fn a_symlinked_dirs_entry_into_tmp_is_refused_sticky_or_not() {
    require_root();
    let tmp = Path::new("/tmp");
    let mode = std::fs::metadata(tmp).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode, 0o1777,
        "this test needs the usual sticky, world-writable /tmp"
    );
    let t = tempfile::tempdir_in(tmp).unwrap();
    let team = t.path().join("team");
    reporter(&team.join("tmp_script.py"));
    tidy(t.path());
    let dir = DataKitDir::new_trusted("127.0.0.1:9", &[], &block("team", &["team"], ""));
    std::fs::create_dir_all(dir.path().join("python.d")).unwrap();
    std::os::unix::fs::symlink(&team, dir.path().join("python.d/team")).unwrap();
    tidy_install(&dir);
    let out = check(&dir);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("tmp_script.py: not imported")
                && l.contains("folder /tmp is writable by ")
                && l.contains("mode 1777 drwxrwxrwt")),
        "{text}"
    );
}

#[test]
fn a_symlinked_script_file_is_refused_when_a_folder_above_its_target_is_open() {
    let dir = DataKitDir::new_trusted("127.0.0.1:9", &[], &block("linked", &["s"], ""));
    let real = dir.path().join("outside/deep/kept_elsewhere.py");
    reporter(&real);
    reporter(&dir.path().join("python.d/s/plain.py"));
    std::os::unix::fs::symlink(&real, dir.path().join("python.d/s/linked.py")).unwrap();
    tidy_install(&dir);
    tidy(&dir.path().join("outside"));
    chmod(&dir.path().join("outside"), 0o757);
    let out = check(&dir);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("plain.Reporter") && !text.contains("linked.Reporter"),
        "{text}"
    );
    let open = canonical(&dir.path().join("outside"));
    assert!(
        text.lines().any(|l| l.contains("linked.py: not imported")
            && l.contains(&format!("folder {} is writable by others", open.display()))),
        "{text}"
    );
}

#[test]
fn a_relative_dotdot_dirs_entry_to_a_sibling_folder_runs() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new_trusted(
        &dk.addr().to_string(),
        &[],
        &block("sibling", &["../sibling"], ""),
    );
    reporter(&dir.path().join("sibling/sibling_script.py"));
    tidy_install(&dir);
    tidy(&dir.path().join("sibling"));
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| {
        count(dk, "sibling_script") >= 2
    });
    let (_, err) = d.stop();
    assert!(ran, "the sibling folder's script reports:\n{err}");
}

// ---------------------------------------------------------------- item 2

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
        about.contains(&file.display().to_string())
            && about.contains("root")
            && mentions_mode(&about, 0o666)
            && about.contains("chmod"),
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
    assert!(
        about.contains(&folder.display().to_string())
            && about.contains("root")
            && mentions_mode(&about, 0o775)
            && about.contains("chmod"),
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
    assert!(
        about.contains(&file.display().to_string())
            && (about.contains("nobody") || about.contains(&uid.to_string()))
            && about.contains("chown"),
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
        about.contains(&bad.display().to_string())
            && about.contains("root")
            && mentions_mode(&about, 0o666)
            && about.contains("chmod"),
        "the refusal names the file, its owner and mode and the chmod that fixes it:\n{err}"
    );
}

// ------------------------------------------------------- more of items 1, 2

#[test]
fn a_symlinked_script_file_runs() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new_trusted(&dk.addr().to_string(), &[], &block("linked", &["s"], ""));
    let real = dir.path().join("outside/kept_elsewhere.py");
    reporter(&real);
    std::fs::create_dir_all(dir.path().join("python.d/s")).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("python.d/s/linked.py")).unwrap();
    tidy_install(&dir);
    tidy(&dir.path().join("outside"));
    let d = Daemon::start(&dir, &[]);
    let ran = dk.wait_until(Duration::from_secs(30), |dk| count(dk, "linked") >= 2);
    let (_, err) = d.stop();
    assert!(ran, "the symlinked file runs under its link's name:\n{err}");
}

#[test]
fn check_shows_where_a_symlinked_script_file_resolved() {
    let dir = DataKitDir::new_trusted("127.0.0.1:9", &[], &block("linked", &["s"], ""));
    let real = dir.path().join("outside/kept_elsewhere.py");
    reporter(&real);
    reporter(&dir.path().join("python.d/s/plain.py"));
    std::os::unix::fs::symlink(&real, dir.path().join("python.d/s/linked.py")).unwrap();
    tidy_install(&dir);
    tidy(&dir.path().join("outside"));
    let out = check(&dir);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let link = canonical(&dir.path().join("python.d/s")).join("linked.py");
    let line = text
        .lines()
        .find(|l| l.contains("linked.Reporter"))
        .unwrap_or_else(|| panic!("linked.py is listed:\n{text}"));
    assert!(
        line.ends_with(&format!(
            "({} -> {})",
            link.display(),
            canonical(&real).display()
        )),
        "the link and where it leads:\n{text}"
    );
    let plain = canonical(&dir.path().join("python.d/s/plain.py"));
    assert!(
        text.lines()
            .any(|l| l.contains("plain.Reporter") && l.ends_with(&format!("({})", plain.display()))),
        "a plain file is listed at its path only:\n{text}"
    );
}

#[test]
fn check_shows_where_a_dotdot_entry_resolved() {
    let dir = DataKitDir::new_trusted("127.0.0.1:9", &[], &block("sibling", &["../sibling"], ""));
    reporter(&dir.path().join("sibling/sibling_script.py"));
    tidy_install(&dir);
    tidy(&dir.path().join("sibling"));
    let out = check(&dir);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{text}");
    let real = canonical(&dir.path().join("sibling"));
    assert!(
        text.contains(&format!("dirs entry \"../sibling\": {}", real.display())),
        "{text}"
    );
    assert!(text.contains("sibling_script.Reporter"), "{text}");
}

fn check(dir: &DataKitDir) -> std::process::Output {
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
