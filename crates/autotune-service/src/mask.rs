//! The masks a pool can be configured with, and the weight of one prompt under them.
//!
//! Two families (see the crate documentation for the phase model):
//! - **single model** (`uniform`, `autotune-cex`, `zero-variance`, `learnability`): the rank is
//!   the number of correct samples of the *current* model version (phase) on the prompt, out of
//!   `max_rank` samples reported;
//! - **ensemble** (`autotune-bbm`, `autotune-filterboost`): every phase is one member; the
//!   member's verdict on a prompt is the majority of its samples (ties are wrong); the rank is
//!   the number of members whose verdict is right, out of `max_rank` members that tested it.
//!
//! Weights are normalised to `[0, 1]` (divided by the mask's maximum); a prompt with no outcome
//! yet gets the mask's untested weight (1 for every mask but FilterBoost/MadaBoost, whose
//! margin 0 gives 1/2, as in phase 0 of the spec where all prompts weigh the same).

use autotune_curriculum::weights::{
    bbm_max_weight, bbm_weight, filterboost_weight, learnability_weight, madaboost_weight,
    member_alpha, smoothed_edge, zero_variance_weight,
};
use serde::{Deserialize, Serialize};

/// The strategies a pool accepts, by the names `autotune strategies` lists.
pub const SERVICE_STRATEGIES: &[&str] = &[
    "uniform",
    "autotune-cex",
    "zero-variance",
    "learnability",
    "autotune-filterboost",
    "autotune-bbm",
    "rft-uniform",
    "autotune-rl",
];

/// The mask as sent by clients: `{"strategy": NAME, ...params}`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MaskSpec {
    pub strategy: String,
    /// `autotune-bbm`: assumed edge of each member (default 0.25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// `autotune-bbm`: K, the number of members (odd; default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<usize>,
    /// `autotune-filterboost`: `filterboost` (default) or `madaboost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A validated mask.
#[derive(Clone, Debug, PartialEq)]
pub enum Mask {
    Uniform,
    Counterexample,
    ZeroVariance,
    Learnability,
    FilterBoost { madaboost: bool },
    BoostByMajority { phases: usize, gamma: f64 },
}

/// A mask parameter that is not valid: `(field, message)`.
pub type MaskError = (String, String);

impl MaskSpec {
    /// Checks the parameters and resolves the mask.
    pub fn resolve(&self) -> Result<Mask, MaskError> {
        let only = |allowed: &[&str]| -> Result<(), MaskError> {
            for (key, set) in [
                ("gamma", self.gamma.is_some()),
                ("phases", self.phases.is_some()),
                ("variant", self.variant.is_some()),
            ] {
                if set && !allowed.contains(&key) {
                    return Err((
                        format!("mask.{key}"),
                        format!("strategy `{}` takes no parameter `{key}`", self.strategy),
                    ));
                }
            }
            Ok(())
        };
        match self.strategy.as_str() {
            // The RL strategies' masks: the trainer rejection-samples (or runs policy gradient)
            // on the prompts the pool hands out.
            "uniform" | "rft-uniform" => only(&[]).map(|_| Mask::Uniform),
            "autotune-cex" | "autotune-rl" => only(&[]).map(|_| Mask::Counterexample),
            "zero-variance" => only(&[]).map(|_| Mask::ZeroVariance),
            "learnability" => only(&[]).map(|_| Mask::Learnability),
            "autotune-filterboost" => {
                only(&["variant"])?;
                match self.variant.as_deref().unwrap_or("filterboost") {
                    "filterboost" => Ok(Mask::FilterBoost { madaboost: false }),
                    "madaboost" => Ok(Mask::FilterBoost { madaboost: true }),
                    v => Err((
                        "mask.variant".into(),
                        format!("unknown variant `{v}`; valid: filterboost, madaboost"),
                    )),
                }
            }
            "autotune-bbm" => {
                only(&["gamma", "phases"])?;
                let gamma = self.gamma.unwrap_or(0.25);
                if !(gamma > 0.0 && gamma < 0.5) {
                    return Err(("mask.gamma".into(), "gamma must be in (0, 0.5)".into()));
                }
                let phases = self.phases.unwrap_or(9);
                if phases == 0 || phases.is_multiple_of(2) || phases > 10_001 {
                    return Err((
                        "mask.phases".into(),
                        "phases (K) must be odd, between 1 and 10001".into(),
                    ));
                }
                Ok(Mask::BoostByMajority { phases, gamma })
            }
            other => Err((
                "mask.strategy".into(),
                format!(
                    "unknown strategy `{other}`; valid strategies: {}",
                    SERVICE_STRATEGIES.join(", ")
                ),
            )),
        }
    }
}

impl Mask {
    /// Ensemble masks count members (phases); single-model masks count samples of the current
    /// phase.
    pub fn is_ensemble(&self) -> bool {
        matches!(
            self,
            Mask::FilterBoost { .. } | Mask::BoostByMajority { .. }
        )
    }
}

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

