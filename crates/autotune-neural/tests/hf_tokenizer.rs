//! The Hugging Face tokenizer against transformers (issue 17): the fixture
//! `tests/fixtures/hf/tokenizer-bpe` is a byte-level BPE with a ChatML chat template, saved by
//! transformers with its encodings, decodings and rendered chats
//! (`scripts/make_hf_fixtures.py`). No Python runs here.

use std::path::{Path, PathBuf};

use autotune_neural::{ChatMessage, NeuralError, Tokenizer};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/tokenizer-bpe")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn a_hugging_face_tokenizer_encodes_decodes_and_renders_chats_as_transformers_does() {
    let t = Tokenizer::from_hf_dir(fixture()).unwrap();
    let want = expected();
    assert_eq!(t.vocab_size() as u64, want["vocab_size"].as_u64().unwrap());
    assert_eq!(t.eos()[0] as u64, want["eos_token_id"].as_u64().unwrap());
    assert_eq!(t.pad().map(u64::from), want["pad_token_id"].as_u64());
    let texts = want["texts"].as_array().unwrap();
    for (i, text) in texts.iter().enumerate() {
        let text = text.as_str().unwrap();
        let ids: Vec<u32> = want["ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(t.encode(text).unwrap(), ids, "{text:?}");
        assert_eq!(
            t.decode(&ids, false).unwrap(),
            want["decoded"][i].as_str().unwrap(),
            "{text:?}"
        );
    }
    assert!(t.has_chat_template());
    for (i, chat) in want["messages"].as_array().unwrap().iter().enumerate() {
        let messages: Vec<ChatMessage> = chat
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        assert_eq!(
            t.render_chat(&messages, true).unwrap(),
            want["chat"][i].as_str().unwrap(),
            "chat {i}"
        );
    }
}

#[test]
fn a_broken_tokenizer_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json") && e.contains("missing"), "{e}");
    std::fs::write(
        dir.path().join("tokenizer.json"),
        "{\"not\": \"a tokenizer\"}",
    )
    .unwrap();
    let e = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    // An end token the vocabulary does not have.
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    let config = dir.path().join("tokenizer_config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    v["eos_token"] = "<|no such token|>".into();
    std::fs::write(&config, v.to_string()).unwrap();
    match Tokenizer::from_hf_dir(dir.path()) {
        Err(e @ NeuralError::Checkpoint { .. }) => {
            let e = e.to_string();
            assert!(
                e.contains("tokenizer_config.json") && e.contains("no such token"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A tokenizer larger than a model's embedding.
    let t = Tokenizer::from_hf_dir(fixture()).unwrap();
    let e = t.check_fits(96, "llama-tiny").unwrap_err().to_string();
    assert!(e.contains("400 tokens") && e.contains("96"), "{e}");
}

/// The byte tokenizer written as a Hugging Face one (for `autotune export-hf`) reads back with
/// the byte tokenizer's ids, decodings and special tokens.
#[test]
fn the_byte_tokenizer_as_a_hugging_face_one_keeps_its_ids() {
    use autotune_neural::{BYTE_EOS, BYTE_PAD, BYTE_VOCAB};
    let dir = tempfile::tempdir().unwrap();
    Tokenizer::save_byte_tokenizer(dir.path()).unwrap();
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(hf.vocab_size(), BYTE_VOCAB);
    assert_eq!(hf.eos(), vec![BYTE_EOS]);
    assert_eq!(hf.pad(), Some(BYTE_PAD));
    let all_bytes: String = (0u8..128).map(char::from).collect();
    for text in [
        "What is 47+85?",
        "  leading spaces and trailing  ",
        "Ünïcödé: ß, 東京, 🙂 and tabs\tand\nnewlines\r\n",
        "",
        all_bytes.as_str(),
    ] {
        let ids = hf.encode(text).unwrap();
        assert_eq!(ids, Tokenizer::Bytes.encode(text).unwrap(), "{text:?}");
        assert_eq!(hf.decode(&ids, true).unwrap(), text);
    }
}

/// A chat model as it ships (`qwen2-tiny-chat`: a Qwen2 with the BPE tokenizer and its chat
/// template in one directory): messages rendered, tokenised, greedily continued and decoded
/// exactly as transformers does, end to end.
#[test]
fn a_chat_model_answers_a_chat_as_transformers_does() {
    use autotune_neural::{GenerateOptions, NeuralModel};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/qwen2-tiny-chat");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let tok = Tokenizer::from_hf_dir(&dir).unwrap();
    let model = NeuralModel::load_hf(&dir).unwrap();
    tok.check_fits(model.config().vocab, "qwen2-tiny-chat")
        .unwrap();
    let new = want["new_tokens"].as_u64().unwrap() as usize;
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    for (i, messages) in want["messages"].as_array().unwrap().iter().enumerate() {
        let messages: Vec<ChatMessage> = messages
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
            .collect();
        let rendered = tok.render_chat(&messages, true).unwrap();
        assert_eq!(rendered, want["rendered"][i].as_str().unwrap());
        let prompt = tok.encode(&rendered).unwrap();
        assert_eq!(prompt, ids(&want["prompt_ids"][i]));
        let out = model
            .generate(&[prompt], &GenerateOptions::greedy(new, None))
            .unwrap();
        assert_eq!(out[0], ids(&want["greedy"][i]), "chat {i}");
        assert_eq!(
            tok.decode(&out[0], false).unwrap(),
            want["greedy_text"][i].as_str().unwrap()
        );
    }
}
