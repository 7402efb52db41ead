//! Checkpoints: `DIR/model.safetensors` (burn-store's SafeTensors writer) and `DIR/config.json`.

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use crate::model::{Gpt, NeuralModel, TransformerConfig};
use crate::{NeuralError, Result};

/// The weights file inside a checkpoint directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The config file inside a checkpoint directory.
pub const CONFIG_FILE: &str = "config.json";
/// Version of the checkpoint layout; [`NeuralModel::load`] refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// Fewest bytes a parameter takes in the weights file (f16/bf16; f32 takes 4).
const MIN_BYTES_PER_PARAM: u64 = 2;

/// The content of `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub format_version: u32,
    pub vocab: usize,
    pub config: TransformerConfig,
    /// Number of parameters, checked on load.
    pub num_params: usize,
}

impl CheckpointMeta {
    /// Reads and checks `config.json`'s text: the format version, the vocabulary, the model
    /// config, and a parameter count that agrees with the config (computed, not built).
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let meta: CheckpointMeta = serde_json::from_str(text)
            .map_err(|e| format!("not a valid checkpoint config: {e}"))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                meta.format_version
            ));
        }
        if meta.vocab != meta.config.vocab {
            return Err(format!(
                "vocab {} disagrees with the model config's vocab {}",
                meta.vocab, meta.config.vocab
            ));
        }
        meta.config.validate().map_err(|e| e.to_string())?;
        let n = meta.config.num_params();
        if n != Some(meta.num_params) {
            return Err(format!(
                "the config describes {} parameters but the checkpoint says {}",
                n.map_or("too many".to_string(), |n| n.to_string()),
                meta.num_params
            ));
        }
        Ok(meta)
    }
}

