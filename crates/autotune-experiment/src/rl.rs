//! `autotune rl`: policy-gradient training from the reference checkpoint with each prompt
//! selector, over seeds: rollouts and wall time to reach the held-out target, and the
//! reference policy's measured coverage.

use autotune_core::{stream_seed, Ledger, Params, Prompt, Task, TaskFactory, Token, Trace};
use std::path::{Path, PathBuf};

use autotune_curriculum::{
    run_grpo, Budget, Control, CurriculumError, GrpoConfig, GrpoObserver, GrpoState, GrpoStep,
    Model, Selector,
};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compare::{median, median_opt, spread};
use crate::table::{num, range_text, ratio_text};
use crate::{ExperimentError, HeldOut, SliceError};

/// What to run: every selector on every seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlSpec {
    pub task: String,
    pub task_params: Params,
    pub selectors: Vec<Selector>,
    /// The trainer's settings (its `selector` is set per run).
    pub grpo: GrpoConfig,
    /// Target held-out error (0.05: 95% accuracy).
    pub eps: f64,
    pub seeds: u64,
    pub base_seed: u64,
    /// Held-out prompts (at least 10/eps).
    pub heldout: usize,
    /// Evaluate on the held-out prompts every this many steps.
    pub eval_every: usize,
    pub budget: Budget,
    pub max_rollouts: Option<u64>,
    /// Samples per prompt for the coverage of pi_ref (0: not measured).
    pub coverage_samples: usize,
    /// Prompts for the coverage of pi_ref.
    pub coverage_prompts: usize,
}

/// One point of a learning curve.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlCheckpoint {
    pub step: usize,
    pub heldout_error: f64,
    pub slices: Vec<SliceError>,
    pub ledger: Ledger,
}

/// One run: a selector on a seed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlRun {
    pub selector: Selector,
    pub seed: u64,
    pub reached: bool,
    /// Costs at the first evaluation with held-out error <= eps.
    pub cost_to_eps: Option<Ledger>,
    pub steps_to_eps: Option<usize>,
    pub initial_error: f64,
    pub final_error: f64,
    pub final_ledger: Ledger,
    pub steps: usize,
    pub short_steps: usize,
    pub stalled_steps: usize,
    /// Groups carried over from one step to the next (accepted, trained on later).
    pub carried_groups: usize,
    pub stop: String,
    pub checkpoints: Vec<RlCheckpoint>,
}

impl RlRun {
    pub fn rollouts_to_eps(&self) -> Option<u64> {
        self.cost_to_eps.as_ref().map(Ledger::rollouts)
    }
}

/// A selector over seeds (medians; unreached seeds count as infinite in the medians to eps).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlAggregate {
    pub selector: Selector,
    pub seeds: usize,
    pub reached: usize,
    pub rollouts_median: Option<f64>,
    pub rollouts_min: Option<u64>,
    pub rollouts_max: Option<u64>,
    pub wall_seconds_median: Option<f64>,
    pub steps_median: Option<f64>,
    /// Student tokens, verifier calls and prompts drawn to eps, medians over the seeds that
    /// reached it (null if none did).
    pub student_tokens_median: Option<f64>,
    pub verifier_calls_median: Option<f64>,
    pub prompts_drawn_median: Option<f64>,
    pub short_steps_median: f64,
    pub stalled_steps_median: f64,
    pub final_error_median: f64,
}

/// The coverage of pi_ref, measured on fresh prompts: per prompt, the fraction of samples the
/// verifier accepts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Coverage {
    pub prompts: usize,
    pub samples_per_prompt: usize,
    pub temperature: f64,
    /// Mean pass rate over prompts, and 1 over it (the average kappa; null when no sample
    /// was right).
    pub mean_pass_rate: f64,
    pub kappa: Option<f64>,
    /// Fraction of prompts no sample solved.
    pub uncovered: f64,
    /// Greedy accuracy of pi_ref.
    pub greedy_accuracy: f64,
    /// Prompts per pass-rate bin: 0, (0, 1/4], (1/4, 1/2], (1/2, 3/4], (3/4, 1].
    pub histogram: Vec<usize>,
    /// Per slice of the distribution: (slice, prompts, mean pass rate, uncovered fraction).
    pub slices: Vec<(String, usize, f64, f64)>,
}

