//! Batched generation: greedy or temperature sampling, with a KV cache.
//!
//! Prompts of a batch are left-padded to a common length; each row's positions count from its
//! own first token and its padding is masked out of attention, so a prompt's continuation does
//! not depend on the other prompts of its batch (up to floating-point rounding of the batched
//! matrix products). Sampling uses one RNG stream per prompt index.

use burn::tensor::{Bool, Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{check_tokens, int_tensor, KvCache, NeuralModel};
use crate::{NeuralError, Result, TokenId};

/// How to choose each next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// The most likely token (ties go to the lowest id).
    Greedy,
    /// A draw from `softmax(logits / temperature)`; prompt `i` of a call uses its own stream
    /// derived from `(seed, i)`. A temperature of 0 is greedy.
    Temperature { temperature: f64, seed: u64 },
}

/// Options of [`NeuralModel::generate`].
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Most tokens generated per prompt (also limited by the model's `max_len`: a prompt of
    /// length `p` gets at most `max_len - p`).
    pub max_new_tokens: usize,
    /// Stop a prompt's generation at this token (which is not included in the output).
    pub eos: Option<TokenId>,
    /// Prompts processed together.
    pub batch_size: usize,
    pub sampling: Sampling,
}

impl GenerateOptions {
    pub fn greedy(max_new_tokens: usize, eos: Option<TokenId>) -> Self {
        Self {
            max_new_tokens,
            eos,
            batch_size: 64,
            sampling: Sampling::Greedy,
        }
    }
}

