//! Bring your own tasks: task records from JSONL files in the formats people already have,
//! text tasks with real verifiers and file-backed teachers, and export of what a run
//! collected for the trainers people use (TRL, verl).
//!
//! ```
//! use autotune_data::{decode, encode, final_answer, parse_record, Format};
//!
//! // A reasoning-gym record, recognised by its fields.
//! let line = r#"{"question": "What is 6 * 7?", "answer": "42", "metadata": {"source_dataset": "basic_arithmetic"}}"#;
//! let record = parse_record(serde_json::from_str(line).unwrap(), 1, Format::Auto).unwrap();
//! assert_eq!((record.prompt.as_str(), record.answer.as_str()), ("What is 6 * 7?", "42"));
//! // The answer a chain of thought ends with, and text as tokens and back.
//! assert_eq!(final_answer("6 * 7 = 42, so the answer is 42.").as_deref(), Some("42"));
//! assert_eq!(decode(&encode("6 * 7")), "6 * 7");
//! ```

mod export;
mod memo;
mod records;
mod remote;
mod text_task;
mod tokens;

pub use export::{export_rl_prompts, export_sft, RlPrompt, SftExample, SftStyle};
pub use memo::MemoStudent;
pub use records::{
    final_answer, join_messages, last_boxed, parse_record, read_tasks, read_tasks_from,
    read_verify_items, read_verify_items_from, Format, Imported, JsonLine, JsonLines, TaskRecord,
    MAX_LINE_BYTES,
};
pub use remote::{
    demo_trace, ChatTeacher, GeneratorTeacher, RemoteStudent, TextGenerator, TextPrompt,
};
pub use text_task::{
    check_demos, preflight, read_demos, Demos, FileTeacher, ModelTeacher, TextStudentFactory,
    TextTask, TextTaskConfig,
};
pub use tokens::{decode, encode};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{file}:{line}: {message}")]
    BadRecord {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Verify(#[from] autotune_verify::VerifyError),
}

impl From<DataError> for autotune_core::CoreError {
    fn from(e: DataError) -> Self {
        autotune_core::CoreError::Input(e.to_string())
    }
}