/// Everything `autotune rl` measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RlReport {
    pub spec: RlSpec,
    pub coverage: Option<Coverage>,
    pub results: Vec<RlAggregate>,
    pub runs: Vec<RlRun>,
    pub total_wall_seconds: f64,
}

/// Measures the coverage of the task's pi_ref on `n` fresh prompts (the test distribution, from
/// a stream of its own),
/// `k` samples each. Not charged to any run.
pub fn measure_coverage(
    task: &dyn Task,
    n: usize,
    k: usize,
    seed: u64,
) -> Result<Coverage, ExperimentError> {
    let (pi, temperature) = task.reference().ok_or_else(|| {
        ExperimentError::Invalid(format!(
            "task {} has no reference policy pi_ref (halfspace-cot: --kappa K; arith: --param \
             reference=CHECKPOINT)",
            task.name()
        ))
    })?;
    let prompts: Vec<Prompt> = task
        .prompts("test", stream_seed(seed, "coverage prompts"))?
        .draw(n)?;
    let verify = |traces: &[Trace]| -> Vec<bool> {
        let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
        task.verifier().verify_batch(&prompts, &answers)
    };
    let mut passes = vec![0usize; prompts.len()];
    for j in 0..k {
        // A hashed seed per call: `sample_batch` derives prompt i's stream as seed + i, so
        // consecutive seeds would give prompt i of one call the stream of prompt i + 1 of
        // the next.
        let traces = pi.sample_batch(
            &prompts,
            temperature,
            stream_seed(seed, &format!("coverage/{j}")),
        );
        for (p, ok) in passes.iter_mut().zip(verify(&traces)) {
            *p += usize::from(ok);
        }
    }
    let greedy = verify(&pi.generate_batch(&prompts));
    let rate = |p: usize| p as f64 / k.max(1) as f64;
    let mean = passes.iter().map(|&p| rate(p)).sum::<f64>() / n.max(1) as f64;
    let mut histogram = vec![0usize; 5];
    for &p in &passes {
        let r = rate(p);
        let bin = if p == 0 {
            0
        } else if r <= 0.25 {
            1
        } else if r <= 0.5 {
            2
        } else if r <= 0.75 {
            3
        } else {
            4
        };
        histogram[bin] += 1;
    }
    let mut slices: Vec<(String, usize, f64, f64)> = Vec::new();
    for (prompt, &p) in prompts.iter().zip(&passes) {
        let Some(label) = task.slice(prompt) else {
            continue;
        };
        match slices.iter_mut().find(|s| s.0 == label) {
            Some(s) => {
                s.1 += 1;
                s.2 += rate(p);
                s.3 += f64::from(u8::from(p == 0));
            }
            None => slices.push((label, 1, rate(p), f64::from(u8::from(p == 0)))),
        }
    }
    for s in &mut slices {
        s.2 /= s.1 as f64;
        s.3 /= s.1 as f64;
    }
    slices.sort_by(|a, b| crate::slice_order(&a.0, &b.0));
    Ok(Coverage {
        prompts: n,
        samples_per_prompt: k,
        temperature,
        mean_pass_rate: mean,
        kappa: (mean > 0.0).then(|| 1.0 / mean),
        uncovered: histogram[0] as f64 / n.max(1) as f64,
        greedy_accuracy: greedy.iter().filter(|x| **x).count() as f64 / n.max(1) as f64,
        histogram,
        slices,
    })
}

struct Watch<'a, F: Fn(&GrpoStep, Option<f64>)> {
    task: &'a dyn Task,
    heldout: HeldOut,
    eps: f64,
    every: usize,
    checkpoints: Vec<RlCheckpoint>,
    reached: Option<usize>,
    on_step: &'a F,
    /// Where the run keeps its state (a resumable run), and every how many steps.
    state: Option<PathBuf>,
    keep_every: usize,
}

