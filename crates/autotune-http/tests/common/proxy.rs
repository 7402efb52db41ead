//! A fault-injecting HTTP/1.1 proxy for tests: a real loopback TCP proxy between a client and
//! a real server (the mock server of these tests, or `autotune serve-model` in the CLI's
//! tests), which breaks requests by a seeded schedule.
//!
//! The proxy keeps client connections alive (so a client that reuses connections meets the
//! faults that only show on reused connections) and opens one upstream connection per request
//! (`Connection: close`). Every request is logged as an [`Exchange`]: the fault it got, whether
//! it reached the server, what the server answered, and whether that answer reached the client
//! intact and in time.
//!
//! **Schedule.** The fault of a request depends only on the seed, the request's bytes (method,
//! path and body) and how many times those bytes came before, never on the order in which
//! concurrent requests arrive: the same client run meets the same faults. Attempt `k` of a
//! request is faulty with probability `rate` while `k < max_streak`, so a client with at least
//! `max_streak` retries always gets through.
//!
//! Shared by `crates/autotune-http/tests` and `crates/autotune-cli/tests` (included there with
//! `#[path]`); it uses only std, `socket2` (for resets) and nothing else.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What the proxy does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forward it and deliver the answer.
    Pass,
    /// Read the request head, never forward it, never answer (the client's timeout).
    Blackhole,
    /// Forward it (the server does the work), never deliver the answer (the client's timeout).
    Stall,
    /// Read half of the request, then reset the connection (RST).
    ResetRequest,
    /// Forward it, send the head and half of the body, then reset the connection (RST).
    ResetResponse,
    /// 429 without `Retry-After`, not forwarded.
    TooManyRequests,
    /// 429 with `Retry-After: 0` (seconds), not forwarded.
    TooManyRetryAfter,
    /// 429 with `retry-after-ms: 30`, not forwarded.
    TooManyRetryAfterMs,
    /// 500, not forwarded.
    InternalError,
    /// Forward it (the server does the work), then answer 502 instead.
    BadGateway,
    /// 503 with `Retry-After: 0`, not forwarded.
    Unavailable,
    /// Forward it, then send a `Content-Length` larger than the bytes that follow, and close.
    Truncated,
    /// Forward it, then answer 200 with a body that is not JSON (right framing).
    InvalidJson,
    /// Forward it, then answer 200 with JSON that is no completion (`{"choices": []}`).
    WrongShape,
    /// Forward it and deliver the answer a few bytes at a time (within the client's timeout).
    Drip,
    /// Forward it and deliver the answer twice, back to back, keeping the connection open.
    Duplicate,
    /// Forward it and deliver the answer; then answer the *next* request on the same
    /// connection with this answer again (a desynchronised intermediary), and close.
    Desync,
    /// Forward it and deliver the answer after the client has given up.
    Late,
    /// Forward it and deliver the answer; forward the same request to the server once more a
    /// little later (a duplicated, late request, e.g. a replayed weight push).
    Replay,
    /// 401 whose message quotes the request's `Authorization` header, as some APIs quote a
    /// wrong key; not forwarded (not in [`Fault::ALL`]: it is no transient fault).
    EchoKey401,
}

impl Fault {
    /// Every fault class.
    pub const ALL: [Fault; 18] = [
        Fault::Blackhole,
        Fault::Stall,
        Fault::ResetRequest,
        Fault::ResetResponse,
        Fault::TooManyRequests,
        Fault::TooManyRetryAfter,
        Fault::TooManyRetryAfterMs,
        Fault::InternalError,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Truncated,
        Fault::InvalidJson,
        Fault::WrongShape,
        Fault::Drip,
        Fault::Duplicate,
        Fault::Desync,
        Fault::Late,
        Fault::Replay,
    ];

    /// Whether the client gets the server's answer intact anyway (the fault is only in
    /// timing or framing around it).
    pub fn delivers(self) -> bool {
        matches!(
            self,
            Fault::Pass | Fault::Drip | Fault::Duplicate | Fault::Desync | Fault::Replay
        )
    }

    /// Whether the request reaches the server.
    pub fn forwards(self) -> bool {
        !matches!(
            self,
            Fault::Blackhole
                | Fault::EchoKey401
                | Fault::ResetRequest
                | Fault::TooManyRequests
                | Fault::TooManyRetryAfter
                | Fault::TooManyRetryAfterMs
                | Fault::InternalError
                | Fault::Unavailable
        )
    }
}

