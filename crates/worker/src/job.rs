//! One plugin instance as a scheduler [`Job`].

use std::sync::Arc;
use std::time::Duration;

use pythond_core::control::run_id;
use pythond_core::scheduler::{timeout_message, Job, RunFailed, RunTimeout};
use pythond_core::sink::Sink;
use pythond_python::Script;

pub struct ScriptJob {
    pub script: Script,
    pub sink: Arc<dyn Sink>,
    pub timeout: RunTimeout,
}

impl Job for ScriptJob {
    fn name(&self) -> &str {
        &self.script.name
    }

    fn interval(&self) -> Duration {
        self.script.interval
    }

    fn timeout(&self) -> Option<RunTimeout> {
        Some(self.timeout)
    }

    fn interrupt(&self, run: u64) {
        pythond_python::interrupt(&self.script, run);
    }

    fn hung(&self) {
        let msg = format!(
            "run() did not return {}s after its timeout was reached and it was interrupted; \
             the script is no longer scheduled until pythond restarts this input",
            self.timeout.limit.as_secs_f64()
        );
        self.sink.lasterror(None, &self.script.name, &msg);
    }

    fn run(&self, run: u64) -> Result<(), RunFailed> {
        let marker = crate::control::Marker::new(run_id(&self.script.module, &self.script.class));
        let result = pythond_python::run(&self.script, run);
        drop(marker);
        self.sink.flush();
        result.map_err(|e| {
            let report = if e.timed_out {
                // The scheduler's watchdog already said why; this is where.
                tracing::error!(
                    script = %self.script.name,
                    module = %self.script.module,
                    timeout_secs = self.timeout.limit.as_secs_f64(),
                    "run() was stopped by its timeout; it was here:\n{}",
                    e.traceback
                );
                format!(
                    "{}\n{}",
                    timeout_message(&self.script.name, &self.timeout, self.script.interval),
                    e.traceback
                )
            } else {
                tracing::error!(
                    script = %self.script.name,
                    module = %self.script.module,
                    "run() raised:\n{}",
                    e.traceback
                );
                e.traceback.clone()
            };
            self.sink.lasterror(None, &self.script.name, &report);
            RunFailed(e.traceback)
        })
    }
}
