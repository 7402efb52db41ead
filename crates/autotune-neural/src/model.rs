//! The model: configuration, the burn module and its forward passes (full and KV-cached).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderLayer,
};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::module::linear;
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
    /// The feed-forward block's activation (the exact GELU unless a checkpoint says otherwise:
    /// GPT-2's is the tanh approximation).
    #[serde(default)]
    pub activation: Activation,
    /// The layer norms' epsilon.
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// The head shares the token embedding (logits `h . tok^T`, no bias), as GPT-2's does;
    /// otherwise it is a linear layer of its own with a bias.
    #[serde(default)]
    pub tied_head: bool,
}

/// The activation of the feed-forward block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x Phi(x)`, with `Phi` from `erf` (PyTorch's `gelu`).
    #[default]
    Gelu,
    /// `x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2` (GPT-2's `gelu_new`, PyTorch's
    /// `gelu(approximate="tanh")`).
    GeluTanh,
}

fn default_layer_norm_eps() -> f64 {
    1e-5
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
            activation: Activation::Gelu,
            layer_norm_eps: default_layer_norm_eps(),
            tied_head: false,
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
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return bad(format!(
                "layer_norm_eps must be in (0, 1): {}",
                self.layer_norm_eps
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
    /// norm and the head (all linear layers with bias; no head of its own when it is tied).
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
        let head = if self.tied_head {
            0
        } else {
            d.checked_mul(self.vocab)?.checked_add(self.vocab)?
        };
        layer
            .checked_mul(self.n_layers)?
            .checked_add(embeddings)?
            .checked_add(head)?
            .checked_add(d.checked_mul(2)?)
    }
}

/// The decoder-only transformer as a burn module: token and learned position embeddings, a
/// pre-norm encoder stack used with a causal mask, a final layer norm and a linear head (or
/// the token embedding, transposed, when the head is tied).
#[derive(Module, Debug)]
pub struct Gpt {
    pub tok: Embedding,
    pub pos: Embedding,
    pub enc: TransformerEncoder,
    pub norm: LayerNorm,
    /// `None` when the head is tied to `tok`.
    pub head: Option<Linear>,
    #[module(skip)]
    pub activation: Activation,
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
            .with_layer_norm_eps(config.layer_norm_eps)
            .init(device),
            norm: LayerNormConfig::new(config.d_model)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
            head: (!config.tied_head)
                .then(|| LinearConfig::new(config.d_model, config.vocab).init(device)),
            activation: config.activation,
        }
    }

    /// Logits `[batch, time, vocab]` for `tokens` at `positions` (both `[batch, time]`), with
    /// `mask_attn` (`[batch, time, time]`, true = may not attend). Masked scores are set to
    /// burn's `min_float` (-1e4), as burn's `MultiHeadAttention` does.
    pub fn forward(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask_attn: Tensor<3, Bool>,
    ) -> Tensor<3> {
        let mut h = self.tok.forward(tokens) + self.pos.forward(positions);
        let [b, t, _] = h.dims();
        let mask = mask_attn.reshape([b, 1, t, t]);
        for layer in &self.enc.layers {
            h = layer_forward(layer, h, &mask, self.activation);
        }
        self.logits(self.norm.forward(h))
    }

    /// The head: `[batch, time, d_model]` to `[batch, time, vocab]`.
    fn logits(&self, h: Tensor<3>) -> Tensor<3> {
        match &self.head {
            Some(head) => rows(head, h),
            None => {
                let [b, t, d] = h.dims();
                let table = self.tok.weight.val();
                let vocab = table.dims()[0];
                h.reshape([b * t, d])
                    .matmul(table.transpose())
                    .reshape([b, t, vocab])
            }
        }
    }

    /// One incremental pass: the new tokens `[batch, t]` at `positions`, attending to the
    /// cached keys and values plus their own (causally; a row's padding columns, see
    /// [`KvCache::new`], are never attended to). Returns the logits of the last new position,
    /// `[batch, vocab]`.
    pub(crate) fn forward_cached(
        &self,
        tokens: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        cache: &mut KvCache,
    ) -> Tensor<2> {
        let mut x = self.tok.forward(tokens) + self.pos.forward(positions);
        let [b, t, _] = x.dims();
        assert!(
            b == cache.batch && cache.len + t <= cache.columns,
            "KV cache of {} rows x {} columns ({} used) cannot take [{b}, {t}]",
            cache.batch,
            cache.columns,
            cache.len
        );
        for (index, layer) in self.enc.layers.iter().enumerate() {
            x = layer_forward_cached(layer, x, cache, index, self.activation);
        }
        cache.len += t;
        let [b, t, d] = x.dims();
        let last = x.slice([0..b, t - 1..t, 0..d]);
        let logits = self.logits(self.norm.forward(last));
        let vocab = logits.dims()[2];
        logits.reshape([b, vocab])
    }
}

