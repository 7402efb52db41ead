//! The model-server path end to end under faults, and the security of what listens on the
//! network: `autotune run` against `autotune serve-model` through a fault-injecting loopback
//! proxy (`crates/autotune-http/tests/common/proxy.rs`), weight pushes that break, body
//! limits, bearer tokens, bind addresses, and secrets that must never be written anywhere.

#[path = "../../autotune-http/tests/common/proxy.rs"]
mod proxy;

use std::collections::HashSet;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use autotune_http::{ChatClient, ChatConfig, ChatRequest};
use proxy::{fault_counts, received, Exchange, Fault, FaultProxy, Schedule, Timing};
use serde_json::{json, Value};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_autotune"));
    c.env("NO_COLOR", "1");
    c
}

fn examples(name: &str) -> String {
    format!("{}/../../examples/tasks/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("autotune-http-faults-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `(exit code, stdout, stderr)` of `autotune ARGS` with extra environment variables.
fn autotune(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = bin().args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The tutor checkpoint of the arith task, trained once per test process.
fn tutor() -> &'static Path {
    static TUTOR: OnceLock<PathBuf> = OnceLock::new();
    TUTOR.get_or_init(|| {
        let base = temp_dir("tutor");
        let ck = base.join("tutor.json");
        let (code, _, err) = autotune(
            &[
                "run",
                "--tasks",
                &examples("arith.jsonl"),
                "--strategy",
                "autotune-cex",
                "--eps",
                "0.001",
                "--run-to-stop",
                "--out",
                base.join("train").to_str().unwrap(),
                "--save-model",
                ck.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "{err}");
        ck
    })
}

/// A child `autotune serve-model` on a free loopback port, killed on drop; its output is kept.
struct Server {
    child: std::process::Child,
    addr: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn drain(r: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(r);
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = bin()
            .arg("serve-model")
            .arg(tutor())
            .args(["--port", "0", "--name", "tutor"])
            .args(args)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start serve-model");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("no address in `{line}`"))
            .to_string();
        let stdout = Arc::new(Mutex::new(line));
        let stderr = Arc::new(Mutex::new(String::new()));
        drain(out, stdout.clone());
        drain(child.stderr.take().unwrap(), stderr.clone());
        Server {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn socket(&self) -> std::net::SocketAddr {
        self.addr.parse().unwrap()
    }

    /// One request over plain HTTP/1.1; `(status, headers and body)`.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        raw_request(&self.addr, method, path, headers, body)
    }

    fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (s, text) = self.request("POST", path, &[], body.to_string().as_bytes());
        (s, body_json(&text))
    }

    fn output(&self) -> String {
        format!(
            "{}{}",
            self.stdout.lock().unwrap(),
            self.stderr.lock().unwrap()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413, 401) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out)
}

fn body_json(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn chat_body(model: &str, prompt: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0})
}

fn content(v: &Value) -> Option<&str> {
    v["choices"][0]["message"]["content"].as_str()
}

fn last_content(body: &Value) -> Option<String> {
    body["messages"]
        .as_array()?
        .last()?
        .get("content")?
        .as_str()
        .map(str::to_string)
}

/// The teacher client's timeout in these tests.
const TIMEOUT: Duration = Duration::from_millis(400);

/// A teacher client configuration for `--teacher-config`.
fn teacher_toml(path: &Path, base_url: &str, cache: &Path, extra: &str) {
    std::fs::write(
        path,
        format!(
            "base_url = \"{base_url}\"\nmodel = \"tutor\"\ntemperature = 0.0\n\
             timeout_seconds = {}\nmax_retries = 8\nconcurrency = 8\ncache = \"{}\"\n{extra}\n\
             [backoff]\ninitial_seconds = 0.005\nmax_seconds = 0.02\n",
            TIMEOUT.as_secs_f64(),
            cache.display()
        ),
    )
    .unwrap();
}

fn run_args<'a>(out: &'a str, teacher: &'a [&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "run",
        "--strategy",
        "autotune-cex",
        "--eps",
        "0.02",
        "--seed",
        "4",
        "--out",
        out,
    ];
    a.extend_from_slice(teacher);
    a
}

