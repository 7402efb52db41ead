//! LoRA against PEFT (issue 17): `tests/fixtures/hf/qwen2-tiny-lora` is a PEFT adapter on the
//! `qwen2-tiny` fixture as PEFT 0.22 saved it, with the masked cross-entropy PEFT's model gave
//! on a fixed batch before each of three AdamW steps and after the last
//! (`scripts/make_hf_fixtures.py`). No Python runs here.

use std::path::{Path, PathBuf};

use autotune_neural::{
    read_peft_adapter, write_peft_adapter, Example, LoraConfig, LoraInit, LrSchedule, NeuralError,
    NeuralModel, Trainer, TrainerConfig,
};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

fn expected() -> Value {
    let path = fixture("qwen2-tiny-lora").join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn batch(want: &Value) -> Vec<Example> {
    want["batch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Example::new(&ids(&e["prompt"]), &ids(&e["target"])))
        .collect()
}

/// The optimiser PEFT's run used (burn's AdamW has PyTorch's betas and this epsilon by
/// default), no gradient clipping, a constant rate.
fn trainer_config(want: &Value, lora: Option<LoraConfig>) -> TrainerConfig {
    let opt = &want["optimizer"];
    assert_eq!(opt["eps"].as_f64(), Some(1e-5));
    assert_eq!(opt["betas"][0].as_f64(), Some(0.9));
    assert_eq!(opt["betas"][1].as_f64(), Some(0.999));
    TrainerConfig {
        lr: opt["lr"].as_f64().unwrap(),
        schedule: LrSchedule::Constant,
        batch_size: 8,
        seed: 0,
        weight_decay: opt["weight_decay"].as_f64().unwrap() as f32,
        grad_clip: None,
        pad_token: 0,
        lora,
    }
}

fn lora_trainer() -> (Trainer, NeuralModel, Value) {
    let base = NeuralModel::load_hf(fixture("qwen2-tiny")).unwrap();
    let (lora, init) = read_peft_adapter(fixture("qwen2-tiny-lora"), base.config()).unwrap();
    let want = expected();
    let trainer = Trainer::from_model_with(&base, trainer_config(&want, Some(lora)), init).unwrap();
    (trainer, base, want)
}

#[test]
fn the_loss_follows_peft_step_by_step() {
    let (mut trainer, _, want) = lora_trainer();
    let batch = batch(&want);
    let losses: Vec<f64> = want["losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let mut got = Vec::new();
    for _ in 0..losses.len() - 1 {
        got.push(trainer.train_step(&batch).unwrap() as f64);
    }
    got.push(trainer.loss(&batch).unwrap().into_scalar::<f32>() as f64);
    println!("step  PEFT loss   AutoTune loss   |diff|");
    for (i, (p, a)) in losses.iter().zip(&got).enumerate() {
        println!("{i:>4}  {p:.6}    {a:.6}        {:.2e}", (p - a).abs());
    }
    for (i, (p, a)) in losses.iter().zip(&got).enumerate() {
        assert!(
            (p - a).abs() <= 1e-4,
            "loss {i}: PEFT {p}, AutoTune {a} (all: {got:?})"
        );
    }
    // The steps did move the loss, so the comparison is not of three constants.
    assert!(losses[0] - losses[3] > 0.5);
}

#[test]
fn only_the_adapters_train_and_merging_keeps_the_function() {
    let (mut trainer, base, want) = lora_trainer();
    let batch = batch(&want);
    let before = trainer.model().lora_factors();
    assert_eq!(before.len(), 14, "2 layers x 7 projections");
    trainer.train_step(&batch).unwrap();
    let after = trainer.model().lora_factors();
    for (path, (a, b)) in &after {
        assert_ne!(a, &before[path].0, "{path}: A did not move");
        assert_ne!(b, &before[path].1, "{path}: B did not move");
    }
    let lora_loss = trainer.loss(&batch).unwrap().into_scalar::<f32>();

    // The merged model computes the same loss with plain weights.
    let merged = trainer.inference_model();
    let plain = Trainer::from_model(&merged, trainer_config(&want, None)).unwrap();
    let merged_loss = plain.loss(&batch).unwrap().into_scalar::<f32>();
    assert!(
        (lora_loss - merged_loss).abs() < 1e-5,
        "{lora_loss} vs {merged_loss}"
    );

    // The embedding (frozen) is where it was; only the adapted projections changed.
    let tok = |m: &NeuralModel| {
        m.gpt()
            .tok
            .weight
            .val()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>()
    };
    assert_eq!(tok(&base), tok(&merged));
    let q = |m: &NeuralModel| {
        m.gpt().blocks[0]
            .q
            .weight
            .val()
            .into_data()
            .iter::<f32>()
            .collect::<Vec<_>>()
    };
    assert_ne!(q(&base), q(&merged));
}

#[test]
fn a_fresh_adapter_leaves_the_model_unchanged_and_is_seeded() {
    let base = NeuralModel::load_hf(fixture("qwen2-tiny")).unwrap();
    let want = expected();
    let batch = batch(&want);
    let config = trainer_config(&want, Some(LoraConfig::new(4, 8.0)));
    let a = Trainer::from_model(&base, config.clone()).unwrap();
    let plain = Trainer::from_model(&base, trainer_config(&want, None)).unwrap();
    let loss = |t: &Trainer| t.loss(&batch).unwrap().into_scalar::<f32>();
    assert_eq!(loss(&a), loss(&plain));
    let b = Trainer::from_model(&base, config.clone()).unwrap();
    assert_eq!(a.model().lora_factors(), b.model().lora_factors());
    let other = Trainer::from_model(&base, TrainerConfig { seed: 1, ..config }).unwrap();
    assert_ne!(a.model().lora_factors(), other.model().lora_factors());
    // PEFT's Kaiming-uniform bound on A: 1/sqrt(d_in).
    let bound = 1.0 / (base.config().d_model as f32).sqrt();
    for (a, b) in a.model().lora_factors().values() {
        assert!(a.iter().all(|x| x.abs() <= bound) && a.iter().any(|x| x.abs() > bound / 2.0));
        assert!(b.iter().all(|&x| x == 0.0));
    }
}

#[test]
fn adapters_written_read_back_and_the_state_resumes() {
    let (mut trainer, base, want) = lora_trainer();
    let batch = batch(&want);
    trainer.train_step(&batch).unwrap();
    let lora = trainer.config().lora.clone().unwrap();
    let factors = trainer.model().lora_factors();
    let dir = tempfile::tempdir().unwrap();
    write_peft_adapter(
        dir.path(),
        base.config(),
        &lora,
        &factors,
        Some("qwen2-tiny"),
    )
    .unwrap();
    let (read, init) = read_peft_adapter(dir.path(), base.config()).unwrap();
    assert_eq!(read, lora);
    let LoraInit::Factors(back) = init else {
        panic!("factors expected")
    };
    assert_eq!(back, factors);

    // The training state holds the adapters and their AdamW moments, and the digest of the
    // frozen base instead of its weights: resumed over that base, the next step is the same.
    let state = trainer.state().unwrap();
    assert!(state.base_sha256.is_some());
    let full = Trainer::from_model(&base, trainer_config(&want, None))
        .unwrap()
        .state()
        .unwrap();
    assert!(
        state.weights.len() * 4 < full.weights.len(),
        "adapters {} vs all weights {} (base64 bytes)",
        state.weights.len(),
        full.weights.len()
    );
    let e = Trainer::from_state(&state).err().unwrap().to_string();
    assert!(e.contains("from_state_on"), "{e}");
    let mut other = Trainer::from_model(&base, trainer_config(&want, None)).unwrap();
    other.train_step(&batch).unwrap();
    let e = Trainer::from_state_on(&state, &other.inference_model())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not the one its adapters were trained on"),
        "{e}"
    );
    let mut resumed = Trainer::from_state_on(&state, &base).unwrap();
    assert_eq!(state.difference(&resumed.state().unwrap()).unwrap(), None);
    assert_eq!(
        trainer.train_step(&batch).unwrap(),
        resumed.train_step(&batch).unwrap()
    );
    assert_eq!(
        trainer.model().lora_factors(),
        resumed.model().lora_factors()
    );
}

#[test]
fn bad_lora_configurations_are_errors() {
    let base = NeuralModel::load_hf(fixture("qwen2-tiny")).unwrap();
    let want = expected();
    let with = |lora: LoraConfig| {
        Trainer::from_model(&base, trainer_config(&want, Some(lora)))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(with(LoraConfig::new(0, 8.0)).contains("rank must be positive"));
    assert!(with(LoraConfig::new(4, f64::NAN)).contains("alpha"));
    let unknown = with(LoraConfig {
        targets: vec!["c_attn".into()],
        ..LoraConfig::new(4, 8.0)
    });
    assert!(unknown.contains("no target module `c_attn`"), "{unknown}");

    // GPT-2: the fused c_attn has no single PEFT adapter.
    let gpt2 = NeuralModel::load_hf(fixture("gpt2-tiny")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = read_peft_adapter(fixture("qwen2-tiny-lora"), gpt2.config()).unwrap_err();
    assert!(matches!(e, NeuralError::Checkpoint { .. }) && e.to_string().contains("Llama family"));
    let e = write_peft_adapter(
        dir.path(),
        gpt2.config(),
        &LoraConfig::new(2, 4.0),
        &Default::default(),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("Llama family"), "{e}");

    // An adapter for a model of another shape names the tensor.
    let llama = NeuralModel::load_hf(fixture("llama-tiny")).unwrap();
    let e = read_peft_adapter(fixture("qwen2-tiny-lora"), llama.config())
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("lora_"),
        "{e}"
    );
}

#[test]
fn the_gpt_family_trains_adapters_and_merges_them() {
    let base = NeuralModel::load_hf(fixture("gpt2-tiny")).unwrap();
    let want = expected();
    let batch = batch(&want);
    let config = trainer_config(&want, Some(LoraConfig::new(2, 4.0)));
    let mut t = Trainer::from_model(&base, config).unwrap();
    // c_attn (three projections), attn.c_proj, c_fc, mlp.c_proj in each of 2 layers.
    assert_eq!(t.model().lora_factors().len(), 2 * 6);
    let first = t.train_step(&batch).unwrap();
    for _ in 0..5 {
        t.train_step(&batch).unwrap();
    }
    let last = t.loss(&batch).unwrap().into_scalar::<f32>();
    assert!(last < first, "{first} -> {last}");
    let merged = t.inference_model();
    let plain = Trainer::from_model(&merged, trainer_config(&want, None)).unwrap();
    let merged_loss = plain.loss(&batch).unwrap().into_scalar::<f32>();
    assert!((last - merged_loss).abs() < 1e-5, "{last} vs {merged_loss}");
}
