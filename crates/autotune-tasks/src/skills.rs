//! `skills`: each prompt needs one of `skills` latent skills, drawn with Zipf frequencies
//! `P(s) ~ (s+1)^-alpha`. Skill `s` has a secret table `f_s: [vocab] -> [vocab]`; a prompt is
//! `[s, a_1..a_T]` and its CoT is the running scan `z_t = (z_{t-1} + f_s(a_t)) mod vocab`,
//! whose last `answer_len` steps are the answer: one unknown table entry corrupts it.
//!
//! The student class is the set of tables, `d = skills * vocab`. Uniform SFT pays for the
//! frequent skills again and again while the rare ones stay unseen; a curriculum that asks
//! the teacher only where the student fails pays for each table entry about once.

use std::sync::Arc;

use autotune_core::{
    stream_rng, stream_seed, CoreError, Demo, FitStats, ParamSpec, Params, Policy, Prompt,
    PromptSource, Result, Rng, Student, Task, Teacher, Token, Trace, Verifier,
};
use rand::{Rng as _, SeedableRng};
use rayon::prelude::*;

use crate::GeneratorSource;

/// Parameters of `skills`.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "skills",
        default: "32",
        help: "number of latent skills",
    },
    ParamSpec {
        key: "vocab",
        default: "10",
        help: "table size of a skill (tokens 0..vocab)",
    },
    ParamSpec {
        key: "steps",
        default: "8",
        help: "input tokens = CoT steps T",
    },
    ParamSpec {
        key: "answer_len",
        default: "2",
        help: "the answer is the last answer_len CoT steps",
    },
    ParamSpec {
        key: "alpha",
        default: "1.1",
        help: "Zipf exponent of skill frequencies (0: uniform)",
    },
    ParamSpec {
        key: "confidence",
        default: "5.0",
        help: "student sampling: logit of a known table entry",
    },
];

struct World {
    skills: usize,
    vocab: u32,
    steps: usize,
    answer_len: usize,
    /// `tables[s][a] = f_s(a)`.
    tables: Vec<Vec<u32>>,
    /// Cumulative skill probabilities.
    cdf: Vec<f64>,
}

impl World {
    /// Checks a prompt; returns the skill and the inputs.
    fn parse<'p>(&self, p: &'p Prompt) -> std::result::Result<(usize, &'p [Token]), String> {
        if p.tokens.len() != self.steps + 1 {
            return Err(format!(
                "prompt {} has {} tokens, expected {}",
                p.id,
                p.tokens.len(),
                self.steps + 1
            ));
        }
        let s = p.tokens[0] as usize;
        if s >= self.skills {
            return Err(format!(
                "prompt {} asks for skill {s}, expected < {}",
                p.id, self.skills
            ));
        }
        if let Some(t) = p.tokens[1..].iter().find(|&&t| t >= self.vocab) {
            return Err(format!(
                "prompt {} has input token {t}, expected < {}",
                p.id, self.vocab
            ));
        }
        Ok((s, &p.tokens[1..]))
    }

    /// The scan with table lookups given by `f`.
    fn scan(&self, inputs: &[Token], mut f: impl FnMut(u32) -> u32) -> Trace {
        let mut z = 0u32;
        let steps = inputs
            .iter()
            .map(|&a| {
                z = (z + f(a)) % self.vocab;
                z
            })
            .collect();
        Trace::new(steps, self.answer_len)
    }

    fn truth(&self, p: &Prompt) -> std::result::Result<Trace, String> {
        let (s, inputs) = self.parse(p)?;
        Ok(self.scan(inputs, |a| self.tables[s][a as usize]))
    }
}

/// The `skills` task instance.
pub struct SkillsTask {
    world: Arc<World>,
    confidence: f64,
}

