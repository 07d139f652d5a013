//! How a writer batches, retries and bounds memory.

use std::time::Duration;

use crate::target::Target;

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub target: Target,
    /// When set, every route's target is replaced by this one (test mode, `--output`).
    pub force_target: Option<Target>,
    pub batch_max_points: usize,
    pub batch_max_bytes: usize,
    pub batch_max_delay: Duration,
    /// After a batch of a route was sealed, a [`Writer::flush`] (a script's
    /// run ended) seals that route's next batch no sooner than this: many
    /// scripts ending their runs close together share requests instead of
    /// sending one each. A flush of an idle route seals at once.
    ///
    /// [`Writer::flush`]: super::Writer::flush
    pub flush_gap: Duration,
    /// Bodies at least this large are gzip-compressed.
    pub gzip_min_bytes: usize,
    pub request_timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Attempts per batch before it is dropped (counted), without a spool.
    pub retry_max_attempts: u32,
    /// Points held in memory (queued + batched + in flight) before submit
    /// refuses (with a spool: before batches go to disk; submit refuses past
    /// twice this).
    pub queue_max_points: usize,
    /// The same bound in encoded bytes.
    pub queue_max_bytes: usize,
    /// Calls (and flushes) waiting for the dispatcher before submit refuses.
    pub queue_max_messages: usize,
    /// Sent as the HTTP User-Agent.
    pub user_agent: String,
    /// The input this writer serves, for log messages.
    pub input: Option<String>,
    /// Failed attempts before a batch goes to the spool (when there is one).
    pub spool_after_attempts: u32,
    /// An attempt without an answer this long (a hung DataKit) has its batch
    /// copied to the spool while it goes on: a kill during the hang loses at
    /// most the current linger. If it then succeeds, the copy is skipped.
    pub spill_after: Duration,
    /// While DataKit is not known to take data, a replay attempt waits this
    /// long for an answer (a probe; see `replay.rs`).
    pub probe_timeout: Duration,
    /// A route with nothing to send for this long gives up its lane (task and
    /// buffer).
    pub lane_idle: Duration,
    /// Distinct routes (target × category × query) held at once; points of
    /// one more route are dropped and counted. Scripts choose routes (`input`,
    /// `version`, `ip`/`port`), so this bounds what they can make us keep.
    pub max_routes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            target: Target::default(),
            force_target: None,
            batch_max_points: 10_000,
            batch_max_bytes: 4 << 20,
            batch_max_delay: Duration::from_millis(200),
            flush_gap: Duration::from_millis(25),
            gzip_min_bytes: 16 << 10,
            request_timeout: Duration::from_secs(10),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            retry_max_attempts: 10,
            queue_max_points: 1_000_000,
            queue_max_bytes: 64 << 20,
            queue_max_messages: 16 << 10,
            user_agent: format!("pythond/{}", env!("CARGO_PKG_VERSION")),
            input: None,
            spool_after_attempts: 2,
            spill_after: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(1),
            lane_idle: Duration::from_secs(60),
            max_routes: 1024,
        }
    }
}
