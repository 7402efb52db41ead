//! Built-in tasks. Each registers its name, its parameters with defaults, and a constructor;
//! the CLI lists and builds them from [`TASKS`].
//!
//! To add a task: implement [`Task`] (prompt source, teacher, verifier,
//! student), declare its [`ParamSpec`]s and add a [`TaskInfo`] to [`TASKS`].
//!
//! ```
//! use autotune_core::{Params, TaskFactory};
//! use autotune_tasks::BuiltinTasks;
//!
//! let (task, resolved) = BuiltinTasks.build("halfspace-cot", &Params::default(), 0)?;
//! assert!(resolved.raw("window").is_some()); // defaults filled in
//! let prompts = task.prompts("train", 0)?.draw(4)?;
//! let demos = task.teacher().demonstrate_batch(&prompts)?;
//! // The teacher's answers pass the task's verifier.
//! let answers: Vec<&[_]> = demos.iter().map(|t| t.answer()).collect();
//! assert!(task.verifier().verify_batch(&prompts, &answers).iter().all(|&ok| ok));
//! # Ok::<(), autotune_core::CoreError>(())
//! ```

pub mod arith;
pub mod checkpoint;
pub mod file;
pub mod halfspace;
#[cfg(feature = "neural")]
pub mod neural;
pub mod skills;
mod source;
#[cfg(feature = "neural")]
pub mod text_student;
pub mod training;

pub use source::GeneratorSource;
pub use training::{neural_missing, NEURAL_FEATURE};

use autotune_core::{CoreError, ParamSpec, Params, Task, TaskFactory};

/// Builds a task instance for a seed from resolved parameters.
pub type TaskBuilder = fn(&Params, u64) -> Result<Box<dyn Task>, CoreError>;

/// A task's name, summary, parameters and constructor.
pub struct TaskInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    /// Builds the task instance for `seed` from resolved parameters.
    pub build: TaskBuilder,
    /// The task's student is the neural one: without the `neural` feature it is listed and
    /// refused ([`neural_missing`]).
    pub needs_neural: bool,
}

/// Whether this build has the neural student (the `neural` feature).
pub const NEURAL_BUILT: bool = cfg!(feature = "neural");

/// Every built-in task.
pub const TASKS: &[TaskInfo] = &[
    TaskInfo {
        name: "halfspace-cot",
        summary: "Joshi et al.'s autoregressive linear thresholds: each CoT step appends 1[w*.window >= theta*]; ERM halfspace student (d = window + 1)",
        params: halfspace::PARAMS,
        build: halfspace::build,
        needs_neural: false,
    },
    TaskInfo {
        name: "skills",
        summary: "each prompt needs one of n latent skills with heavy-tailed frequencies; a skill's CoT procedure is learned from its demonstrations",
        params: skills::PARAMS,
        build: skills::build,
        needs_neural: false,
    },
    TaskInfo {
        name: "arith",
        summary: "multi-digit +, -, * with digit-by-digit CoTs (carries, partial products), digits from a heavy-tailed law; programmatic teacher, exact verifier, neural student (a small transformer trained in Rust)",
        params: arith::PARAMS,
        build: arith::build,
        needs_neural: true,
    },
    TaskInfo {
        name: "file",
        summary: "your own prompts and answers from a JSONL file (plain, reasoning-gym, TRL or verl records), real verifiers, a file-backed teacher, a memorising student or (`--student neural [--model HF_DIR]`) a transformer trained on the demonstrations' text; `--tasks FILE`",
        params: file::PARAMS,
        build: file::build,
        needs_neural: false,
    },
];

/// The registered names, comma separated.
pub fn task_names() -> String {
    TASKS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
}

/// Looks up a task by name.
pub fn task_info(name: &str) -> Result<&'static TaskInfo, CoreError> {
    TASKS.iter().find(|t| t.name == name).ok_or_else(|| {
        CoreError::Invalid(format!(
            "unknown task `{name}`; valid tasks: {}",
            task_names()
        ))
    })
}

/// Builds task `name` for `seed` from user parameters (checked, defaults filled in).
/// Returns the task and its resolved parameters.
pub fn build_task(
    name: &str,
    params: &Params,
    seed: u64,
) -> Result<(Box<dyn Task>, Params), CoreError> {
    let info = task_info(name)?;
    let resolved = params.resolve(&format!("task `{name}`"), info.params)?;
    let task = (info.build)(&resolved, seed)?;
    Ok((task, resolved))
}

/// The built-in tasks as a [`TaskFactory`], the one the CLI hands to `autotune-experiment`.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinTasks;

impl TaskFactory for BuiltinTasks {
    fn build(
        &self,
        name: &str,
        params: &Params,
        seed: u64,
    ) -> Result<(Box<dyn Task>, Params), CoreError> {
        build_task(name, params, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the `neural` feature, `arith` and `student=neural` are refused with the command
    /// that builds them; with it they build.
    #[test]
    fn the_neural_student_is_refused_by_name_without_its_feature() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/tasks/arith.jsonl"
        );
        let arith = build_task("arith", &Params::default(), 0).map(|_| ());
        let neural = Params::parse(&[format!("path={file}"), "student=neural".into()])
            .and_then(|p| build_task("file", &p, 0))
            .map(|_| ());
        for result in [arith, neural] {
            if NEURAL_BUILT {
                result.unwrap();
            } else {
                let e = result.unwrap_err().to_string();
                assert!(e.contains(NEURAL_FEATURE), "{e}");
            }
        }
    }
}