/// burn's `TransformerEncoderLayer::forward` with `norm_first` (pre-norm: `norm_2` before
/// attention, `norm_1` before the feed-forward block), the same operations in the same order,
/// dropout included, except GELU (see [`gelu`]) and the softmax's gradient (see
/// [`softmax_last`]).
fn layer_forward(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    mask: &Tensor<4, Bool>,
    activation: Activation,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let mha = &layer.mha;
    let (heads, d_k) = (mha.n_heads, mha.d_k);
    let h = layer.norm_2.forward(x.clone());
    let split = |y: Tensor<3>| y.reshape([b, t, heads, d_k]).swap_dims(1, 2);
    let q = split(rows(&mha.query, h.clone()));
    let k = split(rows(&mha.key, h.clone()));
    let v = split(rows(&mha.value, h));
    let scores = q
        .matmul(k.transpose())
        .div_scalar((d_k as f32).sqrt())
        .mask_fill(mask.clone(), mha.min_float);
    let weights = mha.dropout.forward(softmax_last(scores));
    let ctx = weights.matmul(v).swap_dims(1, 2).reshape([b, t, d]);
    let x = x + layer.dropout.forward(rows(&mha.output, ctx));
    let f = feed_forward(layer, layer.norm_1.forward(x.clone()), activation);
    x + layer.dropout.forward(f)
}

/// `softmax(scores, 3)`. With autodiff, burn differentiates softmax as five elementwise
/// operations (max, subtract, exp, sum, divide) that flex runs on one thread; here the values
/// come from flex's fused, parallel softmax of the values (a constant `p`) and the gradient
/// from softmax's linearisation around them: with `delta = s - s.detach()` (0, but carrying
/// the gradient), `p + p * delta - p * sum(p * delta)` is `p` exactly and its Jacobian is
/// softmax's, `diag(p) - p p^T`. Needs finite scores (`delta` of `-inf` is NaN).
fn softmax_last(scores: Tensor<4>) -> Tensor<4> {
    if !scores.is_tracked() {
        return softmax(scores, 3);
    }
    let p = softmax(scores.clone().inner(), 3);
    let delta = scores.clone() - scores.detach();
    let a = delta * p.clone();
    let r = a.clone().sum_dim(3);
    a - r * p.clone() + p
}

/// `linear.forward(x)` with `x`'s `[batch, time]` rows flattened into one dimension: one
/// `[batch * time, d_in] x [d_in, d_out]` matmul, and in the backward pass one matmul for the
/// weight's gradient. Given `[batch, time, d_in]`, burn keeps the batch dimension when `time`
/// is short (47 here): `batch` small matmuls forward, and for the weight `batch` products
/// `[d_in, d_out]` summed afterwards.
fn rows(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = linear.forward(x.reshape([b * t, d]));
    let out = y.dims()[1];
    y.reshape([b, t, out])
}

/// burn's `PositionWiseFeedForward::forward` (linear, GELU, dropout, linear) with [`gelu`].
fn feed_forward(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    activation: Activation,
) -> Tensor<3> {
    let pwff = &layer.pwff;
    let hidden = gelu(rows(&pwff.linear_inner, x), activation);
    rows(&pwff.linear_outer, pwff.dropout.forward(hidden))
}

