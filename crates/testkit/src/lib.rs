//! A fake DataKit HTTP API for pythond's tests and benches.
//!
//! It listens on 127.0.0.1 (an ephemeral port, or one given) or on a Unix
//! socket, runs its own tokio runtime on a background thread (so plain sync
//! tests can use it too), records every request with its body decoded, counts
//! TCP connections, and answers as told: 200 by default, or a programmed
//! status for the next N requests, or a DataKit-style 400 for bodies holding a
//! marker string; or not at all while frozen ([`FakeDataKit::freeze`]).

pub mod lp;
mod reserved;

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    /// The body, gunzipped when it came compressed.
    pub body: Vec<u8>,
    /// Bytes as they came over the wire.
    pub wire_len: usize,
    pub gzip: bool,
    /// The status this request was answered with; [`UNANSWERED`] for a
    /// request that arrived while the server was frozen.
    pub status: u16,
    /// Lines in the body (counted even when bodies are not kept).
    pub line_count: usize,
    /// When the request had arrived whole (benchmarks: time to first point).
    pub at: Instant,
}

impl Received {
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The line-protocol lines of the body (comments and blanks skipped).
    pub fn lines(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    }
}

/// [`Received::status`] of a request held without an answer while frozen.
pub const UNANSWERED: u16 = 0;

#[derive(Default)]
struct State {
    received: Mutex<Vec<Received>>,
    /// Statuses for the next requests, in order.
    script: Mutex<VecDeque<u16>>,
    /// Bodies containing this string get a DataKit-style 400.
    reject_marker: Mutex<Option<String>>,
    /// Every request answers with this status while set.
    always: Mutex<Option<u16>>,
    delay: Mutex<Option<Duration>>,
    /// Writes are taken (recorded as accepted) at once and answered this
    /// much later: a DataKit that is slow to answer, not to take data.
    slow: Mutex<Option<Duration>>,
    /// While set, requests are read but never answered (a hung DataKit).
    frozen: AtomicBool,
    /// Wakes the requests held by a freeze when it ends.
    thaw: tokio::sync::Notify,
    connections: AtomicUsize,
    /// Benchmarks turn this off: count lines, keep no bodies.
    drop_bodies: std::sync::atomic::AtomicBool,
}

/// A running fake DataKit. Stops when dropped.
pub struct FakeDataKit {
    state: Arc<State>,
    addr: Option<SocketAddr>,
    socket: Option<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeDataKit {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

enum Bind {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Run the server on its own thread with its own runtime, so it can be
/// started and dropped from sync code and from inside other runtimes alike.
fn launch(
    bind: Bind,
) -> (
    Arc<State>,
    Option<SocketAddr>,
    tokio::sync::oneshot::Sender<()>,
) {
    let state = Arc::new(State::default());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let st = state.clone();
    std::thread::spawn(move || {
        let rt = runtime();
        rt.block_on(async move {
            match bind {
                Bind::Tcp(addr) => {
                    let listener = match reserved::take(addr) {
                        Some(l) => tokio::net::TcpListener::from_std(l).expect("reserved socket"),
                        None => tokio::net::TcpListener::bind(addr)
                            .await
                            .unwrap_or_else(|e| panic!("bind {addr}: {e}")),
                    };
                    ready_tx.send(Some(listener.local_addr().unwrap())).unwrap();
                    let accept = async {
                        while let Ok((sock, _)) = listener.accept().await {
                            serve(st.clone(), sock);
                        }
                    };
                    tokio::select! { _ = accept => {}, _ = stop_rx => {} }
                }
                Bind::Unix(path) => {
                    let _ = std::fs::remove_file(&path);
                    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
                    ready_tx.send(None).unwrap();
                    let accept = async {
                        while let Ok((sock, _)) = listener.accept().await {
                            serve(st.clone(), sock);
                        }
                    };
                    tokio::select! { _ = accept => {}, _ = stop_rx => {} }
                }
            }
        });
        rt.shutdown_background();
    });
    let addr = ready_rx.recv().expect("fake DataKit started");
    (state, addr, stop_tx)
}

fn decode(gzip: bool, wire: &[u8]) -> Vec<u8> {
    if !gzip {
        return wire.to_vec();
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(wire)
        .read_to_end(&mut out)
        .expect("a gzip body that decodes");
    out
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

type HandlerError = Box<dyn std::error::Error + Send + Sync>;

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, HandlerError> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let gzip = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-encoding") && v == "gzip")
        || query.iter().any(|(k, v)| k == "encoding" && v == "gzip");
    let wire = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let at = Instant::now();
    let mut body = decode(gzip, &wire);
    let line_count = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && l[0] != b'#')
        .count();
    if state.frozen.load(Ordering::SeqCst) {
        // A hung DataKit: the connection stays open, no answer ever comes.
        // When the freeze ends the request is dropped unanswered, as if the
        // hung process had been restarted: the client must send it again.
        state.received.lock().unwrap().push(Received {
            method,
            path,
            query,
            headers,
            body,
            wire_len: wire.len(),
            gzip,
            status: UNANSWERED,
            line_count,
            at,
        });
        loop {
            let thawed = state.thaw.notified();
            tokio::pin!(thawed);
            thawed.as_mut().enable();
            if !state.frozen.load(Ordering::SeqCst) {
                break;
            }
            thawed.await;
        }
        return Err("request held by a freeze: dropped unanswered".into());
    }
    let delay = *state.delay.lock().unwrap();
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let scripted = state.script.lock().unwrap().pop_front();
    let always = *state.always.lock().unwrap();
    let marker = state.reject_marker.lock().unwrap().clone();
    let rejected = marker.is_some_and(|m| String::from_utf8_lossy(&body).contains(&m));
    let (status, text) = if rejected {
        (
            400,
            r#"{"error_code":"datakit.badRequest","message":"invalid line protocol: rejected by test marker"}"#.to_owned(),
        )
    } else if let Some(s) = scripted.or(always) {
        (
            s,
            format!(r#"{{"error_code":"test","message":"scripted status {s}"}}"#),
        )
    } else {
        (200, String::new())
    };
    if state.drop_bodies.load(Ordering::Relaxed) {
        body = Vec::new();
    }
    let slow = path
        .starts_with("/v1/write/")
        .then(|| *state.slow.lock().unwrap())
        .flatten();
    state.received.lock().unwrap().push(Received {
        method,
        path,
        query,
        headers,
        body,
        wire_len: wire.len(),
        gzip,
        status,
        line_count,
        at,
    });
    if let Some(d) = slow {
        // Taken already: a client that gives up now has delivered.
        tokio::time::sleep(d).await;
    }
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("testkit runtime")
}

fn serve<IO>(state: Arc<State>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    state.connections.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let svc = service_fn(move |req| handle(state.clone(), req));
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), svc)
            .await;
    });
}

