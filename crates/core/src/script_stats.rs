//! What each script handed over, counted where it hands it over: points per
//! category, for `pythond status` and the logs.
//!
//! One [`ScriptCounters`] per script instance, shared (`Arc`) between the
//! script (plain Rust data on `pythond_python::Script`) and the thread that
//! runs it: a `report()` or `feed_*()` call adds its points per category it
//! touched, after the call's points were accepted
//! (checked and queued; what delivery does with them later is the writer's
//! [`Stats`](crate::writer::Stats)). Points a script's own threads hand over
//! outside `run()` are not attributed to it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::point::Category;

/// Points one script handed over, per category. Cheap to update from the
/// script's thread, readable from any thread.
#[derive(Debug, Default)]
pub struct ScriptCounters {
    points: [AtomicU64; Category::ALL.len()],
    /// `report()`/`feed_*()` calls whose points were accepted.
    calls: AtomicU64,
}

impl ScriptCounters {
    pub fn new() -> ScriptCounters {
        ScriptCounters::default()
    }

    /// One call's `n` points of `category` were accepted. Only the thread
    /// running the script counts (runs of one instance never overlap, and
    /// its other threads are not attributed), so a plain load and store
    /// suffice: no read-modify-write on every `feed_*()` call.
    #[inline]
    pub fn add(&self, category: &Category, n: u64) {
        bump(&self.points[category.index()], n);
    }

    /// One more call was accepted (its points counted with [`ScriptCounters::add`]).
    #[inline]
    pub fn call(&self) {
        bump(&self.calls, 1);
    }

    /// Points of `category` so far.
    pub fn points(&self, category: &Category) -> u64 {
        self.points[category.index()].load(Relaxed)
    }

    /// Points of every category so far.
    pub fn total_points(&self) -> u64 {
        self.points.iter().map(|p| p.load(Relaxed)).sum()
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Relaxed)
    }

    /// Points by category name (categories without points left out): the
    /// form `pythond status` shows.
    pub fn by_name(&self) -> std::collections::BTreeMap<String, u64> {
        self.snapshot()
            .into_iter()
            .map(|(c, n)| (c.as_str().to_owned(), n))
            .collect()
    }

    /// The categories with points, and how many.
    pub fn snapshot(&self) -> Vec<(Category, u64)> {
        Category::ALL
            .iter()
            .map(|c| (c.clone(), self.points(c)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// `c += n` by the counter's only writer (see [`ScriptCounters::add`]).
#[inline]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_counted_per_category() {
        let c = ScriptCounters::new();
        c.add(&Category::Metric, 3);
        c.add(&Category::Logging, 1);
        c.add(&Category::Metric, 2);
        c.call();
        assert_eq!(c.points(&Category::Metric), 5);
        assert_eq!(c.total_points(), 6);
        assert_eq!(c.calls(), 1);
        assert_eq!(
            c.snapshot(),
            vec![(Category::Metric, 5), (Category::Logging, 1)]
        );
    }
}
