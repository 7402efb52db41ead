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
        std::fs::create_dir_all(dir).map_err(|source| NeuralError::Io {
            path: dir.display().to_string(),
            source,
        })?;
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
        std::fs::write(&config, text).map_err(|source| NeuralError::Io {
            path: config.display().to_string(),
            source,
        })
    }

    /// Reads a checkpoint written by [`NeuralModel::save`]. A missing or corrupt file, another
    /// format version, or weights whose names or shapes do not match the config give a
    /// [`NeuralError::Checkpoint`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ckpt_err(&config_path, format!("cannot read the config: {e}")))?;
        let meta: CheckpointMeta = serde_json::from_str(&text)
            .map_err(|e| ckpt_err(&config_path, format!("not a valid checkpoint config: {e}")))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(ckpt_err(
                &config_path,
                format!(
                    "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                    meta.format_version
                ),
            ));
        }
        if meta.vocab != meta.config.vocab {
            return Err(ckpt_err(
                &config_path,
                format!(
                    "vocab {} disagrees with the model config's vocab {}",
                    meta.vocab, meta.config.vocab
                ),
            ));
        }
        meta.config
            .validate()
            .map_err(|e| ckpt_err(&config_path, e.to_string()))?;
        let weights = dir.join(WEIGHTS_FILE);
        if !weights.is_file() {
            return Err(ckpt_err(&weights, "the weights file is missing"));
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
        assert!(e.contains("cannot load the weights"), "{e}");
        std::fs::write(&w, b"").unwrap();
        load_err(dir.path());
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
