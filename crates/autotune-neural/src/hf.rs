//! Hugging Face checkpoints: a model directory as transformers' `save_pretrained` writes it
//! (`config.json`, and `model.safetensors` or shards listed in `model.safetensors.index.json`)
//! read into a [`NeuralModel`], and a model written back as one. This version reads and writes
//! GPT-2 (`model_type: "gpt2"`, `GPT2LMHeadModel`), whose architecture is this crate's own
//! (learned positions, pre-norm LayerNorm, GELU, biases everywhere but the head); weights may be
//! f32, bf16 or f16 and are computed in f32.
//!
//! GPT-2's names map onto [`Gpt`]'s as follows (`h.{i}` is layer `i`; GPT-2's `Conv1D`
//! weights are stored `[in, out]`, burn's `Linear` layout, so nothing is transposed):
//!
//! | GPT-2                         | here                                  |
//! |-------------------------------|---------------------------------------|
//! | `wte`, `wpe`                  | `tok`, `pos`                          |
//! | `h.{i}.ln_1`                  | `enc.layers[i].norm_2` (before attention) |
//! | `h.{i}.attn.c_attn` `[d, 3d]` | `mha.query`, `mha.key`, `mha.value` (columns split in three) |
//! | `h.{i}.attn.c_proj`           | `mha.output`                          |
//! | `h.{i}.ln_2`                  | `norm_1` (before the feed-forward block) |
//! | `h.{i}.mlp.c_fc`, `c_proj`    | `pwff.linear_inner`, `linear_outer`   |
//! | `ln_f`                        | `norm`                                |
//! | `lm_head` (tied to `wte`)     | no head of its own ([`TransformerConfig::tied_head`]) |

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::model::{Activation, Gpt, NeuralModel, TransformerConfig};
use crate::{NeuralError, Result};

/// The single weights file of a Hugging Face model directory.
pub const HF_WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded one: `weight_map` from tensor name to shard file.
pub const HF_INDEX_FILE: &str = "model.safetensors.index.json";
/// The model types [`NeuralModel::load_hf`] reads.
pub const HF_MODEL_TYPES: &[&str] = &["gpt2"];

