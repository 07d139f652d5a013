//! Who runs a `[[inputs.pythond]]` block: DataKit itself, or `pythond run`.
//!
//! DataKit reads every `*.conf` under its `conf.d` (and, with git-managed
//! configuration, under `gitrepos/<repo>/conf.d`) and starts each
//! `[[inputs.pythond]]` block there with the block's `cmd`: `python3` (the
//! original runner), or `pythond` (launch mode). A `pythond run` given that
//! same configuration would run every script a second time, so it skips those
//! blocks and says so, unless `--run-datakit-blocks` is given (DataKit is not
//! running there, or the user wants both). `pythond check` shows, per block,
//! who runs it.

use std::path::{Path, PathBuf};

use pythond_core::config::InputConfig;

use crate::Where;

/// Who runs a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// DataKit runs it with this `cmd`, a Python: the original runner.
    DataKitPython(String),
    /// DataKit runs it through pythond's launch mode.
    DataKitPythond(String),
    /// DataKit runs it with some other `cmd`.
    DataKitOther(String),
    /// Only `pythond run` does (DataKit does not read this configuration).
    PythondRun,
}

impl Runner {
    pub fn is_datakit(&self) -> bool {
        *self != Runner::PythondRun
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Runner::DataKitPython(cmd) if cmd == "python3" => {
                f.write_str("DataKit runs it with python3")
            }
            Runner::DataKitPython(cmd) => write!(f, "DataKit runs it with python3 (cmd {cmd:?})"),
            Runner::DataKitPythond(cmd) => write!(f, "DataKit runs it with pythond (cmd {cmd:?})"),
            Runner::DataKitOther(cmd) => write!(f, "DataKit runs it with {cmd:?}"),
            Runner::PythondRun => f.write_str("pythond run runs it"),
        }
    }
}

/// A DataKit install: `conf.d/datakit.conf` (or the older `datakit.conf`).
fn is_install(dir: &Path) -> bool {
    dir.join("conf.d/datakit.conf").is_file() || dir.join("datakit.conf").is_file()
}

/// The DataKit install that reads `config` (a conf file or a folder of
/// them) as its own configuration: `config` is inside `<dk>/conf.d` or
/// `<dk>/gitrepos/<repo>/conf.d` of a directory `<dk>` holding
/// `conf.d/datakit.conf`.
pub fn datakit_reading(config: &Path) -> Option<PathBuf> {
    let config = config.canonicalize().ok()?;
    for a in config.ancestors() {
        if a.file_name().is_none_or(|n| n != "conf.d") {
            continue;
        }
        let parent = a.parent()?;
        if is_install(parent) {
            return Some(parent.to_owned());
        }
        let gitrepos = parent.parent()?;
        if gitrepos.file_name().is_some_and(|n| n == "gitrepos") {
            let dk = gitrepos.parent()?;
            if is_install(dk) {
                return Some(dk.to_owned());
            }
        }
    }
    None
}

/// Who runs `input`, given the DataKit install reading its configuration.
pub fn runner(input: &InputConfig, datakit: Option<&Path>) -> Runner {
    if datakit.is_none() {
        return Runner::PythondRun;
    }
    let base = Path::new(input.cmd.trim())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if crate::cmd::names_pythond(&input.cmd) {
        Runner::DataKitPythond(input.cmd.clone())
    } else if base.starts_with("python") {
        Runner::DataKitPython(input.cmd.clone())
    } else {
        Runner::DataKitOther(input.cmd.clone())
    }
}

/// The blocks `pythond run` runs: all of them, except, without
/// `--run-datakit-blocks`, those DataKit runs itself (each one reported).
pub fn ours(inputs: Vec<InputConfig>, at: &Where) -> Vec<InputConfig> {
    let Some(dk) = datakit_reading(&at.config) else {
        return inputs;
    };
    if at.run_datakit_blocks {
        tracing::warn!(
            datakit = %dk.display(),
            "--run-datakit-blocks: running blocks of DataKit's own configuration; if DataKit runs them too, every script runs twice"
        );
        return inputs;
    }
    inputs
        .into_iter()
        .filter(|input| {
            let who = runner(input, Some(&dk));
            if !who.is_datakit() {
                return true;
            }
            tracing::error!("{}", refusal(input, &who, &dk));
            false
        })
        .collect()
}

