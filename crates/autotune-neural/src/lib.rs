//! A small decoder-only transformer student on [burn](https://burn.dev) (pure-Rust `flex`
//! backend): training with AdamW on masked cross-entropy, batched greedy and temperature
//! generation with a KV cache, and safetensors checkpoints with a JSON config beside them.
//!
//! The pieces, in the order a student uses them:
//! - [`TransformerConfig`] and [`Gpt`]: token and learned position embeddings, a pre-norm
//!   causal [`burn::nn::transformer::TransformerEncoder`], a final layer norm and a linear head;
//! - [`Trainer`]: the autodiff model, AdamW, the learning-rate schedule and a seeded batch
//!   sampler; [`Trainer::train_step`] takes [`Example`]s whose `loss_mask` marks the tokens to
//!   learn (the chain of thought and the answer, not the prompt);
//! - [`NeuralModel`]: the model without autodiff, for generation ([`NeuralModel::generate`],
//!   greedy or sampled, KV-cached, one RNG stream per prompt index) and checkpoints
//!   ([`NeuralModel::save`], [`NeuralModel::load`]);
//! - [`LoraConfig`]: low-rank adapters instead of full fine-tuning (`TrainerConfig::lora`),
//!   merged into the weights of the [`NeuralModel`] a trainer hands out; PEFT adapter
//!   directories read and written ([`read_peft_adapter`], [`write_peft_adapter`]);
//! - [`TrainerState`]: the complete training state ([`Trainer::state`], [`Trainer::from_state`]):
//!   weights, AdamW moments and step counts, the sampler's position and the configurations,
//!   from which training continues bit for bit.
//!
//! All autograd is burn's; this crate only writes the forward passes.
//!
//! ```
//! use autotune_neural::{GenerateOptions, NeuralModel, TransformerConfig};
//!
//! // An untrained model of 2 layers over 16 tokens; greedy generation with the KV cache.
//! let config = TransformerConfig { n_layers: 2, ..TransformerConfig::small(16, 32) };
//! let model = NeuralModel::new(config, 0)?;
//! let out = model.generate(&[vec![1, 2, 3]], &GenerateOptions::greedy(5, None))?;
//! assert_eq!(out[0].len(), 5);
//! # Ok::<(), autotune_neural::NeuralError>(())
//! ```

mod checkpoint;
mod generate;
mod hf;
mod kernels;
mod lora;
mod memory;
mod model;
mod state;
mod tokenizer;
mod train;

pub use checkpoint::{CheckpointMeta, CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE};
pub use generate::{GenerateOptions, Sampling};
pub use hf::{read_peft_adapter, write_peft_adapter, PEFT_ADAPTER_CONFIG, PEFT_ADAPTER_WEIGHTS};
pub use hf::{HF_INDEX_FILE, HF_MODEL_TYPES, HF_WEIGHTS_FILE};
pub use lora::{LoraConfig, LoraInit, LoraTarget};
pub use memory::{
    available_memory, check_training_memory, parse_size, LORA_FROZEN_BYTES_PER_PARAM,
    TRAINING_BYTES_PER_PARAM,
};
pub use model::{Activation, Family, Gpt, LlamaBlock, NeuralModel, RopeScaling, TransformerConfig};
pub use state::{SamplerState, TrainerState, TRAINER_STATE_FORMAT, TRAINER_STATE_VERSION};
pub use tokenizer::{
    ChatMessage, HfTokenizer, Tokenizer, BYTE_BOS, BYTE_EOS, BYTE_PAD, BYTE_VOCAB,
};
pub use train::{Example, LrSchedule, Trainer, TrainerConfig};

/// Token ids, as in `autotune-core`.
pub type TokenId = u32;

/// Errors of this crate. Every failure that depends on input or files is one of these, never a
/// panic.
#[derive(Debug, thiserror::Error)]
pub enum NeuralError {
    /// A configuration that cannot describe a model or a training run.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Bad input: an empty batch, a token outside the vocabulary, a sequence too long.
    #[error("invalid input: {0}")]
    Input(String),
    /// A checkpoint that is missing, corrupt or does not match its config.
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
    /// A training state ([`TrainerState`]) that is corrupt, of another version, or does not
    /// match its own model config.
    #[error("training state: {0}")]
    State(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, NeuralError>;

/// `dir` and its parents, created if needed; an error names it.
pub(crate) fn create_dir(dir: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| NeuralError::Io {
        path: dir.display().to_string(),
        source,
    })
}

/// `bytes` written to `path`; an error names it.
pub(crate) fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| NeuralError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The device everything in this crate runs on: burn's pure-Rust CPU backend.
pub fn cpu_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// Burn's random number generator is one global per backend. Every seeded use of it in this
/// crate (initialisation, dropout) holds this lock from seeding to the last draw, so that
/// concurrent models (parallel tests, parallel ensemble members) stay deterministic.
pub(crate) static BURN_RNG_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) fn burn_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    BURN_RNG_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
pub(crate) mod testutil {
    //! A tiny task for tests: reverse 4 digits. Tokens: 0 pad, 1 BOS, 2 SEP, 3 EOS, 4.. digits.
    use crate::{Example, LrSchedule, Trainer, TrainerConfig, TransformerConfig};

    pub const BOS: u32 = 1;
    pub const SEP: u32 = 2;
    pub const EOS: u32 = 3;

    pub fn tiny_config() -> TransformerConfig {
        TransformerConfig {
            vocab: 12,
            d_model: 32,
            n_layers: 2,
            n_heads: 2,
            d_ff: 64,
            ..TransformerConfig::small(12, 16)
        }
    }

    pub fn reverse_prompt(i: u32) -> Vec<u32> {
        let digits: Vec<u32> = (0..4).map(|k| 4 + (i * 7 + k * 3 + i * k) % 8).collect();
        let mut p = vec![BOS];
        p.extend(&digits);
        p.push(SEP);
        p
    }

    pub fn reverse_target(i: u32) -> Vec<u32> {
        let p = reverse_prompt(i);
        let mut t: Vec<u32> = p[1..5].iter().rev().copied().collect();
        t.push(EOS);
        t
    }

    pub fn reverse_examples(n: u32) -> Vec<Example> {
        (0..n)
            .map(|i| Example::new(&reverse_prompt(i), &reverse_target(i)))
            .collect()
    }

    pub fn trainer(seed: u64) -> Trainer {
        Trainer::new(
            tiny_config(),
            TrainerConfig {
                lr: 3e-3,
                schedule: LrSchedule::Constant,
                batch_size: 8,
                seed,
                weight_decay: 0.0,
                grad_clip: Some(1.0),
                pad_token: 0,
                lora: None,
            },
        )
        .unwrap()
    }

    /// A trainer overfitted on the 8 reverse examples (cached across tests of one process).
    pub fn overfitted() -> (Trainer, Vec<f32>) {
        let mut t = trainer(7);
        let data = reverse_examples(8);
        let losses = t.fit(&data, 300).unwrap();
        (t, losses)
    }
}
