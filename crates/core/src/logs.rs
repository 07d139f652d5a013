//! Log files users are told to read (`docs/compat.md#logs`), and tracing setup.
//!
//! - stderr: everything at the chosen level.
//! - `_datakit_pythond_cli.log`: the runner's log. In `run` mode the
//!   supervisor writes it, with every line its workers print. When DataKit
//!   starts pythond (launch mode), there is one pythond per block and they
//!   all append to this file, as the original's runners did: each append
//!   holds an `flock` on the file, and a process that finds the file rotated
//!   away by another reopens it, so rotation never loses a line.
//! - `_datakit_pythond_framework_<name>_.log`: per input, written by its
//!   worker: send errors (events of target `pythond::writer`).
//!
//! Files rotate at 100 kB, 10 files kept (`f`, `f.1` … `f.9`), mode 0600.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod queue;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use queue::{Guard, Lossy};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, Layer};

pub const MAX_BYTES: u64 = 100_000;
pub const KEEP: usize = 10;

/// How many rounds (a rotation by another writer, or one of our own) one
/// append goes through before it writes to the file it holds anyway: each
/// round means a whole file was filled meanwhile, so this bound is never
/// reached in practice; it only rules out a livelock.
const ROTATION_RACES: u32 = 1000;

/// A file that rotates by size. Cheap to clone; thread-safe.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    path: PathBuf,
    file: Option<File>,
    max_bytes: u64,
    keep: usize,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl RotatingFile {
    pub fn new(path: PathBuf, max_bytes: u64, keep: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = open(&path)?;
        Ok(RotatingFile {
            inner: Arc::new(Mutex::new(Inner {
                path,
                file: Some(file),
                max_bytes,
                keep: keep.max(1),
            })),
        })
    }

    /// Append `buf`, rotating first if it would pass the size limit.
    ///
    /// Other processes may append to the same file: the append holds an
    /// exclusive `flock` on it, the size checked is the file's own, and a
    /// file that another process rotated away is reopened first.
    pub fn append(&self, buf: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *g;
        for attempt in 0.. {
            if inner.file.is_none() || inner.rotated_away() {
                inner.file = Some(open(&inner.path)?);
            }
            let file = inner.file.as_ref().expect("opened above");
            let fd = file.as_raw_fd();
            // SAFETY: flock on a file we hold open (closing it unlocks too).
            unsafe { libc::flock(fd, libc::LOCK_EX) };
            let settled = attempt >= ROTATION_RACES;
            if !settled && inner.rotated_away() {
                // Rotated between our open and our lock: take the new file.
                // (flock is not fair: under load one writer can lose this
                // race several times in a row.)
                inner.file = None;
                continue;
            }
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if !settled && size > 0 && size + buf.len() as u64 > inner.max_bytes {
                // Still holding the lock on the full file (so the others
                // wait), rename the files; the next round opens the new one
                // and appends under its lock, after the same checks: other
                // writers may have opened it and filled it meanwhile (a
                // write to it without its lock overfilled it under load).
                // Closing the full file releases its lock.
                inner.shift_names();
                inner.file = None;
                continue;
            }
            let mut f = file;
            let result = f.write_all(buf);
            // SAFETY: as above.
            unsafe { libc::flock(fd, libc::LOCK_UN) };
            return result;
        }
        unreachable!("the loop returns")
    }
}

impl Inner {
    /// The path no longer names the file we hold (another process rotated it).
    fn rotated_away(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Some(f) = &self.file else { return true };
        match (std::fs::metadata(&self.path), f.metadata()) {
            (Ok(p), Ok(f)) => p.ino() != f.ino() || p.dev() != f.dev(),
            _ => true,
        }
    }

