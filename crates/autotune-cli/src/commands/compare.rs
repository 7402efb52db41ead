//! `autotune compare`: every strategy x eps x seed into one run directory and one table;
//! with `--kappa K1,K2,...`, one comparison per kappa and the burn-in table.

use std::path::Path;

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_experiment::{compare, pretty_json, CompareReport, CompareSpec, Plan};
use autotune_tasks::BuiltinTasks;

use crate::args::CompareArgs;
use crate::launch::Launch;
use crate::output::{print_table, write_report};
use crate::progress::Progress;
use crate::setup::{
    budget, has_reference, parse_eps_list, parse_strategies, run_dir, task_and_params,
};

/// Runs a comparison into the run directory `dir`: metrics as they happen, then the
/// comparison files, the table on stdout and the report.
pub fn run_compare(
    launch: &mut Launch,
    plan: &Plan,
    dir: &Path,
    json: Option<&Path>,
) -> Result<CompareReport> {
    let (writer, journal) = launch.open_run_dir(dir, plan)?;
    let progress = Progress::new(plan.runs.len() as u64);
    let report = compare(
        &BuiltinTasks,
        plan,
        &|r| {
            writer.record(r);
            progress.record(r);
        },
        Some(&journal),
    )?;
    progress.finish();
    journal.sync()?;
    launch.journal_summary(&journal);
    writer.finish(&report)?;
    print_table(&report);
    println!("total wall time {:.1} s", report.total_wall_seconds);
    if let Some(path) = json {
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, pretty_json(&report))
            .with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("run directory: {}", dir.display());
    write_report(dir);
    let rejected: u64 = report
        .runs
        .iter()
        .map(|r| r.final_ledger.teacher_rejected)
        .sum();
    if rejected > 0 {
        println!("teacher: {rejected} demonstrations rejected by the verifier over all runs (paid, not trained on)");
    }
    let unreachable: Vec<String> = report.runs.iter().filter_map(|r| r.unreachable()).collect();
    if let Some(first) = unreachable.first() {
        return Err(crate::setup::Unreachable(format!(
            "{first} ({} of {} runs like this)",
            unreachable.len(),
            report.runs.len()
        ))
        .into());
    }
    Ok(report)
}

pub fn run(launch: &mut Launch, a: CompareArgs) -> Result<()> {
    if let Some(list) = a.common.kappa.as_deref().filter(|k| k.contains(',')) {
        return burn_in(launch, &a, list);
    }
    compare_report(launch, a).map(|_| ())
}

fn compare_report(launch: &mut Launch, a: CompareArgs) -> Result<CompareReport> {
    let eps = parse_eps_list(&a.eps)?;
    let (task, task_params) = task_and_params(&a.task, &a.common)?;
    let strategies = parse_strategies(&a.strategies, || has_reference(&task, &task_params))?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    // Resolved and checked once (task, strategies and their parameters, held-out sizes, the
    // default budget) before the run directory is made.
    let plan = CompareSpec {
        task,
        task_params,
        strategies,
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps,
        seeds: a.seeds,
        base_seed: a.seed,
        test_factor: a.common.test_factor,
        budget: budget(&a.common)?,
        stop_at_eps: !a.common.run_to_stop,
        nested_eps: a.nested_eps,
    }
    .plan(&BuiltinTasks)?;
    let dir = run_dir(a.out, "compare", &plan.spec.task)?;
    run_compare(launch, &plan, &dir, a.json.as_deref())
}

/// `compare --kappa K1,K2,...`: one comparison per kappa in `DIR/kappa-K`, then the burn-in
/// table (rollouts to eps against kappa and eps, split into pi_ref samples and student
/// generations) on stdout and in `DIR/burn-in.txt` and `.json`.
fn burn_in(launch: &mut Launch, a: &CompareArgs, list: &str) -> Result<()> {
    let kappas: Vec<f64> = list
        .split(',')
        .map(|k| {
            k.trim()
                .parse::<f64>()
                .ok()
                .filter(|k| k.is_finite() && *k >= 1.0)
                .ok_or_else(|| anyhow::anyhow!("--kappa {list}: `{k}` is not a number >= 1"))
        })
        .collect::<Result<_>>()?;
    let dir = run_dir(
        a.out.clone(),
        "burn-in",
        a.task.as_deref().unwrap_or("file"),
    )?;
    let mut reports = Vec::new();
    for &k in &kappas {
        let mut one = CompareArgs {
            task: a.task.clone(),
            strategies: a.strategies.clone(),
            eps: a.eps.clone(),
            seeds: a.seeds,
            seed: a.seed,
            out: Some(dir.join(format!("kappa-{k}"))),
            json: None,
            nested_eps: a.nested_eps,
            common: a.common.clone(),
        };
        one.common.kappa = Some(k.to_string());
        println!("\n== kappa = {k} ==");
        reports.push((k, compare_report(launch, one)?));
    }
    let text = autotune_experiment::burn_in_table(&reports);
    println!("\n{text}");
    std::fs::write(dir.join("burn-in.txt"), &text)
        .with_context(|| format!("writing {}", dir.join("burn-in.txt").display()))?;
    let rows = autotune_experiment::burn_in_rows(&reports);
    let json = pretty_json(&rows);
    std::fs::write(dir.join("burn-in.json"), &json)?;
    if let Some(path) = &a.json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("burn-in table: {}", dir.join("burn-in.txt").display());
    Ok(())
}
