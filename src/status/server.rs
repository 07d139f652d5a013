//! The status endpoint: `GET /status` (JSON) and `GET /metrics`
//! (Prometheus), on a Unix socket in the data dir (owner and group only)
//! and, when asked, on a TCP address, which must be a loopback one unless
//! `--status-listen-any` says otherwise. Served by hyper on the
//! supervisor's runtime; every answer is rendered from the snapshot of the
//! moment, so a request never waits on a worker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use pythond_core::status::Status;

/// Produces the current status.
pub type Source = Arc<dyn Fn() -> Status + Send + Sync>;

/// The socket of `pythond run` in its data dir.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pythond.sock")
}

/// The longest path a Unix socket can be bound to (`sun_path` is 108 bytes
/// with its NUL).
const SOCKET_PATH_MAX: usize = 107;

/// The socket of a launch-mode pythond (one per block) in the data dir. The
/// input's name is cut (collision-free, see `names`) so that the whole path
/// fits in a socket address.
pub fn input_socket_path(data_dir: &Path, input: &str) -> PathBuf {
    let around = data_dir.as_os_str().len() + "/pythond-.sock".len();
    let room = SOCKET_PATH_MAX.saturating_sub(around);
    data_dir.join(format!(
        "pythond-{}.sock",
        pythond_core::names::file_component_within(input, room)
    ))
}

/// Every status socket in a data dir.
pub fn sockets_in(data_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("pythond") && n.ends_with(".sock"))
    });
    v.sort();
    v
}

fn answer(status: StatusCode, ctype: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

async fn route(src: Source, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/status") => {
            let body = serde_json::to_vec_pretty(&src()).unwrap_or_default();
            answer(StatusCode::OK, "application/json", body)
        }
        (&Method::GET, "/metrics") => answer(
            StatusCode::OK,
            super::metrics::CONTENT_TYPE,
            super::metrics::render(&src()).into_bytes(),
        ),
        _ => answer(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            b"GET /status or /metrics\n".to_vec(),
        ),
    })
}

fn serve_conn<S>(io: S, src: Source, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let svc = service_fn(move |req| route(src.clone(), req));
        let conn = http1::Builder::new()
            // Makes the 30 s header read timeout effective.
            .timer(TokioTimer::new())
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r { tracing::debug!("status connection: {e}") },
            _ = stop.changed() => { conn.as_mut().graceful_shutdown(); let _ = conn.await; }
        }
    });
}

/// Where to serve.
pub struct Listen {
    pub socket: Option<PathBuf>,
    pub tcp: Option<SocketAddr>,
    /// Allow a non-loopback TCP address.
    pub any: bool,
}

/// Bind what `listen` asks for and serve until `stop`. Errors name what
/// could not be bound.
pub async fn serve(listen: Listen, src: Source, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    if let Some(path) = &listen.socket {
        // Without the socket pythond still runs: the status is a view.
        let l = match bind_unix(path) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("no status socket: {e:#}");
                return serve_tcp(listen, src, stop).await;
            }
        };
        let (src, mut stop) = (src.clone(), stop.clone());
        let path = path.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((s, _)) => serve_conn(s, src.clone(), stop.clone()),
                        Err(e) => {
                            tracing::warn!("status socket: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
            let _ = std::fs::remove_file(&path);
        });
        tracing::info!(socket = %path_display(listen.socket.as_deref()), "status endpoint listening");
    }
    serve_tcp(listen, src, stop).await
}

async fn serve_tcp(listen: Listen, src: Source, stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    if let Some(addr) = listen.tcp {
        if !addr.ip().is_loopback() && !listen.any {
            bail!(
                "--status-listen {addr} is not a loopback address: the status shows tracebacks and \
                 configuration; use 127.0.0.1 or ::1, or add --status-listen-any to expose it"
            );
        }
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for the status endpoint"))?;
        // The port bound, when port 0 asked for any.
        let addr = l.local_addr().unwrap_or(addr);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((s, _)) => serve_conn(s, src.clone(), stop.clone()),
                        Err(e) => {
                            tracing::warn!("status listener: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    },
                    _ = stop.changed() => break,
                }
            }
        });
        tracing::info!(%addr, "status endpoint listening");
    }
    Ok(())
}

fn path_display(p: Option<&Path>) -> String {
    p.map(|p| p.display().to_string()).unwrap_or_default()
}

/// Bind the Unix socket, replacing a stale one but never a live daemon's.
fn bind_unix(path: &Path) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        bail!(
            "{} is the status socket of a pythond that is running (one data dir per pythond)",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let l =
        UnixListener::bind(path).with_context(|| format!("cannot listen on {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_input_name_still_gets_a_socket_it_can_bind() {
        let dir = tempfile::tempdir().unwrap();
        // As deep as DataKit's own data dir, or deeper.
        let data = dir.path().join("usr/local/datakit/cache/pythond");
        let (a, b) = ("数".repeat(60), format!("{}据", "数".repeat(59)));
        let (pa, pb) = (input_socket_path(&data, &a), input_socket_path(&data, &b));
        assert!(pa.as_os_str().len() <= SOCKET_PATH_MAX, "{pa:?}");
        assert_ne!(pa, pb, "two names, two sockets");
        let _l = bind_unix(&pa).expect("the socket binds");
        assert_eq!(
            sockets_in(&data),
            vec![pa.clone()],
            "pythond status finds it"
        );
        // A short name is as it was.
        assert_eq!(
            input_socket_path(&data, "some-inputs").file_name().unwrap(),
            "pythond-some-inputs.sock"
        );
    }
}