fn result(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap()
}

const SAME_RUN: [&str; 5] = ["reached", "demos_to_eps", "final_error", "phases", "stop"];
const SAME_LEDGER: [&str; 7] = [
    "teacher_calls",
    "teacher_tokens",
    "teacher_cache_hits",
    "verifier_calls",
    "student_generations",
    "student_tokens",
    "training_steps",
];

fn report(line: String) {
    if std::env::var_os("FAULT_REPORT").is_some() {
        println!("FAULT_REPORT {line}");
    }
}

/// The teacher over HTTP through a proxy that breaks a fifth of the requests (every class)
/// gives exactly the run it gives without faults; the ledger counts the retries as requests;
/// the cache holds exactly what the server sent; nothing received is requested twice.
#[test]
fn a_run_through_a_faulty_proxy_equals_the_fault_free_run() {
    let base = temp_dir("teacher");
    let tasks = examples("arith.jsonl");
    let server = Server::start(&[], &[]);
    let proxy = FaultProxy::start(
        server.socket(),
        Schedule::seeded(7, 0.2, &Fault::ALL, 4),
        Timing::for_client_timeout(TIMEOUT),
    );
    let (clean_cfg, faulty_cfg) = (base.join("clean.toml"), base.join("faulty.toml"));
    teacher_toml(&clean_cfg, &server.url(), &base.join("clean.sqlite"), "");
    let faulty_cache = base.join("faulty.sqlite");
    teacher_toml(
        &faulty_cfg,
        &format!("{}/v1", proxy.url()),
        &faulty_cache,
        "",
    );
    let run = |name: &str, cfg: &Path| {
        let out = base.join(name);
        let out = out.to_str().unwrap();
        let cfg = cfg.to_str().unwrap();
        let teacher = ["--tasks", &tasks, "--teacher-config", cfg];
        let (code, stdout, err) = autotune(&run_args(out, &teacher), &[]);
        assert_eq!(code, 0, "{name}: {err}");
        (result(&base.join(name)), stdout)
    };
    let (clean, _) = run("clean", &clean_cfg);
    let t = std::time::Instant::now();
    let (faulty, _) = run("faulty", &faulty_cfg);
    let took = t.elapsed();
    for k in SAME_RUN {
        assert_eq!(clean[k], faulty[k], "{k}: without vs with faults");
    }
    let l = |v: &Value, k: &str| v["final_ledger"][k].as_u64().unwrap();
    for k in SAME_LEDGER {
        assert_eq!(
            l(&clean, k),
            l(&faulty, k),
            "ledger {k}: without vs with faults"
        );
    }
    // Every attempt is a request in the ledger; the fault-free run paid each prompt once.
    let ex = proxy.client_requests();
    let distinct: HashSet<String> = ex
        .iter()
        .filter_map(|e| last_content(&e.body_json()))
        .collect();
    assert_eq!(l(&clean, "api_requests") as usize, distinct.len());
    assert_eq!(l(&faulty, "api_requests") as usize, ex.len());
    let retries = ex.len() - distinct.len();
    let faulted = ex.iter().filter(|e| e.fault != Fault::Pass).count();
    assert!(faulted >= 20 && retries > 0, "{:?}", fault_counts(&ex));
    // Nothing received was requested again (checked by `received`).
    let got =
        received(&ex, |e| last_content(&e.body_json()), TIMEOUT).unwrap_or_else(|m| panic!("{m}"));
    assert_eq!(got.len(), distinct.len(), "every prompt got its answer");
    audit_cache(&faulty_cache, &got, &distinct);
    proxy.settle(Duration::from_millis(400));
    report(format!(
        "CLI run (teacher)\t{} prompts, {} requests, {faulted} faulted, {retries} retries, same result, {:.2} s: {:?}",
        distinct.len(),
        ex.len(),
        took.as_secs_f64(),
        fault_counts(&ex)
    ));
    drop(server);
    std::fs::remove_dir_all(&base).ok();
}

