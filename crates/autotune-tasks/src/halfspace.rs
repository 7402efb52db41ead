//! `halfspace-cot`: Joshi et al. (2025)'s autoregressive linear thresholds.
//!
//! A prompt is a bit string. Each CoT step appends the bit `1[w* . v >= theta*]`, where `v` is
//! the last `window` bits of prompt-and-CoT so far; the answer is the last `answer_bits` bits.
//! The student class is the time-invariant halfspace on the window, iterated `steps` times:
//! dimension `d = window + 1`. With CoT supervision every step is a labelled example, so the
//! sample complexity does not grow with the number of steps.
//!
//! The target has Gaussian weights, so margins have a continuous law: no finite sample pins the
//! target down, and a consistent learner's error keeps falling like `d/n` (the regime of the
//! `d/eps` lower bound for non-adaptive SFT). The student is an exact ERM: the hard-margin SVM
//! on every distinct window it was shown, solved by constraint generation with the Clarabel QP
//! solver (always consistent on noise-free data).

use std::collections::HashMap;
use std::sync::Arc;

use autotune_core::{
    stream_rng, CoreError, Demo, FitStats, ParamSpec, Params, Policy, Prompt, PromptSource, Result,
    Rng, Student, Task, Teacher, Token, Trace, Verifier,
};
use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};

use crate::source::map_batch;
use crate::GeneratorSource;

/// Parameters of `halfspace-cot`.
pub const PARAMS: &[ParamSpec] = &[
    ParamSpec { key: "window", default: "32", help: "bits the next-step rule sees (d = window + 1), 1..=63" },
    ParamSpec { key: "prompt_bits", default: "auto", help: "bits in a prompt (auto: window)" },
    ParamSpec { key: "steps", default: "16", help: "CoT steps T (>= answer_bits)" },
    ParamSpec { key: "answer_bits", default: "8", help: "the answer is the last answer_bits CoT bits" },
    ParamSpec {
        key: "dist",
        default: "rare-hard",
        help: "prompt distribution: uniform (fair bits) | sparse (bits are 1 w.p. density) | rare-hard (mass 1-hard_frac on a few prototype prompts with rare bit flips, hard_frac on uniform prompts)",
    },
    ParamSpec { key: "hard_frac", default: "0.05", help: "rare-hard: mass of uniform (informative) prompts" },
    ParamSpec { key: "prototypes", default: "4", help: "rare-hard: number of easy prototype prompts" },
    ParamSpec { key: "flip", default: "0.03", help: "rare-hard: bit-flip probability around a prototype" },
    ParamSpec { key: "density", default: "0.1", help: "sparse: probability of a 1 bit" },
    ParamSpec { key: "logit_scale", default: "8.0", help: "student sampling: logit = logit_scale * geometric margin / temperature" },
    ParamSpec {
        key: "kappa",
        default: "none",
        help: "reference policy pi_ref for RL strategies (also `--kappa K`): on prompt x it samples the correct CoT with probability 1/kappa_x, else a plausible wrong one (one step flipped, the rest of the rule followed); none: no pi_ref",
    },
    ParamSpec {
        key: "kappa_spread",
        default: "1",
        help: "heterogeneous coverage: kappa_x is log-uniform in [kappa/S, kappa*S] (clamped at 1), fixed per prompt by a hash of its bits; 1: kappa_x = kappa everywhere",
    },
];

#[derive(Clone, Debug)]
enum Dist {
    Uniform,
    Sparse {
        density: f64,
    },
    RareHard {
        hard_frac: f64,
        prototypes: Vec<u64>,
        flip: f64,
    },
}

/// Shape of the CoT, shared by teacher, verifier and student.
#[derive(Clone, Copy, Debug)]
struct Shape {
    window: usize,
    prompt_bits: usize,
    steps: usize,
    answer_bits: usize,
}

impl Shape {
    fn mask(&self) -> u64 {
        (1u64 << self.window) - 1
    }

    /// The window after reading the prompt (older bits shifted out), or an error message.
    fn start(&self, prompt: &Prompt) -> std::result::Result<u64, String> {
        if prompt.tokens.len() != self.prompt_bits {
            return Err(format!(
                "prompt {} has {} tokens, expected {} bits",
                prompt.id,
                prompt.tokens.len(),
                self.prompt_bits
            ));
        }
        let mut v = 0u64;
        for &t in &prompt.tokens {
            if t > 1 {
                return Err(format!(
                    "prompt {} has token {t}, expected bits 0/1",
                    prompt.id
                ));
            }
            v = ((v << 1) | u64::from(t)) & self.mask();
        }
        Ok(v)
    }

