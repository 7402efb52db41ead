//! The memorising student of file tasks.

use std::collections::HashMap;

use autotune_core::{CoreError, Demo, FitStats, Policy, Prompt, Result, Student, Token, Trace};

use crate::tokens::{decode, encode};

/// A student that memorises: it answers a prompt it was taught with the demonstration it saw,
/// and any other prompt with the most frequent answer so far (the best constant). An exact
/// ERM for the class of lookup tables; a real generalising student is the neural one.
#[derive(Clone, Default)]
pub struct MemoStudent {
    table: HashMap<Vec<Token>, Trace>,
    answer_counts: HashMap<Vec<Token>, u64>,
    fallback: Option<Trace>,
}

impl Policy for MemoStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        prompts
            .iter()
            .map(|p| {
                self.table
                    .get(&p.tokens)
                    .or(self.fallback.as_ref())
                    .cloned()
                    .unwrap_or_else(|| Trace::new(Vec::new(), 0))
            })
            .collect()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MemoState {
    /// (prompt, trace text, answer length in tokens), in a stable order.
    table: Vec<(String, String, usize)>,
    /// How often each answer was taught (for the fallback answer).
    answers: Vec<(String, u64)>,
}

impl MemoStudent {
    /// Reads a state written by [`Student::save`]: the same student, answer for answer.
    pub fn load(state: &str) -> Result<Self> {
        let st: MemoState = serde_json::from_str(state)
            .map_err(|e| CoreError::Input(format!("not a memorising-student checkpoint: {e}")))?;
        let mut s = MemoStudent::default();
        for (p, t, n) in st.table {
            if n > t.chars().count() {
                return Err(CoreError::Input(format!(
                    "memorising-student checkpoint: answer length {n} longer than its trace"
                )));
            }
            s.table.insert(encode(&p), Trace::new(encode(&t), n));
        }
        for (a, c) in st.answers {
            s.answer_counts.insert(encode(&a), c);
        }
        s.update_fallback();
        Ok(s)
    }

    /// The most frequent answer taught so far (ties: the smallest), answered to any prompt
    /// the student was not taught.
    fn update_fallback(&mut self) {
        if let Some((best, _)) = self
            .answer_counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        {
            let n = best.len();
            self.fallback = Some(Trace::new(best.clone(), n));
        }
    }
}

impl Student for MemoStudent {
    fn save(&self) -> Option<String> {
        let mut table: Vec<(String, String, usize)> = self
            .table
            .iter()
            .map(|(p, t)| (decode(p), decode(&t.steps), t.answer_len))
            .collect();
        table.sort();
        let mut answers: Vec<(String, u64)> = self
            .answer_counts
            .iter()
            .map(|(a, c)| (decode(a), *c))
            .collect();
        answers.sort();
        serde_json::to_string(&MemoState { table, answers }).ok()
    }

    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        for d in new_demos {
            let ans = d.trace.answer().to_vec();
            *self.answer_counts.entry(ans).or_default() += 1;
            self.table.insert(d.prompt.tokens.clone(), d.trace.clone());
        }
        self.update_fallback();
        Ok(FitStats {
            steps: 1,
            examples: new_demos.len() as u64,
            consistent: true,
            validation_generations: 0,
        })
    }
}