/// The cache file: every entry parses, its text is its response's content, and the response
/// is byte for byte the one the server sent for that request and the proxy delivered.
fn audit_cache(
    cache: &Path,
    got: &std::collections::HashMap<String, (Exchange, bool)>,
    expected: &HashSet<String>,
) {
    let conn =
        rusqlite::Connection::open_with_flags(cache, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT request, response, text FROM completions")
        .unwrap();
    let rows: Vec<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut seen = HashSet::new();
    for (request, response, text) in rows {
        let request: Value = serde_json::from_str(&request).unwrap();
        let p = last_content(&request).unwrap();
        let v: Value = serde_json::from_str(&response).expect("cached response parses");
        assert_eq!(content(&v), Some(text.as_str()));
        let (e, _) = got
            .get(&p)
            .expect("cached, so an answer reached the client");
        assert_eq!(
            response.as_bytes(),
            e.upstream.as_ref().unwrap().1.as_slice(),
            "`{p}`: the cache holds what the server sent"
        );
        assert!(seen.insert(p));
    }
    assert_eq!(&seen, expected);
}

/// A memorising student's state whose answer to "What is 43 - 21?" names `version`.
fn state_of(version: u64) -> String {
    json!({
        "table": [["What is 43 - 21?", format!("Weights of version {version}: \\boxed{{{version}}}\n{version}"), version.to_string().len()]],
        "answers": [[version.to_string(), 1]],
    })
    .to_string()
}

fn push_body(slot: &str, version: u64) -> String {
    json!({"slot": slot, "version": version, "student": state_of(version)}).to_string()
}

/// The listed versions of a slot, and `(version asked, status, version that answered)`.
type Served = (Vec<String>, Vec<(u64, u16, Option<u64>)>);

/// What the server serves for `slot`: its listed versions, and which version's weights
/// answer each of `versions` (None: refused).
fn served(server: &Server, slot: &str, versions: &[u64]) -> Served {
    let (s, text) = server.request("GET", "/v1/models", &[], b"");
    assert_eq!(s, 200);
    let listed: Vec<String> = body_json(&text)["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .filter(|id| id.starts_with(&format!("tutor/{slot}@")))
        .map(str::to_string)
        .collect();
    let answers = versions
        .iter()
        .map(|&v| {
            let (s, body) = server.post_json(
                "/v1/chat/completions",
                &chat_body(&format!("tutor/{slot}@v{v}"), "What is 43 - 21?"),
            );
            let from = content(&body).and_then(|c| {
                c.strip_prefix("Weights of version ")
                    .and_then(|r| r.split(':').next())
                    .and_then(|n| n.parse().ok())
            });
            (v, s, from)
        })
        .collect();
    (listed, answers)
}

/// Weight pushes through a proxy that breaks them (every class, replays of old pushes
/// included): the pusher retries each version with the same bytes until it is in, and at
/// every point the server serves exactly one version per slot, with that version's weights.
#[test]
fn faults_on_weight_pushes_never_leave_a_mix_of_versions() {
    let server = Server::start(&["--allow-load"], &[]);
    let timing = Timing::for_client_timeout(Duration::from_millis(400));
    let proxy = FaultProxy::start(
        server.socket(),
        Schedule::seeded(11, 0.5, &Fault::ALL, 3).only_path("/admin/load", 0.0),
        timing,
    );
    // The first push is replayed late, after newer versions are in.
    proxy.script([Fault::Replay]);
    let slot = "s1";
    let versions: Vec<u64> = (1..=10).collect();
    for &v in &versions {
        let mut cfg = ChatConfig::new(format!("{}/v1", proxy.url()), format!("tutor/{slot}@v{v}"));
        cfg.timeout_seconds = 0.4;
        cfg.max_retries = 4;
        cfg.backoff.initial_seconds = 0.005;
        cfg.backoff.max_seconds = 0.02;
        let pusher = ChatClient::new(cfg).unwrap();
        let answer = pusher.post_json("admin/load", &push_body(slot, v)).unwrap();
        assert!(answer.contains(&format!("tutor/{slot}@v{v}")), "{answer}");
        // Generation through the proxy too, with the version's own client.
        let out = pusher
            .complete(&ChatRequest::user("What is 43 - 21?"))
            .unwrap();
        assert_eq!(out.text, format!("Weights of version {v}: \\boxed{{{v}}}"));
        let (listed, answers) = served(&server, slot, &versions);
        assert_eq!(
            listed,
            vec![format!("tutor/{slot}@v{v}")],
            "one version per slot"
        );
        for (w, status, from) in answers {
            if w == v {
                assert_eq!(
                    (status, from),
                    (200, Some(v)),
                    "v{v} serves its own weights"
                );
            } else {
                assert!(
                    matches!(status, 404 | 409),
                    "v{w} refused while v{v} is in: {status}"
                );
            }
        }
    }
    // Late replays of old pushes have arrived by now, and were refused.
    proxy.settle(Duration::from_millis(500));
    let ex = proxy.exchanges();
    let replays: Vec<&Exchange> = ex.iter().filter(|e| e.replay).collect();
    assert!(!replays.is_empty());
    let (listed, answers) = served(&server, slot, &[10]);
    assert_eq!(listed, vec![format!("tutor/{slot}@v10")]);
    assert_eq!(answers[0], (10, 200, Some(10)));
    let pushes = ex.iter().filter(|e| !e.replay).count();
    report(format!(
        "Weight pushes\t{} versions, {pushes} push requests, {} faulted, {} replayed late; one version served at every point: {:?}",
        versions.len(),
        ex.iter().filter(|e| !e.replay && e.fault != Fault::Pass).count(),
        replays.len(),
        fault_counts(&ex)
    ));

    // The rules behind it, directly: older versions and other weights under a taken
    // version are refused; the same push again is answered as the first.
    let post = |body: &str| server.request("POST", "/v1/admin/load", &[], body.as_bytes());
    let (s, text) = post(&push_body(slot, 3));
    assert_eq!(s, 409, "{text}");
    assert_eq!(body_json(&text)["error"]["type"], "stale_version");
    let (s, text) = post(&push_body(slot, 10));
    assert_eq!(s, 200, "{text}");
    assert_eq!(body_json(&text)["unchanged"], true);
    let other = json!({"slot": slot, "version": 10, "student": state_of(99)}).to_string();
    let (s, text) = post(&other);
    assert_eq!(
        (s, body_json(&text)["error"]["type"].as_str()),
        (409, Some("version_taken"))
    );
    // A push cut off mid-body (Content-Length promises more) installs nothing.
    let full = push_body(slot, 11);
    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        sock,
        "POST /v1/admin/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        full.len()
    )
    .unwrap();
    sock.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
    std::thread::sleep(Duration::from_millis(100));
    let (listed, answers) = served(&server, slot, &[10, 11]);
    assert_eq!(listed, vec![format!("tutor/{slot}@v10")]);
    assert_eq!(answers[0], (10, 200, Some(10)));
    assert_eq!(answers[1].1, 409);
}

/// The student over HTTP (`--student-url`) through a proxy that breaks pushes and
/// generations (every class that ends within the student client's 120 s timeout): the run is
/// the in-process run, generation for generation.
#[test]
fn the_remote_student_through_faults_matches_the_in_process_student() {
    let base = temp_dir("student");
    let tasks = examples("arith.jsonl");
    let ck = tutor().to_str().unwrap().to_string();
    let server = Server::start(&["--allow-load"], &[]);
    let quick: Vec<Fault> = Fault::ALL
        .iter()
        .copied()
        .filter(|f| !matches!(f, Fault::Blackhole | Fault::Stall | Fault::Late))
        .collect();
    let proxy = FaultProxy::start(
        server.socket(),
        Schedule::seeded(5, 0.3, &quick, 2).only_path("/admin/load", 0.004),
        Timing::for_client_timeout(Duration::from_secs(120)),
    );
    let local_out = base.join("local");
    let (code, _, err) = autotune(
        &run_args(
            local_out.to_str().unwrap(),
            &["--tasks", &tasks, "--teacher-checkpoint", &ck],
        ),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let remote_out = base.join("remote");
    let url = format!("{}/v1", proxy.url());
    let t = std::time::Instant::now();
    let (code, _, err) = remote_student_run(&remote_out, &tasks, &ck, &url);
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    let (local, remote) = (result(&local_out), result(&remote_out));
    for k in SAME_RUN {
        assert_eq!(
            local[k], remote[k],
            "{k}: in process vs over a faulty proxy"
        );
    }
    for k in [
        "teacher_calls",
        "verifier_calls",
        "student_generations",
        "student_tokens",
    ] {
        assert_eq!(local["final_ledger"][k], remote["final_ledger"][k], "{k}");
    }
    // The same run against the server directly: the ledger differs only by the retries.
    // (The ledger charges a remote student's requests made in its metered generation calls:
    // held-out evaluation and the pushes in `fit` are not charged, nor their retries.)
    let direct_out = base.join("direct");
    let direct_url = server.url();
    let (code, _, err) = remote_student_run(&direct_out, &tasks, &ck, &direct_url);
    assert_eq!(code, 0, "{err}");
    let direct = result(&direct_out);
    for k in SAME_RUN {
        assert_eq!(
            direct[k], remote[k],
            "{k}: direct vs through the faulty proxy"
        );
    }
    let ex = proxy.client_requests();
    let distinct: HashSet<String> = ex
        .iter()
        .map(|e| format!("{} {}", e.path, String::from_utf8_lossy(&e.body)))
        .collect();
    let retries = ex.len() - distinct.len();
    let req = |v: &Value| v["final_ledger"]["api_requests"].as_u64().unwrap() as usize;
    assert!(
        req(&direct) <= req(&remote) && req(&remote) <= req(&direct) + retries,
        "retries are counted: {} direct, {} with faults, {retries} retries at the proxy",
        req(&direct),
        req(&remote)
    );
    let push_faults = ex
        .iter()
        .filter(|e| e.path.ends_with("/admin/load") && e.fault != Fault::Pass)
        .count();
    report(format!(
        "CLI run (student)\t{} requests ({} pushes, {push_faults} of them faulted), {} faulted in all, same result, {:.2} s: {:?}",
        ex.len(),
        ex.iter().filter(|e| e.path.ends_with("/admin/load")).count(),
        ex.iter().filter(|e| e.fault != Fault::Pass).count(),
        took.as_secs_f64(),
        fault_counts(&ex)
    ));
    drop(server);
    std::fs::remove_dir_all(&base).ok();
}

/// `autotune run` on `tasks`, taught by the checkpoint `ck`, with the student served at `url`.
fn remote_student_run(out: &Path, tasks: &str, ck: &str, url: &str) -> (i32, String, String) {
    autotune(
        &run_args(
            out.to_str().unwrap(),
            &[
                "--tasks",
                tasks,
                "--teacher-checkpoint",
                ck,
                "--student-url",
                url,
                "--student-model",
                "tutor",
            ],
        ),
        &[],
    )
}

/// A student server that keeps failing its generations (every completion a 500, weight
/// pushes pass): the run stops with a one-line error that says so, instead of reading the
/// failed generations as wrong answers and buying teacher demonstrations for them.
#[test]
fn a_student_server_that_keeps_failing_stops_the_run() {
    let base = temp_dir("student-fails");
    let tasks = examples("arith.jsonl");
    let ck = tutor().to_str().unwrap().to_string();
    let server = Server::start(&["--allow-load"], &[]);
    let proxy = FaultProxy::start(
        server.socket(),
        Schedule::always(Fault::InternalError).only_path("/chat/completions", 0.0),
        Timing::for_client_timeout(Duration::from_secs(120)),
    );
    let out = base.join("run");
    let url = format!("{}/v1", proxy.url());
    let (code, _, err) = remote_student_run(&out, &tasks, &ck, &url);
    assert_ne!(code, 0, "{err}");
    let last = err.trim_end().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error:") && last.contains("the student's model server failed"),
        "{err}"
    );
    drop(server);
    std::fs::remove_dir_all(&base).ok();
}

/// `serve-model`: loopback by default, `--allow-load` off by default, body limits (a
/// separate, larger one for pushes) answered with JSON 413s, JSON 404s, and the bearer token.
#[test]
fn serve_model_defaults_limits_and_token() {
    let server = Server::start(&[], &[]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    // No --allow-load: no pushes.
    let (s, v) = server.post_json(
        "/v1/admin/load",
        &json!({"slot": "a", "version": 1, "student": state_of(1)}),
    );
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (403, Some("permission_denied"))
    );
    let (s, text) = server.request("GET", "/nowhere", &[], b"");
    assert_eq!(
        (s, body_json(&text)["error"]["type"].as_str()),
        (404, Some("not_found"))
    );
    // Chat bodies over 8 MiB: 413 with a JSON error.
    let big = vec![b' '; 9 << 20];
    let (s, text) = server.request("POST", "/v1/chat/completions", &[], &big);
    assert_eq!(s, 413, "{}", &text[..text.len().min(300)]);
    assert_eq!(body_json(&text)["error"]["type"], "payload_too_large");
    drop(server);

    // Pushes may be larger (a 12 MiB push is read), up to 256 MiB.
    let server = Server::start(&["--allow-load"], &[]);
    let padded = format!("{}{}", push_body("big", 1), " ".repeat(12 << 20));
    let (s, text) = server.request("POST", "/v1/admin/load", &[], padded.as_bytes());
    assert_eq!(s, 200, "{}", &text[..text.len().min(300)]);
    // A push announcing more than 256 MiB is refused before it is read.
    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "POST /v1/admin/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
        (256u64 << 20) + 1
    )
    .unwrap();
    let mut out = String::new();
    let _ = sock.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");
    assert_eq!(body_json(&out)["error"]["type"], "payload_too_large");
    // Chunked bodies (no Content-Length) are cut at the limit too.
    let mut sock = std::net::TcpStream::connect(&server.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        sock,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..9 {
        if write!(sock, "{:x}\r\n", chunk.len()).is_err()
            || sock.write_all(&chunk).is_err()
            || sock.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n");
    let mut out = String::new();
    let _ = sock.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 413"),
        "{}",
        &out[..out.len().min(300)]
    );
    drop(server);

    // --token-env: every route but /healthz needs the token.
    let token = "tok-serve-model-0123";
    let server = Server::start(
        &["--allow-load", "--token-env", "AUTOTUNE_TEST_SM_TOKEN"],
        &[("AUTOTUNE_TEST_SM_TOKEN", token)],
    );
    let chat = chat_body("tutor", "What is 43 - 21?").to_string();
    let bearer = format!("Bearer {token}");
    let (s, _) = server.request("GET", "/healthz", &[], b"");
    assert_eq!(s, 200);
    for headers in [
        vec![],
        vec![("Authorization", "Bearer nope")],
        vec![("Authorization", token)],
    ] {
        for (method, path, body) in [
            ("POST", "/v1/chat/completions", chat.as_bytes()),
            ("GET", "/v1/models", &b""[..]),
            ("POST", "/v1/admin/load", push_body("t", 1).as_bytes()),
        ] {
            let (s, text) = server.request(method, path, &headers, body);
            assert_eq!(s, 401, "{method} {path} with {headers:?}");
            assert_eq!(body_json(&text)["error"]["type"], "unauthorized");
            assert!(text
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer"));
        }
    }
    // Unauthenticated oversized bodies are refused for the token, before they are read.
    let (s, _) = server.request("POST", "/v1/admin/load", &[], &vec![b' '; 1 << 20]);
    assert_eq!(s, 401);
    let auth = [("Authorization", bearer.as_str())];
    let (s, text) = server.request("POST", "/v1/chat/completions", &auth, chat.as_bytes());
    assert_eq!(s, 200, "{text}");
    let (s, text) = server.request(
        "POST",
        "/v1/admin/load",
        &auth,
        push_body("t", 1).as_bytes(),
    );
    assert_eq!(s, 200, "{text}");
    assert!(!server.output().contains(token), "{}", server.output());
    drop(server);
    // A token variable that is not set: a clear error at start, naming the variable.
    let (code, _, err) = autotune(
        &[
            "serve-model",
            tutor().to_str().unwrap(),
            "--port",
            "0",
            "--token-env",
            "AUTOTUNE_TEST_SURELY_UNSET_TOKEN",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("AUTOTUNE_TEST_SURELY_UNSET_TOKEN"), "{err}");
}

/// `autotune serve` binds 127.0.0.1 when no address is given.
#[test]
fn autotune_serve_binds_loopback_by_default() {
    let base = temp_dir("serve");
    let mut child = bin()
        .args(["serve", "--port", "0", "--store"])
        .arg(base.join("s.sqlite"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    std::fs::remove_dir_all(&base).ok();
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_absent(secret: &str, what: &str, bytes: &[u8]) {
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret appears in {what}"
    );
}

/// The API key and the bearer token never appear in logs (`RUST_LOG=debug`), the run
/// directory, the report or the cache: with a server that ignores the key, one that needs it
/// as its token, a proxy that breaks requests, and a server that quotes a wrong key back.
#[test]
fn secrets_never_reach_logs_run_files_reports_or_the_cache() {
    const KEY: &str = "sk-test-SECRET-123";
    let base = temp_dir("secrets");
    let tasks = examples("arith.jsonl");
    let env = [("AUTOTUNE_TEST_API_KEY", KEY), ("RUST_LOG", "debug")];
    let extra = "api_key_env = \"AUTOTUNE_TEST_API_KEY\"";
    let mut streams = String::new();
    let mut servers_output = String::new();
    // 1. A server that ignores the key, behind a proxy that breaks a fifth of the requests;
    // then the report of the run.
    {
        let server = Server::start(&[], &env);
        let proxy = FaultProxy::start(
            server.socket(),
            Schedule::seeded(3, 0.2, &Fault::ALL, 4),
            Timing::for_client_timeout(TIMEOUT),
        );
        let cfg = base.join("t1.toml");
        teacher_toml(
            &cfg,
            &format!("{}/v1", proxy.url()),
            &base.join("cache1.sqlite"),
            extra,
        );
        let out = base.join("run1");
        let (code, o, e) = autotune(
            &run_args(
                out.to_str().unwrap(),
                &["--tasks", &tasks, "--teacher-config", cfg.to_str().unwrap()],
            ),
            &env,
        );
        assert_eq!(code, 0, "{e}");
        streams += &(o + &e);
        // The key was sent (as the bearer header), and only there.
        let ex = proxy.client_requests();
        assert!(ex.iter().all(|e| e
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == &format!("Bearer {KEY}"))));
        let (code, o, e) = autotune(&["report", out.to_str().unwrap()], &env);
        assert_eq!(code, 0, "{e}");
        streams += &(o + &e);
        // 2. A server that quotes the key back in a 401: the run fails, saying so, without it.
        proxy.set_schedule(Schedule::always(Fault::EchoKey401));
        let cfg = base.join("t2.toml");
        teacher_toml(
            &cfg,
            &format!("{}/v1", proxy.url()),
            &base.join("cache2.sqlite"),
            extra,
        );
        let (code, o, e) = autotune(
            &run_args(
                base.join("run2").to_str().unwrap(),
                &["--tasks", &tasks, "--teacher-config", cfg.to_str().unwrap()],
            ),
            &env,
        );
        assert_ne!(code, 0);
        assert!(e.contains("HTTP 401") && e.contains("[redacted]"), "{e}");
        streams += &(o + &e);
        servers_output += &server.output();
    }
    // 3. A server that needs the key as its bearer token (`--token-env`).
    {
        let server = Server::start(&["--token-env", "AUTOTUNE_TEST_API_KEY"], &env);
        let cfg = base.join("t3.toml");
        teacher_toml(&cfg, &server.url(), &base.join("cache3.sqlite"), extra);
        let (code, o, e) = autotune(
            &run_args(
                base.join("run3").to_str().unwrap(),
                &["--tasks", &tasks, "--teacher-config", cfg.to_str().unwrap()],
            ),
            &env,
        );
        assert_eq!(code, 0, "{e}");
        streams += &(o + &e);
        // Without the key: 401, reported without any secret.
        let cfg = base.join("t4.toml");
        teacher_toml(&cfg, &server.url(), &base.join("cache4.sqlite"), "");
        let (code, o, e) = autotune(
            &run_args(
                base.join("run4").to_str().unwrap(),
                &["--tasks", &tasks, "--teacher-config", cfg.to_str().unwrap()],
            ),
            &env,
        );
        assert_ne!(code, 0);
        assert!(e.contains("HTTP 401"), "{e}");
        streams += &(o + &e);
        servers_output += &server.output();
    }
    // 4. `autotune serve` with the same variable as its token.
    {
        let mut child = bin()
            .args([
                "serve",
                "--port",
                "0",
                "--token-env",
                "AUTOTUNE_TEST_API_KEY",
                "--store",
            ])
            .arg(base.join("svc.sqlite"))
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line.split("http://").nth(1).unwrap().trim().to_string();
        let (s, _) = raw_request(
            &addr,
            "GET",
            "/v1/pools",
            &[("Authorization", "Bearer wrong")],
            b"",
        );
        assert_eq!(s, 401);
        let (s, _) = raw_request(
            &addr,
            "GET",
            "/v1/pools",
            &[("Authorization", &format!("Bearer {KEY}"))],
            b"",
        );
        assert_eq!(s, 200);
        let _ = child.kill();
        let _ = child.wait();
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        let _ = child.stderr.take().unwrap().read_to_string(&mut rest);
        servers_output += &(line + &rest);
    }
    assert_absent(KEY, "the runs' stdout/stderr", streams.as_bytes());
    assert_absent(KEY, "the servers' stdout/stderr", servers_output.as_bytes());
    let all = files(&base);
    let names: Vec<String> = all
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for must in [
        "config.toml",
        "metrics.jsonl",
        "ledger.json",
        "result.json",
        "report.html",
        "cache1.sqlite",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "{must} was written: {names:?}"
        );
    }
    for p in &all {
        if p.extension().is_some_and(|e| e == "toml") && p.parent() == Some(base.as_path()) {
            continue; // the client configurations name the variable, not the key
        }
        assert_absent(KEY, &p.display().to_string(), &std::fs::read(p).unwrap());
    }
    report(format!(
        "Secrets\t{} files and 7 processes' output searched, with RUST_LOG=debug: no `{KEY}`",
        all.len()
    ));
    std::fs::remove_dir_all(&base).ok();
}