    /// Runs `next` for `steps` steps from the prompt's window; returns the CoT bits.
    fn roll(&self, mut v: u64, mut next: impl FnMut(u64) -> bool) -> Vec<Token> {
        let mut out = Vec::with_capacity(self.steps);
        for _ in 0..self.steps {
            let b = next(v);
            out.push(Token::from(b));
            v = ((v << 1) | u64::from(b)) & self.mask();
        }
        out
    }
}

/// Sum of `w[j]` over the set bits `j` of `v`.
#[inline]
fn dot(w: &[f64], mut v: u64) -> f64 {
    let mut s = 0.0;
    while v != 0 {
        s += w[v.trailing_zeros() as usize];
        v &= v - 1;
    }
    s
}

/// The target rule `1[w* . v >= theta*]`.
struct Target {
    shape: Shape,
    w: Vec<f64>,
    theta: f64,
}

impl Target {
    fn bit(&self, v: u64) -> bool {
        dot(&self.w, v) >= self.theta
    }

    fn cot(&self, prompt: &Prompt) -> std::result::Result<Trace, String> {
        let v = self.shape.start(prompt)?;
        Ok(Trace::new(
            self.shape.roll(v, |v| self.bit(v)),
            self.shape.answer_bits,
        ))
    }
}

/// The `halfspace-cot` task instance.
pub struct HalfspaceTask {
    target: Arc<Target>,
    dist: Arc<Dist>,
    logit_scale: f64,
    reference: Option<Reference>,
}

/// The reference policy `pi_ref` with known coverage: on prompt `x` it samples the target's CoT
/// with probability `1/kappa_x`, and otherwise a plausible wrong one: the rule followed except
/// at one step, where the bit is flipped and the rule goes on from the wrong window (a slip
/// that propagates). A wrong CoT whose answer happens to come out right gets its last answer
/// bit flipped, so the coverage is exactly `1/kappa_x`. The temperature is ignored: the
/// coverage is what the task is configured with.
struct Reference {
    target: Arc<Target>,
    kappa: f64,
    /// `ln S`: `ln kappa_x` is uniform in `[ln kappa - ln S, ln kappa + ln S]`.
    log_spread: f64,
    salt: u64,
}

impl Reference {
    /// `kappa_x`, fixed per prompt by a hash of its bits.
    fn kappa_of(&self, prompt: &Prompt) -> f64 {
        if self.log_spread == 0.0 {
            return self.kappa.max(1.0);
        }
        let mut h = self.salt ^ 0x9E37_79B9_7F4A_7C15;
        for &t in &prompt.tokens {
            h = (h ^ u64::from(t)).wrapping_mul(0x100_0000_01B3);
            h ^= h >> 29;
        }
        let u = (autotune_core::stream_seed(h, "kappa") >> 11) as f64 / (1u64 << 53) as f64;
        (self.kappa.ln() + self.log_spread * (2.0 * u - 1.0))
            .exp()
            .max(1.0)
    }

    fn sample(&self, prompt: &Prompt, rng: &mut Rng) -> Trace {
        let shape = self.target.shape;
        let Ok(v) = shape.start(prompt) else {
            return Trace::new(Vec::new(), shape.answer_bits);
        };
        if rng.gen::<f64>() < 1.0 / self.kappa_of(prompt) {
            return Trace::new(shape.roll(v, |v| self.target.bit(v)), shape.answer_bits);
        }
        let slip = rng.gen_range(0..shape.steps);
        Trace::new(self.slipped(v, slip), shape.answer_bits)
    }

    /// The wrong CoT with a slip at step `slip` from window `v` (its answer made wrong).
    fn slipped(&self, v: u64, slip: usize) -> Vec<Token> {
        let shape = self.target.shape;
        let mut step = 0;
        let mut steps = shape.roll(v, |v| {
            let b = self.target.bit(v) ^ (step == slip);
            step += 1;
            b
        });
        let right = shape.roll(v, |v| self.target.bit(v));
        if steps[shape.steps - shape.answer_bits..] == right[shape.steps - shape.answer_bits..] {
            let last = steps.len() - 1;
            steps[last] ^= 1;
        }
        steps
    }

