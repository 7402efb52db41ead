//! Policy-gradient training with a verifier reward (GRPO-style), with the prompts that get
//! rollouts chosen by a selector: all of them (`uniform`), those whose group of samples has
//! mixed rewards (`zero-variance`, DAPO's dynamic sampling), or those the autotune mask
//! accepts (`autotune`: the current model's greedy answer is wrong, one cheap rollout per
//! candidate, and only then a group of samples).
//!
//! Each update takes `prompts_per_step` groups of `group` samples of the current student at a
//! temperature; a sample's reward is the verifier's verdict (1 or 0) and its advantage is the
//! reward minus its group's mean, divided by the group's standard deviation. The update is one
//! on-policy step of the student's [`Student::reinforce`] (GRPO's clipped objective reduces to
//! this when the samples come from the current weights, without a KL term as in DAPO).
//!
//! A batch never stalls: a selector that filters draws again, at most `max_rounds` rounds per
//! update, and then trains on the groups it has (a short batch, reported); a step with no
//! group at all makes no update and is counted as stalled. Accepted groups are never thrown
//! away: groups beyond a full batch are carried to the next update.
//!
//! A run is resumable: after every step the observer may keep a [`GrpoState`] (the student's
//! saved state, the carried groups, the stream positions, the costs so far), and
//! [`run_grpo`] given that state goes on from the next step exactly as the uninterrupted run
//! would (wall time aside).

use autotune_core::{stream_seed, CoreError, Ledger, Metered, Prompt, Rollout, Student, Task};
use serde::{Deserialize, Serialize};

use crate::engine::{Budget, Control};
use crate::model::Model;
use crate::CurriculumError;

/// Which prompts get a group of rollouts and enter the update.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selector {
    /// Every drawn prompt (groups without reward variance carry no gradient).
    Uniform,
    /// DAPO dynamic sampling: groups whose pass rate is strictly between 0 and 1.
    ZeroVariance,
    /// The autotune mask: a greedy test first (one rollout); prompts the model answers right
    /// are known and get nothing; the failures get a group, kept if its rewards vary.
    Autotune,
}

impl Selector {
    /// The selector of a registered strategy's mask (`uniform`, `zero-variance`,
    /// `autotune-cex`), or `autotune`, the name `autotune rl` has always used for
    /// `autotune-cex`'s.
    pub fn parse(name: &str) -> Result<Self, CurriculumError> {
        let with = || {
            crate::STRATEGIES
                .iter()
                .filter(|s| s.selector.is_some())
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if name == "autotune" {
            return Ok(Selector::Autotune);
        }
        crate::strategy_info(name)
            .ok()
            .and_then(|s| s.selector)
            .ok_or_else(|| {
                CoreError::BadParam {
                    key: "selector".into(),
                    value: name.into(),
                    expected: format!(
                        "a strategy with a prompt selector: {} (or autotune)",
                        with()
                    ),
                }
                .into()
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Selector::Uniform => "uniform",
            Selector::ZeroVariance => "zero-variance",
            Selector::Autotune => "autotune",
        }
    }
}

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrpoConfig {
    pub selector: Selector,
    /// Samples per prompt (k).
    pub group: usize,
    /// Groups per update.
    pub prompts_per_step: usize,
    /// Sampling temperature of the rollouts.
    pub temperature: f64,
    /// Learning rate of the policy-gradient step.
    pub lr: f64,
    /// Rounds of drawing per update, at most (a filtering selector draws again until the batch
    /// is full or the rounds are spent).
    pub max_rounds: usize,
    /// Updates (and stalled steps), at most.
    pub max_steps: usize,
    /// Divide advantages by the group's standard deviation (GRPO) or not (Dr. GRPO).
    pub normalize_std: bool,
}

/// The defaults of `autotune rl` (its flags read them from here: one place).
impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            selector: Selector::Uniform,
            group: 8,
            prompts_per_step: 32,
            temperature: 1.0,
            lr: 1e-3,
            max_rounds: 8,
            max_steps: 2_000,
            normalize_std: true,
        }
    }
}

