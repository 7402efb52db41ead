//! The crate's error type.

use std::time::Duration;
use thiserror::Error;

/// Longest server message kept in an error (characters); the rest is cut.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 500;

/// Everything that can go wrong configuring the client or making a call.
///
/// No variant ever carries the API key: server messages are redacted before
/// they are stored here (see [`crate::ChatClient`]).
#[derive(Debug, Error)]
pub enum HttpError {
    /// The configuration is invalid (checked by [`crate::ChatConfig::validate`]).
    #[error("invalid chat client configuration: {0}")]
    Config(String),

    /// `api_key_env` names a variable that is not set (or is empty).
    #[error("environment variable `{var}` (api_key_env) is not set or empty")]
    MissingApiKey { var: String },

    /// The SQLite cache could not be opened, read or written.
    #[error("completion cache {path}: {message}")]
    Cache { path: String, message: String },

    /// No connection could be made (refused, unreachable, DNS failure).
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },

    /// The request did not complete within `timeout_seconds`.
    #[error("request to {url} timed out after {seconds} s")]
    Timeout { url: String, seconds: f64 },

    /// The connection broke while sending or receiving (reset, truncated body,
    /// broken HTTP framing).
    #[error("transport error talking to {url}: {message}")]
    Transport { url: String, message: String },

    /// The server answered with a non-2xx status.
    #[error("HTTP {status} from {url}: {message}")]
    Status {
        url: String,
        status: u16,
        /// The server's error message (truncated, API key redacted).
        message: String,
        /// The server's `Retry-After` (or `retry-after-ms`), if it sent one.
        retry_after: Option<Duration>,
    },

    /// The response body is larger than the client reads.
    #[error("response body from {url} exceeds {limit} bytes")]
    BodyTooLarge { url: String, limit: u64 },

    /// The request failed in a way a retry cannot fix (TLS failure, redirect, bad URL).
    #[error("request to {url} failed: {message}")]
    Request { url: String, message: String },

    /// A 2xx response whose body is not a usable chat completion.
    #[error("malformed chat completion response from {url}: {message}")]
    Malformed { url: String, message: String },

    /// A retryable failure persisted through every attempt.
    #[error("giving up after {attempts} attempts; last error: {last}")]
    RetriesExhausted { attempts: u32, last: Box<HttpError> },

    /// No server has answered at this address: the first attempts could not connect at all
    /// (refused, unreachable), so the client gives up at once instead of backing off through
    /// every retry.
    #[error(
        "nobody answers at {url}: {attempts} connection attempts failed ({last}); is the server running, and is the URL right?"
    )]
    Unreachable {
        url: String,
        attempts: u32,
        last: Box<HttpError>,
    },
}

impl HttpError {
    /// Whether a fresh attempt could succeed: timeouts, connection failures,
    /// broken transfers, malformed bodies, and HTTP 408, 409, 429 and 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            HttpError::Connect { .. }
            | HttpError::Timeout { .. }
            | HttpError::Transport { .. }
            | HttpError::Malformed { .. } => true,
            HttpError::Status { status, .. } => {
                matches!(status, 408 | 409 | 429) || (500..=599).contains(status)
            }
            HttpError::Config(_)
            | HttpError::MissingApiKey { .. }
            | HttpError::Cache { .. }
            | HttpError::BodyTooLarge { .. }
            | HttpError::Request { .. }
            | HttpError::RetriesExhausted { .. }
            | HttpError::Unreachable { .. } => false,
        }
    }

    /// The server's requested wait before retrying, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, looking through [`HttpError::RetriesExhausted`].
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            HttpError::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }
}

/// Cut `s` to at most `max` characters, marking the cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((byte, _)) => format!("{}… [truncated]", &s[..byte]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_char_safe() {
        assert_eq!(truncate_chars("abc", 5), "abc");
        assert_eq!(truncate_chars("ééééé", 2), "éé… [truncated]");
    }

    #[test]
    fn retryable_classification() {
        let status = |s| HttpError::Status {
            url: "u".into(),
            status: s,
            message: String::new(),
            retry_after: None,
        };
        for s in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert!(HttpError::Malformed {
            url: "u".into(),
            message: "x".into()
        }
        .is_retryable());
        assert!(!HttpError::Config("x".into()).is_retryable());
        let exhausted = HttpError::RetriesExhausted {
            attempts: 3,
            last: Box::new(status(503)),
        };
        assert!(!exhausted.is_retryable());
        assert_eq!(exhausted.status(), Some(503));
        assert!(exhausted.to_string().contains("3 attempts"));
        assert!(exhausted.to_string().contains("HTTP 503"));
    }
}
