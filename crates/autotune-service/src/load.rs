//! The load test: many concurrent trainers against one service, then a hard kill, a restart on
//! the same store, and a count of what survived.
//!
//! Each client loops `next` (rollouts, `k` samples per prompt) -> `outcomes` (the `k` samples,
//! simulated with a fixed pass rate per prompt, under an idempotency key, retried with the same
//! key on a transport error) -> every few rounds a teacher lease and a state read. Every
//! acknowledged outcome is counted client-side, per prompt. [`run_with_restart`] runs the
//! service in a child process, SIGKILLs it after the load (no graceful flush), starts it again
//! on the same store, and checks that the stored counts equal the acknowledged ones exactly.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng};
use serde_json::{json, Value};

use crate::ServiceError;

fn err(m: impl std::fmt::Display) -> ServiceError {
    ServiceError::Load(m.to_string())
}

/// A minimal blocking JSON client (one keep-alive connection per client).
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            agent,
        }
    }

    fn finish(
        resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), String> {
        let mut resp = resp.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    /// POSTs a JSON body; `Err` only for transport failures.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), String> {
        self.post_raw(path, &body.to_string())
    }

    /// POSTs raw bytes as JSON.
    pub fn post_raw(&self, path: &str, body: &str) -> Result<(u16, Value), String> {
        let mut req = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::finish(req.send(body))
    }

    /// GETs a path.
    pub fn get(&self, path: &str) -> Result<(u16, Value), String> {
        let mut req = self.agent.get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        Self::finish(req.call())
    }
}

/// A service in a child process (so that it can be killed with SIGKILL).
pub struct ChildService {
    child: Child,
    url: String,
}

impl ChildService {
    /// Starts `cmd`, which must print `... listening on http://ADDR` as its first stdout line
    /// (as [`crate::serve`] does).
    pub fn start(mut cmd: Command) -> Result<Self, ServiceError> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("cannot start the service: {e}")))?;
        let stdout = child.stdout.take().ok_or_else(|| err("no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| err(format!("reading the service's address: {e}")))?;
        let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!(
                "the service printed no address (first line: {line:?})"
            )));
        };
        Ok(ChildService {
            url: url.to_string(),
            child,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// SIGKILL: no graceful shutdown, nothing flushed.
    pub fn kill(mut self) -> Result<(), ServiceError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for ChildService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The load's shape.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub clients: usize,
    pub seconds: f64,
    /// Prompts in the pool.
    pub prompts: usize,
    /// Prompts per `next`.
    pub batch: usize,
    /// Samples per prompt.
    pub k: u32,
    /// A state read every this many rounds (per client).
    pub state_every: u64,
    /// A teacher lease every this many rounds (per client).
    pub teacher_every: u64,
    pub token: Option<String>,
    pub seed: u64,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            clients: 64,
            seconds: 60.0,
            prompts: 4096,
            batch: 4,
            k: 4,
            state_every: 20,
            teacher_every: 10,
            token: None,
            seed: 0,
        }
    }
}

/// Latency of one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointStats {
    pub endpoint: &'static str,
    pub requests: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What the load did and what the service acknowledged.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub clients: usize,
    pub seconds: f64,
    pub requests: u64,
    /// Non-2xx answers and transport errors.
    pub errors: u64,
    /// `next` calls that found no eligible prompt.
    pub empty_batches: u64,
    pub requests_per_second: f64,
    pub endpoints: Vec<EndpointStats>,
    pub all: Option<EndpointStats>,
    pub acknowledged_outcomes: u64,
    pub acknowledged_correct: u64,
    /// Acknowledged outcomes per prompt id.
    pub per_prompt: HashMap<String, u64>,
}

impl LoadReport {
    /// The report as a table.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} clients, {:.1} s: {} requests, {:.0} requests/s, {} errors, {} empty batches; {} outcomes acknowledged ({} correct)\n",
            self.clients,
            self.seconds,
            self.requests,
            self.requests_per_second,
            self.errors,
            self.empty_batches,
            self.acknowledged_outcomes,
            self.acknowledged_correct
        );
        s += &format!(
            "{:<18} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "endpoint", "requests", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for e in self.endpoints.iter().chain(self.all.iter()) {
            s += &format!(
                "{:<18} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                e.endpoint, e.requests, e.p50_ms, e.p90_ms, e.p99_ms, e.max_ms
            );
        }
        s
    }
}

