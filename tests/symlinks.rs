//! Symlinks and `..`: what the administrator placed is followed
//! (a symlinked script folder or file, a `..` entry), and the path it leads
//! to is checked with every folder above it up to `/`, so that nobody else
//! can swap its target. Real folders under a trusted temp dir (its folders
//! up to `/` pass the check, unlike `/tmp`), tests as root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::paths::{canonical, check, chmod, count, reporter, require_root, tidy, tidy_install};
use crate::util::*;

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
