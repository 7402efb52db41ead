//! Held-out evaluation of a curriculum's output model (not charged to the strategy's ledger).

use autotune_core::{stream_seed, Prompt, Task, Token, Trace};
use autotune_curriculum::{plurality, Model, Output};
use serde::{Deserialize, Serialize};

/// Prompts per chunk of an early-stopping evaluation.
const EVAL_CHUNK: usize = 1024;

/// The outcome of [`HeldOut::reaches`].
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Whether the held-out error is at most eps (exact).
    pub reached: bool,
    /// Errors over the prompts evaluated.
    pub error: f64,
    /// Prompts evaluated: all of them, or fewer when the evaluation stopped early.
    pub evaluated: usize,
    /// Errors per slice of the distribution ([`Task::slice`]), when every prompt was evaluated
    /// and the task defines slices; empty otherwise.
    pub slices: Vec<SliceError>,
    /// The uniform mixture (Algorithm 3): its plain error `1 - E_x[Acc_x]`, beside `error`,
    /// which is then the paper's `Pr_x[Acc_x < 3/5]`.
    pub plain_error: Option<f64>,
}

/// Samples per member and held-out prompt behind the mixture's `Acc_x` estimate.
const MIXTURE_SAMPLES: usize = 3;

/// Held-out errors on one slice of the prompt distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceError {
    pub slice: String,
    pub prompts: usize,
    pub errors: usize,
}

impl SliceError {
    pub fn error(&self) -> f64 {
        self.errors as f64 / self.prompts.max(1) as f64
    }
}

/// Sorts slice labels by their leading number, then as text (`2 digits` before `10 digits`).
pub fn slice_order(a: &str, b: &str) -> std::cmp::Ordering {
    let num = |s: &str| -> Option<u64> {
        let d: String = s.chars().take_while(char::is_ascii_digit).collect();
        d.parse().ok()
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        _ => a.cmp(b),
    }
}

/// The most wrong answers among `n` held-out prompts for an error of at most `eps` (the one
/// rounding rule of every reached/not-reached decision).
pub(crate) fn allowed_errors(eps: f64, n: usize) -> usize {
    (eps * n as f64 + 1e-9).floor() as usize
}

/// Counts verdicts per slice label (prompts without a label are left out).
fn by_slice(labels: &[Option<String>], ok: &[bool]) -> Vec<SliceError> {
    let mut out: Vec<SliceError> = Vec::new();
    for (l, v) in labels.iter().zip(ok) {
        let Some(l) = l else { continue };
        let i = match out.iter().position(|s| &s.slice == l) {
            Some(i) => i,
            None => {
                out.push(SliceError {
                    slice: l.clone(),
                    prompts: 0,
                    errors: 0,
                });
                out.len() - 1
            }
        };
        out[i].prompts += 1;
        out[i].errors += usize::from(!*v);
    }
    out.sort_by(|a, b| slice_order(&a.slice, &b.slice));
    out
}

/// A fixed held-out set and a cache of ensemble members' answers on it (members never change
/// after they are trained, so each is evaluated once).
pub struct HeldOut {
    pub prompts: Vec<Prompt>,
    member_answers: Vec<Vec<Vec<Token>>>,
    member_alphas: Vec<f64>,
    labels: Option<Vec<Option<String>>>,
    output: Output,
    /// Mixture: per member, right samples (of [`MIXTURE_SAMPLES`]) on each held-out prompt.
    member_right: Vec<Vec<u8>>,
    checkpoint: u64,
    /// The first failure of the task's verifier (an external process that died or hung) or of
    /// a student (a model server that kept failing): the run must stop with it rather than
    /// report the evaluation.
    failure: Option<String>,
}

/// The chains of thought of `policy` (sampled at `temperature` with `seed`, or greedy); a
/// policy that fails (a model server that kept failing) records its failure in `failure`
/// and answers nothing until the run stops.
fn traces_of(
    failure: &mut Option<String>,
    policy: &dyn autotune_core::Policy,
    prompts: &[Prompt],
    sampled: Option<(f64, u64)>,
) -> Vec<Trace> {
    let got = match sampled {
        Some((temperature, seed)) => policy.try_sample_batch(prompts, temperature, seed),
        None => policy.try_generate_batch(prompts),
    };
    got.unwrap_or_else(|e| {
        failure.get_or_insert_with(|| format!("held-out evaluation: {e}"));
        vec![Trace::new(Vec::new(), 0); prompts.len()]
    })
}

/// The verifier's verdicts; a verifier that fails records its failure in `failure` (the
/// first one is kept) and its verdicts read as wrong until the run stops.
fn judge(
    failure: &mut Option<String>,
    task: &dyn Task,
    prompts: &[Prompt],
    answers: &[&[Token]],
) -> Vec<bool> {
    match task.verifier().try_verify_batch(prompts, answers) {
        Ok(v) => v,
        Err(e) => {
            failure.get_or_insert_with(|| format!("held-out evaluation: {e}"));
            vec![false; prompts.len()]
        }
    }
}

