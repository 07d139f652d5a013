//! Hot reload: a change to the configuration or to an input's scripts
//! restarts only that input's worker, and only once the new version has
//! loaded cleanly in a dry load (`pythond-worker list --json`, nothing runs).
//! A broken edit (syntax or import error, invalid block) leaves the old
//! version running and is reported: in the status (`reload_error`), the
//! log, and DataKit's `/v1/lasterror`. A new block starts an input; a
//! removed block stops it; spools survive both.
//!
//! Triggers: files under the config path and under each input's script
//! folders, watched with notify (events debounced for half a second;
//! `__pycache__` and `.pyc` ignored), and SIGHUP, which reloads everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::mpsc;

use pythond_core::spec::SPEC_ENV;
use pythond_core::status::{LoadReport, ScriptState};
use pythond_core::writer::Writer;

use crate::supervisor::state::error_now;
use crate::supervisor::{Launch, Supervisor};

/// Every block's launch as the configuration says now.
pub struct Reconfig {
    pub launches: Vec<Launch>,
    /// Config files that could not be read or parsed: their inputs keep the
    /// version that runs.
    pub broken: Vec<(PathBuf, String)>,
}

/// How to reload.
pub struct Reloader {
    /// Recompute every block's launch from the configuration.
    pub reconfigure: Box<dyn Fn() -> anyhow::Result<Reconfig> + Send + Sync>,
    /// Files and folders whose changes are configuration changes.
    pub config_paths: Vec<PathBuf>,
    /// Watch files (else reload on SIGHUP only).
    pub watch: bool,
    /// Where `/v1/lasterror` goes for reload errors (`None`: not sent).
    pub lasterror: Option<Writer>,
}

/// What set a reload off.
#[derive(Debug)]
enum Trigger {
    /// SIGHUP: everything.
    Signal,
    /// These paths changed.
    Paths(Vec<PathBuf>),
}

/// A change worth a look: Python sources and config files (a script's own
/// data files beside it, `__pycache__`, editors' swap files are not).
fn interesting(p: &Path) -> bool {
    !p.components().any(|c| c.as_os_str() == "__pycache__")
        && p.extension().is_some_and(|e| e == "py" || e == "conf")
}

/// A digest of what `spec` would import: module names, paths and contents.
/// A worker restarts only when it differs from the running version's.
pub fn scripts_digest(spec: &pythond_core::spec::WorkerSpec) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for (name, path) in &spec.modules {
        name.hash(&mut h);
        path.hash(&mut h);
        std::fs::read(path).unwrap_or_default().hash(&mut h);
    }
    spec.discovery_errors.hash(&mut h);
    h.finish()
}

/// Watches files for the controller.
struct Watcher {
    debouncer: notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    watched: BTreeSet<PathBuf>,
}

impl Watcher {
    fn new(tx: mpsc::UnboundedSender<Trigger>) -> anyhow::Result<Watcher> {
        let debouncer = new_debouncer(
            Duration::from_millis(500),
            None,
            move |res: DebounceEventResult| {
                let Ok(events) = res else { return };
                let paths: Vec<PathBuf> = events
                    .iter()
                    .filter(|e| {
                        matches!(
                            e.kind,
                            EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                        ) && !matches!(
                            e.kind,
                            EventKind::Modify(
                                notify_debouncer_full::notify::event::ModifyKind::Metadata(_)
                            )
                        )
                    })
                    .flat_map(|e| e.paths.iter().cloned())
                    .filter(|p| interesting(p))
                    .collect();
                if !paths.is_empty() {
                    let _ = tx.send(Trigger::Paths(paths));
                }
            },
        )
        .context("cannot watch files for reload")?;
        Ok(Watcher {
            debouncer,
            watched: BTreeSet::new(),
        })
    }

    /// Watch exactly `want` (folders recursively; a file through its folder,
    /// so editors that save by renaming are seen).
    fn sync(&mut self, want: BTreeSet<PathBuf>) {
        let want: BTreeSet<PathBuf> = want
            .into_iter()
            .filter_map(|p| {
                if p.is_dir() {
                    Some(p)
                } else {
                    p.parent().map(Path::to_owned)
                }
            })
            .collect();
        for gone in self.watched.difference(&want).cloned().collect::<Vec<_>>() {
            let _ = self.debouncer.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for new in want
            .difference(&self.watched.clone())
            .cloned()
            .collect::<Vec<_>>()
        {
            match self.debouncer.watch(&new, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.insert(new);
                }
                Err(e) => tracing::warn!(path = %new.display(), "cannot watch for reload: {e}"),
            }
        }
    }
}

