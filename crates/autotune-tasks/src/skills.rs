//! `skills`: each prompt needs one of `skills` latent skills, drawn with heavy-tailed (Zipf)
//! frequencies `P(s) ∝ (s+1)^-alpha`, `s = 0..skills-1`. Skill `s` has a secret table
//! `f_s: [vocab] -> [vocab]`, uniformly random and fixed per task instance. A prompt is
//! `[s, a_1..a_T]` (`T = steps` inputs, uniform in `[vocab]`) and its chain of thought is the
//! running scan `z_t = (z_{t-1} + f_s(a_t)) mod vocab`, `z_0 = 0`; the answer is the last
//! `answer_len` steps. Every `z_t` depends on every earlier table lookup, so one wrong entry
//! corrupts the answer (except by a `1/vocab` coincidence).
//!
//! Why this testbed: the student class is the set of tables, `d = skills * vocab`, and the
//! mass of D sits on a few frequent skills while the tail holds most of the entries.
//! - Non-adaptive SFT must draw a rare skill `s` about `1/P(s)` times before it sees it, and
//!   every skill whose mass exceeds about `eps` has to be seen to reach error `eps`: it pays for
//!   the frequent skills again and again, the `d/eps` regime.
//! - A curriculum that buys a demonstration only where the verifier rejects the student learns
//!   at least one new entry per demonstration (a rejected answer used an unknown entry, and the
//!   demonstration of that prompt reveals all of its entries), so it never buys more than `d`
//!   demonstrations, whatever `eps`; finding the failures costs cheap verifier calls instead.
//!
//! The student is an exact ERM over this class: the table entries its demonstrations revealed,
//! with teacher forcing (each CoT step reveals `f_s(a_t) = z_t - z_{t-1} mod vocab`).

use std::sync::Arc;

use crate::source::map_batch;
use crate::GeneratorSource;
use autotune_core::{
    stream_rng, stream_seed, CoreError, Demo, FitStats, ParamSpec, Params, Policy, Prompt,
    PromptSource, Result, Rng, Student, Task, Teacher, Token, Trace, Verifier,
};
use rand::{Rng as _, SeedableRng};

/// Parameters of `skills` (values as text; checked by [`build`]).
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "skills",
        default: "32",
        help: "number of latent skills (d = skills * vocab)",
    },
    ParamSpec {
        key: "vocab",
        default: "10",
        help: "tokens 0..vocab; each skill's table maps [vocab] -> [vocab]",
    },
    ParamSpec {
        key: "steps",
        default: "8",
        help: "input tokens per prompt = CoT steps T",
    },
    ParamSpec {
        key: "answer_len",
        default: "2",
        help: "the answer is the last answer_len CoT steps (1..=steps)",
    },
    ParamSpec {
        key: "alpha",
        default: "1.1",
        help: "Zipf exponent of skill frequencies, P(s) ~ (s+1)^-alpha (0: uniform)",
    },
    ParamSpec {
        key: "confidence",
        default: "5.0",
        help:
            "student sampling: logit of a known table entry (others 0), divided by the temperature",
    },
];

/// Most table entries `skills * vocab` a task may have: every student holds one slot per
/// entry, and an ensemble holds many students.
const MAX_ENTRIES: usize = 1 << 24;

/// The task instance: the shape, the secret tables and the skill distribution, shared by the
/// teacher, the verifier, the prompt sources and every student.
struct World {
    skills: usize,
    vocab: u32,
    steps: usize,
    answer_len: usize,
    /// `tables[s * vocab + a] = f_s(a)`.
    tables: Vec<u32>,
    /// Cumulative skill probabilities; the last is exactly 1.
    cdf: Vec<f64>,
}

impl World {
    /// Index of the table entry `f_s(a)`.
    #[inline]
    fn entry(&self, s: usize, a: Token) -> usize {
        s * self.vocab as usize + a as usize
    }

