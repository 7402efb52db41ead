//! LoRA: low-rank adapters on a model's projections, for fine-tuning a loaded checkpoint with
//! a small fraction of its parameters trained.
//!
//! A target projection with weight `W` (`[d_in, d_out]` in burn's layout) computes with
//! `W + (alpha / rank) A B`, `A` of `[d_in, rank]` and `B` of `[rank, d_out]`: PEFT's
//! `W x + (alpha / r) B_peft A_peft x` with `A = A_peft^T` and `B = B_peft^T`. Every other
//! parameter (embeddings, norms, biases, the head, untargeted projections) is frozen, as PEFT
//! does with `bias="none"`. `A` starts as PEFT's (Kaiming-uniform: `U(-1/sqrt(d_in),
//! 1/sqrt(d_in))`, drawn from the trainer's seed) and `B` at zero, so a freshly attached
//! adapter leaves the model's outputs unchanged. Dropout on the adapter's input is not
//! supported (PEFT's `lora_dropout = 0`).
//!
//! The adapters are burn's own ([`burn::module::LoraAdapter`], attached with
//! [`burn::module::Module::apply_reparameterization`]): the forward passes read every weight
//! through [`Param::val`], which composes the adapter, so no model code changes. A
//! [`crate::NeuralModel`] taken from a trainer has the adapters merged into the weights.
//!
//! Targets are named as Hugging Face names the modules, so that PEFT's `target_modules` carry
//! over: for the Llama family `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`,
//! `down_proj`; for the GPT family `c_attn` (an adapter on each of the query, key and value
//! projections, which GPT-2 stores fused), `attn.c_proj`, `c_fc`, `mlp.c_proj` and `c_proj`
//! (both projections of that name).

use std::collections::BTreeMap;

use burn::module::{LoraAdapter, Module, ModuleVisitor, Param, ParamId, Reparameterizer};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Family, Gpt, TransformerConfig};
use crate::{NeuralError, Result};

/// Which projections get adapters, and their rank and scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// The rank `r` of each adapter.
    pub rank: usize,
    /// The adapter's output is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Target modules, by their Hugging Face names (see the module documentation). Empty:
    /// every attention and feed-forward projection of the family.
    #[serde(default)]
    pub targets: Vec<String>,
}

/// The widths a projection maps between.
#[derive(Clone, Copy)]
enum Shape {
    /// Residual stream to residual stream (query of the GPT family, attention output).
    Square,
    /// Residual stream to the key/value heads.
    KeyValue,
    /// Residual stream to the feed-forward hidden layer.
    Up,
    /// Feed-forward hidden layer to the residual stream.
    Down,
}

impl Shape {
    fn dims(self, c: &TransformerConfig) -> (usize, usize) {
        let d = c.d_model;
        match self {
            Shape::Square => (d, d),
            Shape::KeyValue => (d, c.kv_heads() * c.head_dim()),
            Shape::Up => (d, c.d_ff),
            Shape::Down => (c.d_ff, d),
        }
    }
}

/// The Llama family's projections: (Hugging Face name, field of [`crate::LlamaBlock`], its
/// parent module in the checkpoint, its shape).
const LLAMA_TARGETS: &[(&str, &str, &str, Shape)] = &[
    ("q_proj", "q", "self_attn", Shape::Square),
    ("k_proj", "k", "self_attn", Shape::KeyValue),
    ("v_proj", "v", "self_attn", Shape::KeyValue),
    ("o_proj", "o", "self_attn", Shape::Square),
    ("gate_proj", "gate", "mlp", Shape::Up),
    ("up_proj", "up", "mlp", Shape::Up),
    ("down_proj", "down", "mlp", Shape::Down),
];

/// The GPT family's targets: (name, the encoder layer's projections it adapts).
const GPT_TARGETS: &[(&str, &[(&str, Shape)])] = &[
    (
        "c_attn",
        &[
            ("mha.query", Shape::Square),
            ("mha.key", Shape::Square),
            ("mha.value", Shape::Square),
        ],
    ),
    ("attn.c_proj", &[("mha.output", Shape::Square)]),
    ("c_fc", &[("pwff.linear_inner", Shape::Up)]),
    ("mlp.c_proj", &[("pwff.linear_outer", Shape::Down)]),
    (
        "c_proj",
        &[
            ("mha.output", Shape::Square),
            ("pwff.linear_outer", Shape::Down),
        ],
    ),
];

/// One adapted projection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoraTarget {
    /// The weight's path in the burn module (`blocks.0.q.weight`).
    pub path: String,
    /// The module's name in a Hugging Face checkpoint (`model.layers.0.self_attn.q_proj`), when
    /// one module of the checkpoint is exactly this projection (not GPT-2's fused `c_attn`).
    pub hf_module: Option<String>,
    /// The projection's input and output widths.
    pub d_in: usize,
    pub d_out: usize,
}

