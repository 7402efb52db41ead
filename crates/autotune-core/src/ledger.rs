//! The ledger: the single source of truth for what a run spent.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{Demo, FitStats, Policy, Prompt, Result, Student, Task, Trace};

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
    }
}

impl Ledger {
    /// Every cost as (field name, value), in declaration order: for bills and tables that list
    /// them all.
    pub fn fields(&self) -> [(&'static str, f64); 14] {
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
        ]
    }
}

/// The only door to the expensive parts: every call through it is counted.
pub struct Metered<'a> {
    task: &'a dyn Task,
    ledger: Ledger,
    start: Instant,
    excluded: Duration,
}

impl<'a> Metered<'a> {
    pub fn new(task: &'a dyn Task) -> Self {
        Self {
            task,
            ledger: Ledger::default(),
            start: Instant::now(),
            excluded: Duration::ZERO,
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
        let teacher = self.task.teacher();
        let before = teacher.api_usage();
        let traces = teacher.demonstrate_batch(&prompts)?;
        if let (Some(b), Some(a)) = (before, teacher.api_usage()) {
            let d = a.since(b);
            self.ledger.teacher_cache_hits += d.cache_hits;
            self.charge(d);
        }
        if traces.len() != prompts.len() {
            return Err(crate::CoreError::Teacher(format!(
                "teacher returned {} traces for {} prompts",
                traces.len(),
                prompts.len()
            )));
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
    pub fn generate(&mut self, policy: &dyn Policy, prompts: &[Prompt]) -> Vec<Trace> {
        let before = policy.api_usage();
        let traces = policy.generate_batch(prompts);
        if let (Some(b), Some(a)) = (before, policy.api_usage()) {
            self.charge(a.since(b));
        }
        self.count_generations(&traces);
        traces
    }

    /// Sampled generations of `policy`.
    pub fn sample(
        &mut self,
        policy: &dyn Policy,
        prompts: &[Prompt],
        temperature: f64,
        seed: u64,
    ) -> Vec<Trace> {
        let before = policy.api_usage();
        let traces = policy.sample_batch(prompts, temperature, seed);
        if let (Some(b), Some(a)) = (before, policy.api_usage()) {
            self.charge(a.since(b));
        }
        self.count_generations(&traces);
        traces
    }

    fn count_generations(&mut self, traces: &[Trace]) {
        self.ledger.student_generations += traces.len() as u64;
        self.ledger.student_tokens += traces.iter().map(|t| t.len() as u64).sum::<u64>();
    }

    /// Verifier verdicts on the answers of `traces`.
    pub fn verify(&mut self, prompts: &[Prompt], traces: &[Trace]) -> Vec<bool> {
        let answers: Vec<&[crate::Token]> = traces.iter().map(Trace::answer).collect();
        self.ledger.verifier_calls += prompts.len() as u64;
        self.task.verifier().verify_batch(prompts, &answers)
    }

    /// Trains `student` on `demos`.
    pub fn fit(&mut self, student: &mut dyn Student, demos: &[Demo]) -> Result<FitStats> {
        let stats = student.fit(demos)?;
        self.ledger.training_steps += stats.steps;
        self.ledger.training_examples += stats.examples;
        Ok(stats)
    }

    /// Counts prompts drawn from D.
    pub fn count_drawn(&mut self, n: usize) {
        self.ledger.prompts_drawn += n as u64;
    }

    /// Excludes `d` (measurement overhead such as held-out evaluation) from wall time.
    pub fn exclude_time(&mut self, d: Duration) {
        self.excluded += d;
    }

    /// The ledger now, with wall seconds filled in.
    pub fn snapshot(&self) -> Ledger {
        let mut l = self.ledger.clone();
        l.wall_seconds = self
            .start
            .elapsed()
            .saturating_sub(self.excluded)
            .as_secs_f64();
        l
    }
}
