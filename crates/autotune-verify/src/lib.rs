//! Answer verifiers for text tasks.
//!
//! A verifier decides whether a model's output (`prediction`, often a whole chain of thought)
//! answers a prompt whose reference answer is `gold`. Code verifiers also take unit tests.
//! Every verifier is batch-oriented: [`AnswerVerifier::verify_batch`] runs items in parallel
//! (rayon) by default, and a verdict never panics or hangs: unparseable input is an
//! incorrect verdict with a reason.
//!
//! | name | decides |
//! |---|---|
//! | `exact` | string equality, optionally ignoring case and collapsing whitespace |
//! | `numeric` | numbers: integers, decimals, fractions, scientific notation, within a tolerance |
//! | `choice` | multiple choice letters (A/B/C/D...) |
//! | `math` | final answer extracted from free text (`\boxed{}`, "the answer is", last number), equivalence of LaTeX and plain expressions |
//! | `code` | a Python program run against unit tests in a sandboxed subprocess |
//! | `cmd:PROGRAM ARGS` | an external process (a task library's own scorer) fed JSON lines, answering one verdict per line ([`CommandVerifier`]) |
//!
//! ```
//! use autotune_verify::{build_verifier, AnswerVerifier, Item};
//!
//! let math = build_verifier("math", &[])?;
//! let cot = "3 halves of 1/3 ... so the answer is \\boxed{\\frac{1}{2}}";
//! assert!(math.verify(&Item::new("0.5", cot)).correct);
//! assert!(!math.verify(&Item::new("0.5", "the answer is 2")).correct);
//! # Ok::<(), autotune_verify::VerifyError>(())
//! ```

mod code;
mod command;
mod math;
mod simple;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use code::{CodeVerifier, SandboxLimits};
pub use command::{CommandVerifier, COMMAND_PREFIX};
pub use math::MathVerifier;
pub use simple::{
    last_number, parse_number, ChoiceVerifier, ExactVerifier, NumericVerifier, Whitespace,
};

/// One thing to check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The reference answer.
    pub gold: String,
    /// The model's output: an answer, or a whole chain of thought ending in one.
    pub prediction: String,
    /// Code only: Python unit tests (asserts) run after the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    /// What else the record carried (`meta`, `metadata`, `extra_info`), for external
    /// verifiers that score with it (reasoning-gym's scorers read `metadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<serde_json::Value>,
}

impl Item {
    pub fn new(gold: impl Into<String>, prediction: impl Into<String>) -> Self {
        Self {
            gold: gold.into(),
            prediction: prediction.into(),
            tests: None,
            meta: None,
        }
    }
}

/// A verdict, with what was compared and why it failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub correct: bool,
    /// The answer taken from the prediction, where the verifier extracts one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extracted: Option<String>,
    /// Why the verdict is negative (no answer found, timeout, crash, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Verdict {
    pub fn correct(extracted: Option<String>) -> Self {
        Self {
            correct: true,
            extracted,
            reason: None,
        }
    }

    pub fn wrong(extracted: Option<String>, reason: impl Into<String>) -> Self {
        Self {
            correct: false,
            extracted,
            reason: Some(reason.into()),
        }
    }
}

/// Decides whether predictions answer their prompts.
pub trait AnswerVerifier: Send + Sync {
    /// The verifier's registry name.
    fn name(&self) -> &'static str;

    fn verify(&self, item: &Item) -> Verdict;

    /// Whether a verdict is a pure function of the item, cheap to compute again (string and
    /// number comparisons): runs then recompute verdicts on resume instead of journaling
    /// each. `false` by default (the code verifier runs programs under a timeout).
    fn pure(&self) -> bool {
        false
    }

    /// Verdicts for many items, in order; in parallel by default.
    fn verify_batch(&self, items: &[Item]) -> Vec<Verdict> {
        items.par_iter().map(|i| self.verify(i)).collect()
    }

    /// Verdicts for many items, or why the verifier itself failed (an external process that
    /// died, hung or answered nonsense): a failure that must stop a run, not count as wrong
    /// answers. In-process verifiers cannot fail: [`Self::verify_batch`].
    fn try_verify_batch(&self, items: &[Item]) -> Result<Vec<Verdict>, VerifyError> {
        Ok(self.verify_batch(items))
    }

    /// Whether the verifier wants each item's [`Item::meta`] (external processes do).
    fn reads_meta(&self) -> bool {
        false
    }
}

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("unknown verifier `{0}`; valid verifiers: exact, numeric, choice, math, code, cmd:PROGRAM ARGS")]
    Unknown(String),
    #[error("verifier `{verifier}`: {message}")]
    Option { verifier: String, message: String },
    /// An external verifier failed (see [`CommandVerifier`]).
    #[error("verifier `{verifier}` failed: {message}")]
    Process { verifier: String, message: String },
}

/// The verifiers' names, for listings and errors.
pub const VERIFIERS: [&str; 5] = ["exact", "numeric", "choice", "math", "code"];

/// Builds a verifier by name with `key=value` options (see each verifier's docs).
pub fn build_verifier(
    name: &str,
    options: &[(String, String)],
) -> Result<Box<dyn AnswerVerifier>, VerifyError> {
    match name {
        "exact" => Ok(Box::new(ExactVerifier::from_options(options)?)),
        "numeric" => Ok(Box::new(NumericVerifier::from_options(options)?)),
        "choice" => Ok(Box::new(ChoiceVerifier::from_options(options)?)),
        "math" => Ok(Box::new(MathVerifier::from_options(options)?)),
        "code" => Ok(Box::new(CodeVerifier::from_options(options)?)),
        other => match other.strip_prefix(COMMAND_PREFIX) {
            Some(command) => Ok(Box::new(CommandVerifier::start(command, options)?)),
            None => Err(VerifyError::Unknown(other.to_string())),
        },
    }
}

/// Rejects options a verifier does not know.
pub(crate) fn check_options(
    verifier: &str,
    options: &[(String, String)],
    known: &[&str],
) -> Result<(), VerifyError> {
    for (k, _) in options {
        if !known.contains(&k.as_str()) {
            return Err(VerifyError::Option {
                verifier: verifier.into(),
                message: format!(
                    "unknown option `{k}`; valid options: {}",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        }
    }
    Ok(())
}

/// Parses an option value, with an error that names the option.
pub(crate) fn parse_option<T: std::str::FromStr>(
    verifier: &str,
    key: &str,
    value: &str,
    expected: &str,
) -> Result<T, VerifyError> {
    value.parse().map_err(|_| VerifyError::Option {
        verifier: verifier.into(),
        message: format!("option `{key}={value}`: expected {expected}"),
    })
}
