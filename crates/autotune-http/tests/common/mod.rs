//! A small OpenAI-compatible chat-completions server for tests, on 127.0.0.1 port 0,
//! that injects faults by script: one scripted [`Fault`] per incoming connection (the
//! client never reuses connections: every response says `Connection: close`), then
//! normal answers once the script is used up.
#![allow(dead_code)]

pub mod proxy;

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Usage every normal answer reports.
pub const PROMPT_TOKENS: u64 = 100;
pub const COMPLETION_TOKENS: u64 = 20;

#[derive(Debug, Clone)]
pub enum Fault {
    /// A normal answer.
    Ok,
    /// A normal answer after a delay.
    Slow(Duration),
    /// Read the request, then say nothing for this long (then answer normally, to a
    /// client that should have given up).
    Stall(Duration),
    /// Close the connection without reading the request: the kernel resets it.
    Reset,
    /// A 200 whose `Content-Length` promises more than is sent before the close.
    Truncated,
    /// A 200 with this exact body.
    Body(String),
    /// A 200 JSON body of this many bytes.
    Huge(usize),
    /// An error status with optional extra headers and a body.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
}

impl Fault {
    pub fn status(code: u16) -> Fault {
        Fault::Status {
            code,
            headers: vec![],
            body: format!(r#"{{"error":{{"message":"injected {code}"}}}}"#),
        }
    }
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Fault>>,
    default_delay: Mutex<Duration>,
    connections: AtomicUsize,
    answered: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
}

pub struct MockServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl MockServer {
    pub fn start() -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        // The accept thread lives until the test process exits.
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let st = Arc::clone(&st);
                let fault = st.script.lock().unwrap().pop_front().unwrap_or(Fault::Ok);
                st.connections.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || handle(stream, &st, fault));
            }
        });
        MockServer { addr, state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Faults for the next connections, in order.
    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.script.lock().unwrap().extend(faults);
    }

    /// Delay of every normal answer.
    pub fn set_delay(&self, d: Duration) {
        *self.state.default_delay.lock().unwrap() = d;
    }

    /// Connections accepted (every request the client sent, whether or not it was read).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Requests fully read.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        at: Instant::now(),
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    })
}

fn answer(req: &Recorded, n: usize) -> String {
    let last = req.body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": req.body["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": format!("reply #{n} to: {last}")},
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS
        }
    })
    .to_string()
}

fn write_response(
    stream: &mut TcpStream,
    code: u16,
    headers: &[(String, String)],
    body: &[u8],
    content_length: usize,
) {
    let mut head = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\nconnection: close\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn handle(mut stream: TcpStream, st: &State, fault: Fault) {
    if let Fault::Reset = fault {
        // Let the request arrive, then close with it unread: Linux sends RST.
        thread::sleep(Duration::from_millis(50));
        return;
    }
    let Some(req) = read_request(&mut stream) else {
        return;
    };
    st.requests.lock().unwrap().push(req.clone());
    let now = st.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    st.max_in_flight.fetch_max(now, Ordering::SeqCst);
    // A request is in flight until the server starts its answer: the client may take its
    // next request as soon as the answer arrives, before this thread would get to count down.
    let done = || st.in_flight.fetch_sub(1, Ordering::SeqCst);
    let ok = |stream: &mut TcpStream| {
        done();
        let n = st.answered.fetch_add(1, Ordering::SeqCst);
        let body = answer(&req, n);
        write_response(stream, 200, &[], body.as_bytes(), body.len());
    };
    match fault {
        Fault::Ok => {
            let d = *st.default_delay.lock().unwrap();
            thread::sleep(d);
            ok(&mut stream);
        }
        Fault::Slow(d) | Fault::Stall(d) => {
            thread::sleep(d);
            ok(&mut stream);
        }
        Fault::Reset => unreachable!(),
        Fault::Truncated => {
            let body = answer(&req, usize::MAX);
            let half = &body.as_bytes()[..body.len() / 2];
            done();
            write_response(&mut stream, 200, &[], half, body.len());
        }
        Fault::Body(b) => {
            done();
            write_response(&mut stream, 200, &[], b.as_bytes(), b.len())
        }
        Fault::Huge(n) => {
            let mut body = br#"{"pad":""#.to_vec();
            body.resize(n.saturating_sub(2), b'a');
            body.extend_from_slice(br#""}"#);
            done();
            write_response(&mut stream, 200, &[], &body, body.len());
        }
        Fault::Status {
            code,
            headers,
            body,
        } => {
            done();
            write_response(&mut stream, code, &headers, body.as_bytes(), body.len())
        }
    }
}
