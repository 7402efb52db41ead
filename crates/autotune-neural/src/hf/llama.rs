//! Llama (`LlamaForCausalLM`) and Qwen2 (`Qwen2ForCausalLM`). Names, without the `model.`
//! prefix, map onto [`Gpt`]'s Llama-family fields (`blocks[i]`); torch's `Linear` weights are
//! `[out, in]` and are transposed to burn's `[in, out]`:
//!
//! | transformers                                  | here                          |
//! |-----------------------------------------------|-------------------------------|
//! | `embed_tokens`                                | `tok`                         |
//! | `layers.{i}.input_layernorm`                  | `blocks[i].input_norm`        |
//! | `layers.{i}.self_attn.{q,k,v,o}_proj`         | `blocks[i].{q,k,v,o}`         |
//! | `layers.{i}.post_attention_layernorm`         | `blocks[i].post_norm`         |
//! | `layers.{i}.mlp.{gate,up,down}_proj`          | `blocks[i].{gate,up,down}`    |
//! | `norm`                                        | `rms_norm`                    |
//! | `lm_head` (none when tied)                    | `head`                        |

use std::collections::BTreeMap;

use burn::nn::{Linear, RmsNorm};
use serde_json::{json, Value};

use super::{param1, set_linear, torch_weight, values, Fields, Named, Tensors};
use crate::model::{Family, Gpt, NeuralModel, RopeScaling, TransformerConfig};

/// A Llama or Qwen2 `config.json` as a [`TransformerConfig`]. Refused: an activation other
/// than SiLU, a `head_dim` other than `hidden_size / num_attention_heads`, Llama's
/// `attention_bias` (a bias on the output projection too) and `mlp_bias`, Qwen2's sliding
/// window, and rope scalings other than linear and Llama 3's.
pub(super) fn config(hf: &Value, model_type: &str) -> Result<TransformerConfig, String> {
    let f = Fields(hf);
    let act = f.text_or("hidden_act", "silu")?;
    if act != "silu" {
        return Err(format!("hidden_act \"{act}\" is not supported (silu)"));
    }
    let (d, heads) = (f.size("hidden_size")?, f.size("num_attention_heads")?);
    if let Some(dim) = hf.get("head_dim").filter(|v| !v.is_null()) {
        if dim.as_u64() != Some((d / heads) as u64) || d % heads != 0 {
            return Err(format!(
                "head_dim {dim} is not hidden_size / num_attention_heads ({d} / {heads}): not supported"
            ));
        }
    }
    let qwen = model_type == "qwen2";
    if !qwen && f.flag("attention_bias", false)? {
        return Err("attention_bias (a bias on o_proj too) is not supported".into());
    }
    if f.flag("mlp_bias", false)? {
        return Err("mlp_bias is not supported".into());
    }
    if qwen && f.flag("use_sliding_window", false)? {
        return Err("use_sliding_window is not supported".into());
    }
    let (rope_theta, rope_scaling) = rope(hf)?;
    Ok(TransformerConfig {
        vocab: f.size("vocab_size")?,
        d_model: d,
        n_layers: f.size("num_hidden_layers")?,
        n_heads: heads,
        d_ff: f.size("intermediate_size")?,
        max_len: f.size("max_position_embeddings")?,
        layer_norm_eps: f.number_or("rms_norm_eps", 1e-6)?,
        tied_head: f.flag("tie_word_embeddings", false)?,
        family: Family::Llama,
        n_kv_heads: Some(f.size_or("num_key_value_heads", heads)?),
        rope_theta,
        rope_scaling,
        qkv_bias: qwen,
        ..TransformerConfig::small(1, 2)
    })
}

