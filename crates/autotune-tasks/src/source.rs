use autotune_core::{stream_rng, Prompt, PromptSource, Result, Rng, Token};
use rayon::prelude::*;

/// Batches at least this large are mapped in parallel.
const PAR_MIN: usize = 512;

/// Maps `f(index, prompt)` over a batch: in parallel for large batches, serially for small ones
/// (where handing work to threads costs more than it saves). The results are the same either
/// way, so per-prompt randomness must come from the index, not from a shared RNG.
pub(crate) fn map_batch<R: Send>(
    prompts: &[Prompt],
    f: impl Fn(usize, &Prompt) -> R + Sync + Send,
) -> Vec<R> {
    if prompts.len() >= PAR_MIN {
        prompts
            .par_iter()
            .enumerate()
            .map(|(i, p)| f(i, p))
            .collect()
    } else {
        prompts.iter().enumerate().map(|(i, p)| f(i, p)).collect()
    }
}

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

    /// The prompts are i.i.d.: skipped ones are not generated, only their ids are used up.
    fn skip(&mut self, n: usize) -> Result<()> {
        self.next_id += n as u64;
        Ok(())
    }
}
