//! `autotune-paper` (Algorithms 1 and 2 of the paper, as written) and `autotune-paper-rl`
//! (Algorithm 5: the same loop over RLFineTune).
//!
//! - `k = ceil(C ln(1/eps) / err*^2)` phases, `err* = 1/4`; all k run (no early stop).
//! - A prompt dataset of `n >= C' k^1.5 / eps (n_prompt + ln(k/delta))` prompts split into k
//!   disjoint parts of `n/k`; phase j scans only its own part.
//! - Sample (Algorithm 2): a prompt of rank r (members whose answer the verifier accepts) is
//!   accepted with probability `alpha^{j,k}_r / max_r' alpha^{j,k}_r'`; the scan stops at
//!   `n_prompt` accepted prompts. A part that runs out first is the paper's ABORT: the member
//!   still trains on what was found.
//! - Member j trains on its own phase's demonstrations only; the output is the plurality vote.
//!
//! The rank is evaluated lazily by default: the uniform draw `u` of Algorithm 2 is made first
//! and members are asked one at a time until the accept/reject decision no longer depends on
//! the members not yet asked. Given the same `u`, the decision is the one the full rank gives
//! (`rank_eval=full` asks every member and records the rank histogram), so the algorithm is
//! the same and only the verifier calls it pays for are fewer.

use std::sync::Mutex;

use autotune_core::{ParamSpec, Prompt, Student};

use crate::engine::Context;
use crate::model::Model;
use crate::strategy::common::*;
use crate::strategy::{
    Certificate, MaskInfo, Output, Phase, Resolved, Score, Source, Strategy, StrategyConfig,
    StrategyInfo, Update,
};
use crate::weights::{paper_phases, PaperWeights};
use crate::CurriculumError;

const PAPER_PARAMS: &[ParamSpec] = &[
    ParamSpec { key: "c", default: "1", help: "C of k = ceil(C ln(1/eps) / err*^2), the paper's 'large absolute constant' (> 0)" },
    ParamSpec { key: "err_star", default: "0.25", help: "err*: the error each member is trained to on its filtered distribution, in (0, 1/2)" },
    ParamSpec { key: "phases", default: "auto", help: "k (auto: from c and err*)" },
    ParamSpec { key: "n_prompt", default: "auto", help: "accepted prompts per phase at which Sample stops (auto: 2 d)" },
    ParamSpec { key: "n", default: "auto", help: "prompts in the dataset, split into k parts (auto: n_const k^1.5 / eps (n_prompt + ln(k/delta)))" },
    ParamSpec { key: "n_const", default: "1", help: "C' of the dataset size n (> 0)" },
    ParamSpec { key: "delta", default: "0.01", help: "failure probability delta (sets n, and m for RLFineTune)" },
    ParamSpec { key: "rank_eval", default: "lazy", help: "lazy: ask members until Algorithm 2's decision is settled (same decisions, fewer verifier calls) | full: every member, with the rank histogram" },
    ParamSpec { key: "diag_prompts", default: "2000", help: "scanned prompts per phase on which the new member's error on its filtered distribution is estimated (importance-weighted, off the ledger; 0: none)" },
    CUMULATIVE_PAPER,
    WARM_START,
];

const CUMULATIVE_PAPER: ParamSpec = ParamSpec {
    key: "cumulative",
    default: "false",
    help: "train each member on all demonstrations so far (practice) instead of its phase's only (the paper)",
};

/// Algorithm 1's parameters, then RLFineTune's.
const RL_PARAMS: &[ParamSpec] = &[
    PAPER_PARAMS[0],
    PAPER_PARAMS[1],
    PAPER_PARAMS[2],
    PAPER_PARAMS[3],
    PAPER_PARAMS[4],
    PAPER_PARAMS[5],
    PAPER_PARAMS[6],
    PAPER_PARAMS[7],
    PAPER_PARAMS[8],
    C_SEQ,
    M_SAMPLES,
    CUMULATIVE_PAPER,
    WARM_START,
];

pub(crate) const C_SEQ: ParamSpec = ParamSpec {
    key: "c_seq",
    default: "auto",
    help: "RLFineTune: coverage C_seq of pi_ref, >= 1 (keeps samples with pi_ref(y|x) >= 1/C_seq; auto: the reference policy's own)",
};
pub(crate) const M_SAMPLES: ParamSpec = ParamSpec {
    key: "samples",
    default: "auto",
    help: "RLFineTune: pi_ref samples per prompt m (auto: C_seq ln(4 n C_seq / delta))",
};

