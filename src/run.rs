//! `pythond run`: read the configuration, discover each input's scripts,
//! start one worker per `[[inputs.pythond]]` block under the supervisor, and
//! stop them all on SIGTERM/SIGINT. Blocks DataKit runs itself (the config is
//! DataKit's own `conf.d`, see [`crate::owner`]) are skipped unless
//! `--run-datakit-blocks` is given. Launch mode ([`crate::launch`]) runs its
//! one input through the same [`serve`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};

use pythond_core::config::{self, DataKitConf, InputConfig};
use pythond_core::discover;
use pythond_core::logs::{self, LineWriter, LogOptions, RotatingFile};
use pythond_core::names;
use pythond_core::spec::{exit, WorkerSpec};
use pythond_core::target::Target;

use crate::supervisor::{self, Launch, Outcome};
use crate::Where;

/// Options of `pythond run`.
#[derive(clap::Args, Clone)]
pub struct RunArgs {
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
    #[arg(long, default_value_t = 5.0, value_parser = pythond_core::seconds::parse_arg)]
    grace_secs: f64,
    /// How long an interrupted run may take to stop before it is declared hung.
    #[arg(long, default_value_t = 5.0, value_parser = pythond_core::seconds::parse_arg)]
    hang_grace_secs: f64,
    /// A worker without heartbeat this long is restarted.
    #[arg(long, default_value_t = 30.0, value_parser = pythond_core::seconds::parse_arg)]
    stall_timeout_secs: f64,
    /// First restart delay of a worker that died (doubles up to 60 s).
    #[arg(long, default_value_t = 1.0, value_parser = pythond_core::seconds::parse_arg)]
    restart_delay_secs: f64,
    /// Also serve the status endpoint on this TCP address (loopback only,
    /// unless --status-listen-any), e.g. 127.0.0.1:9530.
    #[arg(long)]
    status_listen: Option<std::net::SocketAddr>,
    /// Allow a non-loopback --status-listen address.
    #[arg(long)]
    status_listen_any: bool,
    /// Do not serve the status endpoint on <data-dir>/pythond.sock.
    #[arg(long)]
    no_status_socket: bool,
    /// Do not reload on changes to the configuration or the scripts, nor on
    /// SIGHUP.
    #[arg(long)]
    no_reload: bool,
    /// Do not watch files: reload on SIGHUP only.
    #[arg(long)]
    no_watch: bool,
}

/// What every worker spec of one `run` shares.
pub struct SpecDefaults {
    pub target: Target,
    pub force_target: bool,
    pub grace_secs: f64,
    pub hang_grace_secs: f64,
    /// Where spools go (`None`: no spool, e.g. a local `--output`).
    pub spool_root: Option<PathBuf>,
    pub spool_max_bytes: u64,
    pub log_dir: PathBuf,
    pub log_level: String,
}

/// Config and datakit.conf, with every problem logged; also the number of
/// config errors.
pub fn load_config(at: &Where) -> anyhow::Result<(Vec<InputConfig>, DataKitConf, usize)> {
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
    if let Some(e) = &dk.refused {
        tracing::error!("{e}");
    }
    let nerrors = set.errors.len() + usize::from(dk.refused.is_some());
    Ok((set.inputs, dk, nerrors))
}

pub fn gitrepo_dirs(at: &Where, dk: &DataKitConf) -> Vec<PathBuf> {
    dk.git_repos
        .iter()
        .map(|r| at.datakit_dir.join("gitrepos").join(r))
        .collect()
}

/// A worker spec for `input`, discovering its scripts now.
pub fn spec_for(
    input: &InputConfig,
    at: &Where,
    gitrepos: &[PathBuf],
    d: &SpecDefaults,
) -> anyhow::Result<WorkerSpec> {
    let found = discover::discover(
        &input.dirs,
        &at.datakit_dir.join("python.d"),
        gitrepos,
        discover::PathPolicy::for_block(input.insecure_paths),
    );
    for w in &found.warnings {
        tracing::warn!(input = %input.name, "{w}");
    }
    // The worker logs them (and sends them to lasterror); `check` lists them.
    let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
    if found.modules.is_empty() {
        bail!("{}", errors.join("; "));
    }
    let modules = found
        .modules
        .into_iter()
        .map(|m| (m.name, m.path))
        .collect();
    let mut spec = worker_spec(input, modules, found.sys_path, d);
    spec.resolved = found.resolved;
    spec.discovery_errors = errors;
    Ok(spec)
}

