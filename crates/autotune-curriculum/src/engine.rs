//! The loop of the spec: Test, Filter, Update, phase after phase.

use autotune_core::{
    stream_rng, stream_seed, CoreError, Demo, FitStats, Journal, Ledger, Metered, Prompt, Rng,
    Task, Token, Trace,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::model::{plurality, Member, Model};
use crate::strategy::{Mask, Source, StrategyConfig};
use crate::weights::*;
use crate::CurriculumError;

/// Limits on what a run may spend. `None` is unlimited.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Budget {
    pub max_demos: Option<u64>,
    pub max_verifier_calls: Option<u64>,
    pub max_seconds: Option<f64>,
}

/// What happened in one phase: the numbers the ledger keeps per phase.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PhaseReport {
    pub phase: usize,
    /// Demonstrations added in this phase (bought from the teacher, or found by rejection
    /// sampling from `pi_ref`).
    pub demos: usize,
    /// RL strategies: accepted prompts on which no `pi_ref` sample was accepted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unsolved: usize,
    /// Candidate prompts drawn and tested in this phase.
    pub drawn: u64,
    /// Accepted / drawn.
    pub acceptance_rate: f64,
    /// Tested candidates per rank (members right, or samples right), index = rank, length
    /// `max_rank + 1`; empty when the phase tested nothing (uniform, or an empty model).
    pub rank_histogram: Vec<u64>,
    /// The highest possible rank in this phase: members tested, or samples per prompt (0
    /// when nothing was tested). Rank 0 is "all wrong", `max_rank` is "all right".
    pub max_rank: usize,
    /// FilterBoost: error of the new member on fresh filtered prompts.
    pub member_error: Option<f64>,
    /// Whether this phase added a member (FilterBoost drops members without an edge).
    pub member_added: bool,
    /// Members in the model after this phase.
    pub members: usize,
    pub fit: FitStats,
    /// Cumulative costs after this phase.
    pub ledger: Ledger,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The filter rejected `draws` candidates in a row and the output model answered all of
    /// them correctly: its error is at most eps with probability at least 1 - delta.
    Certificate { draws: u64 },
    /// The filter rejected `draws` candidates in a row, but the output model was wrong on
    /// `vote_errors` of them: the mask gives no weight to its remaining mistakes (e.g.
    /// boost-by-majority's "lost" prompts), so no certificate is claimed.
    FilterExhausted { draws: u64, vote_errors: u64 },
    /// The planned number of phases is done.
    MaxPhases,
    /// A budget ran out (`demos`, `verifier_calls` or `seconds`).
    Budget { what: String },
    /// The observer asked to stop (e.g. the held-out target was reached).
    Observer,
}

/// Tells the engine whether to go on after a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Watches the run after every phase (held-out evaluation, progress, logs). Time spent here is
/// not charged to the strategy.
pub trait Observer {
    fn on_phase(&mut self, report: &PhaseReport, model: &Model) -> Control;
}

/// An observer that watches nothing.
pub struct NoObserver;
impl Observer for NoObserver {
    fn on_phase(&mut self, _: &PhaseReport, _: &Model) -> Control {
        Control::Continue
    }
}

/// The end of a run.
pub struct Outcome {
    pub stop: StopReason,
    pub phases: usize,
    pub ledger: Ledger,
    pub model: Model,
    pub reports: Vec<PhaseReport>,
    /// Every demonstration the run bought, in order (for export as SFT data).
    pub demos: Vec<Demo>,
}

/// The score of a tested candidate: its rank, its acceptance probability, and whether the
/// output model (the vote, or the single model's greedy answer) is right on it, where known.
struct Score {
    /// `None`: the candidate was not tested.
    rank: Option<usize>,
    accept: f64,
    vote_ok: Option<bool>,
}

struct Engine<'a> {
    task: &'a dyn Task,
    cfg: &'a StrategyConfig,
    eps: f64,
    seed: u64,
    budget: &'a Budget,
    meter: Metered<'a>,
    filter_rng: Rng,
    sample_calls: u64,
    members_built: u64,
    /// Warm-started ensembles: how many of the demonstrations so far the last accepted member
    /// was trained on (a new member, its copy, trains on the rest).
    last_member_demos: usize,
}