/// The rotary base and scaling: transformers 5's `rope_parameters`, or the older top-level
/// `rope_theta` and `rope_scaling`.
fn rope(hf: &Value) -> Result<(f64, Option<RopeScaling>), String> {
    let top = Fields(hf);
    let (theta, params) = match hf.get("rope_parameters").filter(|v| v.is_object()) {
        Some(p) => (
            Fields(p).number_or("rope_theta", top.number_or("rope_theta", 10_000.0)?)?,
            Some(p),
        ),
        None => (
            top.number_or("rope_theta", 10_000.0)?,
            hf.get("rope_scaling").filter(|v| v.is_object()),
        ),
    };
    let Some(p) = params else {
        return Ok((theta, None));
    };
    let p = Fields(p);
    let kind = match p.0.get("rope_type") {
        Some(_) => p.text_or("rope_type", "default")?,
        None => p.text_or("type", "default")?,
    };
    let need = |key: &str| {
        p.0.get(key)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("rope scaling \"{kind}\" needs a number {key}"))
    };
    let scaling = match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: need("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: need("original_max_position_embeddings")?,
        }),
        other => {
            return Err(format!(
                "rope type \"{other}\" is not supported (default, linear, llama3)"
            ))
        }
    };
    Ok((theta, scaling))
}

/// Builds [`Gpt`]'s Llama-family fields from the checkpoint's tensors, shapes checked.
pub(super) fn weights(config: &TransformerConfig, t: &mut Tensors) -> Result<Gpt, String> {
    let mut gpt = Gpt::new(config, &crate::cpu_device(), 0).map_err(|e| e.to_string())?;
    let (d, f, v) = (config.d_model, config.d_ff, config.vocab);
    let kvd = config.kv_heads() * config.head_dim();
    gpt.tok.weight = super::param2(t.take("embed_tokens.weight", &[v, d])?, [v, d]);
    for (i, block) in gpt.blocks.iter_mut().enumerate() {
        let l = format!("layers.{i}");
        set_rms(t, &format!("{l}.input_layernorm"), &mut block.input_norm, d)?;
        set_rms(
            t,
            &format!("{l}.post_attention_layernorm"),
            &mut block.post_norm,
            d,
        )?;
        let a = format!("{l}.self_attn");
        let b = config.qkv_bias;
        set_proj(t, &format!("{a}.q_proj"), &mut block.q, d, d, b)?;
        set_proj(t, &format!("{a}.k_proj"), &mut block.k, d, kvd, b)?;
        set_proj(t, &format!("{a}.v_proj"), &mut block.v, d, kvd, b)?;
        set_proj(t, &format!("{a}.o_proj"), &mut block.o, d, d, false)?;
        set_proj(
            t,
            &format!("{l}.mlp.gate_proj"),
            &mut block.gate,
            d,
            f,
            false,
        )?;
        set_proj(t, &format!("{l}.mlp.up_proj"), &mut block.up, d, f, false)?;
        set_proj(
            t,
            &format!("{l}.mlp.down_proj"),
            &mut block.down,
            f,
            d,
            false,
        )?;
    }
    if let Some(norm) = &mut gpt.rms_norm {
        set_rms(t, "norm", norm, d)?;
    }
    super::set_head(t, &mut gpt.head, (v, d))?;
    Ok(gpt)
}

fn set_rms(t: &mut Tensors, prefix: &str, n: &mut RmsNorm, d: usize) -> Result<(), String> {
    n.gamma = param1(t.take(&format!("{prefix}.weight"), &[d])?);
    Ok(())
}

fn set_proj(
    t: &mut Tensors,
    prefix: &str,
    lin: &mut Linear,
    inp: usize,
    out: usize,
    with_bias: bool,
) -> Result<(), String> {
    let w = t.take_transposed(&format!("{prefix}.weight"), out, inp)?;
    let b = if with_bias {
        Some(t.take(&format!("{prefix}.bias"), &[out])?)
    } else {
        None
    };
    set_linear(lin, w, b, inp, out);
    Ok(())
}

