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

use autotune_core::{CoreError, Demo, FitStats, Policy, Prompt, Result, Student, Token, Trace};
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
    pub fn new(cfg: NeuralStudentConfig) -> Result<Self> {
        let trainer = Trainer::new(cfg.model.clone(), cfg.trainer.clone())
            .map_err(|e| CoreError::Student(e.to_string()))?;
        let inference = Mutex::new(trainer.inference_model());
        Ok(Self {
            cfg,
            trainer,
            replay: Vec::new(),
            inference,
            last_losses: Vec::new(),
        })
    }

    fn traces(&self, prompts: &[Prompt], sampling: Sampling) -> Vec<Trace> {
        let inputs: Vec<Vec<u32>> = prompts.iter().map(|p| p.tokens.clone()).collect();
        let opts = GenerateOptions {
            max_new_tokens: self.cfg.max_new_tokens,
            eos: Some(self.cfg.eos),
            batch_size: 64,
            sampling,
        };
        let model = self.inference.lock().unwrap_or_else(|e| e.into_inner());
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
        let model = &state.trainer.model;
        if *model != expected.model {
            return Err(bad(format!(
                "its model ({}) does not match the task's parameters ({})",
                model_summary(model),
                model_summary(&expected.model)
            )));
        }
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
        let trainer = Trainer::from_state(&state.trainer).map_err(|e| bad(e.to_string()))?;
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
}

impl Student for NeuralStudent {
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        if new_demos.is_empty() {
            return Ok(FitStats {
                steps: 0,
                examples: 0,
                consistent: true,
            });
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
        self.last_losses = self
            .trainer
            .fit(&self.replay, steps)
            .map_err(|e| CoreError::Student(e.to_string()))?;
        *self.inference.lock().unwrap_or_else(|e| e.into_inner()) = self.trainer.inference_model();
        Ok(FitStats {
            steps: steps as u64,
            examples: (steps * batch) as u64,
            consistent: true,
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
        let mut p = vec![
            "max_digits=2",
            "mul_max_digits=1",
            "d_model=16",
            "layers=1",
            "heads=2",
            "batch=8",
            "min_steps=6",
            "max_steps=6",
            "lr=0.003",
        ];
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
}
