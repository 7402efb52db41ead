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

use std::collections::BTreeMap;

use autotune_core::Params;
use autotune_curriculum::{build_strategy, strategy_info, CurriculumError, Strategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use autotune_curriculum::pool::{member_alphas, PhaseTally, PoolOutcomes, Scored};

/// The target error a pool's strategy is built for when the mask gives no `eps` (it sets the
/// defaults that depend on eps, e.g. `autotune-bbm`'s K).
pub const DEFAULT_POOL_EPS: f64 = 0.1;

/// The mask as sent by clients: `{"strategy": NAME, "eps": E?, ...params}`, the parameters
/// being the strategy's own (`autotune strategies` lists them).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct MaskSpec {
    pub strategy: String,
    /// Target error the strategy is built for (default [`DEFAULT_POOL_EPS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// The strategy's parameters, as JSON numbers, booleans or strings.
    #[serde(flatten)]
    pub params: BTreeMap<String, Value>,
}

/// A mask parameter that is not valid: `(field, message)`.
pub type MaskError = (String, String);

/// A validated mask: the registry's strategy, built once.
pub struct Mask {
    strategy: Box<dyn Strategy>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mask")
            .field("strategy", &self.strategy.info().name)
            .field("mask", &self.strategy.config().mask)
            .finish()
    }
}

impl MaskSpec {
    /// A mask with no parameters.
    pub fn named(strategy: &str) -> MaskSpec {
        MaskSpec {
            strategy: strategy.into(),
            eps: None,
            params: BTreeMap::new(),
        }
    }

    /// Checks the parameters against the strategy's declared list and builds it.
    pub fn resolve(&self) -> Result<Mask, MaskError> {
        let info = strategy_info(&self.strategy)
            .map_err(|e| ("mask.strategy".to_string(), e.to_string()))?;
        let eps = self.eps.unwrap_or(DEFAULT_POOL_EPS);
        if !(eps > 0.0 && eps < 1.0) {
            return Err(("mask.eps".into(), "eps must be in (0, 1)".into()));
        }
        let mut items = Vec::new();
        for (key, v) in &self.params {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err((
                        format!("mask.{key}"),
                        "expected a number, a boolean or a string".into(),
                    ))
                }
            };
            items.push(format!("{key}={text}"));
        }
        let params = Params::parse(&items).map_err(|e| ("mask".to_string(), e.to_string()))?;
        let field = |e: &CurriculumError| match e {
            CurriculumError::Core(autotune_core::CoreError::UnknownParam { key, .. })
            | CurriculumError::Core(autotune_core::CoreError::BadParam { key, .. }) => {
                format!("mask.{key}")
            }
            _ => "mask".to_string(),
        };
        let strategy =
            build_strategy(info.name, &params, eps, 1).map_err(|e| (field(&e), e.to_string()))?;
        if strategy
            .pool_weight(&PoolOutcomes {
                phases: &[],
                current: 0,
                alphas: &[],
            })
            .is_none()
        {
            return Err((
                "mask.strategy".into(),
                format!(
                    "strategy `{}` cannot be served from reported outcomes",
                    info.name
                ),
            ));
        }
        Ok(Mask { strategy })
    }
}

/// The strategies a pool accepts: those of the registry whose weights come from outcomes a
/// trainer reports.
pub fn service_strategies() -> Vec<&'static str> {
    autotune_curriculum::STRATEGIES
        .iter()
        .filter(|s| MaskSpec::named(s.name).resolve().is_ok())
        .map(|s| s.name)
        .collect()
}

impl Mask {
    /// Ensemble masks count members (phases); single-model masks count samples of the current
    /// phase.
    pub fn is_ensemble(&self) -> bool {
        self.strategy.pool_is_ensemble()
    }

