//! What the commands share before anything runs: parsing and checking eps lists, strategy
//! lists, the task and its parameters, budgets and run directory names.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use autotune_core::Params;
use autotune_curriculum::{strategy_info, strategy_names, Budget, StrategyInfo, STRATEGIES};
use autotune_tasks::task_info;

use crate::args::Common;

/// Parses `0.1,0.01`: every value a number in (0, 1).
pub fn parse_eps_list(s: &str) -> Result<Vec<f64>> {
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

/// A strategy list; `all` is every strategy that learns from the teacher, and the RL
/// strategies too when the task has a reference policy (`with_rl`, asked only for `all`).
pub fn parse_strategies(s: &str, with_rl: impl FnOnce() -> Result<bool>) -> Result<Vec<String>> {
    if s.trim() == "all" {
        let with_rl = with_rl()?;
        let (chosen, left): (Vec<&&StrategyInfo>, Vec<&&StrategyInfo>) = STRATEGIES
            .iter()
            .partition(|s| s.in_all && (with_rl || !s.needs_reference));
        let without_ref: Vec<&str> = left
            .iter()
            .filter(|s| s.in_all && s.needs_reference)
            .map(|s| s.name)
            .collect();
        let by_name: Vec<&str> = left.iter().filter(|s| !s.in_all).map(|s| s.name).collect();
        if !without_ref.is_empty() {
            eprintln!(
                "note: `all` leaves out {} (they sample a reference policy pi_ref, which this task has none of; halfspace-cot has one with --kappa K)",
                without_ref.join(", ")
            );
        }
        if !by_name.is_empty() {
            eprintln!(
                "note: `all` leaves out {} (slow at their defaults; name them in --strategies)",
                by_name.join(", ")
            );
        }
        return Ok(chosen.iter().map(|s| s.name.to_string()).collect());
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

/// The task and its parameters: `--task` with `--param`, or `--tasks FILE` (the `file`
/// task) with its flags.
pub fn task_and_params(task: &Option<String>, c: &Common) -> Result<(String, Params)> {
    let mut params = Params::parse(&c.params)?;
    if let Some(k) = &c.kappa {
        let k: f64 = k.trim().parse().map_err(|_| {
            anyhow::anyhow!("--kappa {k}: expected one number >= 1 (a list only with compare)")
        })?;
        insert_kappa(&mut params, task.as_deref().unwrap_or("file"), k)?;
    }
    // The `file` task's parameters set by flags: one list, both to refuse them with another
    // task and to pass them on.
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let file_params: [(&str, Option<String>); 15] = [
        ("path", path(&c.tasks)),
        ("format", c.format.clone()),
        ("verifier", c.verifier.clone()),
        ("teacher", path(&c.teacher)),
        ("skip_bad", c.skip_bad.then(|| "true".to_string())),
        ("teacher_url", c.teacher_url.clone()),
        ("teacher_model", c.teacher_model.clone()),
        ("teacher_cache", path(&c.teacher_cache)),
        ("teacher_config", path(&c.teacher_config)),
        ("teacher_checkpoint", path(&c.teacher_checkpoint)),
        ("student_url", c.student_url.clone()),
        ("student_model", c.student_model.clone()),
        ("student", c.student.clone()),
        ("model", path(&c.model)),
        ("max_memory", c.max_memory.clone()),
    ];
    let file_flags = file_params[1..].iter().any(|(_, v)| v.is_some());
    match (task.as_deref(), &c.tasks) {
        (None, None) => bail!("give a task: --task NAME (see `autotune tasks`) or --tasks FILE"),
        (Some(t), Some(_)) if t != "file" => {
            bail!("--task {t} and --tasks FILE are two different tasks; give one")
        }
        (Some(t), None) if t != "file" && file_flags => {
            bail!(
                "--format, --verifier, --skip-bad, --teacher*, --student* and --model are for --tasks FILE"
            )
        }
        _ => {}
    }
    for (k, v) in file_params {
        if let Some(v) = v {
            params.0.insert(k.into(), v);
        }
    }
    let name = task.clone().unwrap_or_else(|| "file".into());
    if name == "file" {
        // Open the file once up front: bad records are reported before any run starts.
        let info = task_info("file")?;
        let resolved = params.resolve("task `file`", info.params)?;
        let t = autotune_tasks::file::open(&resolved)?;
        for s in &t.skipped {
            eprintln!("warning: skipped {s}");
        }
        if !t.skipped.is_empty() {
            eprintln!(
                "warning: {} bad records skipped, {} read",
                t.skipped.len(),
                t.records().len()
            );
        }
    }
    Ok((name, params))
}

/// Checks the task name and its parameters before any work starts.
pub fn check_task(task: &str, params: &Params) -> Result<()> {
    let info = task_info(task)?;
    params.resolve(&format!("task `{task}`"), info.params)?;
    Ok(())
}

/// The budget flags, checked: `--max-seconds` a positive finite number.
pub fn budget(c: &Common) -> Result<Budget> {
    if let Some(s) = c.max_seconds {
        if !(s.is_finite() && s > 0.0) {
            bail!("--max-seconds {s}: expected a positive number of seconds");
        }
    }
    if c.max_teach == Some(0) {
        bail!("--max-teach 0: expected at least 1 (times one prompt may be bought)");
    }
    Ok(Budget {
        max_demos: c.max_demos,
        max_verifier_calls: c.max_verifier_calls,
        max_seconds: c.max_seconds,
        max_teach: c.max_teach,
    })
}

/// Whether the task has a reference policy `pi_ref` (for what `--strategies all` runs).
pub fn has_reference(task: &str, params: &Params) -> Result<bool> {
    Ok(autotune_tasks::build_task(task, params, 0)?
        .0
        .reference()
        .is_some())
}

/// `--kappa K` as the task parameter `kappa` of a task that has one.
pub fn insert_kappa(params: &mut Params, task: &str, kappa: f64) -> Result<()> {
    if !task_info(task)?.params.iter().any(|p| p.key == "kappa") {
        bail!(
            "--kappa is for tasks with a built-in reference policy of known coverage \
             (halfspace-cot); task {task} has none"
        );
    }
    if params.raw("kappa").is_some() {
        bail!("--kappa and --param kappa=... both given; give one");
    }
    params.insert("kappa", kappa);
    Ok(())
}

/// `DIR`, or a new directory `autotune-runs/KIND-TASK-TIME` (with `-2`, `-3`, ... when
/// another command took that name in the same second: the directory is created here, so two
/// commands never share one).
pub fn run_dir(out: Option<PathBuf>, kind: &str, task: &str) -> Result<PathBuf> {
    if let Some(dir) = out {
        return Ok(dir);
    }
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let base = format!("autotune-runs/{kind}-{task}-{stamp}");
    std::fs::create_dir_all("autotune-runs").context("creating autotune-runs")?;
    for n in 1..1000 {
        let dir = PathBuf::from(if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("{base}: a thousand run directories of this name already exist; give --out DIR")
}

/// A run that finished, wrote its results, and shows that its target cannot be reached
/// (`RunSummary::unreachable`): the command exits with 3.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}