/// What [`Watch`] keeps in a [`GrpoState`].
#[derive(Serialize, Deserialize)]
struct WatchState {
    checkpoints: Vec<RlCheckpoint>,
    reached: Option<usize>,
}

impl<F: Fn(&GrpoStep, Option<f64>)> Watch<'_, F> {
    fn evaluate(&mut self, step: usize, model: &Model, ledger: Ledger) -> f64 {
        // A full evaluation (never stopped early): the curve is exact at every point.
        let ev = self.heldout.reaches(self.task, model, self.eps, 1.0);
        self.checkpoints.push(RlCheckpoint {
            step,
            heldout_error: ev.error,
            slices: ev.slices,
            ledger,
        });
        if ev.error <= self.eps + 1e-12 && self.reached.is_none() {
            self.reached = Some(self.checkpoints.len() - 1);
        }
        ev.error
    }
}

impl<F: Fn(&GrpoStep, Option<f64>)> GrpoObserver for Watch<'_, F> {
    fn on_start(&mut self, model: &Model) {
        self.evaluate(0, model, Ledger::default());
    }

    fn on_step(&mut self, step: &GrpoStep, model: &Model) -> Control {
        let mut error = None;
        if (step.step + 1).is_multiple_of(self.every) {
            error = Some(self.evaluate(step.step + 1, model, step.ledger.clone()));
        }
        (self.on_step)(step, error);
        if self.reached.is_some() {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn keeps_state(&self, steps: usize, last: bool) -> bool {
        self.state.is_some() && (last || steps.is_multiple_of(self.keep_every.max(1)))
    }

    fn save(&self) -> serde_json::Value {
        serde_json::to_value(WatchState {
            checkpoints: self.checkpoints.clone(),
            reached: self.reached,
        })
        .expect("json")
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), CurriculumError> {
        let w = WatchState::deserialize(state).map_err(|e| {
            autotune_core::CoreError::Journal(format!("the held-out curve of a saved state: {e}"))
        })?;
        self.checkpoints = w.checkpoints;
        self.reached = w.reached;
        Ok(())
    }

    fn keep(&mut self, state: &GrpoState) -> Result<(), CurriculumError> {
        let Some(path) = &self.state else {
            return Ok(());
        };
        let text = serde_json::to_string(state).expect("json");
        crate::write_atomic(path, &text)
            .map_err(|e| autotune_core::CoreError::Journal(e.to_string()).into())
    }
}

/// Where and how often the runs of `autotune rl` keep their states.
#[derive(Clone, Copy, Debug)]
pub struct RlStates<'a> {
    pub dir: &'a Path,
    /// Keep a run's state every this many steps (and at its end): a resumed run does at most
    /// this many steps again.
    pub every: usize,
}

/// The file where run (`selector`, `seed`) keeps its state in `dir`.
pub fn rl_state_path(dir: &Path, selector: Selector, seed: u64) -> PathBuf {
    dir.join(format!("{}-seed{seed}.json", selector.name()))
}

/// Reads a state kept by an earlier process, if there is one.
fn read_state(path: &Path) -> Result<Option<GrpoState>, ExperimentError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ExperimentError::Invalid(format!(
                "{}: cannot read the run's state: {e}",
                path.display()
            )))
        }
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        ExperimentError::Invalid(format!(
            "{}: not the state of an `autotune rl` run: {e}",
            path.display()
        ))
    })
}