    /// `ln pi_ref(trace | prompt)`, exactly: the right CoT has probability `1/kappa_x`; each of
    /// the `steps` slipped CoTs (all distinct: the first step where one leaves the right CoT is
    /// its slip) has `(1 - 1/kappa_x) / steps`; anything else has probability 0.
    fn log_prob(&self, prompt: &Prompt, trace: &Trace) -> f64 {
        let shape = self.target.shape;
        let Ok(v) = shape.start(prompt) else {
            return f64::NEG_INFINITY;
        };
        let p_right = 1.0 / self.kappa_of(prompt);
        let right = shape.roll(v, |v| self.target.bit(v));
        if trace.steps == right {
            return p_right.ln();
        }
        let Some(slip) = trace.steps.iter().zip(&right).position(|(a, b)| a != b) else {
            return f64::NEG_INFINITY;
        };
        if trace.steps.len() == shape.steps && self.slipped(v, slip) == trace.steps {
            ((1.0 - p_right) / shape.steps as f64).ln()
        } else {
            f64::NEG_INFINITY
        }
    }
}

impl Policy for Reference {
    /// The most likely CoT is the wrong one for `kappa_x > 2`, which has no single mode; a
    /// greedy call is a sample from a fixed stream.
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        self.sample_batch(prompts, 1.0, 0)
    }

    fn sample_batch(&self, prompts: &[Prompt], _temperature: f64, seed: u64) -> Vec<Trace> {
        map_batch(prompts, |i, p| {
            let mut rng = Rng::seed_from_u64(seed.wrapping_add(i as u64));
            self.sample(p, &mut rng)
        })
    }

    fn log_probs(
        &self,
        prompts: &[Prompt],
        traces: &[Trace],
        _temperature: f64,
    ) -> Option<Vec<f64>> {
        Some(
            prompts
                .iter()
                .zip(traces)
                .map(|(p, t)| self.log_prob(p, t))
                .collect(),
        )
    }

    /// `C_seq = max_x kappa_x = kappa * spread`.
    fn coverage(&self) -> Option<f64> {
        Some((self.kappa.ln() + self.log_spread).exp().max(1.0))
    }
}

/// Builds the task for `seed` from resolved parameters.
pub fn build(p: &Params, seed: u64) -> Result<Box<dyn Task>> {
    let window: usize = p.get_checked("window", "an integer in 1..=63", |w: usize| {
        (1..=63).contains(&w)
    })?;
    let prompt_bits = if p.raw("prompt_bits") == Some("auto") {
        window
    } else {
        p.get_checked(
            "prompt_bits",
            "an integer in 1..=4096 or auto",
            |b: usize| (1..=4096).contains(&b),
        )?
    };
    let answer_bits: usize = p.get_checked("answer_bits", "an integer >= 1", |b: usize| b >= 1)?;
    let steps: usize = p.get_checked("steps", "an integer in answer_bits..=4096", |s: usize| {
        s >= answer_bits && s <= 4096
    })?;
    let logit_scale: f64 = p.get_checked("logit_scale", "a number > 0", |s: f64| s > 0.0)?;
    let prob = |key: &str| {
        p.get_checked(key, "a probability in [0, 1]", |x: f64| {
            (0.0..=1.0).contains(&x)
        })
    };
    let shape = Shape {
        window,
        prompt_bits,
        steps,
        answer_bits,
    };

    let mut rng = stream_rng(seed, "halfspace/target");
    // Standard normal weights (Box-Muller); theta* = sum(w*)/2, the mean of w* . v under fair
    // bits, so about half the uniform windows are above it.
    let w: Vec<f64> = (0..window)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(f64::MIN_POSITIVE), rng.gen());
            (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        })
        .collect();
    let theta = w.iter().sum::<f64>() / 2.0;
    let target = Arc::new(Target { shape, w, theta });
    let reference = match p.raw("kappa") {
        None | Some("none") => None,
        Some(_) => {
            let kappa: f64 = p.get_checked("kappa", "a number >= 1 or none", |k: f64| {
                k.is_finite() && k >= 1.0
            })?;
            let spread: f64 = p.get_checked("kappa_spread", "a number >= 1", |s: f64| {
                s.is_finite() && s >= 1.0
            })?;
            Some(Reference {
                target: Arc::clone(&target),
                kappa,
                log_spread: spread.ln(),
                salt: stream_rng(seed, "halfspace/kappa").gen(),
            })
        }
    };

    let dist = match p.raw("dist").unwrap_or_default() {
        "uniform" => Dist::Uniform,
        "sparse" => Dist::Sparse {
            density: prob("density")?,
        },
        "rare-hard" => {
            let k: usize =
                p.get_checked("prototypes", "an integer in 1..=1000000", |k: usize| {
                    (1..=1_000_000).contains(&k)
                })?;
            let mut prng = stream_rng(seed, "halfspace/prototypes");
            let prototypes = (0..k).map(|_| prng.gen::<u64>()).collect();
            Dist::RareHard {
                hard_frac: prob("hard_frac")?,
                prototypes,
                flip: prob("flip")?,
            }
        }
        other => {
            return Err(CoreError::BadParam {
                key: "dist".into(),
                value: other.into(),
                expected: "uniform, sparse or rare-hard".into(),
            })
        }
    };
    Ok(Box::new(HalfspaceTask {
        target,
        dist: Arc::new(dist),
        logit_scale,
        reference,
    }))
}

