//! The Python environment inside scripts is `cmd`'s:
//! `sys.executable` is `cmd`, and `pip install --user` packages are seen
//! exactly when `cmd` itself would see them (a plain Python: yes; a
//! virtualenv: no), whatever the embedded interpreter's own `site` did.
//! Real venvs of the `python3` on PATH, a user site in a temp dir
//! (`PYTHONUSERBASE` and `HOME` given to the block, so the real
//! `~/.local` is never read).

use std::time::Duration;

use testkit::FakeDataKit;

use crate::fixtures::*;
use crate::util::*;

/// A virtualenv of the `python3` on PATH (the embedded version), without pip.
fn venv(at: &std::path::Path) -> std::path::PathBuf {
    let out = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(at)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    at.join("bin/python3")
}

#[test]
fn sys_executable_inside_scripts_is_the_configured_cmd() {
    let dk = FakeDataKit::start();
    let envs = tempfile::tempdir().unwrap();
    let venv_dir = envs.path().join("venv");
    let python = venv(&venv_dir);
    let conf = format!(
        "[[inputs.pythond]]\n  name = 'venv'\n  cmd = {:?}\n  dirs = [\"w\"]\n",
        python.display().to_string()
    );
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/sys_executable", "w")],
        &conf,
    );
    let d = Daemon::start(&dir, &[]);
    let arrived = dk.wait_for_lines(1, Duration::from_secs(30));
    let (_, err) = d.stop();
    assert!(arrived, "{err}");
    let p = parse_line(&dk.all_lines()[0]);
    let field = |k: &str| {
        p.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim_start_matches("s:").to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        field("executable"),
        python.display().to_string(),
        "sys.executable is cmd"
    );
    assert_eq!(
        field("child_prefix"),
        venv_dir.display().to_string(),
        "subprocess.run([sys.executable, ...]) starts cmd's Python"
    );
}

/// `pip install --user` packages of a plain `cmd` are visible, as they were
/// to the original.
#[test]
fn user_site_packages_of_cmd_are_importable() {
    let dk = FakeDataKit::start();
    let base = tempfile::tempdir().unwrap();
    let user_base = base.path().join("userbase");
    let site = std::process::Command::new("python3")
        .args(["-c", "import site; print(site.getusersitepackages())"])
        .env("PYTHONUSERBASE", &user_base)
        .output()
        .unwrap();
    let site = std::path::PathBuf::from(stdout(&site).trim());
    assert!(site.starts_with(&user_base), "{}", site.display());
    copy_data("promises/user_site/site-packages", &site);
    let conf = block(
        "usersite",
        &["u"],
        &format!("  envs = ['PYTHONUSERBASE={}']", user_base.display()),
    );
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/user_site/script", "u")],
        &conf,
    );
    let d = Daemon::start(&dir, &[]);
    let arrived = dk.wait_for_lines(1, Duration::from_secs(30));
    let (_, err) = d.stop();
    assert!(arrived, "{err}");
    let p = parse_line(&dk.all_lines()[0]);
    assert_eq!(p.fields[0].1, "s:from the user site", "{p:?}");
}

/// What `user_site.py` saw when its input's `cmd` is `cmd`, with a user
/// site holding `pythond_user_site_probe`.
fn user_site_seen_with(cmd: Option<&std::path::Path>) -> String {
    let dk = FakeDataKit::start();
    let base = tempfile::tempdir().unwrap();
    let user_base = base.path().join("userbase");
    let home = base.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let site = std::process::Command::new("python3")
        .args(["-c", "import site; print(site.getusersitepackages())"])
        .env("PYTHONUSERBASE", &user_base)
        .output()
        .unwrap();
    let site = std::path::PathBuf::from(stdout(&site).trim());
    assert!(site.starts_with(&user_base), "{}", site.display());
    copy_data("promises/user_site/site-packages", &site);
    let conf = format!(
        "[[inputs.pythond]]\n  name = 'usersite'\n  cmd = {:?}\n  dirs = [\"u\"]\n  envs = ['PYTHONUSERBASE={}', 'HOME={}']\n",
        cmd.map(|c| c.display().to_string())
            .unwrap_or_else(|| "python3".into()),
        user_base.display(),
        home.display()
    );
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("promises/user_site/script", "u")],
        &conf,
    );
    let d = Daemon::start(&dir, &[]);
    let arrived = dk.wait_for_lines(1, Duration::from_secs(30));
    let (_, err) = d.stop();
    assert!(arrived, "{err}");
    let p = parse_line(&dk.all_lines()[0]);
    p.fields[0].1.clone()
}

