//! `autotune demo`: the main job on embedded defaults (all curricula on halfspace-cot).

use anyhow::{bail, Result};
use autotune_core::Params;
use autotune_curriculum::{Budget, STRATEGIES};
use autotune_experiment::CompareSpec;
use autotune_tasks::BuiltinTasks;

use super::compare::run_compare;
use crate::args::DemoArgs;
use crate::launch::Launch;

pub fn run(launch: &mut Launch, a: DemoArgs) -> Result<()> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let plan = CompareSpec {
        task: "halfspace-cot".into(),
        task_params: Params::default(),
        strategies: STRATEGIES
            .iter()
            .filter(|s| s.in_all && !s.needs_reference)
            .map(|s| s.name.to_string())
            .collect(),
        strategy_params: Params::default(),
        eps: vec![0.01, 0.001],
        seeds: a.seeds,
        base_seed: 0,
        test_factor: autotune_experiment::DEFAULT_TEST_FACTOR,
        // The default: 20 d / eps at eps 0.001.
        budget: Budget::default(),
        stop_at_eps: true,
        nested_eps: false,
    }
    .plan(&BuiltinTasks)?;
    println!("AutoTune demo: all curricula on halfspace-cot (window 32, d = 33), eps 0.01 and 0.001, {} seeds", a.seeds);
    run_compare(launch, &plan, &a.out, None)?;
    Ok(())
}
