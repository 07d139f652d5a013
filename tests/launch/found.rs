//! Where launch mode finds what it needs when the install is not the usual
//! one: the block in a git repo's `conf.d`, no `datakit.conf`, `-l NAME`, a
//! `$HOME` it cannot write.

use super::*;

#[test]
fn a_block_in_a_git_repos_conf_d_gives_its_keys() {
    let dk = FakeDataKit::start();
    let i = Install::new(&dk.addr().to_string());
    i.script("team", "gitrepos/myconf/python.d/team");
    // Only in the git repo's conf.d: DataKit's own has no pythond block.
    i.write(
        "gitrepos/myconf/conf.d/pythond.conf",
        "[[inputs.pythond]]\n  name = 'from git'\n  cmd = \"/usr/local/bin/pythond\"\n  dirs = [\"team\"]\n  [inputs.pythond.tags]\n    origin = 'gitrepo'\n",
    );
    let file = i.render(
        &[i.path().join("gitrepos/myconf/python.d/team")],
        &["top", "sub.deep"],
    );
    let mut p = launch(&file, "from git", &[]);
    assert!(
        dk.wait_for_lines(2, Duration::from_secs(30)),
        "{}",
        i.cli_log(&i.data_dir())
    );
    for l in dk.all_lines() {
        assert!(
            parse_line(&l)
                .tags
                .contains(&("origin".into(), "gitrepo".into())),
            "the git repo's block's tags: {l}"
        );
    }
    let log = i.cli_log(&i.data_dir());
    let repo_conf = i.path().join("gitrepos/myconf/conf.d/pythond.conf");
    assert!(
        log.lines().any(|l| l.contains("the block's tags")
            && (l.contains(&repo_conf.display().to_string())
                || l.contains(&repo_conf.canonicalize().unwrap().display().to_string()))),
        "{log}"
    );
    p.kill9();
}

#[test]
fn without_datakit_conf_points_go_to_datakits_default_address() {
    let i = Install::new("127.0.0.1:9");
    std::fs::remove_file(i.path().join("conf.d/datakit.conf")).unwrap();
    i.script("keys", "python.d/keys");
    i.block("keys", &["keys"], "");
    let file = i.render(&[i.path().join("python.d/keys")], &["keys"]);
    let mut p = launch(&file, "keys", &[]);
    eventually(20, "the start line", || {
        p.pipe_text().contains("started").then_some(())
    });
    let pipe = p.pipe_text();
    assert!(
        pipe.contains("points to http://127.0.0.1:9529"),
        "DataKit's default listen: {pipe}"
    );
    p.kill9();
}

#[test]
fn dash_l_names_the_block_as_logname_does() {
    let dk = FakeDataKit::start();
    let (i, file) = team_install(
        &dk.addr().to_string(),
        "short",
        "  [inputs.pythond.tags]\n    via = 'dash-l'\n",
    );
    let mut p = launch_with(&file, &["-l", "short"], &[], Pipe::Drained);
    assert!(
        dk.wait_for_lines(3, Duration::from_secs(30)),
        "{}",
        i.cli_log(&i.data_dir())
    );
    assert!(dk.all_lines().iter().all(|l| parse_line(l)
        .tags
        .contains(&("via".into(), "dash-l".into()))));
    eventually(20, "the start line", || {
        p.pipe_text()
            .contains("input \"short\" started")
            .then_some(())
    });
    assert!(i.data_dir().join("short/lock").is_file(), "its spool");
    p.kill9();
}

#[test]
fn a_home_it_cannot_write_sends_the_logs_under_datakits_cache() {
    let dk = FakeDataKit::start();
    let (i, file) = team_install(&dk.addr().to_string(), "homeless", "");
    // A file, not a folder: nothing can be created below it, even by root
    // (the tests may run as root, for whom a read-only folder is writable).
    let home = i.path().join("home-is-a-file");
    std::fs::write(&home, "").unwrap();
    let mut p = launch(&file, "homeless", &[("HOME", home.display().to_string())]);
    assert!(
        dk.wait_for_lines(3, Duration::from_secs(30)),
        "{}",
        i.cli_log(&i.data_dir())
    );
    let log = i.cli_log(&i.data_dir());
    assert!(log.contains("started by DataKit (launch mode)"), "{log}");
    assert!(i
        .data_dir()
        .join("_datakit_pythond_framework_homeless_.log")
        .is_file());
    eventually(20, "the start line", || {
        p.pipe_text().contains("started").then_some(())
    });
    let pipe = p.pipe_text();
    assert!(
        pipe.contains(&format!(
            "log: {}",
            i.data_dir().join("_datakit_pythond_cli.log").display()
        )),
        "the start line names where the log is: {pipe}"
    );
    p.kill9();
}