/// How faults are chosen.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    /// Probability that an attempt is faulty.
    pub rate: f64,
    /// The classes drawn from, uniformly.
    pub faults: Vec<Fault>,
    /// Attempts `>= max_streak` of the same request always pass.
    pub max_streak: usize,
    /// Only requests whose path ends with this get faults at `rate`...
    pub only_path: Option<String>,
    /// ... and the others at this rate.
    pub rate_elsewhere: f64,
}

impl Schedule {
    pub fn none() -> Schedule {
        Schedule {
            seed: 0,
            rate: 0.0,
            faults: vec![],
            max_streak: 0,
            only_path: None,
            rate_elsewhere: 0.0,
        }
    }

    /// `fault` on every attempt of every request.
    pub fn always(fault: Fault) -> Schedule {
        Schedule {
            seed: 0,
            rate: 1.0,
            faults: vec![fault],
            max_streak: usize::MAX,
            only_path: None,
            rate_elsewhere: 0.0,
        }
    }

    /// Faults from `faults` at `rate`, at most `max_streak` in a row per request.
    pub fn seeded(seed: u64, rate: f64, faults: &[Fault], max_streak: usize) -> Schedule {
        Schedule {
            seed,
            rate,
            faults: faults.to_vec(),
            max_streak,
            only_path: None,
            rate_elsewhere: 0.0,
        }
    }

    /// Faults at `rate` only on paths ending with `suffix`, at `rate_elsewhere` on others.
    pub fn only_path(mut self, suffix: &str, rate_elsewhere: f64) -> Schedule {
        self.only_path = Some(suffix.to_string());
        self.rate_elsewhere = rate_elsewhere;
        self
    }

    fn pick(&self, path: &str, key: u64, attempt: usize) -> Fault {
        if self.faults.is_empty() || attempt >= self.max_streak {
            return Fault::Pass;
        }
        let rate = match &self.only_path {
            Some(p) if !path.ends_with(p.as_str()) => self.rate_elsewhere,
            _ => self.rate,
        };
        let h = splitmix(self.seed ^ splitmix(key ^ splitmix(attempt as u64)));
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        if u >= rate {
            return Fault::Pass;
        }
        let j = splitmix(h) as usize % self.faults.len();
        self.faults[j]
    }
}

/// Timings of the slow faults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The client's timeout: `Late` answers after it (plus a margin).
    pub client_timeout: Duration,
    /// `Drip`: bytes per write and the pause between writes.
    pub drip_bytes: usize,
    pub drip_pause: Duration,
    /// `Replay`: delay before the request is sent to the server again.
    pub replay_after: Duration,
    /// Longest the proxy holds a connection it does not answer.
    pub hold_max: Duration,
}

