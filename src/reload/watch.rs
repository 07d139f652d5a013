//! The file watch of hot reload: the configuration and every input's
//! script folders, with notify (events debounced for half a second; only
//! `.py` and `.conf` files count, `__pycache__` never).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult};
use tokio::sync::mpsc;

use super::Trigger;

/// A change worth a look: Python sources and config files (a script's own
/// data files beside it, `__pycache__`, editors' swap files are not).
fn interesting(p: &Path) -> bool {
    !p.components().any(|c| c.as_os_str() == "__pycache__")
        && p.extension().is_some_and(|e| e == "py" || e == "conf")
}

/// Watches files for the controller.
pub(super) struct Watcher {
    debouncer: notify_debouncer_full::Debouncer<
        notify_debouncer_full::notify::RecommendedWatcher,
        notify_debouncer_full::RecommendedCache,
    >,
    watched: BTreeSet<PathBuf>,
    /// What the last [`Watcher::sync`] was asked for, and whether it could
    /// watch all of it.
    last_want: Option<BTreeSet<PathBuf>>,
    complete: bool,
}

impl Watcher {
    pub(super) fn new(tx: mpsc::UnboundedSender<Trigger>) -> anyhow::Result<Watcher> {
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
            last_want: None,
            complete: true,
        })
    }

    /// Whether [`Watcher::sync`] has anything to do for `want`.
    pub(super) fn needs_sync(&self, want: &BTreeSet<PathBuf>) -> bool {
        !self.complete || self.last_want.as_ref() != Some(want)
    }

    /// Watch exactly `want` (folders recursively; a file through its folder,
    /// so editors that save by renaming are seen). Returns the folders
    /// watched from now on. Touches the file system (a recursive watch walks
    /// the folder): called on the blocking pool.
    pub(super) fn sync(&mut self, want: BTreeSet<PathBuf>) -> Vec<PathBuf> {
        self.last_want = Some(want.clone());
        self.complete = true;
        let mut newly = Vec::new();
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
                    self.watched.insert(new.clone());
                    newly.push(new);
                }
                Err(e) => {
                    self.complete = false;
                    tracing::warn!(path = %new.display(), "cannot watch for reload: {e}");
                }
            }
        }
        newly
    }
}