/// Run the reload controller until `shutdown`, or until every input has
/// ended on its own (configuration errors).
pub async fn run(
    sup: &mut Supervisor,
    reloader: Reloader,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = match reloader.watch.then(|| Watcher::new(tx.clone())) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => {
            tracing::warn!("{e:#}; reload only on SIGHUP");
            None
        }
    };
    let sighup_tx = tx.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let _ = sighup_tx.send(Trigger::Signal);
        }
    });
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        if let Some(w) = watcher.as_mut() {
            w.sync(watch_set(sup, &reloader));
        }
        let trigger = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = check.tick() => {
                if sup.all_ended() {
                    return;
                }
                continue;
            }
            t = rx.recv() => match t { Some(t) => t, None => return },
        };
        // Changes come in bursts (an editor, a git checkout): take them all.
        let mut everything = matches!(trigger, Trigger::Signal);
        let mut paths = match trigger {
            Trigger::Paths(p) => p,
            Trigger::Signal => Vec::new(),
        };
        while let Ok(t) = rx.try_recv() {
            match t {
                Trigger::Signal => everything = true,
                Trigger::Paths(p) => paths.extend(p),
            }
        }
        if everything {
            tracing::info!("SIGHUP: reloading the configuration and every input's scripts");
        }
        reload(sup, &reloader, everything, &paths).await;
    }
}

/// Folders to watch: the configuration and every input's script folders.
fn watch_set(sup: &Supervisor, reloader: &Reloader) -> BTreeSet<PathBuf> {
    let mut want: BTreeSet<PathBuf> = reloader.config_paths.iter().cloned().collect();
    for name in sup.registry().names() {
        let st = sup.registry().input(&name);
        let st = st.lock().unwrap_or_else(|e| e.into_inner());
        want.extend(st.script_dirs.iter().cloned());
    }
    want
}

async fn reload(sup: &mut Supervisor, r: &Reloader, everything: bool, paths: &[PathBuf]) {
    let config_changed = everything
        || paths
            .iter()
            .any(|p| r.config_paths.iter().any(|c| p.starts_with(c)));
    // Inputs whose scripts changed.
    let mut scripts_changed: BTreeSet<String> = BTreeSet::new();
    for name in sup.registry().names() {
        let st = sup.registry().input(&name);
        let dirs = st
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .script_dirs
            .clone();
        if everything || paths.iter().any(|p| dirs.iter().any(|d| p.starts_with(d))) {
            scripts_changed.insert(name);
        }
    }
    if !config_changed && scripts_changed.is_empty() {
        return;
    }
    let conf = match (r.reconfigure)() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("reload: the configuration cannot be read: {e:#}; every input keeps running as it is");
            tracing::error!("{msg}");
            for name in sup.registry().names() {
                report_error(sup, r, &name, &msg);
            }
            return;
        }
    };
    let running = sup.inputs();
    let mut seen = BTreeSet::new();
    for launch in conf.launches {
        let name = launch.input.clone();
        seen.insert(name.clone());
        match running.iter().find(|(n, _)| *n == name) {
            None => {
                if let Some(why) = dry_load(&launch, &[]).await {
                    let msg = format!("reload: new input {name:?} not started: {why}");
                    tracing::error!("{msg}");
                    report_error(sup, r, &name, &msg);
                    continue;
                }
                tracing::info!(input = %name, "reload: new input started");
                sup.start(launch);
            }
            Some((_, fp)) => {
                let block_changed = *fp != launch.fingerprint;
                if !block_changed && !scripts_changed.contains(&name) {
                    continue;
                }
                if !block_changed && !everything {
                    // Something under its folders changed: is it what it imports?
                    // (SIGHUP restarts every input: a data file a script reads
                    // at import is no .py.)
                    let running_digest = sup
                        .registry()
                        .input(&name)
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .scripts_digest;
                    match (launch.prepare)() {
                        Ok(spec) if scripts_digest(&spec) == running_digest => continue,
                        _ => {}
                    }
                }
                let broken_now = not_loaded(sup, &name);
                if let Some(why) = dry_load(&launch, &broken_now).await {
                    let msg = format!(
                        "reload of input {name:?} refused, the version that runs goes on: {why}"
                    );
                    tracing::error!("{msg}");
                    report_error(sup, r, &name, &msg);
                    continue;
                }
                sup.registry()
                    .input(&name)
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .reload_error = None;
                tracing::info!(
                    input = %name,
                    "reload: {} changed, restarting its worker",
                    if block_changed { "its block" } else { "its scripts" }
                );
                sup.restart(&name, Some(launch));
            }
        }
    }
    for (name, _) in running {
        if seen.contains(&name) {
            continue;
        }
        // A block of a file that could not be read is not gone.
        let source = sup
            .registry()
            .input(&name)
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .source
            .clone();
        if let Some((file, why)) = conf
            .broken
            .iter()
            .find(|(f, _)| source.starts_with(&f.display().to_string()))
        {
            let msg = format!(
                "reload: {} cannot be read ({why}); input {name:?} keeps running as it is",
                file.display()
            );
            tracing::error!("{msg}");
            report_error(sup, r, &name, &msg);
            continue;
        }
        tracing::info!(input = %name, "reload: its block was removed, stopping it");
        sup.stop(&name).await;
    }
}