    /// Checks a prompt's shape and ranges; returns its skill and inputs, or what is wrong.
    fn parse<'p>(&self, p: &'p Prompt) -> std::result::Result<(usize, &'p [Token]), String> {
        let Some((&s, inputs)) = p.tokens.split_first() else {
            return Err(format!(
                "prompt {} is empty, expected {} tokens (a skill id and {} inputs)",
                p.id,
                self.steps + 1,
                self.steps
            ));
        };
        if inputs.len() != self.steps {
            return Err(format!(
                "prompt {} has {} tokens, expected {} (a skill id and {} inputs)",
                p.id,
                p.tokens.len(),
                self.steps + 1,
                self.steps
            ));
        }
        let s = s as usize;
        if s >= self.skills {
            return Err(format!(
                "prompt {} asks for skill {s}, expected a skill id < {}",
                p.id, self.skills
            ));
        }
        if let Some((t, &a)) = inputs.iter().enumerate().find(|(_, &a)| a >= self.vocab) {
            return Err(format!(
                "prompt {} has input token {a} at position {}, expected a token < {}",
                p.id,
                t + 1,
                self.vocab
            ));
        }
        Ok((s, inputs))
    }

    /// The scan `z_t = (z_{t-1} + f(a_t)) mod vocab` with the lookups given by `f`.
    fn scan(&self, inputs: &[Token], mut f: impl FnMut(Token) -> u32) -> Trace {
        let v = u64::from(self.vocab);
        let mut z = 0u64;
        let steps = inputs
            .iter()
            .map(|&a| {
                z = (z + u64::from(f(a))) % v;
                z as Token
            })
            .collect();
        Trace::new(steps, self.answer_len)
    }

    /// The true chain of thought of a prompt (the program teacher).
    fn truth(&self, p: &Prompt) -> std::result::Result<Trace, String> {
        let (s, inputs) = self.parse(p)?;
        Ok(self.scan(inputs, |a| self.tables[self.entry(s, a)]))
    }

    /// Draws a skill by inverse CDF (binary search) from `u` uniform in `[0, 1)`.
    fn skill_of(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c <= u).min(self.skills - 1)
    }

    /// One prompt `[s, a_1..a_T]` from D.
    fn sample_prompt(&self, rng: &mut Rng) -> Vec<Token> {
        let s = self.skill_of(rng.gen::<f64>());
        std::iter::once(s as Token)
            .chain((0..self.steps).map(|_| rng.gen_range(0..self.vocab)))
            .collect()
    }
}

/// The `skills` task instance (built by [`build`]); it is its own teacher and verifier.
pub struct SkillsTask {
    world: Arc<World>,
    confidence: f64,
}

/// Builds the task for `seed` from resolved parameters (see [`PARAMS`]).
///
/// Every value is checked before any work, so a bad one is an error naming its key and what
/// was expected, never a panic. The tables are drawn from the stream `skills/tables` of `seed`,
/// so the instance does not depend on the run seed given to [`Task::prompts`].
pub fn build(p: &Params, seed: u64) -> Result<Box<dyn Task>> {
    Ok(Box::new(SkillsTask::from_params(p, seed)?))
}

impl SkillsTask {
    /// The checked instance behind [`build`].
    fn from_params(p: &Params, seed: u64) -> Result<Self> {
        let skills: usize = p.get_checked("skills", "an integer in 1..=1000000", |x: usize| {
            (1..=1_000_000).contains(&x)
        })?;
        let vocab: u32 = p.get_checked("vocab", "an integer in 2..=65536", |x: u32| {
            (2..=65_536).contains(&x)
        })?;
        let steps: usize = p.get_checked("steps", "an integer in 1..=65536", |x: usize| {
            (1..=65_536).contains(&x)
        })?;
        let answer_len: usize = p.get_checked(
            "answer_len",
            &format!("an integer in 1..=steps (steps = {steps})"),
            |x: usize| (1..=steps).contains(&x),
        )?;
        let alpha: f64 = p.get_checked("alpha", "a finite number >= 0", |x: f64| {
            x.is_finite() && x >= 0.0
        })?;
        let confidence: f64 = p.get_checked("confidence", "a finite number > 0", |x: f64| {
            x.is_finite() && x > 0.0
        })?;
        let entries = skills * vocab as usize;
        if entries > MAX_ENTRIES {
            return Err(CoreError::Invalid(format!(
                "parameters `skills` * `vocab` = {skills} * {vocab} = {entries} table entries, \
             expected at most {MAX_ENTRIES}"
            )));
        }

        let mut rng = stream_rng(seed, "skills/tables");
        let tables = (0..entries).map(|_| rng.gen_range(0..vocab)).collect();
        // Zipf weights (s+1)^-alpha; the weight of skill 0 is 1, so the total is >= 1 and the
        // normalisation never divides by zero (tail weights may underflow to 0: never drawn).
        let weights: Vec<f64> = (0..skills).map(|s| ((s + 1) as f64).powf(-alpha)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        // Rounding may leave the sum a hair below 1; the last skill closes the interval.
        *cdf.last_mut().expect("skills >= 1") = 1.0;

        Ok(Self {
            world: Arc::new(World {
                skills,
                vocab,
                steps,
                answer_len,
                tables,
                cdf,
            }),
            confidence,
        })
    }

    /// An untrained student, as its concrete type.
    pub fn student(&self) -> SkillsStudent {
        SkillsStudent::new(Arc::clone(&self.world), self.confidence)
    }
}

impl Task for SkillsTask {
    fn student_samples(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "skills"
    }

