//! [`ChatConfig`]: everything a client needs, loadable from TOML.

use crate::HttpError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of one OpenAI-compatible chat-completions endpoint and model.
///
/// Only `base_url` and `model` are required; everything else has a default.
///
/// ```toml
/// base_url = "http://127.0.0.1:8000/v1"
/// model = "qwen2.5-7b-instruct"
/// api_key_env = "OPENAI_API_KEY"
/// temperature = 0.7
/// max_tokens = 512
/// concurrency = 16
/// requests_per_minute = 500
/// tokens_per_minute = 200000
/// cache = "runs/teacher-cache.sqlite"
///
/// [prices]
/// prompt_usd_per_million = 0.15
/// completion_usd_per_million = 0.60
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Base URL up to and including the API version, e.g. `http://127.0.0.1:8000/v1`;
    /// the client posts to `{base_url}/chat/completions`. Not part of the cache key.
    pub base_url: String,
    /// Model name sent in every request; part of the cache key.
    pub model: String,
    /// Name of the environment variable holding the API key (sent as
    /// `Authorization: Bearer ...`). The key is read once, in [`crate::ChatClient::new`],
    /// and is never logged, cached or put in an error.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sampling temperature, in `[0, 2]`.
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Nucleus sampling mass, in `(0, 1]`.
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    /// Most completion tokens per call.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Base sampling seed. Sample `i` of a prompt is sent `seed + i`, so the k samples of
    /// one prompt differ even on a server that honours seeds.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Stop sequences (at most 4, as in the OpenAI API).
    #[serde(default)]
    pub stop: Option<Vec<String>>,
    /// Prepended as a `system` message to every request (and so part of the cache key).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Most HTTP requests in flight at once (over all batches of this client).
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Requests per minute (every HTTP attempt counts, retries included).
    #[serde(default)]
    pub requests_per_minute: Option<f64>,
    /// Tokens per minute: each attempt reserves an estimate (prompt characters / 4 plus
    /// `max_tokens`) and the reservation is corrected with the server's reported usage.
    #[serde(default)]
    pub tokens_per_minute: Option<f64>,
    /// Burst window of the rate limits, in seconds: at most `limit * window / 60`
    /// requests (tokens) go out back-to-back; after that they are paced at `limit / 60`
    /// per second. The default, 60, allows a whole minute's budget at once, as hosted
    /// APIs do; a smaller window paces more smoothly.
    #[serde(default = "default_rate_window")]
    pub rate_window_seconds: f64,
    /// Whole-exchange timeout of one HTTP attempt (connect, send, wait, read).
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// Retries after the first attempt, on timeouts, connection failures, broken or
    /// malformed bodies, and HTTP 408, 409, 429 and 5xx.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Waits between attempts.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Prices, to report money cost.
    #[serde(default)]
    pub prices: Prices,
    /// SQLite file of the completion cache. Without one the cache lives in memory for the
    /// lifetime of the client (identical calls are still paid once per client).
    #[serde(default)]
    pub cache: Option<PathBuf>,
}

/// Exponential backoff with jitter between attempts.
///
/// Retry `r` (1-based) waits `min(max, initial * multiplier^(r-1))`, scaled by a factor
/// drawn uniformly from `[0.5, 1)` by a ChaCha RNG seeded with `jitter_seed`. If the server
/// sent `Retry-After` (seconds) or `retry-after-ms`, the wait is at least that, up to
/// `max_retry_after_seconds`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub initial_seconds: f64,
    pub max_seconds: f64,
    pub multiplier: f64,
    pub jitter_seed: u64,
    pub max_retry_after_seconds: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial_seconds: 0.5,
            max_seconds: 30.0,
            multiplier: 2.0,
            jitter_seed: 0,
            max_retry_after_seconds: 300.0,
        }
    }
}

/// Prices of the model, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    pub prompt_usd_per_million: f64,
    pub completion_usd_per_million: f64,
}

