//! The client against a local mock server (127.0.0.1, port 0) that injects faults.

mod common;

use autotune_http::{ChatClient, ChatConfig, ChatRequest, HttpError, Message, Prices};
use common::{Fault, MockServer, COMPLETION_TOKENS, PROMPT_TOKENS};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A fast-retrying configuration against `server`.
fn config(server: &MockServer) -> ChatConfig {
    let mut c = ChatConfig::new(server.base_url(), "test-model");
    c.timeout_seconds = 5.0;
    c.max_retries = 6;
    c.backoff.initial_seconds = 0.01;
    c.backoff.max_seconds = 0.05;
    c
}

fn user(i: usize) -> ChatRequest {
    ChatRequest::user(format!("q{i}"))
}

#[test]
fn sends_model_messages_and_sampling_parameters() {
    let server = MockServer::start();
    let mut c = config(&server);
    c.temperature = 0.3;
    c.top_p = 0.9;
    c.max_tokens = 64;
    c.seed = Some(5);
    c.stop = Some(vec!["\n\n".into()]);
    c.system_prompt = Some("be brief".into());
    let client = ChatClient::new(c).unwrap();
    let req = ChatRequest::new(vec![
        Message::user("2+2?"),
        Message::assistant("4"),
        Message::user("3+3?"),
    ])
    .with_sample_index(2);
    let out = client.complete(&req).unwrap();
    assert_eq!(out.text, "reply #0 to: 3+3?");
    assert_eq!(out.finish_reason.as_deref(), Some("stop"));
    assert!(!out.cached);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None, "no key configured");
    let b = &r.body;
    assert_eq!(b["model"], "test-model");
    assert_eq!(b["temperature"], 0.3);
    assert_eq!(b["top_p"], 0.9);
    assert_eq!(b["max_tokens"], 64);
    assert_eq!(b["seed"], 7, "seed + sample_index");
    assert_eq!(b["stop"], serde_json::json!(["\n\n"]));
    assert_eq!(
        b["messages"],
        serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "3+3?"},
        ])
    );
    // Optional parameters are left out when not configured.
    let server2 = MockServer::start();
    ChatClient::new(config(&server2))
        .unwrap()
        .complete(&user(0))
        .unwrap();
    let b = &server2.requests()[0].body;
    assert!(b.get("seed").is_none() && b.get("stop").is_none(), "{b}");
}

#[test]
fn retries_429_with_retry_after_500_and_503_then_succeeds() {
    let server = MockServer::start();
    server.script([
        Fault::Status {
            code: 429,
            headers: vec![("retry-after-ms".into(), "300".into())],
            body: r#"{"error":{"message":"rate limited"}}"#.into(),
        },
        Fault::Status {
            code: 429,
            headers: vec![("retry-after".into(), "0.2".into())],
            body: String::new(),
        },
        Fault::status(500),
        Fault::status(503),
    ]);
    let client = ChatClient::new(config(&server)).unwrap();
    let t = Instant::now();
    let out = client.complete(&user(1)).unwrap();
    let elapsed = t.elapsed();
    assert_eq!(out.text, "reply #0 to: q1");
    assert!(
        elapsed >= Duration::from_millis(500),
        "Retry-After (300 ms + 200 ms) honoured: {elapsed:?}"
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 5);
    assert!(reqs[1].at - reqs[0].at >= Duration::from_millis(300));
    assert!(reqs[2].at - reqs[1].at >= Duration::from_millis(200));
    let u = client.usage();
    assert_eq!(
        (u.requests, u.retries, u.paid_completions, u.failures),
        (5, 4, 1, 0)
    );
}

#[test]
fn timeout_reset_truncated_and_malformed_bodies_are_retried() {
    let server = MockServer::start();
    server.script([
        Fault::Stall(Duration::from_secs(3)),
        Fault::Reset,
        Fault::Truncated,
        Fault::Body("this is not json".into()),
        Fault::Body("{}".into()),
        Fault::Body(r#"{"choices":[]}"#.into()),
    ]);
    let mut c = config(&server);
    c.timeout_seconds = 0.4;
    let client = ChatClient::new(c).unwrap();
    let t = Instant::now();
    let out = client.complete(&user(2)).unwrap();
    assert!(out.text.ends_with("to: q2"), "{}", out.text);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the stall was cut by the timeout"
    );
    assert_eq!(server.connections(), 7);
    let u = client.usage();
    assert_eq!((u.requests, u.retries, u.paid_completions), (7, 6, 1));
    assert_eq!(client.cache_len().unwrap(), 1);
}