impl FakeDataKit {
    /// Listen on 127.0.0.1, an ephemeral port.
    pub fn start() -> FakeDataKit {
        FakeDataKit::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Listen on `addr` (e.g. a port reserved earlier, to start "late").
    pub fn start_on(addr: SocketAddr) -> FakeDataKit {
        let (state, addr, stop) = launch(Bind::Tcp(addr));
        FakeDataKit {
            state,
            addr,
            socket: None,
            stop: Some(stop),
        }
    }

    /// Listen on a Unix socket at `path`.
    pub fn start_unix(path: &Path) -> FakeDataKit {
        let (state, _, stop) = launch(Bind::Unix(path.to_owned()));
        FakeDataKit {
            state,
            addr: None,
            socket: Some(path.to_owned()),
            stop: Some(stop),
        }
    }

    /// A port on 127.0.0.1 nobody listens on (yet): connections to it are
    /// refused, as when DataKit is down. The port stays held (a bound socket
    /// that does not listen) until [`FakeDataKit::start_on`] listens on that
    /// very socket, so no other test can take it in between.
    pub fn reserve_port() -> SocketAddr {
        reserved::reserve()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("a TCP fake DataKit")
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn socket_path(&self) -> &Path {
        self.socket.as_deref().expect("a Unix-socket fake DataKit")
    }

    /// Answer the next requests with these statuses, in order.
    pub fn respond_next(&self, statuses: &[u16]) {
        self.state
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    /// Answer every request with `status` (None: back to normal).
    pub fn respond_always(&self, status: Option<u16>) {
        *self.state.always.lock().unwrap() = status;
    }

    /// Answer a DataKit-style 400 to any body containing `marker`.
    pub fn reject_bodies_containing(&self, marker: &str) {
        *self.state.reject_marker.lock().unwrap() = Some(marker.to_owned());
    }

    /// Keep only line counts, not bodies (for benchmarks).
    pub fn drop_bodies(&self, drop: bool) {
        self.state.drop_bodies.store(drop, Ordering::Relaxed);
    }

    /// Accepted write lines, counted (works with [`FakeDataKit::drop_bodies`]).
    pub fn line_count(&self) -> usize {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| (200..300).contains(&r.status) && r.path.starts_with("/v1/write/"))
            .map(|r| r.line_count)
            .sum()
    }

    /// Freeze (`true`): keep accepting connections and reading requests, but
    /// answer none of them, like a hung DataKit process. Unfreeze (`false`):
    /// answer new requests again; the requests held during the freeze are
    /// dropped without an answer (recorded with status [`UNANSWERED`]), as if
    /// the hung process had been restarted.
    pub fn freeze(&self, frozen: bool) {
        self.state.frozen.store(frozen, Ordering::SeqCst);
        if !frozen {
            self.state.thaw.notify_waiters();
        }
    }

    /// Requests that arrived while frozen (never answered).
    pub fn unanswered(&self) -> usize {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == UNANSWERED)
            .count()
    }

    /// Wait this long before answering each request.
    pub fn delay_answers(&self, d: Option<Duration>) {
        *self.state.delay.lock().unwrap() = d;
    }

    /// Take every write at once (its lines count as arrived) but answer it
    /// `d` later, as a busy DataKit does; a client that gives up before the
    /// answer has delivered all the same. Pings are answered at once.
    pub fn take_then_answer_after(&self, d: Option<Duration>) {
        *self.state.slow.lock().unwrap() = d;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Accepted line-protocol lines sent to `path` (e.g. `/v1/write/metric`), in arrival order.
    pub fn lines(&self, path: &str) -> Vec<String> {
        self.accepted()
            .iter()
            .filter(|r| r.path == path)
            .flat_map(|r| r.lines())
            .collect()
    }

    /// Accepted lines to any `/v1/write/...` path.
    pub fn all_lines(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .filter(|r| r.path.starts_with("/v1/write/"))
            .flat_map(|r| r.lines())
            .collect()
    }

    /// TCP (or Unix) connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Wait until `pred` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&FakeDataKit) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait until at least `n` accepted write lines arrived.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |s| s.all_lines().len() >= n)
    }
}