pub const INFO: StrategyInfo = StrategyInfo {
    name: "autotune-paper",
    needs_reference: false,
    needs_sampling: false,
    in_all: false,
    selector: None,
    summary: "the paper's AutoTune (Algorithms 1 + 2) as written: k = ceil(C ln(1/eps)/err*^2) phases, a dataset of n prompts in k parts, Sample stops at n_prompt accepted (ABORT: the part ran out), members on their own phase's demos, plurality vote, no early stop",
    params: PAPER_PARAMS,
    build,
};

pub const INFO_RL: StrategyInfo = StrategyInfo {
    name: "autotune-paper-rl",
    needs_reference: true,
    needs_sampling: false,
    in_all: false,
    selector: None,
    summary: "the paper's AutoTune.RL (Algorithm 5): Algorithm 1 with RLFineTune as the base learner (m samples of pi_ref per accepted prompt, kept when verified and pi_ref(y|x) >= 1/C_seq), no teacher",
    params: RL_PARAMS,
    build,
};

const STOCH_PARAMS: &[ParamSpec] = &[
    ParamSpec { key: "c", default: "1", help: "C of k = ceil(C ln(1/eps) / err_outer^2) (> 0)" },
    ParamSpec { key: "err_outer", default: "0.0025", help: "err* of the outer loop, which sets k: the paper's 1/400 (k = 160000 C ln(1/eps) phases: give phases=K or err_outer=0.1 to run it)" },
    ParamSpec { key: "err_star", default: "0.1", help: "err* of the weights (Eq. 17), in (0, 1/2)" },
    ParamSpec { key: "threshold", default: "0.8", help: "the weights' final threshold: beta^{k,k}_r = 1[r <= threshold k] (the paper's 4/5)" },
    ParamSpec { key: "acc_threshold", default: "0.9", help: "a member counts in the Monte-Carlo rank when at least this fraction of its samples is right (the paper's 9/10)" },
    ParamSpec { key: "samples", default: "10", help: "m: samples per member and prompt for the Monte-Carlo rank" },
    ParamSpec { key: "temperature", default: "1.0", help: "temperature of the members' samples (rank and output)" },
    ParamSpec { key: "phases", default: "auto", help: "k (auto: from c and err_outer)" },
    ParamSpec { key: "n_prompt", default: "auto", help: "accepted prompts per phase at which Sample stops (auto: 2 d)" },
    ParamSpec { key: "n", default: "auto", help: "prompts in the dataset, split into k parts (auto: n_const k^1.5 / eps (n_prompt + ln(k/delta)))" },
    ParamSpec { key: "n_const", default: "1", help: "C' of the dataset size n (> 0)" },
    ParamSpec { key: "delta", default: "0.01", help: "failure probability delta (sets n)" },
    ParamSpec { key: "rank_eval", default: "lazy", help: "lazy: ask members until the decision is settled (same decisions, fewer samples) | full: every member, with the rank histogram" },
    ParamSpec { key: "accuracy", default: "0.6", help: "the output metric: a prompt counts as solved when the mixture's accuracy on it is at least this (the paper's 3/5)" },
    CUMULATIVE_PAPER,
    WARM_START,
];

pub const INFO_STOCH: StrategyInfo = StrategyInfo {
    name: "autotune-stoch",
    needs_reference: false,
    needs_sampling: true,
    in_all: false,
    selector: None,
    summary: "the paper's AutoTune_stoch (Algorithm 3), for stochastic students: Monte-Carlo rank (members with >= 9/10 of m samples right), weights with err* = 1/10 and threshold 4k/5, the uniform mixture of the k members as output (judged by Pr_x[Acc_x >= 3/5])",
    params: STOCH_PARAMS,
    build,
};