/// Scores one prompt. `phases` holds the prompt's tallies indexed by phase (members), with
/// `current` the pool's phase; `alphas` the members' vote weights (FilterBoost only).
pub fn score(mask: &Mask, phases: &[PhaseTally], current: usize, alphas: &[f64]) -> Scored {
    if !mask.is_ensemble() {
        let t = phases.get(current).copied().unwrap_or_default();
        let (rank, max_rank) = (t.correct, t.samples);
        let weight = if max_rank == 0 {
            1.0
        } else {
            match mask {
                Mask::Uniform => 1.0,
                Mask::Counterexample => {
                    if rank == 0 {
                        1.0
                    } else {
                        0.0
                    }
                }
                Mask::ZeroVariance => zero_variance_weight(rank as usize, max_rank as usize),
                Mask::Learnability => learnability_weight(f64::from(rank) / f64::from(max_rank)),
                Mask::FilterBoost { .. } | Mask::BoostByMajority { .. } => unreachable!(),
            }
        };
        return Scored {
            rank,
            max_rank,
            weight,
        };
    }
    let members = phases.iter().take(current + 1);
    let (mut rank, mut max_rank, mut margin) = (0u32, 0u32, 0.0f64);
    for (j, t) in members.enumerate() {
        if t.samples == 0 {
            continue;
        }
        max_rank += 1;
        let right = t.verdict();
        rank += u32::from(right);
        let a = alphas.get(j).copied().unwrap_or(0.0);
        margin += if right { a } else { -a };
    }
    let weight = match mask {
        Mask::FilterBoost { madaboost: false } => filterboost_weight(margin),
        Mask::FilterBoost { madaboost: true } => madaboost_weight(margin),
        Mask::BoostByMajority { phases: k, gamma } => {
            let i = max_rank as usize;
            let max = bbm_max_weight(*k, i, *gamma);
            if max > 0.0 {
                bbm_weight(*k, i, rank as usize, *gamma) / max
            } else {
                0.0
            }
        }
        _ => unreachable!(),
    };
    Scored {
        rank,
        max_rank,
        weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(correct: u32, samples: u32) -> PhaseTally {
        PhaseTally { correct, samples }
    }

    fn spec(s: &str) -> MaskSpec {
        MaskSpec {
            strategy: s.into(),
            gamma: None,
            phases: None,
            variant: None,
        }
    }

    #[test]
    fn every_curriculum_strategy_is_served() {
        for s in autotune_curriculum::STRATEGIES {
            assert!(
                SERVICE_STRATEGIES.contains(&s.name),
                "strategy {} is not served",
                s.name
            );
            spec(s.name).resolve().unwrap();
        }
        let e = spec("nope").resolve().unwrap_err();
        assert_eq!(e.0, "mask.strategy");
        let mut bad = spec("uniform");
        bad.gamma = Some(0.1);
        assert_eq!(bad.resolve().unwrap_err().0, "mask.gamma");
        let mut even = spec("autotune-bbm");
        even.phases = Some(4);
        assert_eq!(even.resolve().unwrap_err().0, "mask.phases");
    }

    #[test]
    fn single_model_masks_follow_the_spec() {
        let cex = Mask::Counterexample;
        assert_eq!(score(&cex, &[], 0, &[]).weight, 1.0);
        assert_eq!(score(&cex, &[t(0, 4)], 0, &[]).weight, 1.0);
        assert_eq!(score(&cex, &[t(1, 4)], 0, &[]).weight, 0.0);
        // A new phase resets the rank: phase 1 has no outcome yet.
        assert_eq!(score(&cex, &[t(1, 4)], 1, &[]).weight, 1.0);
        let zv = Mask::ZeroVariance;
        assert_eq!(score(&zv, &[t(0, 4)], 0, &[]).weight, 0.0);
        assert_eq!(score(&zv, &[t(4, 4)], 0, &[]).weight, 0.0);
        assert_eq!(score(&zv, &[t(2, 4)], 0, &[]).weight, 1.0);
        let l = score(&Mask::Learnability, &[t(1, 4)], 0, &[]);
        assert!((l.weight - 0.75).abs() < 1e-12);
        assert_eq!((l.rank, l.max_rank), (1, 4));
    }

    #[test]
    fn bbm_weights_match_the_k3_example() {
        // K = 3, gamma = 1/4: after one member, r=0 -> 3/4, r=1 -> 1/4 (normalised by 3/4).
        let m = Mask::BoostByMajority {
            phases: 3,
            gamma: 0.25,
        };
        assert_eq!(score(&m, &[], 0, &[]).weight, 1.0);
        assert!((score(&m, &[t(0, 1)], 0, &[]).weight - 1.0).abs() < 1e-12);
        assert!((score(&m, &[t(1, 1)], 0, &[]).weight - 1.0 / 3.0).abs() < 1e-12);
        // After two members: only rank 1 (the majority boundary) keeps weight.
        assert_eq!(score(&m, &[t(1, 1), t(0, 1)], 1, &[]).weight, 1.0);
        assert_eq!(score(&m, &[t(1, 1), t(1, 1)], 1, &[]).weight, 0.0);
        assert_eq!(score(&m, &[t(0, 1), t(0, 1)], 1, &[]).weight, 0.0);
    }

    #[test]
    fn filterboost_weights_mistakes_at_least_half() {
        let m = Mask::FilterBoost { madaboost: false };
        let alphas = member_alphas(&[(100, 10)]);
        assert!(alphas[0] > 0.0);
        assert_eq!(score(&m, &[], 0, &alphas).weight, 0.5);
        assert!(score(&m, &[t(0, 2)], 0, &alphas).weight > 0.5);
        assert!(score(&m, &[t(2, 2)], 0, &alphas).weight < 0.5);
    }
}
