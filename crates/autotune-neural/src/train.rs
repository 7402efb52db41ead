//! Training: AdamW on cross-entropy restricted to the masked (CoT and answer) tokens.

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::lora::{LoraConfig, LoraInit};
use crate::model::{check_tokens, int_tensor, Gpt, NeuralModel, TransformerConfig};
use crate::{NeuralError, Result, TokenId};

/// One training sequence: prompt, chain of thought and answer, as tokens. The loss is taken
/// on `tokens[j]` (predicted from `tokens[..j]`) wherever `loss_mask[j]` is true, which should
/// be the CoT and answer tokens and an end token, not the prompt. `loss_mask[0]` is ignored:
/// the first token has nothing to be predicted from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub tokens: Vec<TokenId>,
    pub loss_mask: Vec<bool>,
}

impl Example {
    /// `prompt` (not learned) followed by `target` (learned).
    pub fn new(prompt: &[TokenId], target: &[TokenId]) -> Self {
        let mut tokens = prompt.to_vec();
        tokens.extend_from_slice(target);
        let mut loss_mask = vec![false; prompt.len()];
        loss_mask.resize(tokens.len(), true);
        Self { tokens, loss_mask }
    }
}

/// The learning rate as a function of the step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    Constant,
    /// Linear warm-up from 0 over `warmup_steps`, then a cosine decay to `min_ratio * lr` at
    /// `total_steps`, constant afterwards.
    Cosine {
        warmup_steps: u64,
        total_steps: u64,
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// The learning rate at `step` (0-based) for base rate `lr`.
    pub fn lr(&self, lr: f64, step: u64) -> f64 {
        match *self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine {
                warmup_steps,
                total_steps,
                min_ratio,
            } => {
                if step < warmup_steps {
                    return lr * (step + 1) as f64 / warmup_steps as f64;
                }
                let span = total_steps.saturating_sub(warmup_steps).max(1);
                let progress = ((step - warmup_steps) as f64 / span as f64).min(1.0);
                let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                lr * (min_ratio + (1.0 - min_ratio) * cosine)
            }
        }
    }
}

/// How to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerConfig {
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: LrSchedule,
    /// Sequences per step in [`Trainer::fit`].
    pub batch_size: usize,
    /// Seeds the initial weights, the batch sampler and dropout.
    pub seed: u64,
    pub weight_decay: f32,
    /// Clip the gradient norm (per parameter tensor, burn's clipping) to this value.
    pub grad_clip: Option<f32>,
    /// The token used to pad sequences of a batch (any id in the vocabulary: it is masked out
    /// of the loss, and right padding is never attended to by real positions).
    pub pad_token: TokenId,
    /// Train low-rank adapters on these projections instead of every weight (see
    /// [`crate::LoraConfig`]); `None`: full fine-tuning.
    #[serde(default)]
    pub lora: Option<LoraConfig>,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            batch_size: 64,
            seed: 0,
            weight_decay: 0.01,
            grad_clip: Some(1.0),
            pad_token: 0,
            lora: None,
        }
    }
}

/// The model being trained (on the autodiff device), its optimiser and its step count.
pub struct Trainer {
    pub(crate) model_config: TransformerConfig,
    pub(crate) config: TrainerConfig,
    pub(crate) model: Gpt,
    pub(crate) optim: ModuleOptimizer,
    pub(crate) step: u64,
    /// The minibatch sampler.
    pub(crate) rng: ChaCha8Rng,
    device: Device,
    /// With LoRA: the SHA-256 of the frozen weights ([`crate::state::frozen_digest`]), which
    /// the trainer state records instead of the weights themselves.
    pub(crate) base_digest: Option<String>,
}

impl Trainer {
    /// A fresh model initialised from `config.seed`.
    pub fn new(model_config: TransformerConfig, config: TrainerConfig) -> Result<Self> {
        let device = crate::cpu_device().autodiff();
        let model = Gpt::new(&model_config, &device, config.seed)?;
        let model = match &config.lora {
            Some(lora) => model.with_lora(&model_config, lora, LoraInit::Seed(config.seed))?,
            None => model,
        };
        Self::with_model(model_config, config, model, device)
    }

