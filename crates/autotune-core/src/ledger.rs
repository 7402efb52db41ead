//! The ledger: the single source of truth for what a run spent.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::journal::{verdicts_from_str, verdicts_to_string, Entry, Journal};
use crate::{CoreError, Demo, FitStats, Policy, Prompt, Result, Student, Task, Trace};

/// Every cost a run pays. Counted only by [`Metered`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Teacher demonstrations requested (one per prompt).
    pub teacher_calls: u64,
    /// Tokens in the teacher's chains of thought.
    pub teacher_tokens: u64,
    /// Verifier verdicts requested.
    pub verifier_calls: u64,
    /// Student chains of thought generated (greedy or sampled).
    pub student_generations: u64,
    /// Tokens in those generations.
    pub student_tokens: u64,
    /// Optimisation steps of the student(s).
    pub training_steps: u64,
    /// Training examples processed.
    pub training_examples: u64,
    /// Candidate prompts drawn from D (tested or not).
    pub prompts_drawn: u64,
    /// Wall seconds spent by the strategy (held-out evaluation excluded).
    pub wall_seconds: f64,
    /// Teacher calls answered from a remote teacher's on-disk cache (paid in an earlier run):
    /// the new, paid teacher calls are `teacher_calls - teacher_cache_hits`.
    #[serde(default)]
    pub teacher_cache_hits: u64,
    /// HTTP requests sent to model servers (teacher, student, reference), retries included.
    #[serde(default)]
    pub api_requests: u64,
    /// Completions answered from the on-disk cache instead of a server.
    #[serde(default)]
    pub api_cache_hits: u64,
    /// Tokens the servers reported (prompt and completion).
    #[serde(default)]
    pub api_tokens: u64,
    /// Money spent on model servers at the configured prices, in US dollars.
    #[serde(default)]
    pub api_cost_usd: f64,
    /// Chains of thought sampled from the reference policy `pi_ref` (RL strategies: rejection
    /// sampling), each checked by the verifier.
    #[serde(default)]
    pub reference_samples: u64,
    /// Tokens in those samples.
    #[serde(default)]
    pub reference_tokens: u64,
    /// Demonstrations found by rejection sampling from `pi_ref` (a sample the verifier accepted).
    #[serde(default)]
    pub reference_demos: u64,
    /// Prompts given to rejection sampling that no sample solved (their samples still counted).
    #[serde(default)]
    pub reference_unsolved: u64,
    /// Teacher demonstrations the verifier rejected as they arrived (a model server's wrong
    /// answers): paid for, so counted in `teacher_calls`, but never trained on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub teacher_rejected: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// What a remote model has cost so far (cumulative counters), read by [`Metered`] before and
/// after each call to charge the difference to the ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiUsage {
    pub requests: u64,
    pub cache_hits: u64,
    pub tokens: u64,
    pub cost_usd: f64,
}

impl ApiUsage {
    fn since(self, before: ApiUsage) -> ApiUsage {
        ApiUsage {
            requests: self.requests.saturating_sub(before.requests),
            cache_hits: self.cache_hits.saturating_sub(before.cache_hits),
            tokens: self.tokens.saturating_sub(before.tokens),
            cost_usd: (self.cost_usd - before.cost_usd).max(0.0),
        }
    }
}

impl std::ops::AddAssign<&Ledger> for Ledger {
    fn add_assign(&mut self, o: &Ledger) {
        self.teacher_calls += o.teacher_calls;
        self.teacher_tokens += o.teacher_tokens;
        self.verifier_calls += o.verifier_calls;
        self.student_generations += o.student_generations;
        self.student_tokens += o.student_tokens;
        self.training_steps += o.training_steps;
        self.training_examples += o.training_examples;
        self.prompts_drawn += o.prompts_drawn;
        self.wall_seconds += o.wall_seconds;
        self.teacher_cache_hits += o.teacher_cache_hits;
        self.api_requests += o.api_requests;
        self.api_cache_hits += o.api_cache_hits;
        self.api_tokens += o.api_tokens;
        self.api_cost_usd += o.api_cost_usd;
        self.reference_samples += o.reference_samples;
        self.reference_tokens += o.reference_tokens;
        self.reference_demos += o.reference_demos;
        self.reference_unsolved += o.reference_unsolved;
        self.teacher_rejected += o.teacher_rejected;
    }
}

