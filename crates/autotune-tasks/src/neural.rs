//! The neural student: a small decoder-only transformer (`autotune-neural`) as an AutoTune
//! [`Student`]. `fit` adds the new demonstrations to a replay buffer and trains on minibatches
//! drawn from all of it (continued training across phases); generation is batched and greedy
//! (or sampled at a temperature) with a KV cache, on an inference copy of the weights that is
//! refreshed after every fit.
//!
//! [`Student::save`] writes the complete state (weights, AdamW moments and step counts, the
//! step, the sampler's position, the replay buffer and the configurations, checksummed) and
//! [`NeuralStudent::load`] rebuilds it: a loaded student continues training bit for bit as the
//! saved one would have. The student journals its checkpoints, so a resumed run restores it
//! after each fit instead of training again.

use std::sync::Mutex;

use autotune_core::{
    CoreError, Demo, FitStats, Params, Policy, Prompt, Result, Student, Token, Trace,
};
use autotune_neural::{
    Example, GenerateOptions, NeuralModel, Sampling, Trainer, TrainerConfig, TrainerState,
    TransformerConfig,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `format` tag of a saved [`NeuralStudent`] ([`Student::save`]).
pub const STUDENT_STATE_FORMAT: &str = "autotune-neural-student";
/// The version of that layout; [`NeuralStudent::load`] refuses any other.
pub const STUDENT_STATE_VERSION: u32 = 1;

/// How a [`NeuralStudent`] trains and generates.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuralStudentConfig {
    pub model: TransformerConfig,
    pub trainer: TrainerConfig,
    /// Passes over the new demonstrations per fit, counted in minibatches of the replay buffer.
    pub epochs: f64,
    /// Fewest and most optimisation steps of one fit.
    pub min_steps: usize,
    pub max_steps: usize,
    /// End of generation; the answer is what follows `answer_marker`.
    pub eos: Token,
    pub answer_marker: Token,
    pub max_new_tokens: usize,
    /// The learning rate within a fit.
    pub schedule: FitSchedule,
    /// Which demonstrations a fit trains on: all so far (`None`), or the most recent `n` (and
    /// at least the fit's new ones).
    pub replay: Option<usize>,
    /// Evaluate on the validation prompts every this many steps of a fit (0: never), and stop
    /// the fit early when the validation accuracy reaches `target_accuracy` or has not improved
    /// for `patience` evaluations (0: no patience stop). A fit never stops before `min_steps`.
    pub eval_every: usize,
    pub patience: usize,
    pub target_accuracy: f64,
    pub validation: Validation,
}

pub use crate::training::TRAINING_PARAMS;

/// The values of [`TRAINING_PARAMS`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingParams {
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    pub lr: f64,
    pub batch: usize,
    pub epochs: f64,
    pub min_steps: usize,
    pub max_steps: usize,
    pub schedule: FitSchedule,
    pub replay: Option<usize>,
    pub eval_every: usize,
    pub val_prompts: usize,
    pub patience: usize,
    pub target_accuracy: f64,
}

impl TrainingParams {
    /// Reads and checks [`TRAINING_PARAMS`] from resolved parameters.
    pub fn parse(p: &Params) -> Result<Self> {
        let int = |k: &str, lo: usize, hi: usize| -> Result<usize> {
            p.get_checked(k, &format!("an integer in {lo}..={hi}"), move |x: usize| {
                (lo..=hi).contains(&x)
            })
        };
        let d_model = int("d_model", 8, 1024)?;
        let layers = int("layers", 1, 24)?;
        let heads = int("heads", 1, 32)?;
        if d_model % heads != 0 {
            return Err(CoreError::BadParam {
                key: "heads".into(),
                value: heads.to_string(),
                expected: format!("a divisor of d_model = {d_model}"),
            });
        }
        let lr: f64 = p.get_checked("lr", "a number in (0, 1]", |x: f64| x > 0.0 && x <= 1.0)?;
        let batch = int("batch", 1, 4096)?;
        let epochs: f64 = p.get_checked("epochs", "a number in (0, 1000]", |x: f64| {
            x > 0.0 && x <= 1000.0
        })?;
        let min_steps = int("min_steps", 0, 1_000_000)?;
        let max_steps = int("max_steps", 1, 1_000_000)?;
        let warmup = int("warmup", 0, 1_000_000)?;
        let min_lr_ratio: f64 = p.get_checked("min_lr_ratio", "a number in [0, 1]", |x: f64| {
            (0.0..=1.0).contains(&x)
        })?;
        let schedule = match p.raw("schedule").unwrap_or("constant") {
            "constant" => FitSchedule::Constant,
            "cosine" => FitSchedule::Cosine {
                warmup,
                min_ratio: min_lr_ratio,
            },
            other => {
                return Err(CoreError::BadParam {
                    key: "schedule".into(),
                    value: other.into(),
                    expected: "constant or cosine".into(),
                })
            }
        };
        let replay = match p.raw("replay").unwrap_or("all") {
            "all" => None,
            _ => Some(p.get_checked(
                "replay",
                "all or a number of demonstrations",
                |_: usize| true,
            )?),
        };
        let eval_every = int("eval_every", 0, 1_000_000)?;
        let val_prompts = int("val_prompts", 1, 100_000)?;
        let patience = int("patience", 0, 1_000_000)?;
        let target_accuracy: f64 =
            p.get_checked("target_accuracy", "a number in (0, 1]", |x: f64| {
                x > 0.0 && x <= 1.0
            })?;
        Ok(Self {
            d_model,
            layers,
            heads,
            lr,
            batch,
            epochs,
            min_steps,
            max_steps,
            schedule,
            replay,
            eval_every,
            val_prompts,
            patience,
            target_accuracy,
        })
    }

