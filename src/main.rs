//! `pythond`: the command line and the supervisor. It never runs Python
//! itself (it does not link libpython): each input runs in a `pythond-worker`
//! process, installed beside this binary.
//!
//! - `run`: the daemon ([`run`], [`supervisor`]).
//! - `test`: handed to `pythond-worker test` unchanged.
//! - `check`: validate the configuration and list what would run ([`check`]).
//! - `pythond FILE --logname=NAME`: launch mode, DataKit starting pythond as
//!   the `cmd` of an `[[inputs.pythond]]` block ([`launch`]).

mod bounded;
mod check;
mod cmd;
mod launch;
mod owner;
mod reload;
mod run;
mod status;
mod supervisor;
mod worker_exe;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Runs DataKit pythond collector scripts in embedded CPython.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log level for stderr and the log files (PYTHOND_LOG overrides).
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where the configuration and DataKit are.
#[derive(clap::Args, Clone)]
pub struct Where {
    /// A config file, or a DataKit conf.d directory (every *.conf below it).
    #[arg(long)]
    config: PathBuf,
    /// DataKit's install directory: python.d/, gitrepos/, conf.d/datakit.conf.
    #[arg(long, default_value = "/usr/local/datakit")]
    datakit_dir: PathBuf,
    /// Also run the blocks of DataKit's own conf.d, which DataKit runs itself
    /// (only when DataKit is not running them, or every script runs twice).
    #[arg(long)]
    run_datakit_blocks: bool,
}

/// `<datakit-dir>/cache/pythond`, pythond's data dir unless `--data-dir`
/// says otherwise: spools, quarantines, status sockets (and the logs, where
/// there is no `$HOME`).
pub fn data_dir_in(datakit_dir: &std::path::Path) -> PathBuf {
    datakit_dir.join("cache/pythond")
}

#[derive(Subcommand)]
enum Cmd {
    /// The daemon: one worker process per [[inputs.pythond]] block.
    Run {
        #[command(flatten)]
        at: Where,
        #[command(flatten)]
        opts: run::RunArgs,
    },
    /// Load scripts, run each instance once, print their points; send nothing.
    Test(TestArgs),
    /// Validate the configuration and list what would run.
    Check {
        #[command(flatten)]
        at: Where,
        /// The data dir of the pythond that runs these blocks (default:
        /// <datakit-dir>/cache/pythond): its quarantines are listed.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Show a running pythond's inputs and scripts; exit 1 if any is broken.
    Status(status::client::StatusArgs),
}

/// `pythond test`: run scripts once (or `--times N`) and show what they
/// report, sending nothing; exit 1 when a script failed to load or run.
#[derive(clap::Args)]
struct TestArgs {
    #[arg(long, value_enum, default_value = "human")]
    format: FormatArg,
    /// Write every number as a float, as the original did.
    #[arg(long)]
    numbers_as_float: bool,
    /// Run every script this many times, with a pause between rounds (rates
    /// and deltas show).
    #[arg(long, default_value_t = 1)]
    times: u32,
    /// Seconds between rounds of --times.
    #[arg(long, default_value_t = 1.0, value_parser = pythond_core::seconds::parse_arg)]
    pause_secs: f64,
    /// Test an input exactly as configured (its scripts, Python, envs, tags,
    /// timeout): the config file or conf.d it is in...
    #[arg(long, requires = "input")]
    config: Option<PathBuf>,
    /// ... and the block's name.
    #[arg(long, requires = "config")]
    input: Option<String>,
    /// DataKit's install dir, for --config (python.d/, gitrepos/).
    #[arg(long, default_value = "/usr/local/datakit")]
    datakit_dir: PathBuf,
    /// Script files or folders (discovery rules apply).
    #[arg(required_unless_present = "input", conflicts_with = "input")]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if launch::is_launch(&argv, &subcommands()) {
        std::process::exit(launch::main(argv));
    }
    let cli = Cli::parse();
    let code = match run_cli(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pythond: error: {e:#}");
            2
        }
    };
    std::process::exit(code);
}

/// The subcommand names (and `help`): a first argument that is none of
/// them, and not an option, is DataKit's runner file (launch mode).
fn subcommands() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .chain(std::iter::once("help".to_owned()))
        .collect()
}

fn run_cli(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Run { at, opts } => run::main(&at, opts, cli.log_level),
        Cmd::Check { at, data_dir } => check::main(&at, data_dir),
        Cmd::Status(args) => status::client::main(args),
        Cmd::Test(args) => test(args, &cli.log_level),
    }
}

/// `pythond test` is `pythond-worker test` with the same arguments: running
/// scripts needs the interpreter, which only the worker embeds.
fn test(args: TestArgs, log_level: &str) -> anyhow::Result<i32> {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = std::process::Command::new(worker_exe::path()?);
    cmd.args(["test", "--log-level", log_level, "--format"])
        .arg(match args.format {
            FormatArg::Human => "human",
            FormatArg::Json => "json",
        })
        .arg("--times")
        .arg(args.times.to_string())
        .arg("--pause-secs")
        .arg(args.pause_secs.to_string());
    if args.numbers_as_float {
        cmd.arg("--numbers-as-float");
    }
    match (&args.config, &args.input) {
        (Some(config), Some(input)) => {
            let (spec, envs) = run::test_spec(config, &args.datakit_dir, input)?;
            cmd.arg("--from-spec")
                .env(pythond_core::spec::SPEC_ENV, serde_json::to_string(&spec)?)
                .envs(envs);
        }
        _ => {
            cmd.arg("--").args(&args.paths);
        }
    }
    // exec: the worker's exit code, output and signals are the command's own.
    Err(anyhow::Error::new(cmd.exec()).context("cannot start pythond-worker"))
}