fn err(path: &Path, message: impl Into<String>) -> NeuralError {
    NeuralError::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Tensors by name (any `transformer.` prefix removed), as f32, with their shapes.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

impl NeuralModel {
    /// Reads a Hugging Face model directory (see the module documentation). Every failure is a
    /// [`NeuralError::Checkpoint`] naming the file: a missing `config.json` or weights file, a
    /// shard the index names that is missing or truncated, a `model_type` this build does not
    /// read, a config field it does not support, a tensor of the wrong shape or dtype, a
    /// tensor missing or left over.
    pub fn load_hf(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| err(&config_path, format!("cannot read the config: {e}")))?;
        let hf: Value = serde_json::from_str(&text)
            .map_err(|e| err(&config_path, format!("not valid JSON: {e}")))?;
        let model_type = hf
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                err(
                    &config_path,
                    "no model_type: not a Hugging Face model config",
                )
            })?;
        if model_type != "gpt2" {
            return Err(err(
                &config_path,
                format!(
                    "model_type \"{model_type}\" is not supported (this build reads: {})",
                    HF_MODEL_TYPES.join(", ")
                ),
            ));
        }
        let config = gpt2_config(&hf).map_err(|m| err(&config_path, m))?;
        config
            .validate()
            .map_err(|e| err(&config_path, e.to_string()))?;
        let num_params = config
            .num_params()
            .ok_or_else(|| err(&config_path, "the parameter count overflows"))?;
        let files = weight_files(dir)?;
        // Refuse a config that claims more parameters than the files can hold before
        // anything that size is allocated (2 bytes a parameter at the least: bf16).
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        if bytes < (num_params as u64).saturating_mul(2) {
            return Err(err(
                &files[0],
                format!("{bytes} bytes of weights cannot hold the {num_params} parameters config.json describes"),
            ));
        }
        let mut tensors = Tensors::new();
        for file in &files {
            read_safetensors(file, &mut tensors)?;
        }
        let gpt = gpt2_weights(&config, tensors).map_err(|m| err(&files[0], m))?;
        Ok(Self { config, gpt })
    }

    /// Writes the model as a Hugging Face GPT-2 directory (`config.json`,
    /// `model.safetensors`, f32) that `transformers.GPT2LMHeadModel.from_pretrained` loads.
    /// A model whose head has a non-zero bias cannot be written (GPT-2's head has none).
    pub fn save_hf(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|source| NeuralError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let weights = dir.join(HF_WEIGHTS_FILE);
        let c = &self.config;
        let mut out: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
        let mut put = |name: String, t: (Vec<usize>, Vec<f32>)| {
            out.insert(format!("transformer.{name}"), t);
        };
        let gpt = &self.gpt;
        put("wte.weight".into(), values(gpt.tok.weight.val()));
        put("wpe.weight".into(), values(gpt.pos.weight.val()));
        for (i, layer) in gpt.enc.layers.iter().enumerate() {
            let m = &layer.mha;
            let h = format!("h.{i}");
            put_norm(&mut put, &format!("{h}.ln_1"), &layer.norm_2);
            let w = Tensor::cat(
                vec![
                    m.query.weight.val(),
                    m.key.weight.val(),
                    m.value.weight.val(),
                ],
                1,
            );
            put(format!("{h}.attn.c_attn.weight"), values(w));
            let b = Tensor::cat(vec![bias(&m.query), bias(&m.key), bias(&m.value)], 0);
            put(format!("{h}.attn.c_attn.bias"), values(b));
            put_linear(&mut put, &format!("{h}.attn.c_proj"), &m.output);
            put_norm(&mut put, &format!("{h}.ln_2"), &layer.norm_1);
            put_linear(&mut put, &format!("{h}.mlp.c_fc"), &layer.pwff.linear_inner);
            put_linear(
                &mut put,
                &format!("{h}.mlp.c_proj"),
                &layer.pwff.linear_outer,
            );
        }
        put_norm(&mut put, "ln_f", &gpt.norm);
        if let Some(head) = &gpt.head {
            let (_, b) = values(bias(head));
            if b.iter().any(|&x| x != 0.0) {
                return Err(err(
                    &weights,
                    "the head has a bias, which GPT-2's lm_head has no place for",
                ));
            }
            // torch's Linear stores [out, in].
            out.insert(
                "lm_head.weight".into(),
                values(head.weight.val().transpose()),
            );
        }
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = out
            .into_iter()
            .map(|(name, (shape, data))| {
                let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
                (name, shape, raw)
            })
            .collect();
        let views = bytes
            .iter()
            .map(|(name, shape, raw)| {
                safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw)
                    .map(|v| (name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| err(&weights, format!("cannot lay out the weights: {e}")))?;
        let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
        let file = safetensors::serialize(views, Some(metadata))
            .map_err(|e| err(&weights, format!("cannot serialise the weights: {e}")))?;
        write(&weights, &file)?;
        let config = json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": c.vocab,
            "n_positions": c.max_len,
            "n_embd": c.d_model,
            "n_layer": c.n_layers,
            "n_head": c.n_heads,
            "n_inner": c.d_ff,
            "activation_function": match c.activation {
                Activation::Gelu => "gelu",
                Activation::GeluTanh => "gelu_new",
            },
            "layer_norm_epsilon": c.layer_norm_eps,
            "tie_word_embeddings": c.tied_head,
            "resid_pdrop": c.dropout,
            "embd_pdrop": c.dropout,
            "attn_pdrop": c.dropout,
            "dtype": "float32",
        });
        let text = serde_json::to_string_pretty(&config).expect("the config serialises");
        write(&dir.join("config.json"), text.as_bytes())
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| NeuralError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// GPT-2's `config.json` as a [`TransformerConfig`]; fields this crate cannot honour are
/// errors rather than silently different models.
fn gpt2_config(hf: &Value) -> std::result::Result<TransformerConfig, String> {
    let size = |key: &str| -> std::result::Result<usize, String> {
        hf.get(key)
            .and_then(Value::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| format!("{key} must be a positive integer"))
    };
    let flag = |key: &str, default: bool| -> std::result::Result<bool, String> {
        match hf.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!("{key} must be true or false, not {v}")),
        }
    };
    let d_model = size("n_embd")?;
    let d_ff = match hf.get("n_inner") {
        None | Some(Value::Null) => d_model.saturating_mul(4),
        Some(_) => size("n_inner")?,
    };
    let activation = match hf
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("gelu_new")
    {
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "gelu" => Activation::Gelu,
        other => return Err(format!("activation_function \"{other}\" is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast or gelu)")),
    };
    let layer_norm_eps = match hf.get("layer_norm_epsilon") {
        None | Some(Value::Null) => 1e-5,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| format!("layer_norm_epsilon must be a number, not {v}"))?,
    };
    if !flag("scale_attn_weights", true)? {
        return Err("scale_attn_weights false is not supported".into());
    }
    if flag("scale_attn_by_inverse_layer_idx", false)? {
        return Err("scale_attn_by_inverse_layer_idx is not supported".into());
    }
    if flag("add_cross_attention", false)? {
        return Err("add_cross_attention is not supported".into());
    }
    Ok(TransformerConfig {
        vocab: size("vocab_size")?,
        d_model,
        n_layers: size("n_layer")?,
        n_heads: size("n_head")?,
        d_ff,
        max_len: size("n_positions")?,
        dropout: 0.0,
        activation,
        layer_norm_eps,
        tied_head: flag("tie_word_embeddings", true)?,
    })
}