fn sample_prompt(dist: &Dist, bits: usize, rng: &mut Rng) -> Vec<Token> {
    match dist {
        Dist::Uniform => (0..bits).map(|_| Token::from(rng.gen::<bool>())).collect(),
        Dist::Sparse { density } => (0..bits)
            .map(|_| Token::from(rng.gen_bool(*density)))
            .collect(),
        Dist::RareHard {
            hard_frac,
            prototypes,
            flip,
        } => {
            if rng.gen_bool(*hard_frac) {
                return sample_prompt(&Dist::Uniform, bits, rng);
            }
            let p = prototypes[rng.gen_range(0..prototypes.len())];
            (0..bits)
                .map(|i| {
                    let b = (p >> (i % 64)) & 1 == 1;
                    Token::from(b ^ rng.gen_bool(*flip))
                })
                .collect()
        }
    }
}

impl Task for HalfspaceTask {
    fn student_samples(&self) -> bool {
        true
    }

    fn name(&self) -> &str {
        "halfspace-cot"
    }

    fn dimension(&self) -> usize {
        self.target.shape.window + 1
    }

    fn prompts(&self, split: &str, seed: u64) -> Result<Box<dyn PromptSource>> {
        if split != "train" && split != "test" {
            return Err(CoreError::Invalid(format!(
                "unknown split `{split}`; expected train or test"
            )));
        }
        let dist = Arc::clone(&self.dist);
        let bits = self.target.shape.prompt_bits;
        Ok(Box::new(GeneratorSource::new(
            seed,
            split,
            move |rng: &mut Rng| sample_prompt(&dist, bits, rng),
        )))
    }

    fn teacher(&self) -> &dyn Teacher {
        self
    }

    fn verifier(&self) -> &dyn Verifier {
        self
    }

    fn reference(&self) -> Option<(&dyn Policy, f64)> {
        self.reference.as_ref().map(|r| (r as &dyn Policy, 1.0))
    }

    fn new_student(&self, seed: u64) -> Box<dyn Student> {
        Box::new(HalfspaceStudent::new(
            self.target.shape,
            self.logit_scale,
            seed,
        ))
    }
}

impl Teacher for HalfspaceTask {
    fn demonstrate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        prompts
            .iter()
            .map(|p| self.target.cot(p).map_err(CoreError::Teacher))
            .collect()
    }
}

impl Verifier for HalfspaceTask {
    fn pure(&self) -> bool {
        true
    }

    fn verify_batch(&self, prompts: &[Prompt], answers: &[&[Token]]) -> Vec<bool> {
        prompts
            .iter()
            .zip(answers)
            .map(|(p, a)| match self.target.cot(p) {
                Ok(t) => t.answer() == *a,
                Err(_) => false,
            })
            .collect()
    }
}

/// The ERM student: the hard-margin SVM (minimum-norm separator with margin 1) on every
/// distinct window of its demonstrations, the label of each CoT step. Consistent with all of
/// them whenever they are separable, which noise-free teacher data always are.
///
/// Solved by constraint generation: the QP on a working set of windows, then the windows that
/// violate the margin are added, until none does; the support windows seed the next fit, so
/// continued training is incremental.
pub struct HalfspaceStudent {
    shape: Shape,
    logit_scale: f64,
    /// Weights on the window bits.
    w: Vec<f64>,
    b: f64,
    examples: Vec<(u64, bool)>,
    /// Label of every distinct window seen (the data are noise-free: one label per window).
    seen: HashMap<u64, bool>,
    /// Indices of the windows in the last working set whose margin constraint is active.
    support: Vec<usize>,
    conflicts: u64,
    rng: Rng,
}