pub const INFO_CONS: StrategyInfo = StrategyInfo {
    name: "autotune-cons",
    needs_reference: false,
    needs_sampling: true,
    in_all: false,
    selector: None,
    summary: "the paper's AutoTune_cons: Algorithm 3's ensemble answering with the plurality of N independent answers of the mixture (N = votes)",
    params: &[
        STOCH_PARAMS[0], STOCH_PARAMS[1], STOCH_PARAMS[2], STOCH_PARAMS[3], STOCH_PARAMS[4],
        STOCH_PARAMS[5], STOCH_PARAMS[6], STOCH_PARAMS[7], STOCH_PARAMS[8], STOCH_PARAMS[9],
        STOCH_PARAMS[10], STOCH_PARAMS[11], STOCH_PARAMS[12],
        ParamSpec { key: "votes", default: "auto", help: "N answers of the mixture per prompt (auto: ceil(3 ln(1/eps)), the paper's Omega(log 1/eps))" },
        CUMULATIVE_PAPER,
        WARM_START,
    ],
    build,
};

fn build(r: &Resolved) -> Result<Box<dyn Strategy>, CurriculumError> {
    Ok(Box::new(Paper::new(r)?))
}

/// How a member's verdict on a prompt is made.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    /// The verifier on its greedy answer (deterministic members, Algorithm 1).
    Greedy,
    /// `Acc_hat >= acc_threshold` from `m` samples at `temperature` (Algorithm 3).
    Sampled {
        m: usize,
        temperature: f64,
        acc_threshold: f64,
    },
}

/// Algorithm 1's sizes from its parameters: `(k, n_prompt, n)`.
pub(crate) fn paper_sizes(r: &Resolved) -> Result<(usize, usize, u64, f64, f64), CurriculumError> {
    let c = r.checked("c", "a number > 0 (the paper's C)", |c: f64| {
        c > 0.0 && c.is_finite()
    })?;
    let err_star = r.checked("err_star", "a number in (0, 1/2)", |e: f64| {
        e > 0.0 && e < 0.5
    })?;
    let err_k = if r.has("err_outer") {
        r.checked("err_outer", "a number in (0, 1/2)", |e: f64| {
            e > 0.0 && e < 0.5
        })?
    } else {
        err_star
    };
    let k = r.auto_or(
        "phases",
        paper_phases(c, r.eps, err_k),
        "a positive integer or auto",
        |k: usize| k >= 1,
    )?;
    let n_prompt = r.auto_or(
        "n_prompt",
        2 * r.d.max(1),
        "a positive integer or auto (n_prompt = 0 accepts nothing: every phase would abort)",
        |n: usize| n >= 1,
    )?;
    let delta = r.checked("delta", "a number in (0, 1)", |x: f64| x > 0.0 && x < 1.0)?;
    let n_const = r.checked("n_const", "a number > 0", |x: f64| x > 0.0 && x.is_finite())?;
    let kf = k as f64;
    let auto_n = (n_const * kf.powf(1.5) / r.eps * (n_prompt as f64 + (kf / delta).ln())).ceil();
    let n = r.auto_or(
        "n",
        auto_n.min(1e15) as u64,
        "a positive integer (at least k) or auto",
        |n: u64| n >= k as u64,
    )?;
    Ok((k, n_prompt, n, delta, err_star))
}

pub(crate) struct Paper {
    info: &'static StrategyInfo,
    cfg: StrategyConfig,
    weights: PaperWeights,
    part: usize,
    lazy: bool,
    diag: usize,
    verdict: Verdict,
    /// The first `diag` prompts scanned in the current phase: (phase, prompts).
    stash: Mutex<(usize, Vec<Prompt>)>,
}

