//! A run's timeout: how long, where it came from (the class's `timeout`,
//! else the input block's, else the default), and what to tell a script's
//! author whose run outlived it. The class's attribute wins over the block's:
//! the message must name the knob that applied, or raising the other one
//! changes nothing.

use std::time::Duration;

/// Which setting gave a run its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutSource {
    /// The script class's `timeout` attribute.
    Class,
    /// The `[[inputs.pythond]]` block's `timeout`.
    Block,
    /// Neither: [`default_timeout`].
    Default,
}

/// How long a run may take, and which setting said so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTimeout {
    pub limit: Duration,
    pub source: TimeoutSource,
}

/// The run timeout when neither the class nor the config gives one: a run
/// may miss one tick, never less than 30 s.
pub fn default_timeout(interval: Duration) -> Duration {
    (interval * 2).max(Duration::from_secs(30))
}

impl RunTimeout {
    pub fn new(limit: Duration, source: TimeoutSource) -> RunTimeout {
        RunTimeout { limit, source }
    }

    /// The timeout of a script whose class sets `class` in a block that sets
    /// `block`: the class's, else the block's, else the default.
    pub fn resolve(
        class: Option<Duration>,
        block: Option<Duration>,
        interval: Duration,
    ) -> RunTimeout {
        match (class, block) {
            (Some(t), _) => RunTimeout::new(t, TimeoutSource::Class),
            (None, Some(t)) => RunTimeout::new(t, TimeoutSource::Block),
            (None, None) => RunTimeout::new(default_timeout(interval), TimeoutSource::Default),
        }
    }

    /// Where the timeout came from, for a message: `the class attribute
    /// `timeout``.
    pub fn origin(&self) -> &'static str {
        match self.source {
            TimeoutSource::Class => "the class attribute `timeout`",
            TimeoutSource::Block => "the input block's `timeout`",
            TimeoutSource::Default => "the default: twice the interval, at least 30s",
        }
    }

    /// What to change to give a run more time.
    pub fn advice(&self) -> &'static str {
        match self.source {
            TimeoutSource::Class => {
                "raise the class attribute `timeout = <seconds>` (the input block's `timeout` \
                 does not apply to a class that sets its own)"
            }
            TimeoutSource::Block => {
                "raise the input block's `timeout = \"60s\"`, or set the class attribute \
                 `timeout = <seconds>` for this script alone"
            }
            TimeoutSource::Default => {
                "set the class attribute `timeout = <seconds>` or the input block's \
                 `timeout = \"60s\"`"
            }
        }
    }
}

/// What the log says when a run outlives its timeout: that `run()` is
/// called every interval and must return, and how to allow more time.
pub fn timeout_message(script: &str, timeout: &RunTimeout, interval: Duration) -> String {
    format!(
        "run() of {script} exceeded its timeout ({}s, {}) and is interrupted: run() is called \
         every interval ({}s) and must return each time, not loop; if one run needs longer, {}",
        secs(timeout.limit),
        timeout.origin(),
        secs(interval),
        timeout.advice()
    )
}

/// Seconds as a short number: `2`, `0.5`, `1.25`.
fn secs(d: Duration) -> String {
    let s = format!("{:.3}", d.as_secs_f64());
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}
