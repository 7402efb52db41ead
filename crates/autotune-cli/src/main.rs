//! `autotune`: the command line. A thin layer over the library crates: parse, validate,
//! run, print and write files. `args` holds the clap types, `commands/` one file per
//! command, `setup` the checks they share, `launch` the run directory and resume state.

mod args;
mod commands;
mod launch;
mod output;
mod progress;
mod serve_model;
mod setup;

use anyhow::Result;
use clap::Parser;

use args::{Cli, Cmd};
use launch::Launch;

/// mimalloc: the neural student's training step allocates and frees many tensor buffers;
/// with glibc malloc it trains at 0.64x PyTorch's tokens/s, with mimalloc at 0.74x
/// (`bench/compare-pytorch.sh`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    quiet_on_closed_stdout();
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        // 3: the run finished and wrote its results, and shows its target cannot be reached.
        let code = if e.downcast_ref::<setup::Unreachable>().is_some() {
            3
        } else {
            2
        };
        std::process::exit(code);
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe (`autotune ... | head -1`) fails and
/// `println!` panics. Like other Unix tools, the command then ends quietly instead, with the
/// exit code of a process ended by SIGPIPE (141). SIGPIPE itself stays ignored: the servers
/// and HTTP clients in this process must see a closed socket as an error, not die of it.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Tasks => {
            commands::tasks::run();
            Ok(())
        }
        Cmd::Strategies => {
            commands::strategies::run();
            Ok(())
        }
        Cmd::Resume(a) => commands::resume::run(a),
        Cmd::Run(a) => commands::run::run(&mut Launch::from_env(), a),
        Cmd::Compare(a) => commands::compare::run(&mut Launch::from_env(), a),
        Cmd::Demo(a) => commands::demo::run(&mut Launch::from_env(), a),
        Cmd::Report(a) => commands::report::run(a),
        Cmd::Rl(a) => commands::rl::run(&mut Launch::from_env(), a),
        Cmd::Coverage(a) => commands::coverage::run(a),
        Cmd::Verify(a) => commands::verify::run(a),
        Cmd::Serve(a) => commands::serve::run(a),
        Cmd::ServeModel(a) => commands::serve_model::run(a),
        Cmd::ExportHf(a) => commands::export_hf::run(a),
    }
}
