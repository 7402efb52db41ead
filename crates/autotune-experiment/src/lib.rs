//! Experiments: one run of a strategy with held-out evaluation, and comparisons of many runs.
//!
//! "Demos to reach eps" follows the spec: held-out prompts are fresh draws from D (at least
//! `10/eps` of them, from a stream the run never trains on); a strategy reaches eps at the
//! first checkpoint (end of a phase) whose held-out error is `<= eps`, and the cumulative cost
//! at that checkpoint is reported.
//!
//! The tasks come from a [`TaskFactory`](autotune_core::TaskFactory) the caller passes: the
//! CLI passes the built-in ones, a library user can pass a closure that builds their own.
//!
//! ```
//! use autotune_core::{Params, Task, TaskFactory};
//! use autotune_curriculum::Budget;
//! use autotune_experiment::{run_one, RunSpec};
//! use autotune_tasks::BuiltinTasks;
//!
//! // A factory of one's own: here it only narrows the built-in halfspace task.
//! let mine = |name: &str, params: &Params, seed: u64| {
//!     let mut p = params.clone();
//!     p.insert("window", 6);
//!     BuiltinTasks.build(name, &p, seed)
//! };
//! let spec = RunSpec {
//!     task: "halfspace-cot".into(),
//!     task_params: Params::default(),
//!     strategy: "autotune-cex".into(),
//!     strategy_params: Params::default(),
//!     eps: 0.1,
//!     seed: 1,
//!     test_factor: 10.0,
//!     budget: Budget::default(),
//!     stop_at_eps: true,
//!     also_eps: Vec::new(),
//! };
//! let result = run_one(&mine, &spec, |_record| {})?;
//! assert_eq!(result.dimension, 7); // window + 1
//! println!("demos to eps 0.1: {:?}", result.summary.demos_to_eps);
//! # Ok::<(), autotune_experiment::ExperimentError>(())
//! ```

mod compare;
mod eval;
mod fit;
mod journal;
mod metrics;
mod plan;
mod rl;
mod run;
mod rundir;
mod table;

pub use compare::{
    aggregate, compare, median, report_from_runs, Aggregate, CompareReport, StrategyFit,
};
pub use eval::{slice_order, Evaluation, HeldOut, SliceError};
pub use fit::{fit_linear, LinearFit};
pub use journal::{
    lock_run_dir, parse_journal, FileJournal, JournalRecord, JournalSummary, CHECKPOINT_DIR,
    JOURNAL_FILE, LOCK_FILE, MAX_RECORD_BYTES,
};
pub use metrics::{EndRecord, EvalRecord, MetricRecord, PhaseRecord, RunKey};
pub use plan::{CompareSpec, Plan, ResolvedStrategy, ResolvedTask};
pub use rl::{
    aggregate_rl, coverage_text, measure_coverage, rl_state_path, rl_table, run_rl, run_rl_one,
    Coverage, RlAggregate, RlCheckpoint, RlReport, RlRun, RlSpec, RlStates,
};
pub use run::{
    heldout_size, journal_stream, run_one, run_one_full, Checkpoint, RunArtifacts, RunResult,
    RunSpec, RunSummary, DEFAULT_DEMOS_PER_D_OVER_EPS, DEFAULT_TEST_FACTOR, MAX_HELDOUT,
};
pub use rundir::{
    pretty_json, write_atomic, LedgerFile, Provenance, RunConfig, RunDirWriter, RunLedger,
    COMPARISON_JSON, COMPARISON_MD, CONFIG_FILE, LEDGER_FILE, METRICS_FILE, REPORT_HTML,
    RESULT_JSON, TABLE_TXT,
};
pub use table::{
    burn_in_rows, burn_in_table, comparison_table, render_markdown, render_table, BurnInRow, Table,
    RATIO_COLUMN, REACHED_COLUMN,
};

use thiserror::Error;

/// Errors of the experiment layer.
#[derive(Debug, Error)]
pub enum ExperimentError {
    #[error(transparent)]
    Curriculum(#[from] autotune_curriculum::CurriculumError),
    #[error(transparent)]
    Core(#[from] autotune_core::CoreError),
    #[error("invalid experiment: {0}")]
    Invalid(String),
    /// An I/O error, shown with its cause (kept out of the error chain, so it prints once).
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    /// A run directory that cannot be used as asked (locked, holding another run, a corrupt
    /// journal); the message names the file and, for corruption, the byte offset.
    #[error("{0}")]
    RunDir(String),
}