    /// `d = skills * vocab`: the number of table entries a student must learn.
    fn dimension(&self) -> usize {
        self.world.skills * self.world.vocab as usize
    }

    /// Prompts `x ~ D` for `split` (`train` or `test`, independent streams of `seed`).
    fn prompts(&self, split: &str, seed: u64) -> Result<Box<dyn PromptSource>> {
        if split != "train" && split != "test" {
            return Err(CoreError::Invalid(format!(
                "unknown split `{split}`; expected train or test"
            )));
        }
        let w = Arc::clone(&self.world);
        Ok(Box::new(GeneratorSource::new(
            seed,
            split,
            move |rng: &mut Rng| w.sample_prompt(rng),
        )))
    }

    fn teacher(&self) -> &dyn Teacher {
        self
    }

    fn verifier(&self) -> &dyn Verifier {
        self
    }

    /// An untrained student (it knows no entry). The ERM is deterministic: `seed` is unused.
    fn new_student(&self, _seed: u64) -> Box<dyn Student> {
        Box::new(self.student())
    }
}

impl Teacher for SkillsTask {
    /// The true CoT from the tables; a malformed prompt is an error naming what is wrong
    /// (the first malformed prompt of the batch, so the message does not depend on threads).
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        map_batch(prompts, |_, p| self.world.truth(p))
            .into_iter()
            .map(|r| r.map_err(CoreError::Teacher))
            .collect()
    }
}

impl Verifier for SkillsTask {
    fn pure(&self) -> bool {
        true
    }

    /// Recomputes the true answer and compares. One verdict per prompt: a malformed prompt,
    /// an answer of the wrong length or a missing answer is incorrect.
    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
        map_batch(prompts, |i, p| {
            match (self.world.truth(p), answers.get(i)) {
                (Ok(t), Some(a)) => t.answer() == *a,
                _ => false,
            }
        })
    }
}

/// The ERM student: per skill, the table entries its demonstrations revealed.
///
/// It is consistent with every demonstration of a noise-free teacher, and a known entry is
/// always right, so it errs on a prompt only if the prompt uses an entry it has not seen: its
/// error is the mass of prompts touching unknown entries.
pub struct SkillsStudent {
    world: Arc<World>,
    /// `known[s * vocab + a]`: the learned `f_s(a)`, if a demonstration revealed it.
    known: Vec<Option<u32>>,
    confidence: f64,
    /// Demonstration steps that contradicted an entry already learned (a noisy teacher):
    /// training error that no table can remove.
    conflicts: u64,
}

impl SkillsStudent {
    fn new(world: Arc<World>, confidence: f64) -> Self {
        let entries = world.skills * world.vocab as usize;
        Self {
            world,
            known: vec![None; entries],
            confidence,
            conflicts: 0,
        }
    }

    /// How many of the `d = skills * vocab` table entries the student knows.
    pub fn known_entries(&self) -> usize {
        self.known.iter().filter(|k| k.is_some()).count()
    }

    /// Runs the scan with `pick` choosing each step's lookup from what the student knows of
    /// that entry. A malformed prompt gets an empty trace, whose empty answer is rejected.
    fn run(&self, p: &Prompt, mut pick: impl FnMut(Option<u32>) -> u32) -> Trace {
        match self.world.parse(p) {
            Ok((s, inputs)) => self
                .world
                .scan(inputs, |a| pick(self.known[self.world.entry(s, a)])),
            Err(_) => Trace::new(Vec::new(), self.world.answer_len),
        }
    }

