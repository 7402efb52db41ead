//! The neural student on text tasks (the `file` task's `student=neural`): a transformer trained
//! from scratch over bytes, or a Hugging Face checkpoint (`model=DIR`) with its tokenizer and
//! chat template. The text task speaks text (one Unicode scalar value per token); this student
//! turns a prompt's text into model tokens (through the chat template when the model has one,
//! else a start token and the bytes), trains on the demonstration's text followed by the end
//! token, and reads its generations back as text whose final answer is found as a model
//! server's is ([`autotune_data::demo_trace`]).

use std::path::Path;
use std::sync::Arc;

use autotune_core::{CoreError, Demo, FitStats, Params, Policy, Prompt, Result, Student, Trace};
use autotune_data::TextStudentFactory;
use autotune_neural::{
    ChatMessage, LoraConfig, NeuralModel, Tokenizer, TransformerConfig, BYTE_BOS, BYTE_PAD,
    BYTE_VOCAB,
};

use crate::neural::{NeuralStudent, NeuralStudentConfig, TrainingParams};

/// The LoRA configuration of `lora_rank`, `lora_alpha` and `lora_targets` (`None` for rank 0:
/// full fine-tuning). Targets are checked against the model when it is loaded.
fn lora_config(p: &Params) -> Result<Option<LoraConfig>> {
    let rank: usize = p.get_checked("lora_rank", "an integer in 0..=4096", |r: usize| r <= 4096)?;
    if rank == 0 {
        return Ok(None);
    }
    let alpha = match p.raw("lora_alpha").unwrap_or("auto").trim() {
        "auto" => 2.0 * rank as f64,
        text => text
            .parse::<f64>()
            .ok()
            .filter(|a| a.is_finite() && *a > 0.0)
            .ok_or_else(|| CoreError::BadParam {
                key: "lora_alpha".into(),
                value: text.into(),
                expected: "auto or a positive number".into(),
            })?,
    };
    let targets = match p.raw("lora_targets").unwrap_or("all").trim() {
        "all" | "" => Vec::new(),
        list => list.split(',').map(|t| t.trim().to_string()).collect(),
    };
    Ok(Some(LoraConfig {
        rank,
        alpha,
        targets,
    }))
}

/// Makes the neural students of a text task (see the module documentation).
pub struct NeuralTextFactory {
    cfg: NeuralStudentConfig,
    tokenizer: Arc<Tokenizer>,
    /// The checkpoint every student starts from; `None`: from scratch.
    base: Option<Arc<NeuralModel>>,
    /// Prompts rendered with the tokenizer's chat template.
    chat: bool,
    /// Where the model came from, for messages.
    source: String,
}

impl std::fmt::Debug for NeuralTextFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "neural student ({})", self.source)
    }
}

