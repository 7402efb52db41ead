//! Checkpoints of trained students: the task that defines them and the student's state.

use std::path::Path;

use autotune_core::{CoreError, Params, Prompt, Result, Student, Task};
use serde::{Deserialize, Serialize};

pub const CHECKPOINT_FORMAT: &str = "autotune-checkpoint-v1";

/// A saved student and the task it belongs to (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub task: String,
    /// The task's resolved parameters.
    pub task_params: Params,
    pub seed: u64,
    pub strategy: String,
    /// The student's state, as written by `Student::save`.
    pub student: String,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CoreError::Input(format!("reading checkpoint {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a checkpoint's JSON text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let c: Checkpoint = serde_json::from_str(text)
            .map_err(|e| CoreError::Input(format!("{origin}: not an autotune checkpoint ({e})")))?;
        if c.format != CHECKPOINT_FORMAT {
            return Err(CoreError::Input(format!(
                "{origin}: checkpoint format `{}`, expected `{CHECKPOINT_FORMAT}`",
                c.format
            )));
        }
        Ok(c)
    }

    /// The task and its student.
    pub fn load(&self) -> Result<(Box<dyn Task>, Box<dyn Student>)> {
        let (task, _) = crate::build_task(&self.task, &self.task_params, self.seed)?;
        let student = task.load_student(&self.student)?;
        Ok((task, student))
    }
}

/// A loaded checkpoint as a text model: prompt text in, the student's greedy completion out
/// (the same text `autotune serve-model` answers).
pub struct CheckpointModel {
    pub task: Box<dyn Task>,
    pub student: Box<dyn Student>,
}

impl CheckpointModel {
    pub fn open(path: &Path) -> Result<Self> {
        let (task, student) = Checkpoint::read(path)?.load()?;
        Ok(Self { task, student })
    }

    /// Greedy completions of prompts given as text.
    pub fn complete(&self, texts: &[&str]) -> Result<Vec<String>> {
        let prompts = texts
            .iter()
            .map(|t| {
                Ok(Prompt {
                    id: 0,
                    tokens: self.task.tokenize(t)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self
            .student
            .generate_batch(&prompts)
            .iter()
            .map(|t| self.task.render_trace(t))
            .collect())
    }
}

impl autotune_data::TextGenerator for CheckpointModel {
    fn complete_batch(&self, prompts: &[autotune_data::TextPrompt<'_>]) -> Result<Vec<String>> {
        let texts: Vec<&str> = prompts.iter().map(|p| p.text).collect();
        self.complete(&texts)
    }
}
