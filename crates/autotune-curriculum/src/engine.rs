//! The loop of the spec: Test, Filter, Update, phase after phase.

use std::collections::BTreeMap;

use autotune_core::{
    stream_rng, stream_seed, CoreError, Demo, FitStats, Journal, Ledger, Metered, Prompt, Rng,
    Student, Task, Token, Trace,
};
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::model::{Member, Model};
use crate::strategy::{Certificate, CertificateRule, Phase, Score, Source, Strategy};
use crate::CurriculumError;

/// Limits on what a run may spend. `None` is unlimited (but see `max_teach`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Budget {
    pub max_demos: Option<u64>,
    pub max_verifier_calls: Option<u64>,
    pub max_seconds: Option<f64>,
    /// Teacher strategies: a prompt (by id) bought in this many phases that the output model
    /// still answers wrong when the filter chooses it again, or whose teacher demonstration
    /// the verifier rejected this many times, is not bought again; `None` is
    /// [`DEFAULT_MAX_TEACH`]. Such a prompt has a wrong gold, a wrong teacher or a student
    /// that cannot learn it, and buying it again spends without progress. (Buying one prompt
    /// several times within a phase, as boosting's filtered distributions do, is not limited.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_teach: Option<u32>,
}

/// Times one prompt may be bought from the teacher when the budget does not say.
pub const DEFAULT_MAX_TEACH: u32 = 3;

/// Accepted prompts in a row that were all given up on (see [`Budget::max_teach`]) before a
/// run stops (at least this many, or a phase's worth): nothing is left worth buying.
pub const GIVE_UP_AFTER: u64 = 1_000;

/// Draws of prompts given up on within a phase before their rate is trusted: a phase whose
/// draws hit them this often, at a rate of at least `2 eps`, shows a target out of reach.
pub const GIVE_UP_HITS: u64 = 30;

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
    /// Teacher demonstrations bought in this phase that the verifier rejected (a model
    /// server's wrong answers): paid, not trained on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rejected: usize,
    /// Prompts the filter chose in this phase that were not bought: given up on (see
    /// [`Budget::max_teach`]).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub not_bought: u64,
    /// Candidate prompts drawn and tested in this phase.
    pub drawn: u64,
    /// Accepted / drawn.
    pub acceptance_rate: f64,
    /// Tested candidates per rank (members right, or samples right), index = rank, length
    /// `max_rank + 1`; empty when the phase tested nothing (uniform, or an empty model).
    pub rank_histogram: Vec<u64>,
    /// The highest possible rank in this phase: members tested, or samples per prompt (0
    /// when nothing was ranked: an untested phase, or the paper's lazy rank evaluation). Rank 0 is "all wrong", `max_rank` is "all right".
    pub max_rank: usize,
    /// The new member's error on its own filtered distribution, where the strategy measures
    /// it (FilterBoost: on fresh filtered prompts held back from the teacher).
    pub member_error: Option<f64>,
    /// Strategies that split a prompt dataset into one part per phase: the part ran out before
    /// the phase had its demonstrations (the paper's ABORT); the member trains on what was found.
    #[serde(default, skip_serializing_if = "is_false")]
    pub aborted: bool,
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

fn is_zero_u64(x: &u64) -> bool {
    *x == 0
}

fn is_false(x: &bool) -> bool {
    !*x
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
    /// The filter chose [`GIVE_UP_AFTER`] prompts in a row (or a phase's worth) that were all
    /// given up on (see [`Budget::max_teach`]): nothing is left worth buying. `failing` of the
    /// `given_up` prompts are still answered wrong by the output model.
    GaveUp {
        max_teach: u32,
        given_up: u64,
        failing: u64,
    },
}

