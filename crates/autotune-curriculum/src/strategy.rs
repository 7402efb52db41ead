//! What a curriculum is: one [`Strategy`] per file under `strategies/`, its parameters checked
//! once into a typed value, and one registry ([`STRATEGIES`]) that the engine, the CLI,
//! `autotune strategies`, the service and the policy-gradient selectors all read.
//!
//! A new strategy is one file (a `StrategyInfo` constant and a type implementing [`Strategy`])
//! and one line in [`STRATEGIES`].

use autotune_core::{CoreError, Demo, FitStats, ParamSpec, Params, Prompt};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::engine::Context;
use crate::grpo::Selector;
use crate::model::Model;
use crate::pool::{PoolOutcomes, Scored};
use crate::strategies;
use crate::CurriculumError;

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
    /// The paper's RLFineTune (Algorithm 4): `m = C_seq ln(4 n C_seq / delta)` chains of
    /// thought per accepted prompt from `pi_ref` (or `samples` when given), deduplicated; the
    /// distinct ones the verifier accepts whose probability under `pi_ref` is at least
    /// `1/C_seq` are kept. `c_seq: None` takes the reference policy's own coverage.
    FilteredReference {
        c_seq: Option<f64>,
        samples: Option<usize>,
        n: u64,
        delta: f64,
    },
}

impl Source {
    /// RLFineTune's samples per prompt `m = ceil(C_seq ln(4 n C_seq / delta))`.
    pub fn rlfinetune_samples(c_seq: f64, n: u64, delta: f64) -> usize {
        (c_seq * (4.0 * n.max(1) as f64 * c_seq / delta).ln())
            .ceil()
            .max(1.0) as usize
    }
}

/// The mask a strategy applies, as written into run configurations: its kind and its
/// parameters, in the order given (for reading, never matched on).
#[derive(Clone, Debug, PartialEq)]
pub struct MaskInfo {
    pub kind: &'static str,
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl MaskInfo {
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            fields: Vec::new(),
        }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Self {
        self.fields.push((key, value.into()));
        self
    }
}

impl Serialize for MaskInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(1 + self.fields.len()))?;
        m.serialize_entry("kind", self.kind)?;
        for (k, v) in &self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// The phase loop's common settings of a resolved strategy (written into `result.json` and
/// `config.toml`).
#[derive(Clone, Debug, Serialize)]
pub struct StrategyConfig {
    pub name: String,
    pub mask: MaskInfo,
    /// Ensemble of per-phase members (true) or one model that keeps training (false).
    pub ensemble: bool,
    /// Demonstrations in phase 0.
    pub init_demos: usize,
    /// Demonstrations per later phase (`m` for ensembles, the batch for single models).
    pub phase_demos: usize,
    /// The total number of demonstrations grows by at least this factor per phase (1: fixed
    /// phase sizes).
    pub growth: f64,
    /// At most this many phases (K for boost-by-majority, k for the paper's AutoTune).
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
    /// How the ensemble answers (plurality vote of greedy answers unless the strategy says).
    #[serde(skip_serializing_if = "Output::is_plurality")]
    pub output: Output,
    /// The resolved parameters, as given (for the run's configuration file).
    pub params: Params,
}

/// How a trained ensemble answers a prompt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Output {
    /// The plurality vote of the members' greedy answers (Algorithm 1).
    #[default]
    Plurality,
    /// The uniform mixture (Algorithm 3): a uniformly chosen member's answer sampled at
    /// `temperature`. Judged by the paper's metric `Pr_x[Acc_x >= accuracy]` (3/5), and by
    /// its plain accuracy.
    Mixture { temperature: f64, accuracy: f64 },
    /// AutoTune_cons: the plurality of `votes` independent answers of the mixture.
    Consensus { votes: usize, temperature: f64 },
}

impl Output {
    pub fn is_plurality(&self) -> bool {
        *self == Output::Plurality
    }
}