impl Paper {
    fn new(r: &Resolved) -> Result<Self, CurriculumError> {
        let (k, n_prompt, n, delta, err_star) = paper_sizes(r)?;
        let mut cfg = r.base(
            MaskInfo::new("paper")
                .with("err_star", err_star)
                .with("k", k)
                .with("n_prompt", n_prompt)
                .with("n", n)
                .with("part", n / k as u64),
        )?;
        cfg.ensemble = true;
        cfg.init_demos = n_prompt;
        cfg.phase_demos = n_prompt;
        cfg.max_phases = k;
        cfg.delta = delta;
        if r.has("c_seq") {
            let c_seq = match r.params.raw("c_seq") {
                Some("auto") => None,
                _ => Some(r.checked("c_seq", "a number >= 1 or auto", |c: f64| {
                    c >= 1.0 && c.is_finite()
                })?),
            };
            let samples = match r.params.raw("samples") {
                Some("auto") => None,
                _ => Some(r.checked("samples", "a positive integer or auto", |m: usize| m >= 1)?),
            };
            cfg.source = Source::FilteredReference {
                c_seq,
                samples,
                n,
                delta,
            };
        }
        let (verdict, threshold) = if r.has("acc_threshold") {
            let temperature = r.checked("temperature", "a number > 0", |t: f64| {
                t > 0.0 && t.is_finite()
            })?;
            let verdict = Verdict::Sampled {
                m: r.checked("samples", "a positive integer", |m: usize| m >= 1)?,
                temperature,
                acc_threshold: r.checked("acc_threshold", "a number in (0, 1]", |a: f64| {
                    a > 0.0 && a <= 1.0
                })?,
            };
            cfg.output = if r.has("votes") {
                let auto = (3.0 * (1.0 / r.eps).ln()).ceil().max(1.0) as usize;
                Output::Consensus {
                    votes: r.count_or("votes", auto)?,
                    temperature,
                }
            } else {
                Output::Mixture {
                    temperature,
                    accuracy: r.checked("accuracy", "a number in (0, 1]", |a: f64| {
                        a > 0.0 && a <= 1.0
                    })?,
                }
            };
            let threshold = r.checked("threshold", "a number in (0, 1)", |t: f64| {
                t > 0.0 && t < 1.0
            })?;
            (verdict, threshold)
        } else {
            (Verdict::Greedy, 0.5)
        };
        Ok(Self {
            info: r.info,
            cfg,
            weights: PaperWeights::new(k, err_star, threshold),
            verdict,
            part: (n / k as u64).min(usize::MAX as u64) as usize,
            lazy: r.choice("rank_eval", &["lazy", "full"])? == "lazy",
            diag: if r.has("diag_prompts") {
                r.checked("diag_prompts", "an integer >= 0", |_: usize| true)?
            } else {
                0
            },
            stash: Mutex::new((usize::MAX, Vec::new())),
        })
    }

    /// Algorithm 2's decision for a uniform draw `u` once the rank is known to lie in
    /// `lo..=hi`: `Some(accept)` when every rank of the range decides alike.
    fn settled(accept: &[f64], u: f64, lo: usize, hi: usize) -> Option<bool> {
        let first = u < accept[lo];
        accept[lo..=hi]
            .iter()
            .all(|&a| (u < a) == first)
            .then_some(first)
    }

    /// Whether `student` counts as right on each prompt (Algorithm 1: its greedy answer is
    /// accepted; Algorithm 3: at least `acc_threshold` of its `m` samples are).
    fn member_ok(
        &self,
        cx: &mut Context,
        student: &dyn Student,
        batch: &[Prompt],
    ) -> Result<Vec<bool>, CurriculumError> {
        match self.verdict {
            Verdict::Greedy => {
                let traces = cx.meter().generate(student, batch)?;
                Ok(cx.meter().verify(batch, &traces)?)
            }
            Verdict::Sampled {
                m,
                temperature,
                acc_threshold,
            } => {
                let mut right = vec![0usize; batch.len()];
                for _ in 0..m {
                    let seed = cx.next_sample_seed();
                    let traces = cx.meter().sample(student, batch, temperature, seed)?;
                    for (r, ok) in right.iter_mut().zip(cx.meter().verify(batch, &traces)?) {
                        *r += usize::from(ok);
                    }
                }
                let need = acc_threshold * m as f64 - 1e-9;
                Ok(right.into_iter().map(|r| r as f64 >= need).collect())
            }
        }
    }

    fn stash(&self, phase: usize, cands: &[Prompt]) {
        if self.diag == 0 {
            return;
        }
        let mut s = self.stash.lock().expect("stash lock");
        if s.0 != phase {
            *s = (phase, Vec::new());
        }
        let room = self.diag.saturating_sub(s.1.len());
        s.1.extend(cands.iter().take(room).cloned());
    }

