//! `autotune rl`: policy-gradient training from a reference checkpoint with each prompt
//! selector; rollouts and wall time to the held-out target.

use anyhow::{Context, Result};
use autotune_core::Params;
use autotune_curriculum::Budget;
use autotune_experiment::pretty_json;

use crate::args::RlArgs;
use crate::launch::Launch;
use crate::setup::{check_task, run_dir};

/// The directory of a run directory where each (selector, seed) keeps its state after every
/// step, for `autotune resume`.
pub const STATES_DIR: &str = "rl-state";

pub fn run(launch: &mut Launch, a: RlArgs) -> Result<()> {
    if let Some(path) = &a.render {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: autotune_experiment::RlReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not the rl.json of `autotune rl`", path.display()))?;
        if let Some(c) = &report.coverage {
            println!("{}", autotune_experiment::coverage_text(c));
        }
        print!("{}", autotune_experiment::rl_table(&report));
        return Ok(());
    }
    let task = a
        .task
        .clone()
        .expect("clap requires --task without --render");
    let selectors = a
        .selectors
        .split(',')
        .map(|s| Ok(autotune_curriculum::Selector::parse(s.trim())?))
        .collect::<Result<Vec<_>>>()?;
    let task_params = Params::parse(&a.params)?;
    check_task(&task, &task_params)?;
    let spec = autotune_experiment::RlSpec {
        task: task.clone(),
        task_params,
        selectors,
        grpo: autotune_curriculum::GrpoConfig {
            selector: autotune_curriculum::Selector::Uniform,
            group: a.group,
            prompts_per_step: a.prompts_per_step,
            temperature: a.temperature,
            lr: a.lr,
            max_rounds: a.max_rounds,
            max_steps: a.max_steps,
            normalize_std: !a.no_std,
        },
        eps: a.eps,
        seeds: a.seeds,
        base_seed: a.seed,
        heldout: a.heldout,
        eval_every: a.eval_every,
        budget: Budget {
            max_demos: None,
            max_verifier_calls: None,
            max_seconds: a.max_seconds,
            max_teach: None,
        },
        max_rollouts: a.max_rollouts,
        coverage_samples: a.coverage_samples,
        coverage_prompts: a.coverage_prompts,
    };
    let dir = run_dir(a.out.clone(), "rl", &task)?;
    let states = dir.join(STATES_DIR);
    let (_lock, _resuming) = launch.open_state_dir(&dir, &states)?;
    let report = autotune_experiment::run_rl(
        &autotune_tasks::BuiltinTasks,
        &spec,
        &|sel, seed, step, err| {
            if let Some(e) = err {
                eprintln!(
                    "[{} seed {seed}] step {}: rollouts {}, held-out error {e:.4}, groups {}{}",
                    sel.name(),
                    step.step + 1,
                    step.ledger.rollouts(),
                    step.groups,
                    if step.short { " (short batch)" } else { "" }
                );
            }
        },
        Some(autotune_experiment::RlStates {
            dir: &states,
            every: a.keep_every as usize,
        }),
    )?;
    let mut text = String::new();
    if let Some(c) = &report.coverage {
        text.push_str(&autotune_experiment::coverage_text(c));
        text.push('\n');
    }
    text.push_str(&autotune_experiment::rl_table(&report));
    text.push_str(&format!(
        "total wall time {:.1} s\n",
        report.total_wall_seconds
    ));
    print!("{text}");
    std::fs::write(dir.join("rl.txt"), &text)?;
    std::fs::write(dir.join("rl.json"), pretty_json(&report))?;
    println!("wrote {} and rl.json", dir.join("rl.txt").display());
    Ok(())
}
