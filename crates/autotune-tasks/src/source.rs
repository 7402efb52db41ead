use autotune_core::{stream_rng, Prompt, PromptSource, Result, Rng, Token};

/// An endless prompt generator: `draw` calls a sampling function with its own RNG stream.
pub struct GeneratorSource<F> {
    rng: Rng,
    next_id: u64,
    sample: F,
}

impl<F: FnMut(&mut Rng) -> Vec<Token> + Send> GeneratorSource<F> {
    /// A stream for `split` under `seed`: train and test streams are independent.
    pub fn new(seed: u64, split: &str, sample: F) -> Self {
        Self {
            rng: stream_rng(seed, &format!("prompts/{split}")),
            next_id: 0,
            sample,
        }
    }
}

impl<F: FnMut(&mut Rng) -> Vec<Token> + Send> PromptSource for GeneratorSource<F> {
    fn draw(&mut self, n: usize) -> Result<Vec<Prompt>> {
        Ok((0..n)
            .map(|_| {
                let id = self.next_id;
                self.next_id += 1;
                Prompt {
                    id,
                    tokens: (self.sample)(&mut self.rng),
                }
            })
            .collect())
    }
}