/// The tensors (named as `LlamaForCausalLM` or `Qwen2ForCausalLM` saves them) and
/// `config.json`: Qwen2 when the query, key and value projections have biases.
pub(super) fn export(
    model: &NeuralModel,
    out: &mut BTreeMap<String, Named>,
) -> Result<Value, String> {
    let (c, gpt) = (&model.config, &model.gpt);
    let mut put = |name: String, t: Named| {
        out.insert(name, t);
    };
    put(
        "model.embed_tokens.weight".into(),
        values(gpt.tok.weight.val()),
    );
    for (i, block) in gpt.blocks.iter().enumerate() {
        let l = format!("model.layers.{i}");
        put(
            format!("{l}.input_layernorm.weight"),
            values(block.input_norm.gamma.val()),
        );
        put(
            format!("{l}.post_attention_layernorm.weight"),
            values(block.post_norm.gamma.val()),
        );
        for (name, lin) in [
            ("self_attn.q_proj", &block.q),
            ("self_attn.k_proj", &block.k),
            ("self_attn.v_proj", &block.v),
            ("self_attn.o_proj", &block.o),
            ("mlp.gate_proj", &block.gate),
            ("mlp.up_proj", &block.up),
            ("mlp.down_proj", &block.down),
        ] {
            put(format!("{l}.{name}.weight"), torch_weight(lin));
            if let Some(b) = &lin.bias {
                put(format!("{l}.{name}.bias"), values(b.val()));
            }
        }
    }
    if let Some(norm) = &gpt.rms_norm {
        put("model.norm.weight".into(), values(norm.gamma.val()));
    }
    if let Some(head) = &gpt.head {
        put("lm_head.weight".into(), torch_weight(head));
    }
    let (model_type, arch) = if c.qkv_bias {
        ("qwen2", "Qwen2ForCausalLM")
    } else {
        ("llama", "LlamaForCausalLM")
    };
    let mut rope = json!({"rope_theta": c.rope_theta, "rope_type": "default"});
    match &c.rope_scaling {
        None => {}
        Some(RopeScaling::Linear { factor }) => {
            rope["rope_type"] = "linear".into();
            rope["factor"] = (*factor).into();
        }
        Some(RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        }) => {
            rope["rope_type"] = "llama3".into();
            rope["factor"] = (*factor).into();
            rope["low_freq_factor"] = (*low_freq_factor).into();
            rope["high_freq_factor"] = (*high_freq_factor).into();
            // transformers wants an integer here.
            let old = *original_max_position_embeddings;
            rope["original_max_position_embeddings"] = if old.fract() == 0.0 && old >= 0.0 {
                (old as u64).into()
            } else {
                old.into()
            };
        }
    }
    Ok(json!({
        "architectures": [arch],
        "model_type": model_type,
        "vocab_size": c.vocab,
        "hidden_size": c.d_model,
        "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.kv_heads(),
        "head_dim": c.head_dim(),
        "max_position_embeddings": c.max_len,
        "rms_norm_eps": c.layer_norm_eps,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tied_head,
        "attention_bias": false,
        "mlp_bias": false,
        "rope_theta": c.rope_theta,
        "rope_parameters": rope,
        "dtype": "float32",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "max_position_embeddings": 8})
    }

    #[test]
    fn both_rope_layouts_are_read() {
        let c = config(&base(), "llama").unwrap();
        assert_eq!(
            (c.rope_theta, c.rope_scaling.clone(), c.kv_heads()),
            (10_000.0, None, 2)
        );
        let mut v4 = base();
        v4["rope_theta"] = 500.0.into();
        v4["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
        let mut v5 = base();
        v5["rope_parameters"] = json!({"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0});
        for hf in [v4, v5] {
            let c = config(&hf, "llama").unwrap();
            assert_eq!(c.rope_theta, 500.0);
            assert_eq!(c.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
        }
    }

    #[test]
    fn unsupported_llama_options_are_refused() {
        for (key, value, says) in [
            ("hidden_act", json!("gelu"), "hidden_act"),
            ("head_dim", json!(16), "head_dim"),
            ("attention_bias", json!(true), "attention_bias"),
            ("mlp_bias", json!(true), "mlp_bias"),
            (
                "rope_parameters",
                json!({"rope_type": "yarn", "factor": 2.0}),
                "yarn",
            ),
            ("rope_parameters", json!({"rope_type": "linear"}), "factor"),
        ] {
            let mut hf = base();
            hf[key] = value;
            let e = config(&hf, "llama").unwrap_err();
            assert!(e.contains(says), "{key}: {e}");
        }
        let mut hf = base();
        hf["use_sliding_window"] = true.into();
        assert!(config(&hf, "qwen2").unwrap_err().contains("sliding"));
        assert!(config(&base(), "qwen2").unwrap().qkv_bias);
    }
}
