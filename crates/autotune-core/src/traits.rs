//! One small trait per role of the spec. Every expensive method takes a batch.

use serde::{Deserialize, Serialize};

use crate::{ApiUsage, Demo, Prompt, Result, Rollout, Token, Trace};

/// The outcome verifier `V(x, y) -> {correct, incorrect}`: checks only final answers.
pub trait Verifier: Send + Sync {
    /// One verdict per `(prompts[i], answers[i])`.
    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool>;

    /// Verdicts, or why the verifier itself failed (an external process that died, hung or
    /// answered nonsense): the run stops with the error instead of counting wrong answers.
    /// In-process verifiers cannot fail: [`Self::verify_batch`].
    fn try_verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Result<Vec<bool>> {
        Ok(self.verify_batch(prompts, answers))
    }

    /// Whether a verdict is a pure function of the prompt and the answer, cheap to compute
    /// again (in-process comparisons of answers): a journaled run then recomputes verdicts on
    /// resume instead of storing each one. `false` by default: a verifier that runs programs,
    /// calls out or may time out has its verdicts journaled.
    fn pure(&self) -> bool {
        false
    }
}

/// The teacher `x -> (CoT, y)`: the expensive supervision, every call counted by the ledger.
pub trait Teacher: Send + Sync {
    /// One demonstration per prompt, in order.
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>>;

    /// Cumulative cost of a remote teacher (requests, cache hits, tokens, money); `None` for
    /// in-process teachers.
    fn api_usage(&self) -> Option<ApiUsage> {
        None
    }

    /// Whether every demonstration is known to pass the task's verifier: built-in teachers
    /// are right by construction, a teacher file is checked when it is read. A model server's
    /// are not (`false`): the curriculum engine verifies each one as it arrives, counts a
    /// failing one as paid and rejected (`Ledger::teacher_rejected`) and does not train on it.
    fn verified(&self) -> bool {
        true
    }
}

/// A CoT generator: the student as a policy (and later the reference policy `pi_ref`).
pub trait Policy: Send + Sync {
    /// Greedy (most likely) chain of thought for each prompt.
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace>;

    /// Chains of thought sampled at `temperature`. `seed` fixes the randomness so that a
    /// parallel implementation stays deterministic (derive one stream per prompt index).
    /// The default ignores the temperature: a deterministic policy samples its greedy answer.
    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        let _ = (temperature, seed);
        self.generate_batch(prompts)
    }

    /// [`Self::generate_batch`], or why the policy itself failed (a model server that kept
    /// failing after its retries): the run stops with the error instead of reading empty
    /// answers as wrong ones. In-process policies cannot fail.
    fn try_generate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        Ok(self.generate_batch(prompts))
    }

    /// [`Self::sample_batch`], or why the policy itself failed (see
    /// [`Self::try_generate_batch`]).
    fn try_sample_batch(
        &self,
        prompts: &[Prompt],
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Trace>> {
        Ok(self.sample_batch(prompts, temperature, seed))
    }

    /// Cumulative cost of a remote policy; `None` for in-process ones.
    fn api_usage(&self) -> Option<ApiUsage> {
        None
    }

    /// `ln pi(trace | prompt)` of each given chain of thought when sampled at `temperature`
    /// (the sum of its steps' log-probabilities), where the policy knows them; `None` (the
    /// default) where it does not. The paper's RLFineTune keeps only samples of `pi_ref` with
    /// probability at least `1/C_seq`, so its reference policy must report them.
    fn log_probs(
        &self,
        prompts: &[Prompt],
        traces: &[Trace],
        temperature: f64,
    ) -> Option<Vec<f64>> {
        let _ = (prompts, traces, temperature);
        None
    }

    /// The policy's sequence-level coverage `C_seq`, where it is known: the right chain of
    /// thought of every prompt has probability at least `1/C_seq` (a reference policy built
    /// with a known coverage, like halfspace-cot's). `None` (the default): unknown.
    fn coverage(&self) -> Option<f64> {
        None
    }
}

