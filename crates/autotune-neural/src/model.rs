//! The model: configuration, the burn module and its forward passes (full and KV-cached).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput, TransformerEncoderLayer,
};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{NeuralError, Result, TokenId};

/// The shape of a model. Serialised into `config.json` beside every checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransformerConfig {
    /// Vocabulary size: token ids are `0..vocab`.
    pub vocab: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    pub n_layers: usize,
    /// Attention heads; must divide `d_model`.
    pub n_heads: usize,
    /// Width of the feed-forward hidden layer.
    pub d_ff: usize,
    /// Longest sequence (prompt plus generation) the model can see: the number of learned
    /// positions.
    pub max_len: usize,
    /// Dropout on attention weights and residual branches during training (0 disables).
    pub dropout: f64,
}

impl TransformerConfig {
    /// The default small model: 4 layers, width 96, 4 heads, feed-forward 384 (about 0.45M
    /// parameters for a vocabulary of 24 and 64 positions).
    pub fn small(vocab: usize, max_len: usize) -> Self {
        Self {
            vocab,
            d_model: 96,
            n_layers: 4,
            n_heads: 4,
            d_ff: 384,
            max_len,
            dropout: 0.0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(NeuralError::Config(m));
        if self.vocab == 0 || self.d_model == 0 || self.n_layers == 0 || self.n_heads == 0 {
            return bad(format!(
                "vocab, d_model, n_layers and n_heads must be positive: {self:?}"
            ));
        }
        if self.d_ff == 0 || self.max_len < 2 {
            return bad(format!(
                "d_ff must be positive and max_len at least 2: {self:?}"
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return bad(format!(
                "n_heads ({}) must divide d_model ({})",
                self.n_heads, self.d_model
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout must be in [0, 1): {}", self.dropout));
        }
        if self.vocab > i32::MAX as usize {
            return bad(format!("vocab {} is too large", self.vocab));
        }
        if self.num_params().is_none() {
            return bad(format!("the model's parameter count overflows: {self:?}"));
        }
        Ok(())
    }

    /// The number of parameters of [`Gpt`] with this config, computed without building it
    /// (`None` when it overflows): token and position embeddings, per layer the attention's
    /// four projections, the feed-forward's two layers and two layer norms, the final layer
    /// norm and the head (all linear layers with bias).
    pub fn num_params(&self) -> Option<usize> {
        let (d, f) = (self.d_model, self.d_ff);
        let attention = d.checked_mul(d)?.checked_add(d)?.checked_mul(4)?;
        let feed_forward = d
            .checked_mul(f)?
            .checked_mul(2)?
            .checked_add(f)?
            .checked_add(d)?;
        let layer = attention
            .checked_add(feed_forward)?
            .checked_add(d.checked_mul(4)?)?;
        let embeddings = self.vocab.checked_add(self.max_len)?.checked_mul(d)?;
        let head = d.checked_mul(self.vocab)?.checked_add(self.vocab)?;
        layer
            .checked_mul(self.n_layers)?
            .checked_add(embeddings)?
            .checked_add(head)?
            .checked_add(d.checked_mul(2)?)
    }
}

/// The decoder-only transformer as a burn module: token and learned position embeddings, a
/// pre-norm encoder stack used with a causal mask, a final layer norm and a linear head.
#[derive(Module, Debug)]
pub struct Gpt {
    pub tok: Embedding,
    pub pos: Embedding,
    pub enc: TransformerEncoder,
    pub norm: LayerNorm,
    pub head: Linear,
}

impl Gpt {
    /// A freshly initialised model on `device` (pass `cpu_device().autodiff()` to train). The
    /// parameters are drawn from burn's global RNG seeded with `seed`, under the crate's RNG
    /// lock, and materialised before the lock is released, so the same seed gives the same
    /// weights whatever else runs concurrently.
    pub fn new(config: &TransformerConfig, device: &Device, seed: u64) -> Result<Self> {
        config.validate()?;
        let _guard = crate::burn_rng_lock();
        device.seed(seed);
        let model = Self::init(config, device);
        model.visit(&mut Materialize);
        Ok(model)
    }

    fn init(config: &TransformerConfig, device: &Device) -> Self {
        Self {
            tok: EmbeddingConfig::new(config.vocab, config.d_model).init(device),
            pos: EmbeddingConfig::new(config.max_len, config.d_model).init(device),
            enc: TransformerEncoderConfig::new(
                config.d_model,
                config.d_ff,
                config.n_heads,
                config.n_layers,
            )
            .with_norm_first(true)
            .with_dropout(config.dropout)
            .init(device),
            norm: LayerNormConfig::new(config.d_model).init(device),
            head: LinearConfig::new(config.d_model, config.vocab).init(device),
        }
    }

    /// Logits `[batch, time, vocab]` for `tokens` at `positions` (both `[batch, time]`), with
    /// `mask_attn` (`[batch, time, time]`, true = may not attend).
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask_attn: Tensor<3, Bool>,
    ) -> Tensor<3> {
        let h = self.tok.forward(tokens) + self.pos.forward(positions);
        let h = self
            .enc
            .forward(TransformerEncoderInput::new(h).mask_attn(mask_attn));
        self.head.forward(self.norm.forward(h))
    }

    /// One incremental pass: the new tokens `[batch, t]` at `positions`, attending to the
    /// cached keys and values plus their own (`mask`: `[batch, 1, t, past + t]`, true = may
    /// not attend). Returns the logits of the last new position, `[batch, vocab]`.
    pub(crate) fn forward_cached(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4, Bool>,
        cache: &mut KvCache,
    ) -> Tensor<2> {
        let mut x = self.tok.forward(tokens) + self.pos.forward(positions);
        if cache.layers.is_empty() {
            cache.layers = (0..self.enc.layers.len()).map(|_| None).collect();
        }
        for (layer, kv) in self.enc.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer_forward_cached(layer, x, mask.clone(), kv);
        }
        let [b, t, d] = x.dims();
        let last = x.slice([0..b, t - 1..t, 0..d]);
        let logits = self.head.forward(self.norm.forward(last));
        let vocab = logits.dims()[2];
        logits.reshape([b, vocab])
    }
}

/// Keys and values of every layer, `[batch, heads, time, d_k]` each.
#[derive(Default)]
pub(crate) struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
}

/// A pre-norm encoder layer (burn's `TransformerEncoderLayer` with `norm_first`: `norm_2`
/// before attention, `norm_1` before the feed-forward block) over new positions only, reusing
/// and extending the cached keys and values. Inference only: no dropout.
fn layer_forward_cached(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    mask: Tensor<4, Bool>,
    kv: &mut Option<(Tensor<4>, Tensor<4>)>,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let mha = &layer.mha;
    let (heads, d_k) = (mha.n_heads, mha.d_k);
    let h = layer.norm_2.forward(x.clone());
    let split = |y: Tensor<3>| y.reshape([b, t, heads, d_k]).swap_dims(1, 2);
    let q = split(mha.query.forward(h.clone()));
    let k = split(mha.key.forward(h.clone()));
    let v = split(mha.value.forward(h));
    let (k, v) = match kv.take() {
        Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
        None => (k, v),
    };
    *kv = Some((k.clone(), v.clone()));
    let scores = q
        .matmul(k.transpose())
        .div_scalar((d_k as f32).sqrt())
        .mask_fill(mask, mha.min_float);
    let ctx = softmax(scores, 3)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, t, d]);
    let x = x + mha.output.forward(ctx);
    x.clone() + layer.pwff.forward(layer.norm_1.forward(x))
}

