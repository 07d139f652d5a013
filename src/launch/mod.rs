//! Launch mode: DataKit starts pythond as the `cmd` of an
//! `[[inputs.pythond]]` block, as `pythond <file> --logname=<name>`.
//!
//! For users: README, "Install into DataKit"; the design: `docs/design.md`,
//! "Processes".
//!
//! DataKit's contract (facts about DataKit, not our design): `<file>` is a
//! Python runner it rendered into `$TMPDIR/pythond_<digits>` ([`file`] reads
//! it); `<name>` is the block's `name` with all whitespace removed; the
//! environment is the block's `envs` only when set (no `HOME`, no `PATH`
//! then); stdout and stderr are one pipe DataKit reads 1 KiB a second; it
//! checks liveness with signal 0, never restarts us, and stops us with
//! SIGKILL.
//!
//! What we do: the one input runs exactly as under `pythond run` (the same
//! [`crate::run::serve`]: supervisor, worker, scheduler, writer, spool under
//! `<datakit>/cache/pythond/<name>`, restarts), with
//! - DataKit's address from `<datakit>/conf.d/datakit.conf`, and the block's
//!   own keys (`tags`, `timeout`, `numbers_as_float`) from the block of that
//!   name in `<datakit>/conf.d` (or a git repo's `conf.d`) when found;
//! - the scripts' packages from `PYTHOND_PYTHON`, `VIRTUAL_ENV`, or the
//!   embedded interpreter ([`python`]);
//! - logs in the log files only (`$HOME` when set and writable, else
//!   `<datakit>/cache/pythond/`): the pipe gets the start line and fatal
//!   errors, written without ever blocking; what did not fit is counted in
//!   the log and the status ([`pipe`]);
//! - SIGKILL as the normal stop: workers get SIGTERM from the kernel when we
//!   die (parent-death signal), spool what they hold, end the processes
//!   their scripts started and exit; the next start replays the spool (whose
//!   lock keeps two workers out of one spool). So that little lives only in
//!   memory, workers get a short linger (`WorkerSpec::short_linger`).
//!
//! Exit codes (DataKit ignores them; for people and tests): 2 when pythond
//! cannot start (unrecognised runner file, bad arguments), `exit::CONFIG`
//! (78) when the input stopped on a configuration error (e.g. the Python of
//! `PYTHOND_PYTHON` is another version), as `pythond run` otherwise.

mod file;
mod pipe;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Parser;

use pythond_core::config::{self, DataKitConf, InputConfig, Location};
use pythond_core::discover;
use pythond_core::logs::{self, LogOptions, RotatingFile};
use pythond_core::spec::WorkerSpec;

use crate::run::{self, SpecDefaults};
use crate::supervisor::{self, Launch};

/// `pythond <FILE> --logname=<NAME>`: run one input for DataKit.
#[derive(Parser)]
#[command(
    name = "pythond",
    version,
    about = "Launch mode: DataKit runs `pythond <FILE> --logname=<NAME>` for an [[inputs.pythond]] block whose cmd is pythond",
    override_usage = "pythond <FILE> --logname=<NAME>"
)]
struct LaunchArgs {
    /// The runner file DataKit rendered for the block ($TMPDIR/pythond_<digits>).
    file: PathBuf,
    /// The block's name (DataKit removes its whitespace).
    #[arg(short = 'l', long, required = true)]
    logname: String,
    /// Log level of the log files (PYTHOND_LOG overrides).
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// The command line is DataKit's: the first argument is neither an option
/// nor a subcommand, and it is a file or `--logname`/`-l` is given (so a
/// mistyped subcommand still gets clap's error).
pub fn is_launch(argv: &[OsString], subcommands: &[String]) -> bool {
    let Some(first) = argv.get(1) else {
        return false;
    };
    let s = first.to_string_lossy();
    if s.starts_with('-') || subcommands.iter().any(|c| *c == s) {
        return false;
    }
    let logname = argv[2..].iter().any(|a| {
        let a = a.to_string_lossy();
        a == "-l" || a.starts_with("--logname") || (a.starts_with("-l") && !a.starts_with("--"))
    });
    logname || Path::new(first).is_file()
}

/// Launch mode's `main`: the process exit code.
pub fn main(argv: Vec<OsString>) -> i32 {
    pipe::init();
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("pythond: internal error: {info}");
        tracing::error!("{msg}");
        pipe::say(&msg);
    }));
    let args = match LaunchArgs::try_parse_from(&argv) {
        Ok(a) => a,
        Err(e) => {
            if e.use_stderr() {
                for line in e.to_string().lines().filter(|l| !l.trim().is_empty()) {
                    pipe::say(line);
                }
            } else {
                let _ = e.print();
            }
            return e.exit_code();
        }
    };
    match start(args) {
        Ok(code) => code,
        Err(e) => {
            pipe::say(&format!("pythond: error: {e:#}"));
            2
        }
    }
}

