//! The `math` verifier (in progress: owned by the math-verifier work).

use crate::{check_options, AnswerVerifier, Item, Verdict, VerifyError};

/// Extracts the final answer from free text and decides its equivalence to the gold answer.
#[derive(Clone, Debug, Default)]
pub struct MathVerifier {}

impl MathVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options("math", options, &[])?;
        Ok(Self {})
    }
}

impl AnswerVerifier for MathVerifier {
    fn name(&self) -> &'static str {
        "math"
    }

    fn verify(&self, item: &Item) -> Verdict {
        let p = item.prediction.trim();
        if p == item.gold.trim() {
            Verdict::correct(Some(p.to_string()))
        } else {
            Verdict::wrong(Some(p.to_string()), "not equal")
        }
    }
}