/// The check after the restart.
#[derive(Clone, Debug)]
pub struct Verification {
    pub acknowledged: u64,
    pub stored: u64,
    /// Acknowledged outcomes not found after the restart (`acknowledged - stored`, at least 0).
    pub lost: u64,
    /// Prompts whose stored sample count differs from what was acknowledged.
    pub prompt_mismatches: Vec<(String, u64, u64)>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.stored == self.acknowledged && self.prompt_mismatches.is_empty()
    }
}

const ENDPOINTS: [&str; 4] = ["next rollouts", "outcomes", "next teacher", "state"];
pub const LOAD_POOL: &str = "load";

/// The simulated pass rate of prompt `i`, in [0.05, 0.95].
fn pass_rate(i: usize) -> f64 {
    0.05 + 0.9 * ((i as f64 * 0.618_033_988_75).fract())
}

struct ClientOut {
    lat: Vec<Vec<u32>>,
    errors: u64,
    empty: u64,
    acked: u64,
    correct: u64,
    per_prompt: HashMap<String, u64>,
}

fn client_loop(url: &str, cfg: &LoadConfig, id: usize, deadline: Instant) -> ClientOut {
    let c = Client::new(url, cfg.token.as_deref());
    let mut rng = autotune_core::Rng::seed_from_u64(cfg.seed ^ (id as u64).wrapping_mul(0x9E37));
    let mut out = ClientOut {
        lat: vec![Vec::new(); ENDPOINTS.len()],
        errors: 0,
        empty: 0,
        acked: 0,
        correct: 0,
        per_prompt: HashMap::new(),
    };
    let timed =
        |out: &mut ClientOut, e: usize, f: &mut dyn FnMut() -> Result<(u16, Value), String>| {
            let t = Instant::now();
            let r = f();
            out.lat[e].push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            match r {
                Ok((s, v)) if (200..300).contains(&s) => Some(v),
                _ => {
                    out.errors += 1;
                    None
                }
            }
        };
    let next_path = format!("/v1/pools/{LOAD_POOL}/next");
    let out_path = format!("/v1/pools/{LOAD_POOL}/outcomes");
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        if round.is_multiple_of(cfg.teacher_every) {
            // A teacher lease lasts for the phase unless it expires; the simulated teacher
            // answers within a second, so the lease is short.
            let body = json!({"n": 2, "purpose": "teacher", "lease_seconds": 1.0});
            timed(&mut out, 2, &mut || c.post(&next_path, &body));
        }
        let body = json!({"n": cfg.batch, "purpose": "rollouts", "k": cfg.k});
        let Some(v) = timed(&mut out, 0, &mut || c.post(&next_path, &body)) else {
            continue;
        };
        let prompts = v["prompts"].as_array().cloned().unwrap_or_default();
        let mut results = Vec::new();
        for p in &prompts {
            let pid = p["id"].as_str().unwrap_or_default().to_string();
            let i: usize = pid.trim_start_matches('p').parse().unwrap_or(0);
            let base = p["sample_base"].as_u64().unwrap_or(0);
            for j in 0..u64::from(cfg.k) {
                let correct = rng.gen_bool(pass_rate(i));
                results.push((pid.clone(), base + j, correct));
            }
        }
        if results.is_empty() {
            out.empty += 1;
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let body = json!({
            "idempotency_key": format!("c{id}-r{round}"),
            "results": results.iter().map(|(p, s, c)| json!({"prompt_id": p, "sample": s, "correct": c, "tokens": 100})).collect::<Vec<_>>(),
        });
        // Retried with the same key on a transport error: the service counts it once.
        let mut acked = None;
        for _ in 0..5 {
            let t = Instant::now();
            let r = c.post(&out_path, &body);
            out.lat[1].push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
            match r {
                Ok((200, v)) => {
                    acked = Some(v);
                    break;
                }
                Ok(_) => {
                    out.errors += 1;
                    break;
                }
                Err(_) => out.errors += 1,
            }
        }
        if let Some(v) = acked {
            let dups: Vec<u64> = v["duplicate_indices"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default();
            for (j, (p, _, c)) in results.iter().enumerate() {
                if !dups.contains(&(j as u64)) {
                    out.acked += 1;
                    out.correct += u64::from(*c);
                    *out.per_prompt.entry(p.clone()).or_default() += 1;
                }
            }
        }
        if round.is_multiple_of(cfg.state_every) {
            timed(&mut out, 3, &mut || {
                c.get(&format!("/v1/pools/{LOAD_POOL}/state?limit=20"))
            });
        }
    }
    out
}

fn stats(endpoint: &'static str, lat: &mut [u32]) -> EndpointStats {
    lat.sort_unstable();
    let q = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i]) / 1000.0
    };
    EndpointStats {
        endpoint,
        requests: lat.len() as u64,
        p50_ms: q(0.50),
        p90_ms: q(0.90),
        p99_ms: q(0.99),
        max_ms: lat.last().map_or(0.0, |&m| f64::from(m) / 1000.0),
    }
}