#[test]
fn user_site_packages_are_hidden_when_cmd_is_a_virtualenv() {
    let envs = tempfile::tempdir().unwrap();
    let python = venv(&envs.path().join("venv"));
    // The venv's own Python does not see the user site...
    let own = std::process::Command::new(&python)
        .args(["-c", "import site; print(site.ENABLE_USER_SITE)"])
        .output()
        .unwrap();
    assert_eq!(stdout(&own).trim(), "False");
    // ... and neither do scripts run with it as cmd.
    let seen = user_site_seen_with(Some(&python));
    assert!(
        seen.starts_with("s:ImportError: No module named 'pythond_user_site_probe'"),
        "{seen}"
    );
    // With a plain Python as cmd, the same user site is seen.
    assert_eq!(user_site_seen_with(None), "s:from the user site");
}

/// Ask `python` for `expr` (printed).
fn ask(python: &std::path::Path, expr: &str) -> String {
    let out = std::process::Command::new(python)
        .args(["-c", &format!("import site, sys, sysconfig; print({expr})")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        python.display(),
        stderr(&out)
    );
    stdout(&out).trim().to_owned()
}

/// A virtualenv's `cmd` sees the packages of that virtualenv and not those
/// of the Python pythond embeds (whose `.pth` files never run either): the
/// embedded interpreter starts without `site` and adds `cmd`'s folders only.
#[test]
fn a_virtualenv_cmd_sees_its_own_packages_not_the_embedded_pythons() {
    let dk = FakeDataKit::start();
    let envs = tempfile::tempdir().unwrap();
    let venv_dir = envs.path().join("venv");
    let python = venv(&venv_dir);
    let venv_site = std::path::PathBuf::from(ask(&python, "sysconfig.get_path('purelib')"));
    copy_data("python_env/venv_site", &venv_site);
    let system_python = std::path::Path::new("python3");
    let embedded_sites: Vec<String> = ask(system_python, "'\\n'.join(site.getsitepackages())")
        .lines()
        .map(str::to_owned)
        .collect();
    let embedded_has_pip = ask(
        system_python,
        "__import__('importlib.util').util.find_spec('pip') is not None",
    ) == "True";
    let conf = format!(
        "[[inputs.pythond]]\n  name = 'venv'\n  cmd = {:?}\n  dirs = [\"v\"]\n",
        python.display().to_string()
    );
    let dir = datakit_with(
        &dk.addr().to_string(),
        &[("python_env/venv_view", "v")],
        &conf,
    );
    let d = Daemon::start(&dir, &[]);
    let arrived = dk.wait_for_lines(1, Duration::from_secs(30));
    let (_, err) = d.stop();
    assert!(arrived, "{err}");
    let p = parse_line(&dk.all_lines()[0]);
    let field = |k: &str| {
        p.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.trim_start_matches("s:").to_owned())
            .unwrap_or_else(|| panic!("no field {k}: {p:?}"))
    };
    assert_eq!(field("probe"), "b:true", "the venv's own package imports");
    assert_eq!(field("prefix"), venv_dir.display().to_string());
    assert_eq!(field("exit_builtin"), "b:true", "exit() as under python3");
    let path = field("path");
    for s in &embedded_sites {
        assert!(
            !path.split(':').any(|p| p == s),
            "the embedded Python's {s} is not on sys.path: {path}"
        );
    }
    if embedded_has_pip {
        assert_eq!(
            field("pip"),
            "b:false",
            "pip of the embedded Python is not the venv's (a venv made --without-pip)"
        );
    } else {
        eprintln!("note: the embedded python3 has no pip; that half is not checked");
    }
}