/// The Python whose packages `input`'s scripts see: its `cmd`, or, when
/// `cmd` names pythond (DataKit runs the block in launch mode), the one
/// launch mode would take from the block's `envs` (DataKit's whole
/// environment for it, literally) or, without `envs`, from ours.
fn python_of(input: &InputConfig) -> String {
    use crate::cmd::{names_pythond, python_cmd};
    if !names_pythond(&input.cmd) {
        return input.cmd.clone();
    }
    if input.envs.is_empty() {
        return python_cmd(|k| std::env::var(k).ok());
    }
    python_cmd(|k| {
        input
            .envs
            .iter()
            .filter_map(|e| e.split_once('='))
            .find(|(n, _)| n.trim() == k)
            .map(|(_, v)| v.to_owned())
    })
}

/// The worker spec of `input` with its modules found.
pub fn worker_spec(
    input: &InputConfig,
    modules: Vec<(String, PathBuf)>,
    sys_path: Vec<PathBuf>,
    d: &SpecDefaults,
) -> WorkerSpec {
    WorkerSpec {
        input: input.name.clone(),
        cmd: python_of(input),
        modules,
        resolved: Vec::new(),
        discovery_errors: Vec::new(),
        sys_path,
        tags: input.tags.clone(),
        numbers_as_float: input.numbers_as_float,
        target: d.target.clone(),
        force_target: d.force_target,
        grace_secs: d.grace_secs,
        timeout_secs: input.timeout.map(|d| d.as_secs_f64()),
        hang_grace_secs: d.hang_grace_secs,
        spool_dir: d
            .spool_root
            .as_ref()
            .map(|r| r.join(names::file_component(&input.name))),
        spool_max_bytes: d.spool_max_bytes,
        log_dir: d.log_dir.clone(),
        log_level: d.log_level.clone(),
        quarantined: Vec::new(),
        short_linger: false,
    }
}

/// `pythond test --config PATH --input NAME`: the worker spec and the
/// environment of that block, as `pythond run` would start it (points go
/// nowhere: test mode records them).
pub fn test_spec(
    config: &std::path::Path,
    datakit_dir: &std::path::Path,
    name: &str,
) -> anyhow::Result<(WorkerSpec, Vec<(String, String)>)> {
    let at = Where {
        config: config.to_owned(),
        datakit_dir: datakit_dir.to_owned(),
        run_datakit_blocks: true,
    };
    let set = config::load(config);
    for e in &set.errors {
        eprintln!("error: {e}");
    }
    let Some(input) = set.inputs.into_iter().find(|i| i.name == name) else {
        bail!(
            "no [[inputs.pythond]] block named {name:?} in {}",
            config.display()
        );
    };
    let dk = DataKitConf::load(datakit_dir)?;
    if let Some(e) = &dk.refused {
        eprintln!("error: {e}");
    }
    let defaults = SpecDefaults {
        target: Target::Stdout,
        force_target: true,
        grace_secs: 0.0,
        hang_grace_secs: 5.0,
        spool_root: None,
        spool_max_bytes: 0,
        log_dir: std::env::temp_dir(),
        log_level: "warn".into(),
    };
    let envs = config::expand_envs(&input.envs, |k| std::env::var(k).ok());
    let spec = spec_for(&input, &at, &gitrepo_dirs(&at, &dk), &defaults)?;
    Ok((spec, envs))
}

/// A block's configuration as one string: another value means the block
/// changed (where it sits in its file does not count).
pub fn fingerprint(input: &InputConfig) -> String {
    let InputConfig { source: _, .. } = input;
    let mut i = input.clone();
    i.source.line = 0;
    format!("{i:?}")
}

/// The launch of one block.
fn launch_of(
    input: InputConfig,
    at: &Arc<Where>,
    gitrepos: &[PathBuf],
    defaults: &Arc<SpecDefaults>,
) -> Launch {
    let envs = config::expand_envs(&input.envs, |k| std::env::var(k).ok());
    let (at, gitrepos, defaults) = (at.clone(), gitrepos.to_vec(), defaults.clone());
    Launch {
        input: input.name.clone(),
        source: input.source.to_string(),
        envs,
        max_rss: input.max_rss,
        fingerprint: fingerprint(&input),
        prepare: Box::new(move || spec_for(&input, &at, &gitrepos, &defaults)),
    }
}