/// The weight files of `dir`: `model.safetensors`, or the shards its index names (each once,
/// in order).
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(HF_WEIGHTS_FILE);
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join(HF_INDEX_FILE);
    if !index.is_file() {
        return Err(err(
            dir,
            format!("neither {HF_WEIGHTS_FILE} nor {HF_INDEX_FILE} is there"),
        ));
    }
    let text = std::fs::read_to_string(&index)
        .map_err(|e| err(&index, format!("cannot read the index: {e}")))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| err(&index, format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| err(&index, "no weight_map object"))?;
    let mut shards = Vec::new();
    for (name, file) in map {
        let file = file
            .as_str()
            .filter(|f| !f.contains('/') && !f.contains('\\') && *f != ".." && !f.is_empty())
            .ok_or_else(|| {
                err(
                    &index,
                    format!(
                        "tensor {name}: the shard must be a file name in the directory, not {file}"
                    ),
                )
            })?;
        let path = dir.join(file);
        if !shards.contains(&path) {
            shards.push(path);
        }
    }
    shards.sort();
    for shard in &shards {
        if !shard.is_file() {
            return Err(err(
                shard,
                format!("the shard {HF_INDEX_FILE} names is missing"),
            ));
        }
    }
    if shards.is_empty() {
        return Err(err(&index, "the weight_map is empty"));
    }
    Ok(shards)
}

/// Adds every tensor of one safetensors file to `out`, converted to f32, with any
/// `transformer.` prefix removed.
fn read_safetensors(path: &Path, out: &mut Tensors) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let file = SafeTensors::deserialize(&bytes)
        .map_err(|e| err(path, format!("not a valid safetensors file: {e}")))?;
    for (name, view) in file.iter() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            // bf16 is the top half of an f32.
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            other => {
                // Old GPT-2 checkpoints keep the causal mask as a buffer; it is not a weight.
                if is_mask_buffer(name) {
                    continue;
                }
                return Err(err(
                    path,
                    format!("tensor {name} is {other:?}; weights must be F32, BF16 or F16"),
                ));
            }
        };
        let name = name
            .strip_prefix("transformer.")
            .unwrap_or(name)
            .to_string();
        if out
            .insert(name.clone(), (view.shape().to_vec(), values))
            .is_some()
        {
            return Err(err(path, format!("tensor {name} is stored twice")));
        }
    }
    Ok(())
}

fn is_mask_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
}

/// IEEE half precision to f32 (subnormals, infinities and NaN included).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: f * 2^-24.
            let v = f as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Builds [`Gpt`] from GPT-2's tensors: every one used exactly once, shapes checked.