impl NeuralTextFactory {
    /// From the `file` task's parameters: `model` (a Hugging Face directory, or empty for a
    /// model trained from scratch over bytes with the size of [`TrainingParams`]), `max_len`
    /// (the longest prompt plus generation), `chat` (auto, on, off) and the training
    /// parameters. A model whose tokenizer does not fit its embedding, or `chat=on` without a
    /// template, is an error here, before any run.
    pub fn new(p: &Params, seed: u64) -> Result<Self> {
        let training = TrainingParams::parse(p)?;
        let max_len: usize = p.get_checked("max_len", "an integer in 16..=65536", |x: usize| {
            (16..=65_536).contains(&x)
        })?;
        let max_memory = match p.raw("max_memory").unwrap_or("auto") {
            "auto" => autotune_neural::available_memory().unwrap_or(u64::MAX),
            text => autotune_neural::parse_size(text).ok_or_else(|| CoreError::BadParam {
                key: "max_memory".into(),
                value: text.into(),
                expected: "auto or a size such as 8G, 512M or a number of bytes".into(),
            })?,
        };
        let bad = |e: autotune_neural::NeuralError| CoreError::Input(e.to_string());
        let model_dir = p.raw("model").unwrap_or("").trim();
        let lora = lora_config(p)?;
        if lora.is_some() && model_dir.is_empty() {
            return Err(CoreError::Invalid(
                "lora_rank needs model=DIR: adapters fine-tune a loaded checkpoint, a model trained from scratch trains every weight".into(),
            ));
        }
        let tied_head: bool = p.get("tied_head", "true or false")?;
        if tied_head && !model_dir.is_empty() {
            return Err(CoreError::Invalid(
                "tied_head is a choice of a student trained from scratch; a model=DIR checkpoint has its own head".into(),
            ));
        }
        let scratch = TransformerConfig {
            tied_head,
            ..training.model(BYTE_VOCAB, max_len)
        };
        let (tokenizer, base, source) = if model_dir.is_empty() {
            autotune_neural::check_training_memory(&scratch, None, max_memory, "the student model")
                .map_err(bad)?;
            (
                Tokenizer::Bytes,
                None,
                "from scratch, byte tokens".to_string(),
            )
        } else {
            let dir = Path::new(model_dir);
            // Sized from config.json before any weight is read.
            autotune_neural::check_training_memory(
                &NeuralModel::hf_config(dir).map_err(bad)?,
                lora.as_ref(),
                max_memory,
                &format!("the model in {model_dir}"),
            )
            .map_err(bad)?;
            let model = NeuralModel::load_hf(dir).map_err(bad)?;
            let tokenizer = Tokenizer::from_hf_dir(dir).map_err(bad)?;
            tokenizer
                .check_fits(model.config().vocab, &format!("the model in {model_dir}"))
                .map_err(bad)?;
            (tokenizer, Some(Arc::new(model)), model_dir.to_string())
        };
        let chat = match p.raw("chat").unwrap_or("auto") {
            "auto" => tokenizer.has_chat_template(),
            "off" => false,
            "on" if tokenizer.has_chat_template() => true,
            "on" => {
                return Err(CoreError::Invalid(
                    "chat=on: the model's tokenizer has no chat template".into(),
                ))
            }
            other => {
                return Err(CoreError::BadParam {
                    key: "chat".into(),
                    value: other.into(),
                    expected: "auto, on or off".into(),
                })
            }
        };
        let model = match &base {
            Some(m) => {
                let mut c = m.config().clone();
                c.max_len = c.max_len.min(max_len);
                c
            }
            None => scratch,
        };
        let eos = *tokenizer.eos().first().ok_or_else(|| {
            CoreError::Input(format!(
                "{source}: the tokenizer names no end token (eos_token)"
            ))
        })?;
        let pad = tokenizer.pad().unwrap_or(eos);
        // The answer marker is unused (answers are read from the text): a token generation
        // never ends on by itself.
        let marker = if base.is_some() { eos } else { BYTE_PAD };
        let max_len = model.max_len;
        if let Some(lora) = &lora {
            lora.resolve(&model)
                .map_err(|e| CoreError::Invalid(e.to_string()))?;
        }
        let mut cfg = training.student(model, seed, pad, (eos, marker), max_len / 2);
        cfg.trainer.lora = lora;
        Ok(Self {
            cfg,
            tokenizer: Arc::new(tokenizer),
            base,
            chat,
            source,
        })
    }

    fn wrap(&self, inner: NeuralStudent) -> NeuralTextStudent {
        NeuralTextStudent {
            inner,
            tokenizer: self.tokenizer.clone(),
            chat: self.chat,
            max_len: self.cfg.model.max_len,
            eos: self.cfg.eos,
        }
    }
}

impl TextStudentFactory for NeuralTextFactory {
    fn new_student(&self, seed: u64) -> Box<dyn Student> {
        let mut cfg = self.cfg.clone();
        cfg.trainer.seed = seed;
        let inner = match &self.base {
            None => NeuralStudent::new(cfg),
            Some(m) => NeuralStudent::from_model(cfg, m),
        }
        .expect("the configuration was checked when the task was opened");
        Box::new(self.wrap(inner))
    }

    fn load_student(&self, state: &str) -> Result<Box<dyn Student>> {
        let base = self.base.as_deref();
        Ok(Box::new(
            self.wrap(NeuralStudent::load_on(&self.cfg, state, base)?),
        ))
    }
}

