//! `autotune export-hf`: a model out as a Hugging Face directory.

use std::path::Path;

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_neural::{write_peft_adapter, Family, GenerateOptions, NeuralModel};
use autotune_tasks::checkpoint::Checkpoint;
use autotune_tasks::neural::NeuralStudent;

use crate::args::ExportHfArgs;

pub fn run(a: ExportHfArgs) -> Result<()> {
    if a.adapter {
        return export_adapter(&a);
    }
    let (model, saved) = load_any(&a.source)?;
    // The check's task: --check-task, else a saved student's own.
    let check_task = match (&a.check_task, &saved) {
        _ if a.check == 0 => None,
        (Some(task), _) => Some((task.clone(), Params::parse(&a.params)?, 0)),
        (None, Some(c)) => Some((c.task.clone(), c.task_params.clone(), c.seed)),
        (None, None) => bail!(
            "--check needs --check-task TASK (and its --param values) for a source that is not a saved student"
        ),
    };
    for file in [autotune_neural::HF_WEIGHTS_FILE, "config.json"] {
        if a.out.join(file).exists() && !a.force {
            bail!(
                "{} already holds a model ({file}); pass --force to replace it",
                a.out.display()
            );
        }
    }
    model.save_hf(&a.out)?;
    let c = model.config();
    let kind = match (c.family, c.qkv_bias) {
        (Family::Gpt, _) => "gpt2",
        (Family::Llama, false) => "llama",
        (Family::Llama, true) => "qwen2",
    };
    println!(
        "wrote {} ({kind}, {} parameters, vocabulary {}, {} positions)",
        a.out.display(),
        model.num_params(),
        c.vocab,
        c.max_len
    );
    println!(
        "tokenizer: {}",
        write_tokenizer(&a.source, saved.as_ref(), &a.out)?
    );
    if let Some((task, params, seed)) = check_task {
        let path = a.out.join("autotune_check.json");
        let n = write_check(&model, (&task, &params, seed), &a, &path)?;
        println!("wrote {} ({n} held-out prompts of {task})", path.display());
    }
    Ok(())
}

/// The tokenizer files a Hugging Face checkpoint carries beside its weights.
const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// Writes the model's tokenizer beside it: the files of the Hugging Face directory it came
/// from (the source itself, or a saved student's `model=DIR`), or the byte tokenizer of a
/// task-file student trained from scratch. Says what was written.
fn write_tokenizer(source: &Path, saved: Option<&Checkpoint>, out: &Path) -> Result<String> {
    let from = match saved {
        None if source.join("config.json").is_file() => Some(source.to_path_buf()),
        None => None,
        Some(c) => match c.task_params.raw("model").map(str::trim) {
            Some(dir) if !dir.is_empty() => Some(Path::new(dir).to_path_buf()),
            _ if c.task == "file" && c.task_params.raw("student") == Some("neural") => {
                autotune_neural::Tokenizer::save_byte_tokenizer(out)?;
                let generation = serde_json::json!({
                    "bos_token_id": autotune_neural::BYTE_BOS,
                    "eos_token_id": autotune_neural::BYTE_EOS,
                    "pad_token_id": autotune_neural::BYTE_PAD,
                });
                std::fs::write(
                    out.join("generation_config.json"),
                    serde_json::to_string_pretty(&generation)?,
                )
                .with_context(|| format!("cannot write {}", out.display()))?;
                return Ok("the byte tokenizer (tokenizer.json, tokenizer_config.json, generation_config.json)".into());
            }
            _ => None,
        },
    };
    let Some(from) = from else {
        return Ok(format!(
            "none (the model reads the task's own token ids{})",
            saved.map_or(String::new(), |c| format!(" of `{}`", c.task))
        ));
    };
    let mut copied = Vec::new();
    for name in TOKENIZER_FILES {
        let file = from.join(name);
        if file.is_file() && file != out.join(name) {
            std::fs::copy(&file, out.join(name))
                .with_context(|| format!("cannot copy {} to {}", file.display(), out.display()))?;
            copied.push(*name);
        }
    }
    Ok(if copied.is_empty() {
        format!("none ({} has no tokenizer files)", from.display())
    } else {
        format!("{} from {}", copied.join(", "), from.display())
    })
}