/// Working-set windows per constraint-generation round, at most.
const ADD_PER_ROUND: usize = 512;
/// Margin violations below this are numerical noise of the interior-point solver.
const TOL: f64 = 1e-6;

impl HalfspaceStudent {
    fn new(shape: Shape, logit_scale: f64, seed: u64) -> Self {
        Self {
            shape,
            logit_scale,
            w: vec![0.0; shape.window],
            b: 0.0,
            examples: Vec::new(),
            seen: HashMap::new(),
            support: Vec::new(),
            conflicts: 0,
            rng: Rng::seed_from_u64(seed),
        }
    }

    #[inline]
    fn score(&self, v: u64) -> f64 {
        dot(&self.w, v) + self.b
    }

    fn greedy(&self, prompt: &Prompt) -> Trace {
        match self.shape.start(prompt) {
            Ok(v) => Trace::new(
                self.shape.roll(v, |v| self.score(v) > 0.0),
                self.shape.answer_bits,
            ),
            Err(_) => Trace::new(Vec::new(), self.shape.answer_bits),
        }
    }

    fn sampled(&self, prompt: &Prompt, temperature: f64, rng: &mut Rng) -> Trace {
        let norm = self.w.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        let k = self.logit_scale / (norm * temperature);
        match self.shape.start(prompt) {
            Ok(v) => Trace::new(
                self.shape.roll(v, |v| {
                    let logit = self.score(v) * k;
                    rng.gen::<f64>() < 1.0 / (1.0 + (-logit).exp())
                }),
                self.shape.answer_bits,
            ),
            Err(_) => Trace::new(Vec::new(), self.shape.answer_bits),
        }
    }

    /// `y (w . v + b)` of example `i`.
    fn margin(&self, i: usize) -> f64 {
        let (v, y) = self.examples[i];
        let s = self.score(v);
        if y {
            s
        } else {
            -s
        }
    }

    /// Solves the hard-margin SVM on the working set `ws`; `None` if infeasible or failed.
    fn solve_qp(&self, ws: &[usize]) -> Option<(Vec<f64>, f64)> {
        use clarabel::algebra::CscMatrix;
        use clarabel::solver::{
            DefaultSettingsBuilder, DefaultSolver, IPSolver, NonnegativeConeT, SolverStatus,
        };
        let n = self.shape.window + 1;
        let m = ws.len();
        // P = diag(1, .., 1, 0): the bias is not regularised.
        let p = CscMatrix::new(
            n,
            n,
            (0..=n).map(|j| j.min(n - 1)).collect(),
            (0..n - 1).collect(),
            vec![1.0; n - 1],
        );
        // Row r: -y (x, 1) . (w, b) <= -1, i.e. y (w . x + b) >= 1.
        let mut colptr = Vec::with_capacity(n + 1);
        let mut rowval = Vec::new();
        let mut nzval = Vec::new();
        colptr.push(0);
        for j in 0..n {
            for (r, &i) in ws.iter().enumerate() {
                let (v, y) = self.examples[i];
                if j == n - 1 || (v >> j) & 1 == 1 {
                    rowval.push(r);
                    nzval.push(if y { -1.0 } else { 1.0 });
                }
            }
            colptr.push(rowval.len());
        }
        let a = CscMatrix::new(m, n, colptr, rowval, nzval);
        let q = vec![0.0; n];
        let bvec = vec![-1.0; m];
        let cones = [NonnegativeConeT(m)];
        let settings = DefaultSettingsBuilder::default()
            .verbose(false)
            .build()
            .ok()?;
        let mut solver = DefaultSolver::new(&p, &q, &a, &bvec, &cones, settings).ok()?;
        solver.solve();
        match solver.solution.status {
            SolverStatus::Solved | SolverStatus::AlmostSolved => {
                let x = &solver.solution.x;
                Some((x[..n - 1].to_vec(), x[n - 1]))
            }
            _ => None,
        }
    }