/// Registers the load pool (learnability mask) and runs the clients against `url`.
pub fn run_load(url: &str, cfg: &LoadConfig) -> Result<LoadReport, ServiceError> {
    let c = Client::new(url, cfg.token.as_deref());
    let prompts: Vec<Value> = (0..cfg.prompts)
        .map(|i| json!({"id": format!("p{i}"), "prompt": format!("What is {i} + {i}?"), "answer": (2 * i).to_string()}))
        .collect();
    let (s, v) = c
        .post(
            "/v1/pools",
            &json!({"name": LOAD_POOL, "mask": {"strategy": "learnability"}, "seed": cfg.seed, "prompts": prompts}),
        )
        .map_err(err)?;
    if !(200..300).contains(&s) {
        return Err(err(format!("registering the pool: {s} {v}")));
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(cfg.seconds);
    let outs: Vec<ClientOut> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.clients)
            .map(|id| scope.spawn(move || client_loop(url, cfg, id, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut rep = LoadReport {
        clients: cfg.clients,
        seconds,
        ..Default::default()
    };
    let mut lats = vec![Vec::new(); ENDPOINTS.len()];
    for o in outs {
        rep.errors += o.errors;
        rep.empty_batches += o.empty;
        rep.acknowledged_outcomes += o.acked;
        rep.acknowledged_correct += o.correct;
        for (p, n) in o.per_prompt {
            *rep.per_prompt.entry(p).or_default() += n;
        }
        for (e, l) in o.lat.into_iter().enumerate() {
            lats[e].extend(l);
        }
    }
    let mut all: Vec<u32> = lats.iter().flatten().copied().collect();
    rep.requests = all.len() as u64;
    rep.requests_per_second = rep.requests as f64 / seconds;
    rep.endpoints = ENDPOINTS
        .iter()
        .zip(lats.iter_mut())
        .map(|(e, l)| stats(e, l))
        .collect();
    rep.all = Some(stats("all", &mut all));
    Ok(rep)
}

/// Reads the pool's state from `url` and compares it with what was acknowledged.
pub fn verify(
    url: &str,
    token: Option<&str>,
    rep: &LoadReport,
) -> Result<Verification, ServiceError> {
    let c = Client::new(url, token);
    let mut stored_per_prompt: HashMap<String, u64> = HashMap::new();
    let mut offset = 0u64;
    let stored;
    loop {
        let (s, v) = c
            .get(&format!(
                "/v1/pools/{LOAD_POOL}/state?offset={offset}&limit=10000"
            ))
            .map_err(err)?;
        if s != 200 {
            return Err(err(format!("state after restart: {s} {v}")));
        }
        let total = v["counters"]["outcomes"].as_u64().unwrap_or(0);
        for it in v["items"].as_array().into_iter().flatten() {
            let n = it["samples_all_phases"].as_u64().unwrap_or(0);
            if n > 0 {
                stored_per_prompt.insert(it["id"].as_str().unwrap_or_default().into(), n);
            }
        }
        match v["next_offset"].as_u64() {
            Some(o) => offset = o,
            None => {
                stored = total;
                break;
            }
        }
    }
    let mut mismatches = Vec::new();
    let mut ids: Vec<&String> = rep
        .per_prompt
        .keys()
        .chain(stored_per_prompt.keys())
        .collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let a = rep.per_prompt.get(id).copied().unwrap_or(0);
        let b = stored_per_prompt.get(id).copied().unwrap_or(0);
        if a != b {
            mismatches.push((id.clone(), a, b));
        }
    }
    Ok(Verification {
        acknowledged: rep.acknowledged_outcomes,
        stored,
        lost: rep.acknowledged_outcomes.saturating_sub(stored),
        prompt_mismatches: mismatches,
    })
}

/// Starts the service with `launch` (a command that serves a fresh store), runs the load,
/// SIGKILLs the service, starts it again with `launch` on the same store, and verifies.
pub fn run_with_restart(
    launch: impl Fn() -> Command,
    cfg: &LoadConfig,
) -> Result<(LoadReport, Verification), ServiceError> {
    let svc = ChildService::start(launch())?;
    let rep = run_load(svc.url(), cfg)?;
    svc.kill()?;
    let svc = ChildService::start(launch())?;
    let ver = verify(svc.url(), cfg.token.as_deref(), &rep)?;
    svc.kill()?;
    Ok((rep, ver))
}
