//! GPT-2 (`GPT2LMHeadModel`). Its names map onto [`Gpt`]'s as follows (`h.{i}` is layer `i`;
//! GPT-2's `Conv1D` weights are stored `[in, out]`, burn's `Linear` layout, so nothing is
//! transposed but an untied `lm_head`):
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

use std::collections::BTreeMap;

use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use serde_json::{json, Value};

use super::{bias, param1, param2, set_linear, torch_weight, values, Fields, Named, Tensors};
use crate::model::{Activation, Family, Gpt, NeuralModel, TransformerConfig};

/// GPT-2's `config.json` as a [`TransformerConfig`]; fields this crate cannot honour are
/// errors rather than silently different models.
pub(super) fn config(hf: &Value) -> Result<TransformerConfig, String> {
    let f = Fields(hf);
    let d_model = f.size("n_embd")?;
    let activation = match f.text_or("activation_function", "gelu_new")? {
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
        "gelu" => Activation::Gelu,
        other => {
            return Err(format!(
            "activation_function \"{other}\" is not supported (gelu_new, gelu_pytorch_tanh, gelu_fast or gelu)"
        ))
        }
    };
    if !f.flag("scale_attn_weights", true)? {
        return Err("scale_attn_weights false is not supported".into());
    }
    if f.flag("scale_attn_by_inverse_layer_idx", false)? {
        return Err("scale_attn_by_inverse_layer_idx is not supported".into());
    }
    if f.flag("add_cross_attention", false)? {
        return Err("add_cross_attention is not supported".into());
    }
    Ok(TransformerConfig {
        vocab: f.size("vocab_size")?,
        d_model,
        n_layers: f.size("n_layer")?,
        n_heads: f.size("n_head")?,
        d_ff: f.size_or("n_inner", d_model.saturating_mul(4))?,
        max_len: f.size("n_positions")?,
        activation,
        layer_norm_eps: f.number_or("layer_norm_epsilon", 1e-5)?,
        tied_head: f.flag("tie_word_embeddings", true)?,
        family: Family::Gpt,
        ..TransformerConfig::small(1, 2)
    })
}

/// Builds [`Gpt`] from GPT-2's tensors, shapes checked.
pub(super) fn weights(config: &TransformerConfig, t: &mut Tensors) -> Result<Gpt, String> {
    // The initial values are all overwritten; the seed only keeps this deterministic.
    let mut gpt = Gpt::new(config, &crate::cpu_device(), 0).map_err(|e| e.to_string())?;
    let (d, f, v, n) = (config.d_model, config.d_ff, config.vocab, config.max_len);
    gpt.tok.weight = param2(t.take("wte.weight", &[v, d])?, [v, d]);
    if let Some(pos) = &mut gpt.pos {
        pos.weight = param2(t.take("wpe.weight", &[n, d])?, [n, d]);
    }
    for (i, layer) in gpt.enc.layers.iter_mut().enumerate() {
        let h = format!("h.{i}");
        set_norm(t, &format!("{h}.ln_1"), &mut layer.norm_2, d)?;
        set_norm(t, &format!("{h}.ln_2"), &mut layer.norm_1, d)?;
        let w = t.take(&format!("{h}.attn.c_attn.weight"), &[d, 3 * d])?;
        let b = t.take(&format!("{h}.attn.c_attn.bias"), &[3 * d])?;
        let m = &mut layer.mha;
        for (k, lin) in [&mut m.query, &mut m.key, &mut m.value]
            .into_iter()
            .enumerate()
        {
            let cols: Vec<f32> = w
                .chunks_exact(3 * d)
                .flat_map(|row| row[k * d..(k + 1) * d].iter().copied())
                .collect();
            set_linear(lin, cols, Some(b[k * d..(k + 1) * d].to_vec()), d, d);
        }
        set_conv(t, &format!("{h}.attn.c_proj"), &mut layer.mha.output, d, d)?;
        set_conv(
            t,
            &format!("{h}.mlp.c_fc"),
            &mut layer.pwff.linear_inner,
            d,
            f,
        )?;
        set_conv(
            t,
            &format!("{h}.mlp.c_proj"),
            &mut layer.pwff.linear_outer,
            f,
            d,
        )?;
    }
    if let Some(norm) = &mut gpt.norm {
        set_norm(t, "ln_f", norm, d)?;
    }
    match &mut gpt.head {
        // Tied: transformers does not read lm_head.weight even when it is stored.
        None => t.discard("lm_head.weight"),
        // Untied: torch's Linear layout; GPT-2's head has no bias.
        Some(head) => {
            let w = t.take_transposed("lm_head.weight", v, d)?;
            set_linear(head, w, Some(vec![0.0; v]), d, v);
        }
    }
    Ok(gpt)
}