impl HeldOut {
    pub fn new(prompts: Vec<Prompt>) -> Self {
        Self {
            prompts,
            member_answers: Vec::new(),
            member_alphas: Vec::new(),
            labels: None,
            output: Output::Plurality,
            member_right: Vec::new(),
            checkpoint: 0,
            failure: None,
        }
    }

    /// Why the verifier or a student failed during an evaluation, if one did (then the
    /// evaluations are not to be trusted and the run stops).
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// How the ensembles evaluated here answer (the strategy's output rule).
    pub fn with_output(mut self, output: Output) -> Self {
        self.output = output;
        self
    }

    /// The stochastic outputs of Algorithm 3 on every held-out prompt: per prompt whether it
    /// counts as solved, and the mixture's plain error.
    fn stochastic(
        &mut self,
        task: &dyn Task,
        members: &[autotune_curriculum::Member],
    ) -> (Vec<bool>, Option<f64>) {
        let n = self.prompts.len();
        self.checkpoint += 1;
        match self.output {
            Output::Plurality => unreachable!("plurality is evaluated by answers()"),
            Output::Mixture {
                temperature,
                accuracy,
            } => {
                if members.len() < self.member_right.len() {
                    self.member_right.clear();
                }
                for (j, m) in members.iter().enumerate().skip(self.member_right.len()) {
                    let mut right = vec![0u8; n];
                    for s in 0..MIXTURE_SAMPLES {
                        let seed = stream_seed(j as u64, "heldout/mixture").wrapping_add(s as u64);
                        let traces = traces_of(
                            &mut self.failure,
                            m.student.as_ref(),
                            &self.prompts,
                            Some((temperature, seed)),
                        );
                        let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
                        for (r, ok) in right.iter_mut().zip(judge(
                            &mut self.failure,
                            task,
                            &self.prompts,
                            &answers,
                        )) {
                            *r += u8::from(ok);
                        }
                    }
                    self.member_right.push(right);
                }
                let total = (members.len() * MIXTURE_SAMPLES).max(1) as f64;
                let acc: Vec<f64> = (0..n)
                    .map(|i| {
                        self.member_right
                            .iter()
                            .map(|r| f64::from(r[i]))
                            .sum::<f64>()
                            / total
                    })
                    .collect();
                let plain = 1.0 - acc.iter().sum::<f64>() / n.max(1) as f64;
                (
                    acc.iter().map(|&a| a >= accuracy - 1e-12).collect(),
                    Some(plain),
                )
            }
            Output::Consensus { votes, temperature } => {
                let k = members.len().max(1);
                // Vote v on prompt i comes from a uniformly drawn member, sampled afresh.
                let mut asked: Vec<Vec<usize>> = vec![Vec::new(); k];
                for i in 0..n {
                    for v in 0..votes {
                        let h = stream_seed(self.checkpoint, &format!("heldout/cons/{i}/{v}"));
                        asked[(h % k as u64) as usize].push(i);
                    }
                }
                let mut answers: Vec<Vec<Vec<Token>>> = vec![Vec::new(); n];
                for (j, idx) in asked.iter().enumerate() {
                    if idx.is_empty() || j >= members.len() {
                        continue;
                    }
                    let batch: Vec<Prompt> = idx.iter().map(|&i| self.prompts[i].clone()).collect();
                    let seed = stream_seed(self.checkpoint, "heldout/cons").wrapping_add(j as u64);
                    let sampled = traces_of(
                        &mut self.failure,
                        members[j].student.as_ref(),
                        &batch,
                        Some((temperature, seed)),
                    );
                    for (&i, t) in idx.iter().zip(sampled) {
                        answers[i].push(t.answer().to_vec());
                    }
                }
                let votes: Vec<Vec<Token>> = answers
                    .iter()
                    .map(|a| {
                        plurality(a.iter().map(|x| (x.as_slice(), 1.0)))
                            .map(<[Token]>::to_vec)
                            .unwrap_or_default()
                    })
                    .collect();
                let refs: Vec<&[Token]> = votes.iter().map(Vec::as_slice).collect();
                (judge(&mut self.failure, task, &self.prompts, &refs), None)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// The model's final answers on the held-out prompts (plurality vote for ensembles; an
    /// empty model answers nothing, which the verifier rejects).
    pub fn answers(&mut self, model: &Model) -> Vec<Vec<Token>> {
        let answers_of = |failure: &mut Option<String>,
                          prompts: &[Prompt],
                          s: &dyn autotune_core::Student|
         -> Vec<Vec<Token>> {
            traces_of(failure, s, prompts, None)
                .into_iter()
                .map(|t: Trace| t.answer().to_vec())
                .collect()
        };
        match model {
            Model::Single(None) => vec![Vec::new(); self.prompts.len()],
            Model::Single(Some(s)) => answers_of(&mut self.failure, &self.prompts, s.as_ref()),
            Model::Ensemble(members) => {
                // Members are appended, never changed: evaluate only the new ones.
                if members.len() < self.member_answers.len() {
                    self.member_answers.clear();
                    self.member_alphas.clear();
                }
                for m in &members[self.member_answers.len()..] {
                    let a = answers_of(&mut self.failure, &self.prompts, m.student.as_ref());
                    self.member_answers.push(a);
                    self.member_alphas.push(m.alpha);
                }
                (0..self.prompts.len())
                    .map(|i| {
                        plurality(
                            self.member_answers
                                .iter()
                                .zip(&self.member_alphas)
                                .map(|(a, &w)| (a[i].as_slice(), w)),
                        )
                        .map(<[Token]>::to_vec)
                        .unwrap_or_default()
                    })
                    .collect()
            }
        }
    }

    /// Whether the held-out error of `model` is at most `eps`, with an estimate of the error.
    ///
    /// A single model is evaluated in chunks and the evaluation stops as soon as more than
    /// `stop_eps * n` prompts are wrong (`stop_eps >= eps`): the decision is exact, only the
    /// estimate (errors over prompts evaluated) is then partial. Ensembles reuse cached member
    /// answers and are always evaluated in full.
    pub fn reaches(
        &mut self,
        task: &dyn Task,
        model: &Model,
        eps: f64,
        stop_eps: f64,
    ) -> Evaluation {
        let n = self.prompts.len();
        let mut plain_error = None;
        let ok = match model {
            Model::Ensemble(members) if !self.output.is_plurality() => {
                let (ok, plain) = self.stochastic(task, members);
                plain_error = plain;
                ok
            }
            Model::Single(Some(student)) => {
                let stop_at = allowed_errors(stop_eps.max(eps), n);
                let (mut ok, mut wrong) = (Vec::with_capacity(n), 0usize);
                for chunk in self.prompts.chunks(EVAL_CHUNK) {
                    let traces = traces_of(&mut self.failure, student.as_ref(), chunk, None);
                    let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
                    let verdicts = judge(&mut self.failure, task, chunk, &answers);
                    wrong += verdicts.iter().filter(|v| !**v).count();
                    ok.extend(verdicts);
                    if wrong > stop_at {
                        break;
                    }
                }
                ok
            }
            _ => self.verdicts(task, model),
        };
        let (seen, wrong) = (ok.len(), ok.iter().filter(|v| !**v).count());
        Evaluation {
            reached: seen == n && wrong <= allowed_errors(eps, n),
            error: wrong as f64 / seen.max(1) as f64,
            evaluated: seen,
            slices: self.slices_of(task, &ok),
            plain_error,
        }
    }

    /// Errors per slice for verdicts on every held-out prompt (empty for a partial evaluation
    /// or a task without slices); the prompts' labels are computed once.
    fn slices_of(&mut self, task: &dyn Task, ok: &[bool]) -> Vec<SliceError> {
        let prompts = &self.prompts;
        let labels = self
            .labels
            .get_or_insert_with(|| prompts.iter().map(|p| task.slice(p)).collect());
        if ok.len() != labels.len() || labels.iter().all(Option::is_none) {
            return Vec::new();
        }
        by_slice(labels, ok)
    }

    /// The verifier's verdict on each held-out prompt's final answer.
    fn verdicts(&mut self, task: &dyn Task, model: &Model) -> Vec<bool> {
        let answers = self.answers(model);
        let refs: Vec<&[Token]> = answers.iter().map(Vec::as_slice).collect();
        judge(&mut self.failure, task, &self.prompts, &refs)
    }

    /// Held-out error of `model`: the fraction of prompts whose final answer the verifier
    /// rejects.
    pub fn error(&mut self, task: &dyn Task, model: &Model) -> f64 {
        if self.prompts.is_empty() {
            return 1.0;
        }
        let ok = match model {
            Model::Ensemble(members) if !self.output.is_plurality() => {
                self.stochastic(task, members).0
            }
            _ => self.verdicts(task, model),
        };
        ok.iter().filter(|v| !**v).count() as f64 / self.prompts.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_sort_by_their_leading_number_and_count_errors() {
        let labels: Vec<Option<String>> = ["10 digits", "2 digits", "1 digit", "2 digits"]
            .iter()
            .map(|s| Some(s.to_string()))
            .chain([None])
            .collect();
        let s = by_slice(&labels, &[true, false, true, true, false]);
        let names: Vec<&str> = s.iter().map(|x| x.slice.as_str()).collect();
        assert_eq!(names, ["1 digit", "2 digits", "10 digits"]);
        assert_eq!((s[1].prompts, s[1].errors), (2, 1));
        assert_eq!(s[1].error(), 0.5);
        assert_eq!(
            s.iter().map(|x| x.prompts).sum::<usize>(),
            4,
            "unlabelled left out"
        );
        assert_eq!(slice_order("b", "a"), std::cmp::Ordering::Greater);
    }
}
