//! The `math` verifier: extracts the final answer from free text and decides whether it is
//! equivalent to the gold answer, mirroring Hugging Face's `math-verify`
//! (`verify(parse(gold), parse(prediction))` with the default LaTeX + expression targets).
//!
//! * Extraction (`extract.rs`): math-verify's prioritized patterns (`final answer is ... I
//!   hope`, `\boxed{}`, `answer:`, `answer`, then any math environment, expression or
//!   number; the last match of the first priority that parses wins).
//! * Normalization (`normalize.rs`): `\boxed{}` contents, `\left`/`\right`, `\dfrac`, units
//!   and `\text{}` suffixes, `and`/`or` lists, percent words, malformed `\frac12`, `\sqrt2`.
//! * Parsing (`latex.rs`, `pyexpr.rs`): LaTeX and plain expressions into [`value::Node`]s:
//!   numbers keep sympy's kind (integer, rational, float), sets, intervals, tuples,
//!   relations, matrices, `\text{}` symbols.
//! * Equivalence (`value.rs`): math-verify's rules: floats equal after rounding to 6
//!   decimals, `50\%` equal to `50` and to `0.5`... (as math-verify: see its README), exact
//!   rationals, symbolic expressions compared at fixed pseudo-random points, equations
//!   `x = 3` against `3`, sets sorted, open intervals against pairs, text case-insensitive.
//!
//! * Plain answers math-verify misreads (`plain.rs`): numbers in scientific notation, clock
//!   times and alphanumeric tokens such as base-16 numbers are decided on their own terms
//!   first (math-verify reads `4.58e-09` as `4.58`, `:` as division, `3a0` as `3`).
//!
//! The gold is parsed like the prediction, wrapped in `$...$` when it has no unescaped `$`
//! and no `\boxed` (math-verify's README parses golds that way).

mod extract;
mod latex;
mod normalize;
mod plain;
mod pyexpr;
mod value;

#[cfg(test)]
mod tests;

use crate::{check_options, AnswerVerifier, Item, Verdict, VerifyError};

pub use extract::Parsed;

/// Extracts the final answer from free text and decides its equivalence to the gold answer.
#[derive(Clone, Debug, Default)]
pub struct MathVerifier {}

impl MathVerifier {
    pub fn from_options(options: &[(String, String)]) -> Result<Self, VerifyError> {
        check_options("math", options, &[])?;
        Ok(Self {})
    }
}

/// Inputs longer than this are cut to their last part (answers are at the end); it bounds
/// the time of a verdict.
const MAX_CHARS: usize = 20_000;

fn tail(s: &str) -> &str {
    let n = s.chars().count();
    if n <= MAX_CHARS {
        return s;
    }
    let skip = n - MAX_CHARS;
    let (i, _) = s.char_indices().nth(skip).unwrap_or((0, ' '));
    &s[i..]
}

fn has_unescaped_dollar(s: &str) -> bool {
    let mut prev = None;
    for ch in s.chars() {
        if ch == '$' && prev != Some('\\') {
            return true;
        }
        prev = Some(ch);
    }
    false
}

/// How the gold is handed to the parser.
pub(crate) fn wrap_gold(gold: &str) -> String {
    if has_unescaped_dollar(gold) || gold.contains("\\boxed") {
        gold.to_string()
    } else {
        format!("${gold}$")
    }
}

/// math-verify's `parse` on a prediction (or a wrapped gold).
pub(crate) fn parse_answer(text: &str) -> Parsed {
    extract::parse_answer(tail(text))
}

/// math-verify's `verify(gold, pred)`: any pair of (parsed value, fallback text) agrees.
pub(crate) fn agree(gold: &Parsed, pred: &Parsed) -> bool {
    if let (Some(g), Some(p)) = (&gold.value, &pred.value) {
        if value::expr_eq(g, p) {
            return true;
        }
    }
    match (&gold.text, &pred.text) {
        (Some(g), Some(p)) => {
            let (g, p) = (g.trim(), p.trim());
            !g.is_empty() && g == p
        }
        _ => false,
    }
}

impl AnswerVerifier for MathVerifier {
    fn pure(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "math"
    }

    fn verify(&self, item: &Item) -> Verdict {
        if let Some(v) = plain::verify(tail(&item.gold), tail(&item.prediction)) {
            return v;
        }
        let gold = parse_answer(&wrap_gold(tail(&item.gold)));
        let pred = parse_answer(&item.prediction);
        let extracted = pred.text.clone();
        if gold.value.is_none() && gold.text.is_none() {
            return Verdict::wrong(extracted, "gold answer could not be parsed");
        }
        if pred.value.is_none() && pred.text.is_none() {
            return Verdict::wrong(None, "no answer found");
        }
        if agree(&gold, &pred) {
            Verdict::correct(extracted)
        } else if pred.value.is_none() {
            Verdict::wrong(extracted, "answer could not be parsed")
        } else {
            Verdict::wrong(extracted, "not equivalent to the gold answer")
        }
    }
}