impl Timing {
    pub fn for_client_timeout(client_timeout: Duration) -> Timing {
        Timing {
            client_timeout,
            drip_bytes: 24,
            drip_pause: Duration::from_millis(2),
            replay_after: Duration::from_millis(150),
            hold_max: Duration::from_secs(20),
        }
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One request through the proxy.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Arrival order (of request heads).
    pub index: usize,
    /// When its head arrived.
    pub at: Instant,
    /// Which client connection it came on.
    pub connection: usize,
    pub fault: Fault,
    /// How many identical requests (method, path, body) came before this one.
    pub attempt: usize,
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The request body as far as it was read (all of it unless `ResetRequest`).
    pub body: Vec<u8>,
    /// Whether the request reached the server.
    pub forwarded: bool,
    /// The server's status and body.
    pub upstream: Option<(u16, Vec<u8>)>,
    /// Whether the server's answer was sent to the client intact (see [`received`] for
    /// whether it came in time).
    pub delivered: bool,
    /// When the proxy began sending the last bytes of that answer.
    pub done_at: Option<Instant>,
    /// A request answered with the answer of an earlier request (`Desync`).
    pub stale_answer: bool,
    /// A copy the proxy sent to the server on its own (`Replay`), not the client's request.
    pub replay: bool,
}

impl Exchange {
    /// One line: index, connection, fault, attempt, what happened.
    pub fn brief(&self) -> String {
        format!(
            "#{} conn {} {:?} attempt {} {} {}{}{}{}",
            self.index,
            self.connection,
            self.fault,
            self.attempt,
            self.method,
            self.path,
            if self.forwarded { " forwarded" } else { "" },
            if self.delivered { " delivered" } else { "" },
            if self.stale_answer {
                " answered-stale"
            } else {
                ""
            },
        )
    }
    pub fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn upstream_json(&self) -> Option<serde_json::Value> {
        self.upstream
            .as_ref()
            .and_then(|(_, b)| serde_json::from_slice(b).ok())
    }
}

struct State {
    upstream: SocketAddr,
    schedule: Mutex<Schedule>,
    script: Mutex<VecDeque<Fault>>,
    timing: Mutex<Timing>,
    attempts: Mutex<HashMap<u64, usize>>,
    log: Mutex<Vec<Exchange>>,
    next_index: AtomicUsize,
    next_connection: AtomicUsize,
}

/// The proxy; it listens on 127.0.0.1 until the test process exits.
pub struct FaultProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    pub fn start(upstream: SocketAddr, schedule: Schedule, timing: Timing) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            upstream,
            schedule: Mutex::new(schedule),
            script: Mutex::new(VecDeque::new()),
            timing: Mutex::new(timing),
            attempts: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
            next_connection: AtomicUsize::new(0),
        });
        let st = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let st = Arc::clone(&st);
                let conn = st.next_connection.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || serve_connection(stream, &st, conn));
            }
        });
        FaultProxy { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_schedule(&self, schedule: Schedule) {
        *self.state.schedule.lock().unwrap() = schedule;
    }

    /// Faults for the next requests, in arrival order, before the schedule applies.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.script.lock().unwrap().extend(faults);
    }

    /// Every request so far (the proxy's own replays included, marked `replay`).
    pub fn exchanges(&self) -> Vec<Exchange> {
        let mut v = self.state.log.lock().unwrap().clone();
        v.sort_by_key(|e| e.index);
        v
    }

    /// The client's requests so far (replays left out).
    pub fn client_requests(&self) -> Vec<Exchange> {
        self.exchanges().into_iter().filter(|e| !e.replay).collect()
    }

    /// Waits until no exchange is still being handled for at least `quiet`.
    pub fn settle(&self, quiet: Duration) {
        let mut last = self.state.log.lock().unwrap().len();
        let mut since = Instant::now();
        while since.elapsed() < quiet {
            thread::sleep(Duration::from_millis(10));
            let n = self.state.log.lock().unwrap().len();
            if n != last {
                last = n;
                since = Instant::now();
            }
        }
    }
}

/// The answer the client got for each request, by `key` (e.g. the prompt): the last answer
/// of the server sent to it intact, and whether that came too late (at least the client's
/// timeout after the request arrived, less 100 ms). Err if a request was sent again after an
/// answer to it had come in time: a received answer must never be requested again.
pub fn received(
    exchanges: &[Exchange],
    key: impl Fn(&Exchange) -> Option<String>,
    client_timeout: Duration,
) -> Result<HashMap<String, (Exchange, bool)>, String> {
    let late = |e: &Exchange| {
        e.done_at
            .is_some_and(|d| d.duration_since(e.at) + Duration::from_millis(100) >= client_timeout)
    };
    let mut by_key: HashMap<String, Vec<&Exchange>> = HashMap::new();
    for e in exchanges.iter().filter(|e| !e.replay) {
        if let Some(k) = key(e) {
            by_key.entry(k).or_default().push(e);
        }
    }
    let mut out = HashMap::new();
    for (k, mut es) in by_key {
        es.sort_by_key(|e| e.index);
        let ok = |e: &&&Exchange| {
            e.delivered
                && e.upstream
                    .as_ref()
                    .is_some_and(|(s, _)| (200..300).contains(s))
        };
        let last = es.last().map(|e| e.index);
        for e in es.iter().filter(ok) {
            if Some(e.index) != last && !late(e) {
                let brief: Vec<String> = es.iter().map(|e| e.brief()).collect();
                return Err(format!(
                    "`{k}` was requested again after its answer came in time: {brief:#?}"
                ));
            }
        }
        if let Some(e) = es.iter().rfind(ok) {
            out.insert(k, ((**e).clone(), late(e)));
        }
    }
    Ok(out)
}

/// Per-class counts of the client's requests.
pub fn fault_counts(exchanges: &[Exchange]) -> Vec<(Fault, usize)> {
    let mut out: Vec<(Fault, usize)> = Vec::new();
    for e in exchanges.iter().filter(|e| !e.replay) {
        match out.iter_mut().find(|(f, _)| *f == e.fault) {
            Some((_, n)) => *n += 1,
            None => out.push((e.fault, 1)),
        }
    }
    out.sort_by_key(|(f, _)| format!("{f:?}"));
    out
}