/// Trains with `selector` on `seed`; `on_step` sees every step (and the held-out error where
/// it was evaluated). With `states`, the run keeps its state in that directory
/// ([`rl_state_path`]) every `states.every` steps and at its end, and goes on from a state
/// already there.
pub fn run_rl_one(
    tasks: &dyn TaskFactory,
    spec: &RlSpec,
    selector: Selector,
    seed: u64,
    on_step: &(impl Fn(&GrpoStep, Option<f64>) + Sync),
    states: Option<RlStates<'_>>,
) -> Result<RlRun, ExperimentError> {
    if !(spec.eps > 0.0 && spec.eps < 1.0) {
        return Err(ExperimentError::Invalid(format!(
            "eps must be in (0, 1), got {}",
            spec.eps
        )));
    }
    let need = (10.0 / spec.eps).ceil() as usize;
    if spec.heldout < need {
        return Err(ExperimentError::Invalid(format!(
            "--heldout {} is too small: at least 10/eps = {need} prompts",
            spec.heldout
        )));
    }
    let (task, _) = tasks.build(&spec.task, &spec.task_params, seed)?;
    let heldout = HeldOut::new(task.prompts("test", seed)?.draw(spec.heldout)?);
    let mut watch = Watch {
        task: task.as_ref(),
        heldout,
        eps: spec.eps,
        every: spec.eval_every.max(1),
        checkpoints: Vec::new(),
        reached: None,
        on_step,
        state: states.map(|s| rl_state_path(s.dir, selector, seed)),
        keep_every: states.map_or(1, |s| s.every),
    };
    let resume = match &watch.state {
        Some(path) => read_state(path)?,
        None => None,
    };
    let cfg = GrpoConfig {
        selector,
        ..spec.grpo.clone()
    };
    let outcome = run_grpo(
        task.as_ref(),
        &cfg,
        seed,
        &spec.budget,
        spec.max_rollouts,
        &mut watch,
        resume,
    )?;
    let final_error = match watch.checkpoints.last() {
        Some(c) if c.step == outcome.steps.len() => c.heldout_error,
        _ => watch.heldout.error(task.as_ref(), &outcome.model),
    };
    // The first checkpoint is the start, pi_ref itself.
    let initial_error = watch.checkpoints[0].heldout_error;
    let reached = watch.reached.map(|i| &watch.checkpoints[i]);
    Ok(RlRun {
        selector,
        seed,
        reached: reached.is_some(),
        cost_to_eps: reached.map(|c| c.ledger.clone()),
        steps_to_eps: reached.map(|c| c.step),
        initial_error,
        final_error,
        final_ledger: outcome.ledger,
        steps: outcome.steps.len(),
        short_steps: outcome.short_steps,
        stalled_steps: outcome.stalled_steps,
        carried_groups: outcome.steps.iter().map(|s| s.carried_in).sum(),
        stop: outcome.stop,
        checkpoints: watch.checkpoints,
    })
}

/// One row per selector.
pub fn aggregate_rl(runs: &[RlRun], selectors: &[Selector]) -> Vec<RlAggregate> {
    selectors
        .iter()
        .filter_map(|&s| {
            let cell: Vec<&RlRun> = runs.iter().filter(|r| r.selector == s).collect();
            if cell.is_empty() {
                return None;
            }
            let reached_med = |f: &dyn Fn(&Ledger) -> f64| {
                let m = median(
                    cell.iter()
                        .filter_map(|r| r.cost_to_eps.as_ref().map(f))
                        .collect(),
                );
                m.is_finite().then_some(m)
            };
            let rollouts: Vec<Option<u64>> = cell.iter().map(|r| r.rollouts_to_eps()).collect();
            let (rollouts_median, rollouts_min, rollouts_max) = spread(&rollouts);
            Some(RlAggregate {
                selector: s,
                seeds: cell.len(),
                reached: cell.iter().filter(|r| r.reached).count(),
                rollouts_median,
                rollouts_min,
                rollouts_max,
                wall_seconds_median: median_opt(
                    cell.iter()
                        .map(|r| r.cost_to_eps.as_ref().map(|l| l.wall_seconds)),
                ),
                steps_median: median_opt(cell.iter().map(|r| r.steps_to_eps.map(|s| s as f64))),
                student_tokens_median: reached_med(&|l| l.student_tokens as f64),
                verifier_calls_median: reached_med(&|l| l.verifier_calls as f64),
                prompts_drawn_median: reached_med(&|l| l.prompts_drawn as f64),
                short_steps_median: median(cell.iter().map(|r| r.short_steps as f64).collect()),
                stalled_steps_median: median(cell.iter().map(|r| r.stalled_steps as f64).collect()),
                final_error_median: median(cell.iter().map(|r| r.final_error).collect()),
            })
        })
        .collect()
}

