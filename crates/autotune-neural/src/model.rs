//! The model: configuration, the burn module and its forward passes (full and KV-cached).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderLayer,
};
use burn::nn::{
    Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, RmsNorm,
    RmsNormConfig,
};
use burn::tensor::activation::{silu, softmax};
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
    /// otherwise it is a linear layer of its own (with a bias in the GPT family, without in
    /// the Llama family).
    #[serde(default)]
    pub tied_head: bool,
    /// The layer architecture: GPT-2's (the default) or Llama's (also Qwen2's).
    #[serde(default)]
    pub family: Family,
    /// Llama family: key/value heads (grouped-query attention; must divide `n_heads`).
    /// `None`: as many as query heads.
    #[serde(default)]
    pub n_kv_heads: Option<usize>,
    /// Llama family: the rotary embedding's base.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// Llama family: how the rotary frequencies are scaled for long contexts.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Llama family: biases on the query, key and value projections (Qwen2's).
    #[serde(default)]
    pub qkv_bias: bool,
}

/// The layer architecture of a [`TransformerConfig`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Learned positions, LayerNorm, GELU feed-forward, biases everywhere (GPT-2).
    #[default]
    Gpt,
    /// Rotary positions, RMSNorm, SwiGLU feed-forward, grouped-query attention, no biases
    /// but optionally on the query, key and value projections (Llama, Qwen2).
    Llama,
}

/// Scaling of the rotary frequencies, as transformers' `rope_scaling` (`rope_parameters`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RopeScaling {
    /// Every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3's: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

