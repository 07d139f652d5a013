//! The writer: takes points from many producers and delivers them to DataKit.
//!
//! ```text
//! submit() ──▶ dispatcher ──▶ lane (one per Route) ──▶ transport ──▶ DataKit
//!  (any thread)  encodes,      sends one request at a       HTTP/TCP, HTTP/Unix,
//!                batches       time, retries in order       local file/stdout
//!                                   │ 5xx/429/down, or memory full
//!                                   ▼
//!                                 spool (disk) ──▶ replayer ──▶ transport
//! ```
//!
//! - Producers never wait on the network: [`Writer::submit`] only counts the
//!   points and queues them. When the points held in memory pass
//!   `queue_max_points`, a writer without a spool refuses the call
//!   ([`SubmitError::QueueFull`], counted as `dropped_queue_full`); with a spool
//!   the batches go to disk instead.
//! - Encoding happens on the dispatcher task, off the producer's thread.
//!   Batches are per [`Route`] and close on `batch_max_points`,
//!   `batch_max_bytes`, `batch_max_delay` or an explicit [`Writer::flush`].
//! - Each lane sends one request at a time, so a retried batch is never
//!   overtaken. Retries back off exponentially with full jitter
//!   ([`retry`]); a 4xx other than 408/429 drops that batch alone, with
//!   DataKit's message logged and counted.
//! - With a spool, a batch that fails with a retryable error goes to disk after
//!   `spool_after_attempts` tries, and from then on every new batch of the
//!   input follows it there until the replayer has drained the spool in order:
//!   at-least-once delivery that survives DataKit outages and restarts.

pub mod retry;
pub mod stats;
pub mod transport;

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::lineproto::{encode_point, Lines};
use crate::point::Category;
use crate::sink::Payload;
use crate::spool::Spool;
use retry::Verdict;
use stats::Counters;
pub use stats::Stats;
use transport::{Body, Transport};

/// Where data goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
    /// Sent as the HTTP User-Agent.
    pub user_agent: String,
    /// The input this writer serves, for log messages.
    pub input: Option<String>,
    /// Failed attempts before a batch goes to the spool (when there is one).
    pub spool_after_attempts: u32,
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
            retry_max: Duration::from_secs(5),
            retry_max_attempts: 10,
            queue_max_points: 1_000_000,
            user_agent: format!("pythond/{}", env!("CARGO_PKG_VERSION")),
            input: None,
            spool_after_attempts: 2,
        }
    }
}

impl WriteQuery {
    /// `?precision=n&input=...`: every value percent-encoded.
    pub fn to_query_string(&self) -> String {
        let mut q = String::from("?precision=n");
        let mut add = |k: &str, v: &str| {
            q.push('&');
            q.push_str(k);
            q.push('=');
            percent_encode(v, &mut q);
        };
        if let Some(v) = &self.input {
            add("input", v);
        }
        // DataKit treats any non-empty value of these as true, "false"
        // included: false is sent by leaving the parameter out.
        if self.ignore_global_tags == Some(true) {
            add("ignore_global_tags", "true");
        }
        if self.ignore_global_host_tags == Some(true) {
            add("ignore_global_host_tags", "true");
        }
        if let Some(v) = &self.version {
            add("version", v);
        }
        q
    }
}

fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl Route {
    fn path_and_query(&self) -> String {
        format!(
            "{}{}",
            self.category.write_path(),
            self.query.to_query_string()
        )
    }
}

/// Why [`Writer::submit`] refused points (they are counted as dropped).
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("in-memory queue full ({held} points held, limit {limit}): points dropped")]
    QueueFull { held: u64, limit: usize },
    #[error("the writer is shut down: points dropped")]
    Closed,
}

/// A failed one-off request (lasterror, script helpers).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("{0}")]
    Refused(String),
}

/// What [`Writer::shutdown`] could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Everything was delivered (or definitively refused by DataKit).
    pub drained: bool,
    pub stats: Stats,
}

enum Msg {
    Points(Route, Payload),
    Flush(Option<oneshot::Sender<()>>),
}