impl Ledger {
    /// Every cost as (field name, value), in declaration order: for bills and tables that list
    /// them all.
    pub fn fields(&self) -> [(&'static str, f64); 19] {
        [
            ("teacher_calls", self.teacher_calls as f64),
            ("teacher_tokens", self.teacher_tokens as f64),
            ("verifier_calls", self.verifier_calls as f64),
            ("student_generations", self.student_generations as f64),
            ("student_tokens", self.student_tokens as f64),
            ("training_steps", self.training_steps as f64),
            ("training_examples", self.training_examples as f64),
            ("prompts_drawn", self.prompts_drawn as f64),
            ("wall_seconds", self.wall_seconds),
            ("teacher_cache_hits", self.teacher_cache_hits as f64),
            ("api_requests", self.api_requests as f64),
            ("api_cache_hits", self.api_cache_hits as f64),
            ("api_tokens", self.api_tokens as f64),
            ("api_cost_usd", self.api_cost_usd),
            ("reference_samples", self.reference_samples as f64),
            ("reference_tokens", self.reference_tokens as f64),
            ("reference_demos", self.reference_demos as f64),
            ("reference_unsolved", self.reference_unsolved as f64),
            ("teacher_rejected", self.teacher_rejected as f64),
        ]
    }

    /// Demonstrations in the training set: bought from the teacher, or found by rejection
    /// sampling from `pi_ref`.
    pub fn demos(&self) -> u64 {
        self.teacher_calls + self.reference_demos
    }

    /// Rollouts: every chain of thought sampled from `pi_ref` and every student generation
    /// (each one checked by the verifier).
    pub fn rollouts(&self) -> u64 {
        self.reference_samples + self.student_generations
    }
}

/// The only door to the expensive parts: every call through it is counted.
pub struct Metered<'a> {
    task: &'a dyn Task,
    ledger: Ledger,
    start: Instant,
    excluded: Duration,
    /// Time the replayed calls took when they were made.
    replayed: Duration,
    journal: Option<(&'a dyn Journal, String)>,
    /// The number of the next journaled call.
    seq: u64,
}

impl<'a> Metered<'a> {
    pub fn new(task: &'a dyn Task) -> Self {
        Self {
            task,
            ledger: Ledger::default(),
            start: Instant::now(),
            excluded: Duration::ZERO,
            replayed: Duration::ZERO,
            journal: None,
            seq: 0,
        }
    }

    /// Journals every expensive result in stream `run` of `journal`, and replays what the
    /// stream already holds (a resumed run).
    pub fn with_journal(mut self, journal: &'a dyn Journal, run: String) -> Self {
        self.journal = Some((journal, run));
        self
    }

    /// The recorded result of the next journaled call if the journal holds it, after checking
    /// that it is the call the run makes now (`op` on prompts `ids`).
    fn replay(&mut self, op: &str, ids: &[u64]) -> Result<Replay> {
        let Some((journal, run)) = &self.journal else {
            return Ok(Replay::Off);
        };
        let seq = self.seq;
        self.seq += 1;
        let Some(entry) = journal.take(run, seq) else {
            return Ok(Replay::Live(seq));
        };
        let recorded: Option<&[u64]> = match &entry {
            Entry::Teach { ids, .. } | Entry::Generate { ids, .. } | Entry::Verify { ids, .. } => {
                Some(ids)
            }
            Entry::Fit { .. } => None,
        };
        if entry.op() != op || recorded.is_some_and(|r| r != ids) {
            let on = |n: Option<usize>| n.map_or(String::new(), |n| format!(" on {n} prompts"));
            return Err(CoreError::Journal(format!(
                "run {run}, record {seq}: the journal holds `{}`{}, but the run now makes `{op}`{}; \
                 the run no longer follows its journal (were the code, the input files or the \
                 parameters changed?)",
                entry.op(),
                on(recorded.map(<[u64]>::len)),
                on((op != "fit").then_some(ids.len())),
            )));
        }
        let secs = match &entry {
            Entry::Teach { secs, .. }
            | Entry::Generate { secs, .. }
            | Entry::Verify { secs, .. }
            | Entry::Fit { secs, .. } => *secs,
        };
        if secs.is_finite() && secs > 0.0 {
            self.replayed += Duration::from_secs_f64(secs);
        }
        Ok(Replay::Recorded(entry))
    }

