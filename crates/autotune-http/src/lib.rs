//! OpenAI-compatible chat-completions client for AutoTune: teacher, student generator
//! and reference policy over HTTP.
//!
//! ```
//! use autotune_http::ChatConfig;
//!
//! // A model server as a TOML or JSON file gives it; what is left out takes its default.
//! let cfg: ChatConfig = serde_json::from_str(
//!     r#"{"base_url": "http://127.0.0.1:8000/v1", "model": "teacher", "concurrency": 8}"#,
//! )?;
//! assert!(cfg.validate().is_ok());
//! assert_eq!(cfg.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! * [`ChatConfig`] (serde, so it can come from TOML): base URL, model, sampling
//!   parameters, API key from an environment variable, concurrency, requests- and
//!   tokens-per-minute limits, timeout, retries with capped exponential backoff and seeded
//!   jitter (honouring `Retry-After`), prices, and the cache file.
//! * [`ChatClient::complete_batch`]: blocking and batch-oriented like the engine's traits;
//!   up to `concurrency` requests in flight on scoped OS threads; results in request order.
//! * **The cache.** Every completion is committed to an SQLite file (WAL, `synchronous=FULL`)
//!   before it is returned, so a re-run or a resumed run never pays for the same call twice.
//!   The key is the SHA-256 of a canonical JSON of the model name, the messages sent (system
//!   prompt included), every sampling parameter and the request's `sample_index`. The base
//!   URL is deliberately **not** in the key: moving a server keeps paid results. The raw
//!   response JSON is stored next to the parsed fields.
//! * [`ChatClient::usage`]: requests (retries included), paid completions, cache hits,
//!   tokens and money, retries and failures, for the ledger.
//! * **Faults.** Every attempt opens a fresh connection (none is kept alive: bytes a broken
//!   server or proxy sends after an answer could otherwise be read as the next request's
//!   answer). Timeouts, resets, truncated or malformed bodies, 408/409/429/5xx are retried;
//!   an error names the URL and what went wrong. `tests/faults.rs` puts a fault-injecting
//!   proxy (`tests/common/proxy.rs`) between the client and a server for every fault class.
//! * [`ChatClient::post_json`]: an idempotent JSON POST (a weight push) with the same key,
//!   timeout, retries and backoff.
//!
//! Why threads and a blocking client ([`ureq`]) rather than an async runtime: the engine's
//! roles are synchronous, concurrency per endpoint is tens of requests at most (the cost of
//! a thread is nothing next to a model call), and a blocking client embeds no runtime, so
//! it cannot clash with one the caller may run, and builds much lighter.

mod cache;
mod client;
mod config;
mod error;
mod limit;
mod types;
mod wire;

/// Not part of the API: the response parsers on raw bytes, for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub mod fuzzing {
    /// A 2xx body: `(text, finish_reason, usage)`, or the error's message.
    #[allow(clippy::type_complexity)]
    pub fn parse_response(
        bytes: &[u8],
    ) -> Result<(String, Option<String>, Option<(u64, u64)>), String> {
        crate::wire::parse_response(bytes)
            .map(|p| (p.text, p.finish_reason, p.usage))
            .map_err(|e| e.to_string())
    }

    /// The server's message from a non-2xx body.
    pub fn error_message(bytes: &[u8]) -> String {
        crate::wire::error_message(bytes)
    }
}

pub use client::{ChatClient, MAX_BODY_BYTES, UNREACHABLE_AFTER};
pub use config::{BackoffConfig, ChatConfig, Prices, MAX_CONCURRENCY};
pub use error::{HttpError, MAX_ERROR_MESSAGE_CHARS};
pub use types::{ChatRequest, Completion, Message, Role, Usage};
