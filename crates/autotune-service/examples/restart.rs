//! Restart time after many outcomes (issue 16): `cargo run --release -p autotune-service
//! --example restart -- --binary target/release/autotune [--outcomes 10000000] [--prompts
//! 10000] [--phases 4] [--batch 2000] [--clients 4] [--tries 3] [--dir DIR]`.
//!
//! Starts `BINARY serve` on a fresh store, registers a pool of `prompts` prompts, reports
//! `outcomes` outcomes over `phases` phases (each prompt's samples numbered 0, 1, ... in each
//! phase, `batch` outcomes a request, `clients` clients at once), SIGKILLs the service, then
//! starts it again `tries` times on the same store and measures each start: from the spawn to
//! the address line (the state read back from the store), then checks that the pool's state
//! counts every outcome. Prints one line; `bench/service-restart.sh` runs it for two binaries.

use std::process::{Command, ExitCode};
use std::time::Instant;

use autotune_service::load::{ChildService, Client};
use serde_json::{json, Value};

struct Args {
    binary: String,
    outcomes: u64,
    prompts: u64,
    phases: u64,
    batch: u64,
    clients: u64,
    tries: usize,
    dir: Option<String>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        binary: String::new(),
        outcomes: 10_000_000,
        prompts: 10_000,
        phases: 4,
        batch: 2_000,
        clients: 4,
        tries: 3,
        dir: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = || v.parse::<u64>().map_err(|e| format!("{k} {v}: {e}"));
        match k.as_str() {
            "--binary" => a.binary = v.clone(),
            "--outcomes" => a.outcomes = num()?,
            "--prompts" => a.prompts = num()?.max(1),
            "--phases" => a.phases = num()?.max(1),
            "--batch" => a.batch = num()?.max(1),
            "--clients" => a.clients = num()?.max(1),
            "--tries" => a.tries = num()?.max(1) as usize,
            "--dir" => a.dir = Some(v.clone()),
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.binary.is_empty() {
        return Err("--binary PATH (an autotune binary) is required".into());
    }
    Ok(a)
}

fn post(c: &Client, path: &str, body: &Value) -> Result<Value, String> {
    match c.post(path, body)? {
        (s, v) if (200..300).contains(&s) => Ok(v),
        (s, v) => Err(format!("{path}: {s} {v}")),
    }
}

fn start(a: &Args, store: &std::path::Path) -> Result<ChildService, String> {
    let mut cmd = Command::new(&a.binary);
    cmd.args(["serve", "--port", "0", "--store"]).arg(store);
    ChildService::start(cmd).map_err(|e| e.to_string())
}

/// Reports phase `phase`'s `n` outcomes: outcome `j` is prompt `j % prompts`, sample
/// `j / prompts`, from `clients` threads over disjoint ranges of `j`.
fn fill_phase(a: &Args, url: &str, n: u64) -> Result<(), String> {
    let per = n.div_ceil(a.clients);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.clients)
            .map(|t| {
                s.spawn(move || -> Result<(), String> {
                    let c = Client::new(url, None);
                    let (lo, hi) = (t * per, ((t + 1) * per).min(n));
                    let mut j = lo;
                    while j < hi {
                        let end = (j + a.batch).min(hi);
                        let results: Vec<Value> = (j..end)
                            .map(|j| {
                                json!({"prompt_id": format!("p{}", j % a.prompts),
                                       "sample": j / a.prompts, "correct": j % 3 == 0,
                                       "tokens": 100})
                            })
                            .collect();
                        post(&c, "/v1/pools/r/outcomes", &json!({ "results": results }))?;
                        j = end;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a client panicked".to_string())?)
    })
}

fn run(a: &Args) -> Result<String, String> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = std::env::temp_dir().join(format!("autotune-restart-{}", std::process::id()));
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = dir.join("s.sqlite");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let svc = start(a, &store)?;
    let c = Client::new(svc.url(), None);
    let prompts: Vec<Value> = (0..a.prompts)
        .map(|i| json!({"id": format!("p{i}")}))
        .collect();
    post(
        &c,
        "/v1/pools",
        &json!({"name": "r", "mask": {"strategy": "autotune-cex"}, "prompts": prompts}),
    )?;
    let t0 = Instant::now();
    for phase in 0..a.phases {
        let n = a.outcomes / a.phases + u64::from(phase < a.outcomes % a.phases);
        fill_phase(a, svc.url(), n)?;
        if phase + 1 < a.phases {
            post(&c, "/v1/pools/r/phase", &json!({}))?;
        }
    }
    let fill = t0.elapsed().as_secs_f64();
    svc.kill().map_err(|e| e.to_string())?;
    let size: u64 = ["", "-wal"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", store.display())).ok())
        .map(|m| m.len())
        .sum();
    let mut times = Vec::new();
    for _ in 0..a.tries {
        let t = Instant::now();
        let svc = start(a, &store)?;
        times.push(t.elapsed().as_secs_f64());
        let state = Client::new(svc.url(), None)
            .get("/v1/pools/r/state?limit=1")?
            .1;
        let counted = state["counters"]["outcomes"].as_u64();
        if counted != Some(a.outcomes) {
            return Err(format!(
                "after the restart the pool counts {counted:?} outcomes, not {}",
                a.outcomes
            ));
        }
        svc.kill().map_err(|e| e.to_string())?;
    }
    if a.dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(format!(
        "{}: {} outcomes, {} prompts, {} phases: filled in {fill:.1} s, store {:.1} MB; \
         restart {:.2} s (median of {}: {})",
        a.binary,
        a.outcomes,
        a.prompts,
        a.phases,
        size as f64 / 1e6,
        sorted[sorted.len() / 2],
        times.len(),
        times
            .iter()
            .map(|t| format!("{t:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn main() -> ExitCode {
    match parse().and_then(|a| run(&a)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restart: {e}");
            ExitCode::FAILURE
        }
    }
}