    /// Continues training the weights of `model` (e.g. a loaded checkpoint) with a fresh
    /// optimiser state: all of them, or adapters initialised from the seed when
    /// `config.lora` is set.
    pub fn from_model(model: &NeuralModel, config: TrainerConfig) -> Result<Self> {
        let init = LoraInit::Seed(config.seed);
        Self::from_model_with(model, config, init)
    }

    /// [`Trainer::from_model`] with the adapters' first values given (e.g. a PEFT adapter
    /// read by [`crate::read_peft_adapter`]); `init` is unused without `config.lora`.
    pub fn from_model_with(
        model: &NeuralModel,
        config: TrainerConfig,
        init: LoraInit,
    ) -> Result<Self> {
        let device = crate::cpu_device().autodiff();
        let gpt = model.gpt.clone().fork(&device).train();
        let gpt = match &config.lora {
            Some(lora) => gpt.with_lora(&model.config, lora, init)?,
            None => gpt,
        };
        Self::with_model(model.config.clone(), config, gpt, device)
    }

    pub(crate) fn with_model(
        model_config: TransformerConfig,
        config: TrainerConfig,
        model: Gpt,
        device: Device,
    ) -> Result<Self> {
        model_config.validate()?;
        if config.batch_size == 0 {
            return Err(NeuralError::Config("batch_size must be positive".into()));
        }
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(NeuralError::Config(format!(
                "lr must be positive: {}",
                config.lr
            )));
        }
        check_tokens(&[config.pad_token], model_config.vocab, "pad_token")?;
        let mut adamw = AdamWConfig::new().with_weight_decay(config.weight_decay);
        if let Some(clip) = config.grad_clip {
            adamw = adamw.with_grad_clipping(Some(
                burn::grad_clipping::GradientClippingConfig::Norm(clip),
            ));
        }
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_ba7c_4e55_0001);
        let base_digest = config
            .lora
            .is_some()
            .then(|| crate::state::frozen_digest(&model));
        Ok(Self {
            model_config,
            optim: adamw.init(),
            config,
            model,
            step: 0,
            rng,
            device,
            base_digest,
        })
    }

    pub fn model_config(&self) -> &TransformerConfig {
        &self.model_config
    }

    pub fn config(&self) -> &TrainerConfig {
        &self.config
    }

    /// Optimisation steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The autodiff model (for inspection; generation wants [`Trainer::inference_model`]).
    pub fn model(&self) -> &Gpt {
        &self.model
    }

    /// A copy of the current weights without autodiff, for generation and checkpoints.
    pub fn inference_model(&self) -> NeuralModel {
        NeuralModel::from_gpt(self.model_config.clone(), &self.model)
    }

    /// The masked mean cross-entropy of `batch` under the current weights, as a tensor on the
    /// autodiff device (one backward pass gives every parameter's gradient).
    pub fn loss(&self, batch: &[Example]) -> Result<Tensor<1>> {
        self.weighted_loss(batch, None)
    }

    /// The loss with each example's token losses scaled by `scale[i]` (a policy-gradient
    /// advantage; may be negative), still divided by the number of masked tokens.
    fn weighted_loss(&self, batch: &[Example], scale: Option<&[f32]>) -> Result<Tensor<1>> {
        let b = self.batch_tensors(batch, scale)?;
        let logits = self.model.forward(b.inputs, b.positions, b.mask_attn);
        let lp = log_softmax(logits, 2);
        let [n, t, _] = lp.dims();
        let nll = lp
            .gather(2, b.targets.reshape([n, t, 1]))
            .reshape([n, t])
            .neg();
        Ok((nll * b.weights).sum().div_scalar(b.count as f32))
    }

    /// One AdamW step on `batch` (all of it, one step) at the schedule's learning rate;
    /// returns the loss before the step.
    pub fn train_step(&mut self, batch: &[Example]) -> Result<f32> {
        let lr = self.config.schedule.lr(self.config.lr, self.step);
        on_pool(|| self.train_step_here(batch, lr))
    }

    /// [`Trainer::train_step`] at learning rate `lr` (a schedule kept by the caller).
    pub fn train_step_at(&mut self, batch: &[Example], lr: f64) -> Result<f32> {
        on_pool(|| self.train_step_here(batch, lr))
    }

    /// One policy-gradient step (REINFORCE with given advantages; the GRPO objective on
    /// on-policy samples, where the importance ratio is 1 and the clip is inactive): descends
    /// `-sum_i advantages[i] * sum_j log p(tokens_ij) / (masked tokens)`, the token-level
    /// normalisation of DAPO. Returns that surrogate loss before the step.
    pub fn policy_gradient_step_at(
        &mut self,
        batch: &[Example],
        advantages: &[f32],
        lr: f64,
    ) -> Result<f32> {
        if advantages.len() != batch.len() {
            return Err(NeuralError::Input(format!(
                "{} advantages for {} examples",
                advantages.len(),
                batch.len()
            )));
        }
        if let Some(i) = advantages.iter().position(|a| !a.is_finite()) {
            return Err(NeuralError::Input(format!(
                "advantage {i} is not finite: {}",
                advantages[i]
            )));
        }
        on_pool(|| self.step_here(batch, Some(advantages), lr))
    }

    fn train_step_here(&mut self, batch: &[Example], lr: f64) -> Result<f32> {
        self.step_here(batch, None, lr)
    }

    fn step_here(&mut self, batch: &[Example], scale: Option<&[f32]>, lr: f64) -> Result<f32> {
        let dropout = self.model_config.dropout > 0.0;
        // Dropout draws from burn's global RNG: seed it per step, under the lock.
        let guard = dropout.then(crate::burn_rng_lock);
        if dropout {
            self.device
                .seed(self.config.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ self.step);
        }
        let loss = self.weighted_loss(batch, scale)?;
        let grads = loss.backward();
        drop(guard);
        let value = loss.into_scalar::<f32>();
        let grads = GradientsParams::from_grads(grads, &self.model);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        self.step += 1;
        Ok(value)
    }

    /// `steps` steps on minibatches of `batch_size` drawn uniformly with replacement from
    /// `data` by the trainer's seeded sampler (a whole `data` smaller than a batch is used as
    /// is). Returns the loss of every step.
    pub fn fit(&mut self, data: &[Example], steps: usize) -> Result<Vec<f32>> {
        if data.is_empty() {
            return Err(NeuralError::Input("no examples to fit".into()));
        }
        let mut losses = Vec::with_capacity(steps);
        for _ in 0..steps {
            let batch = self.sample_batch(data);
            losses.push(self.train_step(&batch)?);
        }
        Ok(losses)
    }

    /// A minibatch of `batch_size` examples drawn uniformly with replacement from `data` by
    /// the trainer's seeded sampler (all of `data` when it is no larger than a batch).
    pub fn sample_batch(&mut self, data: &[Example]) -> Vec<Example> {
        if data.len() <= self.config.batch_size {
            data.to_vec()
        } else {
            (0..self.config.batch_size)
                .map(|_| data[self.rng.gen_range(0..data.len())].clone())
                .collect()
        }
    }

    fn batch_tensors(&self, batch: &[Example], scale: Option<&[f32]>) -> Result<BatchTensors> {
        if batch.is_empty() {
            return Err(NeuralError::Input("empty batch".into()));
        }
        let max_len = self.model_config.max_len;
        let mut longest = 0;
        for (i, e) in batch.iter().enumerate() {
            if e.tokens.len() != e.loss_mask.len() {
                return Err(NeuralError::Input(format!(
                    "example {i}: {} tokens but {} mask entries",
                    e.tokens.len(),
                    e.loss_mask.len()
                )));
            }
            if e.tokens.len() > max_len {
                return Err(NeuralError::Input(format!(
                    "example {i}: {} tokens, longer than max_len {max_len}",
                    e.tokens.len()
                )));
            }
            check_tokens(&e.tokens, self.model_config.vocab, &format!("example {i}"))?;
            longest = longest.max(e.tokens.len());
        }
        if longest < 2 {
            return Err(NeuralError::Input(
                "every example has fewer than 2 tokens: nothing to predict".into(),
            ));
        }
        let (n, t) = (batch.len(), longest - 1);
        let pad = self.config.pad_token as i64;
        let mut inputs = vec![pad; n * t];
        let mut targets = vec![pad; n * t];
        let mut weights = vec![0f32; n * t];
        let mut count = 0usize;
        for (i, e) in batch.iter().enumerate() {
            for j in 0..e.tokens.len().saturating_sub(1) {
                inputs[i * t + j] = e.tokens[j] as i64;
                targets[i * t + j] = e.tokens[j + 1] as i64;
                if e.loss_mask[j + 1] {
                    weights[i * t + j] = scale.map_or(1.0, |s| s[i]);
                    count += 1;
                }
            }
        }
        if count == 0 {
            return Err(NeuralError::Input(
                "no token of the batch is marked for the loss".into(),
            ));
        }
        let d = &self.device;
        let positions: Vec<i64> = (0..n).flat_map(|_| 0..t as i64).collect();
        Ok(BatchTensors {
            inputs: int_tensor(inputs, [n, t], d),
            targets: int_tensor(targets, [n, t], d),
            positions: int_tensor(positions, [n, t], d),
            weights: Tensor::<2>::from_data(TensorData::new(weights, [n, t]), d),
            mask_attn: causal_mask(n, t, d),
            count,
        })
    }
}

