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

use super::{param1, param2, set_linear, torch_weight, values, Fields, Named, Tensors};
use crate::model::{bias_or_zeros, fused, Activation, Family, Gpt, NeuralModel, TransformerConfig};

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
    super::set_head(t, &mut gpt.head, (v, d))?;
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
        let (w, b) = fused(&m.query, &m.key, &m.value);
        put(format!("{h}.attn.c_attn.weight"), values(w));
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
    let norm = gpt
        .norm
        .as_ref()
        .ok_or("a GPT-family model without its final LayerNorm")?;
    put("ln_f.weight".into(), values(norm.gamma.val()));
    let (_, mut beta) = match &norm.beta {
        Some(b) => values(b.val()),
        None => (vec![c.d_model], vec![0.0; c.d_model]),
    };
    if let Some(head) = &gpt.head {
        let (_, b) = values(bias_or_zeros(head));
        if b.iter().any(|&x| x != 0.0) {
            let (_, w) = values(head.weight.val());
            let shift = fold_bias(&w, &b, c.d_model, c.vocab)?;
            for (x, s) in beta.iter_mut().zip(shift) {
                *x += s;
            }
        }
        out.insert("lm_head.weight".into(), torch_weight(head));
    }
    out.insert("transformer.ln_f.bias".into(), (vec![c.d_model], beta));
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

/// GPT-2's head has no bias. When the final norm's output `y` feeds a head `y W + b`
/// (`W` `[d, vocab]`), a shift `s` of the norm's bias with `s W = b` gives the same logits
/// without `b`: `(y + s) W = y W + b`. It exists when `b` lies in the row space of `W`, as it
/// does whenever `vocab <= d` and `W` has full column rank (the arith student: vocab 24, width
/// 96). Computed in f64 as the least-norm solution `s = W (W^T W)^-1 b`; refused when the
/// residual is not at rounding level. The logits then differ from the model's by rounding
/// only.
fn fold_bias(w: &[f32], b: &[f32], d: usize, vocab: usize) -> Result<Vec<f32>, String> {
    let no = |why: &str| {
        Err(format!(
            "the head has a bias, which GPT-2's lm_head has no place for, and it cannot be moved \
             into the final norm: {why}"
        ))
    };
    if vocab > d {
        return no(&format!(
            "the vocabulary ({vocab}) is larger than the width ({d})"
        ));
    }
    let w: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    // G = W^T W, [vocab, vocab].
    let mut g = vec![0f64; vocab * vocab];
    for row in w.chunks_exact(vocab) {
        for i in 0..vocab {
            for j in 0..vocab {
                g[i * vocab + j] += row[i] * row[j];
            }
        }
    }
    // Solve G y = b by Gaussian elimination with partial pivoting.
    let mut y: Vec<f64> = b.iter().map(|&x| x as f64).collect();
    for col in 0..vocab {
        let pivot = (col..vocab)
            .max_by(|&p, &q| {
                g[p * vocab + col]
                    .abs()
                    .total_cmp(&g[q * vocab + col].abs())
            })
            .expect("a non-empty range");
        if g[pivot * vocab + col].abs() < 1e-12 {
            return no("the head's columns are linearly dependent");
        }
        if pivot != col {
            for k in 0..vocab {
                g.swap(col * vocab + k, pivot * vocab + k);
            }
            y.swap(col, pivot);
        }
        for r in col + 1..vocab {
            let f = g[r * vocab + col] / g[col * vocab + col];
            for k in col..vocab {
                g[r * vocab + k] -= f * g[col * vocab + k];
            }
            y[r] -= f * y[col];
        }
    }
    for col in (0..vocab).rev() {
        let tail: f64 = (col + 1..vocab).map(|k| g[col * vocab + k] * y[k]).sum();
        y[col] = (y[col] - tail) / g[col * vocab + col];
    }
    let s: Vec<f64> = w
        .chunks_exact(vocab)
        .map(|row| row.iter().zip(&y).map(|(a, b)| a * b).sum())
        .collect();
    // The residual of s W = b.
    let scale = b.iter().fold(1f64, |m, &x| m.max((x as f64).abs()));
    for j in 0..vocab {
        let got: f64 = (0..d).map(|i| s[i] * w[i * vocab + j]).sum();
        if (got - b[j] as f64).abs() > 1e-6 * scale {
            return no("the bias is not in the row space of the head's weight");
        }
    }
    Ok(s.iter().map(|&x| x as f32).collect())
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
    put(format!("{prefix}.bias"), values(bias_or_zeros(l)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_bias_moves_into_the_final_norm() {
        // d = 4, vocab = 3: s W = b must hold to rounding.
        let w = [
            0.5f32, -1.0, 0.25, 1.5, 0.3, -0.7, -0.2, 0.9, 1.1, 0.4, 0.4, -0.6,
        ];
        let b = [0.3f32, -0.8, 1.7];
        let s = fold_bias(&w, &b, 4, 3).unwrap();
        for j in 0..3 {
            let got: f32 = (0..4).map(|i| s[i] * w[i * 3 + j]).sum();
            assert!((got - b[j]).abs() < 1e-5, "{j}: {got} vs {}", b[j]);
        }
        // More tokens than width, or dependent columns: refused.
        assert!(fold_bias(&w, &[1.0, 2.0, 3.0, 4.0], 3, 4)
            .unwrap_err()
            .contains("larger"));
        let dependent = [1.0f32, 2.0, 2.0, 4.0, 3.0, 6.0];
        assert!(fold_bias(&dependent, &[1.0, 0.0], 3, 2)
            .unwrap_err()
            .contains("dependent"));
    }

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
