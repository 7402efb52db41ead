//! A comparison resolved once, before anything runs: its task built and its parameters
//! filled in, every strategy checked against the task and built at every eps, the default
//! demonstration budget set, and the list of runs. Commands make a [`Plan`] from what the
//! user asked ([`CompareSpec::plan`]) and pass it down: `config.toml`
//! ([`RunConfig::new`](crate::RunConfig::new)) and [`compare`](crate::compare) read it, so
//! every check fails before a run directory exists and none is made twice.

use autotune_core::{ParamSpec, Params, TaskFactory};
use autotune_curriculum::{
    build_strategy, no_reference, no_sampling, strategy_info, Budget, StrategyConfig,
};
use serde::{Deserialize, Serialize};

use crate::{heldout_size, ExperimentError, RunSpec, DEFAULT_DEMOS_PER_D_OVER_EPS};

/// A comparison: strategies x eps values x seeds on one task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareSpec {
    pub task: String,
    pub task_params: Params,
    pub strategies: Vec<String>,
    /// Strategy parameters; each key goes to the strategies that declare it.
    pub strategy_params: Params,
    pub eps: Vec<f64>,
    pub seeds: u64,
    pub base_seed: u64,
    pub test_factor: f64,
    /// What each run may spend; a demonstration budget left out is set by [`Self::plan`] to
    /// `20 d / eps` at the smallest eps ([`DEFAULT_DEMOS_PER_D_OVER_EPS`]).
    pub budget: Budget,
    pub stop_at_eps: bool,
    /// One run per strategy and seed, at the smallest eps; the larger eps are read off its
    /// checkpoints (on its held-out set, which is the largest). Strategies whose schedule
    /// depends on eps (boost-by-majority's K, the default demonstration budget) use the
    /// smallest eps's.
    #[serde(default)]
    pub nested_eps: bool,
}

/// The resolved configuration of one strategy at one target eps.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedStrategy {
    pub eps: f64,
    /// Consecutive rejections after which the filter certifies error <= eps, at its first
    /// test (later tests of a run need more: the certificate's rule); none for strategies that
    /// run all their phases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_draws: Option<u64>,
    pub config: StrategyConfig,
}

/// The task with every parameter resolved.
#[derive(Clone, Debug, Serialize)]
pub struct ResolvedTask {
    pub name: String,
    pub dimension: usize,
    pub params: Params,
}

/// A comparison with everything resolved and checked: made once by [`CompareSpec::plan`],
/// read by everything after it.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The comparison as asked, its default demonstration budget filled in.
    pub spec: CompareSpec,
    /// The task as built at the base seed: its dimension and every parameter.
    pub task: ResolvedTask,
    /// Each strategy's configuration at each eps it runs at.
    pub strategies: Vec<ResolvedStrategy>,
    /// Every (strategy, eps, seed) run, heaviest (smallest eps) first for load balance.
    pub runs: Vec<RunSpec>,
}

impl CompareSpec {
    /// Resolves and checks the comparison without running it: the task's parameters, each
    /// strategy's name, its parameters and what it needs of the task (a reference policy, a
    /// sampling student), every held-out size; fills the default demonstration budget. Every
    /// error a comparison can find before it spends anything comes from here.
    pub fn plan(&self, tasks: &dyn TaskFactory) -> Result<Plan, ExperimentError> {
        let (task, task_params) = tasks.build(&self.task, &self.task_params, self.base_seed)?;
        let d = task.dimension();
        for s in &self.strategies {
            let info = strategy_info(s)?;
            if info.needs_reference && task.reference().is_none() {
                return Err(no_reference(s, task.name()).into());
            }
            if info.needs_sampling && !task.student_samples() {
                return Err(no_sampling(s, task.name()).into());
            }
        }
        let mut spec = self.clone();
        if spec.budget.max_demos.is_none() {
            let min_eps = spec.eps.iter().copied().fold(1.0, f64::min);
            spec.budget.max_demos =
                Some((DEFAULT_DEMOS_PER_D_OVER_EPS * d as f64 / min_eps).ceil() as u64);
        }
        let runs = spec.runs()?;
        let mut strategies = Vec::new();
        for r in runs.iter().filter(|r| r.seed == spec.base_seed) {
            let built = build_strategy(&r.strategy, &r.strategy_params, r.eps, d)?;
            strategies.push(ResolvedStrategy {
                eps: r.eps,
                certificate_draws: built.certificate().map(|c| c.draws(r.eps, 1)),
                config: built.config().clone(),
            });
        }
        Ok(Plan {
            task: ResolvedTask {
                name: spec.task.clone(),
                dimension: d,
                params: task_params,
            },
            spec,
            strategies,
            runs,
        })
    }

    /// The run specs, heaviest (smallest eps) first for load balance; each strategy gets the
    /// parameters it declares, and a parameter no strategy declares is an error.
    fn runs(&self) -> Result<Vec<RunSpec>, ExperimentError> {
        if self.strategies.is_empty() || self.eps.is_empty() || self.seeds == 0 {
            return Err(ExperimentError::Invalid(
                "need at least one strategy, one eps and one seed".into(),
            ));
        }
        let mut declared: Vec<&ParamSpec> = Vec::new();
        let mut per_strategy = Vec::new();
        for s in &self.strategies {
            let info = strategy_info(s)?;
            declared.extend(info.params.iter());
            per_strategy.push((s.clone(), self.strategy_params.subset(info.params)));
        }
        if let Some(k) = self
            .strategy_params
            .0
            .keys()
            .find(|k| !declared.iter().any(|p| p.key == k.as_str()))
        {
            return Err(ExperimentError::Invalid(format!(
                "strategy parameter `{k}` is not a parameter of any of: {}",
                self.strategies.join(", ")
            )));
        }
        let mut eps = self.eps.clone();
        eps.sort_by(|a, b| a.total_cmp(b));
        eps.dedup();
        let also_eps = if self.nested_eps {
            eps.split_off(1)
        } else {
            Vec::new()
        };
        let mut out = Vec::new();
        for &e in &eps {
            heldout_size(e, self.test_factor)?;
            for (s, p) in &per_strategy {
                for i in 0..self.seeds {
                    out.push(RunSpec {
                        task: self.task.clone(),
                        task_params: self.task_params.clone(),
                        strategy: s.clone(),
                        strategy_params: p.clone(),
                        eps: e,
                        seed: self.base_seed + i,
                        test_factor: self.test_factor,
                        budget: self.budget.clone(),
                        stop_at_eps: self.stop_at_eps,
                        also_eps: also_eps.clone(),
                    });
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autotune_core::{CoreError, Task};

    /// A factory of one task, `halfspace`-like only in name: dimension 5, no reference.
    fn spec(strategies: &[&str], eps: &[f64]) -> CompareSpec {
        CompareSpec {
            task: "t".into(),
            task_params: Params::default(),
            strategies: strategies.iter().map(|s| s.to_string()).collect(),
            strategy_params: Params::default(),
            eps: eps.to_vec(),
            seeds: 2,
            base_seed: 7,
            test_factor: 10.0,
            budget: Budget::default(),
            stop_at_eps: true,
            nested_eps: false,
        }
    }

    fn no_task(_: &str, _: &Params, _: u64) -> Result<(Box<dyn Task>, Params), CoreError> {
        Err(CoreError::Input("no tasks here".into()))
    }

    #[test]
    fn a_task_that_cannot_be_built_stops_the_plan() {
        let e = spec(&["uniform"], &[0.1]).plan(&no_task).unwrap_err();
        assert!(e.to_string().contains("no tasks here"), "{e}");
    }
}
