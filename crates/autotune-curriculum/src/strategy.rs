//! The curricula, selectable by name, with validated hyper-parameters.

use autotune_core::{ParamSpec, Params};
use serde::Serialize;

use crate::weights::bbm_phases;
use crate::CurriculumError;

/// The mask: which tested prompts get a teacher demonstration.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Mask {
    /// Weight 1 everywhere: non-adaptive SFT.
    Uniform,
    /// Weight 1 where the current model's greedy answer is wrong.
    Counterexample,
    /// Boost-by-majority over ranks, with the edge `gamma` guessed in advance.
    BoostByMajority { gamma: f64 },
    /// Adaptive weights of the margin: FilterBoost `1/(1+e^F)` or MadaBoost `min(1, e^-F)`.
    FilterBoost { madaboost: bool },
    /// DAPO dynamic sampling: pass rate over `k` samples strictly between 0 and 1.
    ZeroVariance { k: usize, temperature: f64 },
    /// Weight `p(1-p)` of the pass rate over `k` samples.
    Learnability { k: usize, temperature: f64 },
}

/// Where the demonstrations of accepted prompts come from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// The teacher: one paid call per accepted prompt (SFT).
    Teacher,
    /// Rejection sampling from the task's reference policy `pi_ref` (RL with a verifier, no
    /// teacher): up to `max_samples` samples per accepted prompt, the first one the verifier
    /// accepts is the demonstration.
    Reference { max_samples: usize },
}

/// A fully resolved curriculum.
#[derive(Clone, Debug, Serialize)]
pub struct StrategyConfig {
    pub name: String,
    pub mask: Mask,
    /// Ensemble of per-phase members (true) or one model that keeps training (false).
    pub ensemble: bool,
    /// Demonstrations in phase 0.
    pub init_demos: usize,
    /// Demonstrations per later phase (`m` for ensembles, the batch for single models).
    pub phase_demos: usize,
    /// The total number of demonstrations grows by at least this factor per phase (1: fixed
    /// phase sizes).
    pub growth: f64,
    /// At most this many phases (K for boost-by-majority).
    pub max_phases: usize,
    /// Confidence of the stop certificate.
    pub delta: f64,
    /// FilterBoost: filtered prompts held out per phase to measure the new member's edge.
    pub edge_prompts: usize,
    /// Ensemble members trained on every demonstration so far instead of their phase's only.
    pub cumulative_members: bool,
    /// Each new ensemble member starts as a copy of the last member (saved and reloaded) and
    /// continues training on the phase's demonstrations, replaying what the copy was trained on;
    /// for students whose training from scratch is expensive (the neural student).
    pub warm_start_members: bool,
    /// Teacher demonstrations, or rejection sampling from `pi_ref`.
    pub source: Source,
    /// The resolved parameters, as given (for the run's configuration file).
    pub params: Params,
}

impl StrategyConfig {
    /// Draws without an acceptance after which the filter's certificate stops the run:
    /// if the mistake mass were above `eps`, `M` rejections in a row would happen with
    /// probability at most `delta`. Masks whose weight on a mistake is at least 1/2 of the
    /// maximum (FilterBoost, boost-by-majority near the boundary) need twice as many.
    pub fn certificate_draws(&self, eps: f64) -> u64 {
        let factor = match self.mask {
            Mask::Counterexample => 1.0,
            _ => 2.0,
        };
        ((factor / eps) * (1.0 / self.delta).ln()).ceil() as u64
    }
}

/// A curriculum's name, summary and parameters, for `autotune strategies`.
pub struct StrategyInfo {
    pub name: &'static str,
    /// Learns without a teacher, by rejection sampling from the task's reference policy
    /// (`pi_ref`); runs only on tasks given one.
    pub needs_reference: bool,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
}

