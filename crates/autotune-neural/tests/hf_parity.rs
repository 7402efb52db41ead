//! Parity with transformers on Hugging Face checkpoints (issue 17): the fixtures in
//! `tests/fixtures/hf/` are tiny random checkpoints saved by transformers, with transformers'
//! logits and greedy tokens on fixed prompts (`scripts/make_hf_fixtures.py`). No Python runs
//! here. `cargo test --release -p autotune-neural --test hf_parity -- --nocapture` prints the
//! parity table quoted in `docs/results/hf-parity.md`.

use std::path::{Path, PathBuf};

use autotune_neural::{GenerateOptions, NeuralError, NeuralModel};
use serde_json::Value;

const FIXTURES: &[&str] = &[
    "gpt2-tiny",
    "gpt2-tiny-bf16-sharded",
    "llama-tiny",
    "qwen2-tiny",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

fn expected(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap()
}

fn tokens(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Max |logit difference| over every prompt and position, against transformers'.
fn max_logit_diff(model: &NeuralModel, want: &Value) -> f32 {
    let mut worst = 0f32;
    for (prompt, rows) in want["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .zip(want["logits"].as_array().unwrap())
    {
        let got = model.logits(&tokens(prompt)).unwrap();
        let want: Vec<f32> = rows
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
            })
            .collect();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            worst = worst.max((g - w).abs());
        }
    }
    worst
}

fn greedy(model: &NeuralModel, want: &Value, cached: bool) -> Vec<Vec<u32>> {
    let prompts: Vec<Vec<u32>> = want["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(tokens)
        .collect();
    let o = GenerateOptions::greedy(want["new_tokens"].as_u64().unwrap() as usize, None);
    if cached {
        model.generate(&prompts, &o).unwrap()
    } else {
        model.generate_uncached(&prompts, &o).unwrap()
    }
}

#[test]
fn gpt2_checkpoints_compute_what_transformers_computes() {
    println!(
        "| fixture | transformers | max abs logit diff | greedy tokens equal (KV cache / full) |"
    );
    println!("|---|---|---|---|");
    for name in FIXTURES {
        let dir = fixture(name);
        let model = NeuralModel::load_hf(&dir).unwrap();
        let want = expected(&dir);
        let diff = max_logit_diff(&model, &want);
        let want_greedy: Vec<Vec<u32>> = want["greedy"]
            .as_array()
            .unwrap()
            .iter()
            .map(tokens)
            .collect();
        let (cached, full) = (greedy(&model, &want, true), greedy(&model, &want, false));
        println!(
            "| {name} | {} | {diff:.2e} | {} / {} |",
            want["transformers"].as_str().unwrap(),
            cached == want_greedy,
            full == want_greedy
        );
        assert!(diff <= 1e-4, "{name}: max |logit diff| {diff}");
        assert_eq!(cached, want_greedy, "{name}: greedy tokens (KV cache)");
        assert_eq!(full, want_greedy, "{name}: greedy tokens (full passes)");
    }
}

#[test]
fn a_checkpoint_written_back_reads_back_identically() {
    let prompt = [1u32, 5, 9, 17, 33];
    for name in ["gpt2-tiny", "llama-tiny", "qwen2-tiny"] {
        let model = NeuralModel::load_hf(fixture(name)).unwrap();
        let out = tempfile::tempdir().unwrap();
        model.save_hf(out.path()).unwrap();
        let back = NeuralModel::load_hf(out.path()).unwrap();
        assert_eq!(back.config(), model.config(), "{name}");
        assert_eq!(
            back.logits(&prompt).unwrap(),
            model.logits(&prompt).unwrap(),
            "{name}"
        );
    }
    // The bf16 copy holds the same weights rounded: close, not equal.
    let model = NeuralModel::load_hf(fixture("gpt2-tiny")).unwrap();
    let bf16 = NeuralModel::load_hf(fixture("gpt2-tiny-bf16-sharded")).unwrap();
    assert_ne!(
        bf16.logits(&prompt).unwrap(),
        model.logits(&prompt).unwrap()
    );
}

/// A copy of a fixture to break.
fn copy(name: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, out.path().join(p.file_name().unwrap())).unwrap();
    }
    out
}

fn load_err(dir: &Path) -> String {
    match NeuralModel::load_hf(dir) {
        Err(e @ NeuralError::Checkpoint { .. }) => {
            let e = e.to_string();
            assert!(!e.contains('\n'), "not one line: {e}");
            e
        }
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("a broken checkpoint loaded"),
    }
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("config.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn broken_checkpoints_are_one_line_errors_naming_the_file() {
    // A missing shard.
    let d = copy("gpt2-tiny-bf16-sharded");
    std::fs::remove_file(d.path().join("model-00002-of-00002.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(
        e.contains("model-00002-of-00002.safetensors") && e.contains("missing"),
        "{e}"
    );
    // A truncated bf16 shard.
    let d = copy("gpt2-tiny-bf16-sharded");
    let shard = d.path().join("model-00001-of-00002.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("model-00001-of-00002.safetensors"), "{e}");
    // A model type this build does not read.
    let d = copy("gpt2-tiny");
    edit_config(d.path(), |v| v["model_type"] = "mamba".into());
    let e = load_err(d.path());
    assert!(
        e.contains("config.json") && e.contains("\"mamba\" is not supported"),
        "{e}"
    );
    // A vocabulary that does not match the embedding.
    let d = copy("gpt2-tiny");
    edit_config(d.path(), |v| v["vocab_size"] = 95.into());
    let e = load_err(d.path());
    assert!(e.contains("wte.weight") && e.contains("[96, 32]"), "{e}");
    // No weights at all.
    let d = copy("gpt2-tiny");
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load_err(d.path());
    assert!(e.contains("neither model.safetensors"), "{e}");
    // A config that claims far more than the file holds is refused before it is built.
    let d = copy("gpt2-tiny");
    edit_config(d.path(), |v| {
        v["n_embd"] = 65536.into();
        v["n_layer"] = 64.into();
    });
    let e = load_err(d.path());
    assert!(e.contains("cannot hold"), "{e}");
}
