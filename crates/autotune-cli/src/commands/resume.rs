//! `autotune resume DIR`: continues a killed `run`, `compare`, `demo` or `rl` from its run
//! directory, replaying its journal (`rl`: from the state each run kept after its last step).

use anyhow::{bail, Context, Result};
use clap::Parser;

use crate::args::{Cli, Cmd, ResumeArgs};
use crate::launch::{Invocation, Launch, INVOCATION_FILE, INVOCATION_FORMAT};

pub fn run(a: ResumeArgs) -> Result<()> {
    let dir = std::fs::canonicalize(&a.dir)
        .with_context(|| format!("{}: no such run directory", a.dir.display()))?;
    let path = dir.join(INVOCATION_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read it; only run directories of `run`, `compare`, `demo` and `rl` can be resumed",
            path.display()
        )
    })?;
    let inv: Invocation = serde_json::from_str(&text)
        .with_context(|| format!("{}: not an invocation record", path.display()))?;
    if inv.format != INVOCATION_FORMAT {
        bail!(
            "{}: format `{}`, expected `{INVOCATION_FORMAT}`",
            path.display(),
            inv.format
        );
    }
    let cli = Cli::try_parse_from(&inv.args).map_err(|e| {
        anyhow::anyhow!(
            "{}: the recorded command line does not parse: {e}",
            path.display()
        )
    })?;
    std::env::set_current_dir(&inv.cwd).with_context(|| {
        format!(
            "{}: the run's working directory {} (its relative paths start there)",
            path.display(),
            inv.cwd
        )
    })?;
    let mut launch = Launch::resumed(inv.args.clone());
    match cli.cmd {
        Cmd::Run(mut r) => {
            r.out = dir;
            super::run::run(&mut launch, r)
        }
        Cmd::Compare(mut c) => {
            c.out = Some(dir);
            super::compare::run(&mut launch, c)
        }
        Cmd::Demo(mut d) => {
            d.out = dir;
            super::demo::run(&mut launch, d)
        }
        Cmd::Rl(mut r) => {
            r.out = Some(dir);
            super::rl::run(&mut launch, r)
        }
        _ => bail!(
            "{}: only `run`, `compare`, `demo` and `rl` can be resumed",
            path.display()
        ),
    }
}
