//! Crash loops: which script keeps taking its worker down, and keeping it out.
//!
//! Each worker reports what it starts and ends (`pythond_core::control`).
//! When a worker dies on its own (a signal, `os._exit`, no more heartbeats),
//! everything it had started and not ended gets a strike; what was not
//! running loses its strikes. After [`STRIKES`] crashes in a row while it
//! was running, an import or a class is quarantined: the worker is restarted
//! without it, so the input's other scripts run. It is tried again when its
//! file changes or after [`RETRY_AFTER`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use pythond_core::spec::Quarantined;

/// Crashes in a row, while running, that quarantine an import or a class.
pub const STRIKES: u32 = 3;
/// A quarantined import or class is tried again after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(3600);

struct Entry {
    q: Quarantined,
    file: Option<PathBuf>,
    mtime: Option<SystemTime>,
    since: Instant,
}

/// One input's crash bookkeeping.
#[derive(Default)]
pub struct Crashes {
    strikes: HashMap<String, u32>,
    quarantined: Vec<Entry>,
}

fn mtime(file: &Option<PathBuf>) -> Option<SystemTime> {
    file.as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .and_then(|m| m.modified().ok())
}

impl Crashes {
    /// A worker died on its own while `running` was in progress. Returns
    /// what this crash quarantines; `file_of` gives the script file of an id.
    pub fn record(
        &mut self,
        running: &[String],
        how: &str,
        file_of: impl Fn(&str) -> Option<PathBuf>,
    ) -> Vec<Quarantined> {
        self.strikes.retain(|id, _| running.contains(id));
        let mut newly = Vec::new();
        for id in running {
            let n = self.strikes.entry(id.clone()).or_insert(0);
            *n += 1;
            if *n >= STRIKES && !self.quarantined.iter().any(|e| e.q.id == *id) {
                let q = Quarantined {
                    id: id.clone(),
                    reason: format!(
                        "the worker died {STRIKES} times in a row while it ran (last: {how}); \
                         it is tried again when its file changes or in {} minutes",
                        RETRY_AFTER.as_secs() / 60
                    ),
                };
                let file = file_of(id);
                self.quarantined.push(Entry {
                    mtime: mtime(&file),
                    file,
                    q: q.clone(),
                    since: Instant::now(),
                });
                self.strikes.remove(id);
                newly.push(q);
            }
        }
        newly
    }

    /// The worker stayed up: crashes are no longer "in a row".
    pub fn healthy(&mut self) {
        self.strikes.clear();
    }

    fn expired(e: &Entry) -> bool {
        e.since.elapsed() >= RETRY_AFTER || mtime(&e.file) != e.mtime
    }

    /// Whether a quarantine has ended (its file changed, or its time is up):
    /// the worker should be restarted to try it again.
    pub fn any_expired(&self) -> bool {
        self.quarantined.iter().any(Self::expired)
    }

    /// What to keep out of the next worker (expired entries are dropped).
    pub fn active(&mut self) -> Vec<Quarantined> {
        self.quarantined.retain(|e| {
            let gone = Self::expired(e);
            if gone {
                tracing::info!(id = %e.q.id, "quarantine over: trying it again");
            }
            !gone
        });
        self.quarantined.iter().map(|e| e.q.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[Quarantined]) -> Vec<&str> {
        v.iter().map(|q| q.id.as_str()).collect()
    }

    #[test]
    fn three_crashes_in_a_row_while_running_quarantine_only_that_script() {
        let mut c = Crashes::default();
        let none = |_: &str| None;
        assert!(c
            .record(&["run:a.A".into(), "run:b.B".into()], "signal 11", none)
            .is_empty());
        assert!(c.record(&["run:a.A".into()], "signal 11", none).is_empty());
        let q = c.record(&["run:a.A".into()], "exit 1", none);
        assert_eq!(ids(&q), vec!["run:a.A"]);
        assert!(q[0].reason.contains("3 times in a row") && q[0].reason.contains("exit 1"));
        assert_eq!(ids(&c.active()), vec!["run:a.A"]);
    }

    #[test]
    fn a_crash_without_the_script_running_resets_its_strikes() {
        let mut c = Crashes::default();
        let none = |_: &str| None;
        c.record(&["run:a.A".into()], "x", none);
        c.record(&["run:a.A".into()], "x", none);
        c.record(&["run:b.B".into()], "x", none);
        assert!(c.record(&["run:a.A".into()], "x", none).is_empty());
        c.healthy();
        c.record(&["run:a.A".into()], "x", none);
        assert!(c.record(&["run:a.A".into()], "x", none).is_empty());
    }

    #[test]
    fn a_quarantine_ends_when_the_script_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.py");
        std::fs::write(&f, "x = 1\n").unwrap();
        let mut c = Crashes::default();
        let file_of = |_: &str| Some(f.clone());
        for _ in 0..3 {
            c.record(&["import:a".into()], "signal 6", file_of);
        }
        assert!(!c.any_expired());
        assert_eq!(c.active().len(), 1);
        // A new mtime: the author fixed it.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(c.any_expired());
        assert!(c.active().is_empty());
    }
}
