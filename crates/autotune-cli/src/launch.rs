//! How a command that writes a run directory was launched: its command line (this process's,
//! or the recorded one of a run being resumed), where it came from (`Provenance`), and the
//! run directory's lock, journal and invocation record.

use std::path::Path;

use anyhow::{Context, Result};
use autotune_experiment::{
    write_atomic, FileJournal, Plan, Provenance, RunConfig, RunDirWriter, JOURNAL_FILE,
};

/// `DIR/invocation.json`: how the command of a run directory was invoked, for `resume`.
pub const INVOCATION_FILE: &str = "invocation.json";
pub const INVOCATION_FORMAT: &str = "autotune-invocation-v1";

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Invocation {
    pub format: String,
    /// The command line (the program first).
    pub args: Vec<String>,
    /// The directory it was run from (relative paths in `args` are relative to it).
    pub cwd: String,
}

/// The command line a command runs under, passed down from `main` (no global state).
pub struct Launch {
    /// The command line of this run: the resumed one, or this process's.
    args: Vec<String>,
    /// Whether the run directory's journal is replayed: set by `resume`, or by
    /// `open_run_dir` when the same command already ran into the same directory.
    resuming: bool,
}

impl Launch {
    /// A fresh command: this process's command line.
    pub fn from_env() -> Self {
        Launch {
            args: std::env::args().collect(),
            resuming: false,
        }
    }

    /// `autotune resume`: the recorded command line `args`, its journal replayed.
    pub fn resumed(args: Vec<String>) -> Self {
        Launch {
            args,
            resuming: true,
        }
    }

    /// Where this run directory came from.
    pub fn provenance(&self) -> Provenance {
        let quote = |a: &String| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\".contains(c)) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        };
        let mut args: Vec<String> = self.args.iter().map(quote).collect();
        if let Some(first) = args.first_mut() {
            *first = "autotune".into();
        }
        Provenance {
            autotune_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("AUTOTUNE_GIT_COMMIT").into(),
            rustc: env!("AUTOTUNE_RUSTC").into(),
            target: format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH),
            threads: rayon::current_num_threads(),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            command: args.join(" "),
        }
    }

    /// Opens the run directory of a command: takes its lock, starts its journal (or,
    /// resuming, reads it back), records how the command was invoked, and writes
    /// `config.toml`.
    pub fn open_run_dir(&mut self, dir: &Path, plan: &Plan) -> Result<(RunDirWriter, FileJournal)> {
        let config = RunConfig::new(self.provenance(), plan);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        if !self.resuming && same_command_ran_here(dir) {
            // The same command into the same directory again (e.g. `autotune demo` twice):
            // continue its run rather than refuse it; what was paid for is replayed.
            eprintln!(
                "{} holds a run of this same command: continuing it (as `autotune resume`)",
                dir.display()
            );
            self.resuming = true;
        }
        let journal = if self.resuming {
            let (journal, summary) = FileJournal::resume(dir)?;
            if let Some((offset, what)) = &summary.dropped {
                eprintln!(
                    "warning: {}: dropped the torn last record at byte offset {offset} ({what})",
                    dir.join(JOURNAL_FILE).display()
                );
            }
            eprintln!(
                "resuming {}: {} journaled results ({} teacher demonstrations) to replay",
                dir.display(),
                summary.records,
                summary.teacher_prompts
            );
            journal
        } else {
            let journal = FileJournal::create(dir)?;
            record_invocation(dir)?;
            journal
        };
        let writer = RunDirWriter::create(dir, &config)
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok((writer, journal))
    }

    /// Opens the run directory of a command that keeps states instead of a journal
    /// (`autotune rl`): takes its lock (held by the returned file), records the invocation of
    /// a fresh run, and returns whether states kept there are to be continued (resuming, or
    /// the same command again into the same directory). A directory holding states of another
    /// command is refused.
    pub fn open_state_dir(&mut self, dir: &Path, states: &Path) -> Result<(std::fs::File, bool)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = autotune_experiment::lock_run_dir(dir)?;
        let kept = states.exists();
        if !self.resuming && kept {
            if !same_command_ran_here(dir) {
                anyhow::bail!(
                    "{} holds the states of another run; give another --out, or `autotune resume {}`",
                    dir.display(),
                    dir.display()
                );
            }
            eprintln!(
                "{} holds a run of this same command: continuing it (as `autotune resume`)",
                dir.display()
            );
            self.resuming = true;
        }
        if !self.resuming {
            record_invocation(dir)?;
        } else if kept {
            let n = std::fs::read_dir(states)
                .map(|d| d.filter(|e| e.is_ok()).count())
                .unwrap_or(0);
            eprintln!("resuming {}: {n} kept states", dir.display());
        }
        Ok((lock, self.resuming))
    }

    /// Prints what a resumed command replayed and what it did anew.
    pub fn journal_summary(&self, journal: &FileJournal) {
        if self.resuming {
            eprintln!(
                "resumed: {} results replayed from the journal, {} new ones journaled",
                journal.replayed(),
                journal.appended()
            );
        }
    }
}

/// Writes `DIR/invocation.json`: this process's command line and working directory.
fn record_invocation(dir: &Path) -> Result<()> {
    let inv = Invocation {
        format: INVOCATION_FORMAT.into(),
        args: std::env::args().collect(),
        cwd: std::env::current_dir()
            .context("reading the current directory")?
            .display()
            .to_string(),
    };
    write_atomic(
        &dir.join(INVOCATION_FILE),
        &serde_json::to_string_pretty(&inv)?,
    )?;
    Ok(())
}

/// Whether `dir` holds a journaled run of this very command line, run from this directory.
fn same_command_ran_here(dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(dir.join(INVOCATION_FILE)) else {
        return false;
    };
    let Ok(inv) = serde_json::from_str::<Invocation>(&text) else {
        return false;
    };
    let here = std::env::current_dir().map(|d| d.display().to_string());
    inv.format == INVOCATION_FORMAT
        && inv
            .args
            .iter()
            .skip(1)
            .eq(std::env::args().skip(1).collect::<Vec<_>>().iter())
        && here.is_ok_and(|h| h == inv.cwd)
}