/// What a call to [`Student::fit`] did, for the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FitStats {
    /// Optimisation steps (parameter updates).
    pub steps: u64,
    /// Training examples processed (with repetition over epochs).
    pub examples: u64,
    /// Whether the learner reached zero training error (ERM students); true if not applicable.
    pub consistent: bool,
    /// Validation prompts the student generated on and had verified during the fit (students
    /// that evaluate every N steps for early stopping); charged as student generations and
    /// verifier calls.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validation_generations: u64,
}

impl FitStats {
    /// A call that trained nothing (no data).
    pub fn nothing() -> Self {
        Self {
            steps: 0,
            examples: 0,
            consistent: true,
            validation_generations: 0,
        }
    }
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// A student: a learner that is also a policy.
pub trait Student: Policy {
    /// Continues training with `new_demos`. The student keeps (or replays) what it was trained
    /// on before, so that a single model can keep learning across phases; an ensemble member
    /// is a fresh student fitted once on its phase's demonstrations.
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats>;

    /// One policy-gradient update from the student's own rewarded samples (GRPO-style: each
    /// sample's log-likelihood weighted by its advantage), at learning rate `lr`. Students that
    /// cannot learn from rewards refuse.
    fn reinforce(&mut self, rollouts: &[Rollout], lr: f64) -> Result<FitStats> {
        let _ = (rollouts, lr);
        Err(crate::CoreError::Student(
            "this student cannot learn from rewards (policy gradient); use a neural student \
             (e.g. task arith)"
                .into(),
        ))
    }

    /// The trained state as text (a checkpoint that [`Task::load_student`] reads back);
    /// `None` if this student cannot be saved.
    fn save(&self) -> Option<String> {
        None
    }

    /// Whether a journaled run keeps a checkpoint after every fit of this student, so that a
    /// resumed run restores it instead of training again. For students whose training is
    /// expensive; [`Student::save`] and [`Task::load_student`] must then give back the exact
    /// state (weights, optimiser, random streams, replay buffer). Cheap students are trained
    /// again on resume (deterministic under the seed).
    fn journal_checkpoints(&self) -> bool {
        false
    }
}

/// Prompts `x ~ D`: a finite pool or an endless generator.
pub trait PromptSource: Send {
    /// The next `n` prompts. A finite pool returns an error once exhausted.
    fn draw(&mut self, n: usize) -> Result<Vec<Prompt>>;

    /// Passes over the next `n` prompts without using them (the unused rest of a part of a
    /// prompt dataset). The default draws and drops them; an endless generator of i.i.d.
    /// prompts may only advance its ids, since prompts never looked at need not be made.
    fn skip(&mut self, n: usize) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let k = left.min(4096);
            self.draw(k)?;
            left -= k;
        }
        Ok(())
    }
}

/// A task: its prompt distribution, teacher, verifier and student class.
pub trait Task: Send + Sync {
    fn name(&self) -> &str;

    /// The dimension `d` of the student class (a hint for default phase sizes).
    fn dimension(&self) -> usize;

    /// A prompt stream. `split` is `"train"` or `"test"`: the two never share a draw
    /// (independent streams for a generator, disjoint parts for a finite pool).
    fn prompts(&self, split: &str, seed: u64) -> Result<Box<dyn PromptSource>>;

    fn teacher(&self) -> &dyn Teacher;

    fn verifier(&self) -> &dyn Verifier;

    /// The reference policy `pi_ref` that RL strategies rejection-sample from (no teacher),
    /// with the temperature to sample it at; `None` when the task was not given one (e.g.
    /// `halfspace-cot` without `kappa`, `arith` without a `reference` checkpoint).
    fn reference(&self) -> Option<(&dyn Policy, f64)> {
        None
    }

