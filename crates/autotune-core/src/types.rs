use serde::{Deserialize, Serialize};

/// A token of a prompt or a chain of thought. Tasks decide the vocabulary.
pub type Token = u32;

/// A prompt `x`. The id is unique within the stream that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Prompt {
    pub id: u64,
    pub tokens: Vec<Token>,
}

/// A chain of thought `z_1..z_T`; its final `answer_len` tokens are the answer `y`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Trace {
    pub steps: Vec<Token>,
    pub answer_len: usize,
}

impl Trace {
    /// Builds a trace whose last `answer_len` steps are the answer.
    ///
    /// `answer_len` larger than the trace is clamped, so a short (malformed) generation simply
    /// has a short answer that the verifier will reject.
    pub fn new(steps: Vec<Token>, answer_len: usize) -> Self {
        let answer_len = answer_len.min(steps.len());
        Self { steps, answer_len }
    }

    /// The final answer `y`: the last part of the chain of thought.
    pub fn answer(&self) -> &[Token] {
        &self.steps[self.steps.len() - self.answer_len..]
    }

    /// Tokens in the trace (the unit of token accounting).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// A teacher demonstration: the prompt and the teacher's chain of thought.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demo {
    pub prompt: Prompt,
    pub trace: Trace,
}

/// A sampled chain of thought of the student with its policy-gradient advantage (e.g. the
/// verifier's reward minus its group's mean).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub prompt: Prompt,
    pub trace: Trace,
    pub advantage: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_is_the_tail_of_the_trace() {
        let t = Trace::new(vec![1, 2, 3, 4], 2);
        assert_eq!(t.answer(), &[3, 4]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn short_trace_clamps_the_answer() {
        let t = Trace::new(vec![7], 8);
        assert_eq!(t.answer(), &[7]);
        let e = Trace::new(vec![], 8);
        assert!(e.answer().is_empty());
    }
}
