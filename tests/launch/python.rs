//! Which Python's packages the scripts see, and `pythond run` beside a
//! DataKit that runs the blocks itself.

use super::*;

#[test]
fn pythond_python_of_another_version_is_one_clear_line_and_a_non_zero_exit() {
    // PYTHOND_PYTHON from DataKit's own environment (a block without envs),
    // then from the block's envs (DataKit passes only those).
    for in_envs in [false, true] {
        let dk = FakeDataKit::start();
        let i = Install::new(&dk.addr().to_string());
        let python = i.path().join("opt/python3.99/bin/python3");
        copy_data("launch/python_other/python3", &python);
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let home = i.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let envs = [
            ("PYTHOND_PYTHON", python.display().to_string()),
            ("HOME", home.display().to_string()),
        ];
        let extra = if in_envs {
            let e: Vec<String> = envs.iter().map(|(k, v)| format!("\"{k}={v}\"")).collect();
            format!("  envs = [{}]\n", e.join(", "))
        } else {
            String::new()
        };
        i.script("extra/single.py", "python.d/extra/single.py");
        i.block("other", &["extra/single.py"], &extra);
        let file = i.render(&[], &["single"]);
        let mut p = launch(&file, "other", &envs);
        let status = p
            .exit_within(30)
            .expect("pythond exits instead of restarting");
        assert_eq!(status.code(), Some(78), "EX_CONFIG");
        let pipe = p.pipe_after_exit();
        let errors: Vec<&str> = pipe.lines().filter(|l| l.contains("Python 3.99")).collect();
        assert_eq!(errors.len(), 1, "one clear line: {pipe}");
        let e = errors[0];
        assert!(
            e.contains("stopped: configuration error")
                && e.contains("but pythond embeds Python 3.")
                && e.contains("PYTHOND_PYTHON"),
            "{e}"
        );
        let from = if in_envs {
            "set in the block's envs ("
        } else {
            "from DataKit's own environment (the block has no envs"
        };
        assert!(e.contains(from), "says where it came from: {e}");
        // With HOME, the log is there, as the original's was.
        let log = i.cli_log(&home);
        assert!(log.contains("Python 3.99"), "{log}");
        assert_eq!(
            log.matches("worker started").count(),
            1,
            "not restarted: {log}"
        );
        assert!(dk.all_lines().is_empty());
    }
}

#[test]
fn the_scripts_import_from_the_venv_of_pythond_python_or_virtual_env() {
    let envs = tempfile::tempdir().unwrap();
    let venv = envs.path().join("venv");
    let out = Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(out.status.success(), "python3 -m venv: {}", stderr(&out));
    let python = venv.join("bin/python3");
    let site = Command::new(&python)
        .args(["-c", "import site; print(site.getsitepackages()[0])"])
        .output()
        .unwrap();
    let site = PathBuf::from(stdout(&site).trim());
    copy_data(
        "launch/venv/launch_venv_probe.py",
        &site.join("launch_venv_probe.py"),
    );
    for env in [
        ("PYTHOND_PYTHON", python.display().to_string()),
        ("VIRTUAL_ENV", venv.display().to_string()),
    ] {
        let dk = FakeDataKit::start();
        let i = Install::new(&dk.addr().to_string());
        i.script("venv/venv_user.py", "python.d/v/venv_user.py");
        i.block("venv", &["v"], "");
        let file = i.render(&[i.path().join("python.d/v")], &["venv_user"]);
        let mut p = launch(&file, "venv", std::slice::from_ref(&env));
        assert!(
            dk.wait_for_lines(1, Duration::from_secs(30)),
            "{}: {}",
            env.0,
            i.cli_log(&i.data_dir())
        );
        let line = dk.all_lines()[0].clone();
        assert_eq!(
            field(&line, "message"),
            "s:from the venv",
            "{}: {line}",
            env.0
        );
        p.kill9();
    }
}

