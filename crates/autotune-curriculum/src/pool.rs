//! A strategy's weights from outcomes reported by an external trainer (the curriculum
//! service): the trainer samples, the service tallies the verifier's verdicts per prompt and
//! phase, and [`Strategy::pool_weight`](crate::Strategy::pool_weight) turns the tallies into
//! the mask's weight.
//!
//! Two families:
//! - **single model** strategies: the rank is the number of correct samples of the *current*
//!   model version (phase) on the prompt, out of `max_rank` samples reported;
//! - **ensemble** strategies: every phase is one member; the member's verdict on a prompt is
//!   the majority of its samples (ties are wrong); the rank is the number of members whose
//!   verdict is right, out of `max_rank` members that tested it.
//!
//! Weights are normalised to `[0, 1]` (divided by the mask's maximum); a prompt with no outcome
//! yet gets the mask's untested weight.

use crate::weights::{member_alpha, smoothed_edge};

/// Outcomes of one phase (model version) on one prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTally {
    pub correct: u32,
    pub samples: u32,
}

impl PhaseTally {
    /// The member's verdict: the majority of its samples is right (ties are wrong).
    pub fn verdict(&self) -> bool {
        2 * self.correct > self.samples
    }
}

/// Rank, maximum rank and weight of one prompt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub rank: u32,
    pub max_rank: u32,
    pub weight: f64,
}

/// What the service knows of one prompt: its tallies indexed by phase, the pool's current
/// phase, and the members' vote weights (FilterBoost).
pub struct PoolOutcomes<'a> {
    pub phases: &'a [PhaseTally],
    pub current: usize,
    pub alphas: &'a [f64],
}

impl PoolOutcomes<'_> {
    /// Single-model view: correct samples and samples of the current phase.
    pub fn current(&self) -> (u32, u32) {
        let t = self.phases.get(self.current).copied().unwrap_or_default();
        (t.correct, t.samples)
    }

    /// Ensemble view: (rank, members that tested the prompt, vote margin).
    pub fn members(&self) -> (u32, u32, f64) {
        let (mut rank, mut max_rank, mut margin) = (0u32, 0u32, 0.0f64);
        for (j, t) in self.phases.iter().take(self.current + 1).enumerate() {
            if t.samples == 0 {
                continue;
            }
            max_rank += 1;
            let right = t.verdict();
            rank += u32::from(right);
            let a = self.alphas.get(j).copied().unwrap_or(0.0);
            margin += if right { a } else { -a };
        }
        (rank, max_rank, margin)
    }

    /// A single-model score: `weight(rank, max_rank)` once the current phase has samples,
    /// weight 1 before.
    pub fn single(&self, weight: impl Fn(u32, u32) -> f64) -> Scored {
        let (rank, max_rank) = self.current();
        Scored {
            rank,
            max_rank,
            weight: if max_rank == 0 {
                1.0
            } else {
                weight(rank, max_rank)
            },
        }
    }
}

/// Vote weight of every member for FilterBoost: `a_j` from the member's edge measured on the
/// prompts it tested (smoothed; clamped to `[0.001, 0.499]` so that a member no better than
/// chance gets almost no vote instead of a negative one).
pub fn member_alphas(per_member: &[(u64, u64)]) -> Vec<f64> {
    per_member
        .iter()
        .map(|&(tested, errors)| {
            let edge = smoothed_edge(errors as usize, tested as usize).clamp(0.001, 0.499);
            member_alpha(edge)
        })
        .collect()
}
