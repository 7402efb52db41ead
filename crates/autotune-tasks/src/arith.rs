//! `arith`: multi-digit addition, subtraction and multiplication, with a chain of thought that
//! spells the digit-by-digit work, for the neural student.
//!
//! Prompts are `BOS a op b SEP` (characters as tokens). The teacher's trace is the CoT, then
//! `ANS`, then the answer's characters and `EOS`; the answer (the verifier's part) is
//! everything after `ANS`. The CoT, least significant digit first:
//! - `a+b`: one step `x+y+c=s;` per column (`c` the carry in, `s` the column sum);
//! - `a-b`: if `a < b`, `neg;` and then `b-a`; one step `x-y-w=d,w';` per column (`w` the
//!   borrow in, `d` the digit, `w'` the borrow out);
//! - `a*b`: for each digit `y` of `b`, its partial product digit by digit, `x*y+c=v;` (`v`
//!   two digits: the digit written and the carry), closed by `p=P|`; then one step per column
//!   of the shifted partial products, `d1+d2+...+c=s;`.
//!
//! Operands have `n` digits with `P(n) ∝ n^-alpha` for `n` in `1..=max_digits`: easy
//! problems are common, hard ones rare (multiplication operands at most `mul_max_digits`, so
//! that its CoT stays within the model's context). The verifier parses the answer as an
//! integer and compares numbers; an unparseable answer is incorrect.

use autotune_core::{
    CoreError, ParamSpec, Params, Prompt, PromptSource, Result, Student, Task, Teacher, Token,
    Trace, Verifier,
};

use crate::source::map_batch;

/// Control tokens.
pub const PAD: Token = 0;
pub const BOS: Token = 1;
pub const EOS: Token = 2;
pub const SEP: Token = 3;
pub const ANS: Token = 4;
/// Characters of prompts, CoTs and answers; token `5 + i` is `CHARS[i]`.
pub const CHARS: &str = "0123456789+-*=;,|pneg";

/// Size of the vocabulary (control tokens and characters).
pub fn vocab_size() -> usize {
    5 + CHARS.chars().count()
}

/// Characters to tokens; `None` for a character outside the vocabulary.
pub fn encode(s: &str) -> Option<Vec<Token>> {
    s.chars()
        .map(|c| CHARS.chars().position(|x| x == c).map(|i| 5 + i as Token))
        .collect()
}

/// Tokens to characters (control tokens are dropped, unknown ones become `?`).
pub fn decode(t: &[Token]) -> String {
    t.iter()
        .filter(|&&x| x >= 5)
        .map(|&x| CHARS.chars().nth((x - 5) as usize).unwrap_or('?'))
        .collect()
}

/// The three operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
}

impl Op {
    fn symbol(self) -> char {
        match self {
            Op::Add => '+',
            Op::Sub => '-',
            Op::Mul => '*',
        }
    }
}

/// One problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Problem {
    pub a: u64,
    pub op: Op,
    pub b: u64,
}

impl Problem {
    pub fn answer(&self) -> i128 {
        let (a, b) = (self.a as i128, self.b as i128);
        match self.op {
            Op::Add => a + b,
            Op::Sub => a - b,
            Op::Mul => a * b,
        }
    }

    pub fn text(&self) -> String {
        format!("{}{}{}", self.a, self.op.symbol(), self.b)
    }

    /// Digits of the larger operand (the problem's difficulty).
    pub fn digits(&self) -> usize {
        digits(self.a).len().max(digits(self.b).len())
    }

    /// Reads `a op b`.
    pub fn parse(text: &str) -> Option<Problem> {
        let i = text.find(['+', '-', '*'])?;
        let op = match &text[i..=i] {
            "+" => Op::Add,
            "-" => Op::Sub,
            _ => Op::Mul,
        };
        Some(Problem {
            a: text[..i].parse().ok()?,
            op,
            b: text[i + 1..].parse().ok()?,
        })
    }
}

/// Digits, least significant first.
fn digits(mut x: u64) -> Vec<u64> {
    let mut d = Vec::new();
    loop {
        d.push(x % 10);
        x /= 10;
        if x == 0 {
            return d;
        }
    }
}