/// How a stop reads to a person: `certificate after 4606 rejections`, `budget: demos`.
impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Certificate { draws } => write!(f, "certificate after {draws} rejections"),
            StopReason::FilterExhausted { draws, vote_errors } => write!(
                f,
                "filter exhausted after {draws} rejections ({vote_errors} vote errors, no certificate)"
            ),
            StopReason::MaxPhases => write!(f, "all planned phases done"),
            StopReason::Budget { what } => write!(f, "budget: {what}"),
            StopReason::Observer => write!(f, "held-out target reached"),
            StopReason::GaveUp {
                max_teach,
                given_up,
                failing,
            } => write!(
                f,
                "gave up: the filter kept choosing prompts taught in {max_teach} phases or rejected {max_teach} times ({given_up} such prompts, {failing} still answered wrong)"
            ),
        }
    }
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
    /// Prompts given up on (see [`Budget::max_teach`]) that the output model still answers
    /// wrong at the end, in order of id (empty unless the limit was reached).
    pub given_up: Vec<Prompt>,
}

/// What a strategy reaches the expensive parts through during a run: the metered task, the
/// run's random streams, and the bookkeeping of members built so far.
pub struct Context<'a> {
    task: &'a dyn Task,
    pub(crate) meter: Metered<'a>,
    seed: u64,
    eps: f64,
    filter_rng: Rng,
    sample_calls: u64,
    members_built: u64,
    /// Warm-started ensembles: how many of the demonstrations so far the last accepted member
    /// was trained on (a new member, its copy, trains on the rest).
    last_member_demos: usize,
    /// Prompts whose teacher demonstrations the verifier rejected since the engine last looked.
    rejected_ids: Vec<u64>,
}

impl<'a> Context<'a> {
    fn new(task: &'a dyn Task, seed: u64, eps: f64) -> Self {
        Context {
            task,
            meter: Metered::new(task),
            seed,
            eps,
            filter_rng: stream_rng(seed, "filter"),
            sample_calls: 0,
            members_built: 0,
            last_member_demos: 0,
            rejected_ids: Vec::new(),
        }
    }

