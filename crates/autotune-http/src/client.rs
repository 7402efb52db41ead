//! [`ChatClient`]: cache lookup, rate limits, in-flight limit, retries, accounting.

use crate::cache::{Cache, Entry, KeySource};
use crate::config::ChatConfig;
use crate::error::HttpError;
use crate::limit::{RateLimiter, Semaphore};
use crate::types::{ChatRequest, Completion, Message, Usage};
use crate::wire::{
    error_message, estimate_prompt_tokens, estimate_text_tokens, parse_response, Parsed,
    RequestBody,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Largest successful response body read (bytes); a larger one is an error.
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Largest error-response body read (bytes); the message is cut further.
const MAX_ERROR_BODY_BYTES: u64 = 64 * 1024;
/// What a transport error while reading a 2xx body means.
const BODY_BROKE: &str = "reading the response body (it ended early or broke off)";
/// Version of the cache-key format; bump to invalidate every entry.
const KEY_VERSION: u32 = 1;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The API key; its `Debug` never shows it.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A blocking, batch-oriented client of one OpenAI-compatible chat-completions endpoint.
///
/// Every call first looks in the cache (see [`crate`] docs for the key); a hit makes no
/// request and costs nothing. A miss is sent, retried on transient failures, and the
/// completion is committed to the cache before it is returned. Identical requests made at
/// the same time (in one batch or from several threads) are sent once: the others wait
/// and are answered from the cache.
///
/// `ChatClient` is `Sync`: share it between threads by reference; the concurrency and
/// rate limits hold over all of them.
pub struct ChatClient {
    config: ChatConfig,
    endpoint: String,
    api_key: Option<Secret>,
    agent: ureq::Agent,
    cache: Cache,
    limiter: RateLimiter,
    in_flight: Semaphore,
    pending: Mutex<HashSet<String>>,
    pending_cv: Condvar,
    usage: Mutex<Usage>,
    rng: Mutex<ChaCha8Rng>,
    /// Whether a server has ever answered this client (any HTTP status): until one has,
    /// connection failures mean nobody listens, and the client gives up after
    /// [`UNREACHABLE_AFTER`] attempts.
    answered: std::sync::atomic::AtomicBool,
}

/// Connection attempts that fail before any server has answered, after which a client gives
/// up (a closed port is refused at once; backing off through every retry took minutes).
pub const UNREACHABLE_AFTER: u32 = 3;

impl fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatClient")
            .field("endpoint", &self.endpoint)
            .field("model", &self.config.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("cache", &self.config.cache)
            .finish_non_exhaustive()
    }
}

/// A request with the system prompt applied and its cache key computed.
struct Prepared {
    messages: Vec<Message>,
    seed: Option<u64>,
    canonical: String,
    key: String,
}

enum Claim<'a> {
    Hit(Completion),
    Owner(ClaimGuard<'a>),
}

/// Marks a key as being fetched by this thread; released (and waiters woken) on drop.
struct ClaimGuard<'a> {
    client: &'a ChatClient,
    key: String,
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        lock(&self.client.pending).remove(&self.key);
        self.client.pending_cv.notify_all();
    }
}