fn set_norm(t: &mut Tensors, prefix: &str, n: &mut LayerNorm, d: usize) -> Result<(), String> {
    n.gamma = param1(t.take(&format!("{prefix}.weight"), &[d])?);
    n.beta = Some(param1(t.take(&format!("{prefix}.bias"), &[d])?));
    Ok(())
}

/// GPT-2's `Conv1D`: weight `[in, out]` and bias.
fn set_conv(
    t: &mut Tensors,
    prefix: &str,
    lin: &mut Linear,
    inp: usize,
    out: usize,
) -> Result<(), String> {
    let w = t.take(&format!("{prefix}.weight"), &[inp, out])?;
    let b = t.take(&format!("{prefix}.bias"), &[out])?;
    set_linear(lin, w, Some(b), inp, out);
    Ok(())
}

/// GPT-2's tensors (named as `GPT2LMHeadModel` saves them) and `config.json`.
pub(super) fn export(
    model: &NeuralModel,
    out: &mut BTreeMap<String, Named>,
) -> Result<Value, String> {
    let (c, gpt) = (&model.config, &model.gpt);
    let mut put = |name: String, t: Named| {
        out.insert(format!("transformer.{name}"), t);
    };
    put("wte.weight".into(), values(gpt.tok.weight.val()));
    if let Some(pos) = &gpt.pos {
        put("wpe.weight".into(), values(pos.weight.val()));
    }
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
        put_conv(&mut put, &format!("{h}.attn.c_proj"), &m.output);
        put_norm(&mut put, &format!("{h}.ln_2"), &layer.norm_1);
        put_conv(&mut put, &format!("{h}.mlp.c_fc"), &layer.pwff.linear_inner);
        put_conv(
            &mut put,
            &format!("{h}.mlp.c_proj"),
            &layer.pwff.linear_outer,
        );
    }
    if let Some(norm) = &gpt.norm {
        put_norm(&mut put, "ln_f", norm);
    }
    if let Some(head) = &gpt.head {
        let (_, b) = values(bias(head));
        if b.iter().any(|&x| x != 0.0) {
            return Err("the head has a bias, which GPT-2's lm_head has no place for".into());
        }
        out.insert("lm_head.weight".into(), torch_weight(head));
    }
    Ok(json!({
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
    }))
}

fn put_norm(put: &mut impl FnMut(String, Named), prefix: &str, n: &LayerNorm) {
    put(format!("{prefix}.weight"), values(n.gamma.val()));
    let beta = match &n.beta {
        Some(b) => b.val(),
        None => Tensor::zeros(n.gamma.dims(), &n.gamma.device()),
    };
    put(format!("{prefix}.bias"), values(beta));
}

fn put_conv(put: &mut impl FnMut(String, Named), prefix: &str, l: &Linear) {
    put(format!("{prefix}.weight"), values(l.weight.val()));
    put(format!("{prefix}.bias"), values(bias(l)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_gpt2_options_are_refused() {
        let base = json!({"model_type": "gpt2", "vocab_size": 10, "n_positions": 8,
            "n_embd": 8, "n_layer": 1, "n_head": 2});
        let c = config(&base).unwrap();
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
            let e = config(&hf).unwrap_err();
            assert!(e.contains(says), "{key}: {e}");
        }
    }
}
