//! Fault injection between the client and a real loopback server: every request goes through
//! [`FaultProxy`] (a TCP proxy on 127.0.0.1) to the mock chat server, and the proxy breaks
//! requests by a seeded schedule: timeouts, resets, 429/5xx, truncated, invalid or slow
//! bodies, duplicated, desynchronised and late answers, replayed requests.
//!
//! For every class the test checks that
//! * the client retries to the right completion (the one the server sent for that request),
//!   or fails with an error naming the URL and the cause; never a panic, never a wrong answer;
//! * the cache file, reopened, holds exactly the completions the client returned, each the
//!   byte-for-byte body the server sent, and nothing for requests that failed;
//! * a completion that reached the client is never requested again (counted at the proxy and
//!   at the server behind it), and `usage().requests` counts every attempt.
//!
//! The mock server numbers its answers (`reply #N to: ...`), so an answer given to the wrong
//! request, or twice, cannot go unnoticed. `FAULT_REPORT=1` prints one line per class.

mod common;

use autotune_http::{ChatClient, ChatConfig, ChatRequest, Completion, HttpError};
use common::proxy::{fault_counts, received, Exchange, Fault, FaultProxy, Gate, Schedule, Timing};
use common::{MockServer, COMPLETION_TOKENS, PROMPT_TOKENS};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The client's whole-exchange timeout (short: the hold faults cost one each).
const TIMEOUT: Duration = Duration::from_millis(400);