    /// A GPT-family model of this size (feed-forward 4 x width) over `vocab` tokens and
    /// `max_len` positions.
    pub fn model(&self, vocab: usize, max_len: usize) -> TransformerConfig {
        TransformerConfig {
            d_model: self.d_model,
            n_layers: self.layers,
            n_heads: self.heads,
            d_ff: 4 * self.d_model,
            ..TransformerConfig::small(vocab, max_len)
        }
    }

    /// The student configuration for `model`, with its padding token, its end token and
    /// answer marker, and its longest generation.
    pub fn student(
        &self,
        model: TransformerConfig,
        seed: u64,
        pad: Token,
        (eos, answer_marker): (Token, Token),
        max_new_tokens: usize,
    ) -> NeuralStudentConfig {
        NeuralStudentConfig {
            model,
            trainer: TrainerConfig {
                lr: self.lr,
                batch_size: self.batch,
                seed,
                pad_token: pad,
                ..Default::default()
            },
            epochs: self.epochs,
            min_steps: self.min_steps,
            max_steps: self.max_steps,
            eos,
            answer_marker,
            max_new_tokens,
            schedule: self.schedule,
            replay: self.replay,
            eval_every: self.eval_every,
            patience: self.patience,
            target_accuracy: self.target_accuracy,
            validation: Validation::default(),
        }
    }
}

/// The learning rate within one fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FitSchedule {
    /// The trainer's schedule over its global step (constant unless configured otherwise).
    #[default]
    Constant,
    /// Each fit warms up linearly over `warmup` steps, then decays by a cosine to
    /// `min_ratio * lr` at its last planned step (warm restarts at every phase).
    Cosine { warmup: usize, min_ratio: f64 },
}

impl FitSchedule {
    /// The learning rate at step `i` of a fit of `steps` steps, for base rate `lr`.
    pub fn lr(&self, lr: f64, i: usize, steps: usize) -> f64 {
        match *self {
            FitSchedule::Constant => lr,
            FitSchedule::Cosine { warmup, min_ratio } => autotune_neural::LrSchedule::Cosine {
                warmup_steps: warmup as u64,
                total_steps: steps as u64,
                min_ratio,
            }
            .lr(lr, i as u64),
        }
    }
}

/// The verifier's judgement of answers, as a plain function.
pub type VerifyFn = fn(&[Prompt], &[&[Token]]) -> Vec<bool>;

/// Prompts a student evaluates itself on during fits (drawn from the task's own validation
/// split, never the training or test split) and the verifier that judges its answers.
#[derive(Clone, Debug, Default)]
pub struct Validation {
    pub prompts: Vec<Prompt>,
    pub verify: Option<VerifyFn>,
}

/// Same prompts, and a verifier on both sides or on neither (function pointers have no
/// meaningful equality).
impl PartialEq for Validation {
    fn eq(&self, other: &Self) -> bool {
        self.prompts == other.prompts && self.verify.is_some() == other.verify.is_some()
    }
}

/// A trainable transformer student.
pub struct NeuralStudent {
    cfg: NeuralStudentConfig,
    trainer: Trainer,
    replay: Vec<Example>,
    inference: Mutex<NeuralModel>,
    /// The loss of every step of the last fit (not part of the saved state).
    last_losses: Vec<f32>,
}

impl NeuralStudent {
    /// Greedy exact-answer accuracy of `model` on the validation prompts.
    fn validation_accuracy(&self, model: &NeuralModel) -> f64 {
        let v = &self.cfg.validation;
        let Some(verify) = v.verify else { return 0.0 };
        let traces = self.traces_with(model, &v.prompts, Sampling::Greedy);
        let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
        let ok = verify(&v.prompts, &answers);
        ok.iter().filter(|x| **x).count() as f64 / ok.len().max(1) as f64
    }

    pub fn new(cfg: NeuralStudentConfig) -> Result<Self> {
        let trainer = Trainer::new(cfg.model.clone(), cfg.trainer.clone())
            .map_err(|e| CoreError::Student(e.to_string()))?;
        Ok(Self::with_trainer(cfg, trainer))
    }

    /// A student of `trainer` with an empty replay buffer.
    fn with_trainer(cfg: NeuralStudentConfig, trainer: Trainer) -> Self {
        let inference = Mutex::new(trainer.inference_model());
        Self {
            cfg,
            trainer,
            replay: Vec::new(),
            inference,
            last_losses: Vec::new(),
        }
    }

    /// A student that starts from `model`'s weights (a loaded checkpoint) with a fresh
    /// optimiser; `cfg.model` must be the model's configuration, but for a shorter `max_len`.
    pub fn from_model(mut cfg: NeuralStudentConfig, model: &NeuralModel) -> Result<Self> {
        let max_len = cfg.model.max_len.min(model.config().max_len);
        cfg.model = model.config().clone();
        let trainer = Trainer::from_model(model, cfg.trainer.clone())
            .map_err(|e| CoreError::Student(e.to_string()))?;
        // The context used: generation and training are cut to it.
        cfg.model.max_len = max_len;
        Ok(Self::with_trainer(cfg, trainer))
    }

    fn traces(&self, prompts: &[Prompt], sampling: Sampling) -> Vec<Trace> {
        let model = self.inference.lock().unwrap_or_else(|e| e.into_inner());
        self.traces_with(&model, prompts, sampling)
    }