/// How the curriculum sees one prompt under a model: its rank (None: not tested), the
/// highest possible rank, and the mask's weight (acceptance probability).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PromptScore {
    pub rank: Option<usize>,
    pub max_rank: usize,
    pub weight: f64,
}

/// Scores `prompts` under `model` as the Test and Filter steps of phase `phase` would (for
/// exporting a prompt set with its curriculum weights). The verifier calls and generations
/// this takes are not part of any run's ledger.
pub fn score_prompts(
    task: &dyn Task,
    cfg: &StrategyConfig,
    eps: f64,
    seed: u64,
    model: &Model,
    phase: usize,
    prompts: &[Prompt],
) -> Result<Vec<PromptScore>, CurriculumError> {
    let budget = Budget::default();
    let mut e = Engine::new(task, cfg, eps, seed, &budget);
    let max_rank = e.max_rank(model);
    Ok(e.score(model, phase, prompts)?
        .into_iter()
        .map(|s| PromptScore {
            rank: s.rank,
            max_rank,
            weight: s.accept,
        })
        .collect())
}

/// The error for strategy `strategy`, which samples a reference policy, on a task given none.
pub fn no_reference(strategy: &str, task: &str) -> CoreError {
    CoreError::Input(format!(
        "strategy {strategy} samples a reference policy pi_ref, and task {task} was not given \
         one (halfspace-cot: --kappa K; arith: --param reference=CHECKPOINT)"
    ))
}

/// Runs the curriculum `cfg` on `task` for target error `eps`.
pub fn run_curriculum(
    task: &dyn Task,
    cfg: &StrategyConfig,
    eps: f64,
    seed: u64,
    budget: &Budget,
    observer: &mut dyn Observer,
) -> Result<Outcome, CurriculumError> {
    run_curriculum_journaled(task, cfg, eps, seed, budget, observer, None)
}

/// [`run_curriculum`] with every expensive result journaled in stream `run` of `journal`
/// (and replayed from it where it already holds them: a resumed run).
pub fn run_curriculum_journaled(
    task: &dyn Task,
    cfg: &StrategyConfig,
    eps: f64,
    seed: u64,
    budget: &Budget,
    observer: &mut dyn Observer,
    journal: Option<(&dyn Journal, String)>,
) -> Result<Outcome, CurriculumError> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(CoreError::Invalid(format!("eps must be in (0, 1), got {eps}")).into());
    }
    let mut engine = Engine::new(task, cfg, eps, seed, budget);
    if let Some((journal, run)) = journal {
        engine.meter = Metered::new(task).with_journal(journal, run);
    }
    engine.run(observer)
}

impl<'a> Engine<'a> {
    fn new(
        task: &'a dyn Task,
        cfg: &'a StrategyConfig,
        eps: f64,
        seed: u64,
        budget: &'a Budget,
    ) -> Self {
        Engine {
            task,
            cfg,
            eps,
            seed,
            budget,
            meter: Metered::new(task),
            filter_rng: stream_rng(seed, "filter"),
            sample_calls: 0,
            members_built: 0,
            last_member_demos: 0,
        }
    }

