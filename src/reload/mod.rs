//! Hot reload: a change to the configuration or to an input's scripts
//! restarts only that input's worker, and only once the new version has
//! loaded cleanly in a dry load (`pythond-worker list --json`, nothing runs).
//! A broken edit (syntax or import error, a block that does not parse)
//! leaves the old version running and is reported: in the status
//! (`reload_error`), the log, and DataKit's `/v1/lasterror`; the error is
//! cleared when a fixed version replaces it, or when the files are back to
//! what runs (same digest). A new block starts an input (one that does not
//! load is shown with its error until it loads or its block is removed); a
//! removed block stops it; spools survive both.
//!
//! The design: `docs/design.md`, "Processes" (Reload).
//!
//! Everything that touches the file system (reading the configuration,
//! discovery, digests, setting up watches) runs on the blocking pool: the
//! supervisor has one runtime thread.
//!
//! Triggers: files under the config path and under each input's script
//! folders, watched with notify (events debounced for half a second;
//! `__pycache__` and `.pyc` ignored), and SIGHUP, which reloads everything.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use pythond_core::config::BrokenBlock;
use pythond_core::status::ScriptState;
use pythond_core::writer::Writer;

use crate::supervisor::state::{error_now, InputState};
use crate::supervisor::{off_runtime, Launch, Supervisor};

use dry_load::{dry_load, prepared};
use watch::Watcher;

