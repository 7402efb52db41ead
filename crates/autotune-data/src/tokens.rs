//! Text as tokens: one Unicode scalar value per token, so traces decode back to the exact
//! text. Shared by the file task (`text_task`) and the model-server parts (`remote`).

use autotune_core::{Token, Trace};

/// Text as tokens: one Unicode scalar value each.
pub fn encode(s: &str) -> Vec<Token> {
    s.chars().map(|c| c as Token).collect()
}

/// Tokens back to text (invalid scalar values become U+FFFD).
pub fn decode(t: &[Token]) -> String {
    t.iter()
        .map(|&c| char::from_u32(c).unwrap_or('\u{fffd}'))
        .collect()
}

/// A demonstration as a trace: the chain of thought, a newline, then the answer (the tail
/// the verifier reads).
pub(crate) fn trace_of(cot: &str, answer: &str) -> Trace {
    if cot == answer {
        // Nothing but the answer (a teacher without a CoT).
        let a = encode(answer);
        let n = a.len();
        return Trace::new(a, n);
    }
    let mut steps = encode(cot);
    if !cot.is_empty() {
        steps.push('\n' as Token);
    }
    let a = encode(answer);
    let n = a.len();
    steps.extend(a);
    Trace::new(steps, n)
}
