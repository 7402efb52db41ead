//! The throughput measurement shared by `throughput` (mimalloc) and `throughput_system`.
//!
//! The workload is the one `bench/pytorch/bench.py` runs on PyTorch (see
//! `bench/compare-pytorch.sh`): the arith student's default model (vocabulary 26, 308 learned
//! positions, width 96, 4 layers, 4 heads, feed-forward 384), AdamW (lr 1e-3, weight decay
//! 0.01, per-tensor gradient clipping at norm 1) on one batch of 64 sequences of 48 tokens
//! (16 prompt tokens, 32 learned), and greedy KV-cached generation of 32 new tokens after the
//! 64 16-token prompts.
//!
//! Options: `--steps N` (timed training steps, after one warm-up step), `--batch B`, `--seq T`,
//! `--prompt P` (prompt tokens of a sequence; also the generation prompt), `--new N` (generated
//! tokens), `--gen-reps R` (timed generation runs, after one warm-up), `--vocab V`,
//! `--max-len L`, `--d-model D`, `--layers N`, `--heads H`, `--d-ff F`, `--family llama` (with
//! `--kv-heads K`), `--uncached` (also time generation without the cache), `--dump DIR` (write
//! the initial and trained weights, the step losses and the generated tokens, for
//! `bench.py --check`), `--dump-hf DIR` (the initial weights as a Hugging Face directory, for
//! `bench/pytorch/bench_hf.py`). The last line is `RESULT {json}`: tokens/s
//! over all timed steps and runs, and (`*_best_*`) of the fastest single step and run.

use std::time::Instant;

use autotune_neural::{
    Example, Family, GenerateOptions, NeuralModel, Trainer, TrainerConfig, TransformerConfig,
};

/// The arith task's defaults (`crates/autotune-tasks/src/arith.rs`): `vocab_size()` is 5
/// control tokens + 21 characters; `max_len` is the longest prompt (19 tokens) plus the longest
/// teacher trace (288, a 4 x 4-digit product) plus 1 for `max_digits=8`, `mul_max_digits=4`.
const ARITH_VOCAB: usize = 26;
const ARITH_MAX_LEN: usize = 308;

/// The benchmark's sequences: token `(i * 7 + j * 3 + i * j) % vocab` at position `j` of row
/// `i` (`bench.py` builds the same).
pub fn batch(batch: usize, seq: usize, prompt: usize, vocab: usize) -> Vec<Example> {
    (0..batch)
        .map(|i| {
            let toks: Vec<u32> = (0..seq)
                .map(|j| ((i * 7 + j * 3 + i * j) % vocab) as u32)
                .collect();
            Example::new(&toks[..prompt], &toks[prompt..])
        })
        .collect()
}

