//! One run: one task instance, one strategy, one target eps, one seed.

use autotune_core::{Journal, Ledger, Params, Task, TaskFactory};
use autotune_curriculum::{
    build_strategy, run_curriculum_journaled, Budget, Control, Model, Observer, PhaseReport,
    StopReason, Strategy, StrategyConfig,
};
use serde::{Deserialize, Serialize};

use crate::{
    EndRecord, EvalRecord, ExperimentError, HeldOut, MetricRecord, PhaseRecord, RunKey, SliceError,
};

/// Everything that defines a run (written as the run's resolved configuration).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSpec {
    pub task: String,
    pub task_params: Params,
    pub strategy: String,
    pub strategy_params: Params,
    pub eps: f64,
    pub seed: u64,
    /// Held-out prompts: `ceil(test_factor / eps)`, at least 10/eps.
    pub test_factor: f64,
    pub budget: Budget,
    /// Stop as soon as the held-out error reaches eps (saves time in comparisons); otherwise
    /// the strategy runs to its own stop (certificate, phases or budget).
    pub stop_at_eps: bool,
    /// Larger target errors read off this run's checkpoints (`compare --nested-eps`): the
    /// held-out evaluation then stops early only above the largest of them, so that whether
    /// each was reached is exact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_eps: Vec<f64>,
}

/// Held-out error and cumulative costs at the end of a phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub phase: usize,
    pub members: usize,
    pub demos: u64,
    pub acceptance_rate: f64,
    /// Held-out error; for a single model above eps, estimated on the prompts evaluated
    /// before the errors exceeded `eps * n` (the reached/not-reached decision is exact).
    pub heldout_error: f64,
    /// Held-out prompts evaluated for this estimate (all of them unless stopped early).
    pub heldout_evaluated: usize,
    /// Whether the held-out error is at most eps (exact even when stopped early).
    pub reached: bool,
    /// Held-out errors per slice of the distribution (tasks that define slices, full
    /// evaluations only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<SliceError>,
    /// Stochastic outputs (Algorithm 3's mixture): the plain error `1 - E_x[Acc_x]`; the
    /// held-out error is then the paper's `Pr_x[Acc_x < 3/5]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plain_error: Option<f64>,
    pub ledger: Ledger,
}

impl Checkpoint {
    /// Whether every held-out prompt was evaluated with at most `eps * n` wrong (exact: an
    /// evaluation stopped early had more errors than any eps it was asked about).
    pub fn reaches(&self, eps: f64, heldout: usize) -> bool {
        let errors = (self.heldout_error * self.heldout_evaluated as f64).round() as usize;
        self.heldout_evaluated == heldout && errors <= crate::eval::allowed_errors(eps, heldout)
    }
}

/// What a run measured, without its per-phase checkpoints (what a comparison file keeps of
/// each run).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub strategy: String,
    pub eps: f64,
    pub seed: u64,
    /// Whether some checkpoint reached held-out error `<= eps`.
    pub reached: bool,
    /// Teacher demonstrations at the first checkpoint with held-out error `<= eps`.
    pub demos_to_eps: Option<u64>,
    /// The full ledger at that checkpoint.
    pub cost_to_eps: Option<Ledger>,
    /// Held-out error of the final model, on the whole held-out set.
    pub final_error: f64,
    pub final_ledger: Ledger,
    pub stop: StopReason,
    pub phases: usize,
    /// Phases that ran out of their part of the prompt dataset before filling (the paper's
    /// ABORT; strategies with a split dataset only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub aborted_phases: usize,
    /// Stochastic outputs: the plain error (one sampled answer per prompt) of the final model,
    /// beside `final_error` in the strategy's own metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_plain_error: Option<f64>,
    /// Held-out errors per slice at the checkpoint that reached eps (tasks with slices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices_to_eps: Vec<SliceError>,
    /// Held-out errors per slice at the last checkpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub final_slices: Vec<SliceError>,
    /// Prompts (their ids as the task names them) taught `max_teach` times, chosen again
    /// and still answered wrong by the final model: what keeps a run from its target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub given_up: Vec<String>,
}

