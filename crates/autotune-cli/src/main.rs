//! `autotune`: the command line. A thin layer over the library crates: parse, validate,
//! run, print and write files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_curriculum::{strategy_info, strategy_names, Budget, STRATEGIES};
use autotune_experiment::{compare, render_table, run_one, CompareReport, CompareSpec, RunSpec};
use autotune_tasks::{task_info, TASKS};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "autotune",
    version,
    about = "AutoTune: autocurriculum for chain-of-thought training (where the expensive supervision goes)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the built-in tasks with their parameters and defaults.
    Tasks,
    /// List the curricula with their parameters and defaults.
    Strategies,
    /// One strategy, one seed: writes the resolved configuration and result.json into --out.
    Run(RunArgs),
    /// Many runs: every strategy x eps x seed, aggregated into a comparison table.
    Compare(CompareArgs),
    /// The main job on embedded defaults: compares all curricula on halfspace-cot.
    Demo(DemoArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Task parameter KEY=VALUE (repeatable); see `autotune tasks`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Strategy parameter KEY=VALUE (repeatable); see `autotune strategies`.
    #[arg(long = "strategy-param", value_name = "KEY=VALUE")]
    strategy_params: Vec<String>,
    /// Held-out prompts per run: ceil(TEST_FACTOR / eps); at least 10.
    #[arg(long, default_value_t = 10.0)]
    test_factor: f64,
    /// Stop a run after this many teacher demonstrations (default: 20 d / eps).
    #[arg(long)]
    max_demos: Option<u64>,
    /// Stop a run after this many verifier calls.
    #[arg(long)]
    max_verifier_calls: Option<u64>,
    /// Stop a run after this many wall seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Keep running after held-out error reaches eps, to the strategy's own stop
    /// (certificate, phases or budget).
    #[arg(long)]
    run_to_stop: bool,
}

#[derive(Args)]
struct RunArgs {
    #[arg(long)]
    task: String,
    #[arg(long)]
    strategy: String,
    /// Target held-out error.
    #[arg(long, allow_hyphen_values = true)]
    eps: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (created).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct CompareArgs {
    #[arg(long)]
    task: String,
    /// Comma-separated strategies, or `all`.
    #[arg(long, default_value = "all")]
    strategies: String,
    /// Comma-separated target errors, e.g. 0.1,0.01,0.001.
    #[arg(long, allow_hyphen_values = true)]
    eps: String,
    /// Number of seeds (seed, seed+1, ...).
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the comparison as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

#[derive(Args)]
struct DemoArgs {
    /// Directory for the demo's results (comparison.json, table.txt).
    #[arg(long, default_value = "autotune-runs/demo")]
    out: PathBuf,
    /// Seeds.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Tasks => {
            print!("{}", list_tasks());
            Ok(())
        }
        Cmd::Strategies => {
            print!("{}", list_strategies());
            Ok(())
        }
        Cmd::Run(a) => cmd_run(a),
        Cmd::Compare(a) => cmd_compare(a),
        Cmd::Demo(a) => cmd_demo(a),
    }
}

fn list_tasks() -> String {
    let mut s = String::new();
    for t in TASKS {
        s += &format!("{}\n  {}\n", t.name, t.summary);
        for p in t.params {
            s += &format!("    --param {}={:<12} {}\n", p.key, p.default, p.help);
        }
    }
    s
}

fn list_strategies() -> String {
    let mut s = String::new();
    for t in STRATEGIES {
        s += &format!("{}\n  {}\n", t.name, t.summary);
        for p in t.params {
            s += &format!(
                "    --strategy-param {}={:<12} {}\n",
                p.key, p.default, p.help
            );
        }
    }
    s
}