/// Builds the task for `seed` from resolved parameters.
pub fn build(p: &Params, seed: u64) -> Result<Box<dyn Task>> {
    let skills: usize = p.get_checked("skills", "an integer in 1..=100000", |x: usize| {
        (1..=100_000).contains(&x)
    })?;
    let vocab: u32 = p.get_checked("vocab", "an integer in 2..=65536", |x: u32| {
        (2..=65_536).contains(&x)
    })?;
    let steps: usize = p.get_checked("steps", "an integer in 1..=4096", |x: usize| {
        (1..=4096).contains(&x)
    })?;
    let answer_len: usize =
        p.get_checked("answer_len", "an integer in 1..=steps", |x: usize| {
            x >= 1 && x <= steps
        })?;
    let alpha: f64 = p.get_checked("alpha", "a number in [0, 10]", |x: f64| {
        (0.0..=10.0).contains(&x)
    })?;
    let confidence: f64 = p.get_checked("confidence", "a number > 0", |x: f64| {
        x > 0.0 && x.is_finite()
    })?;
    let mut rng = stream_rng(seed, "skills/tables");
    let tables = (0..skills)
        .map(|_| (0..vocab).map(|_| rng.gen_range(0..vocab)).collect())
        .collect();
    let weights: Vec<f64> = (0..skills).map(|s| ((s + 1) as f64).powf(-alpha)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    let cdf = weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect();
    let world = World {
        skills,
        vocab,
        steps,
        answer_len,
        tables,
        cdf,
    };
    Ok(Box::new(SkillsTask {
        world: Arc::new(world),
        confidence,
    }))
}

impl Task for SkillsTask {
    fn name(&self) -> &str {
        "skills"
    }

    fn dimension(&self) -> usize {
        self.world.skills * self.world.vocab as usize
    }

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
            move |rng: &mut Rng| {
                let u: f64 = rng.gen();
                let s = w.cdf.partition_point(|&c| c < u).min(w.skills - 1);
                std::iter::once(s as Token)
                    .chain((0..w.steps).map(|_| rng.gen_range(0..w.vocab)))
                    .collect()
            },
        )))
    }

    fn teacher(&self) -> &dyn Teacher {
        self
    }

    fn verifier(&self) -> &dyn Verifier {
        self
    }

    fn new_student(&self, _seed: u64) -> Box<dyn Student> {
        let w = &self.world;
        Box::new(SkillsStudent {
            world: Arc::clone(w),
            known: vec![vec![None; w.vocab as usize]; w.skills],
            confidence: self.confidence,
        })
    }
}

impl Teacher for SkillsTask {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        prompts
            .iter()
            .map(|p| self.world.truth(p).map_err(CoreError::Teacher))
            .collect()
    }
}

impl Verifier for SkillsTask {
    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
        prompts
            .iter()
            .zip(answers)
            .map(|(p, a)| self.world.truth(p).is_ok_and(|t| t.answer() == *a))
            .collect()
    }
}

/// The ERM student: the table entries its demonstrations revealed; an unknown entry is
/// guessed as 0 (greedy) or uniformly (sampling).
pub struct SkillsStudent {
    world: Arc<World>,
    known: Vec<Vec<Option<u32>>>,
    confidence: f64,
}

/// Batches at least this large are generated in parallel.
const PAR_MIN: usize = 512;

impl SkillsStudent {
    fn run(&self, p: &Prompt, mut pick: impl FnMut(Option<u32>) -> u32) -> Trace {
        match self.world.parse(p) {
            Ok((s, inputs)) => self.world.scan(inputs, |a| pick(self.known[s][a as usize])),
            Err(_) => Trace::new(Vec::new(), self.world.answer_len),
        }
    }
}

impl Policy for SkillsStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        let one = |p: &Prompt| self.run(p, |k| k.unwrap_or(0));
        if prompts.len() >= PAR_MIN {
            prompts.par_iter().map(one).collect()
        } else {
            prompts.iter().map(one).collect()
        }
    }

    /// Per step, a softmax with logit `confidence` on a known entry and 0 elsewhere, at
    /// `temperature`; an unknown entry is uniform.
    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        let v = self.world.vocab;
        let e = (self.confidence / temperature.max(1e-9)).exp();
        let p_known = e / (e + f64::from(v - 1));
        let base = stream_seed(seed, "skills/sample");
        let one = |(i, p): (usize, &Prompt)| {
            let mut rng = Rng::seed_from_u64(base.wrapping_add(i as u64));
            self.run(p, |k| match k {
                Some(x) if rng.gen::<f64>() < p_known => x,
                Some(x) => (x + rng.gen_range(1..v)) % v,
                None => rng.gen_range(0..v),
            })
        };
        if prompts.len() >= PAR_MIN {
            prompts.par_iter().enumerate().map(one).collect()
        } else {
            prompts.iter().enumerate().map(one).collect()
        }
    }
}

