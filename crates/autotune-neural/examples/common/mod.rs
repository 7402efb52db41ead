//! The throughput measurement shared by `throughput` (mimalloc) and `throughput_system`.

use std::time::Instant;

use autotune_neural::{Example, GenerateOptions, Trainer, TrainerConfig, TransformerConfig};

pub fn run(allocator: &str) {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (batch, seq) = (arg("--batch", 64), arg("--seq", 48));
    let steps = arg("--steps", 30);
    let vocab = 24;
    let config = TransformerConfig::small(vocab, 64);
    let mut trainer = Trainer::new(
        config.clone(),
        TrainerConfig {
            batch_size: batch,
            ..TrainerConfig::default()
        },
    )
    .expect("valid config");
    println!("allocator: {allocator}");
    println!(
        "model: {} params ({} layers, d_model {}, {} heads, d_ff {}), batch {batch} x {seq} tokens",
        trainer.inference_model().num_params(),
        config.n_layers,
        config.d_model,
        config.n_heads,
        config.d_ff
    );
    // Prompts of 16 tokens, 32 learned tokens.
    let data: Vec<Example> = (0..batch)
        .map(|i| {
            let toks: Vec<u32> = (0..seq)
                .map(|j| ((i * 7 + j * 3 + i * j) % vocab) as u32)
                .collect();
            Example::new(&toks[..16], &toks[16..])
        })
        .collect();
    trainer.train_step(&data).expect("warm-up step");
    let start = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = trainer.train_step(&data).expect("step");
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "training: {:.2} steps/s, {:.0} tokens/s (loss {loss:.3})",
        steps as f64 / secs,
        (steps * batch * seq) as f64 / secs
    );

    let model = trainer.inference_model();
    let prompts: Vec<Vec<u32>> = data.iter().map(|e| e.tokens[..16].to_vec()).collect();
    let new = 32;
    let opts = GenerateOptions {
        batch_size: batch,
        ..GenerateOptions::greedy(new, None)
    };
    model.generate(&prompts, &opts).expect("warm-up");
    let reps = arg("--gen-reps", 3);
    let start = Instant::now();
    let mut produced = 0;
    for _ in 0..reps {
        produced += model
            .generate(&prompts, &opts)
            .expect("generate")
            .iter()
            .map(Vec::len)
            .sum::<usize>();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "generation (greedy, KV cache, batch {batch}, prompt 16 + {new} new): {:.0} tokens/s",
        produced as f64 / secs
    );
    if args.iter().any(|a| a == "--uncached") {
        let start = Instant::now();
        let produced: usize = model
            .generate_uncached(&prompts, &opts)
            .expect("generate")
            .iter()
            .map(Vec::len)
            .sum();
        println!(
            "generation without cache: {:.0} tokens/s",
            produced as f64 / start.elapsed().as_secs_f64()
        );
    }
}