    pub fn task(&self) -> &'a dyn Task {
        self.task
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The run's target error.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The metered door to the teacher, the verifier, the policies and training.
    pub fn meter(&mut self) -> &mut Metered<'a> {
        &mut self.meter
    }

    /// A uniform draw from the filter's stream (the rejection sampling of the mask).
    pub fn uniform(&mut self) -> f64 {
        self.filter_rng.gen::<f64>()
    }

    /// Per candidate, per member: (verdict on the member's greedy answer, the member's vote
    /// weight, the answer).
    #[allow(clippy::type_complexity)]
    pub fn member_verdicts(
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

    /// Per candidate: how many of `k` samples of each member the verifier accepts, summed
    /// over the members.
    pub fn pass_counts(
        &mut self,
        model: &Model,
        cands: &[Prompt],
        k: usize,
        temperature: f64,
    ) -> Result<Vec<usize>, CurriculumError> {
        let mut passes = vec![0usize; cands.len()];
        for (student, _) in model.members() {
            for _ in 0..k {
                let seed = self.next_sample_seed();
                let traces: Vec<Trace> = self.meter.sample(student, cands, temperature, seed)?;
                for (p, v) in passes.iter_mut().zip(self.meter.verify(cands, &traces)?) {
                    *p += usize::from(v);
                }
            }
        }
        Ok(passes)
    }

    /// The seed of the next sampling call of the student.
    pub fn next_sample_seed(&mut self) -> u64 {
        let seed = stream_seed(self.seed, "sample").wrapping_add(self.sample_calls);
        self.sample_calls += 1;
        seed
    }

    /// Demonstrations for the accepted prompts from `source`: the teacher, or rejection
    /// sampling from `pi_ref` (unsolved prompts get none).
    pub fn demonstrate(
        &mut self,
        source: &Source,
        accepted: Vec<Prompt>,
        phase: usize,
    ) -> Result<Vec<Demo>, CurriculumError> {
        match *source {
            Source::Teacher => {
                let demos = self.meter.teach(accepted)?;
                if self.task.teacher().verified() {
                    return Ok(demos);
                }
                self.keep_verified(demos)
            }
            Source::Reference { max_samples } => {
                let (reference, temperature) = self.reference()?;
                let seed = stream_seed(self.seed, "reference").wrapping_add(phase as u64);
                Ok(self
                    .meter
                    .rejection_sample(reference, &accepted, max_samples, temperature, seed)?
                    .into_iter()
                    .flatten()
                    .collect())
            }
            Source::FilteredReference {
                c_seq,
                samples,
                n,
                delta,
            } => {
                let (reference, temperature) = self.reference()?;
                let c_seq = c_seq.or_else(|| reference.coverage()).ok_or_else(|| {
                    CoreError::Input(format!(
                        "RLFineTune needs the coverage C_seq of pi_ref, and task {}'s reference \
                         policy does not report one: give --strategy-param c_seq=C",
                        self.task.name()
                    ))
                })?;
                let samples =
                    samples.unwrap_or_else(|| Source::rlfinetune_samples(c_seq, n, delta));
                let min_prob = 1.0 / c_seq;
                let seed = stream_seed(self.seed, "rlfinetune").wrapping_add(phase as u64);
                Ok(self
                    .meter
                    .filtered_sample(reference, &accepted, samples, min_prob, temperature, seed)?
                    .into_iter()
                    .flatten()
                    .collect())
            }
        }
    }

    /// The demonstrations the verifier accepts (a model server's answers, checked as they
    /// arrive); the others are counted as rejected and dropped.
    fn keep_verified(&mut self, demos: Vec<Demo>) -> Result<Vec<Demo>, CurriculumError> {
        let prompts: Vec<Prompt> = demos.iter().map(|d| d.prompt.clone()).collect();
        let traces: Vec<Trace> = demos.iter().map(|d| d.trace.clone()).collect();
        let ok = self.meter.verify(&prompts, &traces)?;
        let mut kept = Vec::with_capacity(demos.len());
        for (d, ok) in demos.into_iter().zip(ok) {
            if ok {
                kept.push(d);
            } else {
                self.rejected_ids.push(d.prompt.id);
            }
        }
        self.meter.count_rejected_demos(prompts.len() - kept.len());
        Ok(kept)
    }

    /// Which of `prompts` the output of `model` answers wrong (the plurality of its members'
    /// answers, weighted by their votes).
    fn output_fails(
        &mut self,
        model: &Model,
        prompts: &[Prompt],
    ) -> Result<Vec<bool>, CurriculumError> {
        if model.is_empty() {
            return Ok(vec![true; prompts.len()]);
        }
        let verdicts = self.member_verdicts(model, prompts)?;
        Ok(verdicts
            .iter()
            .map(|members| crate::model::vote_right(members) != Some(true))
            .collect())
    }

    fn reference(&self) -> Result<(&'a dyn autotune_core::Policy, f64), CurriculumError> {
        self.task
            .reference()
            .ok_or_else(|| no_reference("this strategy", self.task.name()).into())
    }

    /// Trains the single model on the phase's new demonstrations (created on the first fit).
    pub fn fit_single(
        &mut self,
        model: &mut Model,
        new: &[Demo],
    ) -> Result<FitStats, CurriculumError> {
        let Model::Single(slot) = model else {
            return Err(
                CoreError::Invalid("a single-model strategy got an ensemble".into()).into(),
            );
        };
        let student =
            slot.get_or_insert_with(|| self.task.new_student(stream_seed(self.seed, "student")));
        Ok(self.meter.fit(student, new)?)
    }

    /// A new ensemble member fitted on the phase (not yet added): a fresh student on the
    /// phase's demonstrations (or all so far with `cfg.cumulative_members`), or with
    /// `cfg.warm_start_members` a copy of the last member trained on the demonstrations it has
    /// not seen.
    pub fn fit_member(
        &mut self,
        model: &Model,
        phase: &Phase,
        cfg: &crate::StrategyConfig,
    ) -> Result<(Box<dyn Student>, FitStats), CurriculumError> {
        let (cumulative, warm) = (cfg.cumulative_members, cfg.warm_start_members);
        let Model::Ensemble(members) = model else {
            return Err(
                CoreError::Invalid("an ensemble strategy got a single model".into()).into(),
            );
        };
        let copy = match members.last() {
            Some(last) if warm => {
                let state = last.student.save().ok_or_else(|| {
                    CoreError::Input(
                        "warm_start=true needs a student that can be saved \
                         (Student::save); this task's student cannot"
                            .into(),
                    )
                })?;
                Some(self.task.load_student(&state)?)
            }
            _ => None,
        };
        let all = phase.all;
        let data = if copy.is_some() {
            // The copy replays what the last member was trained on.
            &all[self.last_member_demos.min(all.len())..]
        } else if cumulative {
            all
        } else {
            phase.new
        };
        let mut student = copy.unwrap_or_else(|| {
            self.task
                .new_student(stream_seed(self.seed, "member").wrapping_add(self.members_built))
        });
        self.members_built += 1;
        let fit = self.meter.fit(&mut student, data)?;
        Ok((student, fit))
    }

    /// Adds a fitted member with vote weight `alpha`.
    pub fn push_member(
        &mut self,
        model: &mut Model,
        student: Box<dyn Student>,
        alpha: f64,
        all_demos: usize,
    ) {
        if let Model::Ensemble(members) = model {
            members.push(Member { student, alpha });
            self.last_member_demos = all_demos;
        }
    }
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
    strategy: &dyn Strategy,
    eps: f64,
    seed: u64,
    model: &Model,
    phase: usize,
    prompts: &[Prompt],
) -> Result<Vec<PromptScore>, CurriculumError> {
    let mut cx = Context::new(task, seed, eps);
    let max_rank = strategy.max_rank(model);
    let scores = if model.is_empty() {
        vec![Score::UNTESTED; prompts.len()]
    } else {
        strategy.score(&mut cx, model, phase, prompts)?
    };
    Ok(scores
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
    if task.starts_with("file") {
        // A file task takes neither flag: say what it can run instead.
        return CoreError::Input(format!(
            "strategy {strategy} samples a reference policy pi_ref, and a task file ({task}) has \
             none: run it with a teacher strategy (uniform, autotune-cex, autotune-filterboost, \
             ...); the RL strategies run on halfspace-cot --kappa K and on arith --param \
             reference=CHECKPOINT"
        ));
    }
    CoreError::Input(format!(
        "strategy {strategy} samples a reference policy pi_ref, and task {task} was not given \
         one (halfspace-cot: --kappa K; arith: --param reference=CHECKPOINT)"
    ))
}

/// The error for a strategy that ranks by samples (Algorithm 3) on a task whose student is
/// deterministic.
pub fn no_sampling(strategy: &str, task: &str) -> CoreError {
    CoreError::Input(format!(
        "strategy {strategy} ranks by samples of a stochastic student, and task {task}'s student \
         is deterministic (its samples are its greedy answer): use autotune-paper, or a task \
         whose student samples at a temperature (halfspace-cot, skills, arith)"
    ))
}

/// Runs the curriculum `strategy` on `task` for target error `eps`.
pub fn run_curriculum(
    task: &dyn Task,
    strategy: &dyn Strategy,
    eps: f64,
    seed: u64,
    budget: &Budget,
    observer: &mut dyn Observer,
) -> Result<Outcome, CurriculumError> {
    run_curriculum_journaled(task, strategy, eps, seed, budget, observer, None)
}

/// [`run_curriculum`] with every expensive result journaled in stream `run` of `journal`
/// (and replayed from it where it already holds them: a resumed run).
pub fn run_curriculum_journaled(
    task: &dyn Task,
    strategy: &dyn Strategy,
    eps: f64,
    seed: u64,
    budget: &Budget,
    observer: &mut dyn Observer,
    journal: Option<(&dyn Journal, String)>,
) -> Result<Outcome, CurriculumError> {
    if !(eps > 0.0 && eps < 1.0) {
        return Err(CoreError::Invalid(format!("eps must be in (0, 1), got {eps}")).into());
    }
    let mut cx = Context::new(task, seed, eps);
    if let Some((journal, run)) = journal {
        cx.meter = Metered::new(task).with_journal(journal, run);
    }
    Engine {
        strategy,
        budget,
        cx,
    }
    .run(observer)
}

struct Engine<'a> {
    strategy: &'a dyn Strategy,
    budget: &'a Budget,
    cx: Context<'a>,
}