    fn traces_with(
        &self,
        model: &NeuralModel,
        prompts: &[Prompt],
        sampling: Sampling,
    ) -> Vec<Trace> {
        let inputs: Vec<Vec<u32>> = prompts.iter().map(|p| p.tokens.clone()).collect();
        let opts = GenerateOptions {
            max_new_tokens: self.cfg.max_new_tokens,
            eos: Some(self.cfg.eos),
            batch_size: 64,
            sampling,
        };
        let outs = model
            .generate(&inputs, &opts)
            .unwrap_or_else(|_| vec![Vec::new(); prompts.len()]);
        outs.into_iter()
            .map(|mut steps| {
                // The answer: after the last marker, with the end token (as the teacher writes
                // it); no marker, no answer.
                let answer_len = match steps.iter().rposition(|&t| t == self.cfg.answer_marker) {
                    Some(i) => {
                        steps.push(self.cfg.eos);
                        steps.len() - i - 1
                    }
                    None => 0,
                };
                Trace::new(steps, answer_len)
            })
            .collect()
    }
}

/// The student's own settings in a saved state (the model and trainer configurations are in
/// the trainer's state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Settings {
    epochs: f64,
    min_steps: usize,
    max_steps: usize,
    eos: Token,
    answer_marker: Token,
    max_new_tokens: usize,
    #[serde(default)]
    schedule: FitSchedule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replay: Option<usize>,
    #[serde(default)]
    eval_every: usize,
    #[serde(default)]
    patience: usize,
    #[serde(default = "one")]
    target_accuracy: f64,
    #[serde(default)]
    validation_prompts: usize,
}

fn one() -> f64 {
    1.0
}

impl Settings {
    fn of(c: &NeuralStudentConfig) -> Self {
        Self {
            epochs: c.epochs,
            min_steps: c.min_steps,
            max_steps: c.max_steps,
            eos: c.eos,
            answer_marker: c.answer_marker,
            max_new_tokens: c.max_new_tokens,
            schedule: c.schedule,
            replay: c.replay,
            eval_every: c.eval_every,
            patience: c.patience,
            target_accuracy: c.target_accuracy,
            validation_prompts: c.validation.prompts.len(),
        }
    }
}

/// One example of the replay buffer: its tokens, learned from token `learn_from` on (the
/// prompt before it is not), or, for any other loss mask, the mask as `0`/`1` characters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Replayed {
    tokens: Vec<Token>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    learn_from: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mask: Option<String>,
}

impl Replayed {
    fn of(e: &Example) -> Self {
        let k = e.loss_mask.iter().take_while(|m| !**m).count();
        let (learn_from, mask) = if e.loss_mask[k..].iter().all(|m| *m) {
            (Some(k), None)
        } else {
            let m = e.loss_mask.iter().map(|&m| if m { '1' } else { '0' });
            (None, Some(m.collect()))
        };
        Self {
            tokens: e.tokens.clone(),
            learn_from,
            mask,
        }
    }

    fn example(&self, i: usize, model: &TransformerConfig) -> std::result::Result<Example, String> {
        let n = self.tokens.len();
        let loss_mask = match (self.learn_from, &self.mask) {
            (Some(k), None) if k <= n => (0..n).map(|j| j >= k).collect(),
            (None, Some(m)) if m.len() == n && m.chars().all(|c| c == '0' || c == '1') => {
                m.chars().map(|c| c == '1').collect()
            }
            _ => {
                return Err(format!(
                    "replay example {i}: needs either `learn_from` (at most its {n} tokens) or a \
                     `mask` of {n} characters 0 or 1"
                ))
            }
        };
        if n > model.max_len {
            return Err(format!(
                "replay example {i}: {n} tokens, longer than the model's max_len {}",
                model.max_len
            ));
        }
        if let Some(t) = self.tokens.iter().find(|&&t| t as usize >= model.vocab) {
            return Err(format!(
                "replay example {i}: token {t} is outside the vocabulary 0..{}",
                model.vocab
            ));
        }
        Ok(Example {
            tokens: self.tokens.clone(),
            loss_mask,
        })
    }
}

/// A saved [`NeuralStudent`]: everything it is, so that a loaded one continues exactly.
#[derive(Serialize, Deserialize)]
struct StudentState {
    format: String,
    format_version: u32,
    /// SHA-256 (hex) of this state written as JSON with `sha256` empty: a changed, truncated
    /// or damaged checkpoint is refused instead of training on wrong numbers.
    sha256: String,
    settings: Settings,
    trainer: TrainerState,
    replay: Vec<Replayed>,
}

/// What is read first, so that another format or version is named as such.
#[derive(Deserialize)]
struct Header {
    format: String,
    format_version: u32,
}

