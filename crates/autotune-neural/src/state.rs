//! The complete training state of a [`Trainer`]: the weights, AdamW's moments and step counts,
//! the trainer's step, the minibatch sampler's position and the configurations. A trainer
//! rebuilt from it with [`Trainer::from_state`] continues exactly (bit for bit) as the saved
//! one would have.
//!
//! The weights and the optimiser state are burn's burnpack containers (base64 in the JSON):
//! the weights from [`Module::into_record`], which keeps every parameter's [`ParamId`], and the
//! optimiser from `ModuleOptimizer::into_bytes`, whose per-parameter state is keyed by those
//! ids. Both are written in a canonical order (tensors sorted by name), so the same state
//! always gives the same text. On load, both are checked against the model (names, dtypes,
//! shapes, ids, ranks) before burn sees them, and read back out of the rebuilt trainer and
//! compared with what was saved: a state that burn would take only in part is refused.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use burn::module::{Module, ModuleVisitor, Param, ParamGroup};
use burn::store::burn_pack::{Reader, Scalar, Tensor as PackTensor, Writer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lora::{AdapterWalk, LoraInit};
use crate::model::{Gpt, NeuralModel, TransformerConfig};
use crate::train::{Trainer, TrainerConfig};
use crate::{NeuralError, Result};

/// The `format` tag of a [`TrainerState`].
pub const TRAINER_STATE_FORMAT: &str = "autotune-neural-trainer";
/// The version of the [`TrainerState`] layout; [`Trainer::from_state`] refuses any other.
pub const TRAINER_STATE_VERSION: u32 = 1;

/// Where the minibatch sampler (ChaCha8) stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The 32-byte key, hex.
    pub seed: String,
    pub stream: u64,
    /// The position in the key stream, in 32-bit words (a decimal `u128`).
    pub word_pos: String,
}

/// Everything a [`Trainer`] is (see the module documentation), as JSON-serialisable data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    pub format: String,
    pub format_version: u32,
    pub model: TransformerConfig,
    pub trainer: TrainerConfig,
    /// Optimisation steps taken.
    pub step: u64,
    pub sampler: SamplerState,
    /// The weights: a burnpack container (tensors by module path, with their parameter ids),
    /// base64.
    pub weights: String,
    /// AdamW's state: a burnpack container (moments per parameter id, step counts and ranks
    /// as scalars), base64.
    pub optimizer: String,
    /// LoRA: `weights` holds the adapters only, and this is the SHA-256 of the frozen weights
    /// they were trained on ([`frozen_digest`]); the state is loaded over that base with
    /// [`Trainer::from_state_on`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_sha256: Option<String>,
}

fn state_err(message: impl Into<String>) -> NeuralError {
    NeuralError::State(message.into())
}

/// The content of a burnpack container, independent of the order it was written in.
#[derive(Debug, PartialEq)]
struct Pack {
    tensors: BTreeMap<String, PackEntry>,
    scalars: BTreeMap<String, Scalar>,
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq)]
struct PackEntry {
    param_id: Option<u64>,
    dtype: DType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Pack {
    fn read(bytes: &[u8], what: &str) -> Result<Self> {
        let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| {
            state_err(format!(
                "the {what} are not a valid burnpack container: {e}"
            ))
        })?;
        let scalars = reader.scalars().clone();
        let metadata = reader.metadata().clone();
        let mut tensors = BTreeMap::new();
        for t in reader
            .into_tensors()
            .map_err(|e| state_err(format!("the {what} cannot be read: {e}")))?
        {
            let (name, dtype, shape, param_id, data) = t
                .into_parts()
                .map_err(|e| state_err(format!("the {what} cannot be read: {e}")))?;
            let entry = PackEntry {
                param_id,
                dtype,
                shape: shape.to_vec(),
                bytes: data.to_vec(),
            };
            tensors.insert(name, entry);
        }
        Ok(Self {
            tensors,
            scalars,
            metadata,
        })
    }