/// One neural student of a text task.
struct NeuralTextStudent {
    inner: NeuralStudent,
    tokenizer: Arc<Tokenizer>,
    chat: bool,
    max_len: usize,
    eos: u32,
}

impl NeuralTextStudent {
    /// The model tokens of a prompt: its text through the chat template (as the user's
    /// message, ready for the assistant's answer) or after a start token, cut from the left to
    /// half the context.
    fn prompt(&self, p: &Prompt) -> Result<Prompt> {
        let text = autotune_data::decode(&p.tokens);
        let bad = |e: autotune_neural::NeuralError| CoreError::Student(e.to_string());
        let mut ids = if self.chat {
            let rendered = self
                .tokenizer
                .render_chat(&[ChatMessage::new("user", &text)], true)
                .map_err(bad)?;
            self.tokenizer.encode(&rendered).map_err(bad)?
        } else {
            let mut ids = Vec::new();
            if matches!(*self.tokenizer, Tokenizer::Bytes) {
                ids.push(BYTE_BOS);
            }
            ids.extend(self.tokenizer.encode(&text).map_err(bad)?);
            ids
        };
        let half = self.max_len / 2;
        if ids.len() > half {
            ids.drain(..ids.len() - half);
        }
        Ok(Prompt {
            id: p.id,
            tokens: ids,
        })
    }

    fn prompts(&self, prompts: &[Prompt]) -> Result<Vec<Prompt>> {
        prompts.iter().map(|p| self.prompt(p)).collect()
    }

    /// Generated model tokens as a trace of the text task.
    fn text_trace(&self, t: &Trace) -> Trace {
        let text = self.tokenizer.decode(&t.steps, true).unwrap_or_default();
        autotune_data::demo_trace(&text)
    }
}

impl Policy for NeuralTextStudent {
    fn generate_batch(&self, prompts: &[Prompt]) -> Vec<Trace> {
        self.try_generate_batch(prompts)
            .unwrap_or_else(|_| vec![Trace::new(Vec::new(), 0); prompts.len()])
    }

    fn try_generate_batch(&self, prompts: &[Prompt]) -> Result<Vec<Trace>> {
        let model_prompts = self.prompts(prompts)?;
        Ok(self
            .inner
            .generate_batch(&model_prompts)
            .iter()
            .map(|t| self.text_trace(t))
            .collect())
    }
}

impl Student for NeuralTextStudent {
    /// Trains on each demonstration's text followed by the end token, cut to the context.
    fn fit(&mut self, new_demos: &[Demo]) -> Result<FitStats> {
        let bad = |e: autotune_neural::NeuralError| CoreError::Student(e.to_string());
        let mut demos = Vec::with_capacity(new_demos.len());
        for d in new_demos {
            let prompt = self.prompt(&d.prompt)?;
            let text = autotune_data::decode(&d.trace.steps);
            let mut steps = self.tokenizer.encode(&text).map_err(bad)?;
            steps.push(self.eos);
            steps.truncate(self.max_len - prompt.tokens.len());
            demos.push(Demo {
                prompt,
                trace: Trace::new(steps, 0),
            });
        }
        self.inner.fit(&demos)
    }

    fn save(&self) -> Option<String> {
        self.inner.save()
    }

    fn journal_checkpoints(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use autotune_core::ParamSpec;

    fn fixtures() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../autotune-neural/tests/fixtures/hf")
    }

    fn params(extra: &[(&str, &str)]) -> Params {
        let mut p = Params::default();
        for (k, v) in [
            ("d_model", "32"),
            ("layers", "1"),
            ("heads", "2"),
            ("max_len", "64"),
            ("lr", "0.005"),
            ("batch", "8"),
            ("min_steps", "150"),
            ("max_steps", "150"),
        ]
        .iter()
        .chain(extra)
        {
            p.0.insert(k.to_string(), v.to_string());
        }
        let specs: Vec<ParamSpec> = crate::file::PARAMS.to_vec();
        p.resolve("file", &specs).unwrap()
    }

    fn text_prompt(id: u64, text: &str) -> Prompt {
        Prompt {
            id,
            tokens: autotune_data::encode(text),
        }
    }