/// Whether the URL's host is the local machine (then no proxy is ever used).
fn is_loopback(base_url: &str) -> bool {
    let rest = base_url
        .trim()
        .split_once("://")
        .map_or(base_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn header_f64(headers: &ureq::http::HeaderMap, name: &str) -> Option<f64> {
    let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// `retry-after-ms` (milliseconds) or `Retry-After` (seconds; the HTTP-date form is
/// ignored and the ordinary backoff applies).
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    header_f64(headers, "retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| header_f64(headers, "retry-after"))
        .map(|s| Duration::from_secs_f64(s.min(86_400.0)))
}

impl ChatClient {
    /// Validate the configuration, read the API key from the environment and open the
    /// cache.
    pub fn new(config: ChatConfig) -> Result<ChatClient, HttpError> {
        config.validate()?;
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => Some(Secret(k.trim().to_string())),
                _ => return Err(HttpError::MissingApiKey { var: var.clone() }),
            },
        };
        if let Some(k) = &api_key {
            if ureq::http::HeaderValue::from_str(&format!("Bearer {}", k.0)).is_err() {
                return Err(HttpError::Config(format!(
                    "the API key in `{}` contains characters not allowed in an HTTP header",
                    config.api_key_env.as_deref().unwrap_or_default()
                )));
            }
        }
        // No connection is ever reused: on a kept-alive connection, bytes that a broken
        // server or proxy sent after an answer (a duplicate, a late answer) can arrive just
        // after the next request goes out and be read as *its* answer, a wrong completion
        // that would be cached for good (tests/faults.rs, `desynchronised_connection`).
        // A fresh connection per attempt costs a handshake, nothing next to a model call.
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout()))
            .max_redirects(0)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .user_agent(concat!("autotune-http/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&config.base_url) {
            builder = builder.proxy(None);
        }
        let agent = ureq::Agent::new_with_config(builder.build());
        let cache = Cache::open(config.cache.as_deref())?;
        Ok(ChatClient {
            endpoint: config.endpoint(),
            api_key,
            agent,
            cache,
            limiter: RateLimiter::new(
                config.requests_per_minute,
                config.tokens_per_minute,
                config.rate_window_seconds,
            ),
            in_flight: Semaphore::new(config.concurrency),
            pending: Mutex::new(HashSet::new()),
            pending_cv: Condvar::new(),
            usage: Mutex::new(Usage::default()),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(config.backoff.jitter_seed)),
            answered: std::sync::atomic::AtomicBool::new(false),
            config,
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ChatConfig {
        &self.config
    }

    /// Counters since this client was created.
    pub fn usage(&self) -> Usage {
        *lock(&self.usage)
    }

    /// Number of completions in the cache (all processes' entries, for a file cache).
    pub fn cache_len(&self) -> Result<u64, HttpError> {
        self.cache.len()
    }

    /// The cache key (SHA-256 hex) of a request under this configuration.
    pub fn cache_key(&self, request: &ChatRequest) -> String {
        self.prepare(request).key
    }

    /// The raw response JSON stored for a request, if it is cached.
    pub fn cached_response(&self, request: &ChatRequest) -> Result<Option<String>, HttpError> {
        self.cache.raw_response(&self.prepare(request).key)
    }

    /// Complete every request, up to `concurrency` at once; results are in request order.
    /// Cached requests are answered without any request; identical requests in the batch
    /// are sent once.
    pub fn complete_batch(&self, requests: &[ChatRequest]) -> Vec<Result<Completion, HttpError>> {
        let mut out: Vec<Option<Result<Completion, HttpError>>> =
            (0..requests.len()).map(|_| None).collect();
        // Answer cache hits on this thread; only misses need workers.
        let mut misses = Vec::new();
        for (i, r) in requests.iter().enumerate() {
            match self.lookup(&self.prepare(r).key) {
                Ok(Some(hit)) => out[i] = Some(Ok(hit)),
                Ok(None) => misses.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        let workers = self.config.concurrency.min(misses.len());
        if workers <= 1 {
            for &i in &misses {
                out[i] = Some(self.complete(&requests[i]));
            }
        } else {
            let next = AtomicUsize::new(0);
            let answered: Vec<Vec<(usize, Result<Completion, HttpError>)>> =
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..workers)
                        .map(|_| {
                            s.spawn(|| {
                                let mut done = Vec::new();
                                loop {
                                    let j = next.fetch_add(1, Ordering::Relaxed);
                                    let Some(&i) = misses.get(j) else { break };
                                    done.push((i, self.complete(&requests[i])));
                                }
                                done
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                        .collect()
                });
            for (i, r) in answered.into_iter().flatten() {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.expect("every request of the batch is answered"))
            .collect()
    }

    /// Complete one request (from the cache if possible).
    pub fn complete(&self, request: &ChatRequest) -> Result<Completion, HttpError> {
        let prepared = self.prepare(request);
        let guard = match self.claim(&prepared.key)? {
            Claim::Hit(hit) => return Ok(hit),
            Claim::Owner(guard) => guard,
        };
        let result = self.fetch(&prepared).and_then(|(parsed, raw)| {
            let (prompt_tokens, completion_tokens) = parsed.usage.unwrap_or_else(|| {
                (
                    estimate_prompt_tokens(&prepared.messages),
                    estimate_text_tokens(&parsed.text),
                )
            });
            let completion = Completion {
                text: parsed.text,
                prompt_tokens,
                completion_tokens,
                finish_reason: parsed.finish_reason,
                cached: false,
                cost_usd: self.config.prices.cost(prompt_tokens, completion_tokens),
            };
            {
                let mut u = lock(&self.usage);
                u.paid_completions += 1;
                u.prompt_tokens += prompt_tokens;
                u.completion_tokens += completion_tokens;
                u.cost_usd += completion.cost_usd;
            }
            // Committed before the completion is returned: a crash from here on loses
            // nothing that was paid for.
            self.cache.put(&Entry {
                key: &prepared.key,
                model: &self.config.model,
                request: &prepared.canonical,
                response: &raw,
                completion: &completion,
            })?;
            Ok(completion)
        });
        drop(guard);
        if result.is_err() {
            lock(&self.usage).failures += 1;
        }
        result
    }

    fn prepare(&self, request: &ChatRequest) -> Prepared {
        let c = &self.config;
        let mut messages = Vec::with_capacity(request.messages.len() + 1);
        if let Some(system) = &c.system_prompt {
            messages.push(Message::system(system.clone()));
        }
        messages.extend(request.messages.iter().cloned());
        let (canonical, key) = KeySource {
            v: KEY_VERSION,
            model: &c.model,
            messages: &messages,
            temperature: c.temperature,
            top_p: c.top_p,
            max_tokens: c.max_tokens,
            seed: c.seed,
            stop: c.stop.as_deref(),
            sample_index: request.sample_index,
        }
        .canonical_and_key();
        Prepared {
            messages,
            seed: c
                .seed
                .map(|s| s.wrapping_add(u64::from(request.sample_index))),
            canonical,
            key,
        }
    }

    fn lookup(&self, key: &str) -> Result<Option<Completion>, HttpError> {
        let hit = self.cache.get(key)?;
        if hit.is_some() {
            lock(&self.usage).cache_hits += 1;
        }
        Ok(hit)
    }

    /// A cache hit, or the exclusive right to fetch `key` (waiting while another thread
    /// of this client fetches it).
    fn claim(&self, key: &str) -> Result<Claim<'_>, HttpError> {
        let mut pending = lock(&self.pending);
        loop {
            if let Some(hit) = self.lookup(key)? {
                return Ok(Claim::Hit(hit));
            }
            if pending.insert(key.to_string()) {
                return Ok(Claim::Owner(ClaimGuard {
                    client: self,
                    key: key.to_string(),
                }));
            }
            pending = self
                .pending_cv
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Send with rate limits, the in-flight limit and retries.
    fn fetch(&self, p: &Prepared) -> Result<(Parsed, String), HttpError> {
        let c = &self.config;
        let body = serde_json::to_vec(&RequestBody {
            model: &c.model,
            messages: &p.messages,
            temperature: c.temperature,
            top_p: c.top_p,
            max_tokens: c.max_tokens,
            seed: p.seed,
            stop: c.stop.as_deref(),
        })
        .map_err(|e| HttpError::Config(format!("cannot encode the request: {e}")))?;
        let estimate = (estimate_prompt_tokens(&p.messages) + u64::from(c.max_tokens)) as f64;
        let mut attempt: u32 = 0;
        loop {
            self.limiter.acquire(estimate);
            let result = {
                let _permit = self.in_flight.acquire();
                {
                    let mut u = lock(&self.usage);
                    u.requests += 1;
                    if attempt > 0 {
                        u.retries += 1;
                    }
                }
                self.send_once(&body)
            };
            match result {
                Ok((parsed, raw)) => {
                    let used = parsed.usage.map_or_else(
                        || estimate_prompt_tokens(&p.messages) + estimate_text_tokens(&parsed.text),
                        |(pt, ct)| pt + ct,
                    );
                    self.limiter.correct_tokens(estimate, used as f64);
                    return Ok((parsed, raw));
                }
                Err(e) => {
                    if matches!(e, HttpError::Status { .. }) {
                        // Rejected requests generated nothing.
                        self.limiter.correct_tokens(estimate, 0.0);
                    }
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    if attempt >= c.max_retries {
                        return Err(if c.max_retries == 0 {
                            e
                        } else {
                            HttpError::RetriesExhausted {
                                attempts: attempt + 1,
                                last: Box::new(e),
                            }
                        });
                    }
                    attempt += 1;
                    self.wait_to_retry(e, attempt)?;
                }
            }
        }
    }

    /// POST the JSON `body` to `{base_url}/{path}` (e.g. `admin/load`, a weight push) with
    /// this client's key, timeout, retries and backoff; the response body of the 2xx answer.
    ///
    /// Only for idempotent requests: a retry sends the same bytes again, so the server must
    /// answer a repeat as it answered the first (as `serve-model` does for a push of the
    /// same weights at the same version). A 409 is not retried: the server says the request
    /// is stale, and it will stay so. Attempts count in [`ChatClient::usage`] as requests
    /// and retries; nothing is cached.
    pub fn post_json(&self, path: &str, body: &str) -> Result<String, HttpError> {
        let url = format!(
            "{}/{}",
            self.config.base_url.trim().trim_end_matches('/'),
            path.trim_start_matches('/')
        );
        let c = &self.config;
        let mut attempt: u32 = 0;
        let result = loop {
            {
                let mut u = lock(&self.usage);
                u.requests += 1;
                if attempt > 0 {
                    u.retries += 1;
                }
            }
            let e = match self.post_once(&url, body.as_bytes()) {
                Ok(text) => break Ok(text),
                Err(e) => e,
            };
            if !e.is_retryable() || e.status() == Some(409) {
                break Err(e);
            }
            if attempt >= c.max_retries {
                break Err(if c.max_retries == 0 {
                    e
                } else {
                    HttpError::RetriesExhausted {
                        attempts: attempt + 1,
                        last: Box::new(e),
                    }
                });
            }
            attempt += 1;
            if let Err(e) = self.wait_to_retry(e, attempt) {
                break Err(e);
            }
        };
        if result.is_err() {
            lock(&self.usage).failures += 1;
        }
        result
    }

    /// One exchange of [`ChatClient::post_json`].
    fn post_once(&self, url: &str, body: &[u8]) -> Result<String, HttpError> {
        let mut req = self
            .agent
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("authorization", format!("Bearer {}", k.0));
        }
        let mut resp = req.send(body).map_err(|e| {
            self.transport_error(url, e, "sending the request or awaiting the answer")
        })?;
        let status = resp.status().as_u16();
        self.answered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let limit = if (200..300).contains(&status) {
            MAX_BODY_BYTES
        } else {
            MAX_ERROR_BODY_BYTES
        };
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| self.transport_error(url, e, BODY_BROKE))?;
        if !(200..300).contains(&status) {
            return Err(HttpError::Status {
                url: url.to_string(),
                status,
                message: self.redact(error_message(&bytes)),
                retry_after: retry_after(resp.headers()),
            });
        }
        Ok(self.redact(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Before retry number `retry` (1-based) after the retryable error `e`: gives up with
    /// [`HttpError::Unreachable`] when no server has ever answered and [`UNREACHABLE_AFTER`]
    /// attempts could not connect; otherwise says on stderr what is retried and when, and
    /// waits.
    fn wait_to_retry(&self, e: HttpError, retry: u32) -> Result<(), HttpError> {
        use std::sync::atomic::Ordering;
        if let HttpError::Connect { url, .. } = &e {
            if retry >= UNREACHABLE_AFTER && !self.answered.load(Ordering::Relaxed) {
                return Err(HttpError::Unreachable {
                    url: url.clone(),
                    attempts: retry,
                    last: Box::new(e),
                });
            }
        }
        let delay = self.backoff_delay(retry, e.retry_after());
        eprintln!(
            "warning: {e}; retry {retry} of {} in {:.1} s",
            self.config.max_retries,
            delay.as_secs_f64()
        );
        std::thread::sleep(delay);
        Ok(())
    }

    /// Wait before retry number `retry` (1-based).
    fn backoff_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let b = &self.config.backoff;
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let base = (b.initial_seconds * b.multiplier.powi(exponent)).min(b.max_seconds);
        let u: f64 = lock(&self.rng).gen();
        let mut secs = base * (0.5 + 0.5 * u);
        if let Some(ra) = retry_after {
            secs = secs.max(ra.as_secs_f64().min(b.max_retry_after_seconds));
        }
        Duration::from_secs_f64(secs)
    }

    fn redact(&self, text: String) -> String {
        match &self.api_key {
            Some(k) if !k.0.is_empty() && text.contains(&k.0) => text.replace(&k.0, "[redacted]"),
            _ => text,
        }
    }

    /// One HTTP exchange.
    fn send_once(&self, body: &[u8]) -> Result<(Parsed, String), HttpError> {
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(k) = &self.api_key {
            req = req.header("authorization", format!("Bearer {}", k.0));
        }
        let mut resp = req.send(body).map_err(|e| {
            self.transport_error(
                &self.endpoint,
                e,
                "sending the request or awaiting the answer",
            )
        })?;
        let status = resp.status().as_u16();
        self.answered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if !(200..300).contains(&status) {
            let retry_after = retry_after(resp.headers());
            let message = match resp
                .body_mut()
                .with_config()
                .limit(MAX_ERROR_BODY_BYTES)
                .read_to_vec()
            {
                Ok(bytes) => error_message(&bytes),
                Err(e) => format!(
                    "(error body unreadable: {})",
                    self.transport_error(&self.endpoint, e, "reading the error body")
                ),
            };
            return Err(HttpError::Status {
                url: self.endpoint.clone(),
                status,
                message: self.redact(message),
                retry_after,
            });
        }
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| self.transport_error(&self.endpoint, e, BODY_BROKE))?;
        let parsed = parse_response(&bytes).map_err(|m| HttpError::Malformed {
            url: self.endpoint.clone(),
            message: self.redact(m),
        })?;
        // `parse_response` succeeded, so the body is valid UTF-8 JSON.
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        Ok((parsed, raw))
    }

    /// `stage` says what the client was doing when the exchange failed.
    fn transport_error(&self, url: &str, e: ureq::Error, stage: &str) -> HttpError {
        use std::io::ErrorKind;
        let url = url.to_string();
        let message = format!("{stage}: {}", self.redact(e.to_string()));
        match e {
            ureq::Error::Timeout(_) => HttpError::Timeout {
                url,
                seconds: self.config.timeout_seconds,
            },
            ureq::Error::BodyExceedsLimit(limit) => HttpError::BodyTooLarge { url, limit },
            ureq::Error::Io(io) => {
                if let Some(ureq::Error::BodyExceedsLimit(limit)) =
                    io.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>())
                {
                    return HttpError::BodyTooLarge { url, limit: *limit };
                }
                match io.kind() {
                    ErrorKind::ConnectionRefused
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable => HttpError::Connect { url, message },
                    ErrorKind::TimedOut | ErrorKind::WouldBlock => HttpError::Timeout {
                        url,
                        seconds: self.config.timeout_seconds,
                    },
                    _ => HttpError::Transport { url, message },
                }
            }
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                HttpError::Connect { url, message }
            }
            ureq::Error::Protocol(_) => HttpError::Transport { url, message },
            _ => HttpError::Request { url, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for u in [
            "http://127.0.0.1:8000/v1",
            "http://localhost/v1",
            "http://LOCALHOST:1",
            "http://[::1]:8000/v1",
            "http://127.1.2.3",
            "http://user:pw@127.0.0.1:5/v1",
        ] {
            assert!(is_loopback(u), "{u}");
        }
        for u in [
            "https://api.openai.com/v1",
            "http://10.0.0.1:8000",
            "http://127.example.com/v1",
            "http://localhost.example.com/v1",
        ] {
            assert!(!is_loopback(u), "{u}");
        }
    }

    #[test]
    fn backoff_is_capped_jittered_seeded_and_honours_retry_after() {
        let mut cfg = ChatConfig::new("http://127.0.0.1:1/v1", "m");
        cfg.backoff.initial_seconds = 1.0;
        cfg.backoff.max_seconds = 4.0;
        cfg.backoff.jitter_seed = 7;
        let a = ChatClient::new(cfg.clone()).unwrap();
        let b = ChatClient::new(cfg).unwrap();
        let da: Vec<Duration> = (1..=6).map(|r| a.backoff_delay(r, None)).collect();
        let db: Vec<Duration> = (1..=6).map(|r| b.backoff_delay(r, None)).collect();
        assert_eq!(da, db, "same seed, same delays");
        for (r, d) in (1..=6).zip(&da) {
            let base = (2f64.powi(r - 1)).min(4.0);
            let s = d.as_secs_f64();
            assert!(s >= base * 0.5 && s < base, "retry {r}: {s} vs base {base}");
        }
        let d = a.backoff_delay(1, Some(Duration::from_secs(3)));
        assert!(d >= Duration::from_secs(3));
        let d = a.backoff_delay(1, Some(Duration::from_secs(100_000)));
        assert_eq!(
            d,
            Duration::from_secs(300),
            "capped at max_retry_after_seconds"
        );
    }

    #[test]
    fn missing_api_key_names_the_variable() {
        let mut cfg = ChatConfig::new("http://127.0.0.1:1/v1", "m");
        cfg.api_key_env = Some("AUTOTUNE_HTTP_UNIT_TEST_SURELY_UNSET".into());
        let err = ChatClient::new(cfg).unwrap_err();
        assert!(matches!(err, HttpError::MissingApiKey { .. }));
        assert!(err
            .to_string()
            .contains("AUTOTUNE_HTTP_UNIT_TEST_SURELY_UNSET"));
    }

    #[test]
    fn system_prompt_and_sample_index_shape_the_key_and_seed() {
        let mut cfg = ChatConfig::new("http://127.0.0.1:1/v1", "m");
        cfg.seed = Some(10);
        let plain = ChatClient::new(cfg.clone()).unwrap();
        cfg.system_prompt = Some("be brief".into());
        let with_system = ChatClient::new(cfg).unwrap();
        let r0 = ChatRequest::user("q");
        let r1 = r0.clone().with_sample_index(1);
        assert_ne!(plain.cache_key(&r0), plain.cache_key(&r1));
        assert_ne!(plain.cache_key(&r0), with_system.cache_key(&r0));
        let p = with_system.prepare(&r1);
        assert_eq!(p.messages[0], Message::system("be brief"));
        assert_eq!(p.seed, Some(11));
        // The base URL is not part of the key.
        let mut moved = plain.config().clone();
        moved.base_url = "http://localhost:9/v1".into();
        assert_eq!(
            ChatClient::new(moved).unwrap().cache_key(&r0),
            plain.cache_key(&r0)
        );
    }
}