struct Rig {
    server: MockServer,
    proxy: FaultProxy,
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(schedule: Schedule) -> Rig {
        let server = MockServer::start();
        let proxy = FaultProxy::start(server.addr, schedule, Timing::for_client_timeout(TIMEOUT));
        Rig {
            server,
            proxy,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache.sqlite")
    }

    fn config(&self, max_retries: u32) -> ChatConfig {
        let mut c = ChatConfig::new(format!("{}/v1", self.proxy.url()), "m");
        c.timeout_seconds = TIMEOUT.as_secs_f64();
        c.max_retries = max_retries;
        c.backoff.initial_seconds = 0.005;
        c.backoff.max_seconds = 0.02;
        c.concurrency = 4;
        c.cache = Some(self.cache());
        c
    }

    fn endpoint(&self) -> String {
        format!("{}/v1/chat/completions", self.proxy.url())
    }
}

fn requests(tag: &str, n: usize) -> Vec<ChatRequest> {
    (0..n)
        .map(|i| ChatRequest::user(format!("{tag} q{i}")))
        .collect()
}

fn last_content(body: &Value) -> Option<String> {
    body["messages"]
        .as_array()?
        .last()?
        .get("content")?
        .as_str()
        .map(str::to_string)
}

fn prompt(r: &ChatRequest) -> String {
    r.messages.last().unwrap().content.clone()
}

/// The answer that reached the client for each prompt (see [`received`]); panics if a
/// prompt was requested again after its answer came in time.
fn answers(rig: &Rig) -> HashMap<String, (Exchange, bool)> {
    received(
        &rig.proxy.client_requests(),
        |e| last_content(&e.body_json()),
        TIMEOUT,
    )
    .unwrap_or_else(|m| panic!("{m}"))
}

/// Every check of the module doc on one batch: answers, errors, never requested again.
fn audit_batch(
    rig: &Rig,
    reqs: &[ChatRequest],
    results: &[Result<Completion, HttpError>],
) -> (usize, usize) {
    let got = answers(rig);
    let (mut ok, mut failed) = (0, 0);
    for (req, res) in reqs.iter().zip(results) {
        let p = prompt(req);
        match res {
            Ok(c) => {
                ok += 1;
                let (e, _) = got
                    .get(&p)
                    .unwrap_or_else(|| panic!("`{p}`: returned, but no answer reached the client"));
                assert_eq!(
                    Some(c.text.as_str()),
                    e.upstream_json().unwrap()["choices"][0]["message"]["content"].as_str(),
                    "`{p}`: the client returned what the server sent for it"
                );
            }
            Err(err) => {
                failed += 1;
                if let Some((_, late)) = got.get(&p) {
                    assert!(
                        late,
                        "`{p}`: an answer came in time, yet the client failed: {err}"
                    );
                }
                let text = err.to_string();
                assert!(
                    text.contains(&rig.endpoint()),
                    "the error names the URL: {text}"
                );
            }
        }
    }
    (ok, failed)
}

/// The cache file, reopened: every entry parses, is the server's body for its request
/// byte for byte, and `expected` are exactly the prompts it holds.
fn audit_cache(rig: &Rig, expected: &HashSet<String>) {
    let got = answers(rig);
    let conn = rusqlite::Connection::open_with_flags(
        rig.cache(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT request, response, text, prompt_tokens, completion_tokens, finish_reason
             FROM completions",
        )
        .unwrap();
    let rows: Vec<(String, String, String, i64, i64, Option<String>)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut seen = HashSet::new();
    for (request, response, text, pt, ct, finish) in &rows {
        let request: Value = serde_json::from_str(request).expect("stored request is JSON");
        let p = last_content(&request).expect("stored request has messages");
        let v: Value = serde_json::from_str(response).expect("stored response is JSON");
        assert_eq!(
            v["choices"][0]["message"]["content"].as_str(),
            Some(text.as_str()),
            "`{p}`: stored text is the stored response's content"
        );
        let (e, _) = got
            .get(&p)
            .expect("cached, so an answer reached the client");
        assert_eq!(
            response.as_bytes(),
            e.upstream.as_ref().unwrap().1.as_slice(),
            "`{p}`: the cache holds exactly what the server sent"
        );
        assert_eq!((*pt as u64, *ct as u64), (PROMPT_TOKENS, COMPLETION_TOKENS));
        assert_eq!(finish.as_deref(), Some("stop"));
        assert!(seen.insert(p), "one entry per request");
    }
    assert_eq!(
        &seen, expected,
        "the cache holds exactly the completions returned"
    );
}

/// Server-side count: every request the proxy forwarded, and nothing else, reached it.
fn audit_server(rig: &Rig) {
    rig.proxy.settle(Duration::from_millis(400));
    let forwarded = rig.proxy.exchanges().iter().filter(|e| e.forwarded).count();
    assert_eq!(rig.server.requests().len(), forwarded);
}

fn expected_error(fault: Fault) -> &'static str {
    match fault {
        Fault::Blackhole | Fault::Stall | Fault::Late => "timed out",
        Fault::ResetRequest | Fault::ResetResponse | Fault::Truncated => "transport error",
        Fault::TooManyRequests | Fault::TooManyRetryAfter | Fault::TooManyRetryAfterMs => {
            "HTTP 429"
        }
        Fault::InternalError => "HTTP 500",
        Fault::BadGateway => "HTTP 502",
        Fault::Unavailable => "HTTP 503",
        Fault::InvalidJson => "not valid JSON",
        Fault::WrongShape => "`choices` is empty",
        Fault::EchoKey401 => "HTTP 401",
        Fault::Pass | Fault::Drip | Fault::Duplicate | Fault::Desync | Fault::Replay => "",
    }
}

fn report(line: String) {
    if std::env::var_os("FAULT_REPORT").is_some() {
        println!("FAULT_REPORT {line}");
    }
}

/// One fault class: retried to the right answers, then a clear error when it never stops.
fn class_case(fault: Fault, seed: u64) {
    // 1. Half of the attempts faulty, at most 3 in a row: 4 retries always get through.
    let rig = Rig::new(Schedule::seeded(seed, 0.5, &[fault], 3));
    let client = ChatClient::new(rig.config(4)).unwrap();
    let reqs = requests("a", 12);
    let results = client.complete_batch(&reqs);
    for (r, res) in reqs.iter().zip(&results) {
        assert!(res.is_ok(), "{fault:?}: `{}` failed: {res:?}", prompt(r));
    }
    audit_batch(&rig, &reqs, &results);
    let ex = rig.proxy.client_requests();
    let injected = ex.iter().filter(|e| e.fault == fault).count();
    assert!(injected > 0, "{fault:?} was injected");
    let u = client.usage();
    assert_eq!(u.requests as usize, ex.len(), "every attempt is counted");
    assert_eq!(u.retries as usize, ex.len() - reqs.len());
    assert_eq!(u.paid_completions as usize, reqs.len());
    if fault == Fault::TooManyRetryAfterMs {
        // `retry-after-ms: 30` beats the 5-20 ms backoff.
        for w in ex.windows(1) {
            let e = &w[0];
            if e.fault != fault {
                continue;
            }
            let p = last_content(&e.body_json());
            if let Some(next) = ex
                .iter()
                .find(|n| n.index > e.index && last_content(&n.body_json()) == p)
            {
                assert!(
                    next.at - e.at >= Duration::from_millis(30),
                    "Retry-After honoured"
                );
            }
        }
    }
    drop(client);
    // 2. The cache, reopened, holds exactly these answers; a new client pays nothing.
    let all: HashSet<String> = reqs.iter().map(prompt).collect();
    audit_cache(&rig, &all);
    let again = ChatClient::new(rig.config(4)).unwrap();
    let before = rig.proxy.client_requests().len();
    let cached = again.complete_batch(&reqs);
    for (a, b) in results.iter().zip(&cached) {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert!(b.cached);
        assert_eq!(a.text, b.text);
    }
    assert_eq!(
        rig.proxy.client_requests().len(),
        before,
        "no request for a cached answer"
    );
    assert_eq!(again.usage().requests, 0);

    // 3. Every attempt faulty: the faults that still deliver the answer succeed, the others
    // fail naming the URL and the cause, and nothing of theirs is cached.
    rig.proxy.set_schedule(Schedule::always(fault));
    let client = ChatClient::new(rig.config(1)).unwrap();
    let bad = requests("b", 2);
    let t = Instant::now();
    let results = client.complete_batch(&bad);
    let took = t.elapsed();
    let (ok, failed) = audit_batch(&rig, &bad, &results);
    let want = expected_error(fault);
    if want.is_empty() {
        assert_eq!(ok, bad.len(), "{fault:?} delivers the answer: {results:?}");
    } else {
        assert_eq!(failed, bad.len());
        for r in &results {
            let e = r.as_ref().unwrap_err();
            let text = e.to_string();
            assert!(
                matches!(e, HttpError::RetriesExhausted { attempts: 2, .. }),
                "{text}"
            );
            assert!(text.contains(want), "{fault:?}: `{want}` in `{text}`");
        }
    }
    drop(client);
    let mut cached_prompts = all;
    for (r, res) in bad.iter().zip(&results) {
        if res.is_ok() {
            cached_prompts.insert(prompt(r));
        }
    }
    audit_cache(&rig, &cached_prompts);
    audit_server(&rig);
    let sample_error = results
        .iter()
        .find_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .unwrap_or_else(|| "none (answer delivered)".into());
    report(format!(
        "{fault:?}\tseeded: {} requests, {} attempts, {injected} faulted, all {} answers right\t\
         always: {} attempts, {ok} ok, {failed} clear errors in {:.2} s\terror: {sample_error}",
        reqs.len(),
        ex.len(),
        reqs.len(),
        rig.proxy.client_requests().len() - before,
        took.as_secs_f64(),
    ));
}

macro_rules! class_tests {
    ($($name:ident: $fault:expr, $seed:expr;)*) => {
        $(
            #[test]
            fn $name() {
                class_case($fault, $seed);
            }
        )*
    };
}

class_tests! {
    blackhole_never_answered: Fault::Blackhole, 1;
    stall_after_the_server_answered: Fault::Stall, 2;
    reset_mid_request: Fault::ResetRequest, 3;
    reset_mid_response: Fault::ResetResponse, 4;
    status_429_without_retry_after: Fault::TooManyRequests, 5;
    status_429_with_retry_after: Fault::TooManyRetryAfter, 6;
    status_429_with_retry_after_ms: Fault::TooManyRetryAfterMs, 7;
    status_500: Fault::InternalError, 8;
    status_502_after_the_server_answered: Fault::BadGateway, 9;
    status_503: Fault::Unavailable, 10;
    truncated_body: Fault::Truncated, 11;
    invalid_json_body: Fault::InvalidJson, 12;
    json_that_is_no_completion: Fault::WrongShape, 13;
    slow_dripped_response: Fault::Drip, 14;
    duplicated_response: Fault::Duplicate, 15;
    desynchronised_connection: Fault::Desync, 16;
    late_response_after_the_timeout: Fault::Late, 17;
    replayed_request: Fault::Replay, 18;
}

/// Every class at once, a fifth of the attempts faulty, 8 requests in flight.
#[test]
fn all_classes_mixed_at_a_fifth_of_requests_give_the_fault_free_answers() {
    let rig = Rig::new(Schedule::seeded(2024, 0.2, &Fault::ALL, 4));
    let mut cfg = rig.config(6);
    cfg.concurrency = 8;
    let client = ChatClient::new(cfg.clone()).unwrap();
    let reqs = requests("mix", 60);
    let t = Instant::now();
    let results = client.complete_batch(&reqs);
    let took = t.elapsed();
    let (ok, failed) = audit_batch(&rig, &reqs, &results);
    assert_eq!((ok, failed), (reqs.len(), 0));
    let ex = rig.proxy.client_requests();
    let u = client.usage();
    assert_eq!(u.requests as usize, ex.len());
    assert_eq!(u.retries as usize, ex.len() - reqs.len());
    drop(client);
    audit_cache(&rig, &reqs.iter().map(prompt).collect());
    audit_server(&rig);
    let again = ChatClient::new(cfg).unwrap();
    assert!(again
        .complete_batch(&reqs)
        .iter()
        .all(|r| r.as_ref().unwrap().cached));
    assert_eq!(again.usage().requests, 0);
    let counts = fault_counts(&ex);
    let faulted: usize = counts
        .iter()
        .filter(|(f, _)| *f != Fault::Pass)
        .map(|(_, n)| n)
        .sum();
    assert!(faulted >= 10, "{counts:?}");
    report(format!(
        "Mixed\t{} requests, {} attempts, {faulted} faulted ({counts:?}), all answers right, {:.2} s",
        reqs.len(),
        ex.len(),
        took.as_secs_f64()
    ));
}

/// A connect timeout: the listener's accept queue is full, so the handshake hangs; the client
/// gives up after its timeout, retries, and gets through once the queue drains.
#[test]
fn connect_timeout_then_success_and_connect_timeout_error() {
    let server = MockServer::start();
    let mut gate = Gate::closed();
    assert!(
        gate.is_blocking(),
        "a full accept queue makes connects hang"
    );
    let mut c = ChatConfig::new(format!("{}/v1", gate.url()), "m");
    c.timeout_seconds = 0.3;
    c.max_retries = 1;
    c.backoff.initial_seconds = 0.005;
    c.backoff.max_seconds = 0.01;
    let client = ChatClient::new(c.clone()).unwrap();
    let err = client.complete(&ChatRequest::user("never")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/v1/chat/completions", gate.url())) && text.contains("timed out"),
        "{text}"
    );
    assert_eq!(client.cache_len().unwrap(), 0);
    assert_eq!(server.requests().len(), 0);

    c.max_retries = 6;
    c.backoff.initial_seconds = 0.2;
    c.backoff.max_seconds = 0.2;
    let client = ChatClient::new(c).unwrap();
    let url = gate.url();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        gate.open(server.addr);
        server
    });
    let t = Instant::now();
    let out = client.complete(&ChatRequest::user("eventually")).unwrap();
    let server = opener.join().unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(out.text, "reply #0 to: eventually");
    let u = client.usage();
    assert!(u.retries >= 1 && u.paid_completions == 1, "{u:?}");
    assert_eq!(server.requests().len(), 1, "the server answered once");
    report(format!(
        "ConnectTimeout\t{url}: {} attempts, then the right answer; with 1 retry: {text}",
        u.requests
    ));
}

/// Identical requests in flight from several threads through a faulty proxy are still sent
/// once each (the in-process de-duplication survives retries).
#[test]
fn identical_requests_from_threads_are_paid_once_under_faults() {
    let rig = Rig::new(Schedule::seeded(99, 0.3, &Fault::ALL, 3));
    let client = ChatClient::new(rig.config(6)).unwrap();
    let reqs = requests("dup", 6);
    let mut batch = reqs.clone();
    batch.extend(reqs.clone());
    let outs: Vec<Vec<Result<Completion, HttpError>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3)
            .map(|_| s.spawn(|| client.complete_batch(&batch)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut texts: HashMap<String, String> = HashMap::new();
    for out in &outs {
        audit_batch(&rig, &batch, out);
        for (r, res) in batch.iter().zip(out) {
            let t = res.as_ref().unwrap().text.clone();
            assert_eq!(texts.entry(prompt(r)).or_insert_with(|| t.clone()), &t);
        }
    }
    assert_eq!(client.usage().paid_completions as usize, reqs.len());
    drop(client);
    audit_cache(&rig, &reqs.iter().map(prompt).collect());
    audit_server(&rig);
}
