//! One plugin instance as a scheduler [`Job`].

use std::sync::Arc;
use std::time::Duration;

use pythond_core::control::run_id;
use pythond_core::scheduler::{Job, RunFailed};
use pythond_core::sink::Sink;
use pythond_python::Script;

pub struct ScriptJob {
    pub script: Script,
    pub sink: Arc<dyn Sink>,
    pub timeout: Duration,
}

/// The run timeout when neither the class nor the config gives one: a run
/// may miss one tick, never less than 30 s.
pub fn default_timeout(interval: Duration) -> Duration {
    (interval * 2).max(Duration::from_secs(30))
}

impl Job for ScriptJob {
    fn name(&self) -> &str {
        &self.script.name
    }

    fn interval(&self) -> Duration {
        self.script.interval
    }

    fn timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }

    fn interrupt(&self) {
        pythond_python::interrupt(&self.script);
    }

    fn hung(&self) {
        let msg = format!(
            "run() did not return {}s after its timeout was reached and it was interrupted; \
             the script is no longer scheduled until pythond restarts this input",
            self.timeout.as_secs_f64()
        );
        self.sink.lasterror(None, &self.script.name, &msg);
    }

    fn run(&self) -> Result<(), RunFailed> {
        let marker = crate::control::Marker::new(run_id(&self.script.module, &self.script.class));
        let result = pythond_python::run(&self.script);
        drop(marker);
        self.sink.flush();
        result.map_err(|e| {
            tracing::error!(
                script = %self.script.name,
                module = %self.script.module,
                "run() raised:\n{}",
                e.traceback
            );
            self.sink.lasterror(None, &self.script.name, &e.traceback);
            RunFailed(e.traceback)
        })
    }
}
