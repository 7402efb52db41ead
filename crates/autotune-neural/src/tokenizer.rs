//! Text to token ids and back. Two tokenizers:
//! - [`Tokenizer::Bytes`]: the UTF-8 bytes of the text (ids 0..=255) and three special tokens
//!   (padding, start, end): the default for models trained from scratch on text tasks; every
//!   text round-trips exactly;
//! - [`Tokenizer::Hf`]: a Hugging Face `tokenizer.json` (the `tokenizers` crate, as
//!   transformers' fast tokenizers run it), with the special tokens and the chat template of
//!   `tokenizer_config.json` or `chat_template.jinja`, rendered as transformers renders it
//!   (Jinja with `trim_blocks` and `lstrip_blocks`).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::{NeuralError, Result, TokenId};

/// The byte tokenizer's padding token.
pub const BYTE_PAD: TokenId = 256;
/// The byte tokenizer's start token.
pub const BYTE_BOS: TokenId = 257;
/// The byte tokenizer's end token.
pub const BYTE_EOS: TokenId = 258;
/// The byte tokenizer's vocabulary: 256 bytes and the three special tokens.
pub const BYTE_VOCAB: usize = 259;

/// One message of a chat, as chat templates read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A tokenizer (see the module documentation).
#[derive(Clone, Debug)]
pub enum Tokenizer {
    Bytes,
    Hf(Box<HfTokenizer>),
}

/// A Hugging Face tokenizer with its special tokens and chat template.
#[derive(Clone, Debug)]
pub struct HfTokenizer {
    inner: tokenizers::Tokenizer,
    /// The end-of-sequence token (`eos_token`), then any other end token of
    /// `generation_config.json`'s `eos_token_id`.
    eos: Vec<TokenId>,
    pad: Option<TokenId>,
    bos_text: Option<String>,
    eos_text: Option<String>,
    chat_template: Option<String>,
}

fn err(path: &Path, message: impl Into<String>) -> NeuralError {
    NeuralError::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// GPT-2's printable stand-ins for the 256 bytes (`bytes_to_unicode`), which byte-level BPE
/// vocabularies are written in: index `b` is byte `b`'s character.
fn byte_chars() -> Vec<char> {
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256;
    (0u32..256)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(c).expect("below 0x200")
        })
        .collect()
}

