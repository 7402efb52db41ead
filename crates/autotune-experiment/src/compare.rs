//! Comparisons: every (strategy, eps, seed) run, aggregated over seeds, with scaling fits.

use autotune_core::{Journal, Ledger, Params, TaskFactory};
use autotune_curriculum::StopReason;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    fit_linear, run_one_full, Checkpoint, CompareSpec, ExperimentError, LinearFit, MetricRecord,
    Plan, RunResult, RunSummary,
};

/// One (strategy, eps) cell, over seeds. Costs are taken at the checkpoint where eps was
/// reached, or at the end of the run for seeds that did not reach it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Aggregate {
    pub strategy: String,
    pub eps: f64,
    pub seeds: usize,
    pub reached: usize,
    /// Median of demos-to-eps with unreached seeds counted as infinite: null if half or more
    /// of the seeds did not reach eps.
    pub demos_median: Option<f64>,
    /// Smallest demos-to-eps over seeds that reached eps.
    pub demos_min: Option<u64>,
    /// Largest demos-to-eps; null if some seed did not reach eps.
    pub demos_max: Option<u64>,
    pub demos_per_seed: Vec<Option<u64>>,
    /// Median rollouts to eps (every `pi_ref` sample and every student generation, each
    /// verifier-checked), unreached seeds counted as infinite: null if half or more of the
    /// seeds did not reach eps.
    pub rollouts_median: Option<f64>,
    /// Smallest rollouts-to-eps over seeds that reached eps.
    pub rollouts_min: Option<u64>,
    /// Largest rollouts-to-eps; null if some seed did not reach eps.
    pub rollouts_max: Option<u64>,
    pub rollouts_per_seed: Vec<Option<u64>>,
    /// Samples drawn from `pi_ref` (rejection sampling), median over seeds.
    pub reference_samples_median: f64,
    pub reference_tokens_median: f64,
    pub teacher_tokens_median: f64,
    pub verifier_calls_median: f64,
    pub student_generations_median: f64,
    pub student_tokens_median: f64,
    pub training_steps_median: f64,
    pub prompts_drawn_median: f64,
    pub wall_seconds_median: f64,
    /// Demos spent by the end of the run (to the strategy's own stop when not stopped at eps).
    pub demos_at_stop_median: f64,
    pub final_error_median: f64,
    /// Stochastic outputs: the median final plain error (one sampled answer per prompt) beside
    /// `final_error_median`, which is the strategy's own metric (`Pr_x[Acc_x < accuracy]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_plain_error_median: Option<f64>,
    /// Median phases that aborted (ran out of their part of the prompt dataset).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub aborted_phases_median: f64,
    pub heldout_prompts: usize,
    pub stops: Vec<StopReason>,
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

/// How a strategy's median demos scale with eps.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StrategyFit {
    pub strategy: String,
    /// `demos = a + b ln(1/eps)` (the autocurriculum's shape).
    pub vs_log_inv_eps: Option<LinearFit>,
    /// `demos = a + b / eps` (the non-adaptive shape).
    pub vs_inv_eps: Option<LinearFit>,
    /// Slope of `ln demos` against `ln(1/eps)`: about 1 for d/eps, near 0 for d log(1/eps).
    pub loglog_slope: Option<f64>,
    /// Median demos at successive eps values, larger eps first: (eps_from, eps_to, ratio).
    pub growth: Vec<(f64, f64, f64)>,
    /// The same for median rollouts (strategies that sample `pi_ref`; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts_growth: Vec<(f64, f64, f64)>,
}

/// Everything a comparison measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareReport {
    pub task: String,
    /// Which student learned, when the task says (`Task::student_name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    pub task_params: Params,
    pub dimension: usize,
    pub seeds: u64,
    pub base_seed: u64,
    pub eps: Vec<f64>,
    pub strategies: Vec<String>,
    pub results: Vec<Aggregate>,
    pub fits: Vec<StrategyFit>,
    /// Held-out error per slice of the distribution at the same demonstration spend (tasks
    /// with slices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices_at_budget: Vec<SlicesAtBudget>,
    pub runs: Vec<RunSummary>,
    pub total_wall_seconds: f64,
}

/// The median (the mean of the two middle values for an even count); NaN when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median with `None` as +infinity; `None` if the median falls on an unreached seed.
pub(crate) fn median_opt(v: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let m = median(v.into_iter().map(|d| d.unwrap_or(f64::INFINITY)).collect());
    m.is_finite().then_some(m)
}

/// A cost to eps over seeds (`None`: the seed did not reach eps): the median with unreached
/// seeds as infinite, the smallest over the seeds that reached, and the largest if all did.
pub(crate) fn spread(v: &[Option<u64>]) -> (Option<f64>, Option<u64>, Option<u64>) {
    let max = if v.iter().all(Option::is_some) {
        v.iter().flatten().max().copied()
    } else {
        None
    };
    (
        median_opt(v.iter().map(|d| d.map(|d| d as f64))),
        v.iter().flatten().min().copied(),
        max,
    )
}