/// How the stop certificate spends its confidence `delta` (see [`Certificate`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertificateRule {
    /// Every run of rejections is a test at the full `delta` (the engine before the union
    /// bound; repeated tests make its false-certificate rate exceed `delta`).
    Naive,
    /// The `a`-th test of the run is at `delta / (a (a + 1))`: the tests' levels sum to
    /// `delta`, so the run certifies a model of error above eps with probability at most
    /// `delta` however many tests it makes.
    Spent,
    /// One test per phase: only the run of rejections that opens a phase (before its first
    /// accept) can certify, the `j`-th phase's at `delta / (j (j + 1))`. As sound as `spent`
    /// with far fewer tests (phases, not accepted prompts), so each needs fewer rejections;
    /// a phase with an accept cannot certify and runs to its end.
    Phase,
    /// One sequential test per phase that accepts do not end: within a phase the model is
    /// fixed, and every tested draw multiplies a likelihood ratio of "the model's acceptance
    /// rate is `q/2`" against "it is at least `q`" (`q = eps / factor`): a rejection by
    /// `(1 - q/2) / (1 - q)`, an accept by `1/2`. Under a model of error above eps the ratio
    /// is a nonnegative supermartingale, so by Ville's inequality it ever reaches
    /// `1/level` with probability at most `level`; the `j`-th phase tests at
    /// `delta / (j (j + 1))`. A phase whose model errs rarely certifies through its few
    /// accepts instead of buying its whole phase first. A test is opened only in a phase
    /// whose previous phase accepted at most `2q` of its draws, and such a phase draws until
    /// it has `growth` times its usual accepts (or certifies), so that its test has the draws
    /// to pass through a few accepts; it then buys its usual number of them, the first ones
    /// (a certified phase buys none).
    Sequential { growth: usize },
}

/// The stop certificate of a strategy that has one: stop after `M` rejections in a row when
/// the output was right on all of them. If the output's error were above eps, a rejection would
/// happen with probability at most `1 - eps / factor` (`factor`: 1 where every mistake is
/// accepted, 2 where a mistake's weight is at least half the maximum), so `M = (factor / eps)
/// ln(1/delta_a)` rejections in a row happen with probability at most `delta_a`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Certificate {
    pub factor: f64,
    pub delta: f64,
    pub rule: CertificateRule,
}

impl Certificate {
    /// The level of test number `attempt` (1-based).
    pub fn level(&self, attempt: u64) -> f64 {
        match self.rule {
            CertificateRule::Naive => self.delta,
            CertificateRule::Spent
            | CertificateRule::Phase
            | CertificateRule::Sequential { .. } => {
                let a = attempt.max(1) as f64;
                self.delta / (a * (a + 1.0))
            }
        }
    }

    /// Rejections in a row that certify at test number `attempt`.
    pub fn draws(&self, eps: f64, attempt: u64) -> u64 {
        if matches!(self.rule, CertificateRule::Sequential { .. }) {
            let (rejected, _) = self.log_ratios(eps);
            return ((1.0 / self.level(attempt)).ln() / rejected).ceil() as u64;
        }
        ((self.factor / eps) * (1.0 / self.level(attempt)).ln()).ceil() as u64
    }

    /// The sequential test's log-likelihood-ratio steps: `(rejection, accept)`.
    pub fn log_ratios(&self, eps: f64) -> (f64, f64) {
        let q = (eps / self.factor).min(0.5);
        (((1.0 - q / 2.0) / (1.0 - q)).ln(), 0.5f64.ln())
    }
}

/// The score of a tested candidate: its rank, its acceptance probability, and whether the
/// output model (the vote, or the single model's greedy answer) is right on it, where known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// `None`: the candidate was not tested.
    pub rank: Option<usize>,
    /// Probability of acceptance; 0 and 1 are decided without a random draw.
    pub accept: f64,
    pub vote_ok: Option<bool>,
}

impl Score {
    /// Accepted without a test.
    pub const UNTESTED: Score = Score {
        rank: None,
        accept: 1.0,
        vote_ok: None,
    };
}

