//! The script a thread is running, for the code its `run()` calls back
//! into (`feed_*`, `report`, `print`): whose counters and stage a point goes
//! to, whose name a log line carries. Set by [`crate::script::run`] around
//! the call; nothing else in the crate needs the script itself.

use std::cell::RefCell;
use std::sync::Arc;

use pythond_core::script_stats::ScriptCounters;
use pythond_core::writer::Stage;

/// The script a thread is running: its name, its counters, and the stage
/// its one-point calls gather in (run mode).
pub(crate) struct Current {
    pub name: Arc<str>,
    pub counters: Arc<ScriptCounters>,
    pub stage: Option<Stage>,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Current>>> = const { RefCell::new(None) };
}

/// The script whose `run()` this thread is executing ("pythond" otherwise).
pub fn current_script() -> Arc<str> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| Arc::from("pythond"))
    })
}

/// `f` with the script this thread is running (`None` outside a run).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_deref()))
}

/// Make `current` the script this thread runs (`None`: none).
pub(crate) fn set(current: Option<Arc<Current>>) {
    CURRENT.with(|c| *c.borrow_mut() = current);
}