impl GrpoConfig {
    pub fn validate(&self) -> Result<(), CurriculumError> {
        let bad = |key: &str, value: String, expected: &str| -> CurriculumError {
            CoreError::BadParam {
                key: key.into(),
                value,
                expected: expected.into(),
            }
            .into()
        };
        if self.group < 2 {
            return Err(bad("group", self.group.to_string(), "an integer >= 2"));
        }
        if self.prompts_per_step == 0 {
            return Err(bad("prompts_per_step", "0".into(), "a positive integer"));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(bad(
                "temperature",
                self.temperature.to_string(),
                "a number > 0",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(bad("lr", self.lr.to_string(), "a number > 0"));
        }
        if self.max_rounds == 0 {
            return Err(bad("max_rounds", "0".into(), "a positive integer"));
        }
        Ok(())
    }
}

/// What one step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrpoStep {
    pub step: usize,
    /// Groups trained on (0: a stalled step, no update).
    pub groups: usize,
    /// Groups of this step that came from the carry-over of earlier rounds.
    pub carried_in: usize,
    /// Accepted groups left over for the next step.
    pub carried_out: usize,
    /// Rounds of drawing this step took.
    pub rounds: usize,
    /// Candidates drawn this step, and those that got a group of samples.
    pub drawn: u64,
    pub sampled: u64,
    /// Groups the selector accepted this step (trained on now, or carried to the next step).
    pub accepted: usize,
    /// Mean reward of the samples trained on.
    pub mean_reward: f64,
    /// Whether the batch was short of `prompts_per_step` after `max_rounds` rounds.
    pub short: bool,
    /// Cumulative costs after this step.
    pub ledger: Ledger,
}

/// Watches training after every step (held-out evaluation); its time is not charged.
pub trait GrpoObserver {
    /// The model training starts from (the reference student), before the first step (not
    /// called again when a run resumes).
    fn on_start(&mut self, model: &Model) {
        let _ = model;
    }

    fn on_step(&mut self, step: &GrpoStep, model: &Model) -> Control;

    /// Whether [`GrpoObserver::keep`] wants the state after `steps` steps (`last`: training
    /// ends there). Saving the student costs a copy of its weights, so runs that cannot be
    /// resumed skip it.
    fn keeps_state(&self, steps: usize, last: bool) -> bool {
        let _ = (steps, last);
        false
    }

    /// The observer's own state, kept inside each [`GrpoState`].
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores what [`GrpoObserver::save`] returned, when a run resumes.
    fn restore(&mut self, state: &serde_json::Value) -> Result<(), CurriculumError> {
        let _ = state;
        Ok(())
    }

    /// The state after a step (and after the last one, with `stop` set), to be kept where a
    /// resumed run will find it.
    fn keep(&mut self, state: &GrpoState) -> Result<(), CurriculumError> {
        let _ = state;
        Ok(())
    }
}

/// Everything [`run_grpo`] needs to go on after a step as if it had not stopped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GrpoState {
    /// The steps done.
    pub steps: Vec<GrpoStep>,
    /// Why training ended, once it has (a resumed run then only rebuilds the outcome).
    pub stop: Option<String>,
    /// The student as [`Student::save`] writes it.
    pub student: String,
    /// Accepted groups waiting for the next step.
    pub carry: Vec<SavedGroup>,
    /// Prompts drawn from the training stream, generations sampled (the sample seeds' counter).
    pub drawn: u64,
    pub sample_calls: u64,
    pub est_accept: f64,
    pub short_steps: usize,
    pub stalled_steps: usize,
    /// Costs so far, wall seconds included.
    pub ledger: Ledger,
    pub observer: serde_json::Value,
}

/// A carried group as kept in a [`GrpoState`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedGroup {
    pub prompt: Prompt,
    pub samples: Vec<(autotune_core::Trace, bool)>,
}

/// Why training ended, and what it spent.
pub struct GrpoOutcome {
    pub steps: Vec<GrpoStep>,
    /// `observer`, `max-steps` or `budget: WHAT`.
    pub stop: String,
    pub ledger: Ledger,
    /// Steps whose batch was short after the bounded resampling, and steps with no group.
    pub short_steps: usize,
    pub stalled_steps: usize,
    pub model: Model,
}

/// A group of samples on one prompt, with their verdicts.
type Group = SavedGroup;

impl Group {
    fn passes(&self) -> usize {
        self.samples.iter().filter(|(_, ok)| *ok).count()
    }
}

