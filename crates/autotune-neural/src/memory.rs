//! How much memory training a model takes, checked before it is built: a model that cannot fit
//! is refused with both sizes rather than found out by the allocator.

use crate::lora::LoraConfig;
use crate::model::TransformerConfig;
use crate::{NeuralError, Result};

/// Bytes per parameter of full fine-tuning: f32 weights, their gradients, AdamW's two moments,
/// and the copy without autodiff that generation uses (5 x 4 bytes).
pub const TRAINING_BYTES_PER_PARAM: u64 = 20;

/// `MemAvailable` of `/proc/meminfo` in bytes (`None` where there is none).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A size such as `8G`, `512M`, `64K` or a number of bytes (binary units).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], t[i..].to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let n: f64 = digits
        .trim()
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let scale: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    Some((n * scale as f64) as u64)
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// Bytes per frozen parameter of LoRA training: the f32 weight, the adapted weight composed
/// in each forward pass and kept for the backward pass, and the merged copy generation uses
/// (3 x 4 bytes). The adapters' own parameters cost [`TRAINING_BYTES_PER_PARAM`].
pub const LORA_FROZEN_BYTES_PER_PARAM: u64 = 12;

/// Refuses to train `config` (with `lora`'s adapters, or every weight) when its parameters and
/// optimiser state ([`TRAINING_BYTES_PER_PARAM`] a trained parameter,
/// [`LORA_FROZEN_BYTES_PER_PARAM`] a frozen one) exceed `max_bytes`; the error gives both
/// sizes.
pub fn check_training_memory(
    config: &TransformerConfig,
    lora: Option<&LoraConfig>,
    max_bytes: u64,
    what: &str,
) -> Result<()> {
    let params = config
        .num_params()
        .ok_or_else(|| NeuralError::Config(format!("{what}: the parameter count overflows")))?;
    let (need, how) = match lora {
        None => (
            (params as u64).saturating_mul(TRAINING_BYTES_PER_PARAM),
            format!("weights, gradients, AdamW moments and an inference copy, {TRAINING_BYTES_PER_PARAM} bytes each"),
        ),
        Some(lora) => {
            let adapters = lora.num_params(config)? as u64;
            (
                (params as u64)
                    .saturating_mul(LORA_FROZEN_BYTES_PER_PARAM)
                    .saturating_add(adapters.saturating_mul(TRAINING_BYTES_PER_PARAM)),
                format!("{LORA_FROZEN_BYTES_PER_PARAM} bytes a frozen weight, {TRAINING_BYTES_PER_PARAM} for each of the {adapters} adapter parameters"),
            )
        }
    };
    if need > max_bytes {
        return Err(NeuralError::Config(format!(
            "{what} has {params} parameters: training it needs about {} ({how}), more than the {} allowed (max_memory)",
            gib(need),
            gib(max_bytes)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("8G"), Some(8 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("12 MB"), Some(12 << 20));
        for bad in ["", "G", "-1G", "8X", "lots"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_model_too_large_for_the_limit_is_refused_with_both_sizes() {
        let c = TransformerConfig::small(100, 64);
        let need = c.num_params().unwrap() as u64 * TRAINING_BYTES_PER_PARAM;
        check_training_memory(&c, None, need, "the model").unwrap();
        // LoRA needs less: 12 bytes a frozen weight, 20 an adapter parameter.
        let lora = LoraConfig::new(4, 8.0);
        let adapters = lora.num_params(&c).unwrap() as u64;
        assert_eq!(adapters, 4 * 4 * (4 * (96 + 96) + (96 + 384) + (384 + 96)));
        let lora_need = c.num_params().unwrap() as u64 * 12 + adapters * 20;
        check_training_memory(&c, Some(&lora), lora_need, "the model").unwrap();
        assert!(check_training_memory(&c, Some(&lora), lora_need - 1, "the model").is_err());
        let e = check_training_memory(&c, None, need - 1, "the model")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("parameters") && e.contains("GiB") && e.contains("max_memory"),
            "{e}"
        );
        assert!(available_memory().is_some_and(|m| m > 0));
    }
}