/// What an update did: the fit, the new member's measured error (where the strategy measures
/// one) and whether a member was added.
pub struct Update {
    pub fit: FitStats,
    pub member_error: Option<f64>,
    pub member_added: bool,
}

impl Update {
    /// The update of a single-model strategy: the one model trains on the phase's new
    /// demonstrations.
    pub fn single(
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError> {
        Ok(Update {
            fit: cx.fit_single(model, phase.new)?,
            member_error: None,
            member_added: true,
        })
    }
}

/// What the update of one phase trains on.
pub struct Phase<'d> {
    pub phase: usize,
    /// The demonstrations bought in this phase.
    pub new: &'d [Demo],
    /// Every demonstration so far, this phase's last.
    pub all: &'d [Demo],
    /// Accepted prompts held back from the teacher (to measure the new member).
    pub held_back: &'d [Prompt],
}

/// A curriculum: how the engine's Test, Filter and Update steps behave.
pub trait Strategy: Send + Sync {
    /// The registry entry.
    fn info(&self) -> &'static StrategyInfo;

    /// The resolved settings of the phase loop.
    fn config(&self) -> &StrategyConfig;

    /// The highest rank a candidate can get from `model` (0: no test).
    fn max_rank(&self, model: &Model) -> usize;

    /// Test and Filter: rank every candidate under a non-empty `model` and weigh it.
    fn score(
        &self,
        cx: &mut Context,
        model: &Model,
        phase: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError>;

    /// Update: train on the phase's demonstrations.
    fn update(
        &self,
        cx: &mut Context,
        model: &mut Model,
        phase: &Phase,
    ) -> Result<Update, CurriculumError>;

    /// What the run trains: an empty ensemble, or no single model yet.
    fn new_model(&self) -> Model {
        if self.config().ensemble {
            Model::Ensemble(Vec::new())
        } else {
            Model::Single(None)
        }
    }

    /// Accepted prompts per phase held back from the teacher (to measure the new member).
    fn held_back(&self) -> usize {
        0
    }

    /// Demonstrations to buy in `phase`, given `total` so far.
    fn phase_target(&self, phase: usize, total: usize) -> usize {
        let c = self.config();
        if phase == 0 {
            return c.init_demos;
        }
        if c.growth > 1.0 {
            let next = ((total as f64) * c.growth).ceil() as usize;
            return next.saturating_sub(total).max(c.phase_demos).max(1);
        }
        c.phase_demos
    }

    /// The stop certificate; `None` for strategies that run all their phases.
    fn certificate(&self) -> Option<Certificate> {
        Some(Certificate {
            factor: 2.0,
            delta: self.config().delta,
            rule: certificate_rule(self.config()),
        })
    }

    /// Prompts each phase may scan, when the strategy splits a prompt dataset into one part
    /// per phase (the paper's Algorithm 1); `None`: every phase draws from one stream.
    fn part_size(&self) -> Option<usize> {
        None
    }

    /// Update, first half: demonstrations for the accepted prompts.
    fn demonstrate(
        &self,
        cx: &mut Context,
        accepted: Vec<Prompt>,
        phase: usize,
    ) -> Result<Vec<Demo>, CurriculumError> {
        cx.demonstrate(&self.config().source, accepted, phase)
    }

    /// The weight of a prompt from outcomes an external trainer reported (the service);
    /// `None` where the strategy cannot be served that way.
    fn pool_weight(&self, outcomes: &PoolOutcomes) -> Option<Scored> {
        let _ = outcomes;
        None
    }

    /// Whether pool prompts are ranked by ensemble members (one per phase) or by the samples
    /// of the current phase's model.
    fn pool_is_ensemble(&self) -> bool {
        self.config().ensemble
    }
}

/// A curriculum's registry entry: name, summary, parameters and builder.
pub struct StrategyInfo {
    pub name: &'static str,
    /// Learns without a teacher, by rejection sampling from the task's reference policy
    /// (`pi_ref`); runs only on tasks given one.
    pub needs_reference: bool,
    /// Samples the student at a temperature (the task's student must sample: a deterministic
    /// student's samples would all be its greedy answer).
    pub needs_sampling: bool,
    /// In the demo's comparison and `--strategies all` (the faithful algorithms, whose runs
    /// are much longer, are asked for by name).
    pub in_all: bool,
    /// The prompt selector of the policy-gradient trainer (`autotune rl`) this mask gives.
    pub selector: Option<Selector>,
    pub summary: &'static str,
    pub params: &'static [ParamSpec],
    /// Builds the strategy from resolved parameters (checked once, here).
    pub build: fn(&Resolved) -> Result<Box<dyn Strategy>, CurriculumError>,
}

/// Every curriculum, by name: the one registry.
pub const STRATEGIES: &[&StrategyInfo] = &[
    &strategies::uniform::INFO,
    &strategies::bbm::INFO,
    &strategies::filterboost::INFO,
    &strategies::counterexample::INFO,
    &strategies::zero_variance::INFO,
    &strategies::learnability::INFO,
    &strategies::rft_uniform::INFO,
    &strategies::autotune_rl::INFO,
    &strategies::paper::INFO,
    &strategies::paper::INFO_RL,
    &strategies::paper::INFO_STOCH,
    &strategies::paper::INFO_CONS,
    &strategies::rlfinetune::INFO,
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
        .copied()
        .find(|s| s.name == name)
        .ok_or_else(|| CurriculumError::UnknownStrategy {
            name: name.to_string(),
            valid: strategy_names(),
        })
}

/// A strategy's parameters resolved against its declared list, with the run's eps and the
/// task's dimension: what a builder reads.
pub struct Resolved {
    pub info: &'static StrategyInfo,
    pub params: Params,
    pub eps: f64,
    pub d: usize,
}

impl Resolved {
    /// A typed value; `expected` describes the accepted values for the error message.
    pub fn get<T: std::str::FromStr>(&self, key: &str, expected: &str) -> Result<T, CoreError> {
        self.params.get(key, expected)
    }