impl RunSummary {
    /// Why the target cannot be reached, when the run shows it cannot: it missed eps and gave
    /// up on prompts it was taught `max_teach` times and still fails. One line, for errors.
    pub fn unreachable(&self) -> Option<String> {
        if self.reached || self.given_up.is_empty() {
            return None;
        }
        let n = self.given_up.len();
        let shown: Vec<&str> = self.given_up.iter().take(5).map(String::as_str).collect();
        let more = if n > shown.len() { ", ..." } else { "" };
        Some(format!(
            "{} (seed {}) cannot reach eps {}: {n} prompts were given up on (taught in \
             --max-teach phases, or their demonstration rejected that often) and are still \
             answered wrong (ids {}{more}); check their gold answers and the teacher",
            self.strategy,
            self.seed,
            self.eps,
            shown.join(", ")
        ))
    }
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

/// What a run measured, in full (`result.json`: the summary's fields sit at the top level).
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    pub task: String,
    /// Which student learned (the task's `student_name`), when the task says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub student: Option<String>,
    #[serde(flatten)]
    pub summary: RunSummary,
    pub heldout_prompts: usize,
    pub dimension: usize,
    pub checkpoints: Vec<Checkpoint>,
    pub strategy_config: StrategyConfig,
    pub task_params: Params,
    /// The larger eps this run is also read at (`compare --nested-eps`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_eps: Vec<f64>,
}

impl RunResult {
    /// Costs at the eps checkpoint if reached, else at the end of the run.
    pub fn cost(&self) -> &Ledger {
        let s = &self.summary;
        s.cost_to_eps.as_ref().unwrap_or(&s.final_ledger)
    }
}

struct HeldOutObserver<'a, F: FnMut(&MetricRecord)> {
    task: &'a dyn Task,
    run: RunKey,
    heldout: HeldOut,
    eps: f64,
    /// Early-stop threshold of the held-out evaluation (the largest eps asked about).
    stop_eps: f64,
    stop_at_eps: bool,
    checkpoints: Vec<Checkpoint>,
    reached: Option<usize>,
    on_record: F,
}

impl<F: FnMut(&MetricRecord)> Observer for HeldOutObserver<'_, F> {
    fn on_phase(&mut self, report: &PhaseReport, model: &Model) -> Control {
        (self.on_record)(&MetricRecord::Phase(PhaseRecord {
            run: self.run.clone(),
            report: report.clone(),
        }));
        let ev = self
            .heldout
            .reaches(self.task, model, self.eps, self.stop_eps);
        if self.heldout.failure().is_some() {
            // The verifier failed: stop; `run_one_full` reports why.
            return Control::Stop;
        }
        let cp = Checkpoint {
            phase: report.phase,
            members: report.members,
            demos: report.ledger.demos(),
            acceptance_rate: report.acceptance_rate,
            heldout_error: ev.error,
            heldout_evaluated: ev.evaluated,
            reached: ev.reached,
            slices: ev.slices,
            plain_error: ev.plain_error,
            ledger: report.ledger.clone(),
        };
        (self.on_record)(&MetricRecord::Eval(EvalRecord {
            run: self.run.clone(),
            checkpoint: cp.clone(),
        }));
        self.checkpoints.push(cp);
        if ev.reached && self.reached.is_none() {
            self.reached = Some(self.checkpoints.len() - 1);
            if self.stop_at_eps {
                return Control::Stop;
            }
        }
        Control::Continue
    }
}

/// Runs `spec`, calling `on_record` with every metrics record as it happens: a phase record
/// and an evaluation record after every phase, and an end record last.
pub fn run_one(
    tasks: &dyn TaskFactory,
    spec: &RunSpec,
    on_record: impl FnMut(&MetricRecord),
) -> Result<RunResult, ExperimentError> {
    run_one_full(tasks, spec, on_record, None).map(|(r, _)| r)
}

/// What a run leaves besides its measurements: the task instance, the output model and every
/// demonstration bought (for exports).
pub struct RunArtifacts {
    pub task: Box<dyn Task>,
    pub strategy: Box<dyn Strategy>,
    pub model: Model,
    pub demos: Vec<autotune_core::Demo>,
}

/// The name of a run's stream in a journal.
pub fn journal_stream(spec: &RunSpec) -> String {
    format!("{}/{}/{}", spec.strategy, spec.eps, spec.seed)
}

/// The held-out set's default size factor: `10 / eps` prompts (also its smallest).
pub const DEFAULT_TEST_FACTOR: f64 = 10.0;

/// The default demonstration budget per unit of `d / eps`: a run stops after `20 d / eps`
/// teacher demonstrations unless told otherwise.
pub const DEFAULT_DEMOS_PER_D_OVER_EPS: f64 = 20.0;

/// The most held-out prompts a run draws: they are generated and kept in memory before the
/// run starts (about 32 bytes each on halfspace-cot), so `10 / eps` caps eps at 1e-6.
pub const MAX_HELDOUT: usize = 10_000_000;

