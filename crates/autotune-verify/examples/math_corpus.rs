//! Runs the `math` verifier over a JSONL corpus (`{"gold", "prediction", ...}` per line),
//! single-threaded, and writes one verdict per line plus the timing.
//!
//! `cargo run --release -p autotune-verify --example math_corpus -- IN.jsonl OUT.jsonl [TIMING.json]`
//!
//! The timing is the best of several passes over the whole corpus (after a warm-up pass).

use std::io::{BufRead, Write};
use std::time::Instant;

use autotune_verify::{AnswerVerifier, Item, MathVerifier};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: math_corpus IN.jsonl OUT.jsonl [TIMING.json]");
        std::process::exit(2);
    }
    let file = std::io::BufReader::new(std::fs::File::open(&args[1])?);
    let mut items = Vec::new();
    for line in file.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)?;
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        items.push(Item::new(s("gold"), s("prediction")));
    }
    let verifier = MathVerifier::from_options(&[])?;
    let verdicts: Vec<_> = items.iter().map(|i| verifier.verify(i)).collect();
    let repeats = 5;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t0 = Instant::now();
        let mut n_correct = 0usize;
        for it in &items {
            n_correct += usize::from(verifier.verify(it).correct);
        }
        std::hint::black_box(n_correct);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args[2])?);
    for v in &verdicts {
        serde_json::to_writer(&mut out, v)?;
        out.write_all(b"\n")?;
    }
    let rate = items.len() as f64 / best;
    let correct = verdicts.iter().filter(|v| v.correct).count();
    eprintln!(
        "{} items, {} correct; {:.1} verdicts/s ({:.2} us/item, best of {repeats}, 1 thread)",
        items.len(),
        correct,
        rate,
        1e6 / rate
    );
    if let Some(path) = args.get(3) {
        let timing = serde_json::json!({
            "items": items.len(),
            "seconds": best,
            "verdicts_per_second": rate,
            "repeats": repeats,
        });
        std::fs::write(path, serde_json::to_string_pretty(&timing)?)?;
    }
    Ok(())
}