    /// `f.8` → `f.9`, …, `f` → `f.1` (the oldest is deleted).
    fn shift_names(&self) {
        let name = |i: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(self.keep - 1));
        for i in (1..self.keep - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        if self.keep > 1 {
            let _ = std::fs::rename(&self.path, name(1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The runner's log file in `dir`.
pub fn cli_log_path(dir: &Path) -> PathBuf {
    dir.join("_datakit_pythond_cli.log")
}

/// An input's framework log file in `dir` (the name encoded by
/// [`crate::names::file_component`], as its spool directory is).
pub fn framework_log_path(dir: &Path, input: &str) -> PathBuf {
    dir.join(format!(
        "_datakit_pythond_framework_{}_.log",
        crate::names::file_component(input)
    ))
}

/// The default log directory: `$HOME`, else the current directory.
pub fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// How a process logs.
pub struct LogOptions {
    /// `info`, `debug`, ... or a full filter; `PYTHOND_LOG` wins when set.
    pub level: String,
    /// Write the runner's log file here (`None`: stderr only).
    pub cli_log: Option<RotatingFile>,
    /// Write this input's framework log file (worker processes).
    pub framework_log: Option<RotatingFile>,
}

/// Keeps the log writer threads; dropping it flushes what they hold. Keep
/// it until the process is about to exit.
#[must_use = "logging stops when the guard is dropped"]
pub struct LogGuard {
    _guards: Vec<Guard>,
    dropped: Vec<Arc<AtomicUsize>>,
}

impl LogGuard {
    /// Lines dropped because a destination could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Relaxed) as u64).sum()
    }
}

/// Whole lines to several destinations (the supervisor's stderr and runner
/// log, for what its workers print), each written by its own thread through
/// a bounded, lossy queue: [`LineWriter::write_line`] never blocks.
pub struct LineWriter {
    outs: Vec<Lossy>,
    _guards: Vec<Guard>,
}

impl LineWriter {
    pub fn new(dests: Vec<(Box<dyn Write + Send>, &str)>) -> LineWriter {
        let mut outs = Vec::new();
        let mut guards = Vec::new();
        for (w, name) in dests {
            let (out, guard) = Lossy::spawn(w, name, BUFFERED_LINES);
            outs.push(out);
            guards.push(guard);
        }
        LineWriter {
            outs,
            _guards: guards,
        }
    }

    /// Queue `line` (newline added) for every destination.
    pub fn write_line(&self, line: &str) {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        for o in &self.outs {
            let _ = o.clone().write_all(&buf);
        }
    }

    /// Lines dropped because a destination could not keep up.
    pub fn dropped(&self) -> u64 {
        self.outs
            .iter()
            .map(|o| o.dropped().load(Relaxed) as u64)
            .sum()
    }
}

static COUNTERS: std::sync::OnceLock<Vec<Arc<AtomicUsize>>> = std::sync::OnceLock::new();

/// Log lines this process dropped so far because a destination could not
/// keep up (0 before [`init`]).
pub fn dropped_lines() -> u64 {
    COUNTERS
        .get()
        .map(|v| v.iter().map(|c| c.load(Relaxed) as u64).sum())
        .unwrap_or(0)
}

/// Lines a destination may lag behind before new ones are dropped (and
/// counted). Memory is taken only for the lines actually queued (see
/// [`queue`]).
const BUFFERED_LINES: usize = 8 * 1024;

/// Install the tracing subscriber for this process. Call once.
///
/// Every destination is written by its own thread through a bounded,
/// lossy queue: a log line never blocks the thread that logs it (a script
/// printing while holding the GIL, the supervisor's only runtime thread),
/// however slowly stderr is read. Lines that do not fit are dropped and
/// counted ([`LogGuard::dropped`]).
pub fn init(opts: LogOptions) -> LogGuard {
    init_layers(opts, true)
}

/// [`init`] without the stderr layer: only the log files. For launch mode,
/// where stderr is DataKit's pipe, read 1 KiB a second.
pub fn init_files_only(opts: LogOptions) -> LogGuard {
    init_layers(opts, false)
}

fn init_layers(opts: LogOptions, to_stderr: bool) -> LogGuard {
    let mut guards = Vec::new();
    let mut dropped = Vec::new();
    let mut lossy = |w: Box<dyn Write + Send>, name: &str| {
        let (out, guard) = Lossy::spawn(w, name, BUFFERED_LINES);
        dropped.push(out.dropped());
        guards.push(guard);
        out
    };
    let filter = || level_filter(std::env::var("PYTHOND_LOG").ok().as_deref(), &opts.level);
    let stderr = to_stderr.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(lossy(Box::new(io::stderr()), "log-stderr"))
            .with_ansi(false)
            .with_filter(filter())
    });
    let cli = opts.cli_log.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(lossy(Box::new(f), "log-cli"))
            .with_ansi(false)
            .with_filter(filter())
    });
    let framework = opts.framework_log.map(|f| {
        tracing_subscriber::fmt::layer()
            .with_writer(lossy(Box::new(f), "log-framework"))
            .with_ansi(false)
            .with_filter(
                filter::Targets::new().with_target("pythond::writer", tracing::Level::INFO),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(cli)
        .with(framework)
        .try_init();
    let _ = COUNTERS.set(dropped.clone());
    LogGuard {
        _guards: guards,
        dropped,
    }
}

/// The level filter `PYTHOND_LOG` (when set) or `level` names: `info`, or
/// directives such as `warn,pythond::writer=debug` (targets and levels; not
/// the regular expressions of `RUST_LOG` filters, whose engine would double
/// the size of the filter code in both binaries). Something unreadable is
/// `info`.
fn level_filter(env: Option<&str>, level: &str) -> filter::Targets {
    let spec = env
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(level);
    spec.parse()
        .unwrap_or_else(|_| filter::Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn levels_and_per_target_directives_are_read_and_the_environment_wins() {
        use tracing::Level;
        use tracing_subscriber::filter::LevelFilter;
        let f = level_filter(None, "warn");
        assert_eq!(f.default_level(), Some(LevelFilter::WARN));
        let f = level_filter(Some("info,pythond::writer=debug"), "warn");
        assert!(f.would_enable("pythond::writer", &Level::DEBUG));
        assert!(!f.would_enable("pythond::supervisor", &Level::DEBUG));
        assert!(f.would_enable("pythond::supervisor", &Level::INFO));
        assert_eq!(
            level_filter(Some(" "), "error").default_level(),
            Some(LevelFilter::ERROR)
        );
        assert_eq!(
            level_filter(None, "not a=level=x").default_level(),
            Some(LevelFilter::INFO)
        );
    }

    #[test]
    fn the_framework_log_of_a_long_non_ascii_input_name_can_be_created() {
        // 100 CJK characters: 900 bytes once encoded, cut to fit with the
        // log file's prefix and suffix.
        let d = tempfile::tempdir().unwrap();
        let log = framework_log_path(d.path(), &"数".repeat(100));
        std::fs::write(&log, b"x").unwrap();
        assert!(log.file_name().unwrap().len() <= 255, "{log:?}");
    }

    #[test]
    fn rotates_by_size_and_keeps_ten_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.log");
        let f = RotatingFile::new(p.clone(), 1000, 10).unwrap();
        let line = [b'a'; 99];
        for _ in 0..300 {
            f.append(&line).unwrap();
            f.append(b"\n").unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), 10, "{names:?}");
        assert!(names.contains(&"x.log.9".to_string()) && !names.contains(&"x.log.10".to_string()));
        for n in &names {
            let meta = std::fs::metadata(d.path().join(n)).unwrap();
            assert!(meta.len() <= 1000, "{n}: {}", meta.len());
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{n}");
        }
    }

    #[test]
    fn appends_to_an_existing_file_counting_its_size() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("y.log");
        std::fs::write(&p, vec![b'x'; 900]).unwrap();
        let f = RotatingFile::new(p.clone(), 1000, 3).unwrap();
        f.append(&[b'y'; 200]).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 200);
        assert_eq!(
            std::fs::metadata(d.path().join("y.log.1")).unwrap().len(),
            900
        );
    }

    #[test]
    fn several_writers_of_one_file_lose_no_line_across_rotations() {
        // Each handle has its own open file, as each process of launch mode has.
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("shared.log");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let f = RotatingFile::new(p.clone(), 2000, 50).unwrap();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        f.append(format!("w{w} line {i:04}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let mut lines = Vec::new();
        for e in std::fs::read_dir(d.path()).unwrap() {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.len() <= 2000,
                "{}: {} bytes",
                path.display(),
                text.len()
            );
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.sort();
        let mut want: Vec<String> = (0..4)
            .flat_map(|w| (0..200).map(move |i| format!("w{w} line {i:04}")))
            .collect();
        want.sort();
        assert_eq!(lines, want, "every line once, none lost to a rotation");
    }

    #[test]
    fn file_names_are_the_originals() {
        let d = Path::new("/home/u");
        assert_eq!(
            cli_log_path(d),
            Path::new("/home/u/_datakit_pythond_cli.log")
        );
        assert_eq!(
            framework_log_path(d, "some-python-inputs"),
            Path::new("/home/u/_datakit_pythond_framework_some-python-inputs_.log")
        );
    }
}