fn digest(state: &StudentState) -> String {
    let text = serde_json::to_string(state).expect("a student state serialises");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn model_summary(m: &TransformerConfig) -> String {
    format!(
        "d_model {}, {} layers, {} heads, d_ff {}, vocab {}, max_len {}, dropout {}",
        m.d_model, m.n_layers, m.n_heads, m.d_ff, m.vocab, m.max_len, m.dropout
    )
}

/// A trainer from its state, over `base` when the state holds LoRA adapters only.
fn restore(
    state: &autotune_neural::TrainerState,
    base: Option<&NeuralModel>,
) -> autotune_neural::Result<Trainer> {
    match base {
        Some(base) => Trainer::from_state_on(state, base),
        None => Trainer::from_state(state),
    }
}

impl NeuralStudent {
    /// The complete state as JSON (see [`NeuralStudent::load`]): the trainer's state (weights,
    /// AdamW moments and step counts, step, sampler position, model and trainer configs), the
    /// replay buffer and the student's settings, with a format tag, a version and a checksum.
    pub fn state_text(&self) -> Result<String> {
        let mut state = StudentState {
            format: STUDENT_STATE_FORMAT.into(),
            format_version: STUDENT_STATE_VERSION,
            sha256: String::new(),
            settings: Settings::of(&self.cfg),
            trainer: self
                .trainer
                .state()
                .map_err(|e| CoreError::Student(e.to_string()))?,
            replay: self.replay.iter().map(Replayed::of).collect(),
        };
        state.sha256 = digest(&state);
        serde_json::to_string(&state).map_err(|e| CoreError::Student(e.to_string()))
    }

    /// The student `text` (from [`NeuralStudent::state_text`]) describes, which must be a
    /// student of `expected` (the task's configuration; its seed may differ). Text that is not
    /// such a state, another format version, a failed checksum, or another model or training
    /// configuration give an error that says which.
    pub fn load(expected: &NeuralStudentConfig, text: &str) -> Result<Self> {
        Self::load_on(expected, text, None)
    }

    /// [`NeuralStudent::load`] of a student that trained LoRA adapters on `base` (a loaded
    /// checkpoint): its state holds the adapters only, loaded over `base`'s weights.
    pub fn load_on(
        expected: &NeuralStudentConfig,
        text: &str,
        base: Option<&NeuralModel>,
    ) -> Result<Self> {
        let bad = |m: String| CoreError::Input(format!("neural-student checkpoint: {m}"));
        let state = Self::checked_state(expected, text)?;
        let model = &state.trainer.model;
        let mut trainer_cfg = expected.trainer.clone();
        trainer_cfg.seed = state.trainer.trainer.seed;
        if state.trainer.trainer != trainer_cfg {
            return Err(bad(format!(
                "its training configuration {:?} does not match the task's parameters {:?}",
                state.trainer.trainer, trainer_cfg
            )));
        }
        if state.settings != Settings::of(expected) {
            return Err(bad(format!(
                "its student settings {:?} do not match the task's parameters {:?}",
                state.settings,
                Settings::of(expected)
            )));
        }
        let replay = state
            .replay
            .iter()
            .enumerate()
            .map(|(i, r)| r.example(i, model))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(bad)?;
        let trainer = restore(&state.trainer, base).map_err(|e| bad(e.to_string()))?;
        let mut cfg = expected.clone();
        cfg.trainer.seed = state.trainer.trainer.seed;
        let inference = Mutex::new(trainer.inference_model());
        Ok(Self {
            cfg,
            trainer,
            replay,
            inference,
            last_losses: Vec::new(),
        })
    }

    /// A student with the weights of the checkpoint `text` and everything else from
    /// `expected` (the task's training configuration, a fresh optimiser, an empty replay
    /// buffer): a reference policy, or the start of reinforcement learning from an SFT
    /// checkpoint. The model configuration must match.
    pub fn from_weights(expected: &NeuralStudentConfig, text: &str) -> Result<Self> {
        let bad = |m: String| CoreError::Input(format!("neural-student checkpoint: {m}"));
        let state = Self::checked_state(expected, text)?;
        let saved = Trainer::from_state(&state.trainer).map_err(|e| bad(e.to_string()))?;
        let trainer = Trainer::from_model(&saved.inference_model(), expected.trainer.clone())
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self::with_trainer(expected.clone(), trainer))
    }

    /// The model of a saved student (`run --save-model`), whatever its task: for export
    /// (`autotune export-hf`). The format, version and checksum are checked.
    /// `base`: the checkpoint a LoRA student's adapters were trained on.
    pub fn saved_model(text: &str, base: Option<&NeuralModel>) -> Result<NeuralModel> {
        Ok(Self::saved_trainer(text, base)?.inference_model())
    }

    /// The trainer of a saved student (weights, LoRA adapters, optimiser state), whatever its
    /// task: for exporting its adapters (`autotune export-hf --adapter`). `base`: the
    /// checkpoint a LoRA student's adapters were trained on.
    pub fn saved_trainer(text: &str, base: Option<&NeuralModel>) -> Result<Trainer> {
        let state = Self::parsed_state(text)?;
        restore(&state.trainer, base)
            .map_err(|e| CoreError::Input(format!("neural-student checkpoint: {e}")))
    }

    /// Whether the saved student `text` holds LoRA adapters only, to be loaded over the
    /// checkpoint they were trained on.
    pub fn saved_needs_base(text: &str) -> Result<bool> {
        Ok(Self::parsed_state(text)?.trainer.base_sha256.is_some())
    }

    /// The student's trainer.
    pub fn trainer(&self) -> &Trainer {
        &self.trainer
    }

    /// The saved state in `text` after the checks every load makes: format, version,
    /// checksum, and the model configuration of `expected`.
    fn checked_state(expected: &NeuralStudentConfig, text: &str) -> Result<StudentState> {
        let bad = |m: String| CoreError::Input(format!("neural-student checkpoint: {m}"));
        let state = Self::parsed_state(text)?;
        let model = &state.trainer.model;
        // A student started from a checkpoint trains the checkpoint's model, all its positions,
        // and uses the task's shorter context (`NeuralStudent::from_model`).
        let cut = TransformerConfig {
            max_len: model.max_len.min(expected.model.max_len),
            ..model.clone()
        };
        if cut != expected.model {
            return Err(bad(format!(
                "its model ({}) does not match the task's parameters ({})",
                model_summary(model),
                model_summary(&expected.model)
            )));
        }
        Ok(state)
    }

    /// The saved state in `text`, its format, version and checksum checked.
    fn parsed_state(text: &str) -> Result<StudentState> {
        let bad = |m: String| CoreError::Input(format!("neural-student checkpoint: {m}"));
        let header: Header = serde_json::from_str(text)
            .map_err(|e| bad(format!("not a saved neural student ({e})")))?;
        if header.format != STUDENT_STATE_FORMAT {
            return Err(bad(format!(
                "format `{}`, expected `{STUDENT_STATE_FORMAT}`",
                header.format
            )));
        }
        if header.format_version != STUDENT_STATE_VERSION {
            return Err(bad(format!(
                "format version {} is not supported (this build reads version {STUDENT_STATE_VERSION})",
                header.format_version
            )));
        }
        let mut state: StudentState = serde_json::from_str(text)
            .map_err(|e| bad(format!("not a saved neural student ({e})")))?;
        let recorded = std::mem::take(&mut state.sha256);
        if digest(&state) != recorded {
            return Err(bad(
                "the checksum does not match the content: the checkpoint was changed or damaged"
                    .into(),
            ));
        }
        Ok(state)
    }

    /// Where two saved students (texts of [`NeuralStudent::state_text`]) differ other than in
    /// their parameter ids (drawn afresh by every process): `None` if they are the same student
    /// bit for bit (settings, replay buffer, weights, optimiser state, step, sampler).
    pub fn state_difference(a: &str, b: &str) -> Result<Option<String>> {
        let parse = |t: &str| {
            serde_json::from_str::<StudentState>(t)
                .map_err(|e| CoreError::Input(format!("not a saved neural student ({e})")))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a.format_version != b.format_version {
            return Ok(Some("format versions differ".into()));
        }
        if a.settings != b.settings {
            return Ok(Some(format!(
                "settings {:?} vs {:?}",
                a.settings, b.settings
            )));
        }
        if a.replay != b.replay {
            return Ok(Some(format!(
                "replay buffers differ ({} and {} examples)",
                a.replay.len(),
                b.replay.len()
            )));
        }
        a.trainer
            .difference(&b.trainer)
            .map_err(|e| CoreError::Input(e.to_string()))
    }

    /// Optimisation steps taken so far.
    pub fn steps(&self) -> u64 {
        self.trainer.steps()
    }

    /// The loss of every step of the last fit (empty before the first fit after a load).
    pub fn last_losses(&self) -> &[f32] {
        &self.last_losses
    }
}

impl Policy for NeuralStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        self.traces(prompts, Sampling::Greedy)
    }

    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        self.traces(prompts, Sampling::Temperature { temperature, seed })
    }

    /// The model's own sequence log-probabilities at `temperature` (one forward pass per
    /// trace), so that a neural reference policy can serve the paper's RLFineTune. `None` at
    /// temperature 0 and for traces the model cannot score (longer than its context).
    fn log_probs(
        &self,
        prompts: &[Prompt],
        traces: &[Trace],
        temperature: f64,
    ) -> Option<Vec<f64>> {
        let model = self.inference.lock().unwrap_or_else(|e| e.into_inner());
        let inputs: Vec<Vec<u32>> = prompts.iter().map(|p| p.tokens.clone()).collect();
        let steps: Vec<Vec<u32>> = traces.iter().map(|t| t.steps.clone()).collect();
        model.sequence_log_probs(&inputs, &steps, temperature).ok()
    }
}

