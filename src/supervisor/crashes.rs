//! Crash loops: which script keeps taking its worker down, and keeping it out.
//!
//! Each worker reports what it starts and ends (`pythond_core::control`).
//! When a worker dies on its own (a signal, `os._exit`, no more heartbeats),
//! the crash is blamed on one thing: what it had started and not ended, and
//! when several were running, the one started last (a long `run()` that was
//! going when a newer one took the process down is not blamed). A crash with
//! nothing running, or blamed on another script, ends the streak. After
//! [`STRIKES`] crashes in a row blamed on the same import or class, it is
//! quarantined: the worker is restarted without it, so the input's other
//! scripts run. It is tried again when its file changes or after
//! [`RETRY_AFTER`].
//!
//! Quarantines are state worth surviving a restart of pythond (a crasher
//! would otherwise take the input down three more times at every start), and
//! `pythond check` lists them: they are kept in
//! `<data-dir>/<input>/quarantine.json` ([`file_for`]), with when each began
//! and the mtime of its file. Time is passed in (`now`), so expiry is tested
//! without waiting an hour. Every method here may touch the file system: the
//! supervisor calls them on the blocking pool.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use pythond_core::spec::Quarantined;
use pythond_core::status::unix_ms;

/// Crashes in a row, blamed on one import or class, that quarantine it.
pub const STRIKES: u32 = 3;
/// A quarantined import or class is tried again after this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One quarantine, as kept on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub reason: String,
    /// The script file (its change lifts the quarantine).
    pub file: Option<PathBuf>,
    /// Its mtime when quarantined, ns since the epoch.
    pub mtime_ns: Option<u128>,
    /// When the quarantine began, ms since the epoch.
    pub since_ms: u64,
}

impl Entry {
    pub fn since(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.since_ms)
    }

    /// When it ends at the latest.
    pub fn until(&self) -> SystemTime {
        self.since() + RETRY_AFTER
    }

    /// Whether it is over at `now`: its time is up or its file changed.
    pub fn expired(&self, now: SystemTime) -> bool {
        now >= self.until() || mtime_ns(self.file.as_deref()) != self.mtime_ns
    }

    pub fn quarantined(&self) -> Quarantined {
        Quarantined {
            id: self.id.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    quarantined: Vec<Entry>,
}

fn mtime_ns(file: Option<&Path>) -> Option<u128> {
    let t = std::fs::metadata(file?).ok()?.modified().ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_nanos())
}

/// Where the quarantines of `input` are kept in `data_dir` (beside its
/// spool).
pub fn file_for(data_dir: &Path, input: &str) -> PathBuf {
    data_dir
        .join(pythond_core::names::file_component(input))
        .join("quarantine.json")
}

/// The quarantines kept in `file` that are still in force at `now` (for
/// `pythond check`; nothing is written).
pub fn in_force(file: &Path, now: SystemTime) -> Vec<Entry> {
    read(file).into_iter().filter(|e| !e.expired(now)).collect()
}

fn read(file: &Path) -> Vec<Entry> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    match serde_json::from_str::<OnDisk>(&text) {
        Ok(d) => d.quarantined,
        Err(e) => {
            tracing::warn!(file = %file.display(), "unreadable quarantine file ignored: {e}");
            Vec::new()
        }
    }
}

/// One input's crash bookkeeping.
#[derive(Default)]
pub struct Crashes {
    /// What the last crashes in a row were blamed on, and how many.
    streak: Option<(String, u32)>,
    quarantined: Vec<Entry>,
    /// Where the quarantines are kept (`None`: in memory only).
    file: Option<PathBuf>,
}

impl Crashes {
    /// Bookkeeping kept in `file`, starting from what it holds.
    pub fn kept_in(file: Option<PathBuf>) -> Crashes {
        let quarantined = file.as_deref().map(read).unwrap_or_default();
        Crashes {
            streak: None,
            quarantined,
            file,
        }
    }

