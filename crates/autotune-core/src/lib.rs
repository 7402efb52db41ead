//! AutoTune's domain, in the notation of the spec (`../shared/docs/autocurriculum-spec.md`).
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
pub use traits::{FitStats, Policy, PromptSource, PromptText, Student, Task, Teacher, Verifier};
pub use types::{Demo, Prompt, Rollout, Token, Trace};
