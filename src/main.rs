//! The `pythond` command line: `run` (the daemon), `test`, `check`, and the
//! hidden `worker` the daemon starts for each input.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use pythond::config::{self, DataKitAddr, DataKitConf, InputConfig};
use pythond::discover;
use pythond::logs::{self, LogOptions, RotatingFile};
use pythond::supervisor::{self, Backoff, Launch};
use pythond::testmode;
use pythond::worker::{self, WorkerSpec};

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

#[derive(clap::Args, Clone)]
struct Where {
    /// A config file, or a DataKit conf.d directory (every *.conf below it).
    #[arg(long)]
    config: PathBuf,
    /// DataKit's install directory: python.d/, gitrepos/, conf.d/datakit.conf.
    #[arg(long, default_value = "/usr/local/datakit")]
    datakit_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// The daemon: one worker process per [[inputs.pythond]] block.
    Run {
        #[command(flatten)]
        at: Where,
        /// DataKit's address, overriding datakit.conf: http://host:port or a Unix socket path.
        #[arg(long)]
        datakit_url: Option<String>,
        /// Write points here (`-` for stdout, or a file) instead of posting them.
        #[arg(long)]
        output: Option<PathBuf>,
        /// Where the log files go (default: $HOME).
        #[arg(long)]
        log_dir: Option<PathBuf>,
        /// Where each input's disk spool lives (default: <datakit-dir>/cache/pythond).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Largest disk spool per input, in bytes; past it the oldest data is dropped (logged).
        #[arg(long, default_value_t = 512 << 20)]
        spool_max_bytes: u64,
        /// On SIGTERM: how long runs in progress and the final flush may take.
        #[arg(long, default_value_t = 5.0)]
        grace_secs: f64,
        /// How long an interrupted run may take to stop before it is declared hung.
        #[arg(long, default_value_t = 5.0)]
        hang_grace_secs: f64,
        /// A worker without heartbeat this long is restarted.
        #[arg(long, default_value_t = 30.0)]
        stall_timeout_secs: f64,
        /// First restart delay of a worker that died (doubles up to 60 s).
        #[arg(long, default_value_t = 1.0)]
        restart_delay_secs: f64,
    },
    /// Load scripts, run each instance once, print their points; send nothing.
    Test {
        #[arg(long, value_enum, default_value = "human")]
        format: FormatArg,
        /// Write every number as a float, as the original did.
        #[arg(long)]
        numbers_as_float: bool,
        /// Script files or folders (discovery rules apply).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Validate the configuration and list what would run.
    Check {
        #[command(flatten)]
        at: Where,
    },
    /// One input's worker process (started by `run`).
    #[command(hide = true)]
    Worker {
        /// Only load the scripts and print them as JSON (for `check`).
        #[arg(long)]
        list: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Human,
    Json,
}

fn main() {
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

fn run_cli(cli: Cli) -> anyhow::Result<i32> {
    match cli.cmd {
        Cmd::Test {
            format,
            numbers_as_float,
            paths,
        } => {
            logs::init(LogOptions {
                level: cli.log_level,
                cli_log: None,
                framework_log: None,
            });
            test(format, numbers_as_float, &paths)
        }
        Cmd::Check { at } => {
            logs::init(LogOptions {
                level: "warn".into(),
                cli_log: None,
                framework_log: None,
            });
            check(&at)
        }
        Cmd::Worker { list } => {
            let spec: WorkerSpec = serde_json::from_str(
                &std::env::var(worker::SPEC_ENV)
                    .context("pythond worker is started by pythond run")?,
            )
            .context("bad worker spec")?;
            let framework_log = if list {
                None
            } else {
                Some(
                    RotatingFile::new(
                        logs::framework_log_path(&spec.log_dir, &spec.input),
                        logs::MAX_BYTES,
                        logs::KEEP,
                    )
                    .context("framework log file")?,
                )
            };
            logs::init(LogOptions {
                level: cli.log_level,
                cli_log: None,
                framework_log,
            });
            Ok(if list {
                worker::list(spec)
            } else {
                worker::main(spec)
            })
        }
        Cmd::Run {
            at,
            datakit_url,
            output,
            log_dir,
            data_dir,
            spool_max_bytes,
            grace_secs,
            hang_grace_secs,
            stall_timeout_secs,
            restart_delay_secs,
        } => {
            let log_dir = log_dir.unwrap_or_else(logs::default_dir);
            let cli_log =
                RotatingFile::new(logs::cli_log_path(&log_dir), logs::MAX_BYTES, logs::KEEP)
                    .with_context(|| {
                        format!("cannot open the log file in {}", log_dir.display())
                    })?;
            logs::init(LogOptions {
                level: cli.log_level.clone(),
                cli_log: Some(cli_log.clone()),
                framework_log: None,
            });
            let opts = RunOptions {
                datakit_url,
                output,
                log_dir,
                log_level: cli.log_level,
                data_dir,
                spool_max_bytes,
                grace_secs,
                hang_grace_secs,
                backoff: Backoff {
                    initial: Duration::from_secs_f64(restart_delay_secs.max(0.01)),
                    stall_timeout: Duration::from_secs_f64(stall_timeout_secs.max(1.0)),
                    ..Backoff::default()
                },
            };
            run(&at, opts, cli_log)
        }
    }
}

struct RunOptions {
    datakit_url: Option<String>,
    output: Option<PathBuf>,
    log_dir: PathBuf,
    log_level: String,
    data_dir: Option<PathBuf>,
    spool_max_bytes: u64,
    grace_secs: f64,
    hang_grace_secs: f64,
    backoff: Backoff,
}

/// Config and datakit.conf, with every problem logged.
fn load_config(at: &Where) -> anyhow::Result<(Vec<InputConfig>, DataKitConf, usize)> {
    let set = config::load(&at.config);
    if set.files.is_empty() {
        bail!("no *.conf file found at {}", at.config.display());
    }
    for w in &set.warnings {
        tracing::warn!("{w}");
    }
    for e in &set.errors {
        tracing::error!("{e}");
    }
    let dk = DataKitConf::load(&at.datakit_dir)?;
    Ok((set.inputs, dk, set.errors.len()))
}

fn gitrepo_dirs(at: &Where, dk: &DataKitConf) -> Vec<PathBuf> {
    dk.git_repos
        .iter()
        .map(|r| at.datakit_dir.join("gitrepos").join(r))
        .collect()
}

fn target_string(addr: &DataKitAddr) -> String {
    match addr {
        DataKitAddr::Http(u) => u.clone(),
        DataKitAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}

/// A worker spec for `input`, discovering its scripts now.
fn spec_for(
    input: &InputConfig,
    at: &Where,
    gitrepos: &[PathBuf],
    target: &str,
    force_target: bool,
    opts: &RunOptions,
    spool_root: Option<&Path>,
) -> Result<WorkerSpec, String> {
    let found = discover::discover(&input.dirs, &at.datakit_dir.join("python.d"), gitrepos);
    for w in &found.warnings {
        tracing::warn!(input = %input.name, "{w}");
    }
    if found.modules.is_empty() {
        return Err(found.errors.join("; "));
    }
    for e in &found.errors {
        tracing::error!(input = %input.name, "{e}");
    }
    Ok(WorkerSpec {
        input: input.name.clone(),
        cmd: input.cmd.clone(),
        modules: found
            .modules
            .into_iter()
            .map(|m| (m.name, m.path))
            .collect(),
        sys_path: found.sys_path,
        tags: input.tags.clone(),
        numbers_as_float: input.numbers_as_float,
        target: target.to_owned(),
        force_target,
        grace_secs: opts.grace_secs,
        timeout_secs: input.timeout.map(|d| d.as_secs_f64()),
        hang_grace_secs: opts.hang_grace_secs,
        spool_dir: spool_root.map(|r| r.join(sanitize(&input.name))),
        spool_max_bytes: opts.spool_max_bytes,
        log_dir: opts.log_dir.clone(),
        log_level: opts.log_level.clone(),
    })
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn run(at: &Where, opts: RunOptions, cli_log: RotatingFile) -> anyhow::Result<i32> {
    let (inputs, dk, _) = load_config(at)?;
    if inputs.is_empty() {
        bail!(
            "no usable [[inputs.pythond]] block in {}",
            at.config.display()
        );
    }
    let (target, force) = match (&opts.output, &opts.datakit_url) {
        (Some(p), _) if p.as_os_str() == "-" => ("-".to_owned(), true),
        (Some(p), _) => {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            (format!("file:{}", abs.display()), true)
        }
        (None, Some(url)) => (target_string(&config::parse_listen(url)), false),
        (None, None) => (target_string(&dk.listen), false),
    };
    // A local output cannot fail: no spool needed.
    let spool_root = (!force).then(|| {
        opts.data_dir
            .clone()
            .unwrap_or_else(|| at.datakit_dir.join("cache/pythond"))
    });
    tracing::info!(
        inputs = inputs.len(),
        target = %target,
        spool = ?spool_root,
        "pythond {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let gitrepos = gitrepo_dirs(at, &dk);
    let opts = Arc::new(opts);
    let at = Arc::new(at.clone());
    let launches: Vec<Launch> = inputs
        .into_iter()
        .map(|input| {
            let envs = config::expand_envs(&input.envs, |k| std::env::var(k).ok());
            let (at, gitrepos, target, opts, spool_root) = (
                at.clone(),
                gitrepos.clone(),
                target.clone(),
                opts.clone(),
                spool_root.clone(),
            );
            let name = input.name.clone();
            Launch {
                input: name,
                envs,
                prepare: Box::new(move || {
                    spec_for(
                        &input,
                        &at,
                        &gitrepos,
                        &target,
                        force,
                        &opts,
                        spool_root.as_deref(),
                    )
                }),
            }
        })
        .collect();
    // The supervisor only waits on pipes, timers and children: one thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let backoff = opts.backoff;
    let grace = Duration::from_secs_f64(opts.grace_secs.max(0.0));
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            worker::wait_for_signal().await;
            tracing::info!("stopping: signal received");
            let _ = tx.send(true);
        });
        let stdout_is_points = force && target == "-";
        let lines: supervisor::LineSink = Arc::new(move |input: &str, stream, line: &str| {
            use std::io::Write as _;
            if stream == supervisor::Stream::Stdout && stdout_is_points {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                return;
            }
            // Worker log lines already name their input; other output
            // (C extensions printing to the process's fds) gets it here.
            let text = if line.contains("input{name=") {
                format!("{line}\n")
            } else {
                format!("[{input}] {line}\n")
            };
            eprint!("{text}");
            let _ = cli_log.append(text.as_bytes());
        });
        supervisor::supervise(launches, backoff, grace, lines, rx).await;
    });
    tracing::info!("stopped");
    Ok(0)
}

fn test(format: FormatArg, numbers_as_float: bool, paths: &[PathBuf]) -> anyhow::Result<i32> {
    let cwd = std::env::current_dir()?;
    let entries: Vec<String> = paths
        .iter()
        .map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let found = discover::discover(&entries, &cwd, &[]);
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
    let setup = pythond::python::InterpreterSetup {
        site_dirs: vec![],
        sys_path: found.sys_path,
    };
    let outcome = testmode::run_once(&modules, &setup, numbers_as_float)?;
    let fmt = match format {
        FormatArg::Human => testmode::Format::Human,
        FormatArg::Json => testmode::Format::Json,
    };
    testmode::print(
        &outcome,
        fmt,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(if outcome.failed() || !found.errors.is_empty() {
        1
    } else {
        0
    })
}

fn check(at: &Where) -> anyhow::Result<i32> {
    let (inputs, dk, nerrors) = load_config(at)?;
    let gitrepos = gitrepo_dirs(at, &dk);
    println!(
        "DataKit: {} (from {})",
        target_string(&dk.listen),
        dk.file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "defaults".into())
    );
    let mut failed = nerrors > 0;
    let opts = RunOptions {
        datakit_url: None,
        output: None,
        log_dir: std::env::temp_dir(),
        log_level: "warn".into(),
        data_dir: None,
        spool_max_bytes: 0,
        grace_secs: 0.0,
        hang_grace_secs: 0.0,
        backoff: Backoff::default(),
    };
    for input in &inputs {
        println!(
            "input {:?} ({}), cmd {:?}",
            input.name, input.source, input.cmd
        );
        let spec = match spec_for(input, at, &gitrepos, "-", true, &opts, None) {
            Ok(s) => s,
            Err(e) => {
                println!("  error: {e}");
                failed = true;
                continue;
            }
        };
        let envs = config::expand_envs(&input.envs, |k| std::env::var(k).ok());
        let out = std::process::Command::new(std::env::current_exe()?)
            .args(["worker", "--list"])
            .env(worker::SPEC_ENV, serde_json::to_string(&spec)?)
            .envs(envs)
            .output()?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            println!("  {line}");
        }
        if !out.status.success() {
            failed = true;
            for line in String::from_utf8_lossy(&out.stderr).lines() {
                println!("  ! {line}");
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