    /// Appends the result of call `seq` (made live) to the journal.
    fn record(&self, seq: u64, entry: &Entry) -> Result<()> {
        match &self.journal {
            Some((journal, run)) => journal.append(run, seq, entry),
            None => Ok(()),
        }
    }

    pub fn task(&self) -> &'a dyn Task {
        self.task
    }

    /// Teacher demonstrations for `prompts` (one call each).
    pub fn teach(&mut self, prompts: Vec<Prompt>) -> Result<Vec<Demo>> {
        if prompts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<u64> = prompts.iter().map(|p| p.id).collect();
        let (traces, usage) = match self.replay("teach", &ids)? {
            Replay::Recorded(Entry::Teach { traces, api, .. }) => (traces, api),
            replay => {
                let teacher = self.task.teacher();
                let t0 = Instant::now();
                let before = teacher.api_usage();
                let traces = teacher.demonstrate_batch(&prompts)?;
                let usage = before.zip(teacher.api_usage()).map(|(b, a)| a.since(b));
                if traces.len() != prompts.len() {
                    return Err(crate::CoreError::Teacher(format!(
                        "teacher returned {} traces for {} prompts",
                        traces.len(),
                        prompts.len()
                    )));
                }
                if let Replay::Live(seq) = replay {
                    let entry = Entry::Teach {
                        ids,
                        traces,
                        api: usage,
                        secs: t0.elapsed().as_secs_f64(),
                    };
                    self.record(seq, &entry)?;
                    let Entry::Teach { traces, .. } = entry else {
                        unreachable!()
                    };
                    (traces, usage)
                } else {
                    (traces, usage)
                }
            }
        };
        if traces.len() != prompts.len() {
            return Err(CoreError::Journal(format!(
                "a teach record holds {} traces for {} prompts",
                traces.len(),
                prompts.len()
            )));
        }
        if let Some(d) = usage {
            self.ledger.teacher_cache_hits += d.cache_hits;
            self.charge(d);
        }
        self.ledger.teacher_calls += prompts.len() as u64;
        self.ledger.teacher_tokens += traces.iter().map(|t| t.len() as u64).sum::<u64>();
        Ok(prompts
            .into_iter()
            .zip(traces)
            .map(|(prompt, trace)| Demo { prompt, trace })
            .collect())
    }

    fn charge(&mut self, d: ApiUsage) {
        self.ledger.api_requests += d.requests;
        self.ledger.api_cache_hits += d.cache_hits;
        self.ledger.api_tokens += d.tokens;
        self.ledger.api_cost_usd += d.cost_usd;
    }

    /// Greedy generations of `policy`.
    pub fn generate(&mut self, policy: &dyn Policy, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        self.policy_call(policy, prompts, Role::Student, |p| {
            p.try_generate_batch(prompts)
        })
    }

