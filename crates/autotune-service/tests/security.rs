//! What `autotune serve` does with untrusted input over the network: it binds loopback by
//! default, refuses bodies over its limit with a JSON 413 (whether the length is announced
//! or the body is chunked), and with a token refuses every request without exactly that
//! bearer token (JSON 401) before reading its body.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::time::Duration;

use autotune_service::load::Client;
use autotune_service::{spawn, ServiceConfig, DEFAULT_MAX_BODY_BYTES};
use serde_json::{json, Value};

const TOKEN: &str = "svc-token-7f3a";

fn start(
    token: Option<&str>,
    max_body_bytes: usize,
) -> (tempfile::TempDir, autotune_service::RunningService) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = ServiceConfig::new(dir.path().join("s.sqlite"));
    c.port = 0;
    c.workers = Some(2);
    c.token = token.map(str::to_string);
    c.max_body_bytes = max_body_bytes;
    let svc = spawn(c).unwrap();
    (dir, svc)
}

/// One raw HTTP/1.1 exchange: `head` is sent as is (request line and headers, without the
/// blank line), then `body` in `chunks` (chunked encoding when `chunked`). `(status, body)`.
fn raw(addr: &str, head: &str, body: &[u8], chunked: bool) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    // The server may answer and close before the whole body is sent.
    if chunked {
        for c in body.chunks(64 * 1024) {
            if write!(s, "{:x}\r\n", c.len()).is_err()
                || s.write_all(c).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    } else {
        let _ = s.write_all(body);
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked answer: take the JSON object inside.
    let json = body
        .find('{')
        .and_then(|a| body.rfind('}').map(|b| &body[a..=b]))
        .unwrap_or("");
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

#[test]
fn binds_loopback_by_default() {
    let c = ServiceConfig::new("unused.sqlite");
    assert_eq!(c.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(c.token, None);
    assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    let (_dir, svc) = start(None, DEFAULT_MAX_BODY_BYTES);
    assert!(svc.addr().ip().is_loopback(), "{}", svc.addr());
    assert!(svc.url().starts_with("http://127.0.0.1:"));
}

#[test]
fn oversized_bodies_get_a_json_413_announced_or_chunked() {
    let (_dir, svc) = start(None, 64 * 1024);
    let addr = svc.addr().to_string();
    let big = json!({"name": "big", "mask": {"strategy": "uniform"},
                     "prompts": [{"id": "x", "prompt": "a".repeat(200 * 1024)}]})
    .to_string();
    let head = |te: &str| {
        format!("POST /v1/pools HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{te}")
    };
    let (s, v) = raw(
        &addr,
        &head(&format!("Content-Length: {}", big.len())),
        big.as_bytes(),
        false,
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    let (s, v) = raw(
        &addr,
        &head("Transfer-Encoding: chunked"),
        big.as_bytes(),
        true,
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    // Under the limit the same route works.
    let c = Client::new(&svc.url(), None);
    let (s, v) = c
        .post(
            "/v1/pools",
            &json!({"name": "small", "mask": {"strategy": "uniform"},
                    "prompts": [{"id": "x", "prompt": "a"}]}),
        )
        .unwrap();
    assert!((200..300).contains(&s), "{s} {v}");
}

#[test]
fn a_token_is_required_exactly_on_every_route_but_healthz() {
    let (_dir, svc) = start(Some(TOKEN), DEFAULT_MAX_BODY_BYTES);
    let addr = svc.addr().to_string();
    let register = json!({"name": "p", "mask": {"strategy": "uniform"},
                          "prompts": [{"id": "x", "prompt": "a"}]})
    .to_string();
    let wrong = [
        None,
        Some(String::new()),
        Some("Bearer".to_string()),
        Some("Bearer ".to_string()),
        Some(TOKEN.to_string()),
        Some(format!("Basic {TOKEN}")),
        Some(format!("Bearer {TOKEN}x")),
        Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        Some(format!("Bearer {}", TOKEN.to_uppercase())),
        Some("Bearer nope".to_string()),
    ];
    let routes = [
        ("GET", "/v1/pools", ""),
        ("POST", "/v1/pools", register.as_str()),
        (
            "POST",
            "/v1/pools/p/next",
            r#"{"n": 1, "purpose": "teacher"}"#,
        ),
        ("POST", "/v1/pools/p/outcomes", r#"{"results": []}"#),
        ("POST", "/v1/pools/p/phase", r#"{"name": "v1"}"#),
        ("POST", "/v1/pools/p/release", r#"{"prompt_ids": ["x"]}"#),
        ("GET", "/v1/pools/p/state", ""),
        ("GET", "/v1/nowhere", ""),
    ];
    for auth in &wrong {
        for (method, path, body) in routes {
            let mut head = format!(
                "{method} {path}?token={TOKEN} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}",
                body.len()
            );
            if let Some(a) = auth {
                head.push_str(&format!("\r\nAuthorization: {a}"));
            }
            let (s, v) = raw(&addr, &head, body.as_bytes(), false);
            assert_eq!(
                (s, v["error"]["type"].as_str()),
                (401, Some("unauthorized")),
                "{method} {path} with {auth:?}: {v}"
            );
        }
    }
    // Without the token a body is not read: an unauthenticated oversized body gets 401.
    let huge = vec![b' '; DEFAULT_MAX_BODY_BYTES + 1];
    let head = format!(
        "POST /v1/pools HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}",
        huge.len()
    );
    assert_eq!(raw(&addr, &head, &huge, false).0, 401);
    // /healthz is open; with the token everything works.
    assert_eq!(
        Client::new(&svc.url(), None).get("/healthz").unwrap().0,
        200
    );
    let c = Client::new(&svc.url(), Some(TOKEN));
    let (s, v) = c.post_raw("/v1/pools", &register).unwrap();
    assert!((200..300).contains(&s), "{s} {v}");
    assert_eq!(c.get("/v1/pools").unwrap().0, 200);
}

#[test]
fn a_token_variable_that_is_unset_is_an_error_naming_it() {
    let err = ServiceConfig::new("unused.sqlite")
        .with_token_env("AUTOTUNE_SERVICE_TEST_SURELY_UNSET")
        .unwrap_err()
        .to_string();
    assert!(err.contains("AUTOTUNE_SERVICE_TEST_SURELY_UNSET"), "{err}");
}
