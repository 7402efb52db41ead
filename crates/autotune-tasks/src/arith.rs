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

use autotune_core::{CoreError, ParamSpec, Prompt, Result, Token, Trace};

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
/// ([`crate::training::TRAINING_PARAMS`]), the reference policy.
pub const PARAMS: &[ParamSpec] = &ParamSpec::concat::<
    { OWN_PARAMS.len() + crate::training::TRAINING_PARAMS.len() + REFERENCE_PARAMS.len() },
>(&[
    OWN_PARAMS,
    crate::training::TRAINING_PARAMS,
    REFERENCE_PARAMS,
]);

/// The smallest useful `arith`: one- and two-digit problems, a width-16 one-layer model. Tests
/// and smoke runs add their training settings to it.
pub const TINY: &[&str] = &[
    "max_digits=2",
    "mul_max_digits=1",
    "d_model=16",
    "layers=1",
    "heads=2",
];

#[cfg(feature = "neural")]
mod task;
#[cfg(feature = "neural")]
pub use task::{build, ArithTask};

/// Without the `neural` feature the task is listed but not built: its student is the neural one.
#[cfg(not(feature = "neural"))]
pub fn build(_: &autotune_core::Params, _: u64) -> Result<Box<dyn autotune_core::Task>> {
    Err(crate::neural_missing("task arith"))
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
    #[cfg(feature = "neural")] // builds the task, whose student is the neural one
    fn problems_are_read_back_from_their_text() {
        let params = autotune_core::Params::parse::<&str>(&[])
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
    #[cfg(feature = "neural")] // builds the task, whose student is the neural one
    fn prompts_are_sliced_by_the_digits_of_the_larger_operand() {
        let params = autotune_core::Params::parse::<&str>(&[])
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
