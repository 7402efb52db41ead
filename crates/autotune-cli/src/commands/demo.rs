//! `autotune demo`: the main job on embedded defaults (all curricula on halfspace-cot).

use anyhow::{bail, Result};
use autotune_core::Params;
use autotune_curriculum::{Budget, STRATEGIES};
use autotune_experiment::CompareSpec;

use super::compare::run_compare;
use crate::args::DemoArgs;
use crate::launch::Launch;
use crate::setup::{default_max_demos, instance};

pub fn run(launch: &mut Launch, a: DemoArgs) -> Result<()> {
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let task_params = Params::default();
    let eps = vec![0.01, 0.001];
    let mut b = Budget::default();
    default_max_demos(
        &mut b,
        instance("halfspace-cot", &task_params)?.as_ref(),
        0.001,
    );
    let spec = CompareSpec {
        task: "halfspace-cot".into(),
        task_params,
        strategies: STRATEGIES
            .iter()
            .filter(|s| s.in_all && !s.needs_reference)
            .map(|s| s.name.to_string())
            .collect(),
        strategy_params: Params::default(),
        eps,
        seeds: a.seeds,
        base_seed: 0,
        test_factor: autotune_experiment::DEFAULT_TEST_FACTOR,
        budget: b,
        stop_at_eps: true,
        nested_eps: false,
    };
    println!("AutoTune demo: all curricula on halfspace-cot (window 32, d = 33), eps 0.01 and 0.001, {} seeds", a.seeds);
    run_compare(launch, &spec, &a.out, None)?;
    Ok(())
}