/// Sees every step of every run: its selector and seed, the step, and the held-out error where
/// it was evaluated.
pub type StepHook = dyn Fn(Selector, u64, &GrpoStep, Option<f64>) + Sync;

/// Runs every selector on every seed (in parallel) and aggregates.
///
/// With `states`, every run keeps its state there after each step and goes on from a state
/// already there (`autotune resume` of an `autotune rl` run directory), and the coverage of
/// pi_ref is kept there too.
pub fn run_rl(
    tasks: &dyn TaskFactory,
    spec: &RlSpec,
    on_step: &StepHook,
    states: Option<RlStates<'_>>,
) -> Result<RlReport, ExperimentError> {
    let t0 = std::time::Instant::now();
    if spec.selectors.is_empty() || spec.seeds == 0 {
        return Err(ExperimentError::Invalid(
            "give at least one selector and one seed".into(),
        ));
    }
    spec.grpo.validate()?;
    if let Some(d) = states.map(|s| s.dir) {
        std::fs::create_dir_all(d)
            .map_err(|e| ExperimentError::Invalid(format!("{}: {e}", d.display())))?;
    }
    let kept_coverage = states.map(|s| s.dir.join("coverage.json"));
    let coverage = match &kept_coverage {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ExperimentError::Invalid(format!("{}: {e}", path.display())))?;
            Some(
                serde_json::from_str(&text)
                    .map_err(|e| ExperimentError::Invalid(format!("{}: {e}", path.display())))?,
            )
        }
        _ if spec.coverage_samples > 0 => {
            let (task, _) = tasks.build(&spec.task, &spec.task_params, spec.base_seed)?;
            let c = measure_coverage(
                task.as_ref(),
                spec.coverage_prompts,
                spec.coverage_samples,
                spec.base_seed,
            )?;
            if let Some(path) = &kept_coverage {
                crate::write_atomic(path, &serde_json::to_string(&c).expect("json"))?;
            }
            Some(c)
        }
        _ => None,
    };
    let jobs: Vec<(Selector, u64)> = (0..spec.seeds)
        .flat_map(|i| spec.selectors.iter().map(move |&s| (s, spec.base_seed + i)))
        .collect();
    let runs: Vec<RlRun> = jobs
        .par_iter()
        .map(|&(s, seed)| {
            run_rl_one(
                tasks,
                spec,
                s,
                seed,
                &|st: &GrpoStep, e| on_step(s, seed, st, e),
                states,
            )
        })
        .collect::<Result<_, _>>()?;
    Ok(RlReport {
        spec: spec.clone(),
        coverage,
        results: aggregate_rl(&runs, &spec.selectors),
        runs,
        total_wall_seconds: t0.elapsed().as_secs_f64(),
    })
}

/// The coverage of pi_ref as text.
pub fn coverage_text(c: &Coverage) -> String {
    let mut out = format!(
        "coverage of pi_ref on {} fresh prompts, {} samples each at temperature {}: mean pass rate {:.3} (kappa = 1/rate = {:.1}), uncovered (no sample right) {:.1}%, greedy accuracy {:.3}\n",
        c.prompts,
        c.samples_per_prompt,
        c.temperature,
        c.mean_pass_rate,
        c.kappa.unwrap_or(f64::INFINITY),
        100.0 * c.uncovered,
        c.greedy_accuracy
    );
    out.push_str(&format!(
        "  prompts by pass rate: 0: {} | (0, 1/4]: {} | (1/4, 1/2]: {} | (1/2, 3/4]: {} | (3/4, 1]: {}\n",
        c.histogram[0], c.histogram[1], c.histogram[2], c.histogram[3], c.histogram[4]
    ));
    for (s, n, rate, unc) in &c.slices {
        out.push_str(&format!(
            "  {s:<10} {n:>6} prompts  pass rate {rate:.3}  uncovered {:.1}%\n",
            100.0 * unc
        ));
    }
    out
}