    /// A typed value that must satisfy `ok`.
    pub fn checked<T: std::str::FromStr + Copy + std::fmt::Display>(
        &self,
        key: &str,
        expected: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<T, CoreError> {
        self.params.get_checked(key, expected, ok)
    }

    /// `auto` gives `auto`, anything else must parse and satisfy `ok`.
    pub fn auto_or<T: std::str::FromStr + Copy + std::fmt::Display>(
        &self,
        key: &str,
        auto: T,
        expected: &str,
        ok: impl Fn(T) -> bool,
    ) -> Result<T, CoreError> {
        if self.params.raw(key) == Some("auto") {
            return Ok(auto);
        }
        self.params.get_checked(key, expected, ok)
    }

    /// A positive integer or `auto`.
    pub fn count_or(&self, key: &str, auto: usize) -> Result<usize, CoreError> {
        self.auto_or(key, auto, "a positive integer or auto", |x: usize| x >= 1)
    }

    /// Whether the strategy declares `key`.
    pub fn has(&self, key: &str) -> bool {
        self.params.raw(key).is_some()
    }

    /// One of `choices`.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<&'static str, CoreError> {
        let v = self.params.raw(key).unwrap_or_default();
        choices
            .iter()
            .copied()
            .find(|c| *c == v)
            .ok_or_else(|| CoreError::BadParam {
                key: key.into(),
                value: v.into(),
                expected: choices.join(" or "),
            })
    }

