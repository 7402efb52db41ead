//! PEFT LoRA adapters: the directory `PeftModel.save_pretrained` writes (`adapter_config.json`,
//! `adapter_model.safetensors`) read into a [`LoraConfig`] and factors for
//! [`crate::Gpt::with_lora`], and written back from a trained model's factors, for the Llama
//! family (whose projections are one module each in the checkpoint; GPT-2 fuses the query,
//! key and value projections into one, which one PEFT adapter of rank `r` does not express as
//! three).
//!
//! PEFT stores `lora_A.weight` as `[r, d_in]` and `lora_B.weight` as `[d_out, r]` (torch's
//! layout); burn's factors are their transposes.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::{err, read_safetensors, transpose, write_safetensors, Fields, Named, Tensors};
use crate::lora::{LoraConfig, LoraInit};
use crate::model::{Family, TransformerConfig};
use crate::Result;

/// The adapter's configuration file.
pub const PEFT_ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights.
pub const PEFT_ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// The prefix PEFT puts before the base model's module names.
const PREFIX: &str = "base_model.model.";

fn llama_only(config: &TransformerConfig, path: &Path) -> Result<()> {
    if config.family != Family::Llama {
        return Err(err(
            path,
            "PEFT adapters are read and written for the Llama family only (GPT-2 stores the query, key and value projections as one module)",
        ));
    }
    Ok(())
}

/// Reads a PEFT LoRA adapter directory for a model of shape `config`: the [`LoraConfig`] and
/// the factors to attach ([`LoraInit::Factors`]). Refused, with the file and the reason:
/// another PEFT type, rsLoRA, DoRA, per-module ranks or alphas, layer selections, extra
/// trained modules, adapters on biases, a target this family does not have, a factor missing,
/// misshapen or left over.
pub fn read_peft_adapter(
    dir: impl AsRef<Path>,
    config: &TransformerConfig,
) -> Result<(LoraConfig, LoraInit)> {
    let dir = dir.as_ref();
    let config_path = dir.join(PEFT_ADAPTER_CONFIG);
    llama_only(config, &config_path)?;
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| err(&config_path, format!("cannot read the adapter config: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| err(&config_path, format!("not valid JSON: {e}")))?;
    let lora = adapter_config(&value).map_err(|m| err(&config_path, m))?;
    let targets = lora
        .resolve(config)
        .map_err(|e| err(&config_path, e.to_string()))?;

    let weights = dir.join(PEFT_ADAPTER_WEIGHTS);
    let mut tensors = Tensors::default();
    read_safetensors(&weights, &mut tensors)?;
    let mut factors = BTreeMap::new();
    for target in targets {
        let module = target.hf_module.expect("Llama targets name their module");
        let (d_in, d_out) = (target.d_in, target.d_out);
        let r = lora.rank;
        let a = tensors
            .take(&format!("{PREFIX}{module}.lora_A.weight"), &[r, d_in])
            .map_err(|m| err(&weights, m))?;
        let b = tensors
            .take(&format!("{PREFIX}{module}.lora_B.weight"), &[d_out, r])
            .map_err(|m| err(&weights, m))?;
        factors.insert(
            target.path,
            (transpose(&a, r, d_in), transpose(&b, d_out, r)),
        );
    }
    tensors.finish().map_err(|m| err(&weights, m))?;
    Ok((lora, LoraInit::Factors(factors)))
}

/// The [`LoraConfig`] of a PEFT `adapter_config.json`, or why it cannot be honoured.
fn adapter_config(value: &Value) -> std::result::Result<LoraConfig, String> {
    let f = Fields(value);
    let peft_type = f.text_or("peft_type", "")?;
    if peft_type != "LORA" {
        return Err(format!(
            "peft_type is \"{peft_type}\"; only LORA adapters are read"
        ));
    }
    for (key, what) in [
        ("use_rslora", "rsLoRA"),
        ("use_dora", "DoRA"),
        ("fan_in_fan_out", "fan_in_fan_out"),
    ] {
        if f.flag(key, false)? {
            return Err(format!("{what} ({key}: true) is not supported"));
        }
    }
    if f.text_or("bias", "none")? != "none" {
        return Err("bias must be \"none\": adapters on biases are not supported".into());
    }
    for key in ["rank_pattern", "alpha_pattern"] {
        match value.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) if m.is_empty() => {}
            Some(v) => {
                return Err(format!(
                    "{key} {v} is not supported (one rank and alpha for all)"
                ))
            }
        }
    }
    for key in [
        "layers_to_transform",
        "modules_to_save",
        "trainable_token_indices",
    ] {
        match value.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(v) => return Err(format!("{key} {v} is not supported")),
        }
    }
    let rank = f.size("r")?;
    let alpha = f.number_or("lora_alpha", 8.0)?;
    let targets = match value.get("target_modules") {
        Some(Value::Array(a)) => {
            let mut names = a
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("target_modules holds {t}, not a name"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            names.sort();
            names
        }
        Some(Value::String(s)) if s == "all-linear" => Vec::new(),
        Some(v) => {
            return Err(format!(
                "target_modules must be a list of module names or \"all-linear\", not {v}"
            ))
        }
        None => return Err("no target_modules".into()),
    };
    Ok(LoraConfig {
        rank,
        alpha,
        targets,
    })
}