    /// The table values a demonstration reveals (teacher forcing: `f_s(a_t) = z_t - z_{t-1}`
    /// on the demonstration's own steps), as `(entry, value)`, or what is wrong with it.
    fn reveal(&self, d: &Demo) -> std::result::Result<Vec<(usize, u32)>, String> {
        let (s, inputs) = self.world.parse(&d.prompt)?;
        if d.trace.steps.len() != inputs.len() {
            return Err(format!(
                "demonstration for prompt {} has {} steps, expected {}",
                d.prompt.id,
                d.trace.steps.len(),
                inputs.len()
            ));
        }
        let v = self.world.vocab;
        let mut prev = 0u32;
        inputs
            .iter()
            .zip(&d.trace.steps)
            .enumerate()
            .map(|(t, (&a, &z))| {
                if z >= v {
                    return Err(format!(
                        "demonstration for prompt {} has token {z} at step {}, expected a token < {v}",
                        d.prompt.id,
                        t + 1
                    ));
                }
                let value = ((u64::from(z) + u64::from(v) - u64::from(prev)) % u64::from(v)) as u32;
                prev = z;
                Ok((self.world.entry(s, a), value))
            })
            .collect()
    }
}

impl Policy for SkillsStudent {
    /// Greedy: a known entry gives its value, an unknown one guesses 0 (so a prompt of an
    /// unseen skill is right only by a `vocab^-T`-ish coincidence).
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        map_batch(prompts, |_, p| self.run(p, |k| k.unwrap_or(0)))
    }

    /// Per step, a softmax over `[vocab]` with logit `confidence` on a known entry's value and
    /// 0 elsewhere, divided by `temperature`: the known value with probability
    /// `1 / (1 + (vocab-1) exp(-confidence/temperature))`, else a uniform other value. An
    /// unknown entry (all logits 0) is uniform at every temperature. A temperature `<= 0` (or
    /// NaN) is the `temperature -> 0+` limit: known entries exact, unknown ones uniform.
    ///
    /// Prompt `i` draws from its own stream, seeded `stream_seed(seed, "skills/sample") + i`, so
    /// the parallel and serial paths give the same traces.
    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        let v = self.world.vocab;
        // exp(-c/tau) underflows to 0 as tau -> 0+ and tends to 1 as tau -> inf: no NaN.
        let p_known = if temperature > 0.0 {
            1.0 / (1.0 + f64::from(v - 1) * (-self.confidence / temperature).exp())
        } else {
            1.0
        };
        let base = stream_seed(seed, "skills/sample");
        map_batch(prompts, |i, p| {
            let mut rng = Rng::seed_from_u64(base.wrapping_add(i as u64));
            self.run(p, |k| match k {
                Some(x) if rng.gen::<f64>() < p_known => x,
                Some(x) => (x + rng.gen_range(1..v)) % v,
                None => rng.gen_range(0..v),
            })
        })
    }
}

impl Student for SkillsStudent {
    /// Continues training: learns the entries `new_demos` reveal and keeps everything learned
    /// before. `steps` counts newly learned entries (summed over a run it is at most `d`),
    /// `examples` the demonstration steps processed. An entry seen with two values keeps the
    /// first; `consistent` is then false from that call on (the training error stays > 0).
    ///
    /// A malformed demonstration (prompt, length or token out of range) is an error and the
    /// student is left unchanged: the whole batch is checked before anything is learned.
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        let revealed = new_demos
            .iter()
            .map(|d| self.reveal(d))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(CoreError::Student)?;
        let mut stats = FitStats::default();
        for (e, value) in revealed.into_iter().flatten() {
            stats.examples += 1;
            match self.known[e] {
                None => {
                    self.known[e] = Some(value);
                    stats.steps += 1;
                }
                Some(x) if x != value => self.conflicts += 1,
                Some(_) => {}
            }
        }
        stats.consistent = self.conflicts == 0;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(items: &[&str]) -> Params {
        Params::parse(items)
            .unwrap()
            .resolve("skills", PARAMS)
            .unwrap()
    }

    fn task(items: &[&str]) -> Box<dyn Task> {
        build(&params(items), 1).unwrap()
    }