    /// Sampled generations of `policy`.
    pub fn sample(
        &mut self,
        policy: &dyn Policy,
        prompts: &[Prompt],
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Trace>> {
        self.policy_call(policy, prompts, Role::Student, |p| {
            p.try_sample_batch(prompts, temperature, seed)
        })
    }

    /// Samples of the reference policy `pi_ref`, counted as reference samples and tokens.
    pub fn sample_reference(
        &mut self,
        reference: &dyn Policy,
        prompts: &[Prompt],
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Trace>> {
        self.policy_call(reference, prompts, Role::Reference, |p| {
            p.try_sample_batch(prompts, temperature, seed)
        })
    }

    /// Rejection sampling from `pi_ref`: for each prompt, draws up to `max_samples` chains of
    /// thought, one round at a time over the prompts still unsolved, and keeps the first one the
    /// verifier accepts. Returns one entry per prompt, in order: the demonstration, or `None`
    /// (unsolved; its samples are still counted). Every sample and verdict is charged.
    pub fn rejection_sample(
        &mut self,
        reference: &dyn Policy,
        prompts: &[Prompt],
        max_samples: usize,
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Option<Demo>>> {
        let mut found: Vec<Option<Demo>> = vec![None; prompts.len()];
        let mut open: Vec<usize> = (0..prompts.len()).collect();
        for round in 0..max_samples {
            if open.is_empty() {
                break;
            }
            let batch: Vec<Prompt> = open.iter().map(|&i| prompts[i].clone()).collect();
            let round_seed = crate::stream_seed(seed, &format!("rejection/{round}"));
            let traces = self.sample_reference(reference, &batch, temperature, round_seed)?;
            let verdicts = self.verify(&batch, &traces)?;
            let mut still = Vec::with_capacity(open.len());
            for ((i, trace), ok) in open.iter().zip(traces).zip(verdicts) {
                if ok {
                    found[*i] = Some(Demo {
                        prompt: prompts[*i].clone(),
                        trace,
                    });
                } else {
                    still.push(*i);
                }
            }
            open = still;
        }
        self.ledger.reference_demos += (prompts.len() - open.len()) as u64;
        self.ledger.reference_unsolved += open.len() as u64;
        Ok(found)
    }

    /// The paper's RLFineTune (Algorithm 4) on `prompts`: `samples` chains of thought per
    /// prompt from `pi_ref` (every sample charged), deduplicated; the distinct ones are
    /// verified (each verdict charged), and of those the verifier accepts, the ones whose
    /// probability under `pi_ref` is at least `min_prob` form the kept set. Returns per prompt
    /// the most probable CoT of its kept set (ties: the first sampled), or `None` when the set
    /// is empty. Errors when `pi_ref` cannot report sequence probabilities.
    pub fn filtered_sample(
        &mut self,
        reference: &dyn Policy,
        prompts: &[Prompt],
        samples: usize,
        min_prob: f64,
        temperature: f64,
        seed: u64,
    ) -> Result<Vec<Option<Demo>>> {
        let mut distinct: Vec<Vec<Trace>> = vec![Vec::new(); prompts.len()];
        let mut seen: Vec<std::collections::HashSet<Vec<crate::Token>>> =
            vec![std::collections::HashSet::new(); prompts.len()];
        for round in 0..samples {
            let round_seed = crate::stream_seed(seed, &format!("rlfinetune/{round}"));
            let traces = self.sample_reference(reference, prompts, temperature, round_seed)?;
            for (i, t) in traces.into_iter().enumerate() {
                if seen[i].insert(t.steps.clone()) {
                    distinct[i].push(t);
                }
            }
        }
        let (owners, flat): (Vec<usize>, Vec<Trace>) = distinct
            .into_iter()
            .enumerate()
            .flat_map(|(i, ts)| ts.into_iter().map(move |t| (i, t)))
            .unzip();
        let batch: Vec<Prompt> = owners.iter().map(|&i| prompts[i].clone()).collect();
        let verdicts = self.verify(&batch, &flat)?;
        let right: Vec<usize> = (0..flat.len()).filter(|&j| verdicts[j]).collect();
        let right_prompts: Vec<Prompt> = right.iter().map(|&j| batch[j].clone()).collect();
        let right_traces: Vec<Trace> = right.iter().map(|&j| flat[j].clone()).collect();
        let log_probs = if right.is_empty() {
            Vec::new()
        } else {
            reference
                .log_probs(&right_prompts, &right_traces, temperature)
                .filter(|l| l.len() == right.len())
                .ok_or_else(|| {
                    CoreError::Input(format!(
                        "RLFineTune keeps samples of pi_ref by their probability, and the \
                         reference policy of task {} does not report sequence probabilities",
                        self.task.name()
                    ))
                })?
        };
        let min_log = min_prob.ln();
        let mut best: Vec<Option<(f64, usize)>> = vec![None; prompts.len()];
        for (k, &j) in right.iter().enumerate() {
            let lp = log_probs[k];
            if lp < min_log - 1e-9 {
                continue;
            }
            let slot = &mut best[owners[j]];
            match slot {
                Some((b, _)) if *b >= lp => {}
                _ => *slot = Some((lp, j)),
            }
        }
        let found: Vec<Option<Demo>> = best
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                b.map(|(_, j)| Demo {
                    prompt: prompts[i].clone(),
                    trace: flat[j].clone(),
                })
            })
            .collect();
        let solved = found.iter().flatten().count();
        self.ledger.reference_demos += solved as u64;
        self.ledger.reference_unsolved += (prompts.len() - solved) as u64;
        Ok(found)
    }

    /// A generation call: journaled (and replayed) for remote policies, whose calls are paid
    /// and not reproducible; made again on resume for in-process ones.
    fn policy_call(
        &mut self,
        policy: &dyn Policy,
        prompts: &[Prompt],
        role: Role,
        call: impl FnOnce(&dyn Policy) -> Result<Vec<Trace>>,
    ) -> Result<Vec<Trace>> {
        let before = policy.api_usage();
        let replay = if before.is_some() {
            let ids: Vec<u64> = prompts.iter().map(|p| p.id).collect();
            self.replay("generate", &ids)?
        } else {
            Replay::Off
        };
        let (traces, usage) = match replay {
            Replay::Recorded(Entry::Generate { traces, api, .. }) => (traces, api),
            replay => {
                let t0 = Instant::now();
                let traces = call(policy)?;
                let usage = before.zip(policy.api_usage()).map(|(b, a)| a.since(b));
                if let Replay::Live(seq) = replay {
                    let entry = Entry::Generate {
                        ids: prompts.iter().map(|p| p.id).collect(),
                        traces,
                        api: usage,
                        secs: t0.elapsed().as_secs_f64(),
                    };
                    self.record(seq, &entry)?;
                    let Entry::Generate { traces, .. } = entry else {
                        unreachable!()
                    };
                    (traces, usage)
                } else {
                    (traces, usage)
                }
            }
        };
        if let Some(d) = usage {
            self.charge(d);
        }
        if traces.len() != prompts.len() {
            return Err(CoreError::Student(format!(
                "a policy returned {} chains of thought for {} prompts",
                traces.len(),
                prompts.len()
            )));
        }
        let tokens = traces.iter().map(|t| t.len() as u64).sum::<u64>();
        match role {
            Role::Student => {
                self.ledger.student_generations += traces.len() as u64;
                self.ledger.student_tokens += tokens;
            }
            Role::Reference => {
                self.ledger.reference_samples += traces.len() as u64;
                self.ledger.reference_tokens += tokens;
            }
        }
        Ok(traces)
    }

    /// Verifier verdicts on the answers of `traces`.
    pub fn verify(&mut self, prompts: &[Prompt], traces: &[Trace]) -> Result<Vec<bool>> {
        let ids: Vec<u64> = prompts.iter().map(|p| p.id).collect();
        // A pure verifier's verdicts are computed again on resume, not journaled.
        let replay = if self.task.verifier().pure() {
            Replay::Off
        } else {
            self.replay("verify", &ids)?
        };
        let verdicts = match replay {
            Replay::Recorded(Entry::Verify { verdicts, .. }) => verdicts_from_str(&verdicts)
                .filter(|v| v.len() == prompts.len())
                .ok_or_else(|| {
                    CoreError::Journal(format!(
                        "a verify record holds `{verdicts}` for {} prompts",
                        prompts.len()
                    ))
                })?,
            replay => {
                let t0 = Instant::now();
                let answers: Vec<&[crate::Token]> = traces.iter().map(Trace::answer).collect();
                let verdicts = self.task.verifier().try_verify_batch(prompts, &answers)?;
                if let Replay::Live(seq) = replay {
                    let entry = Entry::Verify {
                        ids,
                        verdicts: verdicts_to_string(&verdicts),
                        secs: t0.elapsed().as_secs_f64(),
                    };
                    self.record(seq, &entry)?;
                }
                verdicts
            }
        };
        self.ledger.verifier_calls += prompts.len() as u64;
        Ok(verdicts)
    }

    /// Trains `student` on `demos`. A resumed run restores a student that journals its
    /// checkpoints from the checkpoint instead of training it again.
    pub fn fit(&mut self, student: &mut Box<dyn Student>, demos: &[Demo]) -> Result<FitStats> {
        let stats = match self.replay("fit", &[])? {
            Replay::Recorded(Entry::Fit {
                stats,
                checkpoint: Some(name),
                ..
            }) => {
                let (journal, _) = self.journal.as_ref().expect("replaying from a journal");
                *student = self.task.load_student(&journal.get_checkpoint(&name)?)?;
                stats
            }
            Replay::Recorded(Entry::Fit { stats, .. }) => {
                let live = student.fit(demos)?;
                if live != stats {
                    return Err(CoreError::Journal(format!(
                        "a fit gave {live:?} where the journal recorded {stats:?}: the run no \
                         longer follows its journal"
                    )));
                }
                live
            }
            replay => {
                let t0 = Instant::now();
                let stats = student.fit(demos)?;
                if let Replay::Live(seq) = replay {
                    let (journal, run) = self.journal.as_ref().expect("journaling");
                    let checkpoint = if student.journal_checkpoints() {
                        let state = student.save().ok_or_else(|| {
                            CoreError::Student(
                                "a student that journals checkpoints could not be saved".into(),
                            )
                        })?;
                        Some(journal.put_checkpoint(run, seq, &state)?)
                    } else {
                        None
                    };
                    let entry = Entry::Fit {
                        stats,
                        checkpoint,
                        secs: t0.elapsed().as_secs_f64(),
                    };
                    self.record(seq, &entry)?;
                }
                stats
            }
        };
        self.ledger.training_steps += stats.steps;
        self.ledger.training_examples += stats.examples;
        self.ledger.student_generations += stats.validation_generations;
        self.ledger.verifier_calls += stats.validation_generations;
        Ok(stats)
    }

    /// One policy-gradient update of `student` on its rewarded samples (not journaled: a
    /// policy-gradient run resumes from its state after a step, not by replaying calls).
    pub fn reinforce(
        &mut self,
        student: &mut dyn Student,
        rollouts: &[crate::Rollout],
        lr: f64,
    ) -> Result<FitStats> {
        let stats = student.reinforce(rollouts, lr)?;
        self.ledger.training_steps += stats.steps;
        self.ledger.training_examples += stats.examples;
        Ok(stats)
    }

    /// Counts teacher demonstrations the verifier rejected (already paid as teacher calls).
    pub fn count_rejected_demos(&mut self, n: usize) {
        self.ledger.teacher_rejected += n as u64;
    }

    /// Counts prompts drawn from D.
    pub fn count_drawn(&mut self, n: usize) {
        self.ledger.prompts_drawn += n as u64;
    }

    /// Continues from the costs `ledger` of an earlier process (a resumed run): counters as
    /// they were, and its wall seconds counted as time already spent.
    pub fn resume_ledger(&mut self, ledger: Ledger) {
        self.replayed += Duration::from_secs_f64(ledger.wall_seconds.max(0.0));
        self.ledger = ledger;
    }

    /// Excludes `d` (measurement overhead such as held-out evaluation) from wall time.
    pub fn exclude_time(&mut self, d: Duration) {
        self.excluded += d;
    }

    /// The ledger now, with wall seconds filled in (replayed calls count the time they took
    /// when they were made).
    pub fn snapshot(&self) -> Ledger {
        let mut l = self.ledger.clone();
        l.wall_seconds =
            (self.start.elapsed().saturating_sub(self.excluded) + self.replayed).as_secs_f64();
        l
    }
}

/// Whose generations a policy call charges.
#[derive(Clone, Copy)]
enum Role {
    Student,
    Reference,
}

/// What the journal says of the next call.
enum Replay {
    /// No journal: make the call.
    Off,
    /// The journal does not hold the call: make it and append it as record `seq`.
    Live(u64),
    /// The recorded result.
    Recorded(Entry),
}