/// A special token of `tokenizer_config.json`: a string, or an added-token object with its
/// `content`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl Tokenizer {
    /// The tokenizer of a Hugging Face model directory: `tokenizer.json` (required), and when
    /// present `tokenizer_config.json` (special tokens, chat template), `chat_template.jinja`
    /// (the chat template as transformers 5 saves it) and `generation_config.json` (end
    /// tokens). Errors name the file.
    pub fn from_hf_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(err(&path, "the tokenizer file is missing"));
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| err(&path, format!("not a tokenizer this build reads: {e}")))?;
        let read_json = |name: &str| -> Result<Option<Value>> {
            let p = dir.join(name);
            if !p.is_file() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&p).map_err(|e| err(&p, e.to_string()))?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| err(&p, format!("not valid JSON: {e}")))
        };
        let config = read_json("tokenizer_config.json")?.unwrap_or(Value::Null);
        let id_of = |text: &Option<String>, key: &str| -> Result<Option<TokenId>> {
            match text {
                None => Ok(None),
                Some(t) => inner.token_to_id(t).map(Some).ok_or_else(|| {
                    err(
                        &dir.join("tokenizer_config.json"),
                        format!("{key} {t:?} is not in tokenizer.json"),
                    )
                }),
            }
        };
        let bos_text = token_text(config.get("bos_token"));
        let eos_text = token_text(config.get("eos_token"));
        let mut eos: Vec<TokenId> = id_of(&eos_text, "eos_token")?.into_iter().collect();
        let pad = id_of(&token_text(config.get("pad_token")), "pad_token")?;
        if let Some(generation) = read_json("generation_config.json")? {
            let more: Vec<TokenId> = match generation.get("eos_token_id") {
                Some(Value::Number(n)) => n.as_u64().map(|n| n as TokenId).into_iter().collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_u64().map(|n| n as TokenId))
                    .collect(),
                _ => Vec::new(),
            };
            for id in more {
                if !eos.contains(&id) {
                    eos.push(id);
                }
            }
        }
        let jinja = dir.join("chat_template.jinja");
        let chat_template = if jinja.is_file() {
            Some(std::fs::read_to_string(&jinja).map_err(|e| err(&jinja, e.to_string()))?)
        } else {
            match config.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                // Named templates: the default one.
                Some(Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
                _ => None,
            }
        };
        Ok(Tokenizer::Hf(Box::new(HfTokenizer {
            inner,
            eos,
            pad,
            bos_text,
            eos_text,
            chat_template,
        })))
    }

    /// Writes the byte tokenizer as a Hugging Face tokenizer (`tokenizer.json`,
    /// `tokenizer_config.json`) that transformers' `AutoTokenizer` and [`Tokenizer::from_hf_dir`]
    /// read with the same ids: a byte-level BPE without merges whose token for byte `b` has id
    /// `b`, the special tokens `<pad>` (256), `<s>` (257) and `</s>` (258), and a start token
    /// put before the text when special tokens are added (transformers' default), as the
    /// student saw its prompts. (Unlike [`Tokenizer::Bytes`], a Hugging Face tokenizer reads
    /// the text `<s>` as the special token.)
    pub fn save_byte_tokenizer(dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        crate::create_dir(dir)?;
        let vocab: serde_json::Map<String, Value> = byte_chars()
            .iter()
            .enumerate()
            .map(|(b, c)| (c.to_string(), Value::from(b)))
            .collect();
        let special = |id: TokenId, content: &str| {
            serde_json::json!({"id": id, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        };
        let tokenizer = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [special(BYTE_PAD, "<pad>"), special(BYTE_BOS, "<s>"), special(BYTE_EOS, "</s>")],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [BYTE_BOS], "tokens": ["<s>"]}}
            },
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": []}
        });
        let config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "pad_token": "<pad>",
            "model_max_length": 1_000_000_000_000_000_000u64,
            "made_by": "autotune-neural (the byte tokenizer)",
        });
        for (name, value) in [
            ("tokenizer.json", tokenizer),
            ("tokenizer_config.json", config),
        ] {
            let text = serde_json::to_string_pretty(&value).expect("JSON serialises");
            crate::write_file(&dir.join(name), text.as_bytes())?;
        }
        Ok(())
    }

    /// Ids from 0 to `vocab_size() - 1` (added tokens included).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Bytes => BYTE_VOCAB,
            Tokenizer::Hf(t) => t.inner.get_vocab_size(true),
        }
    }

    /// The text's token ids, without special tokens added around it (special tokens written
    /// in the text, such as `<|im_start|>`, are recognised by a Hugging Face tokenizer).
    pub fn encode(&self, text: &str) -> Result<Vec<TokenId>> {
        match self {
            Tokenizer::Bytes => Ok(text.bytes().map(TokenId::from).collect()),
            Tokenizer::Hf(t) => t
                .inner
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| NeuralError::Input(format!("cannot tokenise {text:?}: {e}"))),
        }
    }

    /// The text of token ids; special tokens are left out when `skip_special`. The byte
    /// tokenizer replaces invalid UTF-8 with U+FFFD.
    pub fn decode(&self, ids: &[TokenId], skip_special: bool) -> Result<String> {
        match self {
            Tokenizer::Bytes => {
                let mut bytes = Vec::with_capacity(ids.len());
                for &id in ids {
                    match id {
                        0..=255 => bytes.push(id as u8),
                        BYTE_PAD | BYTE_BOS | BYTE_EOS if skip_special => {}
                        BYTE_PAD => bytes.extend_from_slice(b"<pad>"),
                        BYTE_BOS => bytes.extend_from_slice(b"<s>"),
                        BYTE_EOS => bytes.extend_from_slice(b"</s>"),
                        _ => {
                            return Err(NeuralError::Input(format!(
                                "token {id} is outside the byte vocabulary 0..{BYTE_VOCAB}"
                            )))
                        }
                    }
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            }
            Tokenizer::Hf(t) => t
                .inner
                .decode(ids, skip_special)
                .map_err(|e| NeuralError::Input(format!("cannot decode {ids:?}: {e}"))),
        }
    }

    /// The end tokens generation stops at (the first is the one training appends).
    pub fn eos(&self) -> Vec<TokenId> {
        match self {
            Tokenizer::Bytes => vec![BYTE_EOS],
            Tokenizer::Hf(t) => t.eos.clone(),
        }
    }

    /// The padding token, if the tokenizer names one.
    pub fn pad(&self) -> Option<TokenId> {
        match self {
            Tokenizer::Bytes => Some(BYTE_PAD),
            Tokenizer::Hf(t) => t.pad,
        }
    }

    /// Whether there is a chat template to render prompts with.
    pub fn has_chat_template(&self) -> bool {
        matches!(self, Tokenizer::Hf(t) if t.chat_template.is_some())
    }

    /// The chat as its template writes it, as transformers' `apply_chat_template(messages,
    /// tokenize=False, add_generation_prompt=...)` does. An error without a template, or when
    /// the template fails (its `raise_exception` included).
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let Tokenizer::Hf(t) = self else {
            return Err(NeuralError::Input(
                "the byte tokenizer has no chat template".into(),
            ));
        };
        let Some(template) = &t.chat_template else {
            return Err(NeuralError::Input(
                "the tokenizer has no chat template".into(),
            ));
        };
        let mut env = minijinja::Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let bad = |e: minijinja::Error| NeuralError::Input(format!("chat template: {e:#}"));
        env.add_template("chat", template).map_err(bad)?;
        let context = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => t.bos_text.clone().unwrap_or_default(),
            eos_token => t.eos_text.clone().unwrap_or_default(),
        };
        env.get_template("chat")
            .and_then(|tpl| tpl.render(context))
            .map_err(bad)
    }

    /// Checks that every id this tokenizer produces is a row of an embedding of `vocab` rows
    /// (a model may have more rows than its tokenizer has tokens, not fewer).
    pub fn check_fits(&self, vocab: usize, what: &str) -> Result<()> {
        let n = self.vocab_size();
        if n > vocab {
            return Err(NeuralError::Config(format!(
                "the tokenizer has {n} tokens but {what} has {vocab} embedding rows"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_text() {
        let t = Tokenizer::Bytes;
        for text in ["", "47+85", "Ünïcödé 東京 🙂\n\t", "a\u{0}b"] {
            let ids = t.encode(text).unwrap();
            assert_eq!(ids.len(), text.len());
            assert_eq!(t.decode(&ids, true).unwrap(), text);
        }
        let mut ids = t.encode("hi").unwrap();
        ids.push(BYTE_EOS);
        assert_eq!(t.decode(&ids, true).unwrap(), "hi");
        assert_eq!(t.decode(&ids, false).unwrap(), "hi</s>");
        assert!(t.decode(&[300], true).is_err());
        // A cut inside a character decodes to a replacement, not an error.
        assert_eq!(
            t.decode(&t.encode("é").unwrap()[..1], true).unwrap(),
            "\u{fffd}"
        );
        assert!(t
            .render_chat(&[ChatMessage::new("user", "x")], true)
            .is_err());
        assert!(t.check_fits(258, "the model").is_err());
        t.check_fits(259, "the model").unwrap();
    }
}
