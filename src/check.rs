//! `pythond check`: validate the configuration and, per input, say who runs
//! it (DataKit itself or `pythond run`, see [`crate::owner`]) and list the
//! modules and classes that would run (each input's scripts are loaded by a
//! `pythond-worker list`, so nothing runs and nothing is sent), and the
//! quarantines in force for it (kept in the data dir by the pythond that
//! runs it, see `supervisor::crashes`).

use std::time::Duration;

use pythond_core::config;
use pythond_core::logs::{self, LogOptions};
use pythond_core::spec::SPEC_ENV;
use pythond_core::target::Target;

use crate::run::{gitrepo_dirs, load_config, spec_for, SpecDefaults};
use crate::Where;

/// How long loading one input's scripts may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `pythond-worker list` writes on stderr before each import (the
/// worker crate's `list::IMPORTING`; not imported from there, which would
/// link the interpreter into this binary).
const IMPORTING: &str = "importing module ";

pub fn main(at: &Where, data_dir: Option<std::path::PathBuf>) -> anyhow::Result<i32> {
    let data_dir = data_dir.unwrap_or_else(|| crate::data_dir_in(&at.datakit_dir));
    let _guard = logs::init(LogOptions {
        level: "warn".into(),
        cli_log: None,
        framework_log: None,
    });
    let (inputs, dk, nerrors) = load_config(at)?;
    let gitrepos = gitrepo_dirs(at, &dk);
    let from = match (&dk.file, &dk.refused) {
        (Some(f), _) => f.display().to_string(),
        (None, Some(e)) => format!(
            "defaults: {} not read, someone other than root and the user pythond runs as could change it (see the error)",
            e.at.file.display()
        ),
        (None, None) => "defaults".into(),
    };
    println!("DataKit: {} (from {from})", dk.listen);
    let mut failed = nerrors > 0;
    let defaults = SpecDefaults {
        target: Target::Stdout,
        force_target: true,
        grace_secs: 0.0,
        hang_grace_secs: 0.0,
        spool_root: None,
        spool_max_bytes: 0,
        log_dir: std::env::temp_dir(),
        log_level: "warn".into(),
    };
    let worker = crate::worker_exe::path()?;
    let datakit = crate::owner::datakit_reading(&at.config);
    for input in &inputs {
        println!(
            "input {:?} ({}), cmd {:?}",
            input.name, input.source, input.cmd
        );
        let who = crate::owner::runner(input, datakit.as_deref());
        match (&datakit, who.is_datakit(), at.run_datakit_blocks) {
            (Some(dk), true, false) => println!(
                "  who runs it: {who}; pythond run skips it (DataKit's configuration, in {}; --run-datakit-blocks runs it too)",
                dk.display()
            ),
            (Some(_), true, true) => println!(
                "  who runs it: {who}, and pythond run too (--run-datakit-blocks): every script runs twice while DataKit runs"
            ),
            _ => println!("  who runs it: {who}"),
        }
        print_quarantines(&data_dir, &input.name);
        let spec = match spec_for(input, at, &gitrepos, &defaults) {
            Ok(s) => s,
            Err(e) => {
                println!("  error: {e:#}");
                failed = true;
                continue;
            }
        };
        let envs = config::expand_envs(&input.envs, |k| std::env::var(k).ok());
        let mut child = std::process::Command::new(&worker)
            .arg("list")
            .env(SPEC_ENV, serde_json::to_string(&spec)?)
            .envs(envs)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let (out, finished) = crate::bounded::wait_bounded(&mut child, LIST_TIMEOUT)?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("  {line}");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !finished {
            let stuck = stderr
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix(IMPORTING))
                .unwrap_or("(before any module)");
            println!(
                "  error: loading the scripts took more than {}s: still importing module {stuck}; \
                 a module must not block at import time (move that work into run())",
                LIST_TIMEOUT.as_secs()
            );
            failed = true;
            continue;
        }
        if !out.status.success() {
            failed = true;
            for line in stderr.lines().filter(|l| !l.starts_with(IMPORTING)) {
                println!("  ! {line}");
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// List the quarantines in force for `input` (crash loops the running
/// pythond keeps out of its worker).
fn print_quarantines(data_dir: &std::path::Path, input: &str) {
    let file = crate::supervisor::crashes::file_for(data_dir, input);
    let now = std::time::SystemTime::now();
    for e in crate::supervisor::crashes::in_force(&file, now) {
        let since = now.duration_since(e.since()).unwrap_or_default().as_secs() / 60;
        let left = e.until().duration_since(now).unwrap_or_default().as_secs() / 60;
        println!(
            "  quarantined: {} (for {since} min; tried again in {left} min, or when {} changes): {}",
            e.id,
            e.file
                .as_ref()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| "its file".into()),
            e.reason
        );
    }
}
