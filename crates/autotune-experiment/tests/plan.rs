//! A comparison is resolved once (`CompareSpec::plan`): what it fills in, what it refuses
//! before anything runs, and that `config.toml`'s values are the plan's.

use autotune_core::Params;
use autotune_curriculum::Budget;
use autotune_experiment::{CompareSpec, Provenance, RunConfig};
use autotune_tasks::BuiltinTasks;

fn spec(task_params: &[&str], strategies: &[&str], eps: &[f64]) -> CompareSpec {
    CompareSpec {
        task: "halfspace-cot".into(),
        task_params: Params::parse(task_params).unwrap(),
        strategies: strategies.iter().map(|s| s.to_string()).collect(),
        strategy_params: Params::default(),
        eps: eps.to_vec(),
        seeds: 3,
        base_seed: 5,
        test_factor: 10.0,
        budget: Budget::default(),
        stop_at_eps: true,
        nested_eps: false,
    }
}

#[test]
fn the_plan_fills_in_the_task_the_budget_and_every_run() {
    let plan = spec(&["window=12"], &["uniform", "autotune-bbm"], &[0.01, 0.1])
        .plan(&BuiltinTasks)
        .unwrap();
    // window + 1 = 13; the default budget is 20 d / eps at the smallest eps.
    assert_eq!(plan.task.dimension, 13);
    assert_eq!(plan.task.params.raw("window"), Some("12"));
    assert!(
        plan.task.params.raw("steps").is_some(),
        "defaults filled in"
    );
    assert_eq!(plan.spec.budget.max_demos, Some(26_000));
    // 2 strategies x 2 eps x 3 seeds, smallest eps first, each run with the plan's budget.
    assert_eq!(plan.runs.len(), 12);
    assert!(plan.runs[..6].iter().all(|r| r.eps == 0.01));
    assert!(plan.runs.iter().all(|r| r.budget.max_demos == Some(26_000)));
    let seeds: Vec<u64> = plan.runs[..3].iter().map(|r| r.seed).collect();
    assert_eq!(seeds, [5, 6, 7]);
    // One resolved configuration per strategy and eps; boost-by-majority's K depends on eps.
    assert_eq!(plan.strategies.len(), 4);
    let k = |eps: f64| {
        plan.strategies
            .iter()
            .find(|s| s.config.name == "autotune-bbm" && s.eps == eps)
            .unwrap()
            .config
            .max_phases
    };
    assert!(k(0.01) > k(0.1), "K {} at 0.01, {} at 0.1", k(0.01), k(0.1));
}

#[test]
fn a_budget_given_is_kept() {
    let mut s = spec(&[], &["uniform"], &[0.1]);
    s.budget.max_demos = Some(77);
    assert_eq!(
        s.plan(&BuiltinTasks).unwrap().spec.budget.max_demos,
        Some(77)
    );
}

#[test]
fn the_plan_refuses_what_cannot_run_before_anything_runs() {
    let err = |s: CompareSpec| s.plan(&BuiltinTasks).unwrap_err().to_string();
    // A strategy that samples pi_ref on a task without one.
    let e = err(spec(&[], &["autotune-rl"], &[0.1]));
    assert!(e.contains("reference policy"), "{e}");
    // With kappa the task has one.
    spec(&["kappa=4"], &["autotune-rl"], &[0.1])
        .plan(&BuiltinTasks)
        .unwrap();
    // A strategy parameter none of the strategies declares.
    let mut s = spec(&[], &["uniform"], &[0.1]);
    s.strategy_params = Params::parse(&["phases=3"]).unwrap();
    let e = err(s);
    assert!(e.contains("`phases`"), "{e}");
    // A value a strategy refuses.
    let mut s = spec(&[], &["autotune-bbm"], &[0.1]);
    s.strategy_params = Params::parse(&["delta=2"]).unwrap();
    let e = err(s);
    assert!(e.contains("delta"), "{e}");
    // A held-out set over the limit, an unknown task parameter, an unknown strategy.
    let e = err(spec(&[], &["uniform"], &[1e-9]));
    assert!(e.contains("held-out"), "{e}");
    let e = err(spec(&["windw=3"], &["uniform"], &[0.1]));
    assert!(e.contains("windw"), "{e}");
    let e = err(spec(&[], &["nope"], &[0.1]));
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn config_toml_holds_the_plan() {
    let plan = spec(&[], &["uniform"], &[0.1]).plan(&BuiltinTasks).unwrap();
    let cfg = RunConfig::new(Provenance::default(), &plan);
    assert_eq!(cfg.task.dimension, plan.task.dimension);
    assert_eq!(cfg.experiment.budget.max_demos, plan.spec.budget.max_demos);
    assert_eq!(cfg.strategy.len(), 1);
}