    /// Scores one prompt. `phases` holds the prompt's tallies indexed by phase (members), with
    /// `current` the pool's phase; `alphas` the members' vote weights (FilterBoost).
    pub fn score(&self, phases: &[PhaseTally], current: usize, alphas: &[f64]) -> Scored {
        self.strategy
            .pool_weight(&PoolOutcomes {
                phases,
                current,
                alphas,
            })
            .expect("resolve admits only strategies with pool weights")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(correct: u32, samples: u32) -> PhaseTally {
        PhaseTally { correct, samples }
    }

    fn spec(s: &str) -> MaskSpec {
        MaskSpec::named(s)
    }

    fn mask(json: Value) -> Mask {
        serde_json::from_value::<MaskSpec>(json)
            .unwrap()
            .resolve()
            .unwrap()
    }

    fn score(m: &Mask, phases: &[PhaseTally], current: usize, alphas: &[f64]) -> Scored {
        m.score(phases, current, alphas)
    }

    #[test]
    fn every_curriculum_strategy_is_served() {
        for s in autotune_curriculum::STRATEGIES {
            if !s.in_all {
                continue;
            }
            spec(s.name).resolve().unwrap();
        }
        let e = spec("nope").resolve().unwrap_err();
        assert_eq!(e.0, "mask.strategy");
        let bad: MaskSpec =
            serde_json::from_value(serde_json::json!({"strategy": "uniform", "gamma": 0.1}))
                .unwrap();
        assert_eq!(bad.resolve().unwrap_err().0, "mask.gamma");
        let even: MaskSpec =
            serde_json::from_value(serde_json::json!({"strategy": "autotune-bbm", "phases": 4}))
                .unwrap();
        assert_eq!(even.resolve().unwrap_err().0, "mask.phases");
        let eps: MaskSpec =
            serde_json::from_value(serde_json::json!({"strategy": "uniform", "eps": 2.0})).unwrap();
        assert_eq!(eps.resolve().unwrap_err().0, "mask.eps");
        // A stored mask of the old service (numbers for its parameters) still resolves.
        mask(serde_json::json!({"strategy": "autotune-bbm", "phases": 9, "gamma": 0.25}));
    }

    #[test]
    fn single_model_masks_follow_the_spec() {
        let cex = mask(serde_json::json!({"strategy": "autotune-cex"}));
        assert_eq!(score(&cex, &[], 0, &[]).weight, 1.0);
        assert_eq!(score(&cex, &[t(0, 4)], 0, &[]).weight, 1.0);
        assert_eq!(score(&cex, &[t(1, 4)], 0, &[]).weight, 0.0);
        // A new phase resets the rank: phase 1 has no outcome yet.
        assert_eq!(score(&cex, &[t(1, 4)], 1, &[]).weight, 1.0);
        let zv = mask(serde_json::json!({"strategy": "zero-variance"}));
        assert_eq!(score(&zv, &[t(0, 4)], 0, &[]).weight, 0.0);
        assert_eq!(score(&zv, &[t(4, 4)], 0, &[]).weight, 0.0);
        assert_eq!(score(&zv, &[t(2, 4)], 0, &[]).weight, 1.0);
        let l = score(
            &mask(serde_json::json!({"strategy": "learnability"})),
            &[t(1, 4)],
            0,
            &[],
        );
        assert!((l.weight - 0.75).abs() < 1e-12);
        assert_eq!((l.rank, l.max_rank), (1, 4));
    }

    #[test]
    fn bbm_weights_match_the_k3_example() {
        // K = 3, gamma = 1/4: after one member, r=0 -> 3/4, r=1 -> 1/4 (normalised by 3/4).
        let m = mask(serde_json::json!({"strategy": "autotune-bbm", "phases": 3, "gamma": 0.25}));
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
        let m = mask(serde_json::json!({"strategy": "autotune-filterboost"}));
        let alphas = member_alphas(&[(100, 10)]);
        assert!(alphas[0] > 0.0);
        assert_eq!(score(&m, &[], 0, &alphas).weight, 0.5);
        assert!(score(&m, &[t(0, 2)], 0, &alphas).weight > 0.5);
        assert!(score(&m, &[t(2, 2)], 0, &alphas).weight < 0.5);
    }
}