impl Student for NeuralStudent {
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        if new_demos.is_empty() {
            return Ok(FitStats::nothing());
        }
        for d in new_demos {
            self.replay
                .push(Example::new(&d.prompt.tokens, &d.trace.steps));
        }
        let batch = self.cfg.trainer.batch_size.max(1);
        let steps = ((self.cfg.epochs * new_demos.len() as f64) / batch as f64).ceil() as usize;
        let steps = steps.clamp(
            self.cfg.min_steps,
            self.cfg.max_steps.max(self.cfg.min_steps),
        );
        let keep = match self.cfg.replay {
            None => self.replay.len(),
            Some(n) => n.max(new_demos.len()).min(self.replay.len()),
        };
        let data = &self.replay[self.replay.len() - keep..];
        let (mut done, mut validated) = (0usize, 0u64);
        let (mut best, mut stale) = (f64::NEG_INFINITY, 0usize);
        let (mut since_report, mut loss_sum) = (0usize, 0f64);
        let report_every = (steps / 50).max(1);
        let show = autotune_core::progress::enabled();
        let label = if show {
            autotune_core::progress::label()
        } else {
            String::new()
        };
        self.last_losses.clear();
        let student_err = |e: autotune_neural::NeuralError| CoreError::Student(e.to_string());
        while done < steps {
            let b = self.trainer.sample_batch(data);
            let base = self.trainer.config().lr;
            let lr = match self.cfg.schedule {
                // The trainer's own schedule over its global step.
                FitSchedule::Constant => self
                    .trainer
                    .config()
                    .schedule
                    .lr(base, self.trainer.steps()),
                s => s.lr(base, done, steps),
            };
            let loss = self.trainer.train_step_at(&b, lr).map_err(student_err)?;
            self.last_losses.push(loss);
            done += 1;
            since_report += 1;
            loss_sum += f64::from(loss);
            let mut accuracy = None;
            let validate = self.cfg.eval_every > 0
                && done % self.cfg.eval_every == 0
                && done < steps
                && !self.cfg.validation.prompts.is_empty()
                && self.cfg.validation.verify.is_some();
            if validate {
                let model = self.trainer.inference_model();
                let acc = self.validation_accuracy(&model);
                validated += self.cfg.validation.prompts.len() as u64;
                accuracy = Some(acc);
                if acc > best + 1e-12 {
                    (best, stale) = (acc, 0);
                } else {
                    stale += 1;
                }
            }
            if show && (done % report_every == 0 || accuracy.is_some() || done == steps) {
                autotune_core::progress::report(&autotune_core::progress::FitProgress {
                    label: label.clone(),
                    step: done,
                    steps,
                    loss: loss_sum / since_report as f64,
                    lr,
                    validation_accuracy: accuracy,
                });
                (since_report, loss_sum) = (0, 0.0);
            }
            if let Some(acc) = accuracy {
                let patience_out = self.cfg.patience > 0 && stale >= self.cfg.patience;
                if done >= self.cfg.min_steps && (acc >= self.cfg.target_accuracy || patience_out) {
                    break;
                }
            }
        }
        *self.inference.lock().unwrap_or_else(|e| e.into_inner()) = self.trainer.inference_model();
        Ok(FitStats {
            steps: done as u64,
            examples: (done * batch) as u64,
            consistent: true,
            validation_generations: validated,
        })
    }

    /// One policy-gradient step on the rollouts (prompt, sampled CoT, advantage): the
    /// trainer's [`Trainer::policy_gradient_step_at`]. The rollouts do not enter the replay
    /// buffer.
    fn reinforce(&mut self, rollouts: &[autotune_core::Rollout], lr: f64) -> Result<FitStats> {
        if rollouts.is_empty() {
            return Ok(FitStats::nothing());
        }
        // A sample without tokens has nothing to weigh.
        let kept: Vec<&autotune_core::Rollout> = rollouts
            .iter()
            .filter(|r| !r.trace.steps.is_empty())
            .collect();
        if kept.is_empty() {
            return Ok(FitStats::nothing());
        }
        // A generation that ran to `max_new_tokens` and got the end token appended can be one
        // token longer than the model's context: its last token is not learned from.
        let max_len = self.cfg.model.max_len;
        let batch: Vec<Example> = kept
            .iter()
            .map(|r| {
                let mut e = Example::new(&r.prompt.tokens, &r.trace.steps);
                e.tokens.truncate(max_len);
                e.loss_mask.truncate(max_len);
                e
            })
            .collect();
        let advantages: Vec<f32> = kept.iter().map(|r| r.advantage as f32).collect();
        let loss = self
            .trainer
            .policy_gradient_step_at(&batch, &advantages, lr)
            .map_err(|e| CoreError::Student(e.to_string()))?;
        self.last_losses = vec![loss];
        *self.inference.lock().unwrap_or_else(|e| e.into_inner()) = self.trainer.inference_model();
        Ok(FitStats {
            steps: 1,
            examples: kept.len() as u64,
            consistent: true,
            validation_generations: 0,
        })
    }

    fn save(&self) -> Option<String> {
        self.state_text().ok()
    }

    /// Training is the expensive part of a run with this student: a resumed run restores it
    /// from the checkpoint after each fit.
    fn journal_checkpoints(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith;
    use autotune_core::{Params, Task};

    /// A tiny arith task: one- and two-digit problems, width 16, one layer, 6 steps per fit.
    fn task_with(extra: &[&str]) -> Box<dyn Task> {
        let mut p = arith::TINY.to_vec();
        p.extend_from_slice(&["batch=8", "min_steps=6", "max_steps=6", "lr=0.003"]);
        p.extend_from_slice(extra);
        let params = Params::parse(&p)
            .unwrap()
            .resolve("arith", arith::PARAMS)
            .unwrap();
        arith::build(&params, 1).unwrap()
    }

    fn demos(task: &dyn Task, seed: u64, n: usize) -> Vec<Demo> {
        let prompts = task.prompts("train", seed).unwrap().draw(n).unwrap();
        let traces = task.teacher().demonstrate_batch(&prompts).unwrap();
        prompts
            .into_iter()
            .zip(traces)
            .map(|(prompt, trace)| Demo { prompt, trace })
            .collect()
    }

    /// Saves `s` and loads it into a new student of `task`.
    fn reload(task: &dyn Task, s: &dyn Student) -> Box<dyn Student> {
        task.load_student(&s.save().expect("a neural student saves"))
            .expect("its own state loads")
    }

    /// Two saved students that are the same but for their parameter ids.
    fn same_but_ids(a: &str, b: &str) {
        assert_eq!(NeuralStudent::state_difference(a, b).unwrap(), None);
        assert!(a != b, "other parameter ids");
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The neural student reports its sequence log-probabilities (a neural `pi_ref` can serve
    /// RLFineTune): the teacher's demonstrations become likelier after training on them.
    #[test]
    fn the_student_reports_log_probs_and_learning_raises_them() {
        let task = task_with(&[]);
        let train = demos(task.as_ref(), 1, 40);
        let prompts: Vec<Prompt> = train.iter().map(|d| d.prompt.clone()).collect();
        let traces: Vec<Trace> = train.iter().map(|d| d.trace.clone()).collect();
        let mut s = task.new_student(3);
        let before = s
            .log_probs(&prompts, &traces, 1.0)
            .expect("neural log-probs");
        assert!(
            before.iter().all(|l| l.is_finite() && *l < 0.0),
            "{before:?}"
        );
        s.fit(&train).unwrap();
        let after = s.log_probs(&prompts, &traces, 1.0).unwrap();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&after) > mean(&before),
            "{} -> {}",
            mean(&before),
            mean(&after)
        );
        assert!(s.log_probs(&prompts, &traces, 0.0).is_none());
    }

    #[test]
    fn a_reloaded_student_trains_and_generates_bit_for_bit() {
        let task = task_with(&[]);
        let first = demos(task.as_ref(), 1, 40);
        let second = demos(task.as_ref(), 2, 24);
        let test = task.prompts("test", 1).unwrap().draw(30).unwrap();
        let cfg = {
            let mut c = task_student_config(task.as_ref());
            c.trainer.seed = 7;
            c
        };
        let mut a = NeuralStudent::new(cfg.clone()).unwrap();
        let mut never_saved = NeuralStudent::new(cfg.clone()).unwrap();
        a.fit(&first).unwrap();
        never_saved.fit(&first).unwrap();
        assert_eq!(bits(a.last_losses()), bits(never_saved.last_losses()));
        let saved = a.state_text().unwrap();
        let mut b = NeuralStudent::load(&cfg, &saved).unwrap();
        assert_eq!(b.steps(), 6);
        // The same answers (so the same accuracy), greedy and sampled.
        assert_eq!(a.generate_batch(&test), b.generate_batch(&test));
        assert_eq!(a.sample_batch(&test, 1.0, 5), b.sample_batch(&test, 1.0, 5));
        // The same state, down to the text.
        assert!(b.state_text().unwrap() == saved, "the states differ");
        // Trained on: the same losses, weights, optimiser, sampler and replay, bit for bit,
        // and the same as a student that was never saved.
        for round in [&second, &first] {
            let (sa, sb, sc) = (
                a.fit(round).unwrap(),
                b.fit(round).unwrap(),
                never_saved.fit(round).unwrap(),
            );
            assert_eq!(sa, sb);
            assert_eq!(sa, sc);
            assert_eq!(bits(a.last_losses()), bits(b.last_losses()));
            assert_eq!(bits(a.last_losses()), bits(never_saved.last_losses()));
            let text = a.state_text().unwrap();
            assert!(text == b.state_text().unwrap(), "the states differ");
            // The never-saved student has other parameter ids, and nothing else different.
            same_but_ids(&text, &never_saved.state_text().unwrap());
            assert_eq!(a.generate_batch(&test), b.generate_batch(&test));
        }
        assert_eq!(b.steps(), 18);
        // Through the task, as a resumed run and serve-model load it.
        let via_task = reload(task.as_ref(), &a);
        assert_eq!(via_task.generate_batch(&test), a.generate_batch(&test));
        assert!(via_task.save().unwrap() == a.state_text().unwrap());
    }

    fn task_student_config(task: &dyn Task) -> NeuralStudentConfig {
        // The task's configuration, read back from a fresh student's state.
        let s = task.new_student(0).save().unwrap();
        let st: StudentState = serde_json::from_str(&s).unwrap();
        NeuralStudentConfig {
            model: st.trainer.model,
            trainer: st.trainer.trainer,
            epochs: st.settings.epochs,
            min_steps: st.settings.min_steps,
            max_steps: st.settings.max_steps,
            eos: st.settings.eos,
            answer_marker: st.settings.answer_marker,
            max_new_tokens: st.settings.max_new_tokens,
            schedule: st.settings.schedule,
            replay: st.settings.replay,
            eval_every: st.settings.eval_every,
            patience: st.settings.patience,
            target_accuracy: st.settings.target_accuracy,
            validation: Validation::default(),
        }
    }

    fn refused(task: &dyn Task, text: &str) -> String {
        match task.load_student(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a bad state loaded"),
        }
    }

    #[test]
    fn corrupt_or_mismatched_states_are_clear_errors() {
        let task = task_with(&[]);
        let mut s = task.new_student(3);
        s.fit(&demos(task.as_ref(), 1, 20)).unwrap();
        let good = s.save().unwrap();
        // Another seed of the same task is fine.
        task_with(&[]).load_student(&good).unwrap();
        // Truncated anywhere: not JSON.
        for cut in [0, 1, good.len() / 3, good.len() / 2, good.len() - 1] {
            let e = refused(task.as_ref(), &good[..cut]);
            assert!(e.contains("not a saved neural student"), "cut {cut}: {e}");
        }
        let e = refused(task.as_ref(), "{\"table\": []}");
        assert!(e.contains("missing field"), "{e}");
        // Another model width, depth, head count or context: named, with both configs.
        for other in ["d_model=32", "layers=2", "heads=4", "max_digits=3"] {
            let e = refused(task_with(&[other]).as_ref(), &good);
            assert!(
                e.contains("its model (") && e.contains("does not match the task's parameters"),
                "{other}: {e}"
            );
        }
        let e = refused(task_with(&["lr=0.001"]).as_ref(), &good);
        assert!(e.contains("training configuration"), "{e}");
        let e = refused(task_with(&["min_steps=5"]).as_ref(), &good);
        assert!(e.contains("student settings"), "{e}");
        // Another format version or format.
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
            f(&mut v);
            v.to_string()
        };
        let e = refused(task.as_ref(), &edit(&|v| v["format_version"] = 2.into()));
        assert!(e.contains("format version 2 is not supported"), "{e}");
        let e = refused(task.as_ref(), &edit(&|v| v["format"] = "x".into()));
        assert!(e.contains("format `x`"), "{e}");
        // Any other change: the checksum.
        let e = refused(task.as_ref(), &edit(&|v| v["trainer"]["step"] = 5.into()));
        assert!(e.contains("checksum"), "{e}");
        let e = refused(
            task.as_ref(),
            &edit(&|v| v["replay"][0]["tokens"][1] = 9.into()),
        );
        assert!(e.contains("checksum"), "{e}");
        let mut flipped = good.clone().into_bytes();
        let at = good.find("\"weights\":\"").unwrap() + 200;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        let e = refused(task.as_ref(), std::str::from_utf8(&flipped).unwrap());
        assert!(e.contains("checksum"), "{e}");
        // A consistent state (checksum recomputed) with a bad part is still refused.
        let resum = |f: &dyn Fn(&mut StudentState)| {
            let mut st: StudentState = serde_json::from_str(&good).unwrap();
            f(&mut st);
            st.sha256 = String::new();
            st.sha256 = digest(&st);
            serde_json::to_string(&st).unwrap()
        };
        let e = refused(task.as_ref(), &resum(&|st| st.replay[0].tokens.push(99)));
        assert!(e.contains("outside the vocabulary"), "{e}");
        let e = refused(task.as_ref(), &resum(&|st| st.replay[0].learn_from = None));
        assert!(e.contains("replay example 0"), "{e}");
        let e = refused(
            task.as_ref(),
            &resum(&|st| {
                let w = &mut st.trainer.weights;
                w.truncate(w.len() / 2 / 4 * 4);
            }),
        );
        assert!(e.contains("training state"), "{e}");
        let e = refused(task.as_ref(), &resum(&|st| st.trainer.format_version = 7));
        assert!(e.contains("format version 7"), "{e}");
    }

    #[test]
    fn cosine_fit_schedule_warms_up_decays_and_restarts() {
        let s = FitSchedule::Cosine {
            warmup: 4,
            min_ratio: 0.1,
        };
        assert!((s.lr(1.0, 0, 20) - 0.25).abs() < 1e-12);
        assert!((s.lr(1.0, 3, 20) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 4, 20) - 1.0).abs() < 1e-12);
        let mid = s.lr(1.0, 12, 20);
        assert!(mid < 1.0 && mid > 0.1, "{mid}");
        assert!((s.lr(1.0, 20, 20) - 0.1).abs() < 1e-12);
        // Monotone after the warm-up.
        let v: Vec<f64> = (4..=20).map(|i| s.lr(1.0, i, 20)).collect();
        assert!(v.windows(2).all(|w| w[1] <= w[0] + 1e-15));
        assert_eq!(FitSchedule::Constant.lr(0.3, 7, 10), 0.3);
    }

    #[test]
    fn early_stop_ends_a_fit_after_min_steps_and_counts_validation() {
        // Patience 1: the fit stops at the first evaluation (after min_steps) that did not
        // improve on the best so far.
        let task = task_with(&[
            "min_steps=4",
            "max_steps=40",
            "epochs=1000",
            "eval_every=2",
            "val_prompts=16",
            "patience=1",
        ]);
        let mut s = task.new_student(3);
        let st = s.fit(&demos(task.as_ref(), 5, 32)).unwrap();
        assert!(st.steps >= 4 && st.steps < 40, "{st:?}");
        assert_eq!(st.steps % 2, 0, "stops at an evaluation: {st:?}");
        assert_eq!(st.validation_generations, 16 * st.steps / 2, "{st:?}");
        // Without evaluation the same fit runs to its planned steps.
        let task = task_with(&["min_steps=4", "max_steps=40", "epochs=1000"]);
        let st = task
            .new_student(3)
            .fit(&demos(task.as_ref(), 5, 32))
            .unwrap();
        assert_eq!((st.steps, st.validation_generations), (40, 0));
    }

    #[test]
    fn replay_window_and_schedule_change_training_deterministically() {
        let d = demos(task_with(&[]).as_ref(), 9, 24);
        let run = |extra: &[&str]| -> Vec<u32> {
            let task = task_with(extra);
            let mut s = task.new_student(2);
            s.fit(&d[..16]).unwrap();
            s.fit(&d[16..]).unwrap();
            let st: StudentState = serde_json::from_str(&s.save().unwrap()).unwrap();
            assert_eq!(st.replay.len(), 24, "the buffer keeps everything");
            let out = s.generate_batch(&d.iter().map(|x| x.prompt.clone()).collect::<Vec<_>>());
            out.iter().flat_map(|t| t.steps.clone()).collect()
        };
        let all = run(&[]);
        assert_eq!(all, run(&[]), "deterministic");
        assert_ne!(
            all,
            run(&["replay=0"]),
            "training only on the new demonstrations differs"
        );
        assert_ne!(
            all,
            run(&["schedule=cosine", "warmup=2"]),
            "the schedule is used"
        );
        assert_eq!(
            run(&["replay=100"]),
            all,
            "a window larger than the buffer is all of it"
        );
    }

    #[test]
    fn bad_training_options_are_clear_errors() {
        for (kv, word) in [
            ("schedule=linear", "constant or cosine"),
            ("replay=some", "all or a number"),
            ("target_accuracy=0", "(0, 1]"),
            ("min_lr_ratio=2", "[0, 1]"),
        ] {
            let params = Params::parse(&[kv])
                .unwrap()
                .resolve("arith", arith::PARAMS)
                .unwrap();
            let e = arith::build(&params, 1).err().expect(kv).to_string();
            assert!(e.contains(word), "{kv}: {e}");
        }
    }
}
