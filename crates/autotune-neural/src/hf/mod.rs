//! Hugging Face checkpoints: a model directory as transformers' `save_pretrained` writes it
//! (`config.json`, and `model.safetensors` or shards listed in `model.safetensors.index.json`)
//! read into a [`NeuralModel`], and a model written back as one. Two families:
//! - GPT-2 (`model_type: "gpt2"`, `hf/gpt2.rs`): learned positions, pre-norm LayerNorm, GELU,
//!   biases everywhere but the head, the head tied to the embedding;
//! - Llama and Qwen2 (`"llama"`, `"qwen2"`, `hf/llama.rs`): rotary positions (with the
//!   checkpoint's theta, and linear or Llama 3 scaling), RMSNorm, SwiGLU, grouped-query
//!   attention, Qwen2's biases on the query, key and value projections, a tied or untied head.
//!
//! Weights may be f32, bf16 or f16 and are computed in f32. A config field the student cannot
//! honour is refused with its name, never approximated.

mod gpt2;
mod llama;
mod peft;

pub use peft::{read_peft_adapter, write_peft_adapter, PEFT_ADAPTER_CONFIG, PEFT_ADAPTER_WEIGHTS};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use crate::model::{Family, NeuralModel, TransformerConfig};
use crate::{NeuralError, Result};

/// The single weights file of a Hugging Face model directory.
pub const HF_WEIGHTS_FILE: &str = "model.safetensors";
/// The index of a sharded one: `weight_map` from tensor name to shard file.
pub const HF_INDEX_FILE: &str = "model.safetensors.index.json";
/// The model types [`NeuralModel::load_hf`] reads.
pub const HF_MODEL_TYPES: &[&str] = &["gpt2", "llama", "qwen2"];

fn err(path: &Path, message: impl Into<String>) -> NeuralError {
    NeuralError::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A tensor: its shape and its values in f32, row-major.
type Named = (Vec<usize>, Vec<f32>);

impl NeuralModel {
    /// Reads a Hugging Face model directory (see the module documentation). Every failure is a
    /// [`NeuralError::Checkpoint`] naming the file: a missing `config.json` or weights file, a
    /// shard the index names that is missing or truncated, a `model_type` this build does not
    /// read, a config field it does not support, a tensor of the wrong shape or dtype, a
    /// tensor missing or left over.
    pub fn load_hf(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config = Self::hf_config(dir)?;
        let config_path = dir.join("config.json");
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
        let mut tensors = Tensors::default();
        for file in &files {
            read_safetensors(file, &mut tensors)?;
        }
        let gpt = match config.family {
            Family::Gpt => gpt2::weights(&config, &mut tensors),
            Family::Llama => llama::weights(&config, &mut tensors),
        }
        .and_then(|gpt| tensors.finish().map(|()| gpt))
        .map_err(|m| err(&files[0], m))?;
        Ok(Self { config, gpt })
    }

    /// The model configuration of a Hugging Face directory's `config.json`, read and checked
    /// without loading any weights (to size a model before it is loaded).
    pub fn hf_config(dir: impl AsRef<Path>) -> Result<TransformerConfig> {
        let config_path = dir.as_ref().join("config.json");
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
        let config = match model_type {
            "gpt2" => gpt2::config(&hf),
            "llama" | "qwen2" => llama::config(&hf, model_type),
            other => Err(format!(
                "model_type \"{other}\" is not supported (this build reads: {})",
                HF_MODEL_TYPES.join(", ")
            )),
        }
        .map_err(|m| err(&config_path, m))?;
        config
            .validate()
            .map_err(|e| err(&config_path, e.to_string()))?;
        Ok(config)
    }

    /// Writes the model as a Hugging Face directory (`config.json`, `model.safetensors`, f32)
    /// that transformers' `AutoModelForCausalLM.from_pretrained` loads: GPT-2 for the GPT
    /// family, Llama (Qwen2 when the query, key and value projections have biases) for the
    /// Llama family. A GPT-family model whose head has a non-zero bias cannot be written
    /// (GPT-2's head has none).
    pub fn save_hf(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        crate::create_dir(dir)?;
        let weights = dir.join(HF_WEIGHTS_FILE);
        let mut out = BTreeMap::new();
        let config = match self.config.family {
            Family::Gpt => gpt2::export(self, &mut out),
            Family::Llama => llama::export(self, &mut out),
        }
        .map_err(|m| err(&weights, m))?;
        write_safetensors(&weights, out)?;
        let text = serde_json::to_string_pretty(&config).expect("the config serialises");
        crate::write_file(&dir.join("config.json"), text.as_bytes())
    }
}

/// Writes `tensors` (f32) as a safetensors file with transformers' `format: pt` metadata.
fn write_safetensors(path: &Path, tensors: BTreeMap<String, Named>) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
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
        .map_err(|e| err(path, format!("cannot lay out the weights: {e}")))?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|e| err(path, format!("cannot serialise the weights: {e}")))?;
    crate::write_file(path, &file)
}

/// Reading a config: required sizes, optional flags and numbers, each error naming its key.
struct Fields<'a>(&'a Value);