impl Prices {
    /// Cost of one call with this usage.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.prompt_usd_per_million
            + completion_tokens as f64 * self.completion_usd_per_million)
            / 1e6
    }
}

fn default_temperature() -> f64 {
    1.0
}
fn default_top_p() -> f64 {
    1.0
}
fn default_max_tokens() -> u32 {
    1024
}
fn default_concurrency() -> usize {
    8
}
fn default_rate_window() -> f64 {
    60.0
}
fn default_timeout() -> f64 {
    120.0
}
fn default_max_retries() -> u32 {
    6
}

/// Upper bound on `concurrency` (threads per batch).
pub const MAX_CONCURRENCY: usize = 1024;

impl ChatConfig {
    /// A configuration with every optional field at its default.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        ChatConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            temperature: default_temperature(),
            top_p: default_top_p(),
            max_tokens: default_max_tokens(),
            seed: None,
            stop: None,
            system_prompt: None,
            concurrency: default_concurrency(),
            requests_per_minute: None,
            tokens_per_minute: None,
            rate_window_seconds: default_rate_window(),
            timeout_seconds: default_timeout(),
            max_retries: default_max_retries(),
            backoff: BackoffConfig::default(),
            prices: Prices::default(),
            cache: None,
        }
    }

    /// Check every field; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), HttpError> {
        let bad = |msg: String| Err(HttpError::Config(msg));
        let url = self.base_url.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(r) if !r.is_empty() && !r.starts_with('/') => {}
            _ => {
                return bad(format!(
                    "base_url `{}` must start with http:// or https:// followed by a host",
                    self.base_url
                ))
            }
        }
        if url.contains(char::is_whitespace) {
            return bad(format!("base_url `{}` contains whitespace", self.base_url));
        }
        if self.model.trim().is_empty() {
            return bad("model must not be empty".into());
        }
        if let Some(var) = &self.api_key_env {
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                return bad(format!(
                    "api_key_env `{var}` is not a valid environment variable name"
                ));
            }
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return bad(format!(
                "temperature {} must be in [0, 2]",
                self.temperature
            ));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        if self.max_tokens == 0 {
            return bad("max_tokens must be at least 1".into());
        }
        if let Some(stop) = &self.stop {
            if stop.len() > 4 {
                return bad(format!("stop has {} sequences; at most 4", stop.len()));
            }
            if stop.iter().any(|s| s.is_empty()) {
                return bad("stop sequences must not be empty".into());
            }
        }
        if self.concurrency == 0 || self.concurrency > MAX_CONCURRENCY {
            return bad(format!(
                "concurrency {} must be in [1, {MAX_CONCURRENCY}]",
                self.concurrency
            ));
        }
        for (name, v) in [
            ("requests_per_minute", self.requests_per_minute),
            ("tokens_per_minute", self.tokens_per_minute),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!("{name} {v} must be a positive number"));
                }
            }
        }
        if !(self.rate_window_seconds.is_finite()
            && self.rate_window_seconds > 0.0
            && self.rate_window_seconds <= 3600.0)
        {
            return bad(format!(
                "rate_window_seconds {} must be in (0, 3600]",
                self.rate_window_seconds
            ));
        }
        if !(self.timeout_seconds.is_finite()
            && self.timeout_seconds > 0.0
            && self.timeout_seconds <= 86_400.0)
        {
            return bad(format!(
                "timeout_seconds {} must be in (0, 86400]",
                self.timeout_seconds
            ));
        }
        if self.max_retries > 100 {
            return bad(format!(
                "max_retries {} must be at most 100",
                self.max_retries
            ));
        }
        let b = &self.backoff;
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(b.initial_seconds) || !finite_nonneg(b.max_seconds) {
            return bad("backoff.initial_seconds and backoff.max_seconds must be >= 0".into());
        }
        if b.max_seconds < b.initial_seconds {
            return bad(format!(
                "backoff.max_seconds {} is below backoff.initial_seconds {}",
                b.max_seconds, b.initial_seconds
            ));
        }
        if !(b.multiplier.is_finite() && b.multiplier >= 1.0) {
            return bad(format!("backoff.multiplier {} must be >= 1", b.multiplier));
        }
        if !finite_nonneg(b.max_retry_after_seconds) {
            return bad("backoff.max_retry_after_seconds must be >= 0".into());
        }
        let p = &self.prices;
        if !finite_nonneg(p.prompt_usd_per_million) || !finite_nonneg(p.completion_usd_per_million)
        {
            return bad("prices must be finite and >= 0".into());
        }
        if let Some(path) = &self.cache {
            if path.as_os_str().is_empty() {
                return bad("cache path must not be empty".into());
            }
        }
        Ok(())
    }

    /// `{base_url}/chat/completions`.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/chat/completions",
            self.base_url.trim().trim_end_matches('/')
        )
    }

    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ChatConfig {
        ChatConfig::new("http://127.0.0.1:8000/v1/", "m")
    }

    #[test]
    fn defaults_validate_and_endpoint_is_joined() {
        let c = ok();
        c.validate().unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut ChatConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.base_url = "127.0.0.1:8000".into()),
                "base_url",
            ),
            (Box::new(|c| c.base_url = "http://".into()), "base_url"),
            (Box::new(|c| c.model = " ".into()), "model"),
            (Box::new(|c| c.api_key_env = Some("".into())), "api_key_env"),
            (Box::new(|c| c.temperature = 2.5), "temperature"),
            (Box::new(|c| c.temperature = f64::NAN), "temperature"),
            (Box::new(|c| c.top_p = 0.0), "top_p"),
            (Box::new(|c| c.max_tokens = 0), "max_tokens"),
            (Box::new(|c| c.stop = Some(vec!["a".into(); 5])), "stop"),
            (Box::new(|c| c.concurrency = 0), "concurrency"),
            (
                Box::new(|c| c.requests_per_minute = Some(0.0)),
                "requests_per_minute",
            ),
            (
                Box::new(|c| c.tokens_per_minute = Some(-1.0)),
                "tokens_per_minute",
            ),
            (
                Box::new(|c| c.rate_window_seconds = 0.0),
                "rate_window_seconds",
            ),
            (Box::new(|c| c.timeout_seconds = 0.0), "timeout_seconds"),
            (Box::new(|c| c.max_retries = 1000), "max_retries"),
            (
                Box::new(|c| c.backoff.multiplier = 0.5),
                "backoff.multiplier",
            ),
            (
                Box::new(|c| c.backoff.max_seconds = 0.1),
                "backoff.max_seconds",
            ),
            (
                Box::new(|c| c.prices.prompt_usd_per_million = -1.0),
                "prices",
            ),
            (Box::new(|c| c.cache = Some(PathBuf::new())), "cache"),
        ];
        for (mutate, field) in cases {
            let mut c = ok();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(field), "expected `{field}` in `{err}`");
        }
    }

    #[test]
    fn deeply_nested_toml_is_an_error_with_its_line() {
        // The TOML parser has its own recursion limit; arrays and inline tables nested past it
        // are an error that names the line, not a stack overflow.
        for deep in [
            format!("stop = {}", "[".repeat(100_000)),
            format!("backoff = {}", "{a = ".repeat(100_000)),
        ] {
            let text = format!("base_url = \"http://x\"\nmodel = \"m\"\n{deep}");
            let e = toml::from_str::<ChatConfig>(&text).unwrap_err().to_string();
            assert!(e.contains("line 3"), "{e}");
            assert!(e.contains("recursion limit"), "{e}");
        }
    }

    #[test]
    fn cost_is_per_million() {
        let p = Prices {
            prompt_usd_per_million: 2.0,
            completion_usd_per_million: 10.0,
        };
        assert!((p.cost(1_000_000, 500_000) - 7.0).abs() < 1e-12);
    }
}