/// The modules of `name` that do not load in the version that runs.
fn not_loaded(sup: &Supervisor, name: &str) -> Vec<String> {
    let st = sup.registry().input(name);
    let st = st.lock().unwrap_or_else(|e| e.into_inner());
    st.report
        .as_ref()
        .map(|r| {
            r.scripts
                .iter()
                .filter(|s| s.state == ScriptState::NotLoaded)
                .map(|s| s.module.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn report_error(sup: &Supervisor, r: &Reloader, name: &str, msg: &str) {
    sup.registry()
        .input(name)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reload_error = Some(error_now(msg));
    if let Some(w) = &r.lasterror {
        w.lasterror(None, name, msg);
    }
}

/// Load `launch`'s scripts in a `pythond-worker list --json` (nothing runs)
/// and say why the new version may not replace the old one, if it may not:
/// it finds no script, or a module fails that did not fail before
/// (`broken_now`: failing already, it does not hold a fix of another back).
async fn dry_load(launch: &Launch, broken_now: &[String]) -> Option<String> {
    let spec = match (launch.prepare)() {
        Ok(s) => s,
        Err(e) => return Some(format!("{e:#}")),
    };
    let worker = match crate::worker_exe::path() {
        Ok(w) => w,
        Err(e) => return Some(format!("{e:#}")),
    };
    let json = match serde_json::to_string(&spec) {
        Ok(j) => j,
        Err(e) => return Some(e.to_string()),
    };
    let out = tokio::process::Command::new(worker)
        .args(["list", "--json"])
        .env(SPEC_ENV, json)
        .envs(launch.envs.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(30), out).await {
        Err(_) => return Some("loading the scripts took more than 30 s".into()),
        Ok(Err(e)) => return Some(format!("cannot run the dry load: {e}")),
        Ok(Ok(o)) => o,
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(report) = text
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<LoadReport>(l).ok())
    else {
        return Some(format!(
            "the dry load failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    };
    let new_failures: Vec<String> = report
        .failures
        .iter()
        .filter(|(m, _, _)| !broken_now.contains(m))
        .map(|(m, c, e)| {
            let what = c
                .as_ref()
                .map(|c| format!("{m}.{c}"))
                .unwrap_or_else(|| m.clone());
            format!("{what}: {}", last_line(e))
        })
        .collect();
    if !new_failures.is_empty() {
        return Some(new_failures.join("; "));
    }
    if report.scripts.is_empty() {
        let mut why = vec!["no script to run".to_owned()];
        why.extend(report.discovery_errors.iter().cloned());
        return Some(why.join("; "));
    }
    None
}

/// The line of a traceback that says what went wrong.
fn last_line(e: &str) -> &str {
    e.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or(e)
        .trim()
}