    /// The new member's error on its phase's filtered distribution, estimated on the stashed
    /// scanned prompts weighted by Algorithm 2's acceptance (off the ledger, like a held-out
    /// evaluation). `None` when the stash carries too little weight to say.
    fn member_error(
        &self,
        cx: &Context,
        model: &Model,
        phase: usize,
        member: &dyn Student,
    ) -> Option<f64> {
        let (p, prompts) = std::mem::take(&mut *self.stash.lock().expect("stash lock"));
        if p != phase || prompts.is_empty() {
            return None;
        }
        let task = cx.task();
        let verify = |s: &dyn Student| -> Vec<bool> {
            let traces = s.generate_batch(&prompts);
            let answers: Vec<&[autotune_core::Token]> = traces.iter().map(|t| t.answer()).collect();
            task.verifier().verify_batch(&prompts, &answers)
        };
        let mut rank = vec![0usize; prompts.len()];
        for (s, _) in model.members() {
            for (r, ok) in rank.iter_mut().zip(verify(s)) {
                *r += usize::from(ok);
            }
        }
        let j = model.len();
        let (mut w, mut werr) = (0.0, 0.0);
        for (r, ok) in rank.iter().zip(verify(member)) {
            let a = self.weights.accept(j, *r);
            w += a;
            werr += if ok { 0.0 } else { a };
        }
        // About ten accepted prompts' worth of weight, or the estimate is noise.
        (w >= 10.0).then(|| werr / w)
    }
}

impl Strategy for Paper {
    fn info(&self) -> &'static StrategyInfo {
        self.info
    }

    fn config(&self) -> &StrategyConfig {
        &self.cfg
    }

    /// A lazy rank is never known in full (members stop being asked once the decision is
    /// settled), so the phase records no histogram: 0, as for an untested phase.
    fn max_rank(&self, model: &Model) -> usize {
        if self.lazy {
            0
        } else {
            model.len()
        }
    }

    fn score(
        &self,
        cx: &mut Context,
        model: &Model,
        phase: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        self.stash(phase, cands);
        let j = model.len();
        let accept: Vec<f64> = (0..=j).map(|r| self.weights.accept(j, r)).collect();
        let u: Vec<f64> = cands.iter().map(|_| cx.uniform()).collect();
        let decide = |ok: bool| Score {
            rank: None,
            accept: f64::from(u8::from(ok)),
            vote_ok: None,
        };
        let mut right = vec![0usize; cands.len()];
        let lazy = self.lazy;
        let settle = |u: f64, lo: usize, hi: usize| {
            if lazy || lo == hi {
                Self::settled(&accept, u, lo, hi)
            } else {
                None
            }
        };
        let mut out: Vec<Option<bool>> = (0..cands.len()).map(|i| settle(u[i], 0, j)).collect();
        let mut active: Vec<usize> = (0..cands.len()).filter(|&i| out[i].is_none()).collect();
        let mut batch: Vec<Prompt> = active.iter().map(|&i| cands[i].clone()).collect();
        for (t, (student, _)) in model.members().into_iter().enumerate() {
            if active.is_empty() {
                break;
            }
            let verdicts = self.member_ok(cx, student, &batch)?;
            let left = j - t - 1;
            let mut still = Vec::with_capacity(active.len());
            for (&i, ok) in active.iter().zip(verdicts) {
                right[i] += usize::from(ok);
                match settle(u[i], right[i], right[i] + left) {
                    Some(d) => out[i] = Some(d),
                    None => still.push(i),
                }
            }
            if still.len() != active.len() {
                batch = still.iter().map(|&i| cands[i].clone()).collect();
                active = still;
            }
        }
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, d)| match d {
                Some(d) if lazy => decide(d),
                // Every member asked: the rank is known, and so is the decision.
                _ => Score {
                    rank: Some(right[i]),
                    ..decide(u[i] < accept[right[i]])
                },
            })
            .collect())
    }

    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        let (student, fit) = cx.fit_member(model, phase, &self.cfg)?;
        let member_error = self.member_error(cx, model, phase.phase, student.as_ref());
        cx.push_member(model, student, 1.0, phase.all.len());
        Ok(Update {
            fit,
            member_error,
            member_added: true,
        })
    }

    /// All k phases run: the paper never stops early.
    fn certificate(&self) -> Option<Certificate> {
        None
    }

    fn part_size(&self) -> Option<usize> {
        Some(self.part)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_decides_only_when_every_rank_agrees() {
        let a = [0.0, 0.5, 1.0, 0.2];
        assert_eq!(Paper::settled(&a, 0.3, 0, 3), None);
        assert_eq!(Paper::settled(&a, 0.3, 1, 2), Some(true));
        assert_eq!(Paper::settled(&a, 0.6, 0, 0), Some(false));
        assert_eq!(Paper::settled(&a, 0.6, 3, 3), Some(false));
        assert_eq!(Paper::settled(&a, 0.1, 1, 3), Some(true));
    }
}
