//! The writer: takes points from many producers and delivers them to DataKit.
//!
//! Producers ([`Writer::submit`]) never wait on the network. (design notes: TODO)

use std::path::PathBuf;
use std::time::Duration;

use crate::point::{Category, Point};

/// Where data goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// `http://host:port` (no trailing slash, no path).
    Http(String),
    /// DataKit's `listen` given as a Unix socket path.
    Unix(PathBuf),
    /// Write lines to stdout instead of posting (`--output -`).
    Stdout,
    /// Append lines to a file instead of posting (`--output FILE`).
    File(PathBuf),
}

/// The query parameters of one `/v1/write/<category>` request, beside `precision=n`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct WriteQuery {
    pub input: Option<String>,
    pub ignore_global_tags: Option<bool>,
    pub ignore_global_host_tags: Option<bool>,
    pub version: Option<String>,
}

/// Which batch a point belongs to: points of one route share requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// `None`: the writer's default target.
    pub target: Option<Target>,
    pub category: Category,
    pub query: WriteQuery,
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub target: Target,
    /// When set, every route's target is replaced by this one (test mode, `--output`).
    pub force_target: Option<Target>,
    pub batch_max_points: usize,
    pub batch_max_bytes: usize,
    pub batch_max_delay: Duration,
    /// Bodies at least this large are gzip-compressed.
    pub gzip_min_bytes: usize,
    pub request_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Attempts per batch before it is dropped (counted). The spool (issue 4) replaces dropping.
    pub retry_max_attempts: u32,
    /// Points held in memory (queued + batched + in flight) before submit refuses.
    pub queue_max_points: usize,
    /// The pythond version string sent as `version` when the route has none.
    pub user_agent: String,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            target: Target::Http("http://127.0.0.1:9529".into()),
            force_target: None,
            batch_max_points: 10_000,
            batch_max_bytes: 4 << 20,
            batch_max_delay: Duration::from_millis(200),
            gzip_min_bytes: 16 << 10,
            request_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(10),
            retry_max_attempts: 10,
            queue_max_points: 1_000_000,
            user_agent: format!("pythond/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}