/// The line saying why a block is skipped, and what to do.
pub fn refusal(input: &InputConfig, who: &Runner, dk: &Path) -> String {
    let how = match who {
        Runner::DataKitPythond(_) => {
            "DataKit already runs it through pythond; to run it here instead, remove it from DataKit's conf.d".to_owned()
        }
        _ => "to have DataKit run it through pythond, set cmd = \"/usr/local/bin/pythond\" in the block and restart DataKit (README: \"Install into DataKit\"); to run it here anyway (DataKit not running it), pass --run-datakit-blocks".to_owned(),
    };
    format!(
        "{}: [[inputs.pythond]] {:?}: skipped, it would run twice: {} (this is the configuration of the DataKit in {}); {how}",
        input.source,
        input.name,
        who,
        dk.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pythond_core::config::Location;

    fn input(cmd: &str) -> InputConfig {
        InputConfig {
            name: "x".into(),
            cmd: cmd.into(),
            dirs: vec![],
            envs: vec![],
            tags: vec![],
            numbers_as_float: false,
            insecure_paths: false,
            max_rss: None,
            timeout: None,
            source: Location {
                file: "conf.d/pythond/pythond.conf".into(),
                line: 3,
            },
        }
    }

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    #[test]
    fn a_conf_d_beside_datakit_conf_is_datakits_own() {
        let t = tempfile::tempdir().unwrap();
        let dk = t.path().canonicalize().unwrap();
        touch(&dk.join("conf.d/datakit.conf"));
        touch(&dk.join("conf.d/pythond/pythond.conf"));
        assert_eq!(datakit_reading(&dk.join("conf.d")), Some(dk.clone()));
        assert_eq!(
            datakit_reading(&dk.join("conf.d/pythond/pythond.conf")),
            Some(dk.clone())
        );
        touch(&dk.join("gitrepos/myconf/conf.d/pythond.conf"));
        assert_eq!(
            datakit_reading(&dk.join("gitrepos/myconf/conf.d")),
            Some(dk.clone()),
            "git-managed conf.d"
        );
    }

    #[test]
    fn a_conf_d_without_datakit_conf_is_not() {
        let t = tempfile::tempdir().unwrap();
        touch(&t.path().join("conf.d/pythond/pythond.conf"));
        assert_eq!(datakit_reading(&t.path().join("conf.d")), None);
        assert_eq!(datakit_reading(&t.path().join("missing")), None);
    }

    #[test]
    fn the_cmd_says_how_datakit_runs_a_block() {
        let dk = Path::new("/usr/local/datakit");
        assert_eq!(
            runner(&input("python3"), Some(dk)).to_string(),
            "DataKit runs it with python3"
        );
        assert_eq!(
            runner(&input("/usr/bin/python3.11"), Some(dk)),
            Runner::DataKitPython("/usr/bin/python3.11".into())
        );
        assert_eq!(
            runner(&input("/usr/local/bin/pythond"), Some(dk)).to_string(),
            "DataKit runs it with pythond (cmd \"/usr/local/bin/pythond\")"
        );
        assert_eq!(
            runner(&input("python3"), None).to_string(),
            "pythond run runs it"
        );
    }

    #[test]
    fn the_refusal_names_the_block_and_what_to_do() {
        let i = input("python3");
        let who = runner(&i, Some(Path::new("/dk")));
        let line = refusal(&i, &who, Path::new("/dk"));
        assert!(
            line.starts_with("conf.d/pythond/pythond.conf:3: [[inputs.pythond]] \"x\": skipped"),
            "{line}"
        );
        assert!(line.contains("DataKit runs it with python3"), "{line}");
        assert!(line.contains("cmd = \"/usr/local/bin/pythond\""), "{line}");
        assert!(line.contains("--run-datakit-blocks"), "{line}");
    }
}