/// Ratios of successive points `(eps, cost)`, larger eps first: `(eps_from, eps_to, ratio)`.
fn ratios(pts: &[(f64, f64)]) -> Vec<(f64, f64, f64)> {
    pts.windows(2)
        .map(|w| (w[0].0, w[1].0, w[1].1 / w[0].1))
        .collect()
}

/// Aggregates runs over seeds into one row per (strategy, eps), in the given orders.
pub fn aggregate(runs: &[RunResult], strategies: &[String], eps: &[f64]) -> Vec<Aggregate> {
    let mut out = Vec::new();
    for s in strategies {
        for &e in eps {
            let cell: Vec<&RunResult> = runs
                .iter()
                .filter(|r| &r.summary.strategy == s && r.summary.eps == e)
                .collect();
            if cell.is_empty() {
                continue;
            }
            let per_seed: Vec<Option<u64>> = cell.iter().map(|r| r.summary.demos_to_eps).collect();
            let rollouts: Vec<Option<u64>> = cell
                .iter()
                .map(|r| r.summary.cost_to_eps.as_ref().map(Ledger::rollouts))
                .collect();
            let med = |f: &dyn Fn(&RunResult) -> f64| median(cell.iter().map(|r| f(r)).collect());
            let (demos_median, demos_min, demos_max) = spread(&per_seed);
            let (rollouts_median, rollouts_min, rollouts_max) = spread(&rollouts);
            out.push(Aggregate {
                strategy: s.clone(),
                eps: e,
                seeds: cell.len(),
                reached: cell.iter().filter(|r| r.summary.reached).count(),
                demos_median,
                demos_min,
                demos_max,
                demos_per_seed: per_seed,
                rollouts_median,
                rollouts_min,
                rollouts_max,
                rollouts_per_seed: rollouts,
                reference_samples_median: med(&|r| r.cost().reference_samples as f64),
                reference_tokens_median: med(&|r| r.cost().reference_tokens as f64),
                teacher_tokens_median: med(&|r| r.cost().teacher_tokens as f64),
                verifier_calls_median: med(&|r| r.cost().verifier_calls as f64),
                student_generations_median: med(&|r| r.cost().student_generations as f64),
                student_tokens_median: med(&|r| r.cost().student_tokens as f64),
                training_steps_median: med(&|r| r.cost().training_steps as f64),
                prompts_drawn_median: med(&|r| r.cost().prompts_drawn as f64),
                wall_seconds_median: med(&|r| r.cost().wall_seconds),
                demos_at_stop_median: med(&|r| r.summary.final_ledger.demos() as f64),
                final_error_median: med(&|r| r.summary.final_error),
                final_plain_error_median: cell
                    .iter()
                    .map(|r| r.summary.final_plain_error)
                    .collect::<Option<Vec<f64>>>()
                    .map(median),
                aborted_phases_median: med(&|r| r.summary.aborted_phases as f64),
                heldout_prompts: cell[0].heldout_prompts,
                stops: cell.iter().map(|r| r.summary.stop.clone()).collect(),
            });
        }
    }
    out
}

fn fits(results: &[Aggregate], strategies: &[String]) -> Vec<StrategyFit> {
    strategies
        .iter()
        .map(|s| {
            let mut pts: Vec<(f64, f64)> = results
                .iter()
                .filter(|a| &a.strategy == s)
                .filter_map(|a| a.demos_median.map(|d| (a.eps, d)))
                .collect();
            pts.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut rollout_pts: Vec<(f64, f64)> = results
                .iter()
                .filter(|a| &a.strategy == s && a.reference_samples_median > 0.0)
                .filter_map(|a| a.rollouts_median.map(|d| (a.eps, d)))
                .collect();
            rollout_pts.sort_by(|a, b| b.0.total_cmp(&a.0));
            let log_pts: Vec<(f64, f64)> = pts.iter().map(|&(e, d)| ((1.0 / e).ln(), d)).collect();
            let inv_pts: Vec<(f64, f64)> = pts.iter().map(|&(e, d)| (1.0 / e, d)).collect();
            let ll: Vec<(f64, f64)> = pts
                .iter()
                .map(|&(e, d)| ((1.0 / e).ln(), d.max(1.0).ln()))
                .collect();
            StrategyFit {
                strategy: s.clone(),
                vs_log_inv_eps: fit_linear(&log_pts),
                vs_inv_eps: fit_linear(&inv_pts),
                loglog_slope: fit_linear(&ll).map(|f| f.slope),
                growth: ratios(&pts),
                rollouts_growth: ratios(&rollout_pts),
            }
        })
        .collect()
}

/// Runs every (strategy, eps, seed) run of `plan` in parallel; `on_record` gets every
/// metrics record of every run as it happens (records of different runs interleave).
pub fn compare(
    tasks: &dyn TaskFactory,
    plan: &Plan,
    on_record: &(dyn Fn(&MetricRecord) + Sync),
    journal: Option<&dyn Journal>,
) -> Result<CompareReport, ExperimentError> {
    let start = std::time::Instant::now();
    let runs: Vec<RunResult> = plan
        .runs
        .par_iter()
        .map(|r| run_one_full(tasks, r, on_record, journal).map(|(r, _)| r))
        .collect::<Result<_, ExperimentError>>()?;
    Ok(report_from_runs(
        &plan.spec,
        runs,
        start.elapsed().as_secs_f64(),
    ))
}