fn gpt2_weights(config: &TransformerConfig, mut t: Tensors) -> std::result::Result<Gpt, String> {
    let device = crate::cpu_device();
    // The initial values are all overwritten; the seed only keeps this deterministic.
    let mut gpt = Gpt::new(config, &device, 0).map_err(|e| e.to_string())?;
    let (d, f, v) = (config.d_model, config.d_ff, config.vocab);
    let mut take = |name: &str, shape: &[usize]| -> std::result::Result<Vec<f32>, String> {
        let (s, values) = t
            .remove(name)
            .ok_or_else(|| format!("tensor {name} is missing"))?;
        if s != shape {
            return Err(format!(
                "tensor {name} has shape {s:?}, config.json implies {shape:?}"
            ));
        }
        Ok(values)
    };
    let param1 = |values: Vec<f32>| {
        let n = values.len();
        Param::from_tensor(Tensor::<1>::from_data(
            TensorData::new(values, [n]),
            &device,
        ))
    };
    let param2 = |values: Vec<f32>, shape: [usize; 2]| {
        Param::from_tensor(Tensor::<2>::from_data(
            TensorData::new(values, shape),
            &device,
        ))
    };
    gpt.tok.weight = param2(take("wte.weight", &[v, d])?, [v, d]);
    gpt.pos.weight = param2(
        take("wpe.weight", &[config.max_len, d])?,
        [config.max_len, d],
    );
    for (i, layer) in gpt.enc.layers.iter_mut().enumerate() {
        let h = format!("h.{i}");
        let mut norm = |prefix: &str, n: &mut LayerNorm| -> std::result::Result<(), String> {
            n.gamma = param1(take(&format!("{prefix}.weight"), &[d])?);
            n.beta = Some(param1(take(&format!("{prefix}.bias"), &[d])?));
            Ok(())
        };
        norm(&format!("{h}.ln_1"), &mut layer.norm_2)?;
        norm(&format!("{h}.ln_2"), &mut layer.norm_1)?;
        let w = take(&format!("{h}.attn.c_attn.weight"), &[d, 3 * d])?;
        let b = take(&format!("{h}.attn.c_attn.bias"), &[3 * d])?;
        let m = &mut layer.mha;
        for (k, lin) in [&mut m.query, &mut m.key, &mut m.value]
            .into_iter()
            .enumerate()
        {
            let cols: Vec<f32> = w
                .chunks_exact(3 * d)
                .flat_map(|row| row[k * d..(k + 1) * d].iter().copied())
                .collect();
            lin.weight = param2(cols, [d, d]);
            lin.bias = Some(param1(b[k * d..(k + 1) * d].to_vec()));
        }
        let mut linear = |prefix: &str,
                          lin: &mut Linear,
                          i: usize,
                          o: usize|
         -> std::result::Result<(), String> {
            lin.weight = param2(take(&format!("{prefix}.weight"), &[i, o])?, [i, o]);
            lin.bias = Some(param1(take(&format!("{prefix}.bias"), &[o])?));
            Ok(())
        };
        linear(&format!("{h}.attn.c_proj"), &mut layer.mha.output, d, d)?;
        linear(&format!("{h}.mlp.c_fc"), &mut layer.pwff.linear_inner, d, f)?;
        linear(
            &format!("{h}.mlp.c_proj"),
            &mut layer.pwff.linear_outer,
            f,
            d,
        )?;
    }
    gpt.norm.gamma = param1(take("ln_f.weight", &[d])?);
    gpt.norm.beta = Some(param1(take("ln_f.bias", &[d])?));
    match &mut gpt.head {
        // Tied: transformers does not read lm_head.weight even when it is stored.
        None => {
            t.remove("lm_head.weight");
        }
        Some(head) => {
            // torch's Linear stores [out, in]; GPT-2's head has no bias.
            let w = take("lm_head.weight", &[v, d])?;
            let mut wt = vec![0f32; v * d];
            for (r, row) in w.chunks_exact(d).enumerate() {
                for (c, &x) in row.iter().enumerate() {
                    wt[c * v + r] = x;
                }
            }
            head.weight = param2(wt, [d, v]);
            head.bias = Some(param1(vec![0.0; v]));
        }
    }
    t.retain(|name, _| !is_mask_buffer(name));
    if !t.is_empty() {
        let mut left: Vec<&String> = t.keys().collect();
        left.sort();
        let shown: Vec<&str> = left.iter().take(5).map(|s| s.as_str()).collect();
        return Err(format!(
            "{} tensors that a GPT-2 of this config does not have: {}{}",
            left.len(),
            shown.join(", "),
            if left.len() > 5 { ", ..." } else { "" }
        ));
    }
    Ok(gpt)
}

fn bias(l: &Linear) -> Tensor<1> {
    match &l.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([l.weight.dims()[1]], &l.weight.device()),
    }
}

fn values<const D: usize>(t: Tensor<D>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    (shape, t.into_data().iter::<f32>().collect())
}

fn put_norm(put: &mut impl FnMut(String, (Vec<usize>, Vec<f32>)), prefix: &str, n: &LayerNorm) {
    put(format!("{prefix}.weight"), values(n.gamma.val()));
    let beta = match &n.beta {
        Some(b) => b.val(),
        None => Tensor::zeros(n.gamma.dims(), &n.gamma.device()),
    };
    put(format!("{prefix}.bias"), values(beta));
}

fn put_linear(put: &mut impl FnMut(String, (Vec<usize>, Vec<f32>)), prefix: &str, l: &Linear) {
    put(format!("{prefix}.weight"), values(l.weight.val()));
    put(format!("{prefix}.bias"), values(bias(l)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert_exactly() {
        for (h, f) in [
            (0x0000u16, 0.0f32),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_95),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x8001, -5.960_464_5e-8),
            (0x7c00, f32::INFINITY),
        ] {
            assert_eq!(f16_to_f32(h), f, "{h:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn unsupported_gpt2_options_are_refused() {
        let base = json!({"model_type": "gpt2", "vocab_size": 10, "n_positions": 8,
            "n_embd": 8, "n_layer": 1, "n_head": 2});
        let c = gpt2_config(&base).unwrap();
        assert_eq!(
            (c.d_ff, c.activation, c.tied_head),
            (32, Activation::GeluTanh, true)
        );
        for (key, value, says) in [
            ("activation_function", json!("relu"), "relu"),
            (
                "scale_attn_by_inverse_layer_idx",
                json!(true),
                "inverse_layer_idx",
            ),
            ("scale_attn_weights", json!(false), "scale_attn_weights"),
            ("n_embd", json!(-1), "n_embd"),
            ("tie_word_embeddings", json!("yes"), "tie_word_embeddings"),
        ] {
            let mut hf = base.clone();
            hf[key] = value;
            let e = gpt2_config(&hf).unwrap_err();
            assert!(e.contains(says), "{key}: {e}");
        }
    }
}