/// The comparison of selectors as text.
pub fn rl_table(r: &RlReport) -> String {
    let s = &r.spec;
    let mut out = format!(
        "policy gradient (GRPO-style) on {} from pi_ref: {} seeds from {}, groups of {} samples at temperature {}, {} groups per update, lr {}; target held-out error <= {} on {} prompts, evaluated every {} steps\n",
        s.task, s.seeds, s.base_seed, s.grpo.group, s.grpo.temperature, s.grpo.prompts_per_step, s.grpo.lr, s.eps, s.heldout, s.eval_every
    );
    out.push_str("rollouts = student generations (greedy tests and samples), each verifier-checked; costs to eps are medians over seeds (unreached = infinite)\n");
    let header = format!(
        "{:<14} {:>7} {:>10} {:>17} {:>11} {:>9} {:>12} {:>7} {:>8} {:>9} {:>10}\n",
        "selector",
        "reached",
        "rollouts",
        "[min, max]",
        "x uniform",
        "wall s",
        "x uniform",
        "steps",
        "short",
        "stalled",
        "final err"
    );
    out.push_str(&header);
    out.push_str(&format!("{}\n", "-".repeat(header.len() - 1)));
    for a in &r.results {
        // Uniform's median (none on uniform's own row).
        let uni = r
            .results
            .iter()
            .find(|u| u.selector == Selector::Uniform && a.selector != Selector::Uniform);
        out.push_str(&format!(
            "{:<14} {:>7} {:>10} {:>17} {:>11} {:>9} {:>12} {:>7} {:>8} {:>9} {:>10.4}\n",
            a.selector.name(),
            format!("{}/{}", a.reached, a.seeds),
            a.rollouts_median.map_or("-".into(), num),
            range_text(a.rollouts_min, a.rollouts_max),
            ratio_text(uni.and_then(|u| u.rollouts_median), a.rollouts_median, 2),
            a.wall_seconds_median
                .map_or("-".into(), |w| format!("{w:.1}")),
            ratio_text(
                uni.and_then(|u| u.wall_seconds_median),
                a.wall_seconds_median,
                2,
            ),
            a.steps_median.map_or("-".into(), num),
            num(a.short_steps_median),
            num(a.stalled_steps_median),
            a.final_error_median,
        ));
    }
    // Costs to intermediate targets, read off the learning curves.
    let targets = [2.0 * s.eps, 1.5 * s.eps, s.eps];
    out.push_str(
        "\nrollouts and wall seconds to held-out error <= t (medians over seeds; - : half or more of the seeds did not get there)\n",
    );
    out.push_str(&format!("{:<14}", "selector"));
    for t in targets {
        out.push_str(&format!(" {:>22}", format!("t = {t:.3}")));
    }
    out.push('\n');
    for a in &r.results {
        out.push_str(&format!("{:<14}", a.selector.name()));
        for t in targets {
            let hits: Vec<Option<&RlCheckpoint>> = r
                .runs
                .iter()
                .filter(|run| run.selector == a.selector)
                .map(|run| {
                    run.checkpoints
                        .iter()
                        .find(|c| c.heldout_error <= t + 1e-12)
                })
                .collect();
            let med = |f: &dyn Fn(&RlCheckpoint) -> f64| median_opt(hits.iter().map(|h| h.map(f)));
            let cell = match (
                med(&|c| c.ledger.rollouts() as f64),
                med(&|c| c.ledger.wall_seconds),
            ) {
                (Some(x), Some(w)) => format!("{} / {w:.0} s", num(x)),
                _ => "-".into(),
            };
            out.push_str(&format!(" {cell:>22}"));
        }
        out.push('\n');
    }
    out.push_str("\nper run: selector seed | initial -> final held-out error | steps (short, stalled, carried groups) | rollouts to eps | stop\n");
    for run in &r.runs {
        out.push_str(&format!(
            "  {:<14} {:>3} | {:.4} -> {:.4} | {} ({}, {}, {}) | {} | {}\n",
            run.selector.name(),
            run.seed,
            run.initial_error,
            run.final_error,
            run.steps,
            run.short_steps,
            run.stalled_steps,
            run.carried_groups,
            run.rollouts_to_eps().map_or("-".into(), |x| num(x as f64)),
            run.stop
        ));
    }
    out
}
