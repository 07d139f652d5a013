use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Runs DataKit pythond collector scripts in embedded CPython.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load scripts, run each once, print their points; send nothing.
    Test {
        #[arg(long, value_enum, default_value = "human")]
        format: FormatArg,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PYTHOND_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.cmd {
        Cmd::Test { format, paths } => {
            let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
            let (mods, sys_path) = pythond::testmode::simple_modules(&refs);
            let setup = pythond::python::InterpreterSetup {
                site_dirs: vec![],
                sys_path,
            };
            let outcome = pythond::testmode::run_once(&mods, &setup, false)?;
            let fmt = match format {
                FormatArg::Human => pythond::testmode::Format::Human,
                FormatArg::Json => pythond::testmode::Format::Json,
            };
            pythond::testmode::print(
                &outcome,
                fmt,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )?;
            std::process::exit(if outcome.failed() { 1 } else { 0 });
        }
    }
}