/// Writes `factors` (from [`crate::Gpt::lora_factors`] of a model of shape `config` adapted by
/// `lora`) as a PEFT adapter directory that `PeftModel.from_pretrained` loads onto the base
/// model; `base` is recorded as `base_model_name_or_path`.
pub fn write_peft_adapter(
    dir: impl AsRef<Path>,
    config: &TransformerConfig,
    lora: &LoraConfig,
    factors: &BTreeMap<String, (Vec<f32>, Vec<f32>)>,
    base: Option<&str>,
) -> Result<()> {
    let dir = dir.as_ref();
    let weights = dir.join(PEFT_ADAPTER_WEIGHTS);
    llama_only(config, &weights)?;
    let targets = lora
        .resolve(config)
        .map_err(|e| err(&weights, e.to_string()))?;
    let mut out: BTreeMap<String, Named> = BTreeMap::new();
    let r = lora.rank;
    for target in &targets {
        let module = target
            .hf_module
            .as_deref()
            .expect("Llama targets name their module");
        let (d_in, d_out) = (target.d_in, target.d_out);
        let (a, b) = factors.get(&target.path).ok_or_else(|| {
            err(
                &weights,
                format!("the model has no adapter on {}", target.path),
            )
        })?;
        if a.len() != d_in * r || b.len() != r * d_out {
            return Err(err(
                &weights,
                format!("the adapter of {} does not have rank {r}", target.path),
            ));
        }
        out.insert(
            format!("{PREFIX}{module}.lora_A.weight"),
            (vec![r, d_in], transpose(a, d_in, r)),
        );
        out.insert(
            format!("{PREFIX}{module}.lora_B.weight"),
            (vec![d_out, r], transpose(b, r, d_out)),
        );
    }
    if let Some(extra) = factors
        .keys()
        .find(|p| !targets.iter().any(|t| &&t.path == p))
    {
        return Err(err(
            &weights,
            format!("the model has an adapter on {extra}, which the LoRA config does not target"),
        ));
    }
    crate::create_dir(dir)?;
    write_safetensors(&weights, out)?;
    let names: Vec<&str> = if lora.targets.is_empty() {
        LoraConfig::target_names(config.family)
    } else {
        lora.targets.iter().map(String::as_str).collect()
    };
    let adapter = json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "target_modules": names,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": false,
        "use_rslora": false,
        "use_dora": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "made_by": "autotune-neural",
    });
    let text = serde_json::to_string_pretty(&adapter).expect("the config serialises");
    crate::write_file(&dir.join(PEFT_ADAPTER_CONFIG), text.as_bytes())
}