/// Trains the task's reference student (a trainable copy of `pi_ref`) by policy gradient.
pub fn run_grpo(
    task: &dyn Task,
    cfg: &GrpoConfig,
    seed: u64,
    budget: &Budget,
    max_rollouts: Option<u64>,
    observer: &mut dyn GrpoObserver,
    resume: Option<GrpoState>,
) -> Result<GrpoOutcome, CurriculumError> {
    cfg.validate()?;
    let student: Box<dyn Student> = match (task.reference_student(), &resume) {
        (Some(_), Some(state)) => task.load_student(&state.student)?,
        (Some(s), None) => s?,
        (None, _) => {
            return Err(CoreError::Input(format!(
                "policy-gradient training starts from the task's reference policy, and task {} \
                 has none that can be trained (arith: --param reference=CHECKPOINT, a student \
                 saved by `autotune run --save-model`)",
                task.name()
            ))
            .into())
        }
    };
    let mut model = Model::Single(Some(student));
    let mut meter = Metered::new(task);
    let mut source = task.prompts("train", seed)?;
    let mut carry: Vec<Group> = Vec::new();
    let mut steps = Vec::new();
    let (mut short_steps, mut stalled_steps) = (0usize, 0usize);
    let mut est_accept = 1.0f64;
    let mut sample_calls = 0u64;
    let mut drawn_total = 0u64;
    let mut stop = "max-steps".to_string();
    let mut stopped = None;
    match resume {
        None => {
            let t0 = std::time::Instant::now();
            observer.on_start(&model);
            meter.exclude_time(t0.elapsed());
        }
        Some(state) => {
            observer.restore(&state.observer)?;
            meter.resume_ledger(state.ledger);
            // The same prompts as before the stop: drawn again and dropped (a source's `skip`
            // may leave a generator's random stream where it is).
            let mut left = state.drawn;
            while left > 0 {
                let k = left.min(4096);
                source.draw(k as usize)?;
                left -= k;
            }
            drawn_total = state.drawn;
            carry = state.carry;
            steps = state.steps;
            short_steps = state.short_steps;
            stalled_steps = state.stalled_steps;
            est_accept = state.est_accept;
            sample_calls = state.sample_calls;
            stopped = state.stop;
        }
    }
    let b = cfg.prompts_per_step;
    let first = steps.len();
    for step in first..cfg.max_steps {
        if let Some(s) = stopped.take() {
            stop = s;
            break;
        }
        let l = meter.snapshot();
        if let Some(what) = exhausted(budget, max_rollouts, &l) {
            stop = format!("budget: {what}");
            break;
        }
        let Model::Single(Some(student)) = &mut model else {
            unreachable!("a single trained student")
        };
        let carried_in = carry.len().min(b);
        let mut batch: Vec<Group> = carry.drain(..carried_in).collect();
        let (mut rounds, mut drawn, mut sampled, mut accepted) = (0usize, 0u64, 0u64, 0usize);
        while batch.len() < b && rounds < cfg.max_rounds {
            rounds += 1;
            let need = b - batch.len();
            let n = match cfg.selector {
                Selector::Uniform => need,
                _ => ((need as f64 / est_accept.max(1.0 / 64.0)) * 1.1).ceil() as usize,
            }
            .clamp(need, 64 * b);
            let mut cands = source.draw(n)?;
            drawn_total += n as u64;
            meter.count_drawn(cands.len());
            drawn += cands.len() as u64;
            if cfg.selector == Selector::Autotune {
                // The mask's test: one greedy rollout per candidate; known prompts get nothing.
                let greedy = meter.generate(student.as_ref(), &cands)?;
                let right = meter.verify(&cands, &greedy)?;
                cands = cands
                    .into_iter()
                    .zip(right)
                    .filter(|(_, ok)| !ok)
                    .map(|(c, _)| c)
                    .collect();
            }
            sampled += cands.len() as u64;
            let mut groups: Vec<Group> = cands
                .iter()
                .map(|c| Group {
                    prompt: c.clone(),
                    samples: Vec::with_capacity(cfg.group),
                })
                .collect();
            if !cands.is_empty() {
                for _ in 0..cfg.group {
                    let s = stream_seed(seed, "grpo/sample").wrapping_add(sample_calls);
                    sample_calls += 1;
                    let traces = meter.sample(student.as_ref(), &cands, cfg.temperature, s)?;
                    let verdicts = meter.verify(&cands, &traces)?;
                    for ((g, t), v) in groups.iter_mut().zip(traces).zip(verdicts) {
                        g.samples.push((t, v));
                    }
                }
            }
            let mut kept = 0usize;
            for g in groups {
                let p = g.passes();
                let keep = match cfg.selector {
                    Selector::Uniform => true,
                    Selector::ZeroVariance | Selector::Autotune => p > 0 && p < cfg.group,
                };
                if keep {
                    kept += 1;
                    // Beyond a full batch the group waits for the next step.
                    if batch.len() < b {
                        batch.push(g);
                    } else {
                        carry.push(g);
                    }
                }
            }
            accepted += kept;
            // Smoothed acceptance per candidate drawn, for the size of the next draw.
            est_accept = 0.5 * est_accept + 0.5 * (kept as f64 / n.max(1) as f64).max(1.0 / 256.0);
        }
        let short = batch.len() < b;
        short_steps += usize::from(short && !batch.is_empty());
        let mean_reward = if batch.is_empty() {
            stalled_steps += 1;
            f64::NAN
        } else {
            let rollouts = advantages(&batch, cfg.normalize_std);
            let total: usize = batch.iter().map(|g| g.samples.len()).sum();
            let passes: usize = batch.iter().map(Group::passes).sum();
            meter.reinforce(student.as_mut(), &rollouts, cfg.lr)?;
            passes as f64 / total as f64
        };
        let report = GrpoStep {
            step,
            groups: batch.len(),
            carried_in,
            carried_out: carry.len(),
            rounds,
            drawn,
            sampled,
            accepted,
            mean_reward,
            short,
            ledger: meter.snapshot(),
        };
        let t0 = std::time::Instant::now();
        let control = observer.on_step(&report, &model);
        steps.push(report);
        let done = (control == Control::Stop).then(|| "observer".to_string());
        if observer.keeps_state(steps.len(), done.is_some()) {
            let state = GrpoState {
                steps: steps.clone(),
                stop: done.clone(),
                student: model
                    .members()
                    .first()
                    .and_then(|(s, _)| s.save())
                    .ok_or_else(|| {
                        CoreError::Student("a policy-gradient student could not be saved".into())
                    })?,
                carry: carry.clone(),
                drawn: drawn_total,
                sample_calls,
                est_accept,
                short_steps,
                stalled_steps,
                ledger: meter.snapshot(),
                observer: observer.save(),
            };
            observer.keep(&state)?;
        }
        meter.exclude_time(t0.elapsed());
        if let Some(d) = done {
            stop = d;
            break;
        }
    }
    if let Some(s) = stopped {
        // Resumed from the state after the last step of `max_steps`.
        stop = s;
    }
    Ok(GrpoOutcome {
        steps,
        stop,
        ledger: meter.snapshot(),
        short_steps,
        stalled_steps,
        model,
    })
}

