//! Where the Python side hands its points: the seam between the embedded
//! runtime and delivery.
//!
//! The runtime only knows [`Sink`]. In `run` mode it is the [`crate::writer`]
//! (batched, retried posts to DataKit or the local `--output`); in `test` mode
//! it is a [`Collector`] that keeps every point for printing and sends nothing.

use std::sync::{Arc, Mutex};

use crate::lineproto::Lines;
pub use crate::payload::Payload;
use crate::point::Point;
use crate::route::Route;
use crate::target::Target;

/// Why a sink refused points.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(
        "pythond's in-memory queue is full ({0} points held); this call's points were dropped"
    )]
    QueueFull(usize),
    #[error("pythond is shutting down; this call's points were dropped")]
    Closed,
    #[error("points refused: {0}")]
    Refused(String),
}

/// Why a script helper's POST (`http_post_json`/`http_post_raw`) got no answer.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("test mode sends nothing (POST {url} not sent)")]
    NotSent { url: String },
    #[error("the body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    Failed(String),
}

/// Takes what scripts report. Every method returns without waiting on the
/// network except [`Sink::post`], which scripts call expecting an answer.
pub trait Sink: Send + Sync {
    /// An empty payload in the form this sink takes. Encoded lines unless the
    /// sink needs the points themselves.
    fn payload(&self) -> Payload {
        Payload::Lines(Lines::new())
    }
    /// Take one call's points (built from [`Sink::payload`]).
    fn submit(&self, route: Route, points: Payload) -> Result<(), SinkError>;
    /// Send what is batched now (a script's `run()` returned).
    fn flush(&self);
    /// A stage where one producer's calls gather before they are submitted
    /// (see [`crate::writer::Stage`]); `None`: submit each call.
    fn stage(&self, _label: Arc<str>) -> Option<crate::writer::Stage> {
        None
    }
    /// Queue a `POST /v1/lasterror` for `input`.
    fn lasterror(&self, target: Option<Target>, input: &str, message: &str);
    /// POST `body` to `url` and return the response body. Blocks the calling
    /// thread (never call it attached to Python).
    fn post(&self, url: &str, body: String, json: bool) -> Result<String, PostError>;
}

/// One thing a script did, as test mode records it.
#[derive(Debug, Clone)]
pub enum Recorded {
    Points(Route, Vec<Point>),
    LastError { input: String, message: String },
}

/// Test mode's sink: keeps everything, sends nothing.
#[derive(Default)]
pub struct Collector {
    items: Mutex<Vec<Recorded>>,
}

impl Collector {
    pub fn new() -> Collector {
        Collector::default()
    }

    /// Everything recorded so far, emptied.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.items.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, r: Recorded) {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).push(r);
    }
}

impl Sink for Collector {
    fn payload(&self) -> Payload {
        Payload::Points(Vec::new())
    }

    fn submit(&self, route: Route, points: Payload) -> Result<(), SinkError> {
        match points {
            Payload::Points(points) => self.push(Recorded::Points(route, points)),
            Payload::Lines(_) => {
                return Err(SinkError::Refused(
                    "test mode records whole points, not encoded lines".into(),
                ))
            }
        }
        Ok(())
    }

    fn flush(&self) {}

    fn lasterror(&self, _target: Option<Target>, input: &str, message: &str) {
        self.push(Recorded::LastError {
            input: input.to_owned(),
            message: message.to_owned(),
        });
    }

    fn post(&self, url: &str, _body: String, _json: bool) -> Result<String, PostError> {
        Err(PostError::NotSent {
            url: url.to_owned(),
        })
    }
}
