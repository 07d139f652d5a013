//! The threads that run the jobs, and the plan that tells them what is due.
//!
//! Every job's next tick and every run's timeout are deadlines in one
//! [`State`]; the [`Alarm`] is set to the earliest. Idle runner threads wait
//! on the alarm; the one it wakes takes whatever is due, under the state's
//! lock: ticks (start a run, or count a skipped or backed-off tick) and
//! timeouts (interrupt a run, or declare it hung). It sets the alarm to the
//! next deadline before it lets go of the lock, so while it runs a script
//! another idle runner wakes for the next one: a slow run never delays the
//! others, and a short one costs one wake-up in all (the alarm's). A run's
//! outcome is taken by the thread that ran it, as soon as it returns, so it
//! always decides the backoff of the next tick.
//!
//! A runner thread is started whenever the one about to leave the plan (to
//! run a job, interrupt one or report it hung) would leave none idle (up to [`MAX_THREADS`]; past that, due jobs wait for a
//! runner to come back). Runner threads never end: the processes a script
//! starts are the children of the thread that ran it, and must stay where
//! they are for the process's life (see the worker's `descendants`).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::job::{Job, RunFailed, Scheduled};
use super::tick::{backoff_delay, next_tick};
use super::timeout::timeout_message;
use super::timer::Alarm;
use super::Settings;

/// Most runner threads at once (as many runs can be in progress).
pub(super) const MAX_THREADS: usize = 512;

/// The running schedule of a set of jobs.
pub(super) struct Pool<J: Job> {
    shared: Arc<Shared<J>>,
}

struct Shared<J: Job> {
    state: Mutex<State<J>>,
    alarm: Alarm,
    settings: Settings,
}

struct State<J: Job> {
    jobs: Vec<Slot<J>>,
    /// Every scheduled job's next tick.
    ticks: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Timeouts of runs in progress: (when, job, run).
    deadlines: BTreeSet<(Instant, usize, u64)>,
    /// What the alarm is set to.
    armed: Option<Instant>,
    /// Runner threads waiting on the alarm (or on their way to it).
    idle: usize,
    threads: usize,
    /// No run starts any more; timeouts are still watched.
    stopped: bool,
}

struct Slot<J: Job> {
    s: Scheduled<J>,
    interval: Duration,
    /// Ticks before this are backed off.
    not_before: Instant,
    run: Option<InFlight>,
}

struct InFlight {
    tick: Instant,
    generation: u64,
    /// The timeout being watched: (when, interrupt already sent).
    deadline: Option<(Instant, bool)>,
}

/// What a runner does once it has let go of the lock.
enum Action {
    Run {
        job: usize,
        tick: Instant,
        generation: u64,
    },
    Interrupt {
        job: usize,
        generation: u64,
    },
    Hung(usize),
    Wait,
}

impl<J: Job> Pool<J> {
    /// Start scheduling `jobs`, the first tick of job `i` at `first(i)`.
    pub(super) fn start(
        jobs: &[Scheduled<J>],
        first: impl Fn(usize) -> Instant,
        settings: Settings,
    ) -> std::io::Result<Pool<J>> {
        let mut ticks = BinaryHeap::with_capacity(jobs.len());
        let slots = jobs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                ticks.push(Reverse((first(i), i)));
                Slot {
                    s: s.clone(),
                    interval: s.job.interval(),
                    not_before: first(i),
                    run: None,
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: slots,
                ticks,
                deadlines: BTreeSet::new(),
                armed: None,
                idle: 0,
                threads: 0,
                stopped: false,
            }),
            alarm: Alarm::new()?,
            settings,
        });
        {
            let mut st = shared.lock();
            shared.rearm(&mut st);
            // Two to begin with: one to run, one to wait for the next tick.
            for _ in 0..2.min(jobs.len().max(1)) {
                spawn_runner(&shared, &mut st)?;
            }
        }
        Ok(Pool { shared })
    }

    /// Start no more runs (those in progress go on, their timeouts watched).
    pub(super) fn stop(&self) {
        let mut st = self.shared.lock();
        st.stopped = true;
        self.shared.rearm(&mut st);
    }
}