    /// A trainable copy of the reference policy (the policy-gradient trainer starts from it);
    /// `None` when the task has no reference policy or its reference is not a student.
    fn reference_student(&self) -> Option<Result<Box<dyn Student>>> {
        None
    }

    /// A fresh, untrained student of the task's default class.
    fn new_student(&self, seed: u64) -> Box<dyn Student>;

    /// Whether the task's student samples at a temperature (a stochastic policy); a
    /// deterministic student's samples are all its greedy answer, so strategies that rank by
    /// Monte-Carlo samples (the paper's Algorithm 3) refuse it.
    fn student_samples(&self) -> bool {
        false
    }

    /// Which student learns this task, in words, for tables and result files (`None`: the
    /// task's one built-in student, not worth saying).
    fn student_name(&self) -> Option<String> {
        None
    }

    /// Tokens as text, for exports (default: the token numbers, space separated).
    fn render(&self, tokens: &[Token]) -> String {
        tokens
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A chain of thought as the text a trainer learns from (for SFT export).
    fn render_trace(&self, trace: &Trace) -> String {
        self.render(&trace.steps)
    }

    /// A prompt as text, for exports.
    fn describe(&self, prompt: &Prompt) -> PromptText {
        PromptText {
            id: prompt.id.to_string(),
            text: self.render(&prompt.tokens),
            messages: None,
            gold: None,
        }
    }

    /// The whole prompt pool of a finite task (file tasks), for exporting RL prompt sets;
    /// `None` for generators.
    fn pool(&self) -> Option<Vec<Prompt>> {
        None
    }

    /// Text back to tokens, the inverse of [`Task::render`] (for serving a student over
    /// HTTP). The default reads space-separated token numbers.
    fn tokenize(&self, text: &str) -> Result<Vec<Token>> {
        text.split_whitespace()
            .map(|t| {
                t.parse::<Token>().map_err(|_| {
                    crate::CoreError::Input(format!(
                        "`{t}` is not a token of task {}: expected space-separated token numbers",
                        self.name()
                    ))
                })
            })
            .collect()
    }

    /// The slice of the prompt distribution `prompt` belongs to, for held-out error per slice
    /// (e.g. `3 digits` for arithmetic); `None` (the default) reports no slices. Labels that
    /// start with a number sort by it.
    fn slice(&self, prompt: &Prompt) -> Option<String> {
        let _ = prompt;
        None
    }

    /// A student from a checkpoint written by [`Student::save`].
    fn load_student(&self, state: &str) -> Result<Box<dyn Student>> {
        let _ = state;
        Err(crate::CoreError::Invalid(format!(
            "the students of task {} cannot be loaded from a checkpoint",
            self.name()
        )))
    }
}

/// Where the experiment layer gets its tasks: a task by name, for a seed, from the user's
/// parameters. The experiment crate takes one of these instead of knowing the built-in tasks,
/// so a library user can run comparisons on a [`Task`] of their own.
pub trait TaskFactory: Sync {
    /// Builds task `name` for `seed`; returns the task and its parameters resolved (checked,
    /// defaults filled in), as the run's `config.toml` records them.
    fn build(
        &self,
        name: &str,
        params: &crate::Params,
        seed: u64,
    ) -> Result<(Box<dyn Task>, crate::Params)>;
}

/// Any function of the factory's shape is a factory (`|name, params, seed| ...`).
impl<F> TaskFactory for F
where
    F: Fn(&str, &crate::Params, u64) -> Result<(Box<dyn Task>, crate::Params)> + Sync,
{
    fn build(
        &self,
        name: &str,
        params: &crate::Params,
        seed: u64,
    ) -> Result<(Box<dyn Task>, crate::Params)> {
        self(name, params, seed)
    }
}

/// A prompt as a trainer sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptText {
    pub id: String,
    pub text: String,
    /// Chat messages, when the prompt came as a conversation.
    pub messages: Option<Vec<(String, String)>>,
    /// The reference answer, where the task knows it without asking the teacher.
    pub gold: Option<String>,
}