/// The exact GELU, `x Phi(x)` with `Phi` from `erf`, as burn's `Gelu` (which `burn::nn`'s
/// transformer uses), computed with the kernels of [`crate::kernels`] instead of burn's scalar
/// `erff` per element. Without autodiff the values are computed in place. With autodiff it is
/// `x * slope + offset` with `slope = gelu'(x)` and `offset = gelu(x) - x slope` computed from
/// `x`'s values as constants: the value is `gelu(x)` (to rounding) and the gradient
/// `gelu'(x)`, one multiplication and one addition for burn to differentiate. The tanh
/// approximation ([`Activation::GeluTanh`]) likewise.
fn gelu(x: Tensor<3>, activation: Activation) -> Tensor<3> {
    use crate::kernels::{
        gelu_in_place, gelu_slope_offset, gelu_tanh_in_place, gelu_tanh_slope_offset,
    };
    type SlopeOffset = fn(&[f32], &mut [f32], &mut [f32]);
    let (in_place, slope_offset): (fn(&mut [f32]), SlopeOffset) = match activation {
        Activation::Gelu => (gelu_in_place, gelu_slope_offset),
        Activation::GeluTanh => (gelu_tanh_in_place, gelu_tanh_slope_offset),
    };
    let dims = x.dims();
    let device = x.device();
    if !x.is_tracked() {
        let mut data = x.into_data();
        in_place(data.as_mut_slice::<f32>().expect("f32 activations"));
        return Tensor::from_data(data, &device);
    }
    let data = x.clone().into_data();
    let xs = data.as_slice::<f32>().expect("f32 activations");
    let (mut slope, mut offset) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
    slope_offset(xs, &mut slope, &mut offset);
    let slope = Tensor::<3>::from_data(TensorData::new(slope, dims), &device);
    let offset = Tensor::<3>::from_data(TensorData::new(offset, dims), &device);
    x * slope + offset
}

/// A preallocated KV cache for batched generation, outside burn: the keys and values of every
/// layer in buffers written in place (keys transposed, `[batch, heads, d_k, columns]`, so that
/// eight columns' scores are computed at once; values `[batch, heads, columns, d_k]`), and the fused
/// query/key/value projection of every layer (one matmul instead of three). Attention over the
/// cache is computed here directly: for one new token it is a few dot products per head, and
/// burn's ops would copy the whole cache at every step (`cat`) and make a dozen tensors.
pub(crate) struct KvCache {
    batch: usize,
    heads: usize,
    d_k: usize,
    /// Columns the buffers hold (prompt block plus generated tokens).
    columns: usize,
    /// Columns written so far.
    len: usize,
    /// Row `i`'s columns before `pad[i]` are padding: never attended to.
    pad: Vec<usize>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    /// Per layer: `[d_model, 3 d_model]` weight and `[3 d_model]` bias (query, key, value).
    qkv: Vec<(Tensor<2>, Tensor<1>)>,
}

impl KvCache {
    /// An empty cache for `pad.len()` rows of up to `columns` columns for `gpt`.
    pub(crate) fn new(gpt: &Gpt, pad: Vec<usize>, columns: usize) -> Self {
        let (batch, layers) = (pad.len(), gpt.enc.layers.len());
        let mha = &gpt.enc.layers[0].mha;
        let (heads, d_k) = (mha.n_heads, mha.d_k);
        let size = batch * heads * columns * d_k;
        let bias = |l: &Linear| match &l.bias {
            Some(b) => b.val(),
            None => Tensor::zeros([l.weight.dims()[1]], &l.weight.device()),
        };
        let qkv = gpt
            .enc
            .layers
            .iter()
            .map(|layer| {
                let m = &layer.mha;
                let w = Tensor::cat(
                    vec![
                        m.query.weight.val(),
                        m.key.weight.val(),
                        m.value.weight.val(),
                    ],
                    1,
                );
                let b = Tensor::cat(vec![bias(&m.query), bias(&m.key), bias(&m.value)], 0);
                (w, b)
            })
            .collect();
        Self {
            batch,
            heads,
            d_k,
            columns,
            len: 0,
            pad,
            keys: (0..layers).map(|_| take_buffer(size)).collect(),
            values: (0..layers).map(|_| take_buffer(size)).collect(),
            qkv,
        }
    }
}

impl Drop for KvCache {
    fn drop(&mut self) {
        BUFFERS.with(|pool| {
            let mut pool = pool.borrow_mut();
            for buffer in self.keys.drain(..).chain(self.values.drain(..)) {
                if pool.len() < MAX_POOLED_BUFFERS {
                    pool.push(buffer);
                }
            }
        });
    }
}