impl Fields<'_> {
    fn size(&self, key: &str) -> std::result::Result<usize, String> {
        self.0
            .get(key)
            .and_then(Value::as_u64)
            .filter(|&v| v > 0)
            .map(|v| v as usize)
            .ok_or_else(|| format!("{key} must be a positive integer"))
    }

    fn size_or(&self, key: &str, default: usize) -> std::result::Result<usize, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(_) => self.size(key),
        }
    }

    fn flag(&self, key: &str, default: bool) -> std::result::Result<bool, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!("{key} must be true or false, not {v}")),
        }
    }

    fn number_or(&self, key: &str, default: f64) -> std::result::Result<f64, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| format!("{key} must be a number, not {v}")),
        }
    }

    fn text_or<'b>(&'b self, key: &str, default: &'b str) -> std::result::Result<&'b str, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(format!("{key} must be a string, not {v}")),
        }
    }
}

/// The tensors of a checkpoint by name, taken one by one; what is never taken is an error
/// ([`Tensors::finish`]).
#[derive(Default)]
struct Tensors(HashMap<String, Named>);

impl Tensors {
    /// The tensor `name` as f32 values, checked to have `shape`.
    fn take(&mut self, name: &str, shape: &[usize]) -> std::result::Result<Vec<f32>, String> {
        let (s, values) = self
            .0
            .remove(name)
            .ok_or_else(|| format!("tensor {name} is missing"))?;
        if s != shape {
            return Err(format!(
                "tensor {name} has shape {s:?}, config.json implies {shape:?}"
            ));
        }
        Ok(values)
    }

    /// A torch `Linear` weight (`[out, in]`), transposed to burn's layout (`[in, out]`).
    fn take_transposed(
        &mut self,
        name: &str,
        out: usize,
        inp: usize,
    ) -> std::result::Result<Vec<f32>, String> {
        Ok(transpose(&self.take(name, &[out, inp])?, out, inp))
    }

    /// Drops a tensor that the model does not need (a tied head stored anyway, a buffer).
    fn discard(&mut self, name: &str) {
        self.0.remove(name);
    }

    /// Every tensor was used: anything left is an error listing (the first of) them.
    fn finish(&mut self) -> std::result::Result<(), String> {
        self.0.retain(|name, _| !is_buffer(name));
        if self.0.is_empty() {
            return Ok(());
        }
        let mut left: Vec<&String> = self.0.keys().collect();
        left.sort();
        let shown: Vec<&str> = left.iter().take(5).map(|s| s.as_str()).collect();
        Err(format!(
            "{} tensors that a model of this config does not have: {}{}",
            left.len(),
            shown.join(", "),
            if left.len() > 5 { ", ..." } else { "" }
        ))
    }
}

/// `[rows, cols]` to `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0f32; v.len()];
    for (r, row) in v.chunks_exact(cols).enumerate() {
        for (c, &x) in row.iter().enumerate() {
            t[c * rows + r] = x;
        }
    }
    t
}

fn param1(values: Vec<f32>) -> Param<Tensor<1>> {
    let n = values.len();
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values, [n]),
        &crate::cpu_device(),
    ))
}

fn param2(values: Vec<f32>, shape: [usize; 2]) -> Param<Tensor<2>> {
    Param::from_tensor(Tensor::from_data(
        TensorData::new(values, shape),
        &crate::cpu_device(),
    ))
}

/// Sets a linear layer from a weight in burn's layout (`[in, out]`) and an optional bias.
fn set_linear(lin: &mut Linear, weight: Vec<f32>, bias: Option<Vec<f32>>, inp: usize, out: usize) {
    lin.weight = param2(weight, [inp, out]);
    lin.bias = bias.map(param1);
}

/// The head of a checkpoint: none to read when it is tied (transformers ignores a stored
/// `lm_head.weight` then), else `lm_head.weight` in torch's layout, with a zero bias for a
/// head that has one here (GPT family) though the checkpoint's has none.
fn set_head(
    t: &mut Tensors,
    head: &mut Option<Linear>,
    (vocab, d): (usize, usize),
) -> std::result::Result<(), String> {
    match head {
        None => t.discard("lm_head.weight"),
        Some(head) => {
            let w = t.take_transposed("lm_head.weight", vocab, d)?;
            let zero_bias = head.bias.is_some().then(|| vec![0.0; vocab]);
            set_linear(head, w, zero_bias, d, vocab);
        }
    }
    Ok(())
}

fn values<const D: usize>(t: Tensor<D>) -> Named {
    let shape = t.dims().to_vec();
    (shape, t.into_data().iter::<f32>().collect())
}

/// A linear layer's weight in torch's layout (`[out, in]`).
fn torch_weight(l: &Linear) -> Named {
    values(l.weight.val().transpose())
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

/// Adds every tensor of one safetensors file to `out`, converted to f32, with the prefix of
/// the base model (`transformer.`, `model.`) removed.
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
            // Old checkpoints keep masks and rotary tables as buffers; they are not weights.
            _ if is_buffer(name) => continue,
            other => {
                return Err(err(
                    path,
                    format!("tensor {name} is {other:?}; weights must be F32, BF16 or F16"),
                ));
            }
        };
        let name = name
            .strip_prefix("transformer.")
            .or_else(|| name.strip_prefix("model."))
            .unwrap_or(name)
            .to_string();
        if out
            .0
            .insert(name.clone(), (view.shape().to_vec(), values))
            .is_some()
        {
            return Err(err(path, format!("tensor {name} is stored twice")));
        }
    }
    Ok(())
}

/// Buffers older checkpoints store beside the weights: GPT-2's causal masks, Llama's rotary
/// frequencies.
fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
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
    fn transposing_twice_is_the_identity() {
        let v: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let t = transpose(&v, 3, 4);
        assert_eq!(t[..4], [0.0, 4.0, 8.0, 1.0]);
        assert_eq!(transpose(&t, 4, 3), v);
    }
}
