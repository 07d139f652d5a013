//! `pythond-worker`: one input in one process, with its own embedded
//! CPython, so a crash, a hang or a leak in one input's scripts stays in that
//! input. The `pythond` supervisor starts it; it is installed beside it.
//!
//! Commands (the supervisor passes the input's [`WorkerSpec`] as JSON in
//! `PYTHOND_WORKER_SPEC`):
//! - `run`: the input's scripts on their intervals, points through the
//!   writer ([`runtime`]); the processes they start end with it
//!   ([`descendants`]).
//! - `list`: load the scripts and print what would run (`pythond check`, a
//!   reload's dry load); what they started at import ends with it.
//! - `test PATH...`: run each script once, with the daemon's timeouts, and
//!   print its points (`pythond test`, which hands its arguments over
//!   unchanged); what they started ends with it.
//! - `parse-launch FILE`: print, as JSON, what the runner file DataKit
//!   rendered for a block names (`pythond FILE --logname=NAME`, launch mode,
//!   has no interpreter to parse it with).

pub mod control;
pub mod descendants;
pub mod job;
pub mod list;
pub mod report;
pub mod runtime;
pub mod sink;
pub mod testmode;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use pythond_core::logs::{self, LogOptions, RotatingFile};
use pythond_core::spec::{WorkerSpec, SPEC_ENV};

/// One pythond input (started by `pythond`; not meant to be run by hand).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log level (PYTHOND_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the input of PYTHOND_WORKER_SPEC.
    Run,
    /// Load the input's scripts and print what would run.
    List {
        /// As JSON (a reload's dry load).
        #[arg(long)]
        json: bool,
    },
    /// Load scripts, run each instance once, print their points; send nothing.
    Test(TestArgs),
    /// Print what a DataKit runner file names (JSON): sys.path and main() calls.
    ParseLaunch {
        /// The file DataKit rendered (its `cmd` gets it as first argument).
        file: PathBuf,
    },
}

/// The arguments of `pythond test` (the supervisor binary passes them on).
#[derive(clap::Args)]
pub struct TestArgs {
    #[arg(long, value_enum, default_value = "human")]
    format: FormatArg,
    /// Write every number as a float, as the original did.
    #[arg(long)]
    numbers_as_float: bool,
    /// Run every script this many times.
    #[arg(long, default_value_t = 1)]
    times: u32,
    /// Seconds between rounds of --times.
    #[arg(long, default_value_t = 1.0, value_parser = pythond_core::seconds::parse_arg)]
    pause_secs: f64,
    /// Test the input of PYTHOND_WORKER_SPEC (its scripts, Python, tags,
    /// timeout) instead of PATHS (`pythond test --config --input`).
    #[arg(long)]
    from_spec: bool,
    /// Script files or folders (discovery rules apply).
    #[arg(required_unless_present = "from_spec")]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

/// Errors before an input could start.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("pythond-worker is started by pythond ({SPEC_ENV} is not set)")]
    NoSpec,
    #[error("bad worker spec in {SPEC_ENV}: {0}")]
    BadSpec(serde_json::Error),
    #[error("cannot open the framework log file: {0}")]
    Log(std::io::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Python(#[from] pythond_python::PythonError),
    #[error("{0}")]
    Start(String),
    #[error(transparent)]
    LaunchFile(#[from] pythond_python::LaunchFileError),
}

/// The worker binary's `main`: parses its arguments and returns the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    match run_cli(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pythond-worker: error: {e}");
            2
        }
    }
}

fn spec_from_env() -> Result<WorkerSpec, CliError> {
    let json = std::env::var(SPEC_ENV).map_err(|_| CliError::NoSpec)?;
    serde_json::from_str(&json).map_err(CliError::BadSpec)
}

fn run_cli(cli: Cli) -> Result<i32, CliError> {
    match cli.cmd {
        Cmd::Run => {
            let spec = spec_from_env()?;
            let framework_log = RotatingFile::new(
                logs::framework_log_path(&spec.log_dir, &spec.input),
                logs::MAX_BYTES,
                logs::KEEP,
            )
            .map_err(CliError::Log)?;
            let guard = logs::init(LogOptions {
                level: cli.log_level,
                cli_log: None,
                framework_log: Some(framework_log),
            });
            let code = descendants::ended_after(|| runtime::main(spec));
            drop(guard); // flush the last lines before the process exits
            Ok(code)
        }
        Cmd::List { json } => {
            let spec = spec_from_env()?;
            let _guard = logs::init(LogOptions {
                level: "warn".into(),
                cli_log: None,
                framework_log: None,
            });
            // A process a module starts at import ends with the dry load or
            // `pythond check` that imported it, as with a running worker.
            Ok(descendants::ended_after(|| list::main(spec, json)))
        }
        Cmd::ParseLaunch { file } => {
            let calls = pythond_python::read_launch_file(&file)?;
            let json = serde_json::to_string(&calls).expect("strings serialize");
            println!("{json}");
            Ok(0)
        }
        Cmd::Test(args) => {
            let _guard = logs::init(LogOptions {
                level: cli.log_level,
                cli_log: None,
                framework_log: None,
            });
            descendants::ended_after(|| test(args))
        }
    }
}

fn test(args: TestArgs) -> Result<i32, CliError> {
    let mut plan = testmode::Plan {
        input_tags: Vec::new(),
        numbers_as_float: args.numbers_as_float,
        limits: testmode::Limits::default(),
        times: args.times.max(1),
        pause: pythond_core::seconds::to_duration(args.pause_secs.max(0.0)).unwrap_or_default(),
    };
    let (outcome, discovery_failed) = if args.from_spec {
        // An input exactly as configured: its Python's site-packages, its
        // tags, its block's timeout.
        let spec = spec_from_env()?;
        for e in &spec.discovery_errors {
            eprintln!("error: {e}");
        }
        plan.input_tags = spec.tags.clone();
        plan.numbers_as_float |= spec.numbers_as_float;
        plan.limits.timeout = spec.block_timeout();
        let outcome = testmode::run(
            |ctx| runtime::start_python(&spec, ctx),
            &spec.modules,
            &plan,
        )
        .map_err(|e| CliError::Start(e.to_string()))?;
        (outcome, !spec.discovery_errors.is_empty())
    } else {
        let cwd = std::env::current_dir()?;
        let entries: Vec<String> = args
            .paths
            .iter()
            .map(|p| {
                std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        // The files given are run as `python3 file.py` would run them: a file
        // others could change is run with a warning, not refused.
        let found = pythond_core::discover::discover(
            &entries,
            &cwd,
            &[],
            pythond_core::discover::PathPolicy::Warn("pythond test runs the files it is given"),
        );
        for w in &found.warnings {
            eprintln!("warning: {w}");
        }
        for e in &found.errors {
            eprintln!("error: {e}");
        }
        let modules: Vec<(String, PathBuf)> = found
            .modules
            .into_iter()
            .map(|m| (m.name, m.path))
            .collect();
        let setup = pythond_python::InterpreterSetup {
            cmd: None,
            sys_path: found.sys_path,
        };
        let outcome = testmode::run(|ctx| pythond_python::init(&setup, ctx), &modules, &plan)?;
        (outcome, !found.errors.is_empty())
    };
    let fmt = match args.format {
        FormatArg::Human => testmode::Format::Human,
        FormatArg::Json => testmode::Format::Json,
    };
    testmode::print(
        &outcome,
        fmt,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(if outcome.failed() || discovery_failed {
        1
    } else {
        0
    })
}
