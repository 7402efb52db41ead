//! `autotune verify`: checks {"gold", "prediction", "tests"?, "meta"?} records with a verifier.

use anyhow::{Context, Result};
use autotune_core::Params;

use crate::args::VerifyArgs;

pub fn run(a: VerifyArgs) -> Result<()> {
    let options: Vec<(String, String)> = Params::parse(&a.options)?.0.into_iter().collect();
    let verifier = autotune_verify::build_verifier(&a.verifier, &options)?;
    let items = autotune_data::read_verify_items(&a.input)?;
    let start = std::time::Instant::now();
    let verdicts = verifier.try_verify_batch(&items)?;
    let secs = start.elapsed().as_secs_f64();
    let mut out = String::with_capacity(verdicts.len() * 48);
    for v in &verdicts {
        out += &serde_json::to_string(v)?;
        out.push('\n');
    }
    match &a.out {
        Some(path) => {
            std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{out}"),
    }
    let correct = verdicts.iter().filter(|v| v.correct).count();
    eprintln!(
        "{}: {} verdicts, {correct} correct, in {secs:.3} s ({:.0} verdicts/s, {} threads)",
        a.verifier,
        verdicts.len(),
        verdicts.len() as f64 / secs.max(1e-9),
        rayon::current_num_threads()
    );
    Ok(())
}