/// The held-out set size of a run, `ceil(test_factor / eps)`, after checking what it is made
/// of: eps in (0, 1), `test_factor` a finite number of at least 10, and the size at most
/// [`MAX_HELDOUT`]. Commands call it before anything runs.
pub fn heldout_size(eps: f64, test_factor: f64) -> Result<usize, ExperimentError> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(ExperimentError::Invalid(format!(
            "eps must be in (0, 1), got {eps}"
        )));
    }
    if !(test_factor.is_finite() && test_factor >= DEFAULT_TEST_FACTOR) {
        return Err(ExperimentError::Invalid(format!(
            "--test-factor must be a finite number of at least 10 (held-out set of 10/eps prompts), got {test_factor}"
        )));
    }
    let n = (test_factor / eps).ceil();
    if n > MAX_HELDOUT as f64 {
        return Err(ExperimentError::Invalid(format!(
            "eps {eps} with --test-factor {test_factor} needs {n:.0} held-out prompts, over the limit of {MAX_HELDOUT} (the held-out set is kept in memory): use eps >= {:e} or a smaller --test-factor",
            test_factor / MAX_HELDOUT as f64
        )));
    }
    Ok(n as usize)
}

/// [`run_one`], keeping the run's artifacts; with a journal, every expensive result is
/// journaled (and what the journal already holds is replayed: a resumed run).
pub fn run_one_full(
    tasks: &dyn TaskFactory,
    spec: &RunSpec,
    on_record: impl FnMut(&MetricRecord),
    journal: Option<&dyn Journal>,
) -> Result<(RunResult, RunArtifacts), ExperimentError> {
    let n_test = heldout_size(spec.eps, spec.test_factor)?;
    let (task, task_params) = tasks.build(&spec.task, &spec.task_params, spec.seed)?;
    let d = task.dimension();
    let strategy = build_strategy(&spec.strategy, &spec.strategy_params, spec.eps, d)?;
    let heldout = HeldOut::new(task.prompts("test", spec.seed)?.draw(n_test)?)
        .with_output(strategy.config().output);
    let mut obs = HeldOutObserver {
        task: task.as_ref(),
        run: RunKey {
            strategy: spec.strategy.clone(),
            eps: spec.eps,
            seed: spec.seed,
        },
        heldout,
        eps: spec.eps,
        stop_eps: spec.also_eps.iter().fold(spec.eps, |a, &b| a.max(b)),
        stop_at_eps: spec.stop_at_eps,
        checkpoints: Vec::new(),
        reached: None,
        on_record,
    };
    let label = obs.run.label();
    let outcome = autotune_core::progress::with_label(&label, || {
        run_curriculum_journaled(
            task.as_ref(),
            strategy.as_ref(),
            spec.eps,
            spec.seed,
            &spec.budget,
            &mut obs,
            journal.map(|j| (j, journal_stream(spec))),
        )
    })?;
    let final_error = obs.heldout.error(task.as_ref(), &outcome.model);
    if let Some(why) = obs.heldout.failure() {
        return Err(autotune_core::CoreError::Verifier(why.to_string()).into());
    }
    let reached = obs.reached.map(|i| &obs.checkpoints[i]);
    let result = RunResult {
        task: spec.task.clone(),
        student: task.student_name(),
        summary: RunSummary {
            strategy: spec.strategy.clone(),
            eps: spec.eps,
            seed: spec.seed,
            reached: reached.is_some(),
            demos_to_eps: reached.map(|c| c.demos),
            cost_to_eps: reached.map(|c| c.ledger.clone()),
            final_error,
            final_ledger: outcome.ledger,
            stop: outcome.stop,
            phases: outcome.phases,
            aborted_phases: outcome.reports.iter().filter(|r| r.aborted).count(),
            final_plain_error: obs.checkpoints.last().and_then(|c| c.plain_error),
            slices_to_eps: reached.map(|c| c.slices.clone()).unwrap_or_default(),
            final_slices: obs
                .checkpoints
                .last()
                .map(|c| c.slices.clone())
                .unwrap_or_default(),
            given_up: outcome
                .given_up
                .iter()
                .map(|p| task.describe(p).id)
                .collect(),
        },
        heldout_prompts: n_test,
        dimension: d,
        checkpoints: obs.checkpoints,
        strategy_config: strategy.config().clone(),
        task_params,
        also_eps: spec.also_eps.clone(),
    };
    (obs.on_record)(&MetricRecord::End(EndRecord {
        summary: result.summary.clone(),
        heldout_prompts: n_test,
    }));

    Ok((
        result,
        RunArtifacts {
            task,
            strategy,
            model: outcome.model,
            demos: outcome.demos,
        },
    ))
}
