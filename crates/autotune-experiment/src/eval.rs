//! Held-out evaluation of a curriculum's output model (not charged to the strategy's ledger).

use autotune_core::{Prompt, Task, Token, Trace};
use autotune_curriculum::{plurality, Model};

/// Prompts per chunk of an early-stopping evaluation.
const EVAL_CHUNK: usize = 1024;

/// The outcome of [`HeldOut::reaches`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// Whether the held-out error is at most eps (exact).
    pub reached: bool,
    /// Errors over the prompts evaluated.
    pub error: f64,
    /// Prompts evaluated: all of them, or fewer when the evaluation stopped early.
    pub evaluated: usize,
}

/// A fixed held-out set and a cache of ensemble members' answers on it (members never change
/// after they are trained, so each is evaluated once).
pub struct HeldOut {
    pub prompts: Vec<Prompt>,
    member_answers: Vec<Vec<Vec<Token>>>,
    member_alphas: Vec<f64>,
}

impl HeldOut {
    pub fn new(prompts: Vec<Prompt>) -> Self {
        Self {
            prompts,
            member_answers: Vec::new(),
            member_alphas: Vec::new(),
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
        let answers_of = |s: &dyn autotune_core::Student| -> Vec<Vec<Token>> {
            s.generate_batch(&self.prompts)
                .into_iter()
                .map(|t: Trace| t.answer().to_vec())
                .collect()
        };
        match model {
            Model::Single(None) => vec![Vec::new(); self.prompts.len()],
            Model::Single(Some(s)) => answers_of(s.as_ref()),
            Model::Ensemble(members) => {
                // Members are appended, never changed: evaluate only the new ones.
                if members.len() < self.member_answers.len() {
                    self.member_answers.clear();
                    self.member_alphas.clear();
                }
                for m in &members[self.member_answers.len()..] {
                    let a = answers_of(m.student.as_ref());
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
    /// `eps * n` prompts are wrong: the decision is exact, only the estimate (errors over
    /// prompts evaluated) is then partial. Ensembles reuse cached member answers and are always
    /// evaluated in full.
    pub fn reaches(&mut self, task: &dyn Task, model: &Model, eps: f64) -> Evaluation {
        let Model::Single(Some(student)) = model else {
            let e = self.error(task, model);
            return Evaluation {
                reached: e <= eps,
                error: e,
                evaluated: self.prompts.len(),
            };
        };
        let n = self.prompts.len();
        let allowed = (eps * n as f64 + 1e-9).floor() as usize;
        let (mut wrong, mut seen) = (0usize, 0usize);
        for chunk in self.prompts.chunks(EVAL_CHUNK) {
            let traces = student.generate_batch(chunk);
            let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
            wrong += task
                .verifier()
                .verify_batch(chunk, &answers)
                .iter()
                .filter(|v| !**v)
                .count();
            seen += chunk.len();
            if wrong > allowed {
                break;
            }
        }
        Evaluation {
            reached: wrong <= allowed,
            error: wrong as f64 / seen.max(1) as f64,
            evaluated: seen,
        }
    }

    /// Held-out error of `model`: the fraction of prompts whose final answer the verifier
    /// rejects.
    pub fn error(&mut self, task: &dyn Task, model: &Model) -> f64 {
        if self.prompts.is_empty() {
            return 1.0;
        }
        let answers = self.answers(model);
        let refs: Vec<&[Token]> = answers.iter().map(Vec::as_slice).collect();
        let ok = task.verifier().verify_batch(&self.prompts, &refs);
        ok.iter().filter(|v| !**v).count() as f64 / self.prompts.len() as f64
    }
}
