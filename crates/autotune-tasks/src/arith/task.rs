//! The `arith` task with its neural student (feature `neural`): the task value, its teacher,
//! verifier and reference policy.

use autotune_core::{
    CoreError, Params, Prompt, PromptSource, Result, Student, Task, Teacher, Token, Trace, Verifier,
};

use super::{
    decode, demonstrate, prompt_tokens, teacher_trace, verify, vocab_size, Distribution, Op,
    Problem, ANS, BOS, EOS, PAD, SEP,
};

/// The longest trace (and prompt) of the distribution, for the model's context.
fn max_lengths(d: &Distribution) -> (usize, usize) {
    let big = |n: usize| 10u64.pow(n as u32) - 1;
    let worst = [
        Problem {
            a: big(d.max_digits),
            op: Op::Add,
            b: big(d.max_digits),
        },
        Problem {
            a: 10u64.pow(d.max_digits as u32 - 1),
            op: Op::Sub,
            b: big(d.max_digits),
        },
        Problem {
            a: big(d.mul_max_digits),
            op: Op::Mul,
            b: big(d.mul_max_digits),
        },
    ];
    let prompt = worst
        .iter()
        .map(|p| prompt_tokens(p).len())
        .max()
        .unwrap_or(0);
    let trace = worst
        .iter()
        .map(|p| teacher_trace(p).len())
        .max()
        .unwrap_or(0);
    (prompt, trace)
}

/// The `arith` task: the problems above, the programmatic teacher, the exact verifier and the
/// neural student.
pub struct ArithTask {
    dist: Distribution,
    d: usize,
    student: crate::neural::NeuralStudentConfig,
    reference: Option<Reference>,
}

/// The reference policy: a saved student's weights, and the checkpoint text (a trainable copy
/// for the policy-gradient trainer is made from it).
struct Reference {
    policy: crate::neural::NeuralStudent,
    state: String,
    temperature: f64,
}

struct ArithTeacher;
impl Teacher for ArithTeacher {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        demonstrate(prompts)
    }
}

struct ArithVerifier;
impl Verifier for ArithVerifier {
    fn pure(&self) -> bool {
        true
    }

    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
        verify(prompts, answers)
    }
}

static TEACHER: ArithTeacher = ArithTeacher;
static VERIFIER: ArithVerifier = ArithVerifier;

pub fn build(p: &Params, seed: u64) -> Result<Box<dyn Task>> {
    let max_digits: usize = p.get_checked("max_digits", "an integer in 1..=18", |x: usize| {
        (1..=18).contains(&x)
    })?;
    let mul_max_digits: usize =
        p.get_checked("mul_max_digits", "an integer in 1..=9", |x: usize| {
            (1..=9).contains(&x)
        })?;
    let alpha: f64 = p.get_checked("alpha", "a number in [0, 10]", |x: f64| {
        (0.0..=10.0).contains(&x)
    })?;
    let ops_text = p.raw("ops").unwrap_or("0.4,0.3,0.3");
    let ops: Vec<f64> = ops_text
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .ok()
        .filter(|v: &Vec<f64>| {
            v.len() == 3 && v.iter().all(|x| *x >= 0.0) && v.iter().sum::<f64>() > 0.0
        })
        .ok_or_else(|| CoreError::BadParam {
            key: "ops".into(),
            value: ops_text.into(),
            expected: "three probabilities for +, - and *, e.g. 0.4,0.3,0.3".into(),
        })?;
    let d: usize = p.get_checked("d", "an integer in 1..=1048576", |x: usize| {
        (1..=1 << 20).contains(&x)
    })?;
    let training = crate::neural::TrainingParams::parse(p)?;
    let dist = Distribution {
        max_digits,
        mul_max_digits,
        alpha,
        ops: [ops[0], ops[1], ops[2]],
    };
    let (prompt_len, trace_len) = max_lengths(&dist);
    let model = autotune_neural::TransformerConfig {
        vocab: vocab_size(),
        ..training.model(vocab_size(), prompt_len + trace_len + 1)
    };
    let mut task = ArithTask {
        reference: None,
        dist,
        d,
        student: training.student(model, seed, PAD, (EOS, ANS), trace_len + 1),
    };
    match p.raw("reference") {
        None | Some("none") => {}
        Some(path) => {
            let temperature: f64 = p.get_checked("ref_temperature", "a number > 0", |t: f64| {
                t.is_finite() && t > 0.0
            })?;
            let text = std::fs::read_to_string(path).map_err(|e| {
                CoreError::Input(format!("reference checkpoint {path}: cannot read it ({e})"))
            })?;
            // A checkpoint of `autotune run --save-model` (the task and the student), or a
            // student's state as `Student::save` writes it.
            let state = if text.contains(crate::checkpoint::CHECKPOINT_FORMAT) {
                let c = crate::checkpoint::Checkpoint::parse(&text, path)?;
                if c.task != "arith" {
                    return Err(CoreError::Input(format!(
                        "reference checkpoint {path}: a student of task {}, not arith",
                        c.task
                    )));
                }
                c.student
            } else {
                text
            };
            let policy = crate::neural::NeuralStudent::from_weights(&task.student, &state)
                .map_err(|e| CoreError::Input(format!("reference checkpoint {path}: {e}")))?;
            task.reference = Some(Reference {
                policy,
                state,
                temperature,
            });
        }
    }
    if training.eval_every > 0 {
        // Validation prompts: the task's own split, never the training or test prompts.
        task.student.validation = crate::neural::Validation {
            prompts: task.prompts("val", seed)?.draw(training.val_prompts)?,
            verify: Some(verify),
        };
    }
    Ok(Box::new(task))
}