    fn answers(traces: &[Trace]) -> Vec<&[Token]> {
        traces.iter().map(Trace::answer).collect()
    }

    fn demos(t: &dyn Task, prompts: &[Prompt]) -> Vec<Demo> {
        let traces = t.teacher().demonstrate_batch(prompts).unwrap();
        prompts
            .iter()
            .cloned()
            .zip(traces)
            .map(|(prompt, trace)| Demo { prompt, trace })
            .collect()
    }

    /// Fraction of `prompts` on which `traces` is accepted.
    fn accuracy(t: &dyn Task, prompts: &[Prompt], traces: &[Trace]) -> f64 {
        let ok = t.verifier().verify_batch(prompts, &answers(traces));
        ok.iter().filter(|&&v| v).count() as f64 / prompts.len() as f64
    }

    #[test]
    fn teacher_answers_are_accepted_and_wrong_answers_rejected() {
        let t = task(&[]);
        let prompts = t.prompts("train", 3).unwrap().draw(1000).unwrap();
        let traces = t.teacher().demonstrate_batch(&prompts).unwrap();
        assert!(traces
            .iter()
            .all(|tr| tr.len() == 8 && tr.answer().len() == 2));
        assert_eq!(accuracy(t.as_ref(), &prompts, &traces), 1.0);
        let wrong: Vec<Vec<Token>> = answers(&traces)
            .iter()
            .map(|a| a.iter().map(|x| (x + 1) % 10).collect())
            .collect();
        let wrong: Vec<&[Token]> = wrong.iter().map(Vec::as_slice).collect();
        assert!(t
            .verifier()
            .verify_batch(&prompts, &wrong)
            .iter()
            .all(|&v| !v));
        // Wrong length and missing answers are incorrect, one verdict per prompt.
        let short: Vec<&[Token]> = traces.iter().map(|tr| &tr.answer()[..1]).collect();
        assert!(t
            .verifier()
            .verify_batch(&prompts, &short)
            .iter()
            .all(|&v| !v));
        assert_eq!(
            t.verifier()
                .verify_batch(&prompts[..2], &[traces[0].answer()]),
            vec![true, false]
        );
    }

    #[test]
    fn the_scan_matches_a_hand_computed_example() {
        let t = task(&["skills=1", "vocab=5", "steps=3", "answer_len=1"]);
        let cover: Vec<Prompt> = (0..5)
            .map(|a| Prompt {
                id: a,
                tokens: vec![0, a as Token, a as Token, a as Token],
            })
            .collect();
        let traces = t.teacher().demonstrate_batch(&cover).unwrap();
        // For the prompt [0, a, a, a], z_t = t * f_0(a) mod 5.
        for tr in &traces {
            let f = tr.steps[0];
            assert_eq!(tr.steps, vec![f, (2 * f) % 5, (3 * f) % 5]);
            assert_eq!(tr.answer(), &[(3 * f) % 5]);
        }
    }

    #[test]
    fn a_student_answers_a_skill_whose_entries_its_demos_cover() {
        let t = task(&[]);
        let s = 0u32;
        // Two prompts of skill 0 whose inputs cover all 10 tokens.
        let cover: Vec<Prompt> = (0..2)
            .map(|i| Prompt {
                id: i,
                tokens: std::iter::once(s)
                    .chain((0..8).map(|j| (i as Token * 8 + j) % 10))
                    .collect(),
            })
            .collect();
        let mut student = t.new_student(0);
        let stats = student.fit(&demos(t.as_ref(), &cover)).unwrap();
        assert_eq!(stats.steps, 10, "every entry of f_0 is learned once");
        assert_eq!(stats.examples, 16);
        assert!(stats.consistent);
        // Refitting teaches nothing new.
        assert_eq!(student.fit(&demos(t.as_ref(), &cover)).unwrap().steps, 0);

        let fresh = t.prompts("test", 5).unwrap().draw(3000).unwrap();
        let (mine, others): (Vec<Prompt>, Vec<Prompt>) =
            fresh.into_iter().partition(|p| p.tokens[0] == s);
        assert!(mine.len() > 100);
        let g = student.generate_batch(&mine);
        assert_eq!(accuracy(t.as_ref(), &mine, &g), 1.0);
        let g = student.generate_batch(&others);
        assert!(accuracy(t.as_ref(), &others, &g) < 0.05);
    }