const DELTA: ParamSpec = ParamSpec {
    key: "delta",
    default: "0.01",
    help: "confidence of the stop certificate (stop after (c/eps) ln(1/delta) rejections in a row)",
};
const INIT: ParamSpec = ParamSpec {
    key: "init_demos",
    default: "auto",
    help: "demonstrations in phase 0 (auto: d)",
};
const MAX_PHASES: ParamSpec = ParamSpec {
    key: "max_phases",
    default: "auto",
    help: "at most this many phases (auto: 100000; boost-by-majority: K)",
};
const BATCH: ParamSpec = ParamSpec {
    key: "batch",
    default: "auto",
    help: "demonstrations per phase after phase 0 (auto: max(1, d/8))",
};
const PER_PHASE: ParamSpec = ParamSpec {
    key: "demos_per_phase",
    default: "auto",
    help: "demonstrations m per member (auto: d)",
};
const CUMULATIVE: ParamSpec = ParamSpec {
    key: "cumulative",
    default: "true",
    help: "train each member on all demonstrations so far (practice, measured better) or only on its phase's (false: faithful boosting)",
};
const WARM_START: ParamSpec = ParamSpec {
    key: "warm_start",
    default: "false",
    help: "each new member starts as a copy of the last one and trains on to the new demonstrations (students with a replay buffer, e.g. arith's neural student)",
};
const GROWTH_SMALL: ParamSpec = ParamSpec {
    key: "growth",
    default: "1.05",
    help:
        "each phase adds at least (growth - 1) x the demonstrations so far (checkpoint resolution)",
};
const MAX_SAMPLES: ParamSpec = ParamSpec {
    key: "max_samples",
    default: "256",
    help: "rejection sampling: at most this many pi_ref samples per prompt (none accepted: the prompt is unsolved, its samples still counted)",
};
const K: ParamSpec = ParamSpec {
    key: "k",
    default: "8",
    help: "samples per prompt for the pass rate",
};
const TEMP: ParamSpec = ParamSpec {
    key: "temperature",
    default: "1.0",
    help: "sampling temperature for the pass rate",
};

/// Every curriculum, by name.
pub const STRATEGIES: &[StrategyInfo] = &[
    StrategyInfo {
        name: "uniform",
        needs_reference: false,
        summary: "non-adaptive SFT (Joshi et al. 2025): demonstrations on i.i.d. prompts, one model, geometric checkpoints",
        params: &[
            INIT,
            ParamSpec { key: "growth", default: "1.15", help: "total demonstrations grow by this factor per checkpoint" },
            MAX_PHASES,
        ],
    },
    StrategyInfo {
        name: "autotune-bbm",
        needs_reference: false,
        summary: "AutoTune, faithful: boost-by-majority weights over verifier ranks, rejection sampling, plurality vote, certificate stop",
        params: &[
            ParamSpec { key: "gamma", default: "0.25", help: "assumed edge of each member on its filtered distribution" },
            ParamSpec { key: "phases", default: "auto", help: "K, odd (auto: smallest odd K with exp(-2 gamma^2 K) <= eps)" },
            PER_PHASE,
            CUMULATIVE,
            WARM_START,
            DELTA,
        ],
    },
    StrategyInfo {
        name: "autotune-filterboost",
        needs_reference: false,
        summary: "AutoTune, adaptive: FilterBoost (or MadaBoost) weights of the vote margin, member edges measured on fresh filtered prompts",
        params: &[
            ParamSpec { key: "variant", default: "filterboost", help: "filterboost | madaboost" },
            PER_PHASE,
            ParamSpec { key: "edge_prompts", default: "auto", help: "filtered prompts per phase to measure the member's edge (auto: m/2), verifier only" },
            MAX_PHASES,
            CUMULATIVE,
            WARM_START,
            DELTA,
        ],
    },
    StrategyInfo {
        name: "autotune-cex",
        needs_reference: false,
        summary: "AutoTune, one model: teacher queried only on the current model's failures (counterexamples)",
        params: &[BATCH, MAX_PHASES, DELTA],
    },
    StrategyInfo {
        name: "zero-variance",
        needs_reference: false,
        summary: "DAPO dynamic sampling as an SFT filter: demonstrate prompts whose k-sample pass rate is strictly in (0,1)",
        params: &[K, TEMP, INIT, BATCH, GROWTH_SMALL, MAX_PHASES, DELTA],
    },
    StrategyInfo {
        name: "learnability",
        needs_reference: false,
        summary: "learnability filter: accept with probability 4 p(1-p), p the k-sample pass rate",
        params: &[K, TEMP, INIT, BATCH, GROWTH_SMALL, MAX_PHASES, DELTA],
    },
    StrategyInfo {
        name: "rft-uniform",
        needs_reference: true,
        summary: "RL baseline, no teacher (STaR / RFT / ReST expert iteration): rejection-sample pi_ref on i.i.d. prompts, fine-tune on the accepted samples, one model, geometric checkpoints",
        params: &[
            INIT,
            ParamSpec { key: "growth", default: "1.15", help: "total demonstrations grow by this factor per checkpoint" },
            MAX_SAMPLES,
            MAX_PHASES,
        ],
    },
    StrategyInfo {
        name: "autotune-rl",
        needs_reference: true,
        summary: "AutoTune.RL, no teacher: filter by rank with the current model, rejection-sample pi_ref only on accepted prompts (filter=cex: one model; filterboost: ensemble)",
        params: &[
            ParamSpec { key: "filter", default: "cex", help: "cex (one model, its failures) | filterboost (ensemble, FilterBoost weights)" },
            MAX_SAMPLES,
            BATCH,
            PER_PHASE,
            ParamSpec { key: "edge_prompts", default: "auto", help: "filterboost: filtered prompts per phase to measure the member's edge (auto: m/2)" },
            MAX_PHASES,
            CUMULATIVE,
            WARM_START,
            DELTA,
        ],
    },
];