fn spawn_runner<J: Job>(shared: &Arc<Shared<J>>, st: &mut State<J>) -> std::io::Result<()> {
    let sh = shared.clone();
    std::thread::Builder::new()
        .name("pythond-run".into())
        .spawn(move || runner(&sh))?;
    st.threads += 1;
    // Counted idle from now: it will wait on the alarm first.
    st.idle += 1;
    Ok(())
}

fn runner<J: Job>(sh: &Arc<Shared<J>>) {
    let mut st = sh.lock();
    st.idle -= 1;
    loop {
        let action = sh.next_action(&mut st, Instant::now());
        if !matches!(action, Action::Wait) && st.idle == 0 && st.threads < MAX_THREADS {
            // This thread may be gone for long (a run, or an interrupt
            // that waits for a GIL a run blocked in C holds): someone must
            // be waiting for the next deadline meanwhile.
            if let Err(e) = spawn_runner(sh, &mut st) {
                tracing::error!("cannot start a thread to run scripts on: {e}");
            }
        }
        match action {
            Action::Wait => {
                st.idle += 1;
                drop(st);
                sh.alarm.wait();
                st = sh.lock();
                st.idle -= 1;
            }
            Action::Run {
                job,
                tick,
                generation,
            } => {
                let s = st.jobs[job].s.clone();
                drop(st);
                let result = run_once(&s, tick, generation);
                st = sh.lock();
                sh.finish(&mut st, job, generation, &result);
            }
            Action::Interrupt { job, generation } => {
                let j = st.jobs[job].s.job.clone();
                drop(st);
                // Needs the interpreter: never under the lock. The run is
                // named: if it has ended by now, this does nothing.
                j.interrupt(generation);
                st = sh.lock();
            }
            Action::Hung(job) => {
                let j = st.jobs[job].s.job.clone();
                drop(st);
                j.hung();
                st = sh.lock();
            }
        }
    }
}

/// One run and its counters (everything but what decides the next tick).
fn run_once<J: Job>(s: &Scheduled<J>, tick: Instant, generation: u64) -> Result<(), RunFailed> {
    let began = Instant::now();
    s.stats.record_start(began.saturating_duration_since(tick));
    // A job that panics fails this run; the runner and the plan go on.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.job.run(generation)))
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(script = s.job.name(), "run panicked: {why}");
            Err(RunFailed(format!("run panicked: {why}")))
        });
    s.stats.record_end(generation, began.elapsed(), &result);
    s.stats.runs.fetch_add(1, Ordering::Relaxed);
    if result.is_ok() {
        s.stats.consecutive_failures.store(0, Ordering::Relaxed);
    } else {
        s.stats.failures.fetch_add(1, Ordering::Relaxed);
        s.stats.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    }
    s.running.store(false, Ordering::Release);
    result
}