    fn save(&self) {
        let Some(file) = &self.file else { return };
        if self.quarantined.is_empty() {
            match std::fs::remove_file(file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(file = %file.display(), "cannot remove: {e}"),
            }
            return;
        }
        let written = (|| -> std::io::Result<()> {
            if let Some(dir) = file.parent() {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)?;
            }
            let text = serde_json::to_string_pretty(&OnDisk {
                quarantined: self.quarantined.clone(),
            })?;
            // Whole or not at all.
            let tmp = file.with_extension("json.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, file)
        })();
        if let Err(e) = written {
            tracing::warn!(file = %file.display(), "cannot keep the quarantines: {e}");
        }
    }

    /// A worker died on its own while `running` (in the order they
    /// started) was in progress. Returns what this crash quarantines;
    /// `file_of` gives the script file of an id.
    pub fn record(
        &mut self,
        running: &[String],
        how: &str,
        file_of: impl Fn(&str) -> Option<PathBuf>,
        now: SystemTime,
    ) -> Vec<Quarantined> {
        let Some(blamed) = running.last() else {
            self.streak = None;
            return Vec::new();
        };
        let n = match &mut self.streak {
            Some((id, n)) if id == blamed => {
                *n += 1;
                *n
            }
            _ => {
                self.streak = Some((blamed.clone(), 1));
                1
            }
        };
        if n < STRIKES || self.quarantined.iter().any(|e| e.id == *blamed) {
            return Vec::new();
        }
        self.streak = None;
        let others = running.len() - 1;
        let reason = format!(
            "the worker died {STRIKES} times in a row while it ran (last: {how}{}); \
             it is tried again when its file changes or in {} minutes",
            if others > 0 {
                format!(", the last of {} running to start", others + 1)
            } else {
                String::new()
            },
            RETRY_AFTER.as_secs() / 60
        );
        let file = file_of(blamed);
        let e = Entry {
            id: blamed.clone(),
            reason,
            mtime_ns: mtime_ns(file.as_deref()),
            file,
            since_ms: unix_ms(now),
        };
        let q = e.quarantined();
        self.quarantined.push(e);
        self.save();
        vec![q]
    }

    /// The worker stayed up: crashes are no longer "in a row".
    pub fn healthy(&mut self) {
        self.streak = None;
    }

    /// Whether a quarantine has ended (its file changed, or its time is up):
    /// the worker should be restarted to try it again.
    pub fn any_expired(&self, now: SystemTime) -> bool {
        self.quarantined.iter().any(|e| e.expired(now))
    }

    /// What to keep out of the next worker, with when each began (expired
    /// entries are dropped).
    pub fn active(&mut self, now: SystemTime) -> Vec<Entry> {
        let before = self.quarantined.len();
        self.quarantined.retain(|e| {
            let gone = e.expired(now);
            if gone {
                tracing::info!(id = %e.id, "quarantine over: trying it again");
            }
            !gone
        });
        if self.quarantined.len() != before {
            self.save();
        }
        self.quarantined.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[Quarantined]) -> Vec<&str> {
        v.iter().map(|q| q.id.as_str()).collect()
    }

    fn now() -> SystemTime {
        SystemTime::now()
    }

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn three_crashes_in_a_row_blamed_on_one_script_quarantine_only_it() {
        let mut c = Crashes::default();
        let none = |_: &str| None;
        assert!(c
            .record(&v(&["run:a.A"]), "signal 11", none, now())
            .is_empty());
        assert!(c
            .record(&v(&["run:a.A"]), "signal 11", none, now())
            .is_empty());
        let q = c.record(&v(&["run:a.A"]), "exit 1", none, now());
        assert_eq!(ids(&q), vec!["run:a.A"]);
        assert!(q[0].reason.contains("3 times in a row") && q[0].reason.contains("exit 1"));
        let active: Vec<String> = c.active(now()).into_iter().map(|e| e.id).collect();
        assert_eq!(active, vec!["run:a.A"]);
    }