/// Every block's launch as the configuration says now, and the config files
/// that could not be read (their blocks are missing from the launches).
fn launches(
    at: &Arc<Where>,
    defaults: &Arc<SpecDefaults>,
) -> anyhow::Result<crate::reload::Reconfig> {
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
    // A file with an error at line 0 (unreadable, refused) or not valid TOML
    // lost all its blocks; errors of one block do not count.
    let broken: Vec<(PathBuf, String)> = set
        .errors
        .iter()
        .filter(|e| e.at.line == 0 || e.message.starts_with("not valid TOML"))
        .map(|e| (e.at.file.clone(), e.message.clone()))
        .collect();
    let dk = DataKitConf::load(&at.datakit_dir)?;
    if let Some(e) = &dk.refused {
        tracing::error!("{e}");
    }
    let gitrepos = gitrepo_dirs(at, &dk);
    let inputs = crate::owner::ours(set.inputs, at);
    Ok(crate::reload::Reconfig {
        launches: inputs
            .into_iter()
            .map(|i| launch_of(i, at, &gitrepos, defaults))
            .collect(),
        broken,
        broken_blocks: set.broken_blocks,
    })
}

pub fn main(at: &Where, args: RunArgs, log_level: String) -> anyhow::Result<i32> {
    let log_dir = args.log_dir.clone().unwrap_or_else(logs::default_dir);
    let cli_log = RotatingFile::new(logs::cli_log_path(&log_dir), logs::MAX_BYTES, logs::KEEP)
        .with_context(|| format!("cannot open the log file in {}", log_dir.display()))?;
    let _guard = logs::init(LogOptions {
        level: log_level.clone(),
        cli_log: Some(cli_log.clone()),
        framework_log: None,
    });
    let (inputs, dk, _) = load_config(at)?;
    let found = inputs.len();
    let inputs = crate::owner::ours(inputs, at);
    if inputs.is_empty() {
        if found > 0 {
            bail!(
                "nothing to run: DataKit runs every [[inputs.pythond]] block in {} itself (see above)",
                at.config.display()
            );
        }
        bail!(
            "no usable [[inputs.pythond]] block in {}",
            at.config.display()
        );
    }
    let (target, force) = match (&args.output, &args.datakit_url) {
        (Some(p), _) if p.as_os_str() == "-" => (Target::Stdout, true),
        (Some(p), _) => (
            Target::File(std::path::absolute(p).unwrap_or_else(|_| p.clone())),
            true,
        ),
        (None, Some(url)) => (Target::from_listen(url), false),
        (None, None) => (dk.listen.clone(), false),
    };
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::data_dir_in(&at.datakit_dir));
    // A local output cannot fail: no spool needed.
    let spool_root = (!force).then(|| data_dir.clone());
    tracing::info!(
        inputs = inputs.len(),
        target = %target,
        spool = ?spool_root,
        "pythond {} starting",
        env!("CARGO_PKG_VERSION")
    );
    let stdout_is_points = target == Target::Stdout;
    let defaults = Arc::new(SpecDefaults {
        target: target.clone(),
        force_target: force,
        grace_secs: args.grace_secs,
        hang_grace_secs: args.hang_grace_secs,
        spool_root,
        spool_max_bytes: args.spool_max_bytes,
        log_dir,
        log_level,
    });
    let gitrepos = gitrepo_dirs(at, &dk);
    let at = Arc::new(at.clone());
    let launches_now: Vec<Launch> = inputs
        .into_iter()
        .map(|i| launch_of(i, &at, &gitrepos, &defaults))
        .collect();
    let settings = supervisor::Settings {
        restart_initial: Duration::from_secs_f64(args.restart_delay_secs.max(0.01)),
        stall_timeout: Duration::from_secs_f64(args.stall_timeout_secs.max(1.0)),
        grace: Duration::from_secs_f64(args.grace_secs.max(0.0)),
        stdout_is_points,
        ..supervisor::Settings::default()
    };
    let mut config_paths = vec![at.config.clone()];
    // Whichever datakit.conf is read (or would be, once trusted).
    if let Some(dk_conf) = DataKitConf::locate(&at.datakit_dir) {
        if !dk_conf.starts_with(&at.config) {
            config_paths.push(dk_conf);
        }
    }
    let reload = (!args.no_reload).then(|| {
        let (at, defaults) = (at.clone(), defaults.clone());
        crate::reload::Reloader {
            reconfigure: Box::new(move || launches(&at, &defaults)),
            config_paths,
            watch: !args.no_watch,
            lasterror: None,
        }
    });
    let opts = ServeOptions {
        status: crate::status::server::Listen {
            socket: (!args.no_status_socket).then(|| crate::status::server::socket_path(&data_dir)),
            tcp: args.status_listen,
            any: args.status_listen_any,
        },
        reload,
        lasterror_target: (!force).then_some(target),
        data_dir: Some(data_dir),
    };
    let outcomes = serve(launches_now, settings, cli_log, true, opts)?;
    Ok(exit_code(&outcomes))
}

