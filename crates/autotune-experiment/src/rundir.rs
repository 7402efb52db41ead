//! Run directories: what every `run`, `compare` and `demo` leaves behind.
//!
//! ```text
//! DIR/config.toml      the resolved configuration and its provenance (written first)
//! DIR/metrics.jsonl    one record per phase, per evaluation and per finished run, appended
//!                      and flushed as they happen
//! DIR/ledger.json      the ledger of every run (at eps and at its end) and their total
//! DIR/comparison.json  the aggregated comparison (medians over seeds, scaling fits)
//! DIR/comparison.md    the comparison table in Markdown
//! DIR/table.txt        the comparison table as printed
//! DIR/result.json      `run` only: the run in full
//! DIR/report.html      written by `autotune report` (and at the end of `compare`/`demo`)
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use autotune_core::Ledger;
use serde::{Deserialize, Serialize};

use crate::{
    render_markdown, render_table, CompareReport, CompareSpec, ExperimentError, MetricRecord, Plan,
    ResolvedStrategy, ResolvedTask,
};

pub const CONFIG_FILE: &str = "config.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LEDGER_FILE: &str = "ledger.json";
pub const COMPARISON_JSON: &str = "comparison.json";
pub const COMPARISON_MD: &str = "comparison.md";
pub const TABLE_TXT: &str = "table.txt";
pub const RESULT_JSON: &str = "result.json";
pub const REPORT_HTML: &str = "report.html";

/// Where a run directory came from: enough to reproduce it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Provenance {
    pub autotune_version: String,
    /// The commit the binary was built from (`unknown` outside a git checkout).
    pub git_commit: String,
    pub rustc: String,
    /// `os-arch` of the machine that ran it.
    pub target: String,
    /// Threads the runs were spread over.
    pub threads: usize,
    /// UTC time the run directory was created (RFC 3339).
    pub created: String,
    /// The command line, as typed.
    pub command: String,
}

/// `config.toml`: what was asked, everything resolved, and where it came from.
#[derive(Clone, Debug, Serialize)]
pub struct RunConfig {
    pub provenance: Provenance,
    /// The comparison as asked (a `run` is a comparison of one strategy, eps and seed).
    pub experiment: CompareSpec,
    pub task: ResolvedTask,
    pub strategy: Vec<ResolvedStrategy>,
}

impl RunConfig {
    /// The configuration file of `plan`.
    pub fn new(provenance: Provenance, plan: &Plan) -> Self {
        Self {
            provenance,
            experiment: plan.spec.clone(),
            task: plan.task.clone(),
            strategy: plan.strategies.clone(),
        }
    }
}

/// One run's ledgers in `ledger.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunLedger {
    pub strategy: String,
    pub eps: f64,
    pub seed: u64,
    pub reached: bool,
    /// The ledger at the first checkpoint with held-out error <= eps.
    pub cost_to_eps: Option<Ledger>,
    /// The ledger at the end of the run.
    pub final_ledger: Ledger,
}

/// `ledger.json`: every run's ledgers, and what all the runs spent together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerFile {
    pub total: Ledger,
    pub runs: Vec<RunLedger>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExperimentError + '_ {
    move |error| ExperimentError::Io {
        path: path.display().to_string(),
        error,
    }
}

/// Writes `contents` to `path` durably through a temporary file, a sync and a rename, so that
/// a reader never sees half a file and a crash leaves the old file or the new one.
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), ExperimentError> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

struct MetricsSink {
    out: BufWriter<File>,
    /// The first write error; later records are dropped and `finish` reports it.
    error: Option<std::io::Error>,
}

/// Writes a run directory while its runs go on. `record` may be called from many threads.
pub struct RunDirWriter {
    dir: PathBuf,
    metrics: Mutex<MetricsSink>,
}

impl RunDirWriter {
    /// Creates `dir` (and its parents), writes `config.toml` and starts an empty
    /// `metrics.jsonl` (replacing the files of an earlier run there).
    pub fn create(dir: &Path, config: &RunConfig) -> Result<Self, ExperimentError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let toml = toml::to_string_pretty(config)
            .map_err(|e| ExperimentError::Invalid(format!("serialising the configuration: {e}")))?;
        let header = "# The resolved configuration of this run directory (written by autotune).\n";
        write_atomic(&dir.join(CONFIG_FILE), &format!("{header}{toml}"))?;
        let path = dir.join(METRICS_FILE);
        let file = File::create(&path).map_err(io_err(&path))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            metrics: Mutex::new(MetricsSink {
                out: BufWriter::new(file),
                error: None,
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one record to `metrics.jsonl` and flushes it.
    pub fn record(&self, r: &MetricRecord) {
        let mut sink = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        if sink.error.is_some() {
            return;
        }
        let line = r.to_line();
        let res = writeln!(sink.out, "{line}").and_then(|_| sink.out.flush());
        if let Err(e) = res {
            sink.error = Some(e);
        }
    }

    /// Writes a file of the run directory (atomically).
    pub fn write(&self, name: &str, contents: &str) -> Result<(), ExperimentError> {
        write_atomic(&self.dir.join(name), contents)
    }

    /// Writes the comparison files and `ledger.json`; reports a failed metrics write.
    pub fn finish(&self, report: &CompareReport) -> Result<(), ExperimentError> {
        let mut sink = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let flushed = sink.out.flush();
        if let Some(e) = sink.error.take() {
            return Err(io_err(&self.dir.join(METRICS_FILE))(e));
        }
        flushed.map_err(io_err(&self.dir.join(METRICS_FILE)))?;
        drop(sink);
        let runs: Vec<RunLedger> = report
            .runs
            .iter()
            .map(|r| RunLedger {
                strategy: r.strategy.clone(),
                eps: r.eps,
                seed: r.seed,
                reached: r.reached,
                cost_to_eps: r.cost_to_eps.clone(),
                final_ledger: r.final_ledger.clone(),
            })
            .collect();
        let mut total = Ledger::default();
        for r in &runs {
            total += &r.final_ledger;
        }
        self.write(LEDGER_FILE, &pretty_json(&LedgerFile { total, runs }))?;
        self.write(COMPARISON_JSON, &pretty_json(report))?;
        self.write(COMPARISON_MD, &render_markdown(report))?;
        self.write(TABLE_TXT, &render_table(report))
    }
}

/// Pretty JSON with a final newline.
pub fn pretty_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).expect("run files serialise") + "\n"
}