/// The registered names, comma separated (for error messages).
pub fn strategy_names() -> String {
    STRATEGIES
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Looks up a curriculum by name.
pub fn strategy_info(name: &str) -> Result<&'static StrategyInfo, CurriculumError> {
    STRATEGIES
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| CurriculumError::UnknownStrategy {
            name: name.to_string(),
            valid: strategy_names(),
        })
}

fn auto_or<T: std::str::FromStr + Copy + std::fmt::Display>(
    p: &Params,
    key: &str,
    auto: T,
    expected: &str,
    ok: impl Fn(T) -> bool,
) -> Result<T, CurriculumError> {
    if p.raw(key) == Some("auto") {
        return Ok(auto);
    }
    Ok(p.get_checked(key, expected, ok)?)
}

/// Builds the curriculum `name` for target error `eps` on a task of dimension `d`.
pub fn build_strategy(
    name: &str,
    params: &Params,
    eps: f64,
    d: usize,
) -> Result<StrategyConfig, CurriculumError> {
    let info = strategy_info(name)?;
    let p = params.resolve(&format!("strategy `{name}`"), info.params)?;
    let pos = |x: usize| x >= 1;
    let get_delta = || -> Result<f64, CurriculumError> {
        Ok(p.get_checked("delta", "a number in (0, 1)", |x: f64| x > 0.0 && x < 1.0)?)
    };
    let d = d.max(1);
    let mut cfg = StrategyConfig {
        name: name.to_string(),
        mask: Mask::Uniform,
        ensemble: false,
        init_demos: d,
        phase_demos: (d / 8).max(1),
        growth: 1.0,
        max_phases: 100_000,
        delta: 0.01,
        edge_prompts: 0,
        cumulative_members: false,
        warm_start_members: false,
        source: Source::Teacher,
        params: p.clone(),
    };
    if p.raw("init_demos").is_some() {
        cfg.init_demos = auto_or(&p, "init_demos", d, "a positive integer or auto", pos)?;
    }
    if p.raw("batch").is_some() {
        cfg.phase_demos = auto_or(
            &p,
            "batch",
            cfg.phase_demos,
            "a positive integer or auto",
            pos,
        )?;
    }
    if p.raw("max_phases").is_some() {
        cfg.max_phases = auto_or(
            &p,
            "max_phases",
            cfg.max_phases,
            "a positive integer or auto",
            pos,
        )?;
    }
    if p.raw("delta").is_some() {
        cfg.delta = get_delta()?;
    }
    if p.raw("cumulative").is_some() {
        cfg.cumulative_members = p.get("cumulative", "true or false")?;
    }
    if p.raw("warm_start").is_some() {
        cfg.warm_start_members = p.get("warm_start", "true or false")?;
    }
    let ensemble_m = |cfg: &mut StrategyConfig| -> Result<(), CurriculumError> {
        cfg.ensemble = true;
        cfg.phase_demos = auto_or(&p, "demos_per_phase", d, "a positive integer or auto", pos)?;
        cfg.init_demos = cfg.phase_demos;
        Ok(())
    };
    let sampled = || -> Result<(usize, f64), CurriculumError> {
        let k = p.get_checked("k", "an integer >= 2", |k: usize| k >= 2)?;
        let t = p.get_checked("temperature", "a number > 0", |t: f64| t > 0.0)?;
        Ok((k, t))
    };
    if p.raw("max_samples").is_some() {
        cfg.source = Source::Reference {
            max_samples: p.get_checked("max_samples", "a positive integer", pos)?,
        };
    }
    let filterboost = |cfg: &mut StrategyConfig, madaboost: bool| -> Result<(), CurriculumError> {
        cfg.mask = Mask::FilterBoost { madaboost };
        ensemble_m(cfg)?;
        cfg.edge_prompts = auto_or(
            &p,
            "edge_prompts",
            (cfg.phase_demos / 2).max(8),
            "a positive integer or auto",
            pos,
        )?;
        if p.raw("max_phases") == Some("auto") {
            cfg.max_phases = 4 * bbm_phases(eps, 0.25);
        }
        Ok(())
    };
    match name {
        "uniform" | "rft-uniform" => {
            cfg.growth = p.get_checked("growth", "a number > 1", |g: f64| g > 1.0)?;
        }
        "autotune-bbm" => {
            let gamma =
                p.get_checked("gamma", "a number in (0, 1/2)", |g: f64| g > 0.0 && g < 0.5)?;
            cfg.mask = Mask::BoostByMajority { gamma };
            ensemble_m(&mut cfg)?;
            cfg.max_phases = auto_or(
                &p,
                "phases",
                bbm_phases(eps, gamma),
                "an odd positive integer or auto",
                |k: usize| k % 2 == 1,
            )?;
        }
        "autotune-filterboost" => {
            let madaboost = match p.raw("variant") {
                Some("filterboost") => false,
                Some("madaboost") => true,
                other => {
                    return Err(autotune_core::CoreError::BadParam {
                        key: "variant".into(),
                        value: other.unwrap_or_default().into(),
                        expected: "filterboost or madaboost".into(),
                    }
                    .into())
                }
            };
            filterboost(&mut cfg, madaboost)?;
        }
        "autotune-rl" => match p.raw("filter") {
            Some("cex") => {
                cfg.mask = Mask::Counterexample;
                cfg.init_demos = cfg.phase_demos;
            }
            Some("filterboost") => filterboost(&mut cfg, false)?,
            other => {
                return Err(autotune_core::CoreError::BadParam {
                    key: "filter".into(),
                    value: other.unwrap_or_default().into(),
                    expected: "cex or filterboost".into(),
                }
                .into())
            }
        },
        "autotune-cex" => {
            cfg.mask = Mask::Counterexample;
            cfg.init_demos = cfg.phase_demos;
        }
        "zero-variance" => {
            cfg.growth = p.get_checked("growth", "a number >= 1", |g: f64| g >= 1.0)?;
            let (k, temperature) = sampled()?;
            cfg.mask = Mask::ZeroVariance { k, temperature };
        }
        "learnability" => {
            cfg.growth = p.get_checked("growth", "a number >= 1", |g: f64| g >= 1.0)?;
            let (k, temperature) = sampled()?;
            cfg.mask = Mask::Learnability { k, temperature };
        }
        _ => unreachable!("every registered strategy is handled"),
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_strategy_builds_with_defaults() {
        for s in STRATEGIES {
            let cfg = build_strategy(s.name, &Params::default(), 0.01, 33).unwrap();
            assert_eq!(cfg.name, s.name);
            assert!(cfg.init_demos >= 1 && cfg.phase_demos >= 1 && cfg.max_phases >= 1);
        }
    }

    #[test]
    fn unknown_names_and_params_are_errors_naming_the_choices() {
        let e = build_strategy("autotune", &Params::default(), 0.01, 33)
            .unwrap_err()
            .to_string();
        assert!(e.contains("uniform") && e.contains("autotune-cex"), "{e}");
        let p = Params::parse(&["gama=0.2"]).unwrap();
        let e = build_strategy("autotune-bbm", &p, 0.01, 33)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gamma"), "{e}");
        let p = Params::parse(&["phases=4"]).unwrap();
        assert!(build_strategy("autotune-bbm", &p, 0.01, 33).is_err());
        let p = Params::parse(&["variant=ada"]).unwrap();
        assert!(build_strategy("autotune-filterboost", &p, 0.01, 33).is_err());
    }

    #[test]
    fn bbm_phases_follow_eps() {
        let a = build_strategy("autotune-bbm", &Params::default(), 0.1, 33).unwrap();
        let b = build_strategy("autotune-bbm", &Params::default(), 0.001, 33).unwrap();
        assert!(a.max_phases < b.max_phases);
        assert_eq!(b.max_phases, 57);
    }
}