/// What [`serve`] offers beside supervising.
pub struct ServeOptions {
    pub status: crate::status::server::Listen,
    pub reload: Option<crate::reload::Reloader>,
    /// Where the supervisor sends `/v1/lasterror` (reload errors).
    pub lasterror_target: Option<Target>,
    /// Where inputs keep state across restarts (quarantines).
    pub data_dir: Option<PathBuf>,
}

/// Supervise `launches` until SIGTERM/SIGINT, or until every input has
/// stopped on a configuration error; serve the status endpoint and reload
/// on changes meanwhile. What workers print goes to the runner's log and,
/// with `to_stderr`, to our stderr, through writer threads: the
/// supervisor's one runtime thread never blocks on it.
pub fn serve(
    launches: Vec<Launch>,
    settings: supervisor::Settings,
    cli_log: RotatingFile,
    to_stderr: bool,
    mut opts: ServeOptions,
) -> anyhow::Result<Vec<Outcome>> {
    let mut dests: Vec<(Box<dyn std::io::Write + Send>, &str)> = Vec::new();
    if to_stderr {
        dests.push((Box::new(std::io::stderr()), "lines-stderr"));
    }
    dests.push((Box::new(cli_log), "lines-cli-log"));
    let out = Arc::new(LineWriter::new(dests));
    let lines: supervisor::LineSink = {
        let out = out.clone();
        Arc::new(move |input: &str, _stream, line: &str| {
            // Worker log lines already name their input; other output
            // (C extensions printing to the process's fds) gets it here.
            if line.contains("input{name=") {
                out.write_line(line);
            } else {
                out.write_line(&format!("[{input}] {line}"));
            }
        })
    };
    // The supervisor only waits on pipes, timers and children: one thread.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let outcomes = rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping: signal received");
            let _ = tx.send(true);
        });
        let registry = supervisor::state::Registry::new();
        let src: crate::status::server::Source = {
            let r = registry.clone();
            Arc::new(move || r.status())
        };
        crate::status::server::serve(opts.status, src, rx.clone()).await?;
        let mut sup = supervisor::Supervisor::new(settings, lines, registry, rx.clone());
        sup.keep_state_in(opts.data_dir.take());
        for l in launches {
            sup.start(l);
        }
        // Start-up's code (configuration, discovery, launching) is not run
        // again by an idle supervisor.
        pythond_core::pageout::soon();
        match opts.reload.take() {
            Some(mut reloader) => {
                if let Some(t) = opts.lasterror_target.take() {
                    reloader.lasterror = Some(pythond_core::writer::Writer::spawn(
                        pythond_core::writer::WriterConfig {
                            target: t,
                            ..Default::default()
                        },
                    ));
                }
                crate::reload::run(&mut sup, reloader, rx.clone()).await
            }
            None => {
                let mut rx = rx.clone();
                while !*rx.borrow() && !sup.all_ended() {
                    tokio::select! {
                        _ = rx.changed() => {}
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        anyhow::Ok(sup.finish().await)
    })?;
    for o in outcomes.iter().filter(|o| !o.clean()) {
        tracing::error!(
            input = %o.input,
            status = ?o.status,
            killed = o.killed,
            lost_points = o.lost_points,
            unclean_exits = o.unclean_exits,
            "input stopped uncleanly: points were dropped, or one of its workers died (crash, signal, panic) or had to be killed"
        );
    }
    if out.dropped() > 0 {
        tracing::warn!(
            lines = out.dropped(),
            "worker output lines dropped (stderr or the log file could not keep up)"
        );
    }
    tracing::info!("stopped");
    Ok(outcomes)
}

/// `pythond`'s exit code: [`exit::CONFIG`] when an input was stopped on a
/// configuration error, 1 when one lost points in any of its workers' lives
/// or a worker died uncleanly ([`Outcome::clean`]), else 0.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    if outcomes.iter().any(|o| o.config_error.is_some()) {
        exit::CONFIG
    } else if outcomes.iter().all(Outcome::clean) {
        0
    } else {
        1
    }
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
