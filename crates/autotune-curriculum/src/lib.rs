//! The autocurriculum of "Learning to Reason with Curriculum I" (COLT 2026), and the baselines.
//!
//! This crate knows nothing of files, terminals or HTTP: it takes a [`Task`](autotune_core::Task)
//! and a [`Strategy`] from the registry ([`STRATEGIES`], built by [`build_strategy`]), runs the
//! Test/Filter/Update loop through the ledger, and reports each phase to an [`Observer`].
//! Each strategy is one file under `strategies/`.
//!
//! ```
//! use autotune_core::Params;
//! use autotune_curriculum::{build_strategy, STRATEGIES};
//!
//! // Algorithm 1 as written at eps = 1e-2, for a student class of dimension d = 11:
//! // k = ceil(C ln(1/eps) / err*^2) phases, with C = 1 and err* = 1/4 by default.
//! let alg1 = build_strategy("autotune-paper", &Params::default(), 1e-2, 11)?;
//! assert_eq!(alg1.config().max_phases, 74);
//! // Every strategy is in one registry, with its parameters and their defaults.
//! assert!(STRATEGIES.iter().any(|s| s.name == "uniform"));
//! # Ok::<(), autotune_curriculum::CurriculumError>(())
//! ```

mod engine;
pub mod grpo;
mod model;
pub mod pool;
mod strategies;
mod strategy;
pub mod weights;

pub use engine::{
    no_reference, no_sampling, run_curriculum, run_curriculum_journaled, score_prompts, Budget,
    Context, Control, NoObserver, Observer, Outcome, PhaseReport, PromptScore, StopReason,
    DEFAULT_MAX_TEACH, GIVE_UP_AFTER,
};
pub use grpo::{
    run_grpo, GrpoConfig, GrpoObserver, GrpoOutcome, GrpoState, GrpoStep, SavedGroup, Selector,
};
pub use model::{plurality, Member, Model};
pub use strategy::{
    build_strategy, certificate_rule, strategy_info, strategy_names, Certificate, CertificateRule,
    MaskInfo, Output, Phase, Resolved, Score, Source, Strategy, StrategyConfig, StrategyInfo,
    Update, STRATEGIES,
};

use thiserror::Error;

/// Errors of the curriculum layer.
#[derive(Debug, Error)]
pub enum CurriculumError {
    #[error("unknown strategy `{name}`; valid strategies: {valid}")]
    UnknownStrategy { name: String, valid: String },
    #[error(transparent)]
    Core(#[from] autotune_core::CoreError),
}
