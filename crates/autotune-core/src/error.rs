use thiserror::Error;

/// Errors of the domain layer. Variants carry what a user needs to fix the input.
#[derive(Debug, Error)]
pub enum CoreError {
    #[error("unknown parameter `{key}` for {owner}; valid parameters: {valid}")]
    UnknownParam {
        owner: String,
        key: String,
        valid: String,
    },
    #[error("parameter `{key}`: expected {expected}, got `{value}`")]
    BadParam {
        key: String,
        value: String,
        expected: String,
    },
    #[error("malformed parameter `{0}`: expected KEY=VALUE")]
    MalformedParam(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// Bad user input that already names its place (`file:line: what is wrong`).
    #[error("{0}")]
    Input(String),
    #[error("the prompt source is exhausted after {drawn} prompts")]
    SourceExhausted { drawn: usize },
    #[error("teacher failed: {0}")]
    Teacher(String),
    #[error("student failed: {0}")]
    Student(String),
    /// An external verifier failed (the message names it and says how).
    #[error("{0}")]
    Verifier(String),
    /// The run journal cannot be written, or a resumed run does not follow it.
    #[error("journal: {0}")]
    Journal(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