/// Parses `0.1,0.01`: every value a number in (0, 1).
fn parse_eps_list(s: &str) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let v: f64 = item.trim().parse().ok().filter(|v: &f64| *v > 0.0 && *v < 1.0).with_context(|| {
            format!("malformed eps list `{s}`: `{}` is not a number in (0, 1); expected e.g. 0.1,0.01,0.001", item.trim())
        })?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn parse_strategies(s: &str) -> Result<Vec<String>> {
    if s.trim() == "all" {
        return Ok(STRATEGIES.iter().map(|s| s.name.to_string()).collect());
    }
    let mut out: Vec<String> = Vec::new();
    for name in s.split(',').map(str::trim) {
        if name.is_empty() {
            bail!(
                "malformed strategy list `{s}`; valid strategies: {}",
                strategy_names()
            );
        }
        strategy_info(name)?;
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// Checks the task name and its parameters before any work starts.
fn check_task(task: &str, params: &Params) -> Result<()> {
    let info = task_info(task)?;
    params.resolve(&format!("task `{task}`"), info.params)?;
    Ok(())
}

fn budget(c: &Common) -> Budget {
    Budget {
        max_demos: c.max_demos,
        max_verifier_calls: c.max_verifier_calls,
        max_seconds: c.max_seconds,
    }
}

/// Fills the default demo budget, 20 d / eps, once the task's dimension is known.
fn default_max_demos(b: &mut Budget, task: &str, params: &Params, eps: f64) -> Result<()> {
    if b.max_demos.is_none() {
        let (t, _) = autotune_tasks::build_task(task, params, 0)?;
        b.max_demos = Some((20.0 * t.dimension() as f64 / eps).ceil() as u64);
    }
    Ok(())
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

#[derive(Serialize)]
struct RunConfigFile<'a> {
    run: &'a RunSpec,
    task_params: &'a Params,
    strategy: &'a autotune_curriculum::StrategyConfig,
}

fn write_file(path: &Path, contents: &str) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn cmd_run(a: RunArgs) -> Result<()> {
    let eps = parse_eps_list(&a.eps)?;
    if eps.len() != 1 {
        bail!("`run` takes one eps, got `{}`", a.eps);
    }
    let eps = eps[0];
    let task_params = Params::parse(&a.common.params)?;
    check_task(&a.task, &task_params)?;
    strategy_info(&a.strategy)?;
    let mut b = budget(&a.common);
    default_max_demos(&mut b, &a.task, &task_params, eps)?;
    let spec = RunSpec {
        task: a.task.clone(),
        task_params,
        strategy: a.strategy.clone(),
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps,
        seed: a.seed,
        test_factor: a.common.test_factor,
        budget: b,
        stop_at_eps: !a.common.run_to_stop,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let pb = ProgressBar::new_spinner();
    pb.set_style(bar_style("{spinner} {elapsed} {msg}"));
    pb.enable_steady_tick(Duration::from_millis(200));
    let res = run_one(&spec, |c| {
        pb.set_message(format!(
            "{} phase {} | demos {} | accept {:.3} | held-out error {:.4}",
            spec.strategy, c.phase, c.demos, c.acceptance_rate, c.heldout_error
        ))
    })?;
    pb.finish_and_clear();
    let cfg = RunConfigFile {
        run: &spec,
        task_params: &res.task_params,
        strategy: &res.strategy_config,
    };
    write_file(
        &a.out.join("config.toml"),
        &toml::to_string_pretty(&cfg).context("serialising the configuration")?,
    )?;
    write_file(
        &a.out.join("result.json"),
        &serde_json::to_string_pretty(&res)?,
    )?;
    let mut jsonl = String::new();
    for c in &res.checkpoints {
        jsonl += &serde_json::to_string(c)?;
        jsonl.push('\n');
    }
    write_file(&a.out.join("checkpoints.jsonl"), &jsonl)?;
    let l = &res.summary.final_ledger;
    println!(
        "{} on {} (eps {}, seed {}): {} | demos to eps: {} | final held-out error {:.4} on {} prompts | stop: {:?}",
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
    println!(
        "ledger: teacher calls {} ({} tokens), verifier calls {}, student generations {} ({} tokens), training steps {}, prompts drawn {}, {:.2} s",
        l.teacher_calls, l.teacher_tokens, l.verifier_calls, l.student_generations, l.student_tokens, l.training_steps, l.prompts_drawn, l.wall_seconds
    );
    println!("wrote {}", a.out.display());
    Ok(())
}

fn run_compare(spec: &CompareSpec, json: Option<&Path>) -> Result<CompareReport> {
    let total = spec.runs()?.len() as u64;
    let pb = ProgressBar::new(total);
    pb.set_style(bar_style(
        "{bar:30} {pos}/{len} runs {elapsed} (eta {eta}) {msg}",
    ));
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let report = compare(spec, &|r| {
        pb.inc(1);
        pb.set_message(format!(
            "last: {} eps {} seed {} -> {}",
            r.summary.strategy,
            r.summary.eps,
            r.summary.seed,
            r.summary
                .demos_to_eps
                .map_or("not reached".into(), |d| format!("{d} demos"))
        ));
    })?;
    pb.finish_and_clear();
    print!("{}", render_table(&report));
    println!("total wall time {:.1} s", report.total_wall_seconds);
    if let Some(path) = json {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        write_file(path, &serde_json::to_string_pretty(&report)?)?;
        println!("wrote {}", path.display());
    }
    Ok(report)
}

fn cmd_compare(a: CompareArgs) -> Result<()> {
    let eps = parse_eps_list(&a.eps)?;
    let strategies = parse_strategies(&a.strategies)?;
    let task_params = Params::parse(&a.common.params)?;
    check_task(&a.task, &task_params)?;
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let mut b = budget(&a.common);
    let min_eps = eps.iter().copied().fold(1.0, f64::min);
    default_max_demos(&mut b, &a.task, &task_params, min_eps)?;
    let spec = CompareSpec {
        task: a.task,
        task_params,
        strategies,
        strategy_params: Params::parse(&a.common.strategy_params)?,
        eps,
        seeds: a.seeds,
        base_seed: a.seed,
        test_factor: a.common.test_factor,
        budget: b,
        stop_at_eps: !a.common.run_to_stop,
    };
    run_compare(&spec, a.json.as_deref())?;
    Ok(())
}

fn cmd_demo(a: DemoArgs) -> Result<()> {
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let task_params = Params::default();
    let eps = vec![0.01, 0.001];
    let mut b = Budget::default();
    default_max_demos(&mut b, "halfspace-cot", &task_params, 0.001)?;
    let spec = CompareSpec {
        task: "halfspace-cot".into(),
        task_params,
        strategies: STRATEGIES.iter().map(|s| s.name.to_string()).collect(),
        strategy_params: Params::default(),
        eps,
        seeds: a.seeds,
        base_seed: 0,
        test_factor: 10.0,
        budget: b,
        stop_at_eps: true,
    };
    println!("AutoTune demo: all curricula on halfspace-cot (window 32, d = 33), eps 0.01 and 0.001, {} seeds", a.seeds);
    let report = run_compare(&spec, Some(&a.out.join("comparison.json")))?;
    write_file(&a.out.join("table.txt"), &render_table(&report))?;
    Ok(())
}
