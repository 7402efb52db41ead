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
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
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
        Cmd::Rl(a) => commands::rl::run(a),
        Cmd::Coverage(a) => commands::coverage::run(a),
        Cmd::Verify(a) => commands::verify::run(a),
        Cmd::Serve(a) => commands::serve::run(a),
        Cmd::ServeModel(a) => commands::serve_model::run(a),
    }
}