    /// Constraint generation to the SVM on all examples. Returns (rounds, consistent).
    fn train(&mut self, new_from: usize) -> (u64, bool) {
        let total = self.examples.len();
        if total == 0 {
            return (0, true);
        }
        let mut in_ws = vec![false; total];
        let mut ws: Vec<usize> = Vec::new();
        fn push(i: usize, ws: &mut Vec<usize>, in_ws: &mut [bool]) {
            if !in_ws[i] {
                in_ws[i] = true;
                ws.push(i);
            }
        }
        for &i in &self.support {
            push(i, &mut ws, &mut in_ws);
        }
        // New windows first (they are the likely violators), then a random sample of the rest.
        let mut fresh: Vec<usize> = (new_from..total).collect();
        fresh.shuffle(&mut self.rng);
        for &i in fresh.iter().take(ADD_PER_ROUND) {
            push(i, &mut ws, &mut in_ws);
        }
        let mut rounds = 0u64;
        loop {
            rounds += 1;
            let Some((w, b)) = self.solve_qp(&ws) else {
                return (rounds, false);
            };
            self.w = w;
            self.b = b;
            let mut viol: Vec<(f64, usize)> = (0..total)
                .filter(|&i| !in_ws[i])
                .filter_map(|i| {
                    let m = self.margin(i);
                    (m < 1.0 - TOL).then_some((m, i))
                })
                .collect();
            if viol.is_empty() || rounds >= 200 {
                self.support = ws
                    .iter()
                    .copied()
                    .filter(|&i| self.margin(i) < 1.0 + 1e-4)
                    .collect();
                let consistent = (0..total).all(|i| self.margin(i) > 0.0);
                return (rounds, consistent && viol.is_empty());
            }
            viol.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &(_, i) in viol.iter().take(ADD_PER_ROUND) {
                push(i, &mut ws, &mut in_ws);
            }
        }
    }
}

impl Policy for HalfspaceStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        map_batch(prompts, |_, p| self.greedy(p))
    }

    fn sample_batch(&self, prompts: &[Prompt], temperature: f64, seed: u64) -> Vec<Trace> {
        map_batch(prompts, |i, p| {
            let mut rng = Rng::seed_from_u64(seed.wrapping_add(i as u64));
            self.sampled(p, temperature, &mut rng)
        })
    }
}