    /// From scratch over bytes: it learns to answer "Copy the digit: d" with d, and its
    /// answers come back as text traces whose tail is the answer.
    #[test]
    fn a_byte_level_student_learns_text_demonstrations() {
        let f = NeuralTextFactory::new(&params(&[]), 0).unwrap();
        assert!(!f.chat);
        let mut s = f.new_student(1);
        let prompts: Vec<Prompt> = (0..10)
            .map(|d| text_prompt(d, &format!("Copy the digit: {d}")))
            .collect();
        let demos: Vec<Demo> = prompts
            .iter()
            .enumerate()
            .map(|(d, p)| Demo {
                prompt: p.clone(),
                trace: Trace::new(autotune_data::encode(&d.to_string()), 1),
            })
            .collect();
        s.fit(&demos).unwrap();
        let out = s.generate_batch(&prompts);
        let right = out
            .iter()
            .enumerate()
            .filter(|(d, t)| autotune_data::decode(t.answer()) == d.to_string())
            .count();
        assert!(
            right >= 9,
            "{right}/10: {:?}",
            out.iter()
                .map(|t| autotune_data::decode(&t.steps))
                .collect::<Vec<_>>()
        );
        // A saved student loads and answers the same.
        let back = f.load_student(&s.save().unwrap()).unwrap();
        assert_eq!(back.generate_batch(&prompts), out);
    }