enum LaneMsg {
    Batch(Batch),
    Marker(oneshot::Sender<()>),
}

struct Batch {
    route: Arc<Route>,
    body: Vec<u8>,
    points: u64,
}

/// The spool and whether the input currently routes through it.
struct SpoolState {
    spool: Spool,
    /// True while spooled data waits: new batches must queue behind it.
    active: Mutex<bool>,
    wake: Notify,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SpoolHeader {
    target: Option<Target>,
    category: String,
    query: WriteQuery,
    points: u64,
}

struct Shared {
    cfg: WriterConfig,
    counters: Counters,
    transport: Transport,
    spool: Option<SpoolState>,
    closed: AtomicBool,
    abort: AtomicBool,
    abort_notify: Notify,
    /// The replayer's last attempt succeeded: the spool is draining.
    replay_ok: AtomicBool,
}

/// Handle to a running writer. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Writer {
    /// Start a writer on the current tokio runtime.
    pub fn spawn(cfg: WriterConfig) -> Writer {
        Writer::spawn_with_spool(cfg, None)
    }

    /// Start a writer whose undeliverable batches go to `spool`.
    pub fn spawn_with_spool(cfg: WriterConfig, spool: Option<Spool>) -> Writer {
        let transport = Transport::new(cfg.request_timeout, &cfg.user_agent)
            .expect("an HTTP client without TLS always builds");
        let spool = spool.map(|spool| SpoolState {
            active: Mutex::new(!spool.is_empty()),
            spool,
            wake: Notify::new(),
        });
        let shared = Arc::new(Shared {
            cfg,
            counters: Counters::default(),
            transport,
            spool,
            closed: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            abort_notify: Notify::new(),
            replay_ok: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(dispatch(shared.clone(), rx));
        if shared.spool.is_some() {
            tokio::spawn(replay(shared.clone()));
        }
        Writer { shared, tx }
    }

    /// Queue points for `route`. Never blocks.
    pub fn submit(&self, route: Route, points: impl Into<Payload>) -> Result<(), SubmitError> {
        let points = points.into();
        let n = points.len() as u64;
        let c = &self.shared.counters;
        if self.shared.closed.load(Relaxed) {
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        let limit = self.shared.cfg.queue_max_points;
        let held = c.held_points.fetch_add(n, Relaxed) + n;
        if held > limit as u64 && self.shared.spool.is_none() {
            c.held_points.fetch_sub(n, Relaxed);
            c.dropped_queue_full.fetch_add(n, Relaxed);
            return Err(SubmitError::QueueFull { held, limit });
        }
        if self.tx.send(Msg::Points(route, points)).is_err() {
            c.held_points.fetch_sub(n, Relaxed);
            c.dropped_shutdown.fetch_add(n, Relaxed);
            return Err(SubmitError::Closed);
        }
        Ok(())
    }

    /// Send what is batched now, without waiting.
    pub fn flush(&self) {
        let _ = self.tx.send(Msg::Flush(None));
    }

    /// Resolves once everything submitted before the call is delivered,
    /// spooled, or definitively dropped.
    pub async fn flush_and_wait(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(Some(tx))).is_ok() {
            let _ = rx.await;
        }
    }

    /// Stop taking points, deliver what can be delivered within `deadline`,
    /// spool (or, without a spool, drop and count) the rest.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.shared.closed.store(true, Relaxed);
        let end = Instant::now() + deadline;
        let mut drained = tokio::time::timeout(deadline, self.flush_and_wait())
            .await
            .is_ok();
        // While DataKit takes the spooled data, let it drain within the deadline.
        if let Some(s) = &self.shared.spool {
            while !s.spool.is_empty() && self.shared.replay_ok.load(Relaxed) && Instant::now() < end
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            drained &= s.spool.is_empty();
        }
        if !drained {
            self.shared.abort.store(true, Relaxed);
            self.shared.abort_notify.notify_waiters();
            // Lanes now spool or drop what they hold; give them a moment.
            let _ = tokio::time::timeout(Duration::from_secs(2), self.flush_and_wait()).await;
        }
        self.shared.abort.store(true, Relaxed);
        self.shared.abort_notify.notify_waiters();
        if let Some(s) = &self.shared.spool {
            if let Err(e) = s.spool.sync() {
                tracing::error!(target: "pythond::writer", "{e}");
            }
        }
        ShutdownReport {
            drained,
            stats: self.stats(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Spool counters, when the writer has a spool.
    pub fn spool_stats(&self) -> Option<crate::spool::SpoolStats> {
        self.shared.spool.as_ref().map(|s| s.spool.stats())
    }

    fn effective_target<'a>(&'a self, target: Option<&'a Target>) -> &'a Target {
        let cfg = &self.shared.cfg;
        cfg.force_target.as_ref().or(target).unwrap_or(&cfg.target)
    }

    /// `POST /v1/lasterror` with `{"input": .., "err_content": ..}`; a few
    /// quick retries.
    pub async fn post_lasterror(
        &self,
        target: Option<&Target>,
        input: &str,
        err_content: &str,
    ) -> Result<(), WriteError> {
        let body = serde_json::json!({"input": input, "err_content": err_content}).to_string();
        let target = self.effective_target(target).clone();
        let mut attempt = 0;
        loop {
            let r = self
                .shared
                .transport
                .post(
                    &target,
                    "/v1/lasterror",
                    Body {
                        bytes: body.clone().into_bytes(),
                        gzip: false,
                        content_type: "application/json",
                    },
                )
                .await;
            let verdict = match &r {
                Ok(a) => retry::classify(a.status, &a.body),
                Err(e) => Verdict::Retry(e.to_string()),
            };
            match verdict {
                Verdict::Success => return Ok(()),
                Verdict::Reject(m) => return Err(WriteError::Refused(m)),
                Verdict::Retry(m) if attempt >= 2 => return Err(WriteError::Refused(m)),
                Verdict::Retry(_) => {
                    let cfg = &self.shared.cfg;
                    tokio::time::sleep(retry::backoff(attempt, cfg.retry_initial, cfg.retry_max))
                        .await;
                    attempt += 1;
                }
            }
        }
    }

    /// POST JSON to an absolute URL; the response body.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<String, WriteError> {
        self.post_url(url, body.to_string().into_bytes(), "application/json")
            .await
    }

    /// POST text to an absolute URL; the response body.
    pub async fn post_raw(&self, url: &str, body: String) -> Result<String, WriteError> {
        self.post_url(url, body.into_bytes(), "text/plain; charset=utf-8")
            .await
    }

    async fn post_url(
        &self,
        url: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
    ) -> Result<String, WriteError> {
        let body = Body {
            bytes,
            gzip: false,
            content_type,
        };
        let answer = match &self.shared.cfg.force_target {
            // --output / test mode: nothing leaves the machine.
            Some(t) => {
                let path = url
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default();
                self.shared.transport.post(t, &path, body).await?
            }
            None => self.shared.transport.post_url(url, body).await?,
        };
        Ok(answer.body)
    }
}

impl Shared {
    fn input_for<'a>(&'a self, route: &'a Route) -> &'a str {
        route
            .query
            .input
            .as_deref()
            .or(self.cfg.input.as_deref())
            .unwrap_or("-")
    }

    fn target_for<'a>(&'a self, route: &'a Route) -> &'a Target {
        self.cfg
            .force_target
            .as_ref()
            .or(route.target.as_ref())
            .unwrap_or(&self.cfg.target)
    }

    fn body(&self, raw: &[u8], target: &Target) -> Body {
        // The local sinks write text: compressing for them is wasted work.
        let remote = matches!(target, Target::Http(_) | Target::Unix(_));
        if remote && raw.len() >= self.cfg.gzip_min_bytes {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(raw.len() / 4),
                flate2::Compression::fast(),
            );
            if enc.write_all(raw).is_ok() {
                if let Ok(bytes) = enc.finish() {
                    return Body {
                        bytes,
                        gzip: true,
                        content_type: "text/plain; charset=utf-8",
                    };
                }
            }
        }
        Body {
            bytes: raw.to_vec(),
            gzip: false,
            content_type: "text/plain; charset=utf-8",
        }
    }

    /// One attempt.
    async fn attempt(&self, route: &Route, raw: &[u8]) -> Verdict {
        let target = self.target_for(route);
        let body = self.body(raw, target);
        let wire = body.bytes.len() as u64;
        let r = self
            .transport
            .post(target, &route.path_and_query(), body)
            .await;
        self.counters.requests_sent.fetch_add(1, Relaxed);
        match r {
            Ok(a) => {
                let v = retry::classify(a.status, &a.body);
                if v == Verdict::Success {
                    self.counters.wire_bytes_sent.fetch_add(wire, Relaxed);
                }
                v
            }
            Err(e) => Verdict::Retry(e.to_string()),
        }
    }

    fn delivered(&self, b: &Batch) {
        self.counters.points_sent.fetch_add(b.points, Relaxed);
        self.counters
            .bytes_sent
            .fetch_add(b.body.len() as u64, Relaxed);
    }

    fn rejected(&self, route: &Route, points: u64, message: &str) {
        self.counters.batches_rejected.fetch_add(1, Relaxed);
        self.counters.dropped_rejected.fetch_add(points, Relaxed);
        tracing::warn!(
            target: "pythond::writer",
            input = self.input_for(route),
            category = %route.category,
            points,
            "DataKit refused a batch, dropped: {message}"
        );
    }

    /// Put a batch in the spool. `false` if there is none or it failed.
    fn spill(&self, b: &Batch) -> bool {
        let Some(s) = &self.spool else { return false };
        let header = SpoolHeader {
            target: b.route.target.clone(),
            category: b.route.category.as_str().to_owned(),
            query: b.route.query.clone(),
            points: b.points,
        };
        let mut rec = serde_json::to_vec(&header).expect("header serializes");
        rec.push(b'\n');
        rec.extend_from_slice(&b.body);
        let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
        match s.spool.push(&rec) {
            Ok(()) => {
                *active = true;
                drop(active);
                self.counters.points_spooled.fetch_add(b.points, Relaxed);
                s.wake.notify_one();
                true
            }
            Err(e) => {
                tracing::error!(target: "pythond::writer", input = self.input_for(&b.route), "spool: {e}");
                false
            }
        }
    }

    /// While spooled data waits, new batches queue behind it on disk.
    fn spooling(&self) -> bool {
        self.spool
            .as_ref()
            .is_some_and(|s| *s.active.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn release(&self, points: u64) {
        self.counters.held_points.fetch_sub(points, Relaxed);
    }
}

struct Lane {
    buf: Vec<u8>,
    points: u64,
    since: Instant,
    tx: mpsc::Sender<LaneMsg>,
    route: Arc<Route>,
}

async fn dispatch(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut lanes: HashMap<Route, Lane> = HashMap::new();
    let max_delay = shared.cfg.batch_max_delay;
    loop {
        let next = lanes
            .values()
            .filter(|l| l.points > 0)
            .map(|l| l.since + max_delay)
            .min();
        let msg = match next {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(at) => {
                    let now = Instant::now();
                    for lane in lanes.values_mut() {
                        if lane.points > 0 && lane.since + max_delay <= now {
                            seal(&shared, lane).await;
                        }
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        let Some(msg) = msg else { break };
        match msg {
            Msg::Points(route, points) => {
                if !lanes.contains_key(&route) {
                    let (tx, lrx) = mpsc::channel(4);
                    let arc = Arc::new(route.clone());
                    tokio::spawn(lane_sender(shared.clone(), lrx));
                    lanes.insert(
                        route.clone(),
                        Lane {
                            buf: Vec::with_capacity(64 << 10),
                            points: 0,
                            since: Instant::now(),
                            tx,
                            route: arc,
                        },
                    );
                }
                let lane = lanes.get_mut(&route).expect("inserted above");
                if lane.points == 0 {
                    lane.since = Instant::now();
                }
                match points {
                    Payload::Points(points) => {
                        for p in &points {
                            encode_point(p, &mut lane.buf);
                            lane.points += 1;
                            if lane.full(&shared.cfg) {
                                seal(&shared, lane).await;
                                lane.since = Instant::now();
                            }
                        }
                    }
                    Payload::Lines(lines) => {
                        let mut i = 0;
                        while i < lines.len() {
                            let next = lane.take_lines(&lines, i, &shared.cfg);
                            if next == i || lane.full(&shared.cfg) {
                                seal(&shared, lane).await;
                                lane.since = Instant::now();
                            }
                            i = next;
                        }
                    }
                }
            }
            Msg::Flush(waiter) => {
                let mut acks = Vec::new();
                for lane in lanes.values_mut() {
                    seal(&shared, lane).await;
                    if waiter.is_some() {
                        let (tx, rx) = oneshot::channel();
                        if lane.tx.send(LaneMsg::Marker(tx)).await.is_ok() {
                            acks.push(rx);
                        }
                    }
                }
                if let Some(w) = waiter {
                    tokio::spawn(async move {
                        for a in acks {
                            let _ = a.await;
                        }
                        let _ = w.send(());
                    });
                }
            }
        }
    }
}

impl Lane {
    fn full(&self, cfg: &WriterConfig) -> bool {
        self.points as usize >= cfg.batch_max_points || self.buf.len() >= cfg.batch_max_bytes
    }

    /// Append lines from `from` on, as many as the batch bounds allow, with
    /// one copy. Returns the index of the first line left: `from` when none
    /// fits (seal, then call again; an empty lane always takes one line, so a
    /// line bigger than the bound still goes, alone).
    fn take_lines(&mut self, lines: &Lines, from: usize, cfg: &WriterConfig) -> usize {
        let room_points = cfg.batch_max_points.saturating_sub(self.points as usize);
        let room_bytes = cfg.batch_max_bytes.saturating_sub(self.buf.len());
        let start = lines.start(from);
        let mut end_line = (from + room_points).min(lines.len());
        if end_line > from && lines.end(end_line - 1) - start > room_bytes {
            end_line =
                from + lines.ends()[from..end_line].partition_point(|&e| e - start <= room_bytes);
        }
        if end_line == from {
            if self.points > 0 {
                return from;
            }
            end_line = from + 1;
        }
        self.buf
            .extend_from_slice(&lines.as_bytes()[start..lines.end(end_line - 1)]);
        self.points += (end_line - from) as u64;
        end_line
    }
}

/// Close the lane's current batch and hand it to its sender.
async fn seal(shared: &Shared, lane: &mut Lane) {
    if lane.points == 0 {
        return;
    }
    let body = std::mem::replace(&mut lane.buf, Vec::with_capacity(64 << 10));
    let batch = Batch {
        route: lane.route.clone(),
        body,
        points: std::mem::take(&mut lane.points),
    };
    // Memory over its bound: straight to disk when there is a spool.
    let over = shared.counters.held_points.load(Relaxed) > shared.cfg.queue_max_points as u64;
    if over && shared.spill(&batch) {
        shared.release(batch.points);
        return;
    }
    if let Err(mpsc::error::SendError(LaneMsg::Batch(b))) =
        lane.tx.send(LaneMsg::Batch(batch)).await
    {
        shared
            .counters
            .dropped_shutdown
            .fetch_add(b.points, Relaxed);
        shared.release(b.points);
    }
}

async fn lane_sender(shared: Arc<Shared>, mut rx: mpsc::Receiver<LaneMsg>) {
    while let Some(m) = rx.recv().await {
        match m {
            LaneMsg::Marker(tx) => {
                let _ = tx.send(());
            }
            LaneMsg::Batch(b) => {
                deliver(&shared, &b).await;
                shared.release(b.points);
            }
        }
    }
}

/// Deliver one batch: send with retries, spool, or drop (counted).
async fn deliver(shared: &Shared, b: &Batch) {
    let cfg = &shared.cfg;
    let mut attempt: u32 = 0;
    loop {
        if shared.spooling() && shared.spill(b) {
            return;
        }
        if shared.abort.load(Relaxed) {
            if !shared.spill(b) {
                shared
                    .counters
                    .dropped_shutdown
                    .fetch_add(b.points, Relaxed);
            }
            return;
        }
        match shared.attempt(&b.route, &b.body).await {
            Verdict::Success => {
                shared.delivered(b);
                return;
            }
            Verdict::Reject(msg) => {
                shared.rejected(&b.route, b.points, &msg);
                return;
            }
            Verdict::Retry(reason) => {
                attempt += 1;
                if shared.spool.is_some() && attempt >= cfg.spool_after_attempts && shared.spill(b)
                {
                    tracing::warn!(
                        target: "pythond::writer",
                        input = shared.input_for(&b.route),
                        "DataKit unavailable ({reason}); batch spooled to disk"
                    );
                    return;
                }
                if attempt >= cfg.retry_max_attempts {
                    shared
                        .counters
                        .dropped_retries_exhausted
                        .fetch_add(b.points, Relaxed);
                    tracing::error!(
                        target: "pythond::writer",
                        input = shared.input_for(&b.route),
                        points = b.points,
                        "batch dropped after {attempt} attempts: {reason}"
                    );
                    return;
                }
                shared.counters.requests_retried.fetch_add(1, Relaxed);
                tracing::debug!(target: "pythond::writer", attempt, "retrying: {reason}");
                let wait = retry::backoff(attempt, cfg.retry_initial, cfg.retry_max);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.abort_notify.notified() => {}
                }
            }
        }
    }
}

/// Drain the spool oldest first whenever DataKit takes data.
async fn replay(shared: Arc<Shared>) {
    let s = shared.spool.as_ref().expect("replay runs with a spool");
    let cfg = &shared.cfg;
    let mut attempt: u32 = 0;
    loop {
        if shared.abort.load(Relaxed) {
            return;
        }
        let rec = match s.spool.front() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(target: "pythond::writer", "spool: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let Some(rec) = rec else {
            {
                let mut active = s.active.lock().unwrap_or_else(|e| e.into_inner());
                if s.spool.is_empty() {
                    *active = false;
                }
            }
            tokio::select! {
                _ = s.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shared.abort_notify.notified() => {}
            }
            continue;
        };
        let split = rec.iter().position(|b| *b == b'\n').unwrap_or(rec.len());
        let header: Option<SpoolHeader> = serde_json::from_slice(&rec[..split]).ok();
        let Some((header, category)) = header.and_then(|h| {
            let c = Category::from_name(&h.category)?;
            Some((h, c))
        }) else {
            tracing::error!(target: "pythond::writer", "spool: unreadable record skipped");
            let _ = s.spool.pop();
            continue;
        };
        let route = Route {
            target: header.target,
            category,
            query: header.query,
        };
        let body = &rec[(split + 1).min(rec.len())..];
        match shared.attempt(&route, body).await {
            Verdict::Success => {
                attempt = 0;
                shared
                    .counters
                    .points_replayed
                    .fetch_add(header.points, Relaxed);
                shared
                    .counters
                    .points_sent
                    .fetch_add(header.points, Relaxed);
                shared
                    .counters
                    .bytes_sent
                    .fetch_add(body.len() as u64, Relaxed);
                if let Err(e) = s.spool.pop() {
                    tracing::error!(target: "pythond::writer", "spool: {e}");
                }
            }
            Verdict::Reject(msg) => {
                attempt = 0;
                shared.rejected(&route, header.points, &msg);
                let _ = s.spool.pop();
            }
            Verdict::Retry(reason) => {
                attempt = attempt.saturating_add(1);
                shared.replay_ok.store(false, Relaxed);
                shared.counters.requests_retried.fetch_add(1, Relaxed);
                tracing::debug!(target: "pythond::writer", "spool replay waiting for DataKit: {reason}");
                // Probe at least once a second: data waits on disk, and
                // DataKit coming back should be noticed quickly.
                let wait = retry::backoff(
                    attempt.min(30),
                    cfg.retry_initial,
                    cfg.retry_max.min(Duration::from_secs(1)),
                )
                .max(cfg.retry_initial);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shared.abort_notify.notified() => {}
                }
            }
        }
    }
}
