//! The neural student's parameters, listed whether or not the student is built in (the
//! `neural` feature): `autotune tasks` shows them, and a task file that asks for
//! `student=neural` without the feature is refused with [`neural_missing`].

use autotune_core::{CoreError, ParamSpec};

/// The neural student's model size and training, as task parameters (`arith`, and the `file`
/// task's neural student): parsed by `neural::TrainingParams::parse` (feature `neural`).
pub const TRAINING_PARAMS: &[ParamSpec] = &[
    ParamSpec { key: "d_model", default: "96", help: "transformer width" },
    ParamSpec { key: "layers", default: "4", help: "transformer layers" },
    ParamSpec { key: "heads", default: "4", help: "attention heads" },
    ParamSpec { key: "lr", default: "0.001", help: "AdamW learning rate" },
    ParamSpec { key: "batch", default: "64", help: "training minibatch" },
    ParamSpec { key: "epochs", default: "4.0", help: "passes over each phase's new demonstrations (minibatches drawn from the whole replay buffer)" },
    ParamSpec { key: "min_steps", default: "20", help: "fewest optimisation steps per fit" },
    ParamSpec { key: "max_steps", default: "2000", help: "most optimisation steps per fit" },
    ParamSpec { key: "schedule", default: "constant", help: "learning rate within a fit: constant, or cosine (linear warm-up, cosine decay to min_lr_ratio x lr at the fit's last step; restarts every phase)" },
    ParamSpec { key: "warmup", default: "0", help: "warm-up steps of each fit (cosine schedule)" },
    ParamSpec { key: "min_lr_ratio", default: "0.1", help: "final learning rate of a fit as a fraction of lr (cosine schedule)" },
    ParamSpec { key: "replay", default: "all", help: "demonstrations a fit trains on: all so far, or the most recent N (at least the fit's new ones; 0 = only the new ones)" },
    ParamSpec { key: "eval_every", default: "0", help: "evaluate on validation prompts every N steps of a fit (0: never; verifier calls, charged)" },
    ParamSpec { key: "val_prompts", default: "256", help: "validation prompts (a split of their own, never the training or test prompts)" },
    ParamSpec { key: "target_accuracy", default: "1.0", help: "early stop: end a fit once validation accuracy reaches this (after min_steps)" },
    ParamSpec { key: "patience", default: "0", help: "early stop: end a fit after this many evaluations without improvement (0: off; after min_steps)" },
];

/// The command that builds autotune with the neural student.
pub const NEURAL_FEATURE: &str = "cargo build --release -p autotune-cli --features neural";

/// The error for `what` (e.g. "task arith") when the crate was built without `neural`.
pub fn neural_missing(what: &str) -> CoreError {
    CoreError::Invalid(format!(
        "{what} needs the neural student, which this build leaves out; build it with `{NEURAL_FEATURE}`"
    ))
}