fn default_rope_theta() -> f64 {
    10_000.0
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
            family: Family::Gpt,
            n_kv_heads: None,
            rope_theta: default_rope_theta(),
            rope_scaling: None,
            qkv_bias: false,
        }
    }

    /// Key/value heads: `n_kv_heads`, or `n_heads` when it is not set.
    pub fn kv_heads(&self) -> usize {
        self.n_kv_heads.unwrap_or(self.n_heads)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// The rotary embedding's inverse frequencies (`head_dim / 2` of them), scaled as
    /// `rope_scaling` says, in f64 (transformers computes them in f32; the difference is far
    /// below the parity tolerance).
    pub fn rope_inv_freq(&self) -> Vec<f64> {
        let dim = self.head_dim();
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        match &self.rope_scaling {
            None => base,
            Some(RopeScaling::Linear { factor }) => base.iter().map(|f| f / factor).collect(),
            Some(RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            }) => base
                .iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    let (low_wavelen, high_wavelen) =
                        (old / low_freq_factor, old / high_freq_factor);
                    if wavelen > low_wavelen {
                        f / factor
                    } else if wavelen < high_wavelen {
                        f
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect(),
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
        if self.family == Family::Llama {
            let kv = self.kv_heads();
            if kv == 0 || !self.n_heads.is_multiple_of(kv) {
                return bad(format!(
                    "n_kv_heads ({kv}) must be positive and divide n_heads ({})",
                    self.n_heads
                ));
            }
            if !self.head_dim().is_multiple_of(2) {
                return bad(format!(
                    "the rotary embedding needs an even head width, not {}",
                    self.head_dim()
                ));
            }
            if !(self.rope_theta.is_finite() && self.rope_theta > 1.0) {
                return bad(format!("rope_theta must be above 1: {}", self.rope_theta));
            }
            let positive = |x: f64| x.is_finite() && x > 0.0;
            match &self.rope_scaling {
                Some(RopeScaling::Linear { factor }) if !positive(*factor) => {
                    return bad(format!("rope scaling factor must be positive: {factor}"));
                }
                Some(RopeScaling::Llama3 {
                    factor,
                    low_freq_factor: lo,
                    high_freq_factor: hi,
                    original_max_position_embeddings: old,
                }) if !(positive(*factor) && positive(*lo) && positive(*old) && hi > lo) => {
                    return bad(format!(
                        "llama3 rope scaling needs positive factors with high_freq_factor above low_freq_factor: {:?}",
                        self.rope_scaling
                    ));
                }
                _ => {}
            }
            if self.dropout != 0.0 {
                return bad("the Llama family has no dropout here: set it to 0".into());
            }
        } else if self.n_kv_heads.is_some_and(|kv| kv != self.n_heads) || self.qkv_bias {
            return bad("n_kv_heads and qkv_bias are Llama-family options".into());
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
        if self.family == Family::Llama {
            return self.num_params_llama();
        }
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

    /// Llama family: the token embedding, per layer the four projections (key and value
    /// `d x kv_heads * head_dim`, biases on query, key and value with `qkv_bias`), the three
    /// feed-forward matrices and two RMSNorm scales, the final scale and the head (no bias).
    fn num_params_llama(&self) -> Option<usize> {
        let (d, f) = (self.d_model, self.d_ff);
        let kv = self.kv_heads().checked_mul(self.head_dim())?;
        let mut attention = d
            .checked_mul(d)?
            .checked_mul(2)?
            .checked_add(d.checked_mul(kv)?.checked_mul(2)?)?;
        if self.qkv_bias {
            attention = attention.checked_add(d)?.checked_add(kv.checked_mul(2)?)?;
        }
        let layer = attention
            .checked_add(d.checked_mul(f)?.checked_mul(3)?)?
            .checked_add(d.checked_mul(2)?)?;
        let embeddings = self.vocab.checked_mul(d)?;
        let head = if self.tied_head { 0 } else { embeddings };
        layer
            .checked_mul(self.n_layers)?
            .checked_add(embeddings)?
            .checked_add(head)?
            .checked_add(d)
    }
}

/// The decoder-only transformer as a burn module. GPT family: token and learned position
/// embeddings, a pre-norm encoder stack (`enc`) used with a causal mask, a final layer norm and
/// a linear head. Llama family: the token embedding, [`LlamaBlock`]s with rotary positions, a
/// final RMSNorm and a head without bias. Either head may be the token embedding, transposed
/// (tied). The fields of the other family are empty (`None`, no layers), so that a GPT
/// checkpoint's tensor names are those of earlier versions.
#[derive(Module, Debug)]
pub struct Gpt {
    pub tok: Embedding,
    /// Learned positions (GPT family).
    pub pos: Option<Embedding>,
    /// GPT-family layers.
    pub enc: TransformerEncoder,
    /// Llama-family layers.
    pub blocks: Vec<LlamaBlock>,
    /// The final norm: LayerNorm (GPT family) ...
    pub norm: Option<LayerNorm>,
    /// ... or RMSNorm (Llama family).
    pub rms_norm: Option<RmsNorm>,
    /// `None` when the head is tied to `tok`.
    pub head: Option<Linear>,
    #[module(skip)]
    pub activation: Activation,
    /// Llama family: the rotary embedding and the attention's shape.
    #[module(skip)]
    pub rope: Option<Rope>,
}

/// One Llama-family layer (names as transformers' `LlamaDecoderLayer`, without the prefixes):
/// `x + o(attention(rope(q(n1(x))), rope(k(n1(x))), v(n1(x))))`, then
/// `x + down(silu(gate(n2(x))) * up(n2(x)))`.
#[derive(Module, Debug)]
pub struct LlamaBlock {
    pub input_norm: RmsNorm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub post_norm: RmsNorm,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// The rotary embedding of the Llama family (transformers' `rotate_half` convention: a head's
/// first and second halves are the two coordinates of each rotated pair) and the attention's
/// shape.
#[derive(Clone, Debug)]
pub struct Rope {
    inv_freq: Vec<f64>,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Rope {
    /// `(cos, sin)` of every position, `head_dim / 2` values each (both halves of a head use
    /// the same angles).
    fn tables(&self, positions: &[i64]) -> RopeTables {
        let half = self.inv_freq.len();
        let (mut cos, mut sin) = (
            Vec::with_capacity(positions.len() * half),
            Vec::with_capacity(positions.len() * half),
        );
        for &p in positions {
            for &f in &self.inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        (cos, sin)
    }

    /// The tables as `[batch, 1, time, head_dim]` tensors for `positions` `[batch, time]`.
    fn tensors(
        &self,
        positions: &[i64],
        b: usize,
        t: usize,
        device: &Device,
    ) -> (Tensor<4>, Tensor<4>) {
        let (cos, sin) = self.tables(positions);
        let half = self.inv_freq.len();
        let full = |v: Vec<f32>| {
            let data: Vec<f32> = v
                .chunks_exact(half)
                .flat_map(|c| c.iter().chain(c.iter()).copied())
                .collect();
            Tensor::<4>::from_data(TensorData::new(data, [b, 1, t, 2 * half]), device)
        };
        (full(cos), full(sin))
    }

    /// Rotates every head of one position's vector `x` (`n` heads of `head_dim`) in place.
    fn rotate_in_place(&self, x: &mut [f32], cos: &[f32], sin: &[f32]) {
        let half = self.head_dim / 2;
        for head in x.chunks_exact_mut(self.head_dim) {
            for i in 0..half {
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos[i] - b * sin[i];
                head[i + half] = b * cos[i] + a * sin[i];
            }
        }
    }
}

/// The rotary `(cos, sin)` of a list of positions, `head_dim / 2` values per position each.
type RopeTables = (Vec<f32>, Vec<f32>);

/// `x * cos + rotate_half(x) * sin` for `x` `[batch, heads, time, head_dim]`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, h, t, dk] = x.dims();
    let half = dk / 2;
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, half..dk]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().expand([b, h, t, dk]) + rotated * sin.clone().expand([b, h, t, dk])
}

/// Masked scores, as burn's `MultiHeadAttention` fills them.
const MASKED: f32 = -1.0e4;

/// A Llama-family layer over a whole sequence (training, and generation without the cache).
fn llama_forward(
    block: &LlamaBlock,
    x: Tensor<3>,
    mask: &Tensor<4, Bool>,
    (cos, sin): (&Tensor<4>, &Tensor<4>),
    rope: &Rope,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let (heads, kv, dk) = (rope.heads, rope.kv_heads, rope.head_dim);
    let h = block.input_norm.forward(x.clone());
    let split = |y: Tensor<3>, n: usize| y.reshape([b, t, n, dk]).swap_dims(1, 2);
    let q = rotate(split(rows(&block.q, h.clone()), heads), cos, sin);
    let k = rotate(split(rows(&block.k, h.clone()), kv), cos, sin);
    let v = split(rows(&block.v, h), kv);
    let widen = |y: Tensor<4>| {
        if kv == heads {
            y
        } else {
            y.unsqueeze_dim::<5>(2)
                .expand([b, kv, heads / kv, t, dk])
                .reshape([b, heads, t, dk])
        }
    };
    let (k, v) = (widen(k), widen(v));
    let scores = q
        .matmul(k.transpose())
        .div_scalar((dk as f32).sqrt())
        .mask_fill(mask.clone(), MASKED);
    let ctx = softmax_last(scores)
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([b, t, d]);
    let x = x + rows(&block.o, ctx);
    let h = block.post_norm.forward(x.clone());
    x + rows(
        &block.down,
        silu(rows(&block.gate, h.clone())) * rows(&block.up, h),
    )
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
        let llama = config.family == Family::Llama;
        let (d, dk) = (config.d_model, config.head_dim());
        let kvd = config.kv_heads() * dk;
        let lin =
            |i: usize, o: usize, bias: bool| LinearConfig::new(i, o).with_bias(bias).init(device);
        let rms = || {
            RmsNormConfig::new(d)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let blocks = if llama {
            (0..config.n_layers)
                .map(|_| LlamaBlock {
                    input_norm: rms(),
                    q: lin(d, d, config.qkv_bias),
                    k: lin(d, kvd, config.qkv_bias),
                    v: lin(d, kvd, config.qkv_bias),
                    o: lin(d, d, false),
                    post_norm: rms(),
                    gate: lin(d, config.d_ff, false),
                    up: lin(d, config.d_ff, false),
                    down: lin(config.d_ff, d, false),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            tok: EmbeddingConfig::new(config.vocab, config.d_model).init(device),
            pos: (!llama)
                .then(|| EmbeddingConfig::new(config.max_len, config.d_model).init(device)),
            blocks,
            rms_norm: llama.then(rms),
            rope: llama.then(|| Rope {
                inv_freq: config.rope_inv_freq(),
                heads: config.n_heads,
                kv_heads: config.kv_heads(),
                head_dim: dk,
            }),
            enc: TransformerEncoderConfig::new(
                config.d_model,
                config.d_ff,
                config.n_heads,
                if llama { 0 } else { config.n_layers },
            )
            .with_norm_first(true)
            .with_dropout(config.dropout)
            .with_layer_norm_eps(config.layer_norm_eps)
            .init(device),
            norm: (!llama).then(|| {
                LayerNormConfig::new(config.d_model)
                    .with_epsilon(config.layer_norm_eps)
                    .init(device)
            }),
            head: (!config.tied_head).then(|| lin(config.d_model, config.vocab, !llama)),
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
        let mut h = self.embed(tokens, positions.clone());
        let [b, t, _] = h.dims();
        let mask = mask_attn.reshape([b, 1, t, t]);
        for layer in &self.enc.layers {
            h = layer_forward(layer, h, &mask, self.activation);
        }
        if let Some(rope) = &self.rope {
            let positions: Vec<i64> = positions.into_data().iter::<i64>().collect();
            let (cos, sin) = rope.tensors(&positions, b, t, &h.device());
            for block in &self.blocks {
                h = llama_forward(block, h, &mask, (&cos, &sin), rope);
            }
        }
        self.logits(self.final_norm(h))
    }

    /// Token embeddings, plus learned positions in the GPT family.
    fn embed(&self, tokens: Tensor<2, Int>, positions: Tensor<2, Int>) -> Tensor<3> {
        let h = self.tok.forward(tokens);
        match &self.pos {
            Some(pos) => h + pos.forward(positions),
            None => h,
        }
    }

    fn final_norm(&self, h: Tensor<3>) -> Tensor<3> {
        match (&self.norm, &self.rms_norm) {
            (Some(norm), _) => norm.forward(h),
            (None, Some(norm)) => norm.forward(h),
            (None, None) => h,
        }
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
        let rope_tables = self.rope.as_ref().map(|rope| {
            let positions: Vec<i64> = positions.clone().into_data().iter::<i64>().collect();
            rope.tables(&positions)
        });
        let mut x = self.embed(tokens, positions);
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
        if let (Some(rope), Some(tables)) = (&self.rope, &rope_tables) {
            for (index, block) in self.blocks.iter().enumerate() {
                x = llama_forward_cached(block, x, cache, index, (rope, tables));
            }
        }
        cache.len += t;
        let [b, t, d] = x.dims();
        let last = x.slice([0..b, t - 1..t, 0..d]);
        let logits = self.logits(self.final_norm(last));
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
/// layer in buffers written in place (keys transposed, `[batch, kv_heads, d_k, columns]`, so
/// that eight columns' scores are computed at once; values `[batch, kv_heads, columns, d_k]`),
/// and the fused query/key/value projection of every layer (one matmul instead of three).
/// Attention over the cache is computed here directly: for one new token it is a few dot
/// products per head, and burn's ops would copy the whole cache at every step (`cat`) and make
/// a dozen tensors. In the Llama family the keys are stored rotated, and query head `h` reads
/// key/value head `h / (heads / kv_heads)`.
pub(crate) struct KvCache {
    batch: usize,
    heads: usize,
    kv_heads: usize,
    d_k: usize,
    /// Columns the buffers hold (prompt block plus generated tokens).
    columns: usize,
    /// Columns written so far.
    len: usize,
    /// Row `i`'s columns before `pad[i]` are padding: never attended to.
    pad: Vec<usize>,
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    /// Per layer: `[d_model, (heads + 2 kv_heads) d_k]` weight and its bias (query, key, value).
    qkv: Vec<(Tensor<2>, Tensor<1>)>,
}

pub(crate) fn bias_or_zeros(l: &Linear) -> Tensor<1> {
    match &l.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([l.weight.dims()[1]], &l.weight.device()),
    }
}

/// The query, key and value projections as one: weights side by side, biases (zeros where
/// there is none) end to end.
pub(crate) fn fused(q: &Linear, k: &Linear, v: &Linear) -> (Tensor<2>, Tensor<1>) {
    let w = Tensor::cat(vec![q.weight.val(), k.weight.val(), v.weight.val()], 1);
    let b = Tensor::cat(
        vec![bias_or_zeros(q), bias_or_zeros(k), bias_or_zeros(v)],
        0,
    );
    (w, b)
}

impl KvCache {
    /// An empty cache for `pad.len()` rows of up to `columns` columns for `gpt`.
    pub(crate) fn new(gpt: &Gpt, pad: Vec<usize>, columns: usize) -> Self {
        let batch = pad.len();
        let (heads, kv_heads, d_k, qkv): (usize, usize, usize, Vec<_>) = match &gpt.rope {
            Some(rope) => (
                rope.heads,
                rope.kv_heads,
                rope.head_dim,
                gpt.blocks.iter().map(|b| fused(&b.q, &b.k, &b.v)).collect(),
            ),
            None => {
                let mha = &gpt.enc.layers[0].mha;
                (
                    mha.n_heads,
                    mha.n_heads,
                    mha.d_k,
                    gpt.enc
                        .layers
                        .iter()
                        .map(|l| fused(&l.mha.query, &l.mha.key, &l.mha.value))
                        .collect(),
                )
            }
        };
        let layers = qkv.len();
        let size = batch * kv_heads * columns * d_k;
        Self {
            batch,
            heads,
            kv_heads,
            d_k,
            columns,
            len: 0,
            pad,
            keys: (0..layers).map(|_| take_buffer(size)).collect(),
            values: (0..layers).map(|_| take_buffer(size)).collect(),
            qkv,
        }
    }

    /// The fused projection of layer `index` applied to `h` `[batch, t, d_model]`.
    fn project(&self, index: usize, h: Tensor<3>) -> TensorData {
        let (w, bias) = &self.qkv[index];
        linear(h, w.clone(), Some(bias.clone())).into_data()
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
    let qkv = cache.project(index, layer.norm_2.forward(x.clone()));
    let qkv = qkv.as_slice::<f32>().expect("f32 activations");
    let ctx = attend_cached(qkv, cache, index, t, None);
    let ctx = Tensor::<3>::from_data(TensorData::new(ctx, [b, t, d]), &device);
    let x = x + rows(&layer.mha.output, ctx);
    x.clone() + feed_forward(layer, layer.norm_1.forward(x), activation)
}

/// [`llama_forward`] over new positions only, with the cache (as [`layer_forward_cached`]);
/// `tables` are the rotary `(cos, sin)` of the new positions, row by row.
fn llama_forward_cached(
    block: &LlamaBlock,
    x: Tensor<3>,
    cache: &mut KvCache,
    index: usize,
    rope: (&Rope, &RopeTables),
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let device = x.device();
    let qkv = cache.project(index, block.input_norm.forward(x.clone()));
    let qkv = qkv.as_slice::<f32>().expect("f32 activations");
    let ctx = attend_cached(qkv, cache, index, t, Some(rope));
    let ctx = Tensor::<3>::from_data(TensorData::new(ctx, [b, t, d]), &device);
    let x = x + rows(&block.o, ctx);
    let h = block.post_norm.forward(x.clone());
    x + rows(
        &block.down,
        silu(rows(&block.gate, h.clone())) * rows(&block.up, h),
    )
}

/// Stores the keys and values of `qkv` (`[batch, t, (heads + 2 kv_heads) d_k]`: queries,
/// keys, values; rotated first when `rope` is given) at columns `cache.len..cache.len + t` of
/// layer `index` and returns the attention context `[batch, t, heads d_k]`.
fn attend_cached(
    qkv: &[f32],
    cache: &mut KvCache,
    index: usize,
    t: usize,
    rope: Option<(&Rope, &RopeTables)>,
) -> Vec<f32> {
    use rayon::prelude::*;
    let (heads, kv_heads, d_k) = (cache.heads, cache.kv_heads, cache.d_k);
    let (columns, past) = (cache.columns, cache.len);
    let (d, kvd) = (heads * d_k, kv_heads * d_k);
    let width = d + 2 * kvd;
    let group = heads / kv_heads;
    let scale = (d_k as f32).sqrt();
    let per_row = kv_heads * columns * d_k;
    let half = d_k / 2;
    let mut ctx = vec![0f32; cache.batch * t * d];
    // Rows in parallel: each has its own part of the buffers and of the context.
    ctx.par_chunks_mut(t * d)
        .zip(cache.keys[index].par_chunks_mut(per_row))
        .zip(cache.values[index].par_chunks_mut(per_row))
        .zip(cache.pad.par_iter())
        .zip(qkv.par_chunks(t * width))
        .enumerate()
        .for_each_init(
            || vec![0f32; past + t],
            |weights, (i, ((((ctx, keys), values), &pad), qkv))| {
                // The queries and keys of the new positions, rotated in the Llama family.
                let rotated;
                let rows: &[f32] = match rope {
                    None => qkv,
                    Some((rope, (cos, sin))) => {
                        let mut r = qkv.to_vec();
                        for j in 0..t {
                            let at = (i * t + j) * half;
                            rope.rotate_in_place(
                                &mut r[j * width..j * width + d + kvd],
                                &cos[at..at + half],
                                &sin[at..at + half],
                            );
                        }
                        rotated = r;
                        &rotated
                    }
                };
                for j in 0..t {
                    let row = &rows[j * width..(j + 1) * width];
                    for hh in 0..kv_heads {
                        // Keys transposed, `[d_k, columns]` per head; values `[columns, d_k]`.
                        let base = hh * columns * d_k;
                        let key = &row[d + hh * d_k..d + (hh + 1) * d_k];
                        for (jj, &k) in key.iter().enumerate() {
                            keys[base + jj * columns + past + j] = k;
                        }
                        let at = base + (past + j) * d_k;
                        values[at..at + d_k]
                            .copy_from_slice(&row[d + kvd + hh * d_k..d + kvd + (hh + 1) * d_k]);
                    }
                }
                for j in 0..t {
                    let col = past + j;
                    if pad > col {
                        continue;
                    }
                    let row = &rows[j * width..(j + 1) * width];
                    for hh in 0..heads {
                        let base = (hh / group) * columns * d_k;
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
    /// [`Module::valid`]). LoRA adapters are merged into the weights they adapt.
    pub fn from_gpt(config: TransformerConfig, gpt: &Gpt) -> Self {
        Self {
            config,
            gpt: gpt.valid().materialize(),
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