/// `--adapter`: a saved student's LoRA adapters as a PEFT adapter directory, the base model
/// named by the student's `model` parameter.
fn export_adapter(a: &ExportHfArgs) -> Result<()> {
    if !a.source.is_file() {
        bail!(
            "{}: --adapter exports the adapters of a saved student (run --save-model FILE with lora_rank), not a directory",
            a.source.display()
        );
    }
    let c = Checkpoint::read(&a.source)?;
    let base = saved_base(&c)?;
    let trainer = NeuralStudent::saved_trainer(&c.student, base.as_ref()).with_context(|| {
        format!(
            "{}: the student of task {} is not a neural student",
            a.source.display(),
            c.task
        )
    })?;
    let Some(lora) = &trainer.config().lora else {
        bail!(
            "{}: the student trained every weight (no lora_rank): export the model without --adapter",
            a.source.display()
        );
    };
    for file in [
        autotune_neural::PEFT_ADAPTER_WEIGHTS,
        autotune_neural::PEFT_ADAPTER_CONFIG,
    ] {
        if a.out.join(file).exists() && !a.force {
            bail!(
                "{} already holds an adapter ({file}); pass --force to replace it",
                a.out.display()
            );
        }
    }
    let base = c.task_params.raw("model").filter(|m| !m.trim().is_empty());
    let factors = trainer.model().lora_factors();
    write_peft_adapter(&a.out, trainer.model_config(), lora, &factors, base)?;
    let params: usize = factors.values().map(|(x, y)| x.len() + y.len()).sum();
    println!(
        "wrote {} (PEFT LoRA adapter: rank {}, alpha {}, {} modules, {params} parameters; base {})",
        a.out.display(),
        lora.rank,
        lora.alpha,
        factors.len(),
        base.unwrap_or("unnamed")
    );
    Ok(())
}

/// The held-out prompts of `task` (token ids) with the model's greedy continuations (a fixed
/// number of tokens, not stopped at the end token), as `scripts/check_hf_export.py` reads them.
fn write_check(
    model: &NeuralModel,
    (task, params, seed): (&str, &Params, u64),
    a: &ExportHfArgs,
    path: &Path,
) -> Result<usize> {
    crate::setup::check_task(task, params)?;
    let (built, _) = autotune_tasks::build_task(task, params, seed)?;
    let prompts: Vec<Vec<u32>> = built
        .prompts("test", seed)?
        .draw(a.check)?
        .into_iter()
        .map(|p| p.tokens)
        .collect();
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let max_len = model.config().max_len;
    if longest >= max_len {
        bail!("a held-out prompt of {longest} tokens does not fit the model's {max_len} positions: is this the model's task?");
    }
    let new_tokens = a.check_new_tokens.min(max_len - longest);
    let greedy = model.generate(&prompts, &GenerateOptions::greedy(new_tokens, None))?;
    let check = serde_json::json!({
        "made_by": format!("autotune export-hf --check {}", a.check),
        "task": task,
        "params": params,
        "seed": seed,
        "prompts": prompts,
        "new_tokens": new_tokens,
        "greedy": greedy,
    });
    std::fs::write(path, serde_json::to_string(&check)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(prompts.len())
}

/// The checkpoint a saved LoRA student's adapters were trained on (its task's `model`
/// parameter), loaded when the student's state holds the adapters only.
fn saved_base(c: &Checkpoint) -> Result<Option<NeuralModel>> {
    if !NeuralStudent::saved_needs_base(&c.student).unwrap_or(false) {
        return Ok(None);
    }
    let Some(dir) = c.task_params.raw("model").filter(|m| !m.trim().is_empty()) else {
        bail!("the saved student holds LoRA adapters but its task names no base model (model=DIR)");
    };
    let base = NeuralModel::load_hf(dir)
        .with_context(|| format!("the base model of the saved student's adapters, {dir}"))?;
    Ok(Some(base))
}

/// A saved student file (with its checkpoint), an autotune-neural checkpoint directory, or a
/// Hugging Face directory (told apart by `config.json`'s `model_type`).
fn load_any(source: &Path) -> Result<(NeuralModel, Option<Checkpoint>)> {
    if source.is_file() {
        let c = Checkpoint::read(source)?;
        let base = saved_base(&c)?;
        let model = NeuralStudent::saved_model(&c.student, base.as_ref()).with_context(|| {
            format!(
                "{}: the student of task {} is not a neural student",
                source.display(),
                c.task
            )
        })?;
        return Ok((model, Some(c)));
    }
    if !source.is_dir() {
        bail!("{}: no such file or directory", source.display());
    }
    let config = source.join("config.json");
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", config.display()))?;
    if value.get("model_type").is_some() {
        Ok((NeuralModel::load_hf(source)?, None))
    } else if value.get("format").and_then(|f| f.as_str()) == Some("autotune-neural") {
        Ok((NeuralModel::load(source)?, None))
    } else {
        bail!(
            "{}: neither a Hugging Face config (no model_type) nor an autotune-neural checkpoint",
            config.display()
        )
    }
}
