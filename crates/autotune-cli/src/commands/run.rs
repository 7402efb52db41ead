//! `autotune run`: one strategy, one seed, into a run directory; optionally exports the
//! demonstrations bought (TRL SFT), the scored prompt pool (verl RL) and the student.

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_experiment::{pretty_json, report_from_runs, run_one_full, CompareSpec, RESULT_JSON};
use autotune_tasks::BuiltinTasks;

use crate::args::RunArgs;
use crate::launch::Launch;
use crate::output::write_report;
use crate::progress::Progress;
use crate::serve_model;
use crate::setup::{budget, parse_eps_list, task_and_params};

pub fn run(launch: &mut Launch, a: RunArgs) -> Result<()> {
    let eps = parse_eps_list(&a.eps)?;
    if eps.len() != 1 {
        bail!("`run` takes one eps, got `{}`", a.eps);
    }
    let eps = eps[0];
    let (task, task_params) = task_and_params(&a.task, &a.common)?;
    let sft_style = autotune_data::SftStyle::parse(&a.sft_style).with_context(|| {
        format!(
            "--sft-style `{}`: expected messages or prompt-completion",
            a.sft_style
        )
    })?;
    // Resolved and checked once (task, strategy and its parameters, held-out size, the
    // default budget) before the run directory is made: a comparison of one run.
    let plan = CompareSpec {
        task: task.clone(),
        task_params,
        strategies: vec![a.strategy.clone()],
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps: vec![eps],
        seeds: 1,
        base_seed: a.seed,
        test_factor: a.common.test_factor,
        budget: budget(&a.common)?,
        stop_at_eps: !a.common.run_to_stop,
        nested_eps: false,
    }
    .plan(&BuiltinTasks)?;
    let spec = plan.runs[0].clone();
    let (writer, journal) = launch.open_run_dir(&a.out, &plan)?;
    let progress = Progress::new(1);
    let start = std::time::Instant::now();
    let (res, art) = run_one_full(
        &BuiltinTasks,
        &spec,
        |r| {
            writer.record(r);
            progress.record(r);
        },
        Some(&journal),
    )?;
    progress.finish();
    journal.sync()?;
    launch.journal_summary(&journal);
    if let Some(path) = &a.export_sft {
        let examples: Vec<_> = art
            .demos
            .iter()
            .map(|d| {
                let p = art.task.describe(&d.prompt);
                autotune_data::SftExample {
                    prompt: p.text,
                    messages: p.messages,
                    completion: art.task.render_trace(&d.trace),
                }
            })
            .collect();
        std::fs::write(path, autotune_data::export_sft(&examples, sft_style))
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} SFT examples to {}",
            examples.len(),
            path.display()
        );
    }
    if let Some(path) = &a.save_model {
        let autotune_curriculum::Model::Single(Some(student)) = &art.model else {
            bail!(
                "--save-model saves single-model strategies (autotune-cex, uniform, zero-variance, learnability); `{}` built an ensemble or no model",
                spec.strategy
            );
        };
        let state = student
            .save()
            .with_context(|| format!("the students of task `{task}` cannot be saved"))?;
        let ck = serve_model::Checkpoint {
            format: serve_model::CHECKPOINT_FORMAT.into(),
            task: task.clone(),
            task_params: res.task_params.clone(),
            seed: spec.seed,
            strategy: spec.strategy.clone(),
            student: state,
        };
        std::fs::write(path, serde_json::to_string(&ck)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("saved the student to {}", path.display());
    }
    if let Some(path) = &a.export_rl {
        let pool = art.task.pool().with_context(|| {
            format!(
                "--export-rl needs a task with a finite prompt pool (--tasks FILE); `{task}` is a generator"
            )
        })?;
        let scores = autotune_curriculum::score_prompts(
            art.task.as_ref(),
            art.strategy.as_ref(),
            eps,
            spec.seed,
            &art.model,
            res.summary.phases,
            &pool,
        )?;
        let prompts: Vec<autotune_data::RlPrompt> = pool
            .iter()
            .zip(scores)
            .map(|(p, s)| {
                let d = art.task.describe(p);
                autotune_data::RlPrompt {
                    id: d.id,
                    prompt: d.text,
                    messages: d.messages,
                    ground_truth: d.gold.unwrap_or_default(),
                    rank: s.rank,
                    max_rank: s.max_rank,
                    weight: s.weight,
                }
            })
            .collect();
        let selected = prompts.iter().filter(|p| p.weight > 0.0).count();
        std::fs::write(
            path,
            autotune_data::export_rl_prompts(&format!("autotune:{}", art.task.name()), &prompts),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "wrote {} RL prompts ({selected} with weight > 0) to {}",
            prompts.len(),
            path.display()
        );
    }
    writer.write(RESULT_JSON, &pretty_json(&res))?;
    let report = report_from_runs(&plan.spec, vec![res.clone()], start.elapsed().as_secs_f64());
    writer.finish(&report)?;
    let l = &res.summary.final_ledger;
    println!(
        "{} on {} (eps {}, seed {}): {} | demos to eps: {} | final held-out error {:.4} on {} prompts | stop: {}",
        res.summary.strategy,
        res.task,
        res.summary.eps,
        res.summary.seed,
        if res.summary.reached { "reached" } else { "NOT reached" },
        res.summary.demos_to_eps.map_or("-".into(), |d| d.to_string()),
        res.summary.final_error,
        res.heldout_prompts,
        res.summary.stop
    );
    if let Some(student) = &res.student {
        println!("student: {student}");
    }
    println!(
        "ledger: teacher calls {} ({} tokens), verifier calls {}, student generations {} ({} tokens), training steps {}, prompts drawn {}, {:.2} s",
        l.teacher_calls, l.teacher_tokens, l.verifier_calls, l.student_generations, l.student_tokens, l.training_steps, l.prompts_drawn, l.wall_seconds
    );
    if l.reference_samples > 0 {
        println!(
            "pi_ref: {} samples ({} tokens), {} demonstrations found, {} prompts unsolved | rollouts (pi_ref samples + student generations): {}",
            l.reference_samples,
            l.reference_tokens,
            l.reference_demos,
            l.reference_unsolved,
            l.rollouts()
        );
    }
    if l.api_requests + l.api_cache_hits > 0 {
        println!(
            "model servers: {} requests, {} answered from the cache ({} of them teacher calls: {} new teacher calls paid), {} tokens, ${:.4}",
            l.api_requests,
            l.api_cache_hits,
            l.teacher_cache_hits,
            l.teacher_calls - l.teacher_cache_hits.min(l.teacher_calls),
            l.api_tokens,
            l.api_cost_usd
        );
    }
    if l.teacher_rejected > 0 {
        println!(
            "teacher: {} of {} demonstrations rejected by the verifier (paid, not trained on)",
            l.teacher_rejected, l.teacher_calls
        );
    }
    println!("wrote {}", a.out.display());
    write_report(&a.out);
    if let Some(why) = res.summary.unreachable() {
        return Err(crate::setup::Unreachable(why).into());
    }
    Ok(())
}