impl LoraConfig {
    /// Rank `rank`, scale `alpha / rank`, every projection of the family.
    pub fn new(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            targets: Vec::new(),
        }
    }

    /// The names [`LoraConfig::targets`] may hold for `family`.
    pub fn target_names(family: Family) -> Vec<&'static str> {
        match family {
            Family::Llama => LLAMA_TARGETS.iter().map(|t| t.0).collect(),
            Family::Gpt => GPT_TARGETS.iter().map(|t| t.0).collect(),
        }
    }

    /// The scale of the adapters' output.
    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }

    /// The trainable parameters the adapters add to a model of `model`'s shape.
    pub fn num_params(&self, model: &TransformerConfig) -> Result<usize> {
        Ok(self
            .resolve(model)?
            .iter()
            .map(|t| self.rank * (t.d_in + t.d_out))
            .sum())
    }

    /// The projections adapted in a model of `model`'s shape, in module order; an error names
    /// a bad rank or alpha, or a target the family does not have.
    pub fn resolve(&self, model: &TransformerConfig) -> Result<Vec<LoraTarget>> {
        let bad = |m: String| Err(NeuralError::Config(format!("LoRA: {m}")));
        if self.rank == 0 {
            return bad("the rank must be positive".into());
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return bad(format!("alpha must be positive, not {}", self.alpha));
        }
        let known = Self::target_names(model.family);
        if let Some(t) = self.targets.iter().find(|t| !known.contains(&t.as_str())) {
            return bad(format!(
                "the {:?} family has no target module `{t}` (it has {})",
                model.family,
                known.join(", ")
            ));
        }
        let wanted = |name: &str| self.targets.is_empty() || self.targets.iter().any(|t| t == name);
        let mut out = Vec::new();
        for layer in 0..model.n_layers {
            match model.family {
                Family::Llama => {
                    for (name, field, parent, shape) in LLAMA_TARGETS {
                        if wanted(name) {
                            let (d_in, d_out) = shape.dims(model);
                            out.push(LoraTarget {
                                path: format!("blocks.{layer}.{field}.weight"),
                                hf_module: Some(format!("model.layers.{layer}.{parent}.{name}")),
                                d_in,
                                d_out,
                            });
                        }
                    }
                }
                Family::Gpt => {
                    let mut fields: Vec<(&str, Shape)> = GPT_TARGETS
                        .iter()
                        .filter(|(name, _)| wanted(name))
                        .flat_map(|(_, fields)| fields.iter().copied())
                        .collect();
                    fields.sort_unstable_by_key(|f| f.0);
                    fields.dedup_by_key(|f| f.0);
                    out.extend(fields.into_iter().map(|(f, shape)| {
                        let (d_in, d_out) = shape.dims(model);
                        LoraTarget {
                            path: format!("enc.layers.{layer}.{f}.weight"),
                            hf_module: None,
                            d_in,
                            d_out,
                        }
                    }));
                }
            }
        }
        Ok(out)
    }
}

/// Where the adapters' first values come from.
#[derive(Clone, Debug, PartialEq)]
pub enum LoraInit {
    /// PEFT's initialisation (`A` Kaiming-uniform, `B` zero), drawn from this seed.
    Seed(u64),
    /// Given factors by weight path, in burn's layout: `A` `[d_in, rank]` and `B`
    /// `[rank, d_out]`, row-major (a PEFT adapter read from disk).
    Factors(BTreeMap<String, (Vec<f32>, Vec<f32>)>),
}

/// The reparameteriser: adapters on the target paths, every base parameter frozen.
struct Attach {
    targets: Vec<String>,
    rank: usize,
    scale: f64,
    init: LoraInit,
    rng: ChaCha8Rng,
    attached: Vec<String>,
    error: Option<String>,
}

impl Reparameterizer for Attach {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        let base = param.set_require_grad(false);
        if D != 2 || !self.targets.iter().any(|t| t == path) {
            return (base, None);
        }
        let value = base.val();
        let device = value.device();
        let dims = value.dims();
        let (d_in, d_out, r) = (dims[0], dims[1], self.rank);
        let (a, b) = match &mut self.init {
            LoraInit::Seed(_) => {
                let bound = 1.0 / (d_in as f64).sqrt();
                let a: Vec<f32> = (0..d_in * r)
                    .map(|_| self.rng.gen_range(-bound..bound) as f32)
                    .collect();
                (a, vec![0f32; r * d_out])
            }
            LoraInit::Factors(given) => match given.remove(path) {
                Some((a, b)) if a.len() == d_in * r && b.len() == r * d_out => (a, b),
                Some((a, b)) => {
                    self.error.get_or_insert(format!(
                        "the adapter of {path} has {} and {} values; rank {r} on a [{d_in}, {d_out}] weight needs {} and {}",
                        a.len(),
                        b.len(),
                        d_in * r,
                        r * d_out
                    ));
                    (vec![0f32; d_in * r], vec![0f32; r * d_out])
                }
                None => {
                    self.error
                        .get_or_insert(format!("no adapter is given for {path}"));
                    (vec![0f32; d_in * r], vec![0f32; r * d_out])
                }
            },
        };
        let tensor = |v: Vec<f32>, shape: [usize; 2]| {
            Param::from_tensor(Tensor::<2>::from_data(TensorData::new(v, shape), &device))
        };
        self.attached.push(path.to_string());
        let adapter = LoraAdapter {
            a: tensor(a, [d_in, r]),
            b: tensor(b, [r, d_out]),
            scale: self.scale,
        };
        (base, Some(adapter))
    }
}