    /// The container with its tensors in name order.
    fn write(&self, what: &str) -> Result<Vec<u8>> {
        let tensors = self
            .tensors
            .iter()
            .map(|(name, e)| {
                PackTensor::new(
                    name.clone(),
                    e.dtype,
                    e.shape.clone(),
                    e.param_id,
                    Bytes::from_bytes_vec(e.bytes.clone()),
                )
            })
            .collect();
        let mut writer = Writer::new(tensors);
        for (k, v) in &self.scalars {
            writer = writer.with_scalar(k, *v);
        }
        for (k, v) in &self.metadata {
            writer = writer.with_metadata(k, v);
        }
        let bytes = writer
            .into_bytes()
            .map_err(|e| state_err(format!("cannot write the {what}: {e}")))?;
        Ok(bytes.to_vec())
    }
}

/// Every float parameter of a model: path, id, shape.
#[derive(Default)]
struct Params {
    path: Vec<String>,
    list: Vec<(String, u64, Vec<usize>)>,
}

impl ModuleVisitor for Params {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.list.push((
            self.path.join("."),
            param.id.val(),
            param.val().shape().to_vec(),
        ));
    }
}

fn params_of(model: &Gpt) -> Vec<(String, u64, Vec<usize>)> {
    let mut p = Params::default();
    model.visit(&mut p);
    p.list
}

/// The SHA-256 (hex) of a model's frozen weights: every weight but the LoRA adapters' factors.
/// A state of adapters only is loaded over a base whose digest is the one it records.
pub fn frozen_digest(model: &Gpt) -> String {
    let mut walk = AdapterWalk {
        digest: Some(Sha256::new()),
        ..AdapterWalk::default()
    };
    model.visit(&mut walk);
    hex(&walk.digest.expect("set above").finalize())
}

/// The weights a state records: all of them, or with LoRA the adapters only.
fn weights_pack(model: &Gpt, lora: bool) -> Result<Pack> {
    let record = if lora {
        let mut walk = AdapterWalk::default();
        model.visit(&mut walk);
        model
            .clone()
            .into_record_group(ParamGroup::from_ids(walk.ids))
    } else {
        model.clone().into_record()
    };
    let bytes = record
        .into_bytes()
        .map_err(|e| state_err(format!("cannot record the weights: {e}")))?;
    Pack::read(&bytes, "weights")
}

