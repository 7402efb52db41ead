//! Bring your own tasks: task records from JSONL files in the formats people already have,
//! text tasks with real verifiers and file-backed teachers, and export of what a run
//! collected for the trainers people use (TRL, verl).

mod export;
mod records;
mod remote;
mod text_task;

pub use export::{export_rl_prompts, export_sft, RlPrompt, SftExample, SftStyle};
pub use records::{
    final_answer, join_messages, last_boxed, parse_record, read_tasks, read_tasks_from,
    read_verify_items, read_verify_items_from, Format, Imported, JsonLine, JsonLines, TaskRecord,
    MAX_LINE_BYTES,
};
pub use remote::{ChatTeacher, GeneratorTeacher, RemoteStudent, TextGenerator, TextPrompt};
pub use text_task::{
    check_demos, decode, encode, preflight, read_demos, Demos, FileTeacher, MemoStudent,
    ModelTeacher, TextTask, TextTaskConfig,
};

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