#[test]
fn each_fault_maps_to_its_error_without_retries() {
    let server = MockServer::start();
    let mut c = config(&server);
    c.max_retries = 0;
    c.timeout_seconds = 0.3;
    let client = ChatClient::new(c).unwrap();
    type Check = fn(&HttpError) -> bool;
    let cases: Vec<(Fault, Check)> = vec![
        (Fault::Stall(Duration::from_secs(2)), |e| {
            matches!(e, HttpError::Timeout { .. })
        }),
        (Fault::Reset, |e| matches!(e, HttpError::Transport { .. })),
        (Fault::Truncated, |e| {
            matches!(e, HttpError::Transport { .. })
        }),
        (
            Fault::Body("<html>oops".into()),
            |e| matches!(e, HttpError::Malformed { message: m, .. } if m.contains("not valid JSON")),
        ),
        (
            Fault::Body(r#"{"id":"x"}"#.into()),
            |e| matches!(e, HttpError::Malformed { message: m, .. } if m.contains("missing field `choices`")),
        ),
        (
            Fault::Body(r#"{"choices":[]}"#.into()),
            |e| matches!(e, HttpError::Malformed { message: m, .. } if m.contains("`choices` is empty")),
        ),
        (
            Fault::Body(r#"{"choices":[{"message":{"role":"assistant"}}]}"#.into()),
            |e| matches!(e, HttpError::Malformed { message: m, .. } if m.contains("choices[0].message.content")),
        ),
        (Fault::Huge(9 * 1024 * 1024), |e| {
            matches!(e, HttpError::BodyTooLarge { .. })
        }),
        (
            Fault::status(503),
            |e| matches!(e, HttpError::Status { status: 503, message, .. } if message == "injected 503"),
        ),
    ];
    for (i, (fault, expected)) in cases.into_iter().enumerate() {
        server.script([fault.clone()]);
        let err = client.complete(&user(100 + i)).unwrap_err();
        assert!(expected(&err), "{fault:?} gave {err:?}");
    }
    let u = client.usage();
    assert_eq!(
        (u.requests, u.retries, u.failures, u.paid_completions),
        (9, 0, 9, 0)
    );
    assert_eq!(client.cache_len().unwrap(), 0, "nothing broken was cached");
}

#[test]
fn retries_exhausted_says_how_many_and_the_last_cause() {
    let server = MockServer::start();
    server.script([Fault::status(500), Fault::status(502), Fault::status(500)]);
    let mut c = config(&server);
    c.max_retries = 2;
    let client = ChatClient::new(c).unwrap();
    let err = client.complete(&user(3)).unwrap_err();
    match &err {
        HttpError::RetriesExhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert_eq!(last.status(), Some(500));
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("3 attempts") && text.contains("injected 500"),
        "{text}"
    );
    assert_eq!(server.connections(), 3);
    let u = client.usage();
    assert_eq!((u.requests, u.retries, u.failures), (3, 2, 1));
    // The next call is not affected.
    assert!(client.complete(&user(3)).is_ok());
}

#[test]
fn client_errors_are_not_retried() {
    let server = MockServer::start();
    server.script([Fault::Status {
        code: 400,
        headers: vec![],
        body: r#"{"error":{"message":"max_tokens too large"}}"#.into(),
    }]);
    let client = ChatClient::new(config(&server)).unwrap();
    let err = client.complete(&user(4)).unwrap_err();
    assert!(
        matches!(&err, HttpError::Status { status: 400, message, .. } if message == "max_tokens too large"),
        "{err:?}"
    );
    assert_eq!(server.connections(), 1);
}

#[test]
fn connection_refused_is_a_connect_error_and_is_retried() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = ChatConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    c.max_retries = 2;
    c.backoff.initial_seconds = 0.01;
    c.backoff.max_seconds = 0.01;
    let client = ChatClient::new(c).unwrap();
    let err = client.complete(&user(5)).unwrap_err();
    match &err {
        HttpError::RetriesExhausted { attempts: 3, last } => {
            assert!(matches!(**last, HttpError::Connect { .. }), "{last:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(client.usage().requests, 3);
}

#[test]
fn second_identical_call_is_a_cache_hit_with_no_request() {
    let server = MockServer::start();
    let mut c = config(&server);
    c.prices = Prices {
        prompt_usd_per_million: 1.0,
        completion_usd_per_million: 2.0,
    };
    let client = ChatClient::new(c).unwrap();
    let first = client.complete(&user(6)).unwrap();
    let second = client.complete(&user(6)).unwrap();
    assert_eq!(server.connections(), 1);
    assert_eq!(first.text, second.text);
    assert!(!first.cached && second.cached);
    assert!(first.cost_usd > 0.0);
    assert_eq!(second.cost_usd, 0.0);
    assert_eq!(
        (second.prompt_tokens, second.completion_tokens),
        (PROMPT_TOKENS, COMPLETION_TOKENS)
    );
    // Identical requests inside one batch are sent once too.
    let batch = client.complete_batch(&[user(7), user(7), user(6), user(8), user(7)]);
    assert_eq!(server.connections(), 3, "q7 and q8 once each");
    let texts: Vec<String> = batch.into_iter().map(|r| r.unwrap().text).collect();
    assert_eq!(texts[0], texts[1]);
    assert_eq!(texts[0], texts[4]);
    assert_eq!(texts[2], first.text);
    let u = client.usage();
    assert_eq!(u.paid_completions, 3);
    assert_eq!(u.cache_hits, 4);
    assert_eq!(u.requests, 3);
}

#[test]
fn sample_index_gives_each_sample_its_own_entry() {
    let server = MockServer::start();
    let mut c = config(&server);
    c.temperature = 1.0;
    let client = ChatClient::new(c).unwrap();
    let samples: Vec<ChatRequest> = (0..4).map(|k| user(9).with_sample_index(k)).collect();
    let out: Vec<_> = client
        .complete_batch(&samples)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(server.connections(), 4);
    let mut texts: Vec<&str> = out.iter().map(|c| c.text.as_str()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 4, "four different answers");
    assert_eq!(client.cache_len().unwrap(), 4);
    let again = client.complete_batch(&samples);
    assert_eq!(server.connections(), 4, "all cached");
    for (a, b) in out.iter().zip(&again) {
        let b = b.as_ref().unwrap();
        assert!(b.cached);
        assert_eq!(a.text, b.text, "sample k is answered by sample k's entry");
    }
}

#[test]
fn cache_survives_reopening_and_a_moved_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/cache.sqlite");
    let server = MockServer::start();
    let mut c = config(&server);
    c.cache = Some(path.clone());
    let requests: Vec<ChatRequest> = (0..3).map(user).collect();
    let first: Vec<String> = {
        let client = ChatClient::new(c.clone()).unwrap();
        let out = client
            .complete_batch(&requests)
            .into_iter()
            .map(|r| r.unwrap().text)
            .collect();
        let raw = client.cached_response(&requests[0]).unwrap().unwrap();
        let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
        assert_eq!(raw["object"], "chat.completion", "raw response stored");
        out
    };
    assert_eq!(server.connections(), 3);
    // Same file, new process-like client, and the server "moved" to another port.
    let moved = MockServer::start();
    c.base_url = moved.base_url();
    let client = ChatClient::new(c).unwrap();
    let second = client.complete_batch(&requests);
    for (a, b) in first.iter().zip(&second) {
        let b = b.as_ref().unwrap();
        assert!(b.cached);
        assert_eq!(a, &b.text);
    }
    assert_eq!(server.connections() + moved.connections(), 3);
    let u = client.usage();
    assert_eq!((u.requests, u.paid_completions, u.cache_hits), (0, 0, 3));
}

#[test]
fn clients_sharing_one_cache_file_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let server = MockServer::start();
    server.set_delay(Duration::from_millis(5));
    let mut c = config(&server);
    c.cache = Some(dir.path().join("shared.sqlite"));
    c.concurrency = 4;
    std::thread::scope(|s| {
        for t in 0..3 {
            let c = c.clone();
            s.spawn(move || {
                let client = ChatClient::new(c).unwrap();
                let reqs: Vec<ChatRequest> = (0..20).map(|i| user(1000 * t + i)).collect();
                for r in client.complete_batch(&reqs) {
                    r.unwrap();
                }
            });
        }
    });
    let client = ChatClient::new(c).unwrap();
    assert_eq!(client.cache_len().unwrap(), 60);
    assert_eq!(server.connections(), 60);
}

#[test]
fn concurrency_limit_is_respected_and_order_kept() {
    let server = MockServer::start();
    server.set_delay(Duration::from_millis(100));
    let mut c = config(&server);
    c.concurrency = 3;
    let client = ChatClient::new(c).unwrap();
    let requests: Vec<ChatRequest> = (0..12).map(user).collect();
    let t = Instant::now();
    let out = client.complete_batch(&requests);
    let elapsed = t.elapsed();
    for (i, r) in out.iter().enumerate() {
        let text = &r.as_ref().unwrap().text;
        assert!(text.ends_with(&format!("to: q{i}")), "result {i}: {text}");
    }
    let max = server.max_in_flight();
    assert!(max <= 3, "at most 3 in flight, saw {max}");
    assert!(max >= 2, "requests do run in parallel, saw {max}");
    assert!(
        elapsed >= Duration::from_millis(400),
        "12 x 100 ms over 3: {elapsed:?}"
    );
}

#[test]
fn concurrency_limit_holds_across_batches_from_several_threads() {
    let server = MockServer::start();
    server.set_delay(Duration::from_millis(60));
    let mut c = config(&server);
    c.concurrency = 2;
    let client = ChatClient::new(c).unwrap();
    std::thread::scope(|s| {
        for t in 0..3 {
            let client = &client;
            s.spawn(move || {
                let reqs: Vec<ChatRequest> = (0..4).map(|i| user(100 * t + i)).collect();
                assert!(client.complete_batch(&reqs).iter().all(Result::is_ok));
            });
        }
    });
    assert_eq!(server.connections(), 12);
    let max = server.max_in_flight();
    assert!(
        max <= 2,
        "three batches of two workers share a limit of 2, saw {max}"
    );
}

#[test]
fn requests_per_minute_limit_delays_measurably() {
    let requests: Vec<ChatRequest> = (0..15).map(user).collect();
    // 600 a minute with a 0.5 s burst: 5 at once, then one every 100 ms.
    let server = MockServer::start();
    let mut c = config(&server);
    c.concurrency = 16;
    c.requests_per_minute = Some(600.0);
    c.rate_window_seconds = 0.5;
    let limited = ChatClient::new(c).unwrap();
    let t = Instant::now();
    assert!(limited.complete_batch(&requests).iter().all(Result::is_ok));
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    let mut at: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    let spread = at[14] - at[0];
    assert!(spread >= Duration::from_millis(950), "{spread:?}");
    // The first five went out together.
    assert!(
        at[4] - at[0] < Duration::from_millis(300),
        "{:?}",
        at[4] - at[0]
    );

    // Without the limit the same batch is much faster.
    let server = MockServer::start();
    let mut c = config(&server);
    c.concurrency = 16;
    let free = ChatClient::new(c).unwrap();
    let t = Instant::now();
    assert!(free.complete_batch(&requests).iter().all(Result::is_ok));
    assert!(
        t.elapsed() < elapsed / 2,
        "{:?} vs {elapsed:?}",
        t.elapsed()
    );
}

#[test]
fn tokens_per_minute_limit_uses_reported_usage() {
    // Each request is estimated at 55 tokens (prompt `qN`: 5, max_tokens: 50) but the
    // server reports 120. 12,000 a minute = 200/s with a 0.3 s burst = 60 tokens.
    // On the estimate alone, 3 requests would wait (3 * 55 - 60) / 200 = 0.525 s; with the
    // correction they wait (55 + 120 - 60 + 120 - 60 ...) about 1.17 s.
    let server = MockServer::start();
    let mut c = config(&server);
    c.max_tokens = 50;
    c.concurrency = 1;
    c.tokens_per_minute = Some(12_000.0);
    c.rate_window_seconds = 0.3;
    let client = ChatClient::new(c).unwrap();
    let t = Instant::now();
    for i in 0..3 {
        client.complete(&user(i)).unwrap();
    }
    let elapsed = t.elapsed();
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[test]
fn usage_and_cost_accounting() {
    let server = MockServer::start();
    server.script([Fault::status(500)]);
    let mut c = config(&server);
    c.prices = Prices {
        prompt_usd_per_million: 1.5,
        completion_usd_per_million: 6.0,
    };
    let client = ChatClient::new(c).unwrap();
    let per_call = (PROMPT_TOKENS as f64 * 1.5 + COMPLETION_TOKENS as f64 * 6.0) / 1e6;
    let before = client.usage();
    let out = client.complete_batch(&[user(1), user(2), user(3), user(1)]);
    let total: f64 = out.iter().map(|r| r.as_ref().unwrap().cost_usd).sum();
    let u = client.usage().since(&before);
    assert_eq!(u.paid_completions, 3);
    assert_eq!(u.cache_hits, 1);
    assert_eq!(u.requests, 4, "3 completions + 1 retry");
    assert_eq!(u.retries, 1);
    assert_eq!(u.failures, 0);
    assert_eq!(u.prompt_tokens, 3 * PROMPT_TOKENS);
    assert_eq!(u.completion_tokens, 3 * COMPLETION_TOKENS);
    assert!(
        (u.cost_usd - 3.0 * per_call).abs() < 1e-12,
        "{}",
        u.cost_usd
    );
    assert!((total - u.cost_usd).abs() < 1e-12);
    let json = serde_json::to_value(u).unwrap();
    assert_eq!(json["paid_completions"], 3);
}

#[test]
fn slow_responses_within_the_timeout_succeed_without_retries() {
    let server = MockServer::start();
    server.script([Fault::Slow(Duration::from_millis(300))]);
    let mut c = config(&server);
    c.timeout_seconds = 2.0;
    let client = ChatClient::new(c).unwrap();
    client.complete(&user(1)).unwrap();
    assert_eq!(client.usage().retries, 0);
}

#[test]
fn config_from_toml() {
    let text = r#"
        base_url = "http://127.0.0.1:8000/v1"
        model = "qwen"
        api_key_env = "SOME_KEY"
        temperature = 0.7
        max_tokens = 256
        stop = ["</answer>"]
        concurrency = 16
        requests_per_minute = 500
        tokens_per_minute = 200000
        cache = "runs/cache.sqlite"
        [backoff]
        initial_seconds = 1.0
        [prices]
        prompt_usd_per_million = 0.15
        completion_usd_per_million = 0.6
    "#;
    let c: ChatConfig = toml::from_str(text).unwrap();
    c.validate().unwrap();
    assert_eq!(c.model, "qwen");
    assert_eq!(c.requests_per_minute, Some(500.0));
    assert_eq!(c.backoff.initial_seconds, 1.0);
    assert_eq!(c.backoff.max_seconds, 30.0, "unset fields default");
    assert_eq!(c.top_p, 1.0);
    let back: ChatConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    let err =
        toml::from_str::<ChatConfig>("base_url = \"http://x\"\nmodel = \"m\"\ntemprature = 1")
            .unwrap_err();
    assert!(err.to_string().contains("temprature"), "{err}");
    let mut bad = c;
    bad.top_p = 1.5;
    let err = ChatClient::new(bad).unwrap_err();
    assert!(
        matches!(err, HttpError::Config(ref m) if m.contains("top_p")),
        "{err}"
    );
}

/// A closed port: the client gives up after a few attempts with an error that says nobody
/// answers, instead of backing off through every retry.
#[test]
fn a_closed_port_gives_up_fast_and_says_nobody_answers() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = ChatConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    c.max_retries = 6;
    c.backoff.initial_seconds = 0.01;
    c.backoff.max_seconds = 0.01;
    let client = ChatClient::new(c).unwrap();
    let err = client.complete(&user(6)).unwrap_err();
    match &err {
        HttpError::Unreachable { attempts, last, .. } => {
            assert_eq!(*attempts, autotune_http::UNREACHABLE_AFTER);
            assert!(matches!(**last, HttpError::Connect { .. }), "{last:?}");
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("nobody answers at") && text.contains("is the server running"),
        "{text}"
    );
    assert_eq!(
        client.usage().requests,
        u64::from(autotune_http::UNREACHABLE_AFTER)
    );
}