impl Student for SkillsStudent {
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        let mut stats = FitStats {
            consistent: true,
            ..FitStats::default()
        };
        let v = self.world.vocab;
        for d in new_demos {
            let (s, inputs) = self.world.parse(&d.prompt).map_err(CoreError::Student)?;
            if d.trace.steps.len() != inputs.len() {
                return Err(CoreError::Student(format!(
                    "demonstration for prompt {} has {} steps, expected {}",
                    d.prompt.id,
                    d.trace.steps.len(),
                    inputs.len()
                )));
            }
            let mut prev = 0u32;
            for (&a, &z) in inputs.iter().zip(&d.trace.steps) {
                if z >= v {
                    return Err(CoreError::Student(format!(
                        "demonstration token {z} is not < {v}"
                    )));
                }
                let value = (z + v - prev) % v;
                prev = z;
                stats.examples += 1;
                match &mut self.known[s][a as usize] {
                    slot @ None => {
                        *slot = Some(value);
                        stats.steps += 1;
                    }
                    Some(x) if *x != value => stats.consistent = false,
                    Some(_) => {}
                }
            }
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(extra: &[&str]) -> Box<dyn Task> {
        let p = Params::parse(extra)
            .unwrap()
            .resolve("skills", PARAMS)
            .unwrap();
        build(&p, 1).unwrap()
    }

    #[test]
    fn teacher_is_verified_and_students_learn_what_they_are_shown() {
        let t = task(&[]);
        let prompts = t.prompts("train", 3).unwrap().draw(2000).unwrap();
        let demos = t.teacher().demonstrate_batch(&prompts).unwrap();
        let answers: Vec<&[Token]> = demos.iter().map(Trace::answer).collect();
        assert!(t
            .verifier()
            .verify_batch(&prompts, &answers)
            .iter()
            .all(|&v| v));
        let wrong: Vec<Vec<Token>> = answers
            .iter()
            .map(|a| a.iter().map(|x| (x + 1) % 10).collect())
            .collect();
        let wrong: Vec<&[Token]> = wrong.iter().map(Vec::as_slice).collect();
        assert!(t
            .verifier()
            .verify_batch(&prompts, &wrong)
            .iter()
            .all(|&v| !v));

        let mut s = t.new_student(0);
        let untrained = s.generate_batch(&prompts);
        let ok = t.verifier().verify_batch(
            &prompts,
            &untrained.iter().map(Trace::answer).collect::<Vec<_>>(),
        );
        assert!(
            ok.iter().filter(|&&v| v).count() < 100,
            "an untrained student is almost always wrong"
        );
        let pairs: Vec<Demo> = prompts
            .iter()
            .cloned()
            .zip(demos)
            .map(|(prompt, trace)| Demo { prompt, trace })
            .collect();
        s.fit(&pairs).unwrap();
        let after = s.generate_batch(&prompts);
        let ok = t.verifier().verify_batch(
            &prompts,
            &after.iter().map(Trace::answer).collect::<Vec<_>>(),
        );
        assert!(
            ok.iter().all(|&v| v),
            "a student answers every prompt it was shown"
        );
        // Sampling is deterministic under a seed.
        assert_eq!(
            s.sample_batch(&prompts[..600], 1.0, 9),
            s.sample_batch(&prompts[..600], 1.0, 9)
        );
    }

    #[test]
    fn frequent_skills_are_drawn_more_often_and_bad_params_are_errors() {
        let t = task(&[]);
        let prompts = t.prompts("test", 1).unwrap().draw(10_000).unwrap();
        let count = |s: Token| prompts.iter().filter(|p| p.tokens[0] == s).count();
        assert!(count(0) > 5 * count(31).max(1));
        for bad in ["skills=0", "vocab=x", "answer_len=9"] {
            let p = Params::parse(&[bad])
                .unwrap()
                .resolve("skills", PARAMS)
                .unwrap();
            let e = build(&p, 0).err().expect("error").to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{e}");
        }
        let malformed = Prompt {
            id: 0,
            tokens: vec![99, 1],
        };
        assert!(t
            .teacher()
            .demonstrate_batch(std::slice::from_ref(&malformed))
            .is_err());
        assert_eq!(
            t.verifier().verify_batch(&[malformed], &[&[1, 2]]),
            vec![false]
        );
    }

    proptest::proptest! {
        #[test]
        fn traces_are_well_formed(skills in 1usize..8, vocab in 2u32..20, steps in 1usize..12, seed in 0u64..100) {
            let p = Params::parse(&[format!("skills={skills}"), format!("vocab={vocab}"), format!("steps={steps}"), "answer_len=1".into()])
                .unwrap().resolve("skills", PARAMS).unwrap();
            let t = build(&p, seed).unwrap();
            let prompts = t.prompts("train", seed).unwrap().draw(20).unwrap();
            let traces = t.teacher().demonstrate_batch(&prompts).unwrap();
            for tr in &traces {
                proptest::prop_assert_eq!(tr.steps.len(), steps);
                proptest::prop_assert!(tr.steps.iter().all(|&z| z < vocab));
            }
            let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
            proptest::prop_assert!(t.verifier().verify_batch(&prompts, &answers).iter().all(|&v| v));
        }
    }
}
