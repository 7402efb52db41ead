//! Peak memory of loading a Hugging Face checkpoint and training LoRA adapters on it (issue 17:
//! the 0.5B Qwen2-shaped case within 8 GB; `bench/lora/memory.sh` runs it and writes
//! `docs/results/lora-memory.txt`).
//!
//!     cargo run --release -p autotune-neural --example lora_memory -- DIR [--rank R]
//!         [--steps N] [--batch B] [--seq T] [--new N]
//!
//! Prints, after each phase (load, trainer with adapters, each training step, merge, KV-cached
//! greedy generation), the process's peak resident memory (`VmHWM`) and the time taken, and
//! beside them what `--max-memory` would count for this model (`check_training_memory`).

use std::time::Instant;

use autotune_neural::{
    check_training_memory, Example, GenerateOptions, LoraConfig, LrSchedule, NeuralModel, Trainer,
    TrainerConfig, LORA_FROZEN_BYTES_PER_PARAM, TRAINING_BYTES_PER_PARAM,
};

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn report(phase: &str, start: Instant) {
    let (peak, now) = memory();
    println!(
        "{phase:<34} peak {:>6.2} GiB   now {:>6.2} GiB   {:>7.1} s",
        gib(peak),
        gib(now),
        start.elapsed().as_secs_f64()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .expect("usage: lora_memory DIR [--rank R] ...")
        .clone();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let (rank, steps, batch, seq, new) = (
        arg("--rank", 8),
        arg("--steps", 2),
        arg("--batch", 4),
        arg("--seq", 64),
        arg("--new", 16),
    );
    let t = Instant::now();
    let base = NeuralModel::load_hf(&dir).expect("a Hugging Face model directory");
    let config = base.config().clone();
    let lora = LoraConfig::new(rank, 2.0 * rank as f64);
    let params = base.num_params() as u64;
    let adapters = lora.num_params(&config).expect("a valid LoRA config") as u64;
    println!(
        "model: {dir}: {params} parameters ({} layers, width {}, vocabulary {}); LoRA rank {rank} on every projection: {adapters} adapter parameters",
        config.n_layers, config.d_model, config.vocab
    );
    println!(
        "batch {batch} x {seq} tokens, {steps} AdamW steps, then {new} greedy tokens after {batch} prompts of {} tokens",
        seq / 2
    );
    let estimate = params * LORA_FROZEN_BYTES_PER_PARAM + adapters * TRAINING_BYTES_PER_PARAM;
    println!(
        "--max-memory counts {:.2} GiB for LoRA ({LORA_FROZEN_BYTES_PER_PARAM} bytes a frozen weight, {TRAINING_BYTES_PER_PARAM} an adapter parameter); full fine-tuning {:.2} GiB",
        gib(estimate),
        gib(params * TRAINING_BYTES_PER_PARAM)
    );
    check_training_memory(&config, Some(&lora), u64::MAX, "the model").unwrap();
    report("loaded (f32)", t);
    let trainer_config = TrainerConfig {
        lr: 1e-3,
        schedule: LrSchedule::Constant,
        batch_size: batch,
        lora: Some(lora),
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::from_model(&base, trainer_config).expect("a trainer");
    report("trainer with adapters", t);
    let vocab = config.vocab as u64;
    let data: Vec<Example> = (0..batch as u64)
        .map(|i| {
            let toks: Vec<u32> = (0..seq as u64)
                .map(|j| ((i * 7919 + j * 104_729 + i * j) % vocab) as u32)
                .collect();
            Example::new(&toks[..seq / 2], &toks[seq / 2..])
        })
        .collect();
    let mut step_secs = Vec::new();
    for s in 0..steps {
        let one = Instant::now();
        let loss = trainer.train_step(&data).expect("a step");
        step_secs.push(one.elapsed().as_secs_f64());
        report(
            &format!("step {s} (loss {loss:.3}, {:.1} s)", step_secs[s]),
            t,
        );
    }
    let merged = trainer.inference_model();
    report("merged for generation", t);
    let prompts: Vec<Vec<u32>> = data.iter().map(|e| e.tokens[..seq / 2].to_vec()).collect();
    let out = merged
        .generate(&prompts, &GenerateOptions::greedy(new, None))
        .expect("generation");
    assert_eq!(out.len(), prompts.len());
    report(&format!("generated {new} tokens x {batch}"), t);
    let (peak, _) = memory();
    println!(
        "RESULT {{\"params\": {params}, \"adapter_params\": {adapters}, \"peak_bytes\": {peak}, \"estimate_bytes\": {estimate}, \"step_seconds\": {step_secs:?}, \"seconds\": {:.1}}}",
        t.elapsed().as_secs_f64()
    );
}
