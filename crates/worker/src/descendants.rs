//! The processes a worker's scripts start end with the worker.
//!
//! The worker makes itself a child subreaper (`PR_SET_CHILD_SUBREAPER`,
//! [`adopt_orphans`]): a process a script started that outlives its own
//! parent (a double fork, `cmd &` in a shell, a daemon that called `setsid`)
//! is re-parented to the worker instead of PID 1, so it stays a descendant.
//! When the worker ends, whether told to by the supervisor or, in launch
//! mode, by the kernel's parent-death signal after DataKit's SIGKILL of
//! pythond, [`end_all`] sends every remaining descendant SIGTERM, waits a
//! short while, and SIGKILLs what is left. (A worker that crashes cannot do
//! this: the supervisor then kills the worker's process group, which holds
//! every descendant that did not leave it.)
//!
//! An adopted process that exits is the worker's zombie until someone reaps
//! it, and nobody in Python will: [`Reaper`] reaps those. It must never reap
//! a child Python started (`subprocess`, `os.fork`): Python would then get
//! `ECHILD` and report exit status 0. Linux records the *thread* that forked
//! a child, and adopts orphans to the process's first live thread, the main
//! thread, which runs no script once they are loaded (runs are on the
//! scheduler's runner threads, which live as long as the worker, so their
//! children never move). So the reaper looks only at the main thread's
//! children, leaves alone those it had when the scripts had been loaded
//! (a `Popen` at import), and reaps one only after it has been a zombie for
//! [`ZOMBIE_AGE`]. What is left: a child started by a thread a script made
//! itself, which exited, and left unwaited that long after it ended. (The
//! per-thread lists need a kernel with `CONFIG_PROC_CHILDREN`, as every
//! distribution's has; without it nothing is reaped before the worker ends.)

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How long an adopted process stays a zombie before it is reaped.
pub const ZOMBIE_AGE: Duration = Duration::from_secs(5);
/// After SIGTERM, how long descendants get before SIGKILL.
const TERM_WAIT: Duration = Duration::from_millis(500);

/// Become the subreaper of everything this process starts from now on.
pub fn adopt_orphans() {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        tracing::warn!(
            "cannot become a child subreaper ({}): a process a script starts and that outlives its parent may outlive the worker",
            std::io::Error::last_os_error()
        );
    }
}

/// `f`, with every process it starts (and what those start) ended when it
/// returns: [`adopt_orphans`] before, [`end_all`] after.
pub fn ended_after<T>(f: impl FnOnce() -> T) -> T {
    adopt_orphans();
    let v = f();
    end_all();
    v
}

/// `(state, ppid, process group)` of `pid` from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name is in parentheses and may hold anything: parse after it.
    let mut rest = s.get(s.rfind(')')? + 2..)?.split(' ');
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((state, ppid, pgrp))
}

/// Every live (not zombie) descendant of this process, from one scan of
/// `/proc`.
pub fn live_descendants() -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut state: HashMap<i32, char> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some((st, ppid, _)) = stat(pid) {
            children.entry(ppid).or_default().push(pid);
            state.insert(pid, st);
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![me];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).into_iter().flatten() {
            todo.push(c);
            if !matches!(state.get(&c), Some('Z' | 'X')) {
                out.push(c);
            }
        }
    }
    out
}

/// Reap every zombie child. Only at the end: no Python code waits any more.
fn reap_all() {
    // SAFETY: waitpid with a null status pointer, non-blocking.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn signal_all(pids: &[i32], sig: i32) {
    for &p in pids {
        // SAFETY: kill(2) of a descendant of ours, just listed.
        unsafe { libc::kill(p, sig) };
    }
}

fn name_of(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Wait up to `d` until no descendant lives; what still lives.
fn wait_gone(d: Duration) -> Vec<i32> {
    let end = Instant::now() + d;
    loop {
        reap_all();
        let left = live_descendants();
        if left.is_empty() || Instant::now() >= end {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// End every process the scripts started that still runs: SIGTERM, up to
/// half a second to go, then SIGKILL. Called as the worker exits.
pub fn end_all() {
    let left = live_descendants();
    if left.is_empty() {
        return;
    }
    let named: Vec<String> = left
        .iter()
        .map(|p| format!("{p} ({})", name_of(*p)))
        .collect();
    tracing::info!(
        processes = ?named,
        "ending the processes the scripts started (SIGTERM, then SIGKILL after {} ms)",
        TERM_WAIT.as_millis()
    );
    signal_all(&left, libc::SIGTERM);
    let stubborn = wait_gone(TERM_WAIT);
    if stubborn.is_empty() {
        return;
    }
    tracing::warn!(
        processes = ?stubborn,
        "still running {} ms after SIGTERM: killed",
        TERM_WAIT.as_millis()
    );
    // Twice: one may have forked between the listing and its signal.
    for _ in 0..2 {
        signal_all(&live_descendants(), libc::SIGKILL);
        if wait_gone(Duration::from_millis(200)).is_empty() {
            return;
        }
    }
}

/// Reaps the processes the worker adopted once they have ended (see the
/// module's doc for which).
pub struct Reaper {
    /// The main thread's children when the scripts had been loaded.
    before: HashSet<i32>,
    /// Zombie children of the main thread, since when.
    zombies: HashMap<i32, Instant>,
}

/// The children of this process's main thread.
fn main_thread_children() -> Vec<i32> {
    let me = std::process::id();
    std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

impl Reaper {
    /// Start reaping in a thread of its own, checking every second. Call
    /// once the scripts are loaded, from the main thread's side of things.
    pub fn start() {
        let mut r = Reaper {
            before: main_thread_children().into_iter().collect(),
            zombies: HashMap::new(),
        };
        let spawned = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(1));
                r.once(Instant::now());
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the reaper thread: {e}");
        }
    }

    /// One look at the main thread's children at `now`; the pids reaped.
    fn once(&mut self, now: Instant) -> Vec<i32> {
        let kids = main_thread_children();
        self.before.retain(|p| kids.contains(p));
        self.zombies.retain(|p, _| kids.contains(p));
        let mut reaped = Vec::new();
        for &k in kids.iter().filter(|k| !self.before.contains(k)) {
            if !matches!(stat(k), Some(('Z', _, _))) {
                continue;
            }
            let since = *self.zombies.entry(k).or_insert(now);
            if now.duration_since(since) >= ZOMBIE_AGE {
                // SAFETY: waitpid of one zombie child, non-blocking.
                if unsafe { libc::waitpid(k, std::ptr::null_mut(), libc::WNOHANG) } == k {
                    reaped.push(k);
                }
                self.zombies.remove(&k);
            }
        }
        reaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_reads_state_and_parent_even_with_odd_names() {
        let me = std::process::id() as i32;
        let (state, ppid, _) = stat(me).unwrap();
        assert!(matches!(state, 'R' | 'S'), "{state}");
        // SAFETY: getppid has no preconditions.
        assert_eq!(ppid, unsafe { libc::getppid() });
    }
}
