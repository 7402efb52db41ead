//! The load test: `cargo run --release -p autotune-service --example load -- --clients 64
//! --seconds 60 [--prompts 4096] [--batch 4] [--k 4]`.
//!
//! Runs the service in a child process (this program, re-run with `--serve-child STORE`) on
//! 127.0.0.1 with a temporary store, drives it with the clients, kills it with SIGKILL, starts
//! it again on the same store and checks that every acknowledged outcome is there.

use std::process::{Command, ExitCode};

use autotune_service::load::{run_with_restart, LoadConfig};
use autotune_service::{serve, ServiceConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve-child") {
        let mut cfg = ServiceConfig::new(&args[1]);
        cfg.port = 0;
        return match serve(cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut cfg = LoadConfig::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().map(String::as_str).unwrap_or("");
        let bad = |e: &dyn std::fmt::Display| {
            eprintln!("{a} {v}: {e}");
            ExitCode::from(2)
        };
        match a.as_str() {
            "--clients" => match v.parse() {
                Ok(x) => cfg.clients = x,
                Err(e) => return bad(&e),
            },
            "--seconds" => match v.parse() {
                Ok(x) => cfg.seconds = x,
                Err(e) => return bad(&e),
            },
            "--prompts" => match v.parse() {
                Ok(x) => cfg.prompts = x,
                Err(e) => return bad(&e),
            },
            "--batch" => match v.parse() {
                Ok(x) => cfg.batch = x,
                Err(e) => return bad(&e),
            },
            "--k" => match v.parse() {
                Ok(x) => cfg.k = x,
                Err(e) => return bad(&e),
            },
            _ => return bad(&"unknown flag; valid: --clients --seconds --prompts --batch --k"),
        }
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = dir.path().join("load.sqlite");
    let exe = std::env::current_exe().expect("current exe");
    println!(
        "load: {} clients x {} s on 127.0.0.1, {} prompts, {} prompts x {} samples per round",
        cfg.clients, cfg.seconds, cfg.prompts, cfg.batch, cfg.k
    );
    let launch = || {
        let mut c = Command::new(&exe);
        c.arg("--serve-child").arg(&store);
        c
    };
    match run_with_restart(launch, &cfg) {
        Ok((rep, ver)) => {
            print!("{}", rep.render());
            println!(
                "after SIGKILL and restart: {} outcomes stored, {} acknowledged, lost {}, prompts with a different count {}",
                ver.stored,
                ver.acknowledged,
                ver.lost,
                ver.prompt_mismatches.len()
            );
            if ver.ok() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "FAILED: {:?}",
                    &ver.prompt_mismatches.iter().take(10).collect::<Vec<_>>()
                );
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("load test failed: {e}");
            ExitCode::FAILURE
        }
    }
}