fn optimizer_pack(t: &Trainer) -> Result<Pack> {
    let bytes = t
        .optim
        .into_bytes()
        .map_err(|e| state_err(format!("cannot record the optimiser state: {e}")))?;
    Pack::read(&bytes, "optimiser state")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Base64 (standard alphabet, padded) of the binary parts.
fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Checks the optimiser state against the model's parameters: every tensor belongs to a
/// parameter (by id), is f32 and has that parameter's shape, and every parameter state
/// records its parameter's rank. Burn would panic (or silently drop the state) otherwise.
fn check_optimizer(pack: &Pack, params: &BTreeMap<u64, (String, Vec<usize>)>) -> Result<()> {
    let mut with_state = BTreeSet::new();
    for (name, e) in &pack.tensors {
        let id = e.param_id.ok_or_else(|| {
            state_err(format!("optimiser tensor `{name}` carries no parameter id"))
        })?;
        let (path, shape) = params.get(&id).ok_or_else(|| {
            state_err(format!(
                "optimiser tensor `{name}` belongs to parameter id {id}, which the model does not have"
            ))
        })?;
        if e.dtype != DType::F32 {
            return Err(state_err(format!(
                "optimiser tensor `{name}` is {:?}, not f32",
                e.dtype
            )));
        }
        if &e.shape != shape {
            return Err(state_err(format!(
                "optimiser tensor `{name}` has shape {:?}, but parameter {path} has shape {shape:?}",
                e.shape
            )));
        }
        with_state.insert(id);
    }
    let mut ranked = BTreeSet::new();
    for (key, value) in &pack.scalars {
        let Some(id) = key.strip_suffix(".__rank") else {
            continue;
        };
        let id: u64 = id
            .parse()
            .map_err(|_| state_err(format!("optimiser scalar `{key}` names no parameter id")))?;
        let (path, shape) = params.get(&id).ok_or_else(|| {
            state_err(format!(
                "optimiser scalar `{key}` belongs to parameter id {id}, which the model does not have"
            ))
        })?;
        if usize::try_from(*value).ok() != Some(shape.len()) {
            return Err(state_err(format!(
                "optimiser scalar `{key}` = {value:?}, but parameter {path} has rank {}",
                shape.len()
            )));
        }
        ranked.insert(id);
    }
    if let Some(id) = with_state.difference(&ranked).next() {
        return Err(state_err(format!(
            "the optimiser state of parameter id {id} records no rank"
        )));
    }
    Ok(())
}

impl TrainerState {
    /// Where this state differs from `other` other than in the parameter ids (which every
    /// model draws afresh, so two trainers built alike differ in them): `None` if they hold
    /// the same configurations, step, sampler position, weights and optimiser state bit for
    /// bit, else the first difference found.
    pub fn difference(&self, other: &TrainerState) -> Result<Option<String>> {
        let (a, b) = (self.by_path()?, other.by_path()?);
        if self.model != other.model {
            return Ok(Some(format!("model {:?} vs {:?}", self.model, other.model)));
        }
        if self.trainer != other.trainer {
            return Ok(Some(format!(
                "trainer {:?} vs {:?}",
                self.trainer, other.trainer
            )));
        }
        if self.step != other.step || self.sampler != other.sampler {
            return Ok(Some(format!(
                "step {} / sampler {:?} vs step {} / sampler {:?}",
                self.step, self.sampler, other.step, other.sampler
            )));
        }
        for (what, x, y) in [("weight", &a.0, &b.0), ("optimiser tensor", &a.1, &b.1)] {
            for name in x.keys().chain(y.keys()) {
                if x.get(name) != y.get(name) {
                    return Ok(Some(format!("{what} `{name}` differs")));
                }
            }
        }
        if a.2 != b.2 {
            return Ok(Some(format!("optimiser scalars {:?} vs {:?}", a.2, b.2)));
        }
        Ok(None)
    }

    /// Weights and optimiser tensors (dtype, shape, bytes) and optimiser scalars, named by
    /// parameter path instead of parameter id.
    #[allow(clippy::type_complexity)]
    fn by_path(
        &self,
    ) -> Result<(
        BTreeMap<String, (DType, Vec<usize>, Vec<u8>)>,
        BTreeMap<String, (DType, Vec<usize>, Vec<u8>)>,
        BTreeMap<String, Scalar>,
    )> {
        let decode = |text: &str, what: &str| {
            b64()
                .decode(text)
                .map_err(|e| state_err(format!("the {what} are not valid base64: {e}")))
        };
        let w = Pack::read(&decode(&self.weights, "weights")?, "weights")?;
        let o = Pack::read(
            &decode(&self.optimizer, "optimiser state")?,
            "optimiser state",
        )?;
        let paths: BTreeMap<String, String> = w
            .tensors
            .iter()
            .filter_map(|(path, e)| e.param_id.map(|id| (id.to_string(), path.clone())))
            .collect();
        let rename = |name: &str| match name.split_once('.') {
            Some((id, rest)) => match paths.get(id) {
                Some(path) => format!("{path}:{rest}"),
                None => name.to_string(),
            },
            None => name.to_string(),
        };
        let weights = w
            .tensors
            .into_iter()
            .map(|(k, e)| (k, (e.dtype, e.shape, e.bytes)))
            .collect();
        let optim = o
            .tensors
            .into_iter()
            .map(|(k, e)| (rename(&k), (e.dtype, e.shape, e.bytes)))
            .collect();
        let scalars = o
            .scalars
            .into_iter()
            .map(|(k, v)| (rename(&k), v))
            .collect();
        Ok((weights, optim, scalars))
    }
}

impl Trainer {
    /// The complete training state (see [`TrainerState`]).
    pub fn state(&self) -> Result<TrainerState> {
        let weights = weights_pack(&self.model, self.base_digest.is_some())?.write("weights")?;
        let optimizer = optimizer_pack(self)?.write("optimiser state")?;
        Ok(TrainerState {
            format: TRAINER_STATE_FORMAT.into(),
            format_version: TRAINER_STATE_VERSION,
            model: self.model_config.clone(),
            trainer: self.config.clone(),
            step: self.step,
            sampler: SamplerState {
                seed: hex(&self.rng.get_seed()),
                stream: self.rng.get_stream(),
                word_pos: self.rng.get_word_pos().to_string(),
            },
            weights: b64().encode(weights),
            optimizer: b64().encode(optimizer),
            base_sha256: self.base_digest.clone(),
        })
    }

    /// The trainer `state` describes, ready to continue exactly where it was saved. A state of
    /// another format or version, an invalid configuration, or weights and optimiser state
    /// that do not match the model give a [`NeuralError::State`] (never a panic). A state of
    /// LoRA adapters needs its base ([`Trainer::from_state_on`]) unless the base is the
    /// seeded initialisation of a trainer made by [`Trainer::new`].
    pub fn from_state(state: &TrainerState) -> Result<Self> {
        Self::from_state_over(state, None)
    }

    /// [`Trainer::from_state`] for a state of LoRA adapters (`base_sha256` set) trained on
    /// `base`: the adapters and their optimiser state are loaded over `base`'s weights, which
    /// must be the ones they were trained on (checked by their SHA-256). A state of all the
    /// weights ignores `base`.
    pub fn from_state_on(state: &TrainerState, base: &NeuralModel) -> Result<Self> {
        Self::from_state_over(state, Some(base))
    }

    fn from_state_over(state: &TrainerState, base: Option<&NeuralModel>) -> Result<Self> {
        if state.format != TRAINER_STATE_FORMAT {
            return Err(state_err(format!(
                "format `{}`, expected `{TRAINER_STATE_FORMAT}`",
                state.format
            )));
        }
        if state.format_version != TRAINER_STATE_VERSION {
            return Err(state_err(format!(
                "format version {} is not supported (this build reads version {TRAINER_STATE_VERSION})",
                state.format_version
            )));
        }
        state
            .model
            .validate()
            .map_err(|e| state_err(format!("the model config: {e}")))?;
        let rng = {
            let s = &state.sampler;
            let seed = unhex32(&s.seed).ok_or_else(|| {
                state_err(format!(
                    "the sampler seed `{}` is not 32 bytes of hex",
                    s.seed
                ))
            })?;
            let pos: u128 = s.word_pos.parse().map_err(|_| {
                state_err(format!(
                    "the sampler position `{}` is not an integer",
                    s.word_pos
                ))
            })?;
            let mut rng = ChaCha8Rng::from_seed(seed);
            rng.set_stream(s.stream);
            rng.set_word_pos(pos);
            rng
        };
        let decode = |text: &str, what: &str| {
            b64()
                .decode(text)
                .map_err(|e| state_err(format!("the {what} are not valid base64: {e}")))
        };
        let weights = decode(&state.weights, "weights")?;
        let optimizer = decode(&state.optimizer, "optimiser state")?;
        let wpack = Pack::read(&weights, "weights")?;
        let opack = Pack::read(&optimizer, "optimiser state")?;
        for (name, e) in &wpack.tensors {
            if e.dtype != DType::F32 {
                return Err(state_err(format!(
                    "weight `{name}` is {:?}, not f32",
                    e.dtype
                )));
            }
            if e.param_id.is_none() {
                return Err(state_err(format!(
                    "weight `{name}` carries no parameter id"
                )));
            }
        }

        let device = crate::cpu_device().autodiff();
        let adapters_only = state.base_sha256.is_some();
        if adapters_only && state.trainer.lora.is_none() {
            return Err(state_err(
                "it records a base model's digest but no LoRA configuration",
            ));
        }
        let fresh = match base.filter(|_| adapters_only) {
            Some(b) if b.config != state.model => {
                return Err(state_err(format!(
                    "the base model's configuration {:?} is not the state's {:?}",
                    b.config, state.model
                )))
            }
            Some(b) => b.gpt.clone().fork(&device).train(),
            // The initial values are all replaced (but for a LoRA state over the seeded
            // initialisation); the seed keeps this deterministic.
            None => Gpt::new(&state.model, &device, state.trainer.seed)?,
        };
        let fresh = match &state.trainer.lora {
            Some(lora) => fresh
                .with_lora(&state.model, lora, LoraInit::Seed(state.trainer.seed))
                .map_err(|e| state_err(format!("the trainer config: {e}")))?,
            None => fresh,
        };
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(weights))
            .map_err(|e| state_err(format!("the weights cannot be read: {e}")))?
            .allow_partial(adapters_only);
        let model = fresh
            .try_load_record(record)
            .map_err(|e| state_err(format!("the weights do not match the model config: {e}")))?;
        let params: BTreeMap<u64, (String, Vec<usize>)> = params_of(&model)
            .into_iter()
            .map(|(path, id, shape)| (id, (path, shape)))
            .collect();
        let count = params_of(&model).len();
        if params.len() != count {
            return Err(state_err(
                "two parameters of the weights share a parameter id",
            ));
        }
        check_optimizer(&opack, &params)?;

        let mut trainer =
            Self::with_model(state.model.clone(), state.trainer.clone(), model, device)?;
        if let (Some(want), Some(got)) = (&state.base_sha256, &trainer.base_digest) {
            if got != want {
                return Err(state_err(match base {
                    None => "it holds LoRA adapters only and is loaded over the base model they were trained on (Trainer::from_state_on)".to_string(),
                    Some(_) => format!("the base model is not the one its adapters were trained on (SHA-256 of the frozen weights {got}, the state records {want})"),
                }));
            }
        }
        trainer.optim = trainer
            .optim
            .clone()
            .from_bytes(Bytes::from_bytes_vec(optimizer))
            .map_err(|e| state_err(format!("the optimiser state cannot be read: {e}")))?;
        trainer.step = state.step;
        trainer.rng = rng;

        // What the rebuilt trainer holds is exactly what was saved (burn skips optimiser state
        // it cannot rebuild, e.g. a missing step count, instead of failing).
        if weights_pack(&trainer.model, adapters_only)? != wpack {
            return Err(state_err(
                "the weights do not read back as saved from the rebuilt model",
            ));
        }
        if optimizer_pack(&trainer)? != opack {
            return Err(state_err(
                "the optimiser state is incomplete: burn did not rebuild all of it",
            ));
        }
        Ok(trainer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::GenerateOptions;

    fn weights_of(t: &Trainer) -> Vec<Vec<u8>> {
        weights_pack(t.model(), false)
            .unwrap()
            .tensors
            .into_values()
            .map(|e| e.bytes)
            .collect()
    }

    #[test]
    fn a_restored_trainer_continues_bit_for_bit() {
        let data = reverse_examples(24);
        let mut a = trainer(11);
        a.fit(&data, 7).unwrap();
        let state = a.state().unwrap();
        // Through JSON, as it is stored.
        let text = serde_json::to_string(&state).unwrap();
        let back: TrainerState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
        let mut b = Trainer::from_state(&back).unwrap();
        assert_eq!(b.steps(), 7);
        assert_eq!(weights_of(&a), weights_of(&b));
        // The same state gives the same text.
        assert_eq!(serde_json::to_string(&b.state().unwrap()).unwrap(), text);
        // Never saved: the same seed trained straight through.
        let mut c = trainer(11);
        c.fit(&data, 7).unwrap();
        assert_eq!(c.state().unwrap().difference(&state).unwrap(), None);
        let la = a.fit(&data, 9).unwrap();
        let lb = b.fit(&data, 9).unwrap();
        let lc = c.fit(&data, 9).unwrap();
        assert_eq!(
            la.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            lb.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(la, lc);
        assert_eq!(weights_of(&a), weights_of(&b));
        assert_eq!(weights_of(&a), weights_of(&c));
        let sa = a.state().unwrap();
        assert_eq!(sa.difference(&c.state().unwrap()).unwrap(), None);
        assert_eq!(sa.difference(&b.state().unwrap()).unwrap(), None);
        let diff = sa.difference(&state).unwrap().unwrap();
        assert!(diff.contains("step 16"), "{diff}");
        let o = GenerateOptions::greedy(10, Some(EOS));
        let prompts: Vec<Vec<u32>> = (0..8).map(reverse_prompt).collect();
        let ga = a.inference_model().generate(&prompts, &o).unwrap();
        assert_eq!(ga, b.inference_model().generate(&prompts, &o).unwrap());
        // A fresh optimiser on the same weights does not continue the same way: the moments
        // matter, so the test above would see them missing.
        let mut d = Trainer::from_model(
            &Trainer::from_state(&back).unwrap().inference_model(),
            back.trainer.clone(),
        )
        .unwrap();
        let mut e = Trainer::from_state(&back).unwrap();
        assert_ne!(d.fit(&data, 3).unwrap(), e.fit(&data, 3).unwrap());
    }

    #[test]
    fn an_untrained_trainer_round_trips() {
        let a = trainer(3);
        let state = a.state().unwrap();
        let b = Trainer::from_state(&state).unwrap();
        assert_eq!(b.steps(), 0);
        assert_eq!(weights_of(&a), weights_of(&b));
    }

    fn saved() -> TrainerState {
        let mut t = trainer(5);
        t.fit(&reverse_examples(16), 2).unwrap();
        t.state().unwrap()
    }

    fn refused(state: &TrainerState) -> String {
        match Trainer::from_state(state) {
            Err(e @ NeuralError::State(_)) => e.to_string(),
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("a bad state loaded"),
        }
    }

    #[test]
    fn bad_states_are_clear_errors() {
        let good = saved();
        let mut s = good.clone();
        s.format_version = 9;
        assert!(refused(&s).contains("format version 9"));
        let mut s = good.clone();
        s.format = "other".into();
        assert!(refused(&s).contains("format `other`"));
        // Another width: the weights do not fit.
        let mut s = good.clone();
        s.model.d_model = 48;
        let e = refused(&s);
        assert!(e.contains("weights do not match"), "{e}");
        let mut s = good.clone();
        s.model.n_layers = 3;
        assert!(refused(&s).contains("weights do not match"));
        let mut s = good.clone();
        s.model.n_heads = 5;
        assert!(refused(&s).contains("n_heads"));
        // Truncated, not base64, empty.
        for (field, cut) in [("weights", true), ("optimizer", true), ("weights", false)] {
            let mut s = good.clone();
            let v = if field == "weights" {
                &mut s.weights
            } else {
                &mut s.optimizer
            };
            if cut {
                v.truncate(v.len() / 2 / 4 * 4);
            } else {
                v.clear();
            }
            let e = refused(&s);
            assert!(
                e.contains("burnpack") || e.contains("cannot be read"),
                "{field}: {e}"
            );
        }
        let mut s = good.clone();
        s.optimizer.insert(10, '!');
        assert!(refused(&s).contains("base64"));
        let mut s = good.clone();
        s.sampler.seed = "xyz".into();
        assert!(refused(&s).contains("sampler seed"));
        let mut s = good.clone();
        s.sampler.word_pos = "-1".into();
        assert!(refused(&s).contains("sampler position"));
    }

    #[test]
    fn optimiser_states_of_another_model_are_refused() {
        let good = saved();
        // The optimiser state of another model (other parameter ids).
        let other = saved();
        let mut s = good.clone();
        s.optimizer = other.optimizer.clone();
        let e = refused(&s);
        assert!(e.contains("which the model does not have"), "{e}");
        // A state without an optimiser step count for one parameter: burn would skip it.
        let bytes = b64().decode(&good.optimizer).unwrap();
        let mut pack = Pack::read(&bytes, "x").unwrap();
        let key = pack
            .scalars
            .keys()
            .find(|k| !k.ends_with(".__rank"))
            .cloned()
            .unwrap();
        pack.scalars.remove(&key);
        let mut s = good.clone();
        s.optimizer = b64().encode(pack.write("x").unwrap());
        let e = refused(&s);
        assert!(e.contains("incomplete"), "{key}: {e}");
        // A moment of the wrong shape (the same size, transposed).
        let mut pack = Pack::read(&bytes, "x").unwrap();
        let entry = pack
            .tensors
            .values_mut()
            .find(|e| e.shape.len() == 2 && e.shape[0] != e.shape[1])
            .unwrap();
        entry.shape.reverse();
        let mut s = good.clone();
        s.optimizer = b64().encode(pack.write("x").unwrap());
        assert!(refused(&s).contains("has shape"));
    }
}
