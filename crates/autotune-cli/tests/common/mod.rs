//! What the end-to-end tests share: a run directory's results without wall time, its journal
//! read back, and the small task file and Hugging Face model of the neural-student tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use autotune_experiment::{parse_journal, JournalRecord, JOURNAL_FILE};
use serde_json::Value;

/// Drops wall-clock fields (the only ones a resumed run may change) from a JSON value.
pub fn strip_time(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.contains("wall_seconds"));
            m.values_mut().for_each(strip_time);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_time),
        _ => {}
    }
}

/// Everything a run directory measured, without wall time: the comparison, the ledgers, the
/// result, every metrics record (sorted: parallel runs interleave) and the SFT export.
pub fn results(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in ["comparison.json", "ledger.json", "result.json", "sft.jsonl"] {
        let Ok(text) = std::fs::read_to_string(dir.join(name)) else {
            continue;
        };
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.to_string())
            .collect();
        if name.ends_with(".json") {
            lines = vec![text];
        }
        let mut norm: Vec<String> = lines
            .iter()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).expect("json");
                strip_time(&mut v);
                v.to_string()
            })
            .collect();
        norm.sort();
        out.insert(name.to_string(), norm.join("\n"));
    }
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let mut lines: Vec<String> = metrics
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).expect("metrics line");
            strip_time(&mut v);
            v.to_string()
        })
        .collect();
    lines.sort();
    out.insert("metrics.jsonl".into(), lines.join("\n"));
    out
}

/// The journal's records (a torn last record, possible in a killed run, is left out).
pub fn journal(dir: &Path) -> Vec<JournalRecord> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = std::fs::read(&path).unwrap();
    parse_journal(&path, &bytes[..])
        .expect("the journal checks")
        .0
}

/// The records of a finished run's journal, which has no torn record.
pub fn finished_journal(dir: &Path) -> Vec<JournalRecord> {
    let path = dir.join(JOURNAL_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let (records, summary) = parse_journal(&path, &bytes[..]).expect("a finished journal checks");
    assert!(
        summary.dropped.is_none(),
        "a finished journal has no torn record"
    );
    records
}

/// 40 records "Copy the digit: d (item i)" with answer d (the numeric verifier scores them),
/// written to `dir/tasks.jsonl`.
pub fn copy_digit_tasks(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tasks.jsonl");
    let text: String = (0..40)
        .map(|i| {
            let d = (i * 7) % 10;
            format!("{{\"id\": \"r{i}\", \"prompt\": \"Copy the digit: {d} (item {i})\", \"answer\": {d}}}\n")
        })
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// A small random Llama-family model (width 32, 2 layers, vocabulary 400) with the repository's
/// BPE tokenizer and chat template, saved as a Hugging Face directory `dir/model`.
#[cfg(feature = "neural")]
pub fn hf_model(dir: &Path) -> std::path::PathBuf {
    let model_dir = dir.join("model");
    let config = autotune_neural::TransformerConfig {
        family: autotune_neural::Family::Llama,
        n_kv_heads: Some(1),
        tied_head: true,
        d_model: 32,
        n_layers: 2,
        n_heads: 2,
        d_ff: 64,
        ..autotune_neural::TransformerConfig::small(400, 128)
    };
    autotune_neural::NeuralModel::new(config, 3)
        .unwrap()
        .save_hf(&model_dir)
        .unwrap();
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../autotune-neural/tests/fixtures/hf/tokenizer-bpe");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ] {
        std::fs::copy(tokenizer.join(f), model_dir.join(f)).unwrap();
    }
    model_dir
}
