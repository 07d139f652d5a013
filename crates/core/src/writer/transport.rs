//! Getting bytes to a target: HTTP over TCP, HTTP over a Unix socket, or a
//! local file/stdout. Knows nothing of batching or retries. Local writes are
//! blocking I/O: they run on tokio's blocking pool, never on the runtime.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::target::Target;

/// An answer from the target.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Http(String),
    #[error("writing {path}: {source}")]
    Local {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Build(String),
    /// The request cannot be made at all (an invalid URL): sending it again
    /// cannot help.
    #[error("invalid request: {0}")]
    Invalid(String),
}

/// A request body and how it is encoded.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    pub gzip: bool,
    pub content_type: &'static str,
}

type LocalSinks = Arc<Mutex<HashMap<Target, Box<dyn Write + Send>>>>;

/// Clients per target, built once and reused (keep-alive).
pub struct Transport {
    tcp: reqwest::Client,
    unix: Mutex<HashMap<PathBuf, reqwest::Client>>,
    timeout: Duration,
    local: LocalSinks,
}

impl Transport {
    pub fn new(timeout: Duration, user_agent: &str) -> Result<Transport, TransportError> {
        let tcp = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(user_agent)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| TransportError::Build(e.to_string()))?;
        Ok(Transport {
            tcp,
            unix: Mutex::new(HashMap::new()),
            timeout,
            local: Arc::default(),
        })
    }

    fn unix_client(&self, path: &PathBuf) -> Result<reqwest::Client, TransportError> {
        let mut m = self.unix.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = m.get(path) {
            return Ok(c.clone());
        }
        let c = reqwest::Client::builder()
            .timeout(self.timeout)
            .unix_socket(path.clone())
            .build()
            .map_err(|e| TransportError::Build(e.to_string()))?;
        m.insert(path.clone(), c.clone());
        Ok(c)
    }

    /// POST `body` to `path_and_query` (starting with `/`) on `target`.
    pub async fn post(
        &self,
        target: &Target,
        path_and_query: &str,
        body: Body,
    ) -> Result<Answer, TransportError> {
        let Some((client, url)) = self.remote(target, path_and_query)? else {
            let (sinks, target, pq) = (
                self.local.clone(),
                target.clone(),
                path_and_query.to_owned(),
            );
            return tokio::task::spawn_blocking(move || write_local(&sinks, &target, &pq, body))
                .await
                .unwrap_or_else(|e| Err(TransportError::Build(e.to_string())));
        };
        self.send(client, &url, body).await
    }

    /// `GET /v1/ping` on `target`: whether DataKit answers at all (any
    /// status counts: something is there and responding). Local sinks are
    /// always there.
    pub async fn ping(&self, target: &Target) -> Result<(), TransportError> {
        let Some((client, url)) = self.remote(target, "/v1/ping")? else {
            return Ok(());
        };
        let resp = client.get(&url).send().await.map_err(request_error)?;
        // Read the answer to its end so the connection can be reused.
        let _ = resp.bytes().await;
        Ok(())
    }

    /// The client and URL of `path_and_query` on `target`; `None` for a
    /// local sink.
    fn remote(
        &self,
        target: &Target,
        path_and_query: &str,
    ) -> Result<Option<(reqwest::Client, String)>, TransportError> {
        Ok(match target {
            Target::Http(base) => Some((self.tcp.clone(), format!("{base}{path_and_query}"))),
            Target::Unix(path) => Some((
                self.unix_client(path)?,
                format!("http://localhost{path_and_query}"),
            )),
            Target::Stdout | Target::File(_) => None,
        })
    }

    /// POST to an absolute `http://` URL (the script helpers).
    pub async fn post_url(&self, url: &str, body: Body) -> Result<Answer, TransportError> {
        self.send(self.tcp.clone(), url, body).await
    }

    async fn send(
        &self,
        client: reqwest::Client,
        url: &str,
        body: Body,
    ) -> Result<Answer, TransportError> {
        let mut req = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, body.content_type);
        if body.gzip {
            req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let resp = req.body(body.bytes).send().await.map_err(request_error)?;
        let status = resp.status().as_u16();
        let body = resp
            .text()
            .await
            .map_err(|e| TransportError::Http(error_chain(&e)))?;
        Ok(Answer { status, body })
    }
}

/// A request that could not be built is [`TransportError::Invalid`] (it
/// never will be); any other failure is [`TransportError::Http`].
fn request_error(e: reqwest::Error) -> TransportError {
    if e.is_builder() {
        TransportError::Invalid(error_chain(&e))
    } else {
        TransportError::Http(error_chain(&e))
    }
}

/// Write a batch to stdout or a file, preceded by a `# POST` comment line.
fn write_local(
    sinks: &LocalSinks,
    target: &Target,
    path_and_query: &str,
    body: Body,
) -> Result<Answer, TransportError> {
    let name = match target {
        Target::File(p) => p.display().to_string(),
        _ => "stdout".to_owned(),
    };
    let err = |source| TransportError::Local {
        path: name.clone(),
        source,
    };
    // The writer never compresses for a local sink.
    debug_assert!(!body.gzip, "gzip body for a local sink");
    let bytes = body.bytes;
    let mut m = sinks.lock().unwrap_or_else(|e| e.into_inner());
    if !m.contains_key(target) {
        let w: Box<dyn Write + Send> = match target {
            Target::File(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(err)?,
            ),
            _ => Box::new(std::io::stdout()),
        };
        m.insert(target.clone(), w);
    }
    let w = m.get_mut(target).expect("inserted above");
    let mut out = Vec::with_capacity(bytes.len() + path_and_query.len() + 16);
    out.extend_from_slice(b"# POST ");
    out.extend_from_slice(path_and_query.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&bytes);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    w.write_all(&out).and_then(|_| w.flush()).map_err(err)?;
    Ok(Answer {
        status: 200,
        body: String::new(),
    })
}

/// A reqwest error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