#[test]
fn standalone_run_refuses_blocks_datakit_runs_and_check_says_who_runs_each() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("t/t.py", &counter_script("T", "t", 0.5))],
        "[[inputs.pythond]]\n  name = 'by-python'\n  cmd = \"python3\"\n  dirs = [\"t\"]\n\n\
         [[inputs.pythond]]\n  name = 'by-pythond'\n  cmd = \"/usr/local/bin/pythond\"\n  dirs = [\"t\"]\n",
    );
    let conf = dir.path().join("conf.d");
    let conf_file = conf.join("pythond/pythond.conf");
    let out = pythond()
        .arg("run")
        .arg("--config")
        .arg(&conf)
        .arg("--datakit-dir")
        .arg(dir.path())
        .arg("--log-dir")
        .arg(dir.path().join("logs"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let canon = conf_file.canonicalize().unwrap();
    for (line, name, who) in [
        (1, "by-python", "DataKit runs it with python3"),
        (6, "by-pythond", "DataKit runs it with pythond"),
    ] {
        let at = format!(
            "{}:{line}: [[inputs.pythond]] \"{name}\": skipped",
            canon.display()
        );
        let at_plain = format!(
            "{}:{line}: [[inputs.pythond]] \"{name}\": skipped",
            conf_file.display()
        );
        assert!(
            err.lines()
                .any(|l| (l.contains(&at) || l.contains(&at_plain)) && l.contains(who)),
            "{name}: {err}"
        );
    }
    assert!(err.contains("--run-datakit-blocks"), "{err}");
    assert!(
        err.contains("cmd = \\\"/usr/local/bin/pythond\\\"")
            || err.contains("cmd = \"/usr/local/bin/pythond\""),
        "{err}"
    );
    assert!(dk.all_lines().is_empty(), "nothing ran");

    let check = pythond()
        .args(["check", "--config"])
        .arg(&conf)
        .arg("--datakit-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = stdout(&check);
    assert!(
        text.contains("who runs it: DataKit runs it with python3; pythond run skips it"),
        "{text}"
    );
    assert!(
        text.contains("who runs it: DataKit runs it with pythond (cmd \"/usr/local/bin/pythond\")"),
        "{text}"
    );
    assert_eq!(
        text.matches("name=\"T\"").count(),
        2,
        "both blocks' scripts are still checked: {text}"
    );

    // The repo's demo: a conf.d without datakit.conf is pythond run's own.
    let demo = pythond()
        .args(["check", "--config"])
        .arg(repo().join("conf.d"))
        .arg("--datakit-dir")
        .arg(repo())
        .output()
        .unwrap();
    assert!(
        stdout(&demo).contains("who runs it: pythond run runs it"),
        "{}",
        stdout(&demo)
    );

    // Told to, run runs them.
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(10, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
}

#[test]
fn run_stops_an_input_whose_cmd_is_another_python_and_keeps_the_others() {
    let dk = FakeDataKit::start();
    let dir = DataKitDir::new(
        &dk.addr().to_string(),
        &[("g/g.py", &counter_script("G", "g", 0.2))],
        "",
    );
    let python = dir.path().join("bin/python3");
    copy_data("launch/python_other/python3", &python);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        dir.path().join("conf.d/pythond/pythond.conf"),
        format!(
            "[[inputs.pythond]]\n  name = 'bad'\n  cmd = \"{}\"\n  dirs = [\"g\"]\n\n\
             [[inputs.pythond]]\n  name = 'good'\n  cmd = \"python3\"\n  dirs = [\"g\"]\n",
            python.display()
        ),
    )
    .unwrap();
    let d = Daemon::start(&dir, &[]);
    assert!(
        dk.wait_for_lines(20, Duration::from_secs(30)),
        "{}",
        d.stderr()
    );
    // Restarts would come after 0.2, 0.4, 0.8 s...: give them time to show.
    std::thread::sleep(Duration::from_secs(3));
    let (status, err) = d.stop();
    assert_eq!(status.code(), Some(78), "{err}");
    let starts = err
        .lines()
        .filter(|l| l.contains("worker started") && l.contains("input=bad"))
        .count();
    assert_eq!(starts, 1, "not restarted: {err}");
    assert!(
        err.lines().any(|l| l.contains("input=bad")
            && l.contains("configuration error")
            && l.contains("is Python 3.99")),
        "{err}"
    );
}