/// The chain of thought (without the answer).
pub fn cot(p: &Problem) -> String {
    let mut s = String::new();
    match p.op {
        Op::Add => add_steps(&digits(p.a), &digits(p.b), &mut s),
        Op::Sub => {
            let (a, b) = if p.a >= p.b {
                (p.a, p.b)
            } else {
                s += "neg;";
                (p.b, p.a)
            };
            let (da, db) = (digits(a), digits(b));
            let mut w = 0i64;
            for (i, &x) in da.iter().enumerate() {
                let (x, y) = (x as i64, *db.get(i).unwrap_or(&0) as i64);
                let mut d = x - y - w;
                let out = i64::from(d < 0);
                if d < 0 {
                    d += 10;
                }
                s += &format!("{x}-{y}-{w}={d},{out};");
                w = out;
            }
        }
        Op::Mul => {
            let (da, db) = (digits(p.a), digits(p.b));
            let mut partials: Vec<Vec<u64>> = Vec::new();
            for (j, &y) in db.iter().enumerate() {
                let mut c = 0;
                let mut prod = vec![0; j];
                for &x in &da {
                    let v = x * y + c;
                    s += &format!("{x}*{y}+{c}={v:02};");
                    prod.push(v % 10);
                    c = v / 10;
                }
                if c > 0 {
                    prod.push(c);
                }
                s += &format!("p={}|", p.a * y);
                partials.push(prod);
            }
            let width = partials.iter().map(Vec::len).max().unwrap_or(1);
            let mut c = 0;
            for k in 0..width {
                let col: Vec<u64> = partials.iter().map(|q| *q.get(k).unwrap_or(&0)).collect();
                let v = col.iter().sum::<u64>() + c;
                let terms = col.iter().map(u64::to_string).collect::<Vec<_>>().join("+");
                s += &format!("{terms}+{c}={v};");
                c = v / 10;
            }
            if c > 0 {
                s += &format!("{c};");
            }
        }
    }
    s
}

fn add_steps(da: &[u64], db: &[u64], s: &mut String) {
    let mut c = 0;
    for i in 0..da.len().max(db.len()) {
        let (x, y) = (*da.get(i).unwrap_or(&0), *db.get(i).unwrap_or(&0));
        let v = x + y + c;
        *s += &format!("{x}+{y}+{c}={v};");
        c = v / 10;
    }
}

/// The prompt's tokens.
pub fn prompt_tokens(p: &Problem) -> Vec<Token> {
    let mut t = vec![BOS];
    t.extend(encode(&p.text()).expect("problem text is in the vocabulary"));
    t.push(SEP);
    t
}

/// The teacher's trace: CoT, `ANS`, answer, `EOS`; the answer part is `answer EOS`.
pub fn teacher_trace(p: &Problem) -> Trace {
    let mut steps = encode(&cot(p)).expect("CoT text is in the vocabulary");
    steps.push(ANS);
    let ans = encode(&p.answer().to_string()).expect("answer is in the vocabulary");
    let n = ans.len() + 1;
    steps.extend(ans);
    steps.push(EOS);
    Trace::new(steps, n)
}

/// The problem of a prompt.
pub fn problem_of(prompt: &Prompt) -> Result<Problem> {
    let body: Vec<Token> = prompt
        .tokens
        .iter()
        .copied()
        .filter(|&t| t != BOS && t != SEP)
        .collect();
    Problem::parse(&decode(&body))
        .ok_or_else(|| CoreError::Input(format!("prompt {} is not an arith problem", prompt.id)))
}

/// The answer a trace's tail states: the number between `ANS` (or the start of the tail) and
/// `EOS`; `None` if it is not an integer.
pub fn parse_answer(answer: &[Token]) -> Option<i128> {
    let body: Vec<Token> = answer.iter().copied().take_while(|&t| t != EOS).collect();
    if body.iter().any(|&t| t < 5) {
        return None;
    }
    let s = decode(&body);
    if s.is_empty() || s.len() > 40 {
        return None;
    }
    s.parse().ok()
}

/// The verdicts: the stated answer equals the true one.
pub fn verify(prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
    prompts
        .iter()
        .zip(answers)
        .map(|(p, a)| match (problem_of(p), parse_answer(a)) {
            (Ok(pr), Some(v)) => pr.answer() == v,
            _ => false,
        })
        .collect()
}

/// Demonstrations for a batch (parallel for large batches).
pub fn demonstrate(prompts: &[Prompt]) -> Result<Vec<Trace>> {
    map_batch(prompts, |_, p| problem_of(p).map(|pr| teacher_trace(&pr)))
        .into_iter()
        .collect()
}

/// The prompt distribution's parameters.
#[derive(Clone, Debug)]
pub struct Distribution {
    pub max_digits: usize,
    pub mul_max_digits: usize,
    /// `P(n digits) ∝ n^-alpha`.
    pub alpha: f64,
    /// Probabilities of +, - and * (normalised).
    pub ops: [f64; 3],
}

