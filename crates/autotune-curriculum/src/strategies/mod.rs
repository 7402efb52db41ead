//! One file per curriculum. Each holds its registry entry (`INFO`), its typed, checked
//! parameters and its [`Strategy`](crate::Strategy) implementation; the registry is
//! [`STRATEGIES`](crate::STRATEGIES).

pub mod autotune_rl;
pub mod bbm;
pub mod counterexample;
pub mod filterboost;
pub mod learnability;
pub mod paper;
pub mod rft_uniform;
pub mod rlfinetune;
pub mod uniform;
pub mod zero_variance;

use autotune_core::Prompt;

use crate::engine::Context;
use crate::model::{vote_right, Model};
use crate::strategy::Score;
use crate::CurriculumError;

/// One tested candidate under an ensemble (or a single model): per member, its verdict, its
/// vote weight and its answer.
pub(crate) struct Verdicts<'v> {
    pub members: &'v [(bool, f64, Vec<autotune_core::Token>)],
}

impl Verdicts<'_> {
    /// Members right.
    pub fn rank(&self) -> usize {
        self.members.iter().filter(|(c, _, _)| *c).count()
    }

    /// The weighted vote margin `sum_j a_j (2 c_j - 1)`.
    pub fn margin(&self) -> f64 {
        self.members
            .iter()
            .map(|(c, a, _)| if *c { *a } else { -*a })
            .sum()
    }
}

/// Scores candidates by the greedy answers of every member: rank, whether the plurality vote
/// is right, and the acceptance `weight(verdicts)`.
pub(crate) fn score_by_members(
    cx: &mut Context,
    model: &Model,
    cands: &[Prompt],
    weight: impl Fn(&Verdicts) -> f64,
) -> Result<Vec<Score>, CurriculumError> {
    Ok(cx
        .member_verdicts(model, cands)?
        .into_iter()
        .map(|v| {
            let vote_ok = vote_right(&v);
            let verdicts = Verdicts { members: &v };
            Score {
                rank: Some(verdicts.rank()),
                accept: weight(&verdicts),
                vote_ok,
            }
        })
        .collect())
}

/// Scores candidates by the pass counts of `k` samples at `temperature`: the rank is the
/// number of samples right, and the output counts as right only if all of them are (masks of
/// pass rates give no weight to prompts the model always fails, so a run of rejections
/// certifies nothing unless every sample of every rejected candidate was right).
pub(crate) fn score_by_passes(
    cx: &mut Context,
    model: &Model,
    cands: &[Prompt],
    k: usize,
    temperature: f64,
    weight: impl Fn(usize) -> f64,
) -> Result<Vec<Score>, CurriculumError> {
    let all = k * model.len();
    Ok(cx
        .pass_counts(model, cands, k, temperature)?
        .into_iter()
        .map(|p| Score {
            rank: Some(p),
            vote_ok: Some(p == all),
            accept: weight(p),
        })
        .collect())
}