    fn run(&mut self, observer: &mut dyn Observer) -> Result<Outcome, CurriculumError> {
        if let Source::Reference { .. } = self.cfg.source {
            if self.task.reference().is_none() {
                return Err(no_reference(&self.cfg.name, self.task.name()).into());
            }
        }
        let mut source = self.task.prompts("train", self.seed)?;
        let mut model = if self.cfg.ensemble {
            Model::Ensemble(Vec::new())
        } else {
            Model::Single(None)
        };
        let mut all_demos: Vec<Demo> = Vec::new();
        let mut reports = Vec::new();
        let certificate = self.cfg.certificate_draws(self.eps);
        let mut est_accept = 1.0f64;
        let mut stop = StopReason::MaxPhases;
        let mut phase = 0usize;
        'phases: while phase < self.cfg.max_phases {
            let target = self.phase_target(phase, all_demos.len());
            let want = target + self.edge_prompts();
            // Test and Filter: draw candidates, score them, accept by rejection sampling.
            let mut accepted: Vec<Prompt> = Vec::with_capacity(want);
            let max_rank = self.max_rank(&model);
            let mut hist: Vec<u64> = Vec::new();
            let mut drawn = 0u64;
            let mut since_accept = 0u64;
            let mut vote_errors = 0u64;
            let mut certified = false;
            while accepted.len() < want {
                if let Some(what) = self.budget_exhausted(all_demos.len() as u64) {
                    stop = StopReason::Budget { what };
                    break 'phases;
                }
                let need = (want - accepted.len()) as f64;
                let mut n = (need / est_accept.max(1e-4) * 1.1).ceil() as u64;
                n = n.clamp(8, 4096).min((certificate - since_accept).max(8));
                let cands = source.draw(n as usize)?;
                self.meter.count_drawn(cands.len());
                let scores = self.score(&model, phase, &cands)?;
                for (c, s) in cands.into_iter().zip(scores) {
                    if let Some(r) = s.rank {
                        if hist.len() <= max_rank {
                            hist.resize(max_rank + 1, 0);
                        }
                        hist[r.min(max_rank)] += 1;
                    }
                    drawn += 1;
                    if s.accept >= 1.0
                        || (s.accept > 0.0 && self.filter_rng.gen::<f64>() < s.accept)
                    {
                        accepted.push(c);
                        since_accept = 0;
                        vote_errors = 0;
                        if accepted.len() == want {
                            break;
                        }
                    } else {
                        since_accept += 1;
                        vote_errors += u64::from(s.vote_ok == Some(false));
                        if since_accept >= certificate {
                            certified = true;
                            break;
                        }
                    }
                }
                if certified {
                    break;
                }
                est_accept = (accepted.len() as f64 / drawn as f64).max(1e-4);
            }
            if certified {
                // The model is certified; prompts accepted earlier in this phase were not paid
                // for by the teacher, and are dropped.
                stop = if vote_errors == 0 {
                    StopReason::Certificate { draws: certificate }
                } else {
                    StopReason::FilterExhausted {
                        draws: certificate,
                        vote_errors,
                    }
                };
                break;
            }
            est_accept = accepted.len() as f64 / drawn.max(1) as f64;
            // Update: teacher demonstrations on accepted prompts only, then train.
            let edge_set: Vec<Prompt> = if accepted.len() > target {
                accepted.split_off(target)
            } else {
                Vec::new()
            };
            if let Some(max) = self.budget.max_demos {
                let left = max.saturating_sub(all_demos.len() as u64) as usize;
                accepted.truncate(left);
            }
            let n_accepted = accepted.len();
            let demos = self.demonstrate(accepted, phase)?;
            let n_demos = demos.len();
            all_demos.extend(demos);
            let new = &all_demos[all_demos.len() - n_demos..];
            let (fit, member_error, member_added) =
                self.update(&mut model, new, &all_demos, &edge_set)?;
            let report = PhaseReport {
                phase,
                demos: n_demos,
                unsolved: n_accepted - n_demos,
                drawn,
                // The filter's acceptance (prompts no pi_ref sample solved were accepted too).
                acceptance_rate: if drawn == 0 {
                    1.0
                } else {
                    (n_accepted + edge_set.len()) as f64 / drawn as f64
                },
                rank_histogram: hist,
                max_rank: if drawn == 0 { 0 } else { max_rank },
                member_error,
                member_added,
                members: model.len(),
                fit,
                ledger: self.meter.snapshot(),
            };
            let t0 = std::time::Instant::now();
            let control = observer.on_phase(&report, &model);
            self.meter.exclude_time(t0.elapsed());
            reports.push(report);
            phase += 1;
            if control == Control::Stop {
                stop = StopReason::Observer;
                break;
            }
        }
        Ok(Outcome {
            stop,
            phases: phase,
            ledger: self.meter.snapshot(),
            model,
            reports,
            demos: all_demos,
        })
    }

    /// Update, first half: demonstrations for the accepted prompts, from the teacher or by
    /// rejection sampling from `pi_ref` (unsolved prompts get none).
    fn demonstrate(
        &mut self,
        accepted: Vec<Prompt>,
        phase: usize,
    ) -> Result<Vec<Demo>, CurriculumError> {
        match self.cfg.source {
            Source::Teacher => Ok(self.meter.teach(accepted)?),
            Source::Reference { max_samples } => {
                let (reference, temperature) = self
                    .task
                    .reference()
                    .expect("checked at the start of the run");
                let seed = stream_seed(self.seed, "reference").wrapping_add(phase as u64);
                Ok(self
                    .meter
                    .rejection_sample(reference, &accepted, max_samples, temperature, seed)?
                    .into_iter()
                    .flatten()
                    .collect())
            }
        }
    }

    /// The highest rank a candidate can get from `model` under this mask (0: no test).
    fn max_rank(&self, model: &Model) -> usize {
        match self.cfg.mask {
            _ if model.is_empty() => 0,
            Mask::Uniform => 0,
            Mask::ZeroVariance { k, .. } | Mask::Learnability { k, .. } => k * model.len(),
            Mask::Counterexample | Mask::BoostByMajority { .. } | Mask::FilterBoost { .. } => {
                model.len()
            }
        }
    }

    fn edge_prompts(&self) -> usize {
        match self.cfg.mask {
            Mask::FilterBoost { .. } => self.cfg.edge_prompts,
            _ => 0,
        }
    }

    /// Demonstrations to buy in `phase`, given `total` so far.
    fn phase_target(&self, phase: usize, total: usize) -> usize {
        if phase == 0 {
            return self.cfg.init_demos;
        }
        if self.cfg.growth > 1.0 {
            let next = ((total as f64) * self.cfg.growth).ceil() as usize;
            return next.saturating_sub(total).max(self.cfg.phase_demos).max(1);
        }
        self.cfg.phase_demos
    }

    fn budget_exhausted(&self, demos: u64) -> Option<String> {
        let l = self.meter.snapshot();
        if self.budget.max_demos.is_some_and(|m| demos >= m) {
            return Some("demos".into());
        }
        if self
            .budget
            .max_verifier_calls
            .is_some_and(|m| l.verifier_calls >= m)
        {
            return Some("verifier_calls".into());
        }
        if self.budget.max_seconds.is_some_and(|m| l.wall_seconds >= m) {
            return Some("seconds".into());
        }
        None
    }

    /// Test: rank every candidate with the current model, and weigh it by the mask.
    fn score(
        &mut self,
        model: &Model,
        phase: usize,
        cands: &[Prompt],
    ) -> Result<Vec<Score>, CurriculumError> {
        let untested = || {
            (0..cands.len())
                .map(|_| Score {
                    rank: None,
                    accept: 1.0,
                    vote_ok: None,
                })
                .collect()
        };
        if model.is_empty() {
            // Nothing to test yet: every prompt is accepted.
            return Ok(untested());
        }
        Ok(match self.cfg.mask {
            // Non-adaptive: no test, every prompt accepted.
            Mask::Uniform => untested(),
            Mask::ZeroVariance { k, temperature } | Mask::Learnability { k, temperature } => {
                let passes = self.pass_counts(model, cands, k, temperature)?;
                passes
                    .into_iter()
                    .map(|p| Score {
                        rank: Some(p),
                        // These masks give no weight to prompts the model always fails, so a
                        // run of rejections certifies nothing unless every sample of every
                        // rejected candidate was right.
                        vote_ok: Some(p == k * model.len()),
                        accept: match self.cfg.mask {
                            Mask::ZeroVariance { .. } => zero_variance_weight(p, k),
                            _ => learnability_weight(p as f64 / k as f64),
                        },
                    })
                    .collect()
            }
            Mask::Counterexample | Mask::BoostByMajority { .. } | Mask::FilterBoost { .. } => {
                let verdicts = self.member_verdicts(model, cands)?;
                verdicts
                    .into_iter()
                    .map(|v| {
                        let rank = v.iter().filter(|(c, _, _)| *c).count();
                        let vote = plurality(v.iter().map(|(_, a, ans)| (ans.as_slice(), *a)));
                        // The vote is right iff it picked the answer of a member judged right.
                        let vote_ok =
                            vote.map(|w| v.iter().any(|(c, _, ans)| *c && ans.as_slice() == w));
                        let accept = match self.cfg.mask {
                            Mask::Counterexample => f64::from(u8::from(rank == 0)),
                            Mask::BoostByMajority { gamma } => {
                                let k = self.cfg.max_phases;
                                let max = bbm_max_weight(k, phase, gamma);
                                if max > 0.0 {
                                    bbm_weight(k, phase, rank, gamma) / max
                                } else {
                                    0.0
                                }
                            }
                            Mask::FilterBoost { madaboost } => {
                                let f: f64 =
                                    v.iter().map(|(c, a, _)| if *c { *a } else { -*a }).sum();
                                if madaboost {
                                    madaboost_weight(f)
                                } else {
                                    filterboost_weight(f)
                                }
                            }
                            _ => unreachable!(),
                        };
                        Score {
                            rank: Some(rank),
                            accept,
                            vote_ok,
                        }
                    })
                    .collect()
            }
        })
    }

    /// Per candidate, per member: (verdict on the member's greedy answer, the member's vote
    /// weight, the answer).
    #[allow(clippy::type_complexity)]
    fn member_verdicts(
        &mut self,
        model: &Model,
        cands: &[Prompt],
    ) -> Result<Vec<Vec<(bool, f64, Vec<Token>)>>, CurriculumError> {
        let mut out: Vec<Vec<(bool, f64, Vec<Token>)>> =
            vec![Vec::with_capacity(model.len()); cands.len()];
        for (student, alpha) in model.members() {
            let traces = self.meter.generate(student, cands)?;
            let verdicts = self.meter.verify(cands, &traces)?;
            for ((o, v), t) in out.iter_mut().zip(verdicts).zip(traces) {
                o.push((v, alpha, t.answer().to_vec()));
            }
        }
        Ok(out)
    }

    /// Per candidate: how many of `k` samples of the single model the verifier accepts.
    fn pass_counts(
        &mut self,
        model: &Model,
        cands: &[Prompt],
        k: usize,
        temperature: f64,
    ) -> Result<Vec<usize>, CurriculumError> {
        let mut passes = vec![0usize; cands.len()];
        for (student, _) in model.members() {
            for _ in 0..k {
                let seed = stream_seed(self.seed, "sample").wrapping_add(self.sample_calls);
                self.sample_calls += 1;
                let traces: Vec<Trace> = self.meter.sample(student, cands, temperature, seed)?;
                for (p, v) in passes.iter_mut().zip(self.meter.verify(cands, &traces)?) {
                    *p += usize::from(v);
                }
            }
        }
        Ok(passes)
    }

    /// Update: train the single model, or a new member (and measure its edge).
    fn update(
        &mut self,
        model: &mut Model,
        new: &[Demo],
        all: &[Demo],
        edge_set: &[Prompt],
    ) -> Result<(FitStats, Option<f64>, bool), CurriculumError> {
        match model {
            Model::Single(slot) => {
                let student = slot.get_or_insert_with(|| {
                    self.task.new_student(stream_seed(self.seed, "student"))
                });
                let fit = self.meter.fit(student, new)?;
                Ok((fit, None, true))
            }
            Model::Ensemble(members) => {
                let warm = match members.last() {
                    Some(last) if self.cfg.warm_start_members => {
                        let state = last.student.save().ok_or_else(|| {
                            autotune_core::CoreError::Input(
                                "warm_start=true needs a student that can be saved \
                                 (Student::save); this task's student cannot"
                                    .into(),
                            )
                        })?;
                        Some(self.task.load_student(&state)?)
                    }
                    _ => None,
                };
                let data = if warm.is_some() {
                    // The copy replays what the last member was trained on.
                    &all[self.last_member_demos.min(all.len())..]
                } else if self.cfg.cumulative_members {
                    all
                } else {
                    new
                };
                let mut student = warm.unwrap_or_else(|| {
                    self.task.new_student(
                        stream_seed(self.seed, "member").wrapping_add(self.members_built),
                    )
                });
                self.members_built += 1;
                let fit = self.meter.fit(&mut student, data)?;
                let (alpha, err) = if let Mask::FilterBoost { .. } = self.cfg.mask {
                    if edge_set.is_empty() {
                        return Ok((fit, None, false));
                    }
                    let traces = self.meter.generate(student.as_ref(), edge_set)?;
                    let errors = self
                        .meter
                        .verify(edge_set, &traces)?
                        .iter()
                        .filter(|v| !**v)
                        .count();
                    let err = errors as f64 / edge_set.len() as f64;
                    let edge = smoothed_edge(errors, edge_set.len());
                    if edge <= 0.0 {
                        return Ok((fit, Some(err), false));
                    }
                    (member_alpha(edge), Some(err))
                } else {
                    (1.0, None)
                };
                members.push(Member { student, alpha });
                self.last_member_demos = all.len();
                Ok((fit, err, true))
            }
        }
    }
}