    /// The settings every strategy starts from, with the common parameters it declares
    /// (`init_demos`, `batch`, `max_phases`, `delta`, `cumulative`, `warm_start`,
    /// `max_samples`) applied.
    pub fn base(&self, mask: MaskInfo) -> Result<StrategyConfig, CoreError> {
        let d = self.d.max(1);
        let mut cfg = StrategyConfig {
            name: self.info.name.to_string(),
            mask,
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
            output: Output::Plurality,
            params: self.params.clone(),
        };
        if self.has("init_demos") {
            cfg.init_demos = self.count_or("init_demos", d)?;
        }
        if self.has("batch") {
            cfg.phase_demos = self.count_or("batch", cfg.phase_demos)?;
        }
        if self.has("max_phases") {
            cfg.max_phases = self.count_or("max_phases", cfg.max_phases)?;
        }
        if self.has("delta") {
            cfg.delta = self.checked("delta", "a number in (0, 1)", |x: f64| x > 0.0 && x < 1.0)?;
        }
        if self.has("cumulative") {
            cfg.cumulative_members = self.get("cumulative", "true or false")?;
        }
        if self.has("warm_start") {
            cfg.warm_start_members = self.get("warm_start", "true or false")?;
        }
        if self.has("max_samples") {
            cfg.source = Source::Reference {
                max_samples: self
                    .checked("max_samples", "a positive integer", |x: usize| x >= 1)?,
            };
        }
        if self.has("certificate") {
            self.choice("certificate", &["spent", "phase", "sequential", "naive"])?;
        }
        if self.has("test_growth") {
            self.checked("test_growth", "an integer in 1..=1024", |x: usize| {
                (1..=1024).contains(&x)
            })?;
        }
        Ok(cfg)
    }

    /// An ensemble of `m` demonstrations per member (`demos_per_phase`, auto: d).
    pub fn ensemble(&self, cfg: &mut StrategyConfig) -> Result<(), CoreError> {
        cfg.ensemble = true;
        cfg.phase_demos = self.count_or("demos_per_phase", self.d.max(1))?;
        cfg.init_demos = cfg.phase_demos;
        Ok(())
    }
}

/// The default `test_growth` of the sequential certificate.
pub const DEFAULT_TEST_GROWTH: usize = 8;

/// How a strategy's certificate spends `delta` (its `certificate` parameter; spent when it
/// declares none).
pub fn certificate_rule(cfg: &StrategyConfig) -> CertificateRule {
    match cfg.params.raw("certificate") {
        Some("naive") => CertificateRule::Naive,
        Some("phase") => CertificateRule::Phase,
        Some("sequential") => CertificateRule::Sequential {
            growth: cfg
                .params
                .raw("test_growth")
                .and_then(|g| g.parse().ok())
                .unwrap_or(DEFAULT_TEST_GROWTH),
        },
        _ => CertificateRule::Spent,
    }
}

/// Builds the curriculum `name` for target error `eps` on a task of dimension `d`: its
/// parameters are resolved against its declared list and checked, once.
pub fn build_strategy(
    name: &str,
    params: &Params,
    eps: f64,
    d: usize,
) -> Result<Box<dyn Strategy>, CurriculumError> {
    let info = strategy_info(name)?;
    let params = params.resolve(&format!("strategy `{name}`"), info.params)?;
    (info.build)(&Resolved {
        info,
        params,
        eps,
        d,
    })
}

/// Parameters shared by several strategies.
pub(crate) mod common {
    use autotune_core::ParamSpec;