/// The run `r` seen at the larger target error `eps` (`compare --nested-eps`): reached at its
/// first checkpoint whose held-out error is at most `eps`.
pub fn at_larger_eps(r: &RunResult, eps: f64) -> RunResult {
    let mut out = r.clone();
    let hit = r
        .checkpoints
        .iter()
        .find(|c| c.reaches(eps, r.heldout_prompts));
    let s = &mut out.summary;
    s.eps = eps;
    s.reached = hit.is_some();
    s.demos_to_eps = hit.map(|c| c.demos);
    s.cost_to_eps = hit.map(|c| c.ledger.clone());
    s.slices_to_eps = hit.map(|c| c.slices.clone()).unwrap_or_default();
    out
}

/// Median held-out error per slice of one strategy at a demonstration budget.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlicesAtBudget {
    pub strategy: String,
    /// The budget: the cheapest strategy's median demonstrations to `eps`.
    pub eps: f64,
    pub budget_demos: f64,
    /// Per slice: label, held-out prompts, median error over seeds (each seed at its last
    /// checkpoint within the budget).
    pub slices: Vec<(String, usize, f64)>,
    /// Median overall held-out error at those checkpoints.
    pub error_median: f64,
}

/// Per-slice errors of every strategy at the cheapest strategy's median demonstrations to
/// the smallest eps: where a strategy fails at the same spend.
fn slices_at_budget(
    runs: &[RunResult],
    results: &[Aggregate],
    strategies: &[String],
) -> Vec<SlicesAtBudget> {
    let Some(eps) = results.iter().map(|a| a.eps).min_by(|a, b| a.total_cmp(b)) else {
        return Vec::new();
    };
    let Some(budget) = results
        .iter()
        .filter(|a| a.eps == eps)
        .filter_map(|a| a.demos_median)
        .min_by(|a, b| a.total_cmp(b))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in strategies {
        let cps: Vec<&Checkpoint> = runs
            .iter()
            .filter(|r| &r.summary.strategy == s && r.summary.eps == eps)
            .filter_map(|r| {
                r.checkpoints
                    .iter()
                    .rfind(|c| c.demos as f64 <= budget && !c.slices.is_empty())
            })
            .collect();
        let Some(first) = cps.first() else { continue };
        let slices = first
            .slices
            .iter()
            .map(|sl| {
                let errs = cps
                    .iter()
                    .filter_map(|c| c.slices.iter().find(|x| x.slice == sl.slice))
                    .map(|x| x.error())
                    .collect();
                (sl.slice.clone(), sl.prompts, median(errs))
            })
            .collect();
        out.push(SlicesAtBudget {
            strategy: s.clone(),
            eps,
            budget_demos: budget,
            slices,
            error_median: median(cps.iter().map(|c| c.heldout_error).collect()),
        });
    }
    out
}

/// Aggregates finished runs of `spec` into its comparison report (with `nested_eps`, each
/// run also counts at the larger eps, read off its checkpoints).
pub fn report_from_runs(
    spec: &CompareSpec,
    mut runs: Vec<RunResult>,
    wall_seconds: f64,
) -> CompareReport {
    let mut eps = spec.eps.clone();
    eps.sort_by(|a, b| b.total_cmp(a));
    eps.dedup();
    let derived: Vec<RunResult> = runs
        .iter()
        .flat_map(|r| r.also_eps.iter().map(move |&e| at_larger_eps(r, e)))
        .collect();
    runs.extend(derived);
    let results = aggregate(&runs, &spec.strategies, &eps);
    let fits = fits(&results, &spec.strategies);
    let slices = slices_at_budget(&runs, &results, &spec.strategies);
    CompareReport {
        task: spec.task.clone(),
        student: runs.first().and_then(|r| r.student.clone()),
        task_params: runs
            .first()
            .map(|r| r.task_params.clone())
            .unwrap_or_default(),
        dimension: runs.first().map_or(0, |r| r.dimension),
        seeds: spec.seeds,
        base_seed: spec.base_seed,
        eps,
        strategies: spec.strategies.clone(),
        results,
        fits,
        slices_at_budget: slices,
        runs: runs.into_iter().map(|r| r.summary).collect(),
        total_wall_seconds: wall_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_counts_unreached_as_infinite() {
        assert_eq!(median_opt([Some(1.0), Some(3.0), None]), Some(3.0));
        assert_eq!(median_opt([Some(1.0), None, None]), None);
        assert_eq!(median_opt([Some(1.0), Some(3.0)]), Some(2.0));
        assert_eq!(median_opt([Some(1.0), None]), None);
        assert_eq!(
            spread(&[Some(4), Some(2), None]),
            (Some(4.0), Some(2), None)
        );
        assert_eq!(spread(&[Some(4), Some(2)]), (Some(3.0), Some(2), Some(4)));
    }
}
