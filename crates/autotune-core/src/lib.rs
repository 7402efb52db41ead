//! AutoTune's domain, in the notation of the paper (our account: `docs/paper-algorithms.md`).
//!
//! - prompts `x ~ D` come from a [`PromptSource`];
//! - a chain of thought is a [`Trace`]: token steps whose last part is the final answer `y`;
//! - the outcome [`Verifier`] `V(x, y)` checks only the final answer;
//! - the [`Teacher`] `x -> (CoT, y)` is the expensive part, every call counted;
//! - a [`Student`] is both a learner (fit on demonstrations) and a policy (generate);
//! - the [`Ledger`] counts every cost; the [`Metered`] wrapper is the only way the algorithms
//!   reach the expensive parts, so nobody counts on the side.
//!
//! Every expensive interface takes a batch so that implementations may run it in parallel.
//!
//! ```
//! use autotune_core::{stream_seed, ParamSpec, Params};
//!
//! // Parameters as a user types them, checked against what a component declares.
//! const SPECS: &[ParamSpec] = &[ParamSpec {
//!     key: "c",
//!     default: "1",
//!     help: "the phase constant",
//! }];
//! let p = Params::parse(&["c=0.5"])?.resolve("strategy `x`", SPECS)?;
//! assert_eq!(p.get::<f64>("c", "a number")?, 0.5);
//! assert!(Params::parse(&["c=0.5"])?.resolve("x", &[]).is_err()); // unknown parameter
//! // Every random choice draws from its own named stream of the run's seed.
//! assert_ne!(stream_seed(7, "train"), stream_seed(7, "test"));
//! # Ok::<(), autotune_core::CoreError>(())
//! ```

pub mod compact;
mod error;
mod journal;
mod ledger;
mod params;
pub mod progress;
mod rng;
mod traits;
mod types;

pub use error::{CoreError, Result};
pub use journal::{verdicts_from_str, verdicts_to_string, Entry, Journal};
pub use ledger::{ApiUsage, Ledger, Metered};
pub use params::{ParamSpec, Params};
pub use rng::{stream_rng, stream_seed, Rng};
pub use traits::{
    FitStats, Policy, PromptSource, PromptText, Student, Task, TaskFactory, Teacher, Verifier,
};
pub use types::{Demo, Prompt, Rollout, Token, Trace};
