//! The `code` verifier (in progress: owned by the sandbox work).

use crate::{check_options, AnswerVerifier, Item, Verdict, VerifyError};

/// Resource limits of one sandboxed run.
#[derive(Clone, Debug)]
pub struct SandboxLimits {
    pub timeout_seconds: f64,
    pub memory_mb: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            timeout_seconds: 5.0,
            memory_mb: 512,
        }
    }
}

/// Runs a Python program against unit tests in a sandboxed subprocess.
#[derive(Clone, Debug, Default)]
pub struct CodeVerifier {
    pub limits: SandboxLimits,
}

impl CodeVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options("code", options, &[])?;
        Ok(Self::default())
    }
}

impl AnswerVerifier for CodeVerifier {
    fn name(&self) -> &'static str {
        "code"
    }

    fn verify(&self, _item: &Item) -> Verdict {
        Verdict::wrong(None, "code verifier not built yet")
    }
}