impl Gpt {
    /// This model with adapters on `lora`'s targets and every other parameter frozen (see the
    /// module documentation). An error if a target is unknown, a given factor is missing or
    /// misshapen, or factors are given for weights that are not targets.
    pub fn with_lora(
        self,
        config: &TransformerConfig,
        lora: &LoraConfig,
        init: LoraInit,
    ) -> Result<Gpt> {
        let targets: Vec<String> = lora.resolve(config)?.into_iter().map(|t| t.path).collect();
        let seed = match &init {
            LoraInit::Seed(s) => *s,
            LoraInit::Factors(_) => 0,
        };
        let mut attach = Attach {
            targets: targets.clone(),
            rank: lora.rank,
            scale: lora.scale(),
            init,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x10aa_0000_0000_0001),
            attached: Vec::new(),
            error: None,
        };
        let gpt = self.apply_reparameterization(ByRef(&mut attach));
        if let Some(e) = attach.error {
            return Err(NeuralError::Config(format!("LoRA: {e}")));
        }
        if let LoraInit::Factors(left) = &attach.init {
            if let Some(path) = left.keys().next() {
                return Err(NeuralError::Config(format!(
                    "LoRA: an adapter is given for {path}, which is not a target"
                )));
            }
        }
        if attach.attached.len() != targets.len() {
            let missing: Vec<&String> = targets
                .iter()
                .filter(|t| !attach.attached.contains(t))
                .collect();
            return Err(NeuralError::Config(format!(
                "LoRA: the model has no weight {}",
                missing[0]
            )));
        }
        Ok(gpt)
    }

    /// The adapters of this model by weight path: `A` (`[d_in, rank]`) and `B`
    /// (`[rank, d_out]`) values, row-major. Empty for a model without adapters.
    pub fn lora_factors(&self) -> BTreeMap<String, (Vec<f32>, Vec<f32>)> {
        let mut walk = AdapterWalk {
            values: Some(Default::default()),
            ..AdapterWalk::default()
        };
        self.visit(&mut walk);
        let [a, mut b] = walk.values.expect("set above");
        a.into_iter()
            .filter_map(|(path, a)| b.remove(&path).map(|b| (path, (a, b))))
            .collect()
    }
}

/// [`Attach`] by reference, so that what it found can be read after the model is mapped.
struct ByRef<'a>(&'a mut Attach);

impl Reparameterizer for ByRef<'_> {
    type Reparam = LoraAdapter;

    fn reparameterize<const D: usize>(
        &mut self,
        path: &str,
        param: Param<Tensor<D>>,
    ) -> (Param<Tensor<D>>, Option<LoraAdapter>) {
        self.0.reparameterize(path, param)
    }
}

/// A walk over a model's float parameters that tells the LoRA adapters' factors (at
/// `<weight path>.lora.a` and `.lora.b`: a weight's adapter is visited right after the
/// weight) from the frozen weights: it collects the factors' ids, and on request their values
/// and a SHA-256 of every frozen weight (path, shape and f32 bytes, in module order).
#[derive(Default)]
pub(crate) struct AdapterWalk {
    /// The module path being visited.
    pub path: Vec<String>,
    /// The factors' parameter ids, in module order.
    pub ids: Vec<ParamId>,
    /// When set, the `A` and `B` factors' values by weight path.
    pub values: Option<[BTreeMap<String, Vec<f32>>; 2]>,
    /// When set, the digest of the frozen weights.
    pub digest: Option<Sha256>,
}

impl ModuleVisitor for AdapterWalk {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let path = self.path.join(".");
        let factor = [".lora.a", ".lora.b"]
            .iter()
            .enumerate()
            .find_map(|(i, suffix)| path.strip_suffix(suffix).map(|w| (i, w)));
        match factor {
            Some((i, weight)) => {
                self.ids.push(param.id);
                if let Some(values) = &mut self.values {
                    let v = param.val().into_data().iter::<f32>().collect();
                    values[i].insert(weight.to_string(), v);
                }
            }
            None => {
                let Some(digest) = &mut self.digest else {
                    return;
                };
                let value = param.val();
                digest.update(path.as_bytes());
                for d in value.dims() {
                    digest.update((d as u64).to_le_bytes());
                }
                for x in value.into_data().iter::<f32>() {
                    digest.update(x.to_le_bytes());
                }
            }
        }
    }
}