/// The name DataKit gives us, and the one a block is matched by: all
/// whitespace removed, as DataKit does.
fn without_whitespace(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Where the logs go without a usable `$HOME`: beside the spools, under
/// DataKit's cache folder.
fn log_dir_for(datakit_dir: &Path) -> PathBuf {
    crate::data_dir_in(datakit_dir)
}

/// `$HOME`, where the original's runner wrote its logs, when set.
fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn start(args: LaunchArgs) -> anyhow::Result<i32> {
    let name = without_whitespace(&args.logname);
    if name.is_empty() {
        anyhow::bail!("--logname is empty: DataKit passes the block's name");
    }
    let path = std::path::absolute(&args.file).unwrap_or_else(|_| args.file.clone());
    // With $HOME the log is there from the first line; without it (or if
    // it cannot be written), the log folder is known once the file has said
    // where DataKit is.
    let logging = home().and_then(|dir| init_logs(&dir, &args.log_level).ok());
    let lf = match file::read(&path) {
        Ok(lf) => lf,
        Err(e) => {
            tracing::error!(input = %name, "{e:#}");
            return Err(e);
        }
    };
    let (log_dir, cli_log, _guard) = match logging {
        Some(l) => l,
        None => init_logs(&log_dir_for(&lf.datakit_dir), &args.log_level)?,
    };
    pipe::log_drops();
    crate::supervisor::state::count_pipe_drops(pipe::dropped);
    let result = serve(&name, lf, log_dir, cli_log, &args.log_level);
    if let Err(e) = &result {
        tracing::error!(input = %name, "{e:#}");
    }
    result
}

fn init_logs(dir: &Path, level: &str) -> anyhow::Result<(PathBuf, RotatingFile, logs::LogGuard)> {
    let cli_log = RotatingFile::new(logs::cli_log_path(dir), logs::MAX_BYTES, logs::KEEP)
        .with_context(|| format!("cannot open the log file in {}", dir.display()))?;
    let guard = logs::init_files_only(LogOptions {
        level: level.to_owned(),
        cli_log: Some(cli_log.clone()),
        framework_log: None,
    });
    Ok((dir.to_owned(), cli_log, guard))
}

/// The `[[inputs.pythond]]` block named `name` (whitespace removed), in the
/// enabled git repos' `conf.d` first, then `<datakit>/conf.d`.
fn find_block(datakit_dir: &Path, gitrepos: &[PathBuf], name: &str) -> Option<InputConfig> {
    let dirs = gitrepos
        .iter()
        .map(|r| r.join("conf.d"))
        .chain(std::iter::once(datakit_dir.join("conf.d")))
        .filter(|d| d.is_dir());
    for dir in dirs {
        let set = config::load(&dir);
        for e in &set.errors {
            tracing::warn!("{e}");
        }
        if let Some(block) = set
            .inputs
            .into_iter()
            .find(|i| without_whitespace(&i.name) == name)
        {
            tracing::info!(block = %block.source, "the block's tags, timeout and numbers_as_float apply");
            return Some(block);
        }
    }
    tracing::warn!(
        "no [[inputs.pythond]] block named {name:?} in {}/conf.d: no tags, default timeouts",
        datakit_dir.display()
    );
    None
}

/// `LC_CTYPE=C.UTF-8` for workers when no locale is set (an `envs` that
/// replaced DataKit's environment): the python3 DataKit ran did the same
/// (PEP 538), so scripts read and write UTF-8, not ASCII.
fn locale_env() -> Vec<(String, String)> {
    let set = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    if set {
        Vec::new()
    } else {
        vec![("LC_CTYPE".to_owned(), "C.UTF-8".to_owned())]
    }
}

fn serve(
    name: &str,
    lf: file::LaunchFile,
    log_dir: PathBuf,
    cli_log: RotatingFile,
    log_level: &str,
) -> anyhow::Result<i32> {
    let datakit_dir = lf.datakit_dir.clone();
    tracing::info!(
        input = %name,
        file = %lf.path.display(),
        datakit = %datakit_dir.display(),
        "pythond {} started by DataKit (launch mode)",
        env!("CARGO_PKG_VERSION")
    );
    let dk = DataKitConf::load(&datakit_dir)?;
    if let Some(e) = &dk.refused {
        tracing::error!(input = %name, "{e}");
    }
    let gitrepos: Vec<PathBuf> = dk
        .git_repos
        .iter()
        .map(|r| datakit_dir.join("gitrepos").join(r))
        .collect();
    let block = find_block(&datakit_dir, &gitrepos, name);
    let (python, python_from) = match crate::cmd::python_choice(|k| std::env::var(k).ok()) {
        Some((cmd, from)) => (cmd, Some(from)),
        None => (String::new(), None),
    };
    tracing::info!(
        input = %name,
        python = if python.is_empty() { "embedded" } else { python.as_str() },
        "scripts' packages"
    );
    let input = InputConfig {
        name: name.to_owned(),
        cmd: python,
        dirs: block.as_ref().map(|b| b.dirs.clone()).unwrap_or_default(),
        envs: Vec::new(),
        tags: block.as_ref().map(|b| b.tags.clone()).unwrap_or_default(),
        numbers_as_float: block.as_ref().is_some_and(|b| b.numbers_as_float),
        insecure_paths: block.as_ref().is_some_and(|b| b.insecure_paths),
        max_rss: block.as_ref().and_then(|b| b.max_rss),
        timeout: block.as_ref().and_then(|b| b.timeout),
        source: block
            .as_ref()
            .map(|b| b.source.clone())
            .unwrap_or(Location {
                file: lf.path.clone(),
                line: 0,
            }),
    };
    let defaults = SpecDefaults {
        target: dk.listen.clone(),
        force_target: false,
        grace_secs: 5.0,
        hang_grace_secs: 5.0,
        spool_root: Some(crate::data_dir_in(&datakit_dir)),
        spool_max_bytes: 512 << 20,
        log_dir: log_dir.clone(),
        log_level: log_level.to_owned(),
    };
    let block_found = block.is_some();
    let block_envs = block
        .as_ref()
        .map(|b| (b.envs.clone(), b.source.to_string()));
    let max_rss = input.max_rss;
    let launch_file = lf.path.display().to_string();
    let python_d = datakit_dir.join("python.d");
    let lookup_roots: Vec<PathBuf> = gitrepos
        .iter()
        .map(|r| r.join("python.d"))
        .chain(std::iter::once(python_d.clone()))
        .collect();
    let policy = discover::PathPolicy::for_block(input.insecure_paths);
    let reported = Mutex::new(Vec::<String>::new());
    let prepare = std::sync::Arc::new(move || -> anyhow::Result<WorkerSpec> {
        let from_block = block_found
            .then(|| discover::discover(&input.dirs, &python_d, &gitrepos, policy).modules);
        let found = file::find_modules(&lf, from_block.as_deref(), policy, &lookup_roots);
        // Said once, not at every restart.
        let mut seen = reported.lock().unwrap_or_else(|e| e.into_inner());
        let said: Vec<String> = found
            .missing
            .iter()
            .chain(&found.warnings)
            .cloned()
            .collect();
        if *seen != said {
            for m in &found.missing {
                tracing::error!(input = %input.name, "{m}");
            }
            for w in &found.warnings {
                tracing::warn!(input = %input.name, "{w}");
            }
            *seen = said;
        }
        if found.modules.is_empty() {
            anyhow::bail!(
                "no module of {} found: {}",
                lf.path.display(),
                found.missing.join("; ")
            );
        }
        let mut spec = run::worker_spec(&input, found.modules, found.sys_path, &defaults);
        // A kill is this mode's normal stop: keep little only in memory.
        spec.short_linger = true;
        Ok(spec)
    });
    let first = prepare()?;
    pipe::say(&format!(
        "pythond {}: input {name:?} started ({} module(s), points to {}); log: {}",
        env!("CARGO_PKG_VERSION"),
        first.modules.len(),
        first.target,
        logs::cli_log_path(&log_dir).display()
    ));
    // The same launch every time: a reload here is a script change (the
    // block's own changes come with DataKit's restart).
    let make_launch = {
        let (name, prepare) = (name.to_owned(), prepare.clone());
        move || Launch {
            input: name.clone(),
            source: launch_file.clone(),
            envs: locale_env(),
            max_rss,
            fingerprint: String::new(),
            prepare: {
                let p = prepare.clone();
                Box::new(move || p())
            },
        }
    };
    let launch = make_launch();
    // One pythond per block: each serves its own socket in the data dir,
    // and `pythond status` reads them all.
    let opts = run::ServeOptions {
        status: crate::status::server::Listen {
            socket: Some(crate::status::server::input_socket_path(
                &crate::data_dir_in(&datakit_dir),
                name,
            )),
            tcp: None,
            any: false,
        },
        reload: Some(crate::reload::Reloader {
            reconfigure: Box::new(move || {
                Ok(crate::reload::Reconfig {
                    launches: vec![make_launch()],
                    broken: Vec::new(),
                    broken_blocks: Vec::new(),
                })
            }),
            config_paths: Vec::new(),
            watch: true,
            lasterror: None,
        }),
        lasterror_target: Some(dk.listen.clone()),
        data_dir: Some(crate::data_dir_in(&datakit_dir)),
    };
    let outcomes = run::serve(
        vec![launch],
        supervisor::Settings::default(),
        cli_log,
        false,
        opts,
    )?;
    for o in &outcomes {
        if let Some(reason) = &o.config_error {
            let hint = python_from
                .map(|v| {
                    crate::cmd::mismatch_hint(
                        v,
                        block_envs.as_ref().map(|(e, at)| (&e[..], &at[..])),
                    )
                })
                .unwrap_or_default();
            pipe::say(&format!(
                "pythond: input {name:?} stopped: configuration error: {reason}{hint}"
            ));
        }
    }
    if pipe::dropped() > 0 {
        tracing::warn!(
            lines = pipe::dropped(),
            "lines for DataKit's pipe dropped (it was full)"
        );
    }
    Ok(run::exit_code(&outcomes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn datakits_command_line_is_launch_mode_and_subcommands_are_not() {
        let subs = vec![
            "run".to_string(),
            "test".into(),
            "check".into(),
            "help".into(),
        ];
        for a in [
            &["pythond", "/tmp/pythond_123", "--logname=x"][..],
            &["pythond", "/tmp/pythond_123", "--logname", "x"],
            &["pythond", "/tmp/pythond_123", "-l", "x"],
            &["pythond", "/tmp/pythond_123", "-lx"],
        ] {
            assert!(is_launch(&argv(a), &subs), "{a:?}");
        }
        for a in [
            &["pythond", "run", "--config", "x"][..],
            &["pythond", "--log-level", "debug", "run"],
            &["pythond", "rnu"],
            &["pythond"],
        ] {
            assert!(!is_launch(&argv(a), &subs), "{a:?}");
        }
    }

    #[test]
    fn names_lose_all_whitespace_as_datakit_does() {
        assert_eq!(without_whitespace(" my input\t\r\n"), "myinput");
    }
}