/// Runs `f` on a thread of rayon's global pool (on this one if it is a pool thread). burn's
/// flex backend parallelises its larger operations with rayon; called from outside the pool,
/// each of them hands its work to the pool's threads and puts the caller to sleep until they
/// are done, hundreds of times per training step. On a pool thread the caller does its share
/// of the parallel work itself, and the serial work between parallel operations stays on it.
pub(crate) fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

struct BatchTensors {
    inputs: burn::tensor::Tensor<2, burn::tensor::Int>,
    targets: burn::tensor::Tensor<2, burn::tensor::Int>,
    positions: burn::tensor::Tensor<2, burn::tensor::Int>,
    weights: Tensor<2>,
    mask_attn: Tensor<3, Bool>,
    count: usize,
}

/// `[n, t, t]`, true above the diagonal (a position may not attend to later ones).
pub(crate) fn causal_mask(n: usize, t: usize, device: &Device) -> Tensor<3, Bool> {
    burn::nn::attention::generate_autoregressive_mask(n, t, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use burn::module::{ModuleVisitor, Param};

    /// Collects every float parameter and whether its gradient exists and is non-zero.
    struct GradCheck<'a> {
        grads: &'a GradientsParams,
        path: Vec<String>,
        seen: Vec<(String, Option<f32>)>,
    }

    impl ModuleVisitor for GradCheck<'_> {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .map(|g| g.abs().max().into_scalar::<f32>());
            self.seen.push((self.path.join("."), g));
        }
    }

    /// The gradients of the loss on `batch`, and every parameter with its largest |gradient|.
    fn gradients(t: &Trainer, batch: &[Example]) -> (GradientsParams, Vec<(String, Option<f32>)>) {
        let loss = t.loss(batch).unwrap();
        let grads = GradientsParams::from_grads(loss.backward(), t.model());
        let mut check = GradCheck {
            grads: &grads,
            path: Vec::new(),
            seen: Vec::new(),
        };
        t.model().visit(&mut check);
        let seen = check.seen;
        (grads, seen)
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        let t = trainer(1);
        let (grads, seen) = gradients(&t, &reverse_examples(8));
        // tok, pos; per layer: q, k, v, out (weight + bias), ff inner/outer (w + b), 2 norms
        // (gamma + beta); final norm (2); head (w + b).
        let per_layer = 8 + 4 + 4;
        assert_eq!(seen.len(), 2 + 2 * per_layer + 2 + 2, "{:?}", seen);
        assert_eq!(grads.len(), seen.len(), "a parameter without a gradient");
        for (path, g) in &seen {
            let g = g.unwrap_or_else(|| panic!("{path} has no gradient"));
            assert!(g.is_finite(), "{path}: gradient {g}");
            // The key bias adds the same q.b_k to every score of a query, which softmax
            // ignores: its true gradient is 0 and only rounding is left.
            if path.ends_with("mha.key.bias") {
                continue;
            }
            assert!(g > 1e-7, "{path}: gradient max |g| = {g}");
        }
    }

    /// A Llama-family model (grouped-query attention, query/key/value biases, tied head, rope
    /// scaling): every parameter gets a gradient, and it learns the reverse task, generating
    /// it with and without the KV cache.
    #[test]
    fn the_llama_family_trains_and_generates() {
        let config = TransformerConfig {
            family: crate::Family::Llama,
            n_heads: 4,
            n_kv_heads: Some(2),
            qkv_bias: true,
            tied_head: true,
            rope_scaling: Some(crate::RopeScaling::Linear { factor: 2.0 }),
            ..tiny_config()
        };
        let mut t = Trainer::new(
            config,
            TrainerConfig {
                lr: 3e-3,
                schedule: LrSchedule::Constant,
                batch_size: 8,
                seed: 7,
                weight_decay: 0.0,
                grad_clip: Some(1.0),
                pad_token: 0,
                lora: None,
            },
        )
        .unwrap();
        let data = reverse_examples(8);
        let (_, seen) = gradients(&t, &data);
        // tok; per layer: 2 norms, q, k, v (weight + bias), o, gate, up, down; final norm.
        assert_eq!(seen.len(), 1 + 2 * (2 + 6 + 4) + 1, "{:?}", seen);
        for (path, g) in &seen {
            let g = g.unwrap_or_else(|| panic!("{path} has no gradient"));
            // As in the GPT family, the key bias only shifts a query's scores equally.
            if !path.ends_with("k.bias") {
                assert!(g.is_finite() && g > 1e-7, "{path}: gradient max |g| = {g}");
            }
        }
        let losses = t.fit(&data, 300).unwrap();
        let last = losses.last().copied().unwrap();
        assert!(last < 0.05, "final loss {last} (first {})", losses[0]);
        let model = t.inference_model();
        let prompts: Vec<Vec<u32>> = (0..8).map(reverse_prompt).collect();
        let o = crate::GenerateOptions::greedy(10, Some(EOS));
        let out = model.generate(&prompts, &o).unwrap();
        assert_eq!(out, model.generate_uncached(&prompts, &o).unwrap());
        for (i, o) in out.iter().enumerate() {
            let mut want = reverse_target(i as u32);
            want.pop();
            assert_eq!(o, &want, "prompt {i}");
        }
    }

    #[test]
    fn overfits_the_reverse_task_and_generates_it() {
        let (t, losses) = overfitted();
        let last = losses.last().copied().unwrap();
        assert!(losses[0] > 1.5, "initial loss {}", losses[0]);
        assert!(last < 0.02, "final loss {last} (first {})", losses[0]);
        let model = t.inference_model();
        let prompts: Vec<Vec<u32>> = (0..8).map(reverse_prompt).collect();
        let out = model
            .generate(&prompts, &crate::GenerateOptions::greedy(10, Some(EOS)))
            .unwrap();
        for (i, o) in out.iter().enumerate() {
            let mut want = reverse_target(i as u32);
            want.pop();
            assert_eq!(o, &want, "prompt {i}");
        }
    }

    #[test]
    fn padding_is_masked_out_of_the_loss() {
        let t = trainer(2);
        let short = Example::new(&[BOS, 4, 5], &[6, EOS]);
        let long = Example::new(&[BOS, 4, 5, 6, 7, SEP], &[8, 9, 10, EOS]);
        let alone = |e: &Example| {
            t.loss(std::slice::from_ref(e))
                .unwrap()
                .into_scalar::<f32>()
        };
        let (ls, ll) = (alone(&short), alone(&long));
        let both = t.loss(&[short, long]).unwrap().into_scalar::<f32>();
        // Mean over the 2 + 4 learned tokens.
        let want = (2.0 * ls + 4.0 * ll) / 6.0;
        assert!((both - want).abs() < 1e-5, "{both} vs {want}");
    }

    #[test]
    fn the_prompt_is_not_learned() {
        // Only the last token is learned: the loss is -log p(last | prefix), whatever the
        // prompt's own tokens are as targets.
        let t = trainer(3);
        let e = Example {
            tokens: vec![BOS, 4, 5, 6],
            loss_mask: vec![true, true, true, true],
        };
        let mut only_last = e.clone();
        only_last.loss_mask = vec![false, false, false, true];
        let full = t.loss(&[e]).unwrap().into_scalar::<f32>();
        let last = t.loss(&[only_last]).unwrap().into_scalar::<f32>();
        let model = t.inference_model();
        let n = 3;
        let logits = model.gpt().forward(
            int_tensor(vec![1, 4, 5], [1, n], &crate::cpu_device()),
            int_tensor(vec![0, 1, 2], [1, n], &crate::cpu_device()),
            causal_mask(1, n, &crate::cpu_device()),
        );
        let lp = log_softmax(logits, 2).slice([0..1, 2..3, 0..12]);
        let want = -lp.into_data().iter::<f32>().nth(6).unwrap();
        assert!((last - want).abs() < 1e-4, "{last} vs {want}");
        assert!((full - last).abs() > 1e-3, "the mask changed nothing");
    }

    #[test]
    fn training_is_deterministic_under_a_seed() {
        let data = reverse_examples(8);
        let run = |seed| trainer(seed).fit(&data, 3).unwrap();
        let (a, b, c) = (run(5), run(5), run(6));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    /// A policy-gradient step raises the likelihood of a positively rewarded sequence and
    /// lowers that of a negatively rewarded one; advantage 1 everywhere is the SFT step; zero
    /// advantages move nothing but the weight decay (none here).
    #[test]
    fn policy_gradient_steps_follow_the_sign_of_the_advantage() {
        let good = Example::new(&reverse_prompt(1), &reverse_target(1));
        let bad = Example::new(&reverse_prompt(2), &reverse_target(3));
        let batch = vec![good.clone(), bad.clone()];
        let nll = |t: &Trainer, e: &Example| {
            t.loss(std::slice::from_ref(e))
                .unwrap()
                .into_scalar::<f32>()
        };
        let mut t = trainer(5);
        let (g0, b0) = (nll(&t, &good), nll(&t, &bad));
        for _ in 0..5 {
            t.policy_gradient_step_at(&batch, &[1.0, -1.0], 3e-3)
                .unwrap();
        }
        let (g1, b1) = (nll(&t, &good), nll(&t, &bad));
        assert!(g1 < g0 && b1 > b0, "good {g0} -> {g1}, bad {b0} -> {b1}");
        // Advantage 1 on every example is the plain cross-entropy step.
        let (mut a, mut b) = (trainer(6), trainer(6));
        let la = a
            .policy_gradient_step_at(&batch, &[1.0, 1.0], 1e-3)
            .unwrap();
        let lb = b.train_step_at(&batch, 1e-3).unwrap();
        assert_eq!(la.to_bits(), lb.to_bits());
        assert_eq!(nll(&a, &good).to_bits(), nll(&b, &good).to_bits());
        let mut z = trainer(8);
        let before = nll(&z, &good);
        z.policy_gradient_step_at(&batch, &[0.0, 0.0], 1e-2)
            .unwrap();
        assert_eq!(nll(&z, &good).to_bits(), before.to_bits());
        assert!(z.policy_gradient_step_at(&batch, &[1.0], 1e-3).is_err());
        assert!(z
            .policy_gradient_step_at(&batch, &[f32::NAN, 1.0], 1e-3)
            .is_err());
    }

    #[test]
    fn bad_batches_are_errors() {
        let mut t = trainer(4);
        assert!(matches!(t.train_step(&[]), Err(NeuralError::Input(_))));
        let bad_mask = Example {
            tokens: vec![1, 2, 3],
            loss_mask: vec![true],
        };
        assert!(matches!(
            t.train_step(&[bad_mask]),
            Err(NeuralError::Input(_))
        ));
        let out_of_vocab = Example::new(&[1], &[99]);
        let err = t.train_step(&[out_of_vocab]).unwrap_err();
        assert!(err.to_string().contains("outside the vocabulary"), "{err}");
        let too_long = Example::new(&[1; 10], &[2; 10]);
        assert!(matches!(
            t.train_step(&[too_long]),
            Err(NeuralError::Input(_))
        ));
        let nothing = Example::new(&[1, 2, 3], &[]);
        assert!(matches!(
            t.train_step(&[nothing]),
            Err(NeuralError::Input(_))
        ));
        assert_eq!(t.steps(), 0);
    }

    #[test]
    fn cosine_schedule_warms_up_and_decays() {
        let s = LrSchedule::Cosine {
            warmup_steps: 10,
            total_steps: 110,
            min_ratio: 0.1,
        };
        assert!((s.lr(1.0, 0) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 9) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 10) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 60) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 1000) - 0.1).abs() < 1e-12);
        assert_eq!(LrSchedule::Constant.lr(0.3, 1000), 0.3);
    }

    #[test]
    fn trainer_and_model_are_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<crate::NeuralModel>();
        check::<Trainer>();
    }
}