impl Default for Distribution {
    fn default() -> Self {
        Self {
            max_digits: 8,
            mul_max_digits: 4,
            alpha: 2.0,
            ops: [0.4, 0.3, 0.3],
        }
    }
}

impl Distribution {
    fn digits(&self, rng: &mut impl rand::Rng, max: usize) -> usize {
        let w: Vec<f64> = (1..=max).map(|n| (n as f64).powf(-self.alpha)).collect();
        let total: f64 = w.iter().sum();
        let mut u = rng.gen::<f64>() * total;
        for (i, x) in w.iter().enumerate() {
            if u < *x {
                return i + 1;
            }
            u -= x;
        }
        max
    }

    fn number(&self, rng: &mut impl rand::Rng, n: usize) -> u64 {
        if n == 1 {
            return rng.gen_range(0..10);
        }
        rng.gen_range(10u64.pow(n as u32 - 1)..10u64.pow(n as u32))
    }

    /// One problem.
    pub fn sample(&self, rng: &mut impl rand::Rng) -> Problem {
        let total: f64 = self.ops.iter().sum();
        let u = rng.gen::<f64>() * total;
        let op = if u < self.ops[0] {
            Op::Add
        } else if u < self.ops[0] + self.ops[1] {
            Op::Sub
        } else {
            Op::Mul
        };
        let max = if op == Op::Mul {
            self.mul_max_digits
        } else {
            self.max_digits
        };
        let (na, nb) = (self.digits(rng, max), self.digits(rng, max));
        Problem {
            a: self.number(rng, na),
            op,
            b: self.number(rng, nb),
        }
    }
}

const OWN_PARAMS: &[ParamSpec] = &[
    ParamSpec {
        key: "max_digits",
        default: "8",
        help: "most digits of an operand of + and - (1..=18)",
    },
    ParamSpec {
        key: "mul_max_digits",
        default: "4",
        help: "most digits of an operand of * (1..=9)",
    },
    ParamSpec {
        key: "alpha",
        default: "2.0",
        help: "P(n digits) ~ n^-alpha: easy problems common, hard ones rare",
    },
    ParamSpec {
        key: "ops",
        default: "0.4,0.3,0.3",
        help: "probabilities of +, - and *",
    },
    ParamSpec {
        key: "d",
        default: "64",
        help: "dimension hint d for default phase sizes (ensemble m = d, cex batch d/8)",
    },
];

const REFERENCE_PARAMS: &[ParamSpec] = &[
    ParamSpec { key: "reference", default: "none", help: "reference policy pi_ref for RL (rft-uniform, autotune-rl, `autotune rl`): a student checkpoint (`autotune run --save-model FILE`) with this task's model; its weights only are used (the policy-gradient trainer starts from them with a fresh optimiser)" },
    ParamSpec { key: "ref_temperature", default: "1.0", help: "temperature pi_ref is sampled at" },
];

/// The task's parameters: its distribution, the neural student's model and training
/// ([`crate::neural::TRAINING_PARAMS`]), the reference policy.
pub const PARAMS: &[ParamSpec] =
    &ParamSpec::concat::<
        { OWN_PARAMS.len() + crate::neural::TRAINING_PARAMS.len() + REFERENCE_PARAMS.len() },
    >(&[OWN_PARAMS, crate::neural::TRAINING_PARAMS, REFERENCE_PARAMS]);

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

/// The smallest useful `arith`: one- and two-digit problems, a width-16 one-layer model. Tests
/// and smoke runs add their training settings to it.
pub const TINY: &[&str] = &[
    "max_digits=2",
    "mul_max_digits=1",
    "d_model=16",
    "layers=1",
    "heads=2",
];

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
mod tests {
    use super::*;
    use autotune_core::stream_rng;
    use proptest::prelude::*;

    fn check(p: Problem) {
        let t = teacher_trace(&p);
        let prompt = Prompt {
            id: 0,
            tokens: prompt_tokens(&p),
        };
        assert_eq!(problem_of(&prompt).unwrap(), p);
        assert_eq!(parse_answer(t.answer()), Some(p.answer()), "{p:?}");
        assert_eq!(verify(&[prompt], &[t.answer()]), vec![true], "{p:?}");
    }

