//! What to do with an answer (or its absence), apart from how it was sent.
//!
//! Connection errors, timeouts, 408, 429 and 5xx are worth another try: the
//! data was fine and DataKit (or the way to it) was not. Any other 4xx is
//! DataKit saying the data is bad: sending it again cannot help, so the batch
//! is dropped alone and DataKit's message logged.

use std::time::Duration;

/// The verdict on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Retry(String),
    /// DataKit refused the data; carries its `message`.
    Reject(String),
}

/// Classify an HTTP status with its body.
pub fn classify(status: u16, body: &str) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        408 | 429 | 500..=599 => Verdict::Retry(format!("HTTP {status}: {}", message_of(body))),
        _ => Verdict::Reject(format!("HTTP {status}: {}", message_of(body))),
    }
}

/// DataKit's `{"error_code": ..., "message": ...}`, or the body itself.
pub fn message_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let msg = v.get("message")?.as_str()?.to_owned();
            Some(match v.get("error_code").and_then(|c| c.as_str()) {
                Some(code) => format!("{msg} ({code})"),
                None => msg,
            })
        })
        .unwrap_or_else(|| body.chars().take(512).collect())
}

/// Full-jitter exponential backoff: a random wait in `[0, min(max, initial·2^attempt)]`.
pub fn backoff(attempt: u32, initial: Duration, max: Duration) -> Duration {
    let ceiling = initial.saturating_mul(1u32 << attempt.min(20)).min(max);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_throttling_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(matches!(classify(s, ""), Verdict::Retry(_)), "{s}");
        }
    }

    #[test]
    fn other_client_errors_are_rejections_with_datakit_message() {
        let body = r#"{"error_code":"datakit.badRequest","message":"invalid field type"}"#;
        assert_eq!(
            classify(400, body),
            Verdict::Reject("HTTP 400: invalid field type (datakit.badRequest)".into())
        );
        assert_eq!(
            classify(404, "not here"),
            Verdict::Reject("HTTP 404: not here".into())
        );
        assert_eq!(classify(204, ""), Verdict::Success);
    }

    #[test]
    fn backoff_stays_under_its_growing_ceiling() {
        let (i, m) = (Duration::from_millis(100), Duration::from_secs(2));
        for attempt in 0..10 {
            let ceiling = (i * (1 << attempt)).min(m);
            for _ in 0..50 {
                assert!(backoff(attempt, i, m) <= ceiling);
            }
        }
    }
}