struct Head {
    method: String,
    path: String,
    version: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn keep_alive(&self) -> bool {
        match self.get("connection") {
            Some(v) if v.eq_ignore_ascii_case("close") => false,
            Some(v) if v.eq_ignore_ascii_case("keep-alive") => true,
            _ => self.version == "HTTP/1.1",
        }
    }
}

/// A request head, or None at a clean end of the connection.
fn read_head(r: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    Some(Head {
        method,
        path,
        version,
        headers,
    })
}

/// Reads a chunked body to its end.
fn read_chunked(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                let mut t = String::new();
                if r.read_line(&mut t).ok()? == 0 || t.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).ok()?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).ok()?;
    }
}

fn content_length(h: &Head) -> usize {
    h.get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_chunked(h: &Head) -> bool {
    h.get("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// The server's answer: status, headers (names lowercased) and body.
type Upstream = (u16, Vec<(String, String)>, Vec<u8>);

/// Sends the request to the server on a fresh connection; its status and (de-chunked) body.
fn forward(upstream: SocketAddr, head: &Head, body: &[u8]) -> Option<Upstream> {
    let mut s = TcpStream::connect(upstream).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, head.path);
    for (k, v) in &head.headers {
        if matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(out.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    s.flush().ok()?;
    let mut r = BufReader::new(s);
    let mut status_line = String::new();
    r.read_line(&mut status_line).ok()?;
    let status: u16 = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            break;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let resp_head = Head {
        method: String::new(),
        path: String::new(),
        version: String::new(),
        headers: headers.clone(),
    };
    let body = if is_chunked(&resp_head) {
        read_chunked(&mut r)?
    } else if resp_head.get("content-length").is_some() {
        let mut b = vec![0; content_length(&resp_head)];
        r.read_exact(&mut b).ok()?;
        b
    } else {
        let mut b = Vec::new();
        r.read_to_end(&mut b).ok()?;
        b
    };
    Some((status, headers, body))
}

/// The response as bytes: the server's headers (framing replaced), `content_length` as given.
fn response_bytes(
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    content_length: usize,
    keep_alive: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        if matches!(
            k.as_str(),
            "connection" | "content-length" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {content_length}\r\n"));
    if !keep_alive {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        401 => "Unauthorized",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn error_response(status: u16, extra: &[(&str, &str)], keep_alive: bool) -> Vec<u8> {
    let body = format!(r#"{{"error":{{"message":"injected {status}","type":"proxy"}}}}"#);
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    response_bytes(status, &headers, body.as_bytes(), body.len(), keep_alive)
}

fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// Reads and discards until the client closes (or `max` passes).
fn hold(stream: &TcpStream, max: Duration) {
    let deadline = Instant::now() + max;
    let mut s = stream;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl State {
    fn record(&self, e: Exchange) -> usize {
        let mut log = self.log.lock().unwrap();
        log.push(e);
        log.len() - 1
    }

    fn update(&self, slot: usize, f: impl FnOnce(&mut Exchange)) {
        f(&mut self.log.lock().unwrap()[slot]);
    }
}

fn serve_connection(stream: TcpStream, st: &Arc<State>, conn: usize) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut w = &stream;
    // The answer of a `Desync` request, to give to the next request on this connection.
    let mut stale: Option<Vec<u8>> = None;
    loop {
        let Some(head) = read_head(&mut reader) else {
            return;
        };
        let keep_alive = head.keep_alive();
        let index = st.next_index.fetch_add(1, Ordering::SeqCst);
        let at = Instant::now();
        let timing = *st.timing.lock().unwrap();
        if let Some(answer) = stale.take() {
            // The desynchronised intermediary answers with the previous answer.
            let body = if is_chunked(&head) {
                read_chunked(&mut reader).unwrap_or_default()
            } else {
                let mut b = vec![0; content_length(&head)];
                let _ = reader.read_exact(&mut b);
                b
            };
            st.record(Exchange {
                index,
                at,
                connection: conn,
                fault: Fault::Desync,
                attempt: 0,
                method: head.method,
                path: head.path,
                headers: head.headers,
                body,
                forwarded: false,
                upstream: None,
                delivered: false,
                done_at: None,
                stale_answer: true,
                replay: false,
            });
            let _ = w.write_all(&answer);
            let _ = w.flush();
            return;
        }
        // The request's identity, before its body is read (for the reset of a half-read
        // body the identity is the head's: attempts of one request share it).
        let length = content_length(&head);
        let chunked = is_chunked(&head);
        let mut body = Vec::new();
        let read_body = |reader: &mut BufReader<TcpStream>, body: &mut Vec<u8>, upto: usize| {
            if chunked {
                *body = read_chunked(reader).unwrap_or_default();
            } else {
                body.resize(upto, 0);
                let _ = reader.read_exact(body);
            }
        };
        // Read the whole body first to know which request it is; `ResetRequest` then
        // resets with part of it unread by the server (it is never forwarded).
        read_body(&mut reader, &mut body, length);
        let key = fnv(&[head.method.as_bytes(), head.path.as_bytes(), &body]);
        let attempt = {
            let mut a = st.attempts.lock().unwrap();
            let n = a.entry(key).or_insert(0);
            *n += 1;
            *n - 1
        };
        let scripted = st.script.lock().unwrap().pop_front();
        let fault =
            scripted.unwrap_or_else(|| st.schedule.lock().unwrap().pick(&head.path, key, attempt));
        let slot = st.record(Exchange {
            index,
            at,
            connection: conn,
            fault,
            attempt,
            method: head.method.clone(),
            path: head.path.clone(),
            headers: head.headers.clone(),
            body: if fault == Fault::ResetRequest {
                body[..body.len() / 2].to_vec()
            } else {
                body.clone()
            },
            forwarded: false,
            upstream: None,
            delivered: false,
            done_at: None,
            stale_answer: false,
            replay: false,
        });
        // Faults that never reach the server.
        let early = match fault {
            Fault::Blackhole => {
                hold(&stream, timing.hold_max);
                return;
            }
            Fault::ResetRequest => {
                reset(&stream);
                return;
            }
            Fault::TooManyRequests => Some(error_response(429, &[], keep_alive)),
            Fault::TooManyRetryAfter => {
                Some(error_response(429, &[("retry-after", "0")], keep_alive))
            }
            Fault::TooManyRetryAfterMs => {
                Some(error_response(429, &[("retry-after-ms", "30")], keep_alive))
            }
            Fault::InternalError => Some(error_response(500, &[], keep_alive)),
            Fault::EchoKey401 => {
                let given = head.get("authorization").unwrap_or("(none)");
                let body = serde_json::json!({"error": {
                    "message": format!("Incorrect API key provided: {given}"),
                    "type": "invalid_request_error"}})
                .to_string();
                let headers = [("content-type".to_string(), "application/json".to_string())];
                Some(response_bytes(
                    401,
                    &headers,
                    body.as_bytes(),
                    body.len(),
                    keep_alive,
                ))
            }
            Fault::Unavailable => Some(error_response(503, &[("retry-after", "0")], keep_alive)),
            _ => None,
        };
        if let Some(resp) = early {
            if w.write_all(&resp).and_then(|_| w.flush()).is_err() || !keep_alive {
                return;
            }
            continue;
        }
        let Some((status, headers, up_body)) = forward(st.upstream, &head, &body) else {
            // The server is gone: 502, as a gateway would.
            let _ = w.write_all(&error_response(502, &[], false));
            return;
        };
        st.update(slot, |e| {
            e.forwarded = true;
            e.upstream = Some((status, up_body.clone()));
        });
        if fault == Fault::Replay {
            let st2 = Arc::clone(st);
            let head2 = Head {
                method: head.method.clone(),
                path: head.path.clone(),
                version: head.version.clone(),
                headers: head.headers.clone(),
            };
            let body2 = body.clone();
            thread::spawn(move || {
                thread::sleep(timing.replay_after);
                let index = st2.next_index.fetch_add(1, Ordering::SeqCst);
                let up = forward(st2.upstream, &head2, &body2).map(|(s, _, b)| (s, b));
                st2.record(Exchange {
                    index,
                    at: Instant::now(),
                    connection: usize::MAX,
                    fault: Fault::Replay,
                    attempt: 0,
                    method: head2.method,
                    path: head2.path,
                    headers: head2.headers,
                    body: body2,
                    forwarded: up.is_some(),
                    upstream: up,
                    delivered: false,
                    done_at: None,
                    stale_answer: false,
                    replay: true,
                });
            });
        }
        let full = response_bytes(status, &headers, &up_body, up_body.len(), keep_alive);
        let head_len = full.len() - up_body.len();
        // Marked delivered before the last byte goes out (the client may act on the answer
        // before this thread runs again), and unmarked if the write fails.
        let deliver = |w: &mut &TcpStream, bytes: &[u8]| {
            st.update(slot, |e| {
                e.delivered = true;
                e.done_at = Some(Instant::now());
            });
            if w.write_all(bytes).and_then(|_| w.flush()).is_err() {
                st.update(slot, |e| e.delivered = false);
            }
        };
        match fault {
            Fault::Pass | Fault::Replay => deliver(&mut w, &full),
            Fault::Stall => {
                hold(&stream, timing.hold_max);
                return;
            }
            Fault::ResetResponse => {
                let _ = w.write_all(&full[..head_len + up_body.len() / 2]);
                let _ = w.flush();
                thread::sleep(Duration::from_millis(5));
                reset(&stream);
                return;
            }
            Fault::BadGateway => {
                let _ = w.write_all(&error_response(502, &[], false));
                return;
            }
            Fault::Truncated => {
                let _ = w.write_all(&full[..head_len + up_body.len() / 2]);
                let _ = w.flush();
                let _ = stream.shutdown(std::net::Shutdown::Write);
                hold(&stream, Duration::from_millis(200));
                return;
            }
            Fault::InvalidJson => {
                let mut bad = up_body[..up_body.len() / 2].to_vec();
                bad.extend_from_slice(b"\x00<html>proxy error</html>");
                let resp = response_bytes(200, &headers, &bad, bad.len(), false);
                let _ = w.write_all(&resp);
                return;
            }
            Fault::WrongShape => {
                let bad = br#"{"id":"proxy","object":"chat.completion","choices":[]}"#;
                let resp = response_bytes(200, &headers, bad, bad.len(), false);
                let _ = w.write_all(&resp);
                return;
            }
            Fault::Drip => {
                let step = timing.drip_bytes.max(1);
                let last = full.len().saturating_sub(1) / step * step;
                for (i, chunk) in full.chunks(step).enumerate() {
                    if i * step == last {
                        deliver(&mut w, chunk);
                        break;
                    }
                    if w.write_all(chunk).and_then(|_| w.flush()).is_err() {
                        break;
                    }
                    thread::sleep(timing.drip_pause);
                }
            }
            Fault::Duplicate => {
                let mut twice = full.clone();
                twice.extend_from_slice(&full);
                deliver(&mut w, &twice);
            }
            Fault::Desync => {
                deliver(&mut w, &full);
                stale = Some(full.clone());
            }
            Fault::Late => {
                thread::sleep(timing.client_timeout + Duration::from_millis(150));
                let _ = w.write_all(&full);
                let _ = w.flush();
                return;
            }
            Fault::Blackhole
            | Fault::EchoKey401
            | Fault::ResetRequest
            | Fault::TooManyRequests
            | Fault::TooManyRetryAfter
            | Fault::TooManyRetryAfterMs
            | Fault::InternalError
            | Fault::Unavailable => unreachable!("answered above"),
        }
        if !keep_alive {
            return;
        }
    }
}

/// A listener whose accept queue is full: a connection to it hangs in the handshake (the
/// kernel drops the SYN), which is a connect timeout. `open()` starts proxying to `upstream`
/// through `proxy` from then on.
pub struct Gate {
    pub addr: SocketAddr,
    listener: Option<socket2::Socket>,
    filler: Option<TcpStream>,
}

impl Gate {
    pub fn closed() -> Gate {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        s.bind(&any.into()).unwrap();
        s.listen(0).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        // Linux queues backlog + 1 connections; fill the queue.
        let filler = TcpStream::connect(addr).unwrap();
        Gate {
            addr,
            listener: Some(s),
            filler: Some(filler),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether a connection attempt hangs now (probes with a short timeout).
    pub fn is_blocking(&self) -> bool {
        TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err()
    }

    /// Empties the queue and forwards every later connection to `to` (byte for byte).
    pub fn open(&mut self, to: SocketAddr) {
        let listener: TcpListener = self.listener.take().unwrap().into();
        drop(self.filler.take());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(client) = stream else { continue };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                thread::spawn(move || pipe(client, server));
                thread::spawn(move || pipe(s2, c2));
            }
        });
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}