/// The RNG stream of prompt `index` for `seed` (splitmix64 of the pair).
fn stream_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut z = seed
        ^ (index as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn sample(row: &[f32], temperature: f64, rng: &mut ChaCha8Rng) -> usize {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let weights: Vec<f64> = row
        .iter()
        .map(|&v| ((v as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.gen::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    argmax(row)
}

/// A left-padded batch of prompts.
struct Layout {
    /// Padding before each row's prompt.
    pad: Vec<usize>,
    /// Longest prompt: the width of the padded prompt block.
    width: usize,
    /// Tokens each row may generate.
    cap: Vec<usize>,
}

impl NeuralModel {
    /// Continuations of `prompts` (without the prompt and without the end token), one per
    /// prompt, in order. Uses the KV cache.
    pub fn generate(
        &self,
        prompts: &[Vec<TokenId>],
        opts: &GenerateOptions,
    ) -> Result<Vec<Vec<TokenId>>> {
        self.generate_impl(prompts, opts, true)
    }

    /// The same as [`NeuralModel::generate`] without the cache: every step recomputes the
    /// whole sequence with burn's encoder. For tests and benchmarks.
    pub fn generate_uncached(
        &self,
        prompts: &[Vec<TokenId>],
        opts: &GenerateOptions,
    ) -> Result<Vec<Vec<TokenId>>> {
        self.generate_impl(prompts, opts, false)
    }

    fn generate_impl(
        &self,
        prompts: &[Vec<TokenId>],
        opts: &GenerateOptions,
        cached: bool,
    ) -> Result<Vec<Vec<TokenId>>> {
        crate::train::on_pool(|| self.generate_here(prompts, opts, cached))
    }

    fn generate_here(
        &self,
        prompts: &[Vec<TokenId>],
        opts: &GenerateOptions,
        cached: bool,
    ) -> Result<Vec<Vec<TokenId>>> {
        if opts.batch_size == 0 {
            return Err(NeuralError::Config("batch_size must be positive".into()));
        }
        if let Sampling::Temperature { temperature, .. } = opts.sampling {
            if !(temperature.is_finite() && temperature >= 0.0) {
                return Err(NeuralError::Config(format!(
                    "temperature must be finite and non-negative: {temperature}"
                )));
            }
        }
        for (i, p) in prompts.iter().enumerate() {
            if p.is_empty() {
                return Err(NeuralError::Input(format!("prompt {i} is empty")));
            }
            if p.len() > self.config.max_len {
                return Err(NeuralError::Input(format!(
                    "prompt {i} has {} tokens, more than max_len {}",
                    p.len(),
                    self.config.max_len
                )));
            }
            check_tokens(p, self.config.vocab, &format!("prompt {i}"))?;
        }
        let mut out = Vec::with_capacity(prompts.len());
        for (chunk_index, chunk) in prompts.chunks(opts.batch_size).enumerate() {
            let first = chunk_index * opts.batch_size;
            out.extend(self.generate_chunk(chunk, first, opts, cached));
        }
        Ok(out)
    }

    fn generate_chunk(
        &self,
        prompts: &[Vec<TokenId>],
        first_index: usize,
        opts: &GenerateOptions,
        cached: bool,
    ) -> Vec<Vec<TokenId>> {
        let device = crate::cpu_device();
        let n = prompts.len();
        let max_len = self.config.max_len;
        let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let layout = Layout {
            pad: prompts.iter().map(|p| width - p.len()).collect(),
            width,
            cap: prompts
                .iter()
                .map(|p| opts.max_new_tokens.min(max_len - p.len()))
                .collect(),
        };
        let mut rngs: Vec<Option<ChaCha8Rng>> = (0..n)
            .map(|i| match opts.sampling {
                Sampling::Temperature { temperature, seed } if temperature > 0.0 => {
                    Some(stream_rng(seed, first_index + i))
                }
                _ => None,
            })
            .collect();
        // The padded token matrix, row-major, grown by one column per step.
        let mut columns: Vec<Vec<i64>> = prompts
            .iter()
            .zip(&layout.pad)
            .map(|(p, &pad)| {
                let mut row = vec![0i64; pad];
                row.extend(p.iter().map(|&t| t as i64));
                row
            })
            .collect();
        let mut outputs: Vec<Vec<TokenId>> = vec![Vec::new(); n];
        let mut done: Vec<bool> = layout.cap.iter().map(|&c| c == 0).collect();
        // Columns: the prompt block, then one per step while a row is still generating.
        let columns_needed = width + layout.cap.iter().copied().max().unwrap_or(0);
        let mut cache = cached.then(|| KvCache::new(&self.gpt, layout.pad.clone(), columns_needed));
        let mut logits = match cache.as_mut() {
            Some(cache) => self.prefill(&columns, &layout, &device, cache),
            None => self.full_last_logits(&columns, &layout, &device),
        };
        let vocab = self.config.vocab;
        loop {
            if done.iter().all(|&d| d) {
                break;
            }
            for i in 0..n {
                let next = if done[i] {
                    0
                } else {
                    let row = &logits[i * vocab..(i + 1) * vocab];
                    let tok = match &mut rngs[i] {
                        Some(rng) => {
                            let Sampling::Temperature { temperature, .. } = opts.sampling else {
                                unreachable!("an RNG exists only for temperature sampling")
                            };
                            sample(row, temperature, rng)
                        }
                        None => argmax(row),
                    } as TokenId;
                    if opts.eos == Some(tok) {
                        done[i] = true;
                    } else {
                        outputs[i].push(tok);
                        if outputs[i].len() >= layout.cap[i] {
                            done[i] = true;
                        }
                    }
                    tok
                };
                columns[i].push(next as i64);
            }
            if done.iter().all(|&d| d) {
                break;
            }
            logits = match cache.as_mut() {
                Some(cache) => self.step(&columns, &layout, &device, cache),
                None => self.full_last_logits(&columns, &layout, &device),
            };
        }
        outputs
    }

    /// Position of column `j` in row `i` (padding sits at 0; finished rows that run past the
    /// last position are clamped, their outputs are discarded).
    fn position(&self, layout: &Layout, i: usize, j: usize) -> i64 {
        j.saturating_sub(layout.pad[i]).min(self.config.max_len - 1) as i64
    }

    /// The logits of one full forward pass over `tokens` (positions `0..len`): `len` rows of
    /// `vocab`, row `j` predicting token `j + 1`. Errors: no tokens, tokens outside the
    /// vocabulary, or more than `max_len`.
    pub fn logits(&self, tokens: &[TokenId]) -> Result<Vec<f32>> {
        let (vocab, max_len) = (self.config.vocab, self.config.max_len);
        check_tokens(tokens, vocab, "logits")?;
        let n = tokens.len();
        if n == 0 || n > max_len {
            return Err(NeuralError::Input(format!(
                "logits of {n} tokens: need 1 to max_len {max_len}"
            )));
        }
        let device = crate::cpu_device();
        let logits = self.gpt.forward(
            int_tensor(tokens.iter().map(|&x| x as i64).collect(), [1, n], &device),
            int_tensor((0..n as i64).collect(), [1, n], &device),
            crate::train::causal_mask(1, n, &device),
        );
        Ok(logits.into_data().iter::<f32>().collect())
    }

    /// `ln p(continuation | prompt)` of each pair when sampled at `temperature` as
    /// [`NeuralModel::generate`] samples (softmax of the logits divided by the temperature,
    /// in f64): the sum over the continuation's tokens of their log-probabilities, one full
    /// forward pass per pair. An end token that generation dropped is not part of the
    /// continuation, so its probability is not counted. Errors: a temperature that is not
    /// positive and finite, an empty prompt, tokens outside the vocabulary, or a pair longer
    /// than `max_len`.
    pub fn sequence_log_probs(
        &self,
        prompts: &[Vec<TokenId>],
        continuations: &[Vec<TokenId>],
        temperature: f64,
    ) -> Result<Vec<f64>> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(NeuralError::Input(format!(
                "log-probabilities need a positive temperature, got {temperature}"
            )));
        }
        if prompts.len() != continuations.len() {
            return Err(NeuralError::Input(format!(
                "{} prompts for {} continuations",
                prompts.len(),
                continuations.len()
            )));
        }
        let (vocab, max_len) = (self.config.vocab, self.config.max_len);
        let device = crate::cpu_device();
        let mut out = Vec::with_capacity(prompts.len());
        for (i, (p, c)) in prompts.iter().zip(continuations).enumerate() {
            check_tokens(p, vocab, &format!("prompt {i}"))?;
            check_tokens(c, vocab, &format!("continuation {i}"))?;
            if p.is_empty() {
                return Err(NeuralError::Input(format!("prompt {i} is empty")));
            }
            let t = p.len() + c.len();
            if t > max_len {
                return Err(NeuralError::Input(format!(
                    "prompt {i} and its continuation: {t} tokens, longer than max_len {max_len}"
                )));
            }
            if c.is_empty() {
                out.push(0.0);
                continue;
            }
            // The last token is never an input: its successor is not asked for.
            let inputs: Vec<i64> = p.iter().chain(c).take(t - 1).map(|&x| x as i64).collect();
            let n = inputs.len();
            let logits = self.gpt.forward(
                int_tensor(inputs, [1, n], &device),
                int_tensor((0..n as i64).collect(), [1, n], &device),
                crate::train::causal_mask(1, n, &device),
            );
            // Rows p-1 .. t-2 predict the continuation's tokens.
            let rows: Vec<f32> = logits
                .slice([0..1, p.len() - 1..n, 0..vocab])
                .into_data()
                .iter::<f32>()
                .collect();
            let mut total = 0.0f64;
            for (k, &tok) in c.iter().enumerate() {
                let row = &rows[k * vocab..(k + 1) * vocab];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let z: f64 = row
                    .iter()
                    .map(|&v| ((v as f64 - max) / temperature).exp())
                    .sum();
                total += (row[tok as usize] as f64 - max) / temperature - z.ln();
            }
            out.push(total);
        }
        Ok(out)
    }

    /// Logits `[n * vocab]` of the last column, recomputing everything with burn's encoder.
    fn full_last_logits(&self, columns: &[Vec<i64>], layout: &Layout, device: &Device) -> Vec<f32> {
        let n = columns.len();
        let t = columns[0].len();
        let tokens: Vec<i64> = columns.iter().flatten().copied().collect();
        let positions: Vec<i64> = (0..n)
            .flat_map(|i| (0..t).map(move |j| (i, j)))
            .map(|(i, j)| self.position(layout, i, j))
            .collect();
        let mut mask = Vec::with_capacity(n * t * t);
        for i in 0..n {
            for q in 0..t {
                mask.extend((0..t).map(|k| k > q || k < layout.pad[i]));
            }
        }
        let mask = Tensor::<3, Bool>::from_data(TensorData::new(mask, [n, t, t]), device);
        let logits = self.gpt.forward(
            int_tensor(tokens, [n, t], device),
            int_tensor(positions, [n, t], device),
            mask,
        );
        let vocab = self.config.vocab;
        let last = logits.slice([0..n, t - 1..t, 0..vocab]).reshape([n, vocab]);
        last.into_data().iter::<f32>().collect()
    }

    /// Runs the padded prompts through the model, filling the cache; logits of the last column.
    fn prefill(
        &self,
        columns: &[Vec<i64>],
        layout: &Layout,
        device: &Device,
        cache: &mut KvCache,
    ) -> Vec<f32> {
        let n = columns.len();
        let t = layout.width;
        let tokens: Vec<i64> = columns.iter().flatten().copied().collect();
        let positions: Vec<i64> = (0..n)
            .flat_map(|i| (0..t).map(move |j| (i, j)))
            .map(|(i, j)| self.position(layout, i, j))
            .collect();
        let logits = self.gpt.forward_cached(
            int_tensor(tokens, [n, t], device),
            int_tensor(positions, [n, t], device),
            cache,
        );
        logits.into_data().iter::<f32>().collect()
    }

    /// Feeds the last column through the cached model; logits of that column.
    fn step(
        &self,
        columns: &[Vec<i64>],
        layout: &Layout,
        device: &Device,
        cache: &mut KvCache,
    ) -> Vec<f32> {
        let n = columns.len();
        let t = columns[0].len();
        let tokens: Vec<i64> = columns.iter().map(|c| c[t - 1]).collect();
        let positions: Vec<i64> = (0..n).map(|i| self.position(layout, i, t - 1)).collect();
        let logits = self.gpt.forward_cached(
            int_tensor(tokens, [n, 1], device),
            int_tensor(positions, [n, 1], device),
            cache,
        );
        logits.into_data().iter::<f32>().collect()
    }
}

#[cfg(test)]
mod tests {

    /// Every continuation of two tokens over the vocabulary: the probabilities sum to one, and
    /// sampled frequencies match them.
    #[test]
    fn sequence_log_probs_are_the_sampling_distribution() {
        let config = crate::TransformerConfig {
            n_layers: 1,
            d_model: 16,
            n_heads: 2,
            d_ff: 32,
            ..crate::TransformerConfig::small(5, 8)
        };
        let model = NeuralModel::new(config, 3).unwrap();
        let prompt = vec![1u32, 2];
        let pairs: Vec<Vec<u32>> = (0..5u32)
            .flat_map(|a| (0..5u32).map(move |b| vec![a, b]))
            .collect();
        let prompts = vec![prompt.clone(); pairs.len()];
        let lp = model.sequence_log_probs(&prompts, &pairs, 0.7).unwrap();
        let total: f64 = lp.iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        let n = 4000;
        let opts = GenerateOptions {
            max_new_tokens: 2,
            eos: None,
            batch_size: 512,
            sampling: Sampling::Temperature {
                temperature: 0.7,
                seed: 11,
            },
        };
        let outs = model.generate(&vec![prompt.clone(); n], &opts).unwrap();
        for (pair, l) in pairs.iter().zip(&lp) {
            let p = l.exp();
            let freq = outs.iter().filter(|o| *o == pair).count() as f64 / n as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (freq - p).abs() <= 5.0 * sd + 1e-3,
                "{pair:?}: sampled {freq}, p {p}"
            );
        }
        assert!(model.sequence_log_probs(&prompts, &pairs, 0.0).is_err());
        assert!(model
            .sequence_log_probs(&[vec![1; 7]], &[vec![1, 1]], 1.0)
            .is_err());
    }
    use super::*;
    use crate::testutil::*;

    fn mixed_prompts() -> Vec<Vec<u32>> {
        vec![
            vec![1, 4, 5],
            vec![1, 9, 8, 7, 6, 5, 2],
            vec![1],
            vec![1, 11, 10, 4, 2],
            vec![1, 6, 6, 6, 6, 6, 6, 6, 6],
        ]
    }

    fn opts(batch_size: usize, sampling: Sampling) -> GenerateOptions {
        GenerateOptions {
            max_new_tokens: 12,
            eos: None,
            batch_size,
            sampling,
        }
    }

    #[test]
    fn cache_equals_full_recompute_token_for_token() {
        for seed in [11, 12] {
            let model = NeuralModel::new(tiny_config(), seed).unwrap();
            let o = opts(8, Sampling::Greedy);
            let cached = model.generate(&mixed_prompts(), &o).unwrap();
            let full = model.generate_uncached(&mixed_prompts(), &o).unwrap();
            assert_eq!(cached, full);
            // The limit of 16 positions: a prompt of p tokens gets 16 - p, capped at 12.
            let lens: Vec<usize> = cached.iter().map(Vec::len).collect();
            assert_eq!(lens, vec![12, 9, 12, 11, 7]);
            // An untrained model does not repeat one token forever (the test would be weak).
            assert!(
                cached
                    .iter()
                    .flatten()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    > 2
            );
        }
        let (t, _) = overfitted();
        let model = t.inference_model();
        let o = GenerateOptions::greedy(10, Some(EOS));
        let prompts: Vec<Vec<u32>> = (0..8).map(reverse_prompt).collect();
        assert_eq!(
            model.generate(&prompts, &o).unwrap(),
            model.generate_uncached(&prompts, &o).unwrap()
        );
    }

    #[test]
    fn batching_does_not_change_the_output() {
        let model = NeuralModel::new(tiny_config(), 13).unwrap();
        for sampling in [
            Sampling::Greedy,
            Sampling::Temperature {
                temperature: 1.0,
                seed: 99,
            },
        ] {
            let together = model
                .generate(&mixed_prompts(), &opts(64, sampling))
                .unwrap();
            let alone = model
                .generate(&mixed_prompts(), &opts(1, sampling))
                .unwrap();
            let pairs = model
                .generate(&mixed_prompts(), &opts(2, sampling))
                .unwrap();
            assert_eq!(together, alone, "{sampling:?}");
            assert_eq!(together, pairs, "{sampling:?}");
        }
    }

    #[test]
    fn sampling_is_seeded() {
        let model = NeuralModel::new(tiny_config(), 14).unwrap();
        let s = |temperature, seed| {
            model
                .generate(
                    &mixed_prompts(),
                    &opts(8, Sampling::Temperature { temperature, seed }),
                )
                .unwrap()
        };
        assert_eq!(s(1.0, 1), s(1.0, 1));
        assert_ne!(s(1.0, 1), s(1.0, 2));
        let greedy = model
            .generate(&mixed_prompts(), &opts(8, Sampling::Greedy))
            .unwrap();
        assert_eq!(s(0.0, 1), greedy);
        assert_eq!(s(1e-4, 3), greedy);
        assert_ne!(s(5.0, 1), greedy);
    }

    #[test]
    fn eos_stops_a_row_and_is_not_returned() {
        let model = NeuralModel::new(tiny_config(), 15).unwrap();
        let full = model
            .generate(&mixed_prompts(), &opts(8, Sampling::Greedy))
            .unwrap();
        // Use the third token generated for prompt 0 as the end token.
        let eos = full[0][2];
        let o = GenerateOptions {
            eos: Some(eos),
            ..opts(8, Sampling::Greedy)
        };
        let stopped = model.generate(&mixed_prompts(), &o).unwrap();
        for (s, f) in stopped.iter().zip(&full) {
            let cut = f.iter().position(|&t| t == eos).unwrap_or(f.len());
            assert_eq!(s[..], f[..cut]);
        }
        assert_eq!(
            stopped[0].len(),
            full[0].iter().position(|&t| t == eos).unwrap()
        );
    }

    #[test]
    fn bad_prompts_are_errors() {
        let model = NeuralModel::new(tiny_config(), 16).unwrap();
        let o = opts(8, Sampling::Greedy);
        let err = |p: Vec<Vec<u32>>| model.generate(&p, &o).unwrap_err();
        assert!(matches!(err(vec![vec![]]), NeuralError::Input(_)));
        assert!(matches!(err(vec![vec![1, 12]]), NeuralError::Input(_)));
        assert!(matches!(err(vec![vec![1; 17]]), NeuralError::Input(_)));
        // A prompt filling the context generates nothing.
        assert_eq!(
            model.generate(&[vec![1; 16]], &o).unwrap(),
            vec![Vec::<u32>::new()]
        );
        assert!(model.generate(&[], &o).unwrap().is_empty());
    }
}