/// Every block's launch as the configuration says now.
pub struct Reconfig {
    pub launches: Vec<Launch>,
    /// Config files that could not be read or parsed: their inputs keep the
    /// version that runs.
    pub broken: Vec<(PathBuf, String)>,
    /// Blocks that do not parse: their inputs (by name, or every input of
    /// the file when the name cannot be read) keep the version that runs.
    pub broken_blocks: Vec<BrokenBlock>,
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

mod dry_load;
mod watch;

/// Run the reload controller until `shutdown`, or until every input has
/// ended on its own (configuration errors).
pub async fn run(
    sup: &mut Supervisor,
    reloader: Reloader,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let reloader = Arc::new(reloader);
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
        if let Some(w) = watcher.take() {
            let want = watch_set(sup, &reloader);
            if w.needs_sync(&want) {
                let (w, newly) = off_runtime(move || {
                    let mut w = w;
                    let newly = w.sync(want);
                    (w, newly)
                })
                .await;
                watcher = Some(w);
                // An input's folders are watched only once its worker has
                // started: an edit made before that was not seen. Its
                // digest tells (nothing restarts if it is what runs).
                let scripts: Vec<PathBuf> = newly
                    .into_iter()
                    .filter(|p| {
                        !reloader
                            .config_paths
                            .iter()
                            .any(|c| c.starts_with(p) || p.starts_with(c))
                    })
                    .collect();
                if !scripts.is_empty() {
                    reload(sup, &reloader, false, &scripts).await;
                    pythond_core::pageout::soon();
                }
            } else {
                watcher = Some(w);
            }
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
        // Reading the configuration, discovering, dry loads: start-up's
        // code again.
        pythond_core::pageout::soon();
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

async fn reload(sup: &mut Supervisor, r: &Arc<Reloader>, everything: bool, paths: &[PathBuf]) {
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
    // Reading the configuration and discovering scripts touch the file
    // system: on the blocking pool, not the supervisor's one thread.
    let conf = match off_runtime({
        let r = r.clone();
        move || (r.reconfigure)()
    })
    .await
    {
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
                let (launch, spec) = prepared(launch).await;
                let why = match &spec {
                    Ok(spec) => {
                        // Watched from now on, so that a fix of its scripts
                        // is seen too.
                        with_state(sup, &name, |s| s.script_dirs = spec.sys_path.clone());
                        dry_load(spec, &launch.envs, &[]).await
                    }
                    Err(e) => Some(format!("{e:#}")),
                };
                if let Some(why) = why {
                    let msg = format!("reload: new input {name:?} not started: {why}");
                    tracing::error!("{msg}");
                    report_error(sup, r, &name, &msg);
                    continue;
                }
                with_state(sup, &name, |s| s.reload_error = None);
                tracing::info!(input = %name, "reload: new input started");
                sup.start(launch);
            }
            Some((_, fp)) => {
                let block_changed = *fp != launch.fingerprint;
                let changed = block_changed || scripts_changed.contains(&name);
                let failed_before = with_state(sup, &name, |s| s.reload_error.is_some());
                if !changed && !failed_before {
                    continue;
                }
                if !block_changed && !everything && with_state(sup, &name, |s| s.starts == 0) {
                    // No worker started yet: its first start reads the
                    // files as they are now.
                    continue;
                }
                let (launch, spec) = prepared(launch).await;
                if !block_changed && !everything {
                    // Something under its folders changed: is it what it
                    // imports? (SIGHUP restarts every input: a data file a
                    // script reads at import is no .py.)
                    let running_digest = with_state(sup, &name, |s| s.scripts_digest);
                    let digest = match &spec {
                        Ok(spec) => {
                            let spec = spec.clone();
                            Some(off_runtime(move || spec.scripts_digest()).await)
                        }
                        Err(_) => None,
                    };
                    if digest == Some(running_digest) {
                        // What runs is what the files and the block say now
                        // (a broken edit was undone): nothing to restart,
                        // and an earlier refusal no longer holds.
                        if failed_before {
                            tracing::info!(input = %name, "reload: back to the version that runs; its reload error is cleared");
                            with_state(sup, &name, |s| s.reload_error = None);
                        }
                        continue;
                    }
                    if !changed {
                        // Still not what runs, and nothing new about it: the
                        // refusal stands (said already).
                        continue;
                    }
                }
                let broken_now = not_loaded(sup, &name);
                let why = match &spec {
                    Ok(spec) => dry_load(spec, &launch.envs, &broken_now).await,
                    Err(e) => Some(format!("{e:#}")),
                };
                if let Some(why) = why {
                    let msg = format!(
                        "reload of input {name:?} refused, the version that runs goes on: {why}"
                    );
                    tracing::error!("{msg}");
                    report_error(sup, r, &name, &msg);
                    continue;
                }
                with_state(sup, &name, |s| s.reload_error = None);
                tracing::info!(
                    input = %name,
                    "reload: {} changed, restarting its worker",
                    if block_changed { "its block" } else { "its scripts" }
                );
                sup.restart(&name, Some(launch));
            }
        }
    }
    for (name, _) in &running {
        if seen.contains(name) {
            continue;
        }
        // A block of a file that could not be read, or that does not parse
        // any more, is not gone: the version that runs goes on.
        let source = with_state(sup, name, |s| s.source.clone());
        if let Some(why) = still_configured(&conf.broken, &conf.broken_blocks, name, &source) {
            let msg = format!("reload: {why}; input {name:?} keeps running as it is");
            tracing::error!("{msg}");
            report_error(sup, r, name, &msg);
            continue;
        }
        tracing::info!(input = %name, "reload: its block was removed, stopping it");
        sup.stop(name).await;
    }
    // A new block that does not parse is reported like one that does not
    // load; a name in the status that is neither running nor configured
    // any more (a refused new block since removed) goes.
    for b in &conf.broken_blocks {
        if let Some(name) = &b.name {
            if !running.iter().any(|(n, _)| n == name) {
                let msg = format!("reload: new input {name:?} not started: {}", b.error);
                report_error(sup, r, name, &msg);
                seen.insert(name.clone());
            }
        }
    }
    let supervised: BTreeSet<String> = sup.inputs().into_iter().map(|(n, _)| n).collect();
    for name in sup.registry().names() {
        if !seen.contains(&name) && !supervised.contains(&name) {
            sup.registry().remove(&name);
        }
    }
}

/// Why the block of running input `name` (at `source`, `file:line`) is
/// still there though it did not come out of the configuration: its file
/// cannot be read, or its block (or an unnamed block of its file) does not
/// parse. `None`: it is gone.
fn still_configured(
    broken_files: &[(PathBuf, String)],
    broken_blocks: &[BrokenBlock],
    name: &str,
    source: &str,
) -> Option<String> {
    let in_file = |f: &Path| {
        source
            .strip_prefix(&f.display().to_string())
            .is_some_and(|rest| rest.starts_with(':'))
    };
    if let Some((file, why)) = broken_files.iter().find(|(f, _)| in_file(f)) {
        return Some(format!("{} cannot be read ({why})", file.display()));
    }
    broken_blocks
        .iter()
        .find(|b| match &b.name {
            Some(n) => n == name,
            None => in_file(&b.error.at.file),
        })
        .map(|b| format!("its block is invalid: {}", b.error))
}

/// `f` on the state of input `name` (created empty if need be).
fn with_state<T>(sup: &Supervisor, name: &str, f: impl FnOnce(&mut InputState) -> T) -> T {
    let st = sup.registry().input(name);
    let mut g = st.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
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