fn ckpt_err(path: &Path, message: impl Into<String>) -> NeuralError {
    NeuralError::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl NeuralModel {
    /// Writes `dir/model.safetensors` and `dir/config.json`, creating `dir` if needed and
    /// replacing an earlier checkpoint there.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        crate::create_dir(dir)?;
        let weights = dir.join(WEIGHTS_FILE);
        let mut store = SafetensorsStore::from_file(&weights)
            .overwrite(true)
            .metadata("autotune_format_version", FORMAT_VERSION.to_string());
        self.gpt
            .save_into(&mut store)
            .map_err(|e| ckpt_err(&weights, format!("cannot write the weights: {e}")))?;
        let meta = CheckpointMeta {
            format: "autotune-neural".into(),
            format_version: FORMAT_VERSION,
            vocab: self.config.vocab,
            config: self.config.clone(),
            num_params: self.num_params(),
        };
        let config = dir.join(CONFIG_FILE);
        let text = serde_json::to_string_pretty(&meta).expect("the config serialises");
        crate::write_file(&config, text.as_bytes())
    }

    /// Reads a checkpoint written by [`NeuralModel::save`]. A missing or corrupt file, another
    /// format version, or weights whose names or shapes do not match the config give a
    /// [`NeuralError::Checkpoint`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ckpt_err(&config_path, format!("cannot read the config: {e}")))?;
        let meta = CheckpointMeta::parse(&text).map_err(|m| ckpt_err(&config_path, m))?;
        let weights = dir.join(WEIGHTS_FILE);
        let size = match std::fs::metadata(&weights) {
            Ok(m) if m.is_file() => m.len(),
            _ => return Err(ckpt_err(&weights, "the weights file is missing")),
        };
        // The model is built before its weights are read: a config that claims more
        // parameters than the file can hold is refused before anything that size is
        // allocated.
        let need = (meta.num_params as u64).saturating_mul(MIN_BYTES_PER_PARAM);
        if size < need {
            return Err(ckpt_err(
                &weights,
                format!(
                    "{size} bytes cannot hold the {} parameters the config describes",
                    meta.num_params
                ),
            ));
        }
        let device = crate::cpu_device();
        // The initial values are overwritten; the seed only keeps this deterministic.
        let mut gpt = Gpt::new(&meta.config, &device, 0)?;
        if gpt.num_params() != meta.num_params {
            return Err(ckpt_err(
                &config_path,
                format!(
                    "the config describes {} parameters but the checkpoint says {}",
                    gpt.num_params(),
                    meta.num_params
                ),
            ));
        }
        let mut store = SafetensorsStore::from_file(&weights);
        let result = gpt
            .load_from(&mut store)
            .map_err(|e| ckpt_err(&weights, format!("cannot load the weights: {e}")))?;
        if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
            return Err(ckpt_err(
                &weights,
                format!("the weights do not match the config:\n{result}"),
            ));
        }
        Ok(Self {
            config: meta.config,
            gpt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::GenerateOptions;

    fn prompts() -> Vec<Vec<u32>> {
        (0..8).map(reverse_prompt).collect()
    }

    #[test]
    fn a_reloaded_model_generates_identically() {
        let (t, _) = overfitted();
        let model = t.inference_model();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let back = NeuralModel::load(dir.path()).unwrap();
        assert_eq!(back.config(), model.config());
        let o = GenerateOptions::greedy(10, Some(EOS));
        let a = model.generate(&prompts(), &o).unwrap();
        assert_eq!(a, back.generate(&prompts(), &o).unwrap());
        // Not trivially equal to an untrained model.
        let fresh = NeuralModel::new(tiny_config(), 0).unwrap();
        assert_ne!(a, fresh.generate(&prompts(), &o).unwrap());
        // Saving again over the same directory works.
        back.save(dir.path()).unwrap();
        NeuralModel::load(dir.path()).unwrap();
    }

    #[test]
    fn a_llama_family_model_saves_and_reloads() {
        let c = TransformerConfig {
            family: crate::Family::Llama,
            n_kv_heads: Some(1),
            qkv_bias: true,
            ..tiny_config()
        };
        let model = NeuralModel::new(c, 5).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let back = NeuralModel::load(dir.path()).unwrap();
        assert_eq!(back.config(), model.config());
        assert_eq!(
            back.logits(&[1, 4, 5]).unwrap(),
            model.logits(&[1, 4, 5]).unwrap()
        );
    }

    fn saved() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        NeuralModel::new(tiny_config(), 3)
            .unwrap()
            .save(dir.path())
            .unwrap();
        dir
    }

    fn load_err(dir: &Path) -> String {
        match NeuralModel::load(dir) {
            Err(e @ NeuralError::Checkpoint { .. }) => e.to_string(),
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("a bad checkpoint loaded"),
        }
    }

    fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let p = dir.join(CONFIG_FILE);
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&p, v.to_string()).unwrap();
    }

    #[test]
    fn missing_files_are_clear_errors() {
        let empty = tempfile::tempdir().unwrap();
        assert!(load_err(empty.path()).contains("cannot read the config"));
        let dir = saved();
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        assert!(load_err(dir.path()).contains("missing"));
    }

    #[test]
    fn corrupt_weights_are_clear_errors() {
        let dir = saved();
        let w = dir.path().join(WEIGHTS_FILE);
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("cannot load the weights"), "{e}");
        std::fs::write(&w, b"not a safetensors file at all").unwrap();
        let e = load_err(dir.path());
        assert!(e.contains("cannot hold the"), "{e}");
        std::fs::write(&w, b"").unwrap();
        load_err(dir.path());
    }

    #[test]
    fn the_parameter_count_is_computed_without_building_the_model() {
        for (d_model, n_layers, n_heads, d_ff, vocab, max_len) in [
            (8, 1, 2, 16, 5, 4),
            (16, 2, 4, 8, 24, 64),
            (12, 3, 3, 40, 7, 2),
        ] {
            for tied_head in [false, true] {
                let c = TransformerConfig {
                    vocab,
                    d_model,
                    n_layers,
                    n_heads,
                    d_ff,
                    tied_head,
                    ..TransformerConfig::small(vocab, max_len)
                };
                let built = Gpt::new(&c, &crate::cpu_device(), 0).unwrap().num_params();
                assert_eq!(c.num_params(), Some(built), "{c:?}");
                // The Llama family, with and without grouped-query attention and biases.
                for (n_kv_heads, qkv_bias) in [(None, false), (Some(1), true)] {
                    let c = TransformerConfig {
                        family: crate::Family::Llama,
                        n_kv_heads,
                        qkv_bias,
                        d_model: 2 * d_model,
                        ..c.clone()
                    };
                    let built = Gpt::new(&c, &crate::cpu_device(), 0).unwrap().num_params();
                    assert_eq!(c.num_params(), Some(built), "{c:?}");
                }
            }
        }
    }

    #[test]
    fn a_config_claiming_a_huge_model_is_refused_before_it_is_built() {
        // Found writing the `neural_config` fuzz target: the model was built (every
        // parameter allocated) from the config before the weights were read, so a few bytes
        // of JSON could ask for terabytes. Now the count is computed, checked against the
        // size of the weights file, and refused.
        let dir = saved();
        edit_config(dir.path(), |v| {
            v["config"]["d_model"] = (1u64 << 20).into();
            v["config"]["n_layers"] = 1000.into();
            v["config"]["n_heads"] = 1.into();
            let c: TransformerConfig = serde_json::from_value(v["config"].clone()).unwrap();
            v["num_params"] = c.num_params().unwrap().into();
        });
        let e = load_err(dir.path());
        assert!(e.contains("cannot hold the"), "{e}");
        // A count that overflows is an error, not a wrap-around.
        let dir = saved();
        edit_config(dir.path(), |v| {
            v["config"]["d_model"] = (1u64 << 40).into();
            v["config"]["n_heads"] = 1.into();
        });
        let e = load_err(dir.path());
        assert!(e.contains("overflows"), "{e}");
        // The parse alone checks the same.
        let text = r#"{"format":"autotune-neural","format_version":1,"vocab":3,"config":{"vocab":3,"d_model":4294967296,"n_layers":4294967296,"n_heads":1,"d_ff":1,"max_len":2,"dropout":0.0},"num_params":0}"#;
        assert!(CheckpointMeta::parse(text)
            .unwrap_err()
            .contains("overflows"));
    }

    #[test]
    fn mismatched_configs_are_clear_errors() {
        // Other shapes: the parameter count no longer matches.
        let dir = saved();
        edit_config(dir.path(), |v| v["config"]["d_ff"] = 48.into());
        let e = load_err(dir.path());
        assert!(e.contains("parameters"), "{e}");
        // Other shapes with the count edited to match: the weights themselves disagree.
        let dir = saved();
        edit_config(dir.path(), |v| {
            v["config"]["d_ff"] = 48.into();
            let n = Gpt::new(
                &serde_json::from_value(v["config"].clone()).unwrap(),
                &crate::cpu_device(),
                0,
            )
            .unwrap()
            .num_params();
            v["num_params"] = n.into();
        });
        let e = load_err(dir.path());
        assert!(
            e.contains("cannot load the weights") || e.contains("do not match"),
            "{e}"
        );
        // More layers than were saved: missing tensors.
        let dir = saved();
        edit_config(dir.path(), |v| {
            v["config"]["n_layers"] = 3.into();
            let n = Gpt::new(
                &serde_json::from_value(v["config"].clone()).unwrap(),
                &crate::cpu_device(),
                0,
            )
            .unwrap()
            .num_params();
            v["num_params"] = n.into();
        });
        load_err(dir.path());
        // Another format version, an invalid config, and a file that is not JSON.
        let dir = saved();
        edit_config(dir.path(), |v| v["format_version"] = 99.into());
        assert!(load_err(dir.path()).contains("format version 99"));
        let dir = saved();
        edit_config(dir.path(), |v| v["config"]["n_heads"] = 5.into());
        assert!(load_err(dir.path()).contains("n_heads"));
        let dir = saved();
        std::fs::write(dir.path().join(CONFIG_FILE), "{").unwrap();
        assert!(load_err(dir.path()).contains("not a valid checkpoint config"));
    }
}