    #[test]
    fn an_untrained_student_is_almost_always_wrong() {
        let t = task(&[]);
        let prompts = t.prompts("test", 2).unwrap().draw(1000).unwrap();
        let s = t.new_student(0);
        assert!(accuracy(t.as_ref(), &prompts, &s.generate_batch(&prompts)) < 0.05);
        let sampled = s.sample_batch(&prompts, 1.0, 3);
        assert!(accuracy(t.as_ref(), &prompts, &sampled) < 0.05);
    }

    #[test]
    fn fit_keeps_earlier_knowledge_and_flags_conflicts() {
        let t = SkillsTask::from_params(&params(&[]), 1).unwrap();
        let prompts = t.prompts("train", 4).unwrap().draw(2000).unwrap();
        let all = demos(&t, &prompts);
        let mut s = t.student();
        let first = s.fit(&all[..1000]).unwrap();
        let second = s.fit(&all[1000..]).unwrap();
        assert_eq!(first.examples + second.examples, 2000 * 8);
        assert_eq!((first.steps + second.steps) as usize, s.known_entries());
        assert!(second.consistent);
        assert_eq!(accuracy(&t, &prompts, &s.generate_batch(&prompts)), 1.0);

        // A noisy demonstration: the first value is kept, the fit reports inconsistency.
        let mut noisy = all[0].clone();
        noisy.trace.steps[0] = (noisy.trace.steps[0] + 1) % 10;
        let stats = s.fit(&[noisy]).unwrap();
        assert!(!stats.consistent);
        assert_eq!(stats.steps, 0);
        assert!(!s.fit(&[]).unwrap().consistent, "the conflict stays");
        assert_eq!(accuracy(&t, &prompts, &s.generate_batch(&prompts)), 1.0);
    }

    #[test]
    fn malformed_demos_are_errors_and_leave_the_student_unchanged() {
        let t = SkillsTask::from_params(&params(&[]), 1).unwrap();
        let prompts = t.prompts("train", 6).unwrap().draw(10).unwrap();
        let good = demos(&t, &prompts);
        let mut s = t.student();
        let mut bad_prompt = good.clone();
        bad_prompt[5].prompt.tokens[0] = 99;
        let mut bad_len = good.clone();
        bad_len[5].trace.steps.pop();
        let mut bad_token = good.clone();
        bad_token[5].trace.steps[3] = 10;
        for (bad, what) in [
            (bad_prompt, "skill 99"),
            (bad_len, "7 steps"),
            (bad_token, "token 10"),
        ] {
            let e = s.fit(&bad).unwrap_err().to_string();
            assert!(e.contains("student") && e.contains(what), "{e}");
        }
        assert_eq!(
            s.known_entries(),
            0,
            "nothing of a rejected batch is learned"
        );
        assert_eq!(s.fit(&good).unwrap().examples, 80);
        assert!(s.known_entries() > 0);
    }

    #[test]
    fn sampling_is_deterministic_and_parallel_equals_serial() {
        let t = task(&[]);
        let prompts = t.prompts("train", 7).unwrap().draw(1500).unwrap();
        let mut s = t.new_student(0);
        s.fit(&demos(t.as_ref(), &prompts[..300])).unwrap();
        let a = s.sample_batch(&prompts[..600], 1.0, 9);
        assert_eq!(a, s.sample_batch(&prompts[..600], 1.0, 9));
        assert_ne!(a, s.sample_batch(&prompts[..600], 1.0, 10));
        // Batches >= 512 run in parallel; prompt i's stream depends only on (seed, i).
        assert_eq!(
            &a[..100],
            s.sample_batch(&prompts[..100], 1.0, 9).as_slice()
        );
        // At a tiny or zero temperature a known entry is exact: sampling equals greedy on
        // the prompts the student was shown.
        let greedy = s.generate_batch(&prompts[..300]);
        assert_eq!(s.sample_batch(&prompts[..300], 1e-6, 1), greedy);
        assert_eq!(s.sample_batch(&prompts[..300], 0.0, 1), greedy);
        // At a very high temperature every step is uniform: mostly wrong.
        let hot = s.sample_batch(&prompts[..300], 1e9, 1);
        assert!(accuracy(t.as_ref(), &prompts[..300], &hot) < 0.2);
    }