    /// `lora_rank`: the student trains adapters on the named projections only; LoRA without
    /// a checkpoint is refused.
    #[test]
    fn lora_students_train_adapters_on_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let config = autotune_neural::TransformerConfig {
            family: autotune_neural::Family::Llama,
            d_model: 32,
            n_layers: 2,
            n_heads: 2,
            d_ff: 64,
            ..autotune_neural::TransformerConfig::small(400, 128)
        };
        NeuralModel::new(config, 3)
            .unwrap()
            .save_hf(dir.path())
            .unwrap();
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            std::fs::copy(fixtures().join("tokenizer-bpe").join(f), dir.path().join(f)).unwrap();
        }
        let path = dir.path().display().to_string();
        let lora = [
            ("model", path.as_str()),
            ("lora_rank", "2"),
            ("lora_targets", "q_proj, down_proj"),
            ("min_steps", "3"),
            ("max_steps", "3"),
            ("max_len", "128"),
        ];
        let f = NeuralTextFactory::new(&params(&lora), 0).unwrap();
        let l = f.cfg.trainer.lora.clone().unwrap();
        assert_eq!((l.rank, l.alpha), (2, 4.0));
        let base = f.base.clone().unwrap();
        let mut s = NeuralStudent::from_model(f.cfg.clone(), &base).unwrap();
        let before = s.trainer().model().lora_factors();
        let keys: Vec<&String> = before.keys().collect();
        assert_eq!(
            keys,
            [
                "blocks.0.down.weight",
                "blocks.0.q.weight",
                "blocks.1.down.weight",
                "blocks.1.q.weight"
            ]
        );
        let student_prompt = |s: &str| text_prompt(0, s);
        let mut text = NeuralTextStudent {
            inner: NeuralStudent::from_model(f.cfg.clone(), &base).unwrap(),
            tokenizer: f.tokenizer.clone(),
            chat: false,
            max_len: f.cfg.model.max_len,
            eos: f.cfg.eos,
        };
        let demo = Demo {
            prompt: student_prompt("What is 2+2?"),
            trace: Trace::new(autotune_data::encode("4"), 1),
        };
        text.fit(std::slice::from_ref(&demo)).unwrap();
        let after = text.inner.trainer().model().lora_factors();
        assert!(
            before.iter().all(|(k, (_, b))| after[k].1 != *b),
            "B did not move"
        );
        // The base weights are frozen: the embedding is the checkpoint's.
        let tok = |g: &autotune_neural::Gpt| {
            g.tok
                .weight
                .val()
                .into_data()
                .iter::<f32>()
                .collect::<Vec<_>>()
        };
        assert_eq!(tok(text.inner.trainer().model()), tok(base.gpt()));
        s.fit(std::slice::from_ref(&demo)).unwrap();

        let e = NeuralTextFactory::new(&params(&[("lora_rank", "4")]), 0).unwrap_err();
        assert!(e.to_string().contains("lora_rank needs model=DIR"), "{e}");
        let mut bad = lora.to_vec();
        bad[2] = ("lora_targets", "c_fc");
        let e = NeuralTextFactory::new(&params(&bad), 0).unwrap_err();
        assert!(e.to_string().contains("no target module `c_fc`"), "{e}");
        bad[2] = ("lora_alpha", "0");
        let e = NeuralTextFactory::new(&params(&bad), 0).unwrap_err();
        assert!(e.to_string().contains("lora_alpha"), "{e}");
    }

    /// A Hugging Face model with a tokenizer and chat template: prompts go through the
    /// template; a tokenizer larger than the model's embedding, or a model larger than
    /// max_memory, is refused.
    #[test]
    fn a_hugging_face_model_is_a_student_with_its_chat_template() {
        let dir = tempfile::tempdir().unwrap();
        let config = autotune_neural::TransformerConfig {
            family: autotune_neural::Family::Llama,
            n_kv_heads: Some(1),
            qkv_bias: true,
            tied_head: true,
            d_model: 32,
            n_layers: 1,
            n_heads: 2,
            d_ff: 64,
            ..autotune_neural::TransformerConfig::small(400, 128)
        };
        NeuralModel::new(config, 3)
            .unwrap()
            .save_hf(dir.path())
            .unwrap();
        for f in [
            "tokenizer.json",
            "tokenizer_config.json",
            "chat_template.jinja",
        ] {
            std::fs::copy(fixtures().join("tokenizer-bpe").join(f), dir.path().join(f)).unwrap();
        }
        let path = dir.path().display().to_string();
        let f = NeuralTextFactory::new(
            &params(&[
                ("model", &path),
                ("min_steps", "2"),
                ("max_steps", "2"),
                ("max_len", "256"),
            ]),
            0,
        )
        .unwrap();
        assert!(f.chat);
        let mut s = f.new_student(0);
        let p = text_prompt(0, "What is 47+85?");
        let student = NeuralTextStudent {
            inner: NeuralStudent::new(f.cfg.clone()).unwrap(),
            tokenizer: f.tokenizer.clone(),
            chat: true,
            max_len: f.cfg.model.max_len,
            eos: f.cfg.eos,
        };
        let rendered = f
            .tokenizer
            .decode(&student.prompt(&p).unwrap().tokens, false)
            .unwrap();
        assert!(
            rendered.starts_with("<|im_start|>system\n")
                && rendered.ends_with("<|im_start|>assistant\n"),
            "{rendered:?}"
        );
        s.fit(&[Demo {
            prompt: p.clone(),
            trace: Trace::new(autotune_data::encode("132"), 3),
        }])
        .unwrap();
        assert_eq!(s.generate_batch(&[p]).len(), 1);
        // chat=on without a template, and a tokenizer larger than the embedding.
        std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
        let e =
            NeuralTextFactory::new(&params(&[("model", &path), ("chat", "on")]), 0).unwrap_err();
        assert!(e.to_string().contains("no chat template"), "{e}");
        let llama = fixtures().join("llama-tiny");
        let small = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(llama.join(f), small.path().join(f)).unwrap();
        }
        std::fs::copy(
            fixtures().join("tokenizer-bpe/tokenizer.json"),
            small.path().join("tokenizer.json"),
        )
        .unwrap();
        let e = NeuralTextFactory::new(
            &params(&[("model", &small.path().display().to_string())]),
            0,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("400 tokens") && e.to_string().contains("96 embedding rows"),
            "{e}"
        );
        // 100 KiB is too little for even this model (about 0.4 MB to train); the error
        // gives both sizes.
        let e = NeuralTextFactory::new(&params(&[("model", &path), ("max_memory", "100K")]), 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("parameters") && e.contains("GiB") && e.contains("max_memory"),
            "{e}"
        );
        let e = NeuralTextFactory::new(&params(&[("max_memory", "lots")]), 0).unwrap_err();
        assert!(e.to_string().contains("max_memory"), "{e}");
    }
}