    #[test]
    fn a_long_run_going_beside_the_crasher_is_not_blamed() {
        // `slow` started first and runs long; `crash` starts later and
        // takes the worker down, every time: only `crash` is blamed.
        let mut c = Crashes::default();
        let none = |_: &str| None;
        let running = v(&["run:slow.Slow", "run:crash.Crash"]);
        assert!(c.record(&running, "exit 1", none, now()).is_empty());
        assert!(c.record(&running, "exit 1", none, now()).is_empty());
        let q = c.record(&running, "exit 1", none, now());
        assert_eq!(ids(&q), vec!["run:crash.Crash"]);
        assert!(
            q[0].reason.contains("the last of 2 running to start"),
            "{q:?}"
        );
        // Many more crashes with both running never quarantine `slow`.
        for _ in 0..9 {
            assert!(c.record(&running, "exit 1", none, now()).is_empty());
        }
    }

    #[test]
    fn a_crash_blamed_elsewhere_or_on_nothing_ends_the_streak() {
        let mut c = Crashes::default();
        let none = |_: &str| None;
        c.record(&v(&["run:a.A"]), "x", none, now());
        c.record(&v(&["run:a.A"]), "x", none, now());
        c.record(&v(&["run:b.B"]), "x", none, now());
        assert!(c.record(&v(&["run:a.A"]), "x", none, now()).is_empty());
        c.record(&v(&["run:a.A"]), "x", none, now());
        c.record(&[], "x", none, now());
        assert!(c.record(&v(&["run:a.A"]), "x", none, now()).is_empty());
        c.healthy();
        c.record(&v(&["run:a.A"]), "x", none, now());
        assert!(c.record(&v(&["run:a.A"]), "x", none, now()).is_empty());
    }

    #[test]
    fn a_quarantine_ends_when_the_script_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.py");
        std::fs::write(&f, "x = 1\n").unwrap();
        let mut c = Crashes::default();
        let file_of = |_: &str| Some(f.clone());
        for _ in 0..3 {
            c.record(&v(&["import:a"]), "signal 6", file_of, now());
        }
        assert!(!c.any_expired(now()));
        assert_eq!(c.active(now()).len(), 1);
        // A new mtime: the author fixed it.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(c.any_expired(now()));
        assert!(c.active(now()).is_empty());
    }

    #[test]
    fn a_quarantine_is_tried_again_after_an_hour() {
        let mut c = Crashes::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let none = |_: &str| None;
        for _ in 0..3 {
            c.record(&v(&["run:a.A"]), "exit 1", none, t0);
        }
        let minute = Duration::from_secs(60);
        assert!(!c.any_expired(t0 + 59 * minute));
        assert_eq!(c.active(t0 + 59 * minute).len(), 1);
        assert!(c.any_expired(t0 + 60 * minute));
        assert!(c.active(t0 + 60 * minute).is_empty());
        // Tried again and crashing again: three more strikes to quarantine.
        assert!(c
            .record(&v(&["run:a.A"]), "exit 1", none, t0 + 61 * minute)
            .is_empty());
    }

    #[test]
    fn quarantines_survive_a_restart_in_their_file_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("a.py");
        std::fs::write(&script, "x = 1\n").unwrap();
        let file = file_for(dir.path(), "some input");
        assert!(file.ends_with("some%20input/quarantine.json"));
        let t0 = SystemTime::now();
        let mut c = Crashes::kept_in(Some(file.clone()));
        for _ in 0..3 {
            c.record(&v(&["run:a.A"]), "exit 1", |_| Some(script.clone()), t0);
        }
        // A new pythond reads it back, with when it began.
        let mut again = Crashes::kept_in(Some(file.clone()));
        let active = again.active(t0);
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].id, "run:a.A");
        assert_eq!(active[0].since_ms, unix_ms(t0));
        assert_eq!(in_force(&file, t0).len(), 1, "what check lists");
        assert!(in_force(&file, t0 + RETRY_AFTER).is_empty());
        // Over: the file goes.
        assert!(again.active(t0 + RETRY_AFTER).is_empty());
        assert!(!file.exists());
    }
}
