//! One-off requests beside the batched writes: `POST /v1/lasterror`, and the
//! script helpers `http_post_json`/`http_post_raw` (which wait for the answer).

use super::retry::{self, Verdict};
use super::transport::{self, Body};
use super::{Shared, Writer};
use crate::target::Target;

/// A failed one-off request (lasterror, script helpers).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    #[error("{0}")]
    Refused(String),
}

/// `POST /v1/lasterror` with `{"input": .., "err_content": ..}`; a few
/// quick retries.
pub(super) async fn post_lasterror(
    shared: &Shared,
    target: Option<&Target>,
    input: &str,
    err_content: &str,
) -> Result<(), WriteError> {
    let body = bytes::Bytes::from(
        serde_json::json!({"input": input, "err_content": err_content}).to_string(),
    );
    let cfg = &shared.cfg;
    let target = cfg.force_target.as_ref().or(target).unwrap_or(&cfg.target);
    let mut attempt = 0;
    loop {
        let r = shared
            .transport
            .post(
                target,
                "/v1/lasterror",
                Body {
                    bytes: body.clone(),
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
                tokio::time::sleep(retry::backoff(attempt, cfg.retry_initial, cfg.retry_max)).await;
                attempt += 1;
            }
        }
    }
}

impl Writer {
    /// `POST /v1/lasterror` now, waiting for the answer (see
    /// [`Writer::lasterror`] for the queued form scripts use).
    pub async fn post_lasterror(
        &self,
        target: Option<&Target>,
        input: &str,
        err_content: &str,
    ) -> Result<(), WriteError> {
        post_lasterror(&self.shared, target, input, err_content).await
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
            bytes: bytes.into(),
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