fn exhausted(budget: &Budget, max_rollouts: Option<u64>, l: &Ledger) -> Option<&'static str> {
    if max_rollouts.is_some_and(|m| l.rollouts() >= m) {
        return Some("rollouts");
    }
    if budget
        .max_verifier_calls
        .is_some_and(|m| l.verifier_calls >= m)
    {
        return Some("verifier_calls");
    }
    if budget.max_seconds.is_some_and(|m| l.wall_seconds >= m) {
        return Some("seconds");
    }
    None
}

/// Group-relative advantages: reward minus the group's mean, over its standard deviation
/// (when `normalize_std`; a group without variance has advantage 0 everywhere).
fn advantages(batch: &[Group], normalize_std: bool) -> Vec<Rollout> {
    let mut out = Vec::new();
    for g in batch {
        let k = g.samples.len() as f64;
        let mean = g.passes() as f64 / k;
        let std = (mean * (1.0 - mean)).sqrt();
        for (trace, ok) in &g.samples {
            let r = f64::from(u8::from(*ok));
            let a = if normalize_std {
                if std > 0.0 {
                    (r - mean) / std
                } else {
                    0.0
                }
            } else {
                r - mean
            };
            out.push(Rollout {
                prompt: g.prompt.clone(),
                trace: trace.clone(),
                advantage: a,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_group_relative_and_zero_without_variance() {
        let p = Prompt {
            id: 1,
            tokens: vec![1],
        };
        let t = autotune_core::Trace::new(vec![1], 1);
        let g = |v: &[bool]| Group {
            prompt: p.clone(),
            samples: v.iter().map(|&ok| (t.clone(), ok)).collect(),
        };
        let batch = vec![g(&[true, false, false, false]), g(&[true, true])];
        let a: Vec<f64> = advantages(&batch, true)
            .iter()
            .map(|r| r.advantage)
            .collect();
        // mean 1/4, std sqrt(3)/4: (1 - 1/4) / (sqrt(3)/4) = sqrt(3).
        assert!((a[0] - 3f64.sqrt()).abs() < 1e-12);
        assert!((a[1] + 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert!(a.iter().sum::<f64>().abs() < 1e-9, "advantages sum to 0");
        assert_eq!(&a[4..], &[0.0, 0.0]);
        let a: Vec<f64> = advantages(&batch, false)
            .iter()
            .map(|r| r.advantage)
            .collect();
        assert_eq!(a[0], 0.75);
    }

    #[test]
    fn selectors_parse_and_bad_configs_are_errors() {
        for s in ["uniform", "zero-variance", "autotune"] {
            assert_eq!(Selector::parse(s).unwrap().name(), s);
        }
        assert!(Selector::parse("dapo").is_err());
        let bad = GrpoConfig {
            group: 1,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("group"));
    }
}