impl Student for HalfspaceStudent {
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        let new_from = self.examples.len();
        let mut processed = 0u64;
        for d in new_demos {
            let mut v = self.shape.start(&d.prompt).map_err(CoreError::Student)?;
            if d.trace.steps.len() != self.shape.steps {
                return Err(CoreError::Student(format!(
                    "demonstration for prompt {} has {} steps, expected {}",
                    d.prompt.id,
                    d.trace.steps.len(),
                    self.shape.steps
                )));
            }
            for &t in &d.trace.steps {
                if t > 1 {
                    return Err(CoreError::Student(format!(
                        "demonstration for prompt {} has token {t}, expected bits",
                        d.prompt.id
                    )));
                }
                let y = t == 1;
                processed += 1;
                match self.seen.get(&v) {
                    None => {
                        self.seen.insert(v, y);
                        self.examples.push((v, y));
                    }
                    Some(&z) if z != y => self.conflicts += 1,
                    Some(_) => {}
                }
                v = ((v << 1) | u64::from(y)) & self.shape.mask();
            }
        }
        if self.examples.len() == new_from && !self.examples.is_empty() {
            // Nothing new: the current separator is still the ERM.
            return Ok(FitStats {
                steps: 0,
                examples: processed,
                consistent: self.conflicts == 0,
                validation_generations: 0,
            });
        }
        let (rounds, consistent) = self.train(new_from);
        Ok(FitStats {
            steps: rounds,
            examples: processed,
            consistent: consistent && self.conflicts == 0,
            validation_generations: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(extra: &[&str]) -> Box<dyn Task> {
        let p = Params::parse(extra)
            .unwrap()
            .resolve("halfspace-cot", PARAMS)
            .unwrap();
        build(&p, 5).unwrap()
    }

    #[test]
    fn the_reference_reports_exact_sequence_probabilities() {
        let t = task(&[
            "kappa=8",
            "kappa_spread=2",
            "window=12",
            "steps=10",
            "answer_bits=4",
        ]);
        let r = t.reference().unwrap().0;
        let prompts = t.prompts("train", 3).unwrap().draw(20).unwrap();
        assert!(
            (r.coverage().unwrap() - 16.0).abs() < 1e-9,
            "{:?}",
            r.coverage()
        );
        for p in &prompts {
            // Sample enough to see the support; the distinct samples' probabilities sum to 1.
            let many: Vec<Prompt> = vec![p.clone(); 4000];
            let traces = r.sample_batch(&many, 1.0, 11);
            let mut distinct: Vec<Trace> = Vec::new();
            for tr in traces {
                if !distinct.iter().any(|d| d.steps == tr.steps) {
                    distinct.push(tr);
                }
            }
            let ps = vec![p.clone(); distinct.len()];
            let lp = r.log_probs(&ps, &distinct, 1.0).unwrap();
            assert!(lp.iter().all(|l| l.is_finite()));
            let total: f64 = lp.iter().map(|l| l.exp()).sum();
            assert!((total - 1.0).abs() < 1e-9, "support mass {total}");
            // The right CoT has probability >= 1/C_seq.
            let right = t
                .teacher()
                .demonstrate_batch(std::slice::from_ref(p))
                .unwrap();
            let l = r.log_probs(std::slice::from_ref(p), &right, 1.0).unwrap()[0];
            assert!(l >= -(16f64.ln()) - 1e-12);
        }
        // A trace off the support (the right CoT with one step too many) has probability 0.
        let mut odd = t
            .teacher()
            .demonstrate_batch(&prompts[..1])
            .unwrap()
            .remove(0);
        odd.steps.push(odd.steps[0]);
        let l = r
            .log_probs(&prompts[..1], std::slice::from_ref(&odd), 1.0)
            .unwrap()[0];
        assert_eq!(l, f64::NEG_INFINITY);
    }

    #[test]
    fn the_svm_student_is_consistent_with_every_demonstration() {
        for dist in ["uniform", "sparse", "rare-hard"] {
            let t = task(&[&format!("dist={dist}"), "window=16"]);
            let prompts = t.prompts("train", 1).unwrap().draw(300).unwrap();
            let traces = t.teacher().demonstrate_batch(&prompts).unwrap();
            let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
            assert!(t
                .verifier()
                .verify_batch(&prompts, &answers)
                .iter()
                .all(|&v| v));
            let demos: Vec<Demo> = prompts
                .iter()
                .cloned()
                .zip(traces.clone())
                .map(|(prompt, trace)| Demo { prompt, trace })
                .collect();
            let mut s = t.new_student(0);
            // Continued training in two halves ends at an exact ERM on all of it.
            s.fit(&demos[..150]).unwrap();
            let stats = s.fit(&demos[150..]).unwrap();
            assert!(stats.consistent, "{dist}");
            assert_eq!(
                s.generate_batch(&prompts),
                traces,
                "{dist}: every shown CoT reproduced"
            );
        }
    }

    /// The empirical coverage of pi_ref matches 1/kappa, per prompt and on average; wrong
    /// samples are verifier-rejected and differ from the right CoT in a plausible way.
    #[test]
    fn the_reference_policy_has_the_coverage_it_is_configured_with() {
        assert!(task(&[]).reference().is_none());
        let t = task(&["kappa=8", "window=16"]);
        let (pi, _) = t.reference().expect("a reference policy");
        let prompts = t.prompts("train", 3).unwrap().draw(40).unwrap();
        let right = t.teacher().demonstrate_batch(&prompts).unwrap();
        let mut hits = 0usize;
        let rounds = 400;
        for r in 0..rounds {
            let traces = pi.sample_batch(&prompts, 1.0, 1000 * r);
            let answers: Vec<&[Token]> = traces.iter().map(Trace::answer).collect();
            for ((v, tr), ok) in t
                .verifier()
                .verify_batch(&prompts, &answers)
                .into_iter()
                .zip(&traces)
                .zip(&right)
            {
                assert_eq!(v, tr == ok, "accepted iff the CoT is the right one");
                assert_eq!(tr.steps.len(), ok.steps.len());
                hits += usize::from(v);
            }
        }
        let rate = hits as f64 / (rounds as usize * prompts.len()) as f64;
        // 16,000 draws at p = 1/8: sd 0.0026.
        assert!((rate - 0.125).abs() < 0.012, "coverage {rate}");
        // Heterogeneous: per-prompt kappa spreads over [kappa/S, kappa*S], the same for the
        // same prompt.
        let t = task(&["kappa=16", "kappa_spread=4", "window=16"]);
        let (pi, _) = t.reference().unwrap();
        let a = pi.sample_batch(&prompts, 1.0, 7);
        assert_eq!(
            a,
            pi.sample_batch(&prompts, 1.0, 7),
            "deterministic under the seed"
        );
        let shape = Shape {
            window: 16,
            prompt_bits: 16,
            steps: 16,
            answer_bits: 8,
        };
        let r = Reference {
            target: Arc::new(Target {
                shape,
                w: vec![1.0; 16],
                theta: 8.0,
            }),
            kappa: 16.0,
            log_spread: 4f64.ln(),
            salt: 3,
        };
        let mut rng = Rng::seed_from_u64(1);
        let ks: Vec<f64> = (0..2000)
            .map(|i| {
                r.kappa_of(&Prompt {
                    id: i,
                    tokens: sample_prompt(&Dist::Uniform, 16, &mut rng),
                })
            })
            .collect();
        assert!(ks.iter().all(|k| (4.0 - 1e-9..=64.0 + 1e-9).contains(k)));
        let below = ks.iter().filter(|k| **k < 8.0).count() as f64 / 2000.0;
        // ln kappa_x is uniform over [ln 4, ln 64]: a quarter of it lies below ln 8.
        assert!((below - 0.25).abs() < 0.04, "{below}");
        let p = Prompt {
            id: 1,
            tokens: vec![1; 16],
        };
        let q = Prompt {
            id: 99,
            ..p.clone()
        };
        assert_eq!(
            r.kappa_of(&p),
            r.kappa_of(&q),
            "a prompt's kappa is its bits'"
        );
        for bad in ["kappa=0.5", "kappa=x", "kappa_spread=0.9"] {
            let p = Params::parse(&["kappa=4", bad])
                .unwrap()
                .resolve("halfspace-cot", PARAMS)
                .unwrap();
            assert!(build(&p, 0).is_err(), "{bad}");
        }
    }

    /// Rejection sampling through the ledger: every sample charged once and verified, the
    /// first accepted one kept, unsolved prompts counted, nothing asked of the teacher.
    #[test]
    fn rejection_sampling_charges_every_sample_and_keeps_the_first_accepted() {
        let t = task(&["kappa=4", "window=16"]);
        let (pi, temp) = t.reference().unwrap();
        let prompts = t.prompts("train", 9).unwrap().draw(200).unwrap();
        let right = t.teacher().demonstrate_batch(&prompts).unwrap();
        let mut meter = autotune_core::Metered::new(t.as_ref());
        let found = meter.rejection_sample(pi, &prompts, 3, temp, 11).unwrap();
        let l = meter.snapshot();
        assert_eq!(found.len(), prompts.len());
        let solved = found.iter().flatten().count() as u64;
        assert_eq!(l.reference_demos, solved);
        assert_eq!(l.reference_unsolved, prompts.len() as u64 - solved);
        // P(unsolved in 3 samples) = (3/4)^3 = 0.42.
        let unsolved = l.reference_unsolved as f64 / 200.0;
        assert!((0.3..0.55).contains(&unsolved), "{unsolved}");
        assert_eq!(l.verifier_calls, l.reference_samples);
        assert_eq!(l.reference_tokens, l.reference_samples * 16);
        assert!(l.reference_samples <= 600 && l.reference_samples >= 200);
        assert_eq!((l.teacher_calls, l.student_generations), (0, 0));
        for ((f, p), r) in found.iter().zip(&prompts).zip(&right) {
            if let Some(d) = f {
                assert_eq!((&d.prompt, &d.trace), (p, r), "an accepted sample is right");
            }
        }
        // Deterministic under the seed.
        let mut again = autotune_core::Metered::new(t.as_ref());
        assert_eq!(
            again.rejection_sample(pi, &prompts, 3, temp, 11).unwrap(),
            found
        );
    }

    #[test]
    fn bad_parameters_and_prompts_are_errors_not_panics() {
        for bad in [
            "window=0",
            "window=64",
            "steps=4",
            "dist=gauss",
            "hard_frac=2",
        ] {
            let p = Params::parse(&[bad])
                .unwrap()
                .resolve("halfspace-cot", PARAMS)
                .unwrap();
            let e = build(&p, 0).err().expect("error").to_string();
            assert!(e.contains(bad.split('=').next().unwrap()), "{bad}: {e}");
        }
        let t = task(&[]);
        let bad = Prompt {
            id: 1,
            tokens: vec![0, 2, 1],
        };
        assert!(t
            .teacher()
            .demonstrate_batch(std::slice::from_ref(&bad))
            .is_err());
        assert_eq!(
            t.verifier()
                .verify_batch(std::slice::from_ref(&bad), &[&[0]]),
            vec![false]
        );
        assert!(t.new_student(0).generate_batch(&[bad])[0].is_empty());
    }
}