impl<J: Job> Shared<J> {
    fn lock(&self) -> MutexGuard<'_, State<J>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Set the alarm to the earliest deadline, if that changed.
    fn rearm(&self, st: &mut State<J>) {
        let tick = if st.stopped {
            None
        } else {
            st.ticks.peek().map(|Reverse((t, _))| *t)
        };
        let timeout = st.deadlines.first().map(|(t, _, _)| *t);
        let next = match (tick, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if next != st.armed {
            self.alarm.set(next);
            st.armed = next;
        }
    }

    /// Take what is due at `now`: the first thing that needs this thread
    /// outside the lock, or [`Action::Wait`] with the alarm set for what
    /// comes next.
    fn next_action(&self, st: &mut State<J>, now: Instant) -> Action {
        // An alarm that has gone off must be set again even for the same
        // time (another job due at that instant): it would not go off twice.
        if st.armed.is_some_and(|a| a <= now) {
            st.armed = None;
        }
        let action = self.due(st, now);
        // Set for a time that has passed (several jobs due together), it
        // wakes another runner at once: they run side by side.
        self.rearm(st);
        action
    }

    fn due(&self, st: &mut State<J>, now: Instant) -> Action {
        while let Some(&(at, job, generation)) = st.deadlines.first() {
            if at > now {
                break;
            }
            st.deadlines.pop_first();
            let slot = &mut st.jobs[job];
            let Some(run) = slot.run.as_mut().filter(|r| r.generation == generation) else {
                continue;
            };
            let s = &slot.s;
            let timeout = s.job.timeout().expect("a watched run has a timeout");
            if run.deadline.is_some_and(|(_, interrupted)| interrupted) {
                run.deadline = None;
                s.stats.hung.store(true, Ordering::Release);
                tracing::error!(
                    script = s.job.name(),
                    "run() did not stop after being interrupted (blocked outside Python?): \
                     the script is hung and will not be scheduled again until the worker restarts"
                );
                return Action::Hung(job);
            }
            s.stats.record_timeout(generation);
            // The first line the author of a looping script reads: say what
            // to change.
            tracing::error!(
                script = s.job.name(),
                timeout_secs = timeout.limit.as_secs_f64(),
                interval_secs = slot.interval.as_secs_f64(),
                "{}",
                timeout_message(s.job.name(), &timeout, slot.interval)
            );
            let hang_at = now + self.settings.hang_grace;
            run.deadline = Some((hang_at, true));
            st.deadlines.insert((hang_at, job, generation));
            return Action::Interrupt { job, generation };
        }
        if st.stopped {
            return Action::Wait;
        }
        while let Some(&Reverse((tick, job))) = st.ticks.peek() {
            if tick > now {
                break;
            }
            st.ticks.pop();
            let slot = &mut st.jobs[job];
            let s = &slot.s;
            if s.stats.hung.load(Ordering::Acquire) {
                // Its thread is lost to it: no longer scheduled.
                continue;
            }
            // Ticks missed while the process was stalled are skipped, not
            // bunched.
            st.ticks
                .push(Reverse((next_tick(tick, slot.interval, now), job)));
            if slot.run.is_some() {
                s.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    script = s.job.name(),
                    interval_secs = slot.interval.as_secs_f64(),
                    "run() still going at its next tick: tick skipped (run() is called every \
                     interval and should return well within it)"
                );
                continue;
            }
            if tick < slot.not_before {
                s.stats.backed_off.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            s.running.store(true, Ordering::Release);
            let generation = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
            let deadline = s.job.timeout().map(|t| now + t.limit);
            if let Some(at) = deadline {
                st.deadlines.insert((at, job, generation));
            }
            st.jobs[job].run = Some(InFlight {
                tick,
                generation,
                deadline: deadline.map(|at| (at, false)),
            });
            return Action::Run {
                job,
                tick,
                generation,
            };
        }
        Action::Wait
    }

    /// Run `generation` of `job` returned with `result`: it no longer needs
    /// watching, and it decides from when the job may run again.
    fn finish(
        &self,
        st: &mut State<J>,
        job: usize,
        generation: u64,
        result: &Result<(), RunFailed>,
    ) {
        let slot = &mut st.jobs[job];
        let Some(run) = slot.run.take() else { return };
        debug_assert_eq!(run.generation, generation);
        slot.not_before = next_allowed(
            &slot.s,
            run.tick,
            result.is_ok(),
            slot.interval,
            self.settings.backoff_cap,
        );
        if let Some((at, _)) = run.deadline {
            st.deadlines.remove(&(at, job, generation));
        }
    }
}

/// The earliest tick the next run may start on, after the run that started
/// on `started` ended. Backoff spaces the starts of failing runs: after `n`
/// failures in a row the next run starts `interval × 2^(n-1)` (capped) after
/// the last one started, so the time a long run took counts toward its wait.
fn next_allowed<J: Job>(
    s: &Scheduled<J>,
    started: Instant,
    ok: bool,
    interval: Duration,
    cap: Duration,
) -> Instant {
    if ok {
        s.stats.not_before_ms.store(0, Ordering::Relaxed);
        return started;
    }
    let n = s.stats.consecutive_failures.load(Ordering::Relaxed);
    let wait = backoff_delay(interval, n, cap);
    if n > 1 {
        // For status: until when the job waits longer than its interval.
        let until = std::time::SystemTime::now() + wait.saturating_sub(started.elapsed());
        s.stats
            .not_before_ms
            .store(crate::status::unix_ms(until), Ordering::Relaxed);
        tracing::warn!(
            script = s.job.name(),
            consecutive_failures = n,
            backoff_secs = wait.as_secs_f64(),
            "run keeps failing: backing off (the next run starts {}s after the last one started)",
            wait.as_secs_f64()
        );
    }
    started.checked_add(wait).unwrap_or(started)
}