impl Task for ArithTask {
    fn student_samples(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "arith"
    }

    fn dimension(&self) -> usize {
        self.d
    }

    fn prompts(&self, split: &str, seed: u64) -> Result<Box<dyn PromptSource>> {
        let dist = self.dist.clone();
        Ok(Box::new(crate::GeneratorSource::new(
            seed,
            split,
            move |rng| prompt_tokens(&dist.sample(rng)),
        )))
    }

    fn teacher(&self) -> &dyn Teacher {
        &TEACHER
    }

    fn verifier(&self) -> &dyn Verifier {
        &VERIFIER
    }

    fn new_student(&self, seed: u64) -> Box<dyn Student> {
        let mut cfg = self.student.clone();
        cfg.trainer.seed = seed;
        Box::new(
            crate::neural::NeuralStudent::new(cfg)
                .expect("the arith model configuration was validated"),
        )
    }

    fn reference(&self) -> Option<(&dyn autotune_core::Policy, f64)> {
        self.reference
            .as_ref()
            .map(|r| (&r.policy as &dyn autotune_core::Policy, r.temperature))
    }

    fn reference_student(&self) -> Option<Result<Box<dyn Student>>> {
        self.reference.as_ref().map(|r| {
            crate::neural::NeuralStudent::from_weights(&self.student, &r.state)
                .map(|s| Box::new(s) as Box<dyn Student>)
        })
    }

    /// A neural student saved by [`Student::save`], which must have this task's model and
    /// training configuration.
    fn load_student(&self, state: &str) -> Result<Box<dyn Student>> {
        Ok(Box::new(crate::neural::NeuralStudent::load(
            &self.student,
            state,
        )?))
    }

    /// The digits of the larger operand: `1 digit`, `2 digits`, ...
    fn slice(&self, prompt: &Prompt) -> Option<String> {
        let p = Problem::parse(&decode(&prompt.tokens))?;
        let n = p.digits();
        Some(format!("{n} digit{}", if n == 1 { "" } else { "s" }))
    }

    /// A problem as text, e.g. `47+85` (spaces and a trailing `=>` or `=` are ignored), as
    /// `autotune serve-model` receives it; or the prompt's token numbers, space separated.
    fn tokenize(&self, text: &str) -> Result<Vec<Token>> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let body = compact
            .strip_suffix("=>")
            .or_else(|| compact.strip_suffix('='))
            .unwrap_or(&compact);
        if let Some(p) = Problem::parse(body).filter(|p| p.text() == body) {
            return Ok(prompt_tokens(&p));
        }
        text.split_whitespace()
            .map(|t| {
                t.parse::<Token>()
                    .ok()
                    .filter(|&t| (t as usize) < vocab_size())
            })
            .collect::<Option<Vec<_>>>()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                CoreError::Input(format!(
                    "`{text}` is not an arith problem: expected e.g. `47+85`, `17-52` or `34*12` \
                     (or the prompt's token numbers)"
                ))
            })
    }

    fn render(&self, tokens: &[Token]) -> String {
        tokens
            .iter()
            .map(|&t| match t {
                PAD => String::new(),
                BOS => String::new(),
                EOS => String::new(),
                SEP => " => ".into(),
                ANS => " answer ".into(),
                x => decode(&[x]),
            })
            .collect()
    }
}

#[cfg(test)]
mod student_tests {
    use super::*;
    use crate::arith::PARAMS;
    use autotune_core::Demo;

    /// A tiny transformer learns one-digit addition from the teacher's CoTs in seconds, and
    /// its answers are read and verified like the teacher's.
    #[test]
    fn the_neural_student_learns_small_additions() {
        let params = Params::parse(&[
            "max_digits=1",
            "ops=1,0,0",
            "d_model=32",
            "layers=2",
            "heads=2",
            "lr=0.003",
            "batch=32",
            "min_steps=600",
            "max_steps=600",
        ])
        .unwrap()
        .resolve("arith", PARAMS)
        .unwrap();
        let task = build(&params, 1).unwrap();
        let train = task.prompts("train", 1).unwrap().draw(256).unwrap();
        let traces = task.teacher().demonstrate_batch(&train).unwrap();
        let demos: Vec<Demo> = train
            .into_iter()
            .zip(traces)
            .map(|(prompt, trace)| Demo { prompt, trace })
            .collect();
        let mut s = task.new_student(1);
        let test = task.prompts("test", 1).unwrap().draw(100).unwrap();
        let accuracy = |s: &dyn Student| {
            let out = s.generate_batch(&test);
            let answers: Vec<&[Token]> = out.iter().map(|t| t.answer()).collect();
            task.verifier()
                .verify_batch(&test, &answers)
                .iter()
                .filter(|v| **v)
                .count() as f64
                / test.len() as f64
        };
        let before = accuracy(s.as_ref());
        let stats = s.fit(&demos).unwrap();
        assert_eq!(stats.steps, 600);
        let after = accuracy(s.as_ref());
        assert!(before < 0.2, "an untrained model should not add: {before}");
        assert!(after >= 0.8, "after 600 steps the accuracy is {after}");
    }
}