    #[test]
    fn cots_spell_the_digit_work() {
        let p = |a, op, b| Problem { a, op, b };
        assert_eq!(cot(&p(47, Op::Add, 85)), "7+5+0=12;4+8+1=13;");
        assert_eq!(cot(&p(52, Op::Sub, 17)), "2-7-0=5,1;5-1-1=3,0;");
        assert_eq!(cot(&p(17, Op::Sub, 52)), "neg;2-7-0=5,1;5-1-1=3,0;");
        assert_eq!(
            cot(&p(34, Op::Mul, 12)),
            "4*2+0=08;3*2+0=06;p=68|4*1+0=04;3*1+0=03;p=34|8+0+0=8;6+4+0=10;0+3+1=4;"
        );
        for q in [
            p(47, Op::Add, 85),
            p(17, Op::Sub, 52),
            p(34, Op::Mul, 12),
            p(0, Op::Mul, 0),
        ] {
            check(q);
        }
        let t = teacher_trace(&p(17, Op::Sub, 52));
        assert_eq!(decode(t.answer()), "-35");
        assert_eq!(*t.steps.last().unwrap(), EOS);
    }

    #[test]
    fn answers_are_parsed_strictly() {
        let t = |s: &str| {
            let mut v = encode(s).unwrap();
            v.push(EOS);
            v
        };
        assert_eq!(parse_answer(&t("132")), Some(132));
        assert_eq!(parse_answer(&t("-35")), Some(-35));
        assert_eq!(parse_answer(&t("")), None);
        assert_eq!(parse_answer(&t("1+2")), None);
        assert_eq!(parse_answer(&[ANS, 5]), None);
    }

    #[test]
    fn problems_are_read_back_from_their_text() {
        let params = Params::parse::<&str>(&[])
            .unwrap()
            .resolve("arith", PARAMS)
            .unwrap();
        let task = build(&params, 0).unwrap();
        let p = Problem {
            a: 47,
            op: Op::Add,
            b: 85,
        };
        let want = prompt_tokens(&p);
        for text in ["47+85", " 47 + 85 ", "47+85 => ", "47+85="] {
            assert_eq!(task.tokenize(text).unwrap(), want, "{text}");
        }
        // What render writes of a prompt reads back.
        let prompt = Prompt {
            id: 0,
            tokens: want.clone(),
        };
        assert_eq!(task.tokenize(&task.describe(&prompt).text).unwrap(), want);
        assert_eq!(task.tokenize("1 9 12 15 13 10 3").unwrap(), want);
        for bad in ["", "hello", "47+", "+85", "047+85", "1 2 99"] {
            let e = task.tokenize(bad).unwrap_err().to_string();
            assert!(e.contains("not an arith problem"), "{bad}: {e}");
        }
    }

    #[test]
    fn easy_problems_are_common_and_hard_ones_rare() {
        let d = Distribution::default();
        let mut rng = stream_rng(3, "t");
        let n = 20_000;
        let mut by_digits = [0usize; 9];
        for _ in 0..n {
            let p = d.sample(&mut rng);
            by_digits[p.digits()] += 1;
            if p.op == Op::Mul {
                assert!(p.digits() <= d.mul_max_digits);
            }
        }
        // Monotone decreasing in the number of digits, with 8 digits still present.
        for k in 2..8 {
            assert!(by_digits[k] > by_digits[k + 1], "{by_digits:?}");
        }
        assert!(
            by_digits[8] > 0 && (by_digits[8] as f64) < 0.05 * n as f64,
            "{by_digits:?}"
        );
    }

    #[test]
    fn prompts_are_sliced_by_the_digits_of_the_larger_operand() {
        let params = Params::parse::<&str>(&[])
            .unwrap()
            .resolve("arith", PARAMS)
            .unwrap();
        let task = build(&params, 0).unwrap();
        let slice = |a, op, b| {
            let p = Prompt {
                id: 0,
                tokens: prompt_tokens(&Problem { a, op, b }),
            };
            task.slice(&p).unwrap()
        };
        assert_eq!(slice(5, Op::Mul, 6), "1 digit");
        assert_eq!(slice(123, Op::Add, 4), "3 digits");
        assert_eq!(slice(7, Op::Sub, 12_345_678), "8 digits");
        let junk = Prompt {
            id: 0,
            tokens: vec![BOS, SEP],
        };
        assert_eq!(task.slice(&junk), None);
    }

    proptest! {
        #[test]
        fn every_problem_gets_a_correct_demonstration(a in 0u64..100_000_000, b in 0u64..100_000_000, op in 0..3u8) {
            let op = [Op::Add, Op::Sub, Op::Mul][op as usize];
            check(Problem { a, op, b });
        }
    }
}

#[cfg(test)]
mod student_tests {
    use super::*;
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