    pub const DELTA: ParamSpec = ParamSpec {
        key: "delta",
        default: "0.01",
        help: "confidence of the stop certificate: it certifies a model of error above eps with probability at most delta",
    };
    pub const CERTIFICATE: ParamSpec = ParamSpec {
        key: "certificate",
        default: "spent",
        help: "spent: the a-th run of rejections is a test at delta/(a(a+1)), so all tests together stay within delta | phase: only the run that opens a phase tests, the j-th phase's at delta/(j(j+1)) | sequential: one likelihood-ratio test per phase at delta/(j(j+1)) that accepts do not end (an accept halves the ratio), opened in phases whose previous one accepted at most 2 eps/factor, which draw until test_growth times their usual accepts and buy the usual number | naive: every run tests at delta (false certificates above delta)",
    };
    pub const TEST_GROWTH: ParamSpec = ParamSpec {
        key: "test_growth",
        default: "8",
        help: "certificate=sequential: a phase that tests draws until it has this many times its usual accepts, then buys its usual number of them (a certified phase buys none)",
    };
    pub const INIT: ParamSpec = ParamSpec {
        key: "init_demos",
        default: "auto",
        help: "demonstrations in phase 0 (auto: d)",
    };
    pub const MAX_PHASES: ParamSpec = ParamSpec {
        key: "max_phases",
        default: "auto",
        help: "at most this many phases (auto: 100000; boost-by-majority: K)",
    };
    pub const BATCH: ParamSpec = ParamSpec {
        key: "batch",
        default: "auto",
        help: "demonstrations per phase after phase 0 (auto: max(1, d/8))",
    };
    pub const PER_PHASE: ParamSpec = ParamSpec {
        key: "demos_per_phase",
        default: "auto",
        help: "demonstrations m per member (auto: d)",
    };
    pub const CUMULATIVE: ParamSpec = ParamSpec {
        key: "cumulative",
        default: "true",
        help: "train each member on all demonstrations so far (practice, measured better) or only on its phase's (false: faithful boosting)",
    };
    pub const WARM_START: ParamSpec = ParamSpec {
        key: "warm_start",
        default: "false",
        help: "each new member starts as a copy of the last one and trains on to the new demonstrations (students with a replay buffer, e.g. arith's neural student)",
    };
    pub const GROWTH: ParamSpec = ParamSpec {
        key: "growth",
        default: "1.15",
        help: "total demonstrations grow by this factor per checkpoint",
    };
    pub const GROWTH_SMALL: ParamSpec = ParamSpec {
        key: "growth",
        default: "1.05",
        help: "each phase adds at least (growth - 1) x the demonstrations so far (checkpoint resolution)",
    };
    pub const MAX_SAMPLES: ParamSpec = ParamSpec {
        key: "max_samples",
        default: "256",
        help: "rejection sampling: at most this many pi_ref samples per prompt (none accepted: the prompt is unsolved, its samples still counted)",
    };
    pub const K: ParamSpec = ParamSpec {
        key: "k",
        default: "8",
        help: "samples per prompt for the pass rate",
    };
    pub const TEMP: ParamSpec = ParamSpec {
        key: "temperature",
        default: "1.0",
        help: "sampling temperature for the pass rate",
    };
    pub const EDGE: ParamSpec = ParamSpec {
        key: "edge_prompts",
        default: "auto",
        help: "filtered prompts per phase to measure the member's edge (auto: m/2), verifier only",
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_strategy_builds_with_defaults() {
        for s in STRATEGIES {
            let st = build_strategy(s.name, &Params::default(), 0.01, 33).unwrap();
            let cfg = st.config();
            assert_eq!(cfg.name, s.name);
            assert_eq!(st.info().name, s.name);
            assert!(cfg.init_demos >= 1 && cfg.phase_demos >= 1 && cfg.max_phases >= 1);
        }
        let mut names: Vec<&str> = STRATEGIES.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), STRATEGIES.len(), "names are unique");
    }