pub fn run(allocator: &str) {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let dump = args
        .iter()
        .position(|a| a == "--dump")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    let (batch_size, seq, prompt) = (arg("--batch", 64), arg("--seq", 48), arg("--prompt", 16));
    let (steps, new, reps) = (arg("--steps", 30), arg("--new", 32), arg("--gen-reps", 3));
    let vocab = arg("--vocab", ARITH_VOCAB);
    let d_model = arg("--d-model", 96);
    let llama = args
        .iter()
        .position(|a| a == "--family")
        .and_then(|i| args.get(i + 1))
        .is_some_and(|f| f == "llama");
    let n_heads = arg("--heads", 4);
    let config = TransformerConfig {
        n_layers: arg("--layers", 4),
        n_heads,
        d_model,
        d_ff: arg("--d-ff", 4 * d_model),
        family: if llama { Family::Llama } else { Family::Gpt },
        n_kv_heads: llama.then(|| arg("--kv-heads", n_heads)),
        ..TransformerConfig::small(vocab, arg("--max-len", ARITH_MAX_LEN))
    };
    let dump_hf = args
        .iter()
        .position(|a| a == "--dump-hf")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    assert!(prompt < seq && seq <= config.max_len && prompt + new <= config.max_len);
    let mut trainer = Trainer::new(
        config.clone(),
        TrainerConfig {
            batch_size,
            ..TrainerConfig::default()
        },
    )
    .expect("valid config");
    let params = trainer.inference_model().num_params();
    println!("allocator: {allocator}");
    println!(
        "model: {params} params ({} layers, d_model {}, {} heads, d_ff {}, vocab {}, max_len {}), \
         batch {batch_size} x {seq} tokens",
        config.n_layers, config.d_model, config.n_heads, config.d_ff, config.vocab, config.max_len
    );
    let data = batch(batch_size, seq, prompt, vocab);
    if let Some(dir) = &dump_hf {
        trainer
            .inference_model()
            .save_hf(dir)
            .expect("write the initial weights as a Hugging Face directory");
    }
    if let Some(dir) = &dump {
        trainer
            .inference_model()
            .save(dir.join("init"))
            .expect("write the initial weights");
    }
    let mut losses = vec![trainer.train_step(&data).expect("warm-up step")];
    let start = Instant::now();
    let mut best_step = f64::INFINITY;
    for _ in 0..steps {
        let one = Instant::now();
        losses.push(trainer.train_step(&data).expect("step"));
        best_step = best_step.min(one.elapsed().as_secs_f64());
    }
    let train_secs = start.elapsed().as_secs_f64();
    let train_steps_per_s = steps as f64 / train_secs;
    let train_tokens_per_s = (steps * batch_size * seq) as f64 / train_secs;
    println!(
        "training: {train_steps_per_s:.2} steps/s, {train_tokens_per_s:.0} tokens/s (loss {:.3})",
        losses.last().unwrap()
    );

    let model = trainer.inference_model();
    let prompts: Vec<Vec<u32>> = data.iter().map(|e| e.tokens[..prompt].to_vec()).collect();
    let opts = GenerateOptions {
        batch_size,
        ..GenerateOptions::greedy(new, None)
    };
    let generated = model.generate(&prompts, &opts).expect("warm-up");
    let start = Instant::now();
    let mut produced = 0;
    let mut best_gen = f64::INFINITY;
    for _ in 0..reps {
        let one = Instant::now();
        produced += model
            .generate(&prompts, &opts)
            .expect("generate")
            .iter()
            .map(Vec::len)
            .sum::<usize>();
        best_gen = best_gen.min(one.elapsed().as_secs_f64());
    }
    let gen_tokens_per_s = produced as f64 / start.elapsed().as_secs_f64();
    let per_run: usize = generated.iter().map(Vec::len).sum();
    println!(
        "generation (greedy, KV cache, batch {batch_size}, prompt {prompt} + {new} new): \
         {gen_tokens_per_s:.0} tokens/s"
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
    if let Some(dir) = &dump {
        write_dump(dir, &model, &losses, &generated);
    }
    println!(
        "RESULT {{\"impl\":\"rust\",\"allocator\":\"{allocator}\",\"params\":{params},\
         \"batch\":{batch_size},\"seq\":{seq},\"prompt\":{prompt},\"new\":{new},\
         \"train_steps\":{steps},\"train_steps_per_s\":{train_steps_per_s:.4},\
         \"train_tokens_per_s\":{train_tokens_per_s:.1},\"gen_reps\":{reps},\
         \"gen_tokens_per_s\":{gen_tokens_per_s:.1},\
         \"train_best_tokens_per_s\":{:.1},\"gen_best_tokens_per_s\":{:.1},\
         \"first_loss\":{:.6}}}",
        (batch_size * seq) as f64 / best_step,
        per_run as f64 / best_gen,
        losses[0],
    );
}

/// `DIR/trained` (the weights after the warm-up and timed steps), `DIR/rust.json` (every
/// step's loss, the greedy continuations of the trained model).
fn write_dump(dir: &std::path::Path, model: &NeuralModel, losses: &[f32], generated: &[Vec<u32>]) {
    model
        .save(dir.join("trained"))
        .expect("write the trained weights");
    let losses: Vec<String> = losses.iter().map(|l| format!("{l:?}")).collect();
    let rows: Vec<String> = generated
        .iter()
        .map(|g| {
            let t: Vec<String> = g.iter().map(u32::to_string).collect();
            format!("[{}]", t.join(","))
        })
        .collect();
    let text = format!(
        "{{\"losses\":[{}],\"generated\":[{}]}}\n",
        losses.join(","),
        rows.join(",")
    );
    std::fs::write(dir.join("rust.json"), text).expect("write rust.json");
}