    #[test]
    fn zipf_draws_favour_frequent_skills() {
        let t = task(&[]);
        let prompts = t.prompts("test", 1).unwrap().draw(10_000).unwrap();
        let count = |s: Token| prompts.iter().filter(|p| p.tokens[0] == s).count();
        assert!(count(0) > count(31), "{} vs {}", count(0), count(31));
        assert!(count(0) > 5 * count(31).max(1));
        assert!(prompts
            .iter()
            .all(|p| p.tokens.len() == 9 && p.tokens[0] < 32));
        // Train and test are independent streams; an unknown split is an error.
        let train = t.prompts("train", 1).unwrap().draw(100).unwrap();
        assert_ne!(train, prompts[..100]);
        assert!(t.prompts("valid", 1).is_err());
        // alpha = 0 is uniform.
        let u = task(&["alpha=0", "skills=4"]);
        let up = u.prompts("train", 1).unwrap().draw(8000).unwrap();
        for s in 0..4 {
            let c = up.iter().filter(|p| p.tokens[0] == s).count();
            assert!((1700..2300).contains(&c), "skill {s}: {c}");
        }
    }

    #[test]
    fn bad_params_are_errors_naming_the_key() {
        for bad in [
            "skills=0",
            "vocab=x",
            "vocab=1",
            "steps=0",
            "answer_len=9",
            "answer_len=0",
            "alpha=-1",
            "alpha=NaN",
            "confidence=0",
        ] {
            let e = build(&params(&[bad]), 0).err().expect(bad).to_string();
            let key = bad.split('=').next().unwrap();
            assert!(
                e.contains(&format!("`{key}`")) && e.contains("expected"),
                "{e}"
            );
        }
        let e = build(&params(&["skills=1000000", "vocab=1000"]), 0)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`skills`") && e.contains("`vocab`"), "{e}");
        let t = task(&["skills=3", "vocab=7"]);
        assert_eq!(t.dimension(), 21);
        assert_eq!(t.name(), "skills");
    }

    #[test]
    fn malformed_prompts_are_teacher_errors_and_never_verified() {
        let t = task(&[]);
        for (tokens, what) in [
            (vec![99, 1, 2, 3, 4, 5, 6, 7, 8], "skill 99"),
            (vec![0, 1], "2 tokens"),
            (vec![], "empty"),
            (vec![0, 1, 2, 3, 4, 5, 6, 7, 10], "token 10"),
        ] {
            let p = Prompt { id: 42, tokens };
            let e = t
                .teacher()
                .demonstrate_batch(std::slice::from_ref(&p))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("teacher") && e.contains("42") && e.contains(what),
                "{e}"
            );
            assert_eq!(
                t.verifier()
                    .verify_batch(std::slice::from_ref(&p), &[&[1, 2]]),
                vec![false]
            );
            let g = t.new_student(0).generate_batch(&[p]);
            assert!(g[0].is_empty());
        }
    }

    proptest::proptest! {
        #[test]
        fn teacher_traces_are_well_formed_and_verified(
            skills in 1usize..8,
            vocab in 2u32..20,
            steps in 1usize..12,
            answer_frac in 0.0f64..1.0,
            alpha in 0.0f64..3.0,
            seed in 0u64..1000,
        ) {
            let answer_len = 1 + ((steps as f64 * answer_frac) as usize).min(steps - 1);
            let p = Params::parse(&[
                format!("skills={skills}"),
                format!("vocab={vocab}"),
                format!("steps={steps}"),
                format!("answer_len={answer_len}"),
                format!("alpha={alpha}"),
            ])
            .unwrap()
            .resolve("skills", PARAMS)
            .unwrap();
            let t = build(&p, seed).unwrap();
            let prompts = t.prompts("train", seed).unwrap().draw(20).unwrap();
            let traces = t.teacher().demonstrate_batch(&prompts).unwrap();
            for tr in &traces {
                proptest::prop_assert_eq!(tr.steps.len(), steps);
                proptest::prop_assert_eq!(tr.answer().len(), answer_len);
                proptest::prop_assert!(tr.steps.iter().all(|&z| z < vocab));
            }
            let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
            proptest::prop_assert!(t.verifier().verify_batch(&prompts, &answers).iter().all(|&v| v));
        }
    }
}