    #[test]
    fn unknown_names_and_params_are_errors_naming_the_choices() {
        let e = build_strategy("autotune", &Params::default(), 0.01, 33)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("uniform") && e.contains("autotune-cex"), "{e}");
        let p = Params::parse(&["gama=0.2"]).unwrap();
        let e = build_strategy("autotune-bbm", &p, 0.01, 33)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("gamma"), "{e}");
        let p = Params::parse(&["phases=4"]).unwrap();
        assert!(build_strategy("autotune-bbm", &p, 0.01, 33).is_err());
        let p = Params::parse(&["variant=ada"]).unwrap();
        assert!(build_strategy("autotune-filterboost", &p, 0.01, 33).is_err());
        let p = Params::parse(&["certificate=maybe"]).unwrap();
        assert!(build_strategy("autotune-cex", &p, 0.01, 33).is_err());
    }

    #[test]
    fn bbm_phases_follow_eps() {
        let a = build_strategy("autotune-bbm", &Params::default(), 0.1, 33).unwrap();
        let b = build_strategy("autotune-bbm", &Params::default(), 0.001, 33).unwrap();
        assert!(a.config().max_phases < b.config().max_phases);
        assert_eq!(b.config().max_phases, 57);
    }

    #[test]
    fn the_spent_certificate_keeps_its_levels_within_delta() {
        let c = Certificate {
            factor: 1.0,
            delta: 0.01,
            rule: CertificateRule::Spent,
        };
        let total: f64 = (1..100_000).map(|a| c.level(a)).sum();
        assert!(total <= 0.01 + 1e-12, "{total}");
        assert!(c.draws(0.01, 2) > c.draws(0.01, 1));
        let naive = Certificate {
            rule: CertificateRule::Naive,
            ..c
        };
        assert_eq!(naive.draws(0.01, 7), 461);
    }

    /// The sequential test's ratio is a supermartingale under a model of error above eps
    /// (acceptance at least q): its expected factor per draw is at most 1, for every such
    /// acceptance rate; and its parameters parse and are checked.
    #[test]
    fn the_sequential_certificate_is_a_supermartingale_and_a_choice() {
        for factor in [1.0, 2.0] {
            for eps in [0.5, 0.1, 0.01, 1e-4] {
                let c = Certificate {
                    factor,
                    delta: 0.01,
                    rule: CertificateRule::Sequential { growth: 8 },
                };
                let (rejected, accepted) = c.log_ratios(eps);
                assert!(rejected > 0.0 && accepted < 0.0);
                let q = (eps / factor).min(0.5);
                for i in 0..=100 {
                    let p = q + (1.0 - q) * i as f64 / 100.0;
                    let m = p * accepted.exp() + (1.0 - p) * rejected.exp();
                    assert!(m <= 1.0 + 1e-12, "eps {eps} factor {factor} p {p}: {m}");
                }
                // With no accept it needs at least as many draws as a run of rejections at
                // the same level.
                let spent = Certificate {
                    rule: CertificateRule::Spent,
                    ..c
                };
                assert!(c.draws(eps, 3) >= spent.draws(eps, 3), "eps {eps}");
            }
        }
        let p = Params::parse(&["certificate=sequential", "test_growth=3"]).unwrap();
        let s = build_strategy("autotune-cex", &p, 0.01, 33).unwrap();
        assert_eq!(
            s.certificate().unwrap().rule,
            CertificateRule::Sequential { growth: 3 }
        );
        let p = Params::parse(&["certificate=sequential"]).unwrap();
        let s = build_strategy("autotune-cex", &p, 0.01, 33).unwrap();
        assert_eq!(
            s.certificate().unwrap().rule,
            CertificateRule::Sequential {
                growth: DEFAULT_TEST_GROWTH
            }
        );
        let bad = Params::parse(&["certificate=sequential", "test_growth=0"]).unwrap();
        assert!(build_strategy("autotune-cex", &bad, 0.01, 33).is_err());
    }

    #[test]
    fn the_phase_certificate_spends_delta_like_spent_and_is_a_choice() {
        let spent = Certificate {
            factor: 1.0,
            delta: 0.01,
            rule: CertificateRule::Spent,
        };
        let phase = Certificate {
            rule: CertificateRule::Phase,
            ..spent
        };
        for j in [1, 2, 10, 1000] {
            assert_eq!(phase.level(j), spent.level(j));
        }
        let p = Params::parse(&["certificate=phase"]).unwrap();
        let s = build_strategy("autotune-cex", &p, 0.01, 33).unwrap();
        assert_eq!(s.certificate().unwrap().rule, CertificateRule::Phase);
        let bad = Params::parse(&["certificate=sometimes"]).unwrap();
        let e = build_strategy("autotune-cex", &bad, 0.01, 33)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("phase"), "{e}");
    }
}
