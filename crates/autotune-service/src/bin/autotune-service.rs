//! Standalone server: `autotune-service --store FILE [--port P] [--bind ADDR] [--token-env VAR]
//! [--max-body-bytes N]`. `autotune serve` in the CLI is the same server; this binary exists so
//! that tests can kill a real server process with SIGKILL.

use std::process::ExitCode;

use autotune_service::{serve, ServiceConfig};

fn parse() -> Result<ServiceConfig, String> {
    let mut args = std::env::args().skip(1);
    let mut cfg = ServiceConfig::new("autotune-service.sqlite");
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--store" => cfg.store = val()?.into(),
            "--port" => cfg.port = val()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--bind" => cfg.bind = val()?.parse().map_err(|e| format!("--bind: {e}"))?,
            "--token-env" => cfg = cfg.with_token_env(&val()?).map_err(|e| e.to_string())?,
            "--max-body-bytes" => {
                cfg.max_body_bytes = val()?.parse().map_err(|e| format!("--max-body-bytes: {e}"))?
            }
            "--lease-seconds" => {
                cfg.lease_seconds = val()?.parse().map_err(|e| format!("--lease-seconds: {e}"))?
            }
            "--compact-every" => {
                cfg.compact_every = val()?
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("--compact-every: a positive number of outcomes")?
            }
            other => return Err(format!("unknown argument `{other}`; valid: --store, --port, --bind, --token-env, --max-body-bytes, --lease-seconds, --compact-every")),
        }
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let cfg = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autotune-service: {e}");
            return ExitCode::from(2);
        }
    };
    match serve(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autotune-service: {e}");
            ExitCode::FAILURE
        }
    }
}