impl Engine<'_> {
    fn run(&mut self, observer: &mut dyn Observer) -> Result<Outcome, CurriculumError> {
        let cfg = self.strategy.config();
        let task = self.cx.task;
        let eps = self.cx.eps;
        if self.strategy.info().needs_reference && task.reference().is_none() {
            return Err(no_reference(&cfg.name, task.name()).into());
        }
        if self.strategy.info().needs_sampling && !task.student_samples() {
            return Err(no_sampling(&cfg.name, task.name()).into());
        }
        let mut source = task.prompts("train", self.cx.seed)?;
        let mut model = self.strategy.new_model();
        let mut all_demos: Vec<Demo> = Vec::new();
        let mut reports = Vec::new();
        let certificate = self.strategy.certificate();
        let part = self.strategy.part_size();
        // Tests of the certificate so far (one per run of rejections).
        let mut attempts = 0u64;
        // Tests the sequential certificate has opened (one per phase at most).
        let mut seq_tests = 0u64;
        let mut est_accept = 1.0f64;
        let mut stop = StopReason::MaxPhases;
        let mut phase = 0usize;
        // Teacher strategies buy one prompt at most `max_teach` times.
        let teaches = matches!(cfg.source, Source::Teacher);
        let max_teach = self.budget.max_teach.unwrap_or(DEFAULT_MAX_TEACH);
        // Per prompt id: phases in which it was bought, and teacher demonstrations of it the
        // verifier rejected.
        let mut taught: BTreeMap<u64, u32> = BTreeMap::new();
        let mut rejections: BTreeMap<u64, u32> = BTreeMap::new();
        let mut given_up: BTreeMap<u64, Prompt> = BTreeMap::new();
        let mut not_bought_in_row = 0u64;
        'phases: while phase < cfg.max_phases {
            let target = self.strategy.phase_target(phase, all_demos.len());
            let want = target + self.strategy.held_back();
            // Test and Filter: draw candidates, score them, accept by rejection sampling.
            let mut accepted: Vec<Prompt> = Vec::with_capacity(want);
            let max_rank = self.strategy.max_rank(&model);
            let mut hist: Vec<u64> = Vec::new();
            let mut drawn = 0u64;
            let mut since_accept = 0u64;
            let mut vote_errors = 0u64;
            let mut certified = None;
            let mut gave_up = false;
            let mut not_bought = 0u64;
            let mut part_left = part.map(|p| p as u64);
            attempts += 1;
            let mut cert_draws = certificate.map(|c| c.draws(eps, attempts));
            // The sequential test (see `CertificateRule::Sequential`): opened in a phase whose
            // model may pass it, judged on what was drawn before the test's own draws (the
            // previous phase's acceptance at the phase's start, or this phase's so far), so
            // that the tests' levels still sum to delta; at most one per phase. Its
            // log-likelihood ratio counts only draws after it opened.
            let seq_rule =
                certificate.filter(|c| matches!(c.rule, CertificateRule::Sequential { .. }));
            let seq_q = seq_rule.map_or(0.0, |c| eps / c.factor);
            let mut sequential: Option<Certificate> = None;
            let (seq_rejected, seq_accepted) = seq_rule.map_or((0.0, 0.0), |c| c.log_ratios(eps));
            let mut seq_threshold = 0.0f64;
            let mut log_ratio = 0.0f64;
            let mut want = want;
            let base_want = want;
            if seq_rule.is_some() {
                // The sequential rule never tests by runs of rejections.
                cert_draws = None;
            }
            while accepted.len() < want {
                if let (Some(c), None) = (seq_rule, sequential) {
                    let opens = !model.is_empty()
                        && if drawn == 0 {
                            est_accept <= 2.0 * seq_q
                        } else {
                            // Mid-phase, only a phase whose model now errs rarely (a phase
                            // that would otherwise wait long for its accepts).
                            drawn as f64 >= 4.0 / seq_q
                                && accepted.len() as f64 <= seq_q * drawn as f64
                        };
                    if opens {
                        seq_tests += 1;
                        sequential = Some(c);
                        seq_threshold = (1.0 / c.level(seq_tests)).ln();
                        if let CertificateRule::Sequential { growth } = c.rule {
                            want = want.max(base_want * growth);
                        }
                    }
                }
                if let Some(what) = self.budget_exhausted(self.paid_demos(all_demos.len())) {
                    stop = StopReason::Budget { what };
                    break 'phases;
                }
                if part_left == Some(0) {
                    break;
                }
                let need = (want - accepted.len()) as f64;
                let mut n = (need / est_accept.max(1e-4) * 1.1).ceil() as u64;
                n = n.clamp(8, 4096);
                if sequential.is_some() {
                    let left = ((seq_threshold - log_ratio) / seq_rejected).ceil().max(0.0);
                    n = n.min((left as u64).max(8));
                } else if let Some(m) = cert_draws {
                    n = n.min(m.saturating_sub(since_accept).max(8));
                }
                if let Some(left) = part_left {
                    n = n.min(left);
                }
                let cands = source.draw(n as usize)?;
                if let Some(left) = part_left.as_mut() {
                    *left -= cands.len() as u64;
                }
                self.cx.meter.count_drawn(cands.len());
                let scores = if model.is_empty() {
                    // Nothing to test yet: every prompt is accepted.
                    vec![Score::UNTESTED; cands.len()]
                } else {
                    self.strategy.score(&mut self.cx, &model, phase, &cands)?
                };
                for (c, s) in cands.into_iter().zip(scores) {
                    if let Some(r) = s.rank {
                        if hist.len() <= max_rank {
                            hist.resize(max_rank + 1, 0);
                        }
                        hist[r.min(max_rank)] += 1;
                    }
                    drawn += 1;
                    if s.accept >= 1.0 || (s.accept > 0.0 && self.cx.uniform() < s.accept) {
                        let count = |m: &BTreeMap<u64, u32>| m.get(&c.id).copied().unwrap_or(0);
                        // Taught in max_teach phases and the output still wrong on it, or its
                        // teacher demonstration rejected max_teach times: not bought again.
                        if teaches
                            && ((count(&taught) >= max_teach && s.vote_ok == Some(false))
                                || count(&rejections) >= max_teach)
                        {
                            // For the certificate, a rejection whose mistake stays unfixed.
                            not_bought += 1;
                            not_bought_in_row += 1;
                            since_accept += 1;
                            vote_errors += 1;
                            given_up.entry(c.id).or_insert(c);
                            // Nothing left worth buying, or the prompts given up on alone weigh
                            // more than eps under D (draws hit them at twice eps's rate).
                            if not_bought_in_row >= GIVE_UP_AFTER.max(want as u64)
                                || (not_bought >= GIVE_UP_HITS
                                    && not_bought as f64 >= 2.0 * eps * drawn as f64)
                            {
                                gave_up = true;
                                break;
                            }
                            if sequential.is_some() {
                                log_ratio += seq_rejected;
                                if log_ratio >= seq_threshold {
                                    certified = Some(drawn);
                                    break;
                                }
                            } else if cert_draws.is_some_and(|m| since_accept >= m) {
                                certified = cert_draws;
                                break;
                            }
                            continue;
                        }
                        not_bought_in_row = 0;
                        if sequential.is_some() && s.rank.is_some() {
                            log_ratio += seq_accepted;
                        }
                        accepted.push(c);
                        since_accept = 0;
                        vote_errors = 0;
                        if accepted.len() == want {
                            break;
                        }
                        match certificate {
                            // One test per phase: after an accept, this phase cannot certify.
                            Some(c) if c.rule == CertificateRule::Phase => cert_draws = None,
                            // The sequential test goes on through accepts.
                            Some(c) if matches!(c.rule, CertificateRule::Sequential { .. }) => {}
                            _ => {
                                attempts += 1;
                                cert_draws = certificate.map(|c| c.draws(eps, attempts));
                            }
                        }
                    } else {
                        since_accept += 1;
                        vote_errors += u64::from(s.vote_ok == Some(false));
                        if sequential.is_some() {
                            if s.rank.is_some() {
                                log_ratio += seq_rejected;
                                if log_ratio >= seq_threshold {
                                    certified = Some(drawn);
                                    break;
                                }
                            }
                        } else if cert_draws.is_some_and(|m| since_accept >= m) {
                            certified = cert_draws;
                            break;
                        }
                    }
                }
                if certified.is_some() || gave_up {
                    break;
                }
                est_accept = (accepted.len() as f64 / drawn as f64).max(1e-4);
            }
            let gave_up = gave_up.then_some(StopReason::GaveUp {
                max_teach,
                given_up: given_up.len() as u64,
                failing: 0,
            });
            if gave_up.is_some() && accepted.is_empty() {
                stop = gave_up.unwrap_or(StopReason::MaxPhases);
                break;
            }
            if let Some(draws) = certified {
                // The model is certified; prompts accepted earlier in this phase were not paid
                // for by the teacher, and are dropped.
                stop = if vote_errors == 0 {
                    StopReason::Certificate { draws }
                } else {
                    StopReason::FilterExhausted { draws, vote_errors }
                };
                break;
            }
            let aborted = accepted.len() < want;
            if let Some(left) = part_left.filter(|l| *l > 0) {
                // The rest of this phase's part is never looked at.
                source.skip(left as usize)?;
            }
            est_accept = accepted.len() as f64 / drawn.max(1) as f64;
            // Update: demonstrations on accepted prompts only, then train.
            let held_back: Vec<Prompt> = if accepted.len() > target {
                accepted.split_off(target)
            } else {
                Vec::new()
            };
            if let Some(max) = self.budget.max_demos {
                let left = max.saturating_sub(self.paid_demos(all_demos.len())) as usize;
                accepted.truncate(left);
            }
            let n_accepted = accepted.len();
            if teaches {
                let ids: std::collections::BTreeSet<u64> = accepted.iter().map(|p| p.id).collect();
                for id in ids {
                    *taught.entry(id).or_default() += 1;
                }
            }
            let rejected_before = self.cx.meter.snapshot().teacher_rejected;
            let demos = self.strategy.demonstrate(&mut self.cx, accepted, phase)?;
            let n_demos = demos.len();
            let rejected = (self.cx.meter.snapshot().teacher_rejected - rejected_before) as usize;
            for id in self.cx.rejected_ids.drain(..) {
                *rejections.entry(id).or_default() += 1;
            }
            all_demos.extend(demos);
            let update = self.strategy.update(
                &mut self.cx,
                &mut model,
                &Phase {
                    phase,
                    new: &all_demos[all_demos.len() - n_demos..],
                    all: &all_demos,
                    held_back: &held_back,
                },
            )?;
            let report = PhaseReport {
                phase,
                demos: n_demos,
                unsolved: n_accepted.saturating_sub(n_demos + rejected),
                rejected,
                not_bought,
                drawn,
                // The filter's acceptance (prompts no pi_ref sample solved were accepted too).
                acceptance_rate: if drawn == 0 {
                    1.0
                } else {
                    (n_accepted + held_back.len()) as f64 / drawn as f64
                },
                rank_histogram: hist,
                max_rank: if drawn == 0 { 0 } else { max_rank },
                member_error: update.member_error,
                aborted: aborted && part.is_some(),
                member_added: update.member_added,
                members: model.len(),
                fit: update.fit,
                ledger: self.cx.meter.snapshot(),
            };
            let t0 = std::time::Instant::now();
            let control = observer.on_phase(&report, &model);
            self.cx.meter.exclude_time(t0.elapsed());
            reports.push(report);
            phase += 1;
            if control == Control::Stop {
                stop = StopReason::Observer;
                break;
            }
            if let Some(g) = gave_up {
                // The phase bought what it found; nothing more is worth buying.
                stop = g;
                break;
            }
        }
        // The prompts given up on that the output model still answers wrong.
        let mut failing = Vec::new();
        if !given_up.is_empty() {
            let prompts: Vec<Prompt> = given_up.into_values().collect();
            let fails = self.cx.output_fails(&model, &prompts)?;
            failing = prompts
                .into_iter()
                .zip(fails)
                .filter_map(|(p, f)| f.then_some(p))
                .collect();
        }
        if let StopReason::GaveUp { failing: n, .. } = &mut stop {
            *n = failing.len() as u64;
        }
        Ok(Outcome {
            stop,
            phases: phase,
            ledger: self.cx.meter.snapshot(),
            model,
            reports,
            demos: all_demos,
            given_up: failing,
        })
    }

    /// Demonstrations paid for: those kept, and the teacher's that the verifier rejected.
    fn paid_demos(&self, kept: usize) -> u64 {
        kept as u64 + self.cx.meter.snapshot().teacher_rejected
    }

    fn budget_exhausted(&self, demos: u64) -> Option<String> {
        let l = self.cx.meter.snapshot();
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
}
