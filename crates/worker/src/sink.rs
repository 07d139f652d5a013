//! The writer as the scripts' [`Sink`]: points and lasterror are queued,
//! the script helpers' POSTs wait for their answer on the runtime.

use pythond_core::route::Route;
use pythond_core::sink::{Payload, PostError, Sink, SinkError};
use pythond_core::target::Target;
use pythond_core::writer::{Stage, Writer};
use std::sync::Arc;

pub struct WriterSink {
    pub writer: Writer,
    pub handle: tokio::runtime::Handle,
}

impl Sink for WriterSink {
    fn submit(&self, route: Route, points: Payload) -> Result<(), SinkError> {
        self.writer
            .submit(route, points)
            .map_err(|e| SinkError::Refused(e.to_string()))
    }

    fn flush(&self) {
        self.writer.flush();
    }

    fn stage(&self, label: Arc<str>) -> Option<Stage> {
        Some(self.writer.stage(label))
    }

    fn lasterror(&self, target: Option<Target>, input: &str, message: &str) {
        self.writer.lasterror(target, input, message);
    }

    fn post(&self, url: &str, body: String, json: bool) -> Result<String, PostError> {
        let writer = self.writer.clone();
        let url = url.to_owned();
        self.handle.block_on(async move {
            let answer = if json {
                let v: serde_json::Value =
                    serde_json::from_str(&body).map_err(|e| PostError::BadJson(e.to_string()))?;
                writer.post_json(&url, &v).await
            } else {
                writer.post_raw(&url, body).await
            };
            answer.map_err(|e| PostError::Failed(e.to_string()))
        })
    }
}