/// Forces lazy parameters to be initialised (in visiting order, hence deterministically).
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// `[batch, time]` token ids as a burn tensor, checking the vocabulary.
pub(crate) fn int_tensor(values: Vec<i64>, shape: [usize; 2], device: &Device) -> Tensor<2, Int> {
    Tensor::<2, Int>::from_data(TensorData::new(values, shape), device)
}

pub(crate) fn check_tokens(tokens: &[TokenId], vocab: usize, what: &str) -> Result<()> {
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab) {
        return Err(NeuralError::Input(format!(
            "{what}: token {bad} is outside the vocabulary 0..{vocab}"
        )));
    }
    Ok(())
}

/// A model ready for generation: the weights without autodiff, and the config they follow.
#[derive(Clone, Debug)]
pub struct NeuralModel {
    pub(crate) config: TransformerConfig,
    pub(crate) gpt: Gpt,
}

impl NeuralModel {
    /// A freshly initialised model (untrained), on the plain CPU device.
    pub fn new(config: TransformerConfig, seed: u64) -> Result<Self> {
        let gpt = Gpt::new(&config, &crate::cpu_device(), seed)?;
        Ok(Self { config, gpt })
    }

    /// Wraps trained weights; `gpt` may live on the autodiff device (it is converted with
    /// [`Module::valid`]).
    pub fn from_gpt(config: TransformerConfig, gpt: &Gpt) -> Self {
        Self {
            config,
            gpt: gpt.valid(),
        }
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.config
    }

    pub fn gpt(&self) -> &Gpt {
        &self.gpt
    }

    pub fn num_params(&self) -> usize {
        self.gpt.num_params()
    }
}