/// Cache buffers kept from one generation to the next on this thread: a fresh multi-megabyte
/// allocation is fresh memory from the system, and touching it costs a page fault per page.
const MAX_POOLED_BUFFERS: usize = 64;

thread_local! {
    static BUFFERS: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A buffer of `len` floats, from the pool if it has one. Its contents are unspecified: every
/// cache column is written (prefill, then one per step) before it is read.
fn take_buffer(len: usize) -> Vec<f32> {
    let mut buffer = BUFFERS
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    } else {
        buffer.truncate(len);
    }
    buffer
}

/// A pre-norm encoder layer (burn's `TransformerEncoderLayer` with `norm_first`: `norm_2`
/// before attention, `norm_1` before the feed-forward block) over new positions only, writing
/// their keys and values into the cache and attending to the cached ones. Inference only: no
/// dropout. The attention is burn's `MultiHeadAttention` (scores `q.k / sqrt(d_k)`, masked
/// keys out of the softmax) on the visible keys: the masked ones, filled with -1e4 by burn,
/// get weight exactly 0 there too. A padding position (no visible key) gets a zero context;
/// nothing real attends to it.
fn layer_forward_cached(
    layer: &TransformerEncoderLayer,
    x: Tensor<3>,
    cache: &mut KvCache,
    index: usize,
    activation: Activation,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let device = x.device();
    let h = layer.norm_2.forward(x.clone());
    let (w, bias) = &cache.qkv[index];
    let qkv = linear(h, w.clone(), Some(bias.clone())).into_data();
    let qkv = qkv.as_slice::<f32>().expect("f32 activations");
    let ctx = attend_cached(qkv, cache, index, t, d);
    let ctx = Tensor::<3>::from_data(TensorData::new(ctx, [b, t, d]), &device);
    let x = x + rows(&layer.mha.output, ctx);
    x.clone() + feed_forward(layer, layer.norm_1.forward(x), activation)
}

/// Stores the keys and values of `qkv` (`[batch, t, 3 d]`: queries, keys, values) at columns
/// `cache.len..cache.len + t` of layer `index` and returns the attention context `[batch, t, d]`.
fn attend_cached(qkv: &[f32], cache: &mut KvCache, index: usize, t: usize, d: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (heads, d_k, columns, past) = (cache.heads, cache.d_k, cache.columns, cache.len);
    let scale = (d_k as f32).sqrt();
    let per_row = heads * columns * d_k;
    let mut ctx = vec![0f32; cache.batch * t * d];
    // Rows in parallel: each has its own part of the buffers and of the context.
    ctx.par_chunks_mut(t * d)
        .zip(cache.keys[index].par_chunks_mut(per_row))
        .zip(cache.values[index].par_chunks_mut(per_row))
        .zip(cache.pad.par_iter())
        .zip(qkv.par_chunks(t * 3 * d))
        .for_each_init(
            || vec![0f32; past + t],
            |weights, ((((ctx, keys), values), &pad), qkv)| {
                for j in 0..t {
                    let row = &qkv[j * 3 * d..(j + 1) * 3 * d];
                    for hh in 0..heads {
                        // Keys transposed, `[d_k, columns]` per head; values `[columns, d_k]`.
                        let base = hh * columns * d_k;
                        let key = &row[d + hh * d_k..d + (hh + 1) * d_k];
                        for (jj, &k) in key.iter().enumerate() {
                            keys[base + jj * columns + past + j] = k;
                        }
                        let at = base + (past + j) * d_k;
                        values[at..at + d_k]
                            .copy_from_slice(&row[2 * d + hh * d_k..2 * d + (hh + 1) * d_k]);
                    }
                }
                for j in 0..t {
                    let col = past + j;
                    if pad > col {
                        continue;
                    }
                    let row = &qkv[j * 3 * d..(j + 1) * 3 * d];
                    for hh in 0..heads {
                        let base = hh * columns * d_k;
                        crate::kernels::attend_one(
                            &row[hh * d_k..(hh + 1) * d_k],
                            &keys[base..base + columns * d_k],
                            columns,
                            (pad, col + 1),
                            &values[base + pad * d_k..base + (col + 1) * d_k],
                            scale,
                            weights,
                            &mut ctx[j * d + hh * d_k..j * d + (hh + 1) * d_k],
                        );
                    }
                }
            },
        );
    ctx
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
